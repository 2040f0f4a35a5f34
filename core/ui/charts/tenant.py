"""One tenant's charts, built from core.store.tenant_history (dicts, newest first)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import plotly.graph_objects as go

from core.engine.result import KEY_STATUSES
from core.ui.charts import STATUS_COLOURS, chart, empty_figure, scatter
from core.ui.palette import ACCENT_COLOUR, GRID_COLOUR, INK_COLOUR, OTHER_COLOUR, STATUS_SYMBOL

MIN_SPAN = timedelta(hours=2)  # checks closer together than this get a padded, day-ticked axis
PAD = timedelta(days=1)
END_MARGIN = 0.03  # the axis ends this share of the history's span after the last check (and starts as much before)
MIN_MARGIN = timedelta(hours=6)
LABEL_GAP = 0.22  # two labels on one row are at least this share of the span apart (a label is ~80 px of ~600)
LABEL_ROWS = 3  # labels closer than that go on the next row down (then back to the first)
ROW_PX = 14


def _oldest_first(history: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(history, key=lambda h: (h["checked_at"], h.get("check_id") or 0))


def time_axis(times: Sequence[datetime]) -> dict[str, Any]:
    """The time axis's properties. One check (or checks minutes apart) would get plotly's autorange of a few
    milliseconds around the point, ticked in ms: show the check's day with a day either side instead, ticked by
    day. Otherwise the axis ends at the last check (plus a small margin), never weeks into the future."""
    if times and max(times) - min(times) < MIN_SPAN:
        first = min(times).replace(hour=0, minute=0, second=0, microsecond=0)
        last = max(times).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        # whole days, one before and one after; each label centred in its day, so the point sits in its date
        return {"range": [first - PAD, last + PAD], "tickformat": "%b %d, %Y", "dtick": 86_400_000,
                "ticklabelmode": "period"}
    if times:
        lo, hi = min(times), max(times)
        margin = max((hi - lo) * END_MARGIN, MIN_MARGIN)
        return {"range": [lo - margin, hi + margin], "autorange": False}
    return {}


def _vline(x: datetime, **props: Any) -> dict[str, Any]:
    """A vertical line (or, with x1, a band) across the plot at x, as plotly's add_vline/add_vrect draw it."""
    return {"type": "line", "x0": x, "x1": x, "xref": "x", "y0": 0, "y1": 1, "yref": "y domain", **props}


def label_rows(times: Sequence[datetime], span: timedelta) -> list[int]:
    """A row (0 = top) for each label at `times` (oldest first), so that two labels on one row are at least
    LABEL_GAP of the span apart: labels never overprint."""
    gap = span * LABEL_GAP
    last: dict[int, datetime] = {}
    rows = []
    for at in times:
        row = next((r for r in range(LABEL_ROWS) if r not in last or at - last[r] >= gap), None)
        if row is None:
            row = -1  # no room on any row: no label (the dashed line and its hover still say it)
        else:
            last[row] = at
        rows.append(row)
    return rows


def _span(times: Sequence[datetime]) -> timedelta:
    return max(max(times) - min(times), MIN_SPAN) if times else MIN_SPAN


REFUSED_LABEL = {"expired": "expired (rolled)", "revoked": "revoked", "ip_not_allowed": "IP not allowed",
                 "invalid": "refused", "no_key": "no key"}


def _label(h: Mapping[str, Any]) -> str:
    """A check's label on the timeline: its status, or why Stripe refused the key (expired, revoked)."""
    if h["status"] == "invalid" and h.get("refused"):
        return REFUSED_LABEL.get(h["refused"], h["refused"])
    if h["status"] == "unreachable":
        return "Stripe unreachable (our side)"
    return h["status"]


def _replacements(events: Sequence[dict], span: timedelta) -> tuple[list[dict], list[dict]]:
    """(shapes, annotations): a dashed vertical line per key replacement, with a short label ("key replaced",
    inside the plot's top, on rows so that labels never overprint) whose hover names the old and new masked keys."""
    evs = sorted(events, key=lambda e: e["at"])
    shapes, notes = [], []
    for ev, row in zip(evs, label_rows([e["at"] for e in evs], span), strict=True):
        said = (("mode changed", ev.get("mode_changed")), ("account changed", ev.get("account_changed")))
        flags = [w for w, on in said if on]
        shapes.append(_vline(ev["at"], line={"color": INK_COLOUR, "width": 1, "dash": "dash"}))
        if row < 0:
            continue
        notes.append({
            "x": ev["at"], "y": 1.0, "yref": "paper", "yanchor": "top", "yshift": -ROW_PX * row, "showarrow": False,
            "font": {"size": 10, "color": INK_COLOUR}, "xanchor": "left", "bgcolor": "rgba(128, 128, 128, 0.12)",
            "text": "key replaced" + (" (" + ", ".join(flags) + ")" if flags else ""),
            "hovertext": f"key replaced on {ev['at']:%Y-%m-%d %H:%M} UTC: {ev.get('old_masked') or '?'} → "
            f"{ev['new_masked']}" + (f" ({', '.join(flags)})" if flags else ""),
        })
    return shapes, notes


