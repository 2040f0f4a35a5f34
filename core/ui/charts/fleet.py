"""Fleet health charts, built from core.store's fleet queries (lists of plain dicts)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from core.ui.charts import (
    STACK_ORDER,
    STATUS_COLOURS,
    VERDICT_COLOURS,
    bar,
    chart,
    empty_figure,
    scatter,
)
from core.ui.palette import ACCENT_COLOUR, INK_COLOUR, OTHER_COLOUR


def status_mix(per_day: Sequence[Mapping[str, Any]], *, share: bool = False) -> go.Figure:
    """Stacked bars per day: how many tenants ended the day in each status (store.status_mix_per_day).

    share=True shows each day as percentages of the tenants checked that day.
    """
    if not per_day:
        return empty_figure("No checks in this date range.")
    days = [d["day"] for d in per_day]
    traces = []
    for status in STACK_ORDER:
        ys = [d.get(status, 0) for d in per_day]
        if share:
            ys = [round(100 * y / d["total"], 1) if d.get("total") else 0 for y, d in zip(ys, per_day, strict=True)]
        traces.append(
            bar(
                x=days,
                y=ys,
                name=status,
                marker_color=STATUS_COLOURS[status],
                hovertemplate=f"{status}: %{{y}}{'%' if share else ''}<extra></extra>",
            )
        )
    return chart(traces, "Status mix per day", yaxis={"title": "% of tenants checked" if share else "tenants checked"},
                 barmode="stack", bargap=0.15)


def problem_scopes(
    missing: Sequence[Mapping[str, Any]], excess: Sequence[Mapping[str, Any]], *, limit: int = 10
) -> go.Figure:
    """Horizontal bars: the permissions most often missing or excess in the tenants' latest checks
    (store.top_problem_scopes("missing") and ("excess"))."""
    if not missing and not excess:
        return empty_figure("No tenant's latest check has a missing or excess permission.")
    totals: dict[str, int] = {}
    labels: dict[str, str] = {}
    for d in list(missing) + list(excess):
        k = d["scope"]
        totals[k] = totals.get(k, 0) + d["tenants"]
        labels[k] = f"{d['category']} → {d['resource']}"
    order = sorted(totals, key=lambda k: (-totals[k], labels[k]))[:limit]
    order.reverse()  # plotly draws the first category at the bottom
    traces = []
    for kind, rows in (("missing", missing), ("excess", excess)):
        by = {d["scope"]: d for d in rows}
        traces.append(
            bar(
                y=[labels[k] for k in order],
                x=[by[k]["tenants"] if k in by else 0 for k in order],
                customdata=[f"rak_{k}" for k in order],
                orientation="h",
                name=kind,
                marker_color=VERDICT_COLOURS[kind],
                hovertemplate=f"%{{y}} (%{{customdata}}): %{{x}} tenants {kind}<extra></extra>",
            )
        )
    return chart(traces, "Permissions most often missing or excess", height=max(260, 40 + 28 * len(order)),
                 xaxis={"title": "tenants (latest check)"}, barmode="stack", hovermode="closest")


def checks_per_day(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Bars: checks per day; line: distinct tenants checked that day (store.checks_per_day)."""
    if not rows:
        return empty_figure("No checks in this date range.")
    days = [d["day"] for d in rows]
    traces = [
        bar(x=days, y=[d["checks"] for d in rows], name="checks", marker_color=ACCENT_COLOUR),
        scatter(x=days, y=[d["tenants"] for d in rows], name="tenants", mode="lines+markers",
                line={"color": INK_COLOUR, "width": 2}),
    ]
    return chart(traces, "Checks per day", yaxis={"title": "per day", "rangemode": "tozero"})


