"""Payment charts from the sample data's (already masked) DataFrames (core.features.sample). No Streamlit.

    from core.ui.charts import payments
    payments.daily_volume(data.frame("charges"))       # amount per UTC day, stacked by status, per currency
    payments.daily_count(data.frame("charges"))        # charges per UTC day by status
    payments.success_rate(data.frame("charges"))       # succeeded / (succeeded + failed) per day
    payments.balance_by_currency(data.frame("balance"))

Amounts in the frames are in each currency's smallest unit (as Stripe sends them); charts show major units.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.ui.charts import bar, base_layout, empty_figure, figure, scatter
from core.ui.money import THREE_DECIMAL, ZERO_DECIMAL, minor_per_major, to_major
from core.ui.palette import BALANCE_COLOURS, CHARGE_STATUS_COLOURS, OTHER_COLOUR
from core.ui.text import plotly_text

CHARGE_STATUS_ORDER: tuple[str, ...] = ("succeeded", "pending", "failed")


def _statuses(present) -> list[str]:
    known = [s for s in CHARGE_STATUS_ORDER if s in set(present)]
    return known + sorted(s for s in set(present) if s not in CHARGE_STATUS_ORDER)


def _colour(status: str) -> str:
    return CHARGE_STATUS_COLOURS.get(status, OTHER_COLOUR)


def daily_by_status(charges: pd.DataFrame) -> pd.DataFrame:
    """One row per (UTC day, currency, status): count and volume (major units)."""
    cols = ["day", "currency", "status", "count", "volume"]
    if charges is None or charges.empty or "created" not in charges:
        return pd.DataFrame(columns=cols)
    df = charges.dropna(subset=["created"]).copy()
    if df.empty:
        return pd.DataFrame(columns=cols)
    df["day"] = pd.to_datetime(df["created"], utc=True).dt.tz_convert("UTC").dt.normalize().dt.tz_localize(None)
    df["currency"] = df["currency"].fillna("").astype(str).str.lower()
    df["status"] = df["status"].fillna("unknown").astype(str)
    df["volume"] = [to_major(a, c) for a, c in zip(df["amount"], df["currency"], strict=True)]
    out = (
        df.groupby(["day", "currency", "status"], as_index=False)
        .agg(count=("id", "size"), volume=("volume", "sum"))
        .sort_values(["day", "currency", "status"])
        .reset_index(drop=True)
    )
    return out[cols]


def daily_success_rate(charges: pd.DataFrame) -> pd.DataFrame:
    """One row per UTC day: succeeded, failed, and rate = succeeded / (succeeded + failed) in percent
    (pending charges are not decided yet and do not count; a day with none decided has rate NaN)."""
    cols = ["day", "succeeded", "failed", "rate"]
    per = daily_by_status(charges)
    if per.empty:
        return pd.DataFrame(columns=cols)
    counts = per.pivot_table(index="day", columns="status", values="count", aggfunc="sum", fill_value=0)
    succeeded = counts["succeeded"] if "succeeded" in counts else pd.Series(0, index=counts.index)
    failed = counts["failed"] if "failed" in counts else pd.Series(0, index=counts.index)
    decided = succeeded + failed
    rate = (100.0 * succeeded / decided.where(decided > 0)).round(1)
    out = pd.DataFrame(
        {"day": counts.index, "succeeded": succeeded.values, "failed": failed.values, "rate": rate.values}
    )
    return out.reset_index(drop=True)[cols]


def _per_currency_bars(per: pd.DataFrame, value: str, title: str, y_title: str) -> go.Figure:
    currencies = sorted(per["currency"].unique()) if value == "volume" else [None]
    statuses = _statuses(per["status"])
    if len(currencies) > 1:
        fig = make_subplots(rows=len(currencies), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                            subplot_titles=[plotly_text(str(c).upper()) for c in currencies])
    else:
        fig = figure()
    for row, cur in enumerate(currencies, start=1):
        part = per if cur is None else per[per["currency"] == cur]
        grouped = part.groupby(["day", "status"], as_index=False)[value].sum()
        for status in statuses:
            s = grouped[grouped["status"] == status]
            if s.empty:
                continue
            shown = plotly_text(status)  # Stripe's text: plotly would render HTML in it
            unit = " " + plotly_text(cur.upper()) if cur else ""
            trace = bar(
                x=s["day"], y=s[value], name=shown, marker_color=_colour(status), legendgroup=shown,
                showlegend=row == 1,
                hovertemplate=f"{shown}: %{{y:,.2f}}{unit}<extra></extra>"
                if value == "volume" else f"{shown}: %{{y}}<extra></extra>",
            )
            if len(currencies) > 1:
                fig.add_trace(trace, row=row, col=1)
            else:
                fig.add_trace(trace)
    fig.update_layout(barmode="stack", bargap=0.15)
    one = currencies[0] if len(currencies) == 1 else None
    label = f"{y_title} ({plotly_text(one.upper())})" if one else y_title
    fig.update_yaxes(title=label)
    return base_layout(fig, title, height=320 if len(currencies) <= 1 else 200 + 160 * len(currencies))


def daily_volume(charges: pd.DataFrame, *, empty_message: str = "No charges in the time window.") -> go.Figure:
    """Stacked bars: charge amount per UTC day by status, one panel per currency (major units)."""
    per = daily_by_status(charges)
    if per.empty:
        return empty_figure(empty_message)
    return _per_currency_bars(per, "volume", "Daily volume by status", "amount")


def daily_count(charges: pd.DataFrame, *, empty_message: str = "No charges in the time window.") -> go.Figure:
    """Stacked bars: number of charges per UTC day by status (all currencies)."""
    per = daily_by_status(charges)
    if per.empty:
        return empty_figure(empty_message)
    return _per_currency_bars(per, "count", "Daily charges by status", "charges")


def success_rate(charges: pd.DataFrame, *, empty_message: str = "No decided charges in the time window.") -> go.Figure:
    """A line: succeeded / (succeeded + failed) per UTC day, in percent."""
    rate = daily_success_rate(charges)
    rate = rate.dropna(subset=["rate"]) if not rate.empty else rate
    if rate.empty:
        return empty_figure(empty_message)
    fig = figure(
        scatter(
            x=rate["day"], y=rate["rate"], mode="lines+markers", name="success rate",
            line={"color": CHARGE_STATUS_COLOURS["succeeded"]},
            customdata=list(zip(rate["succeeded"], rate["failed"], strict=True)),
            hovertemplate="%{y:.1f}% (%{customdata[0]} succeeded, %{customdata[1]} failed)<extra></extra>",
        )
    )
    fig.update_yaxes(title="% succeeded", range=[0, 105])
    return base_layout(fig, "Success rate per day")


def balance_by_currency(balance: pd.DataFrame, *, empty_message: str = "No balance to show.") -> go.Figure:
    """Grouped bars: available and pending balance per currency (major units)."""
    if balance is None or balance.empty:
        return empty_figure(empty_message)
    df = balance.sort_values("currency")
    curs = [plotly_text(str(c).upper()) for c in df["currency"]]
    fig = figure()
    for part in ("available", "pending"):
        fig.add_trace(
            bar(
                x=curs, y=[to_major(a, c) for a, c in zip(df[part], df["currency"], strict=True)], name=part,
                marker_color=BALANCE_COLOURS[part], hovertemplate=f"{part}: %{{y:,.2f}} %{{x}}<extra></extra>",
            )
        )
    fig.update_layout(barmode="group", bargap=0.3)
    fig.update_yaxes(title="amount (major units)")
    return base_layout(fig, "Balance per currency")


__all__ = [
    "THREE_DECIMAL",
    "ZERO_DECIMAL",
    "balance_by_currency",
    "daily_by_status",
    "daily_count",
    "daily_success_rate",
    "daily_volume",
    "minor_per_major",
    "success_rate",
    "to_major",
]