def score_over_time(history: Sequence[Mapping[str, Any]], events: Sequence[dict] = ()) -> go.Figure:
    """The score of every check, as a line; each point coloured by the check's status. Unreachable checks
    (no score) leave a gap in the line; key replacements are dashed vertical lines."""
    hist = _oldest_first(history)
    if not hist:
        return empty_figure("This tenant has not been checked yet.")
    xs = [h["checked_at"] for h in hist]
    trace = (
        scatter(
            x=xs,
            y=[h["score"] if h["status"] != "unreachable" else None for h in hist],
            mode="lines+markers",
            name="score",
            connectgaps=False,
            line={"color": ACCENT_COLOUR, "width": 2, "shape": "hv"},
            marker={"size": 9, "color": [STATUS_COLOURS.get(h["status"], OTHER_COLOUR) for h in hist],
                    "symbol": [STATUS_SYMBOL.get(h["status"], "circle") for h in hist],
                    "line": {"width": 1, "color": GRID_COLOUR}},
            customdata=[[_label(h), h.get("key_masked") or ""] for h in hist],
            hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>score %{y} · %{customdata[0]}<br>%{customdata[1]}<extra></extra>",
        )
    )
    shapes, notes = _replacements(events, _span(xs))
    return chart([trace], "Score over time", xaxis=time_axis(xs), yaxis={"title": "score", "range": [-5, 105]},
                 hovermode="closest", showlegend=False, shapes=shapes, annotations=notes)


def status_timeline(history: Sequence[Mapping[str, Any]], events: Sequence[dict] = ()) -> go.Figure:
    """Each check as a dot on its status's lane (worst lane at the bottom), joined by a thin line.

    A check Stripe never answered (unreachable) is a gap: no lane, the line breaks there, and a light band
    marks the attempt. Refused keys keep their own label (expired (rolled), revoked). Key replacements are
    dashed vertical lines labelled with the old and new masked keys."""
    hist = _oldest_first(history)
    if not hist:
        return empty_figure("This tenant has not been checked yet.")
    traces = [
        scatter(
            x=[h["checked_at"] for h in hist],
            y=[h["status"] if h["status"] != "unreachable" else None for h in hist],
            connectgaps=False,
            mode="lines",
            line={"color": GRID_COLOUR, "width": 1, "shape": "hv"},
            hoverinfo="skip",
            showlegend=False,
            name="timeline",
        )
    ]
    for status in KEY_STATUSES:
        pts = [h for h in hist if h["status"] == status]
        if not pts:
            continue
        traces.append(
            scatter(
                x=[h["checked_at"] for h in pts],
                y=[status] * len(pts),
                mode="markers",
                name=status,
                marker={"size": 12, "color": STATUS_COLOURS[status], "symbol": STATUS_SYMBOL[status]},
                customdata=[[h.get("source") or "", h.get("key_masked") or "", _label(h)] for h in pts],
                hovertemplate="%{x|%Y-%m-%d %H:%M} UTC: %{customdata[2]} (%{customdata[0]}, "
                    "%{customdata[1]})<extra></extra>",
            )
        )
    refused = [h for h in hist if h["status"] == "invalid" and h.get("refused") in ("expired", "revoked")]
    # one label per run of the same refusal, and never two on top of each other (the hover names every point)
    firsts = [h for i, h in enumerate(refused) if i == 0 or _label(refused[i - 1]) != _label(h)
              or hist.index(refused[i - 1]) != hist.index(h) - 1]
    span = _span([h["checked_at"] for h in hist])
    labelled = [h for h, row in zip(firsts, label_rows([h["checked_at"] for h in firsts], span), strict=True)
                if row == 0]
    if labelled:  # expired (rolled) and revoked keys keep their own words on the timeline
        traces.append(
            scatter(
                x=[h["checked_at"] for h in labelled], y=["invalid"] * len(labelled), mode="text",
                text=[_label(h) for h in labelled], textposition="top center", name="refused keys",
                showlegend=False, hoverinfo="skip", textfont={"size": 10, "color": STATUS_COLOURS["invalid"]},
            )
        )
    gaps = [h for h in hist if h["status"] == "unreachable"]
    bands = [_vline(h["checked_at"], type="rect", line={"color": STATUS_COLOURS["unreachable"], "width": 3},
                    opacity=0.6) for h in gaps]
    if gaps:  # a legend entry and hover for the gaps (no lane: they say nothing about the key)
        traces.append(
            scatter(
                x=[h["checked_at"] for h in gaps], y=[KEY_STATUSES[-1]] * len(gaps), mode="markers",
                name="unreachable", marker={"size": 1, "color": STATUS_COLOURS["unreachable"]},
                hovertemplate="%{x|%Y-%m-%d %H:%M} UTC: Stripe unreachable (our side; says nothing about the key)"
                "<extra></extra>",
            )
        )
    shapes, notes = _replacements(events, span)
    return chart(traces, "Status timeline", height=260, xaxis=time_axis([h["checked_at"] for h in hist]),
                 yaxis={"type": "category", "categoryorder": "array", "categoryarray": list(KEY_STATUSES)},
                 hovermode="closest", shapes=bands + shapes, annotations=notes)
