"""Amounts the way the payment charts show them: major units with the currency's code ("19.00 USD",
"1,000 JPY", "1.250 KWD"). No Streamlit here.

Stripe sends every amount in the currency's smallest unit (cents); the sample-data frames keep those (their
JSON and CSV are Stripe's numbers), and `display_frame` is what the dashboard's tables show.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

# Stripe's zero-decimal and three-decimal currencies (docs.stripe.com/currencies).
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})

# The amount columns of each sample dataset (core.features.sample.columns); each row's currency is in "currency".
AMOUNT_COLUMNS: dict[str, tuple[str, ...]] = {
    "balance": ("available", "pending"),
    "charges": ("amount", "amount_refunded"),
    "balance_transactions": ("amount", "fee", "net"),
    "invoices": ("total", "amount_due", "amount_paid"),
    "subscriptions": ("unit_amount",),
    "checkout_sessions": ("amount_total",),
    "prices": ("unit_amount",),
}


def minor_per_major(currency: str | None) -> int:
    c = (currency or "").lower()
    return 1 if c in ZERO_DECIMAL else 1000 if c in THREE_DECIMAL else 100


def decimals(currency: str | None) -> int:
    return {1: 0, 100: 2, 1000: 3}[minor_per_major(currency)]


def _missing(v: Any) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def to_major(amount: Any, currency: str | None) -> float:
    if _missing(amount):
        return 0.0
    return float(amount) / minor_per_major(currency)


def money(amount: Any, currency: Any) -> str:
    """'19.00 USD' from (1900, 'usd'); '' for a missing amount; the number alone without a currency."""
    if _missing(amount):
        return ""
    try:
        value = float(amount)
    except (TypeError, ValueError):
        return str(amount)
    cur = "" if _missing(currency) else str(currency)
    text = f"{value / minor_per_major(cur):,.{decimals(cur)}f}"
    return f"{text} {cur.upper()}" if cur else text


def display_frame(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A sample dataset as the dashboard shows it: amounts in major units with their currency, currency codes
    upper-case. `frame` itself is not changed."""
    cols = [c for c in AMOUNT_COLUMNS.get(name, ()) if c in frame.columns]
    if not cols or "currency" not in frame.columns:
        return frame
    out = frame.copy()
    for c in cols:
        out[c] = [money(a, cur) for a, cur in zip(frame[c], frame["currency"], strict=True)]
    out["currency"] = [("" if _missing(c) else str(c).upper()) for c in frame["currency"]]
    return out


__all__ = ["AMOUNT_COLUMNS", "THREE_DECIMAL", "ZERO_DECIMAL", "decimals", "display_frame", "minor_per_major", "money",
           "to_major"]
