"""One tenant's charts, built from core.store.tenant_history (dicts, newest first)."""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from core.engine.result import STATUSES
from core.ui.charts import STATUS_COLOURS, base_layout, empty_figure


def _oldest_first(history: Sequence[dict]) -> list[dict]:
    return sorted(history, key=lambda h: (h["checked_at"], h.get("check_id") or 0))


def score_over_time(history: Sequence[dict]) -> go.Figure:
    """The score of every check, as a line; each point coloured by the check's status."""
    hist = _oldest_first(history)
    if not hist:
        return empty_figure("This tenant has not been checked yet.")
    xs = [h["checked_at"] for h in hist]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=[h["score"] for h in hist],
            mode="lines+markers",
            name="score",
            line={"color": "#635bff", "width": 2, "shape": "hv"},
            marker={"size": 9, "color": [STATUS_COLOURS.get(h["status"], "#868e96") for h in hist],
                    "line": {"width": 1, "color": "#ffffff"}},
            customdata=[[h["status"], h.get("key_masked") or ""] for h in hist],
            hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>score %{y} · %{customdata[0]}<br>%{customdata[1]}<extra></extra>",
        )
    )
    fig.update_yaxes(title="score", range=[-5, 105])
    fig.update_layout(hovermode="closest", showlegend=False)
    return base_layout(fig, "Score over time")


def status_timeline(history: Sequence[dict]) -> go.Figure:
    """Each check as a dot on its status's lane (worst lane at the bottom), joined by a thin line."""
    hist = _oldest_first(history)
    if not hist:
        return empty_figure("This tenant has not been checked yet.")
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[h["checked_at"] for h in hist],
            y=[h["status"] for h in hist],
            mode="lines",
            line={"color": "#d0d7de", "width": 1, "shape": "hv"},
            hoverinfo="skip",
            showlegend=False,
            name="timeline",
        )
    )
    for status in STATUSES:
        pts = [h for h in hist if h["status"] == status]
        if not pts:
            continue
        fig.add_trace(
            go.Scatter(
                x=[h["checked_at"] for h in pts],
                y=[status] * len(pts),
                mode="markers",
                name=status,
                marker={"size": 12, "color": STATUS_COLOURS[status], "symbol": "square"},
                customdata=[[h.get("source") or "", h.get("key_masked") or ""] for h in pts],
                hovertemplate="%{x|%Y-%m-%d %H:%M} UTC: " + status + " (%{customdata[0]}, %{customdata[1]})<extra></extra>",
            )
        )
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=list(STATUSES), title=None)
    fig.update_layout(hovermode="closest")
    return base_layout(fig, "Status timeline", height=260)