def score_distribution(buckets: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Bars: tenants per score bucket of their latest check (store.score_distribution), stacked by the tenants'
    latest status in its palette colour (a score alone does not say the status: an invalid key scores 0, an
    attention key may score 100). Each status is named in the legend and the hover, so colour is never the only
    signal. Buckets without per-status counts are drawn in one neutral colour."""
    if not buckets or not any(b["tenants"] for b in buckets):
        return empty_figure("No tenant has been checked yet.")
    labels = [f"{b['from']}–{b['to']}" for b in buckets]
    traces = []
    if all("statuses" in b for b in buckets):
        for status in STACK_ORDER:  # healthy at the bottom, the worst on top
            ys = [int(b["statuses"].get(status, 0)) for b in buckets]
            if not any(ys):
                continue
            traces.append(bar(x=labels, y=ys, name=status, marker_color=STATUS_COLOURS[status],
                                 hovertemplate=f"score %{{x}}: %{{y}} tenants {status}<extra></extra>"))
    else:
        traces.append(bar(x=labels, y=[b["tenants"] for b in buckets], marker_color=OTHER_COLOUR, name="tenants",
                             hovertemplate="score %{x}: %{y} tenants<extra></extra>"))
    return chart(traces, "Score distribution", xaxis={"title": "score of the latest check", "type": "category"},
                 yaxis={"title": "tenants"}, barmode="stack", hovermode="closest")


def status_counts(counts: dict[str, int]) -> go.Figure:
    """One horizontal stacked bar: tenants by latest status (store.status_counts)."""
    total = sum(counts.values())
    if not total:
        return empty_figure("No tenant has been checked yet.", height=140)
    traces = []
    for status in reversed(STACK_ORDER):  # worst first, left to right
        n = counts.get(status, 0)
        traces.append(
            bar(y=["tenants"], x=[n], orientation="h", name=f"{status} ({n})",
                   marker_color=STATUS_COLOURS[status], hovertemplate=f"{status}: {n}<extra></extra>")
        )
    return chart(traces, height=140, yaxis={"visible": False}, barmode="stack", hovermode="closest")


def unreachable_share(rows: Sequence[dict]) -> go.Figure:
    """Bars: per day, the share of checks Stripe never answered (store.checks_per_day's "unreachable").
    A spike is our outage (network, proxy, DNS), not the tenants' keys."""
    if not rows:
        return empty_figure("No checks in this date range.")
    days = [d["day"] for d in rows]
    shares = [round(100 * d.get("unreachable", 0) / d["checks"], 1) if d["checks"] else 0 for d in rows]
    trace = (
        bar(
            x=days, y=shares, name="unreachable", marker_color=STATUS_COLOURS["unreachable"],
            customdata=[[d.get("unreachable", 0), d["checks"]] for d in rows],
            hovertemplate="%{x|%Y-%m-%d}: %{y}% of checks unreachable (%{customdata[0]} of %{customdata[1]})"
            "<extra></extra>",
        )
    )
    return chart([trace], "Checks Stripe never answered (our side)",
                 yaxis={"title": "% of checks", "rangemode": "tozero"}, hovermode="closest")


def lifecycle_counts(counts: dict[str, int], replaced_week: int) -> go.Figure:
    """Horizontal bars: tenants with each key-lifecycle signal (store.lifecycle_counts, replaced_tenants)."""
    items = [
        ("key replaced this week", replaced_week),
        ("mode or account changed", counts.get("mode_or_account_changed", 0)),
        ("test key on a live tenant", counts.get("mode_mismatch", 0)),
        ("key due for rotation", counts.get("rotation_due", 0)),
        ("key shared with another tenant", counts.get("shared_key", 0)),
    ]
    if not any(n for _, n in items):
        return empty_figure("No tenant shows a key-lifecycle signal.", height=200)
    items.reverse()  # plotly draws the first category at the bottom
    trace = (
        bar(
            y=[k for k, _ in items], x=[n for _, n in items], orientation="h", marker_color=ACCENT_COLOUR,
            name="tenants", hovertemplate="%{y}: %{x} tenants<extra></extra>",
        )
    )
    return chart([trace], "Key lifecycle signals", height=260, xaxis={"title": "tenants", "rangemode": "tozero"},
                 hovermode="closest", showlegend=False)
