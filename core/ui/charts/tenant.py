"""One tenant's charts, built from core.store.tenant_history (dicts, newest first)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import plotly.graph_objects as go

from core.engine.result import STATUSES
from core.ui.charts import STATUS_COLOURS, base_layout, empty_figure
from core.ui.palette import OTHER_COLOUR

MIN_SPAN = timedelta(hours=2)  # checks closer together than this get a padded, day-ticked axis
PAD = timedelta(days=1)


def _oldest_first(history: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(history, key=lambda h: (h["checked_at"], h.get("check_id") or 0))


def readable_time_axis(fig: go.Figure, times: Sequence[datetime]) -> go.Figure:
    """One check (or checks minutes apart) would get plotly's autorange of a few milliseconds around the
    point, ticked in ms. Show the check's day with a day either side instead, ticked by day."""
    if times and max(times) - min(times) < MIN_SPAN:
        first = min(times).replace(hour=0, minute=0, second=0, microsecond=0)
        last = max(times).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        # whole days, one before and one after; each label centred in its day, so the point sits in its date
        fig.update_xaxes(range=[first - PAD, last + PAD], tickformat="%b %d, %Y", dtick=86_400_000,
                         ticklabelmode="period")
    return fig


def score_over_time(history: Sequence[Mapping[str, Any]]) -> go.Figure:
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
            marker={"size": 9, "color": [STATUS_COLOURS.get(h["status"], OTHER_COLOUR) for h in hist],
                    "line": {"width": 1, "color": "#ffffff"}},
            customdata=[[h["status"], h.get("key_masked") or ""] for h in hist],
            hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>score %{y} · %{customdata[0]}<br>%{customdata[1]}<extra></extra>",
        )
    )
    readable_time_axis(fig, xs)
    fig.update_yaxes(title="score", range=[-5, 105])
    fig.update_layout(hovermode="closest", showlegend=False)
    return base_layout(fig, "Score over time")


def status_timeline(history: Sequence[Mapping[str, Any]]) -> go.Figure:
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
                hovertemplate=(
                    "%{x|%Y-%m-%d %H:%M} UTC: " + status + " (%{customdata[0]}, %{customdata[1]})<extra></extra>"
                ),
            )
        )
    readable_time_axis(fig, [h["checked_at"] for h in hist])
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=list(STATUSES), title=None)
    fig.update_layout(hovermode="closest")
    return base_layout(fig, "Status timeline", height=260)
