"""Chart builders: plain data (the store's dicts) in, plotly figures out. No Streamlit, no database.

    from core.ui.charts import fleet, tenant
    fig = fleet.status_mix(svc.store.status_mix_per_day(start, end))

Colours come from core/ui/palette.py, the one table the grid, the triage table, the banners and the charts
share, so a status or verdict looks the same everywhere.
"""
from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from core.engine.result import KEY_STATUSES
from core.ui.palette import GRID_COLOUR, INK_COLOUR, STATUS_COLOURS, VERDICT_COLOURS

# Bottom to top in stacked charts: healthy at the bottom, the worst on top where the eye lands first.
# Unreachable checks say nothing about a key: they are never stacked with the statuses.
STACK_ORDER: tuple[str, ...] = tuple(reversed(KEY_STATUSES))
FONT = "Inter, -apple-system, 'Segoe UI', Roboto, sans-serif"
# Plotly checks every property handed to a figure or trace against its schema: about 25 ms of CPU per chart, 150 ms
# of Fleet health's six (bench/, docs/benchmarks.md). The builders here are fixed code, so that check runs where it
# can catch a mistake, in the tests: tests/app/test_charts.py validates every builder's figure against plotly's schema.
VALIDATE = False


def figure(*traces: Any) -> go.Figure:
    """A figure with these traces, built without plotly's schema check (see VALIDATE)."""
    return go.Figure(list(traces) or None, _validate=VALIDATE)


def bar(**props: Any) -> go.Bar:
    return go.Bar(**props, _validate=VALIDATE)


def scatter(**props: Any) -> go.Scatter:
    return go.Scatter(**props, _validate=VALIDATE)


BASE_X: dict[str, Any] = {"showgrid": False, "linecolor": GRID_COLOUR}
BASE_Y: dict[str, Any] = {"gridcolor": GRID_COLOUR, "zeroline": False}


def _layout(title: str | None, height: int) -> dict[str, Any]:
    """Every chart's layout: its title top left, the legend above the plot, a transparent background."""
    out: dict[str, Any] = {
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 64 if title else 30, "b": 10},
        "font": {"family": FONT, "size": 12},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0},
        # transparent: the chart sits on the page's own background, light or dark as the user chose
        "plot_bgcolor": "rgba(0,0,0,0)",
        "paper_bgcolor": "rgba(0,0,0,0)",
        "hovermode": "x unified",
    }
    if title:
        out["title"] = {"text": title, "x": 0, "xanchor": "left", "y": 0.98, "yanchor": "top"}
    return out


def _axis(base: dict[str, Any], more: dict[str, Any] | None) -> dict[str, Any]:
    axis = {**base, **(more or {})}
    if isinstance(axis.get("title"), str):  # plotly's shorthand, spelt out (nothing checks it on the way)
        axis["title"] = {"text": axis["title"]}
    return axis


def chart(traces: list[Any], title: str | None = None, *, height: int = 320, xaxis: dict[str, Any] | None = None,
          yaxis: dict[str, Any] | None = None, **layout: Any) -> go.Figure:
    """A figure in one step: the traces, every chart's layout (_layout), the axes' and the chart's own layout
    properties. One construction instead of a figure updated property by property, which costs plotly about 20 ms
    of CPU per chart."""
    spec = {**_layout(title, height), "xaxis": _axis(BASE_X, xaxis), "yaxis": _axis(BASE_Y, yaxis)}
    spec.update((name, value) for name, value in layout.items() if value != [])  # no shapes: no "shapes" key
    return go.Figure({"data": traces, "layout": spec}, _validate=VALIDATE)


def base_layout(fig: go.Figure, title: str | None = None, *, height: int = 320) -> go.Figure:
    """Every chart's layout on a figure already built (subplots: on each of its axes)."""
    fig.update_layout(_layout(title, height))
    fig.update_xaxes(BASE_X)
    fig.update_yaxes(BASE_Y)
    return fig


def empty_figure(message: str, *, height: int = 240) -> go.Figure:
    """A blank chart that says why it is blank (no data in the range, say)."""
    note = {"text": message, "showarrow": False, "font": {"size": 14, "color": INK_COLOUR}, "x": 0.5, "y": 0.5,
            "xref": "paper", "yref": "paper"}
    return chart([], height=height, xaxis={"visible": False}, yaxis={"visible": False}, annotations=[note])


__all__ = ["STACK_ORDER", "STATUS_COLOURS", "VERDICT_COLOURS", "bar", "base_layout", "chart", "empty_figure",
           "figure", "scatter"]
