"""Triage without Streamlit: the short problem beside each status, the table (columns that fit 1280 px), and the
view's state as URL query parameters (so a link reopens the same view).

Query parameters are user text: `view_from_params` keeps only values it recognises (a status, a flag, a page size
of the list, digits, a scope name of letters, digits and underscores) and the search as plain text (at most
SEARCH_MAX characters); everything else falls back to the default. Nothing here is ever interpreted as markdown.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from core.engine.result import KEY_STATUSES
from core.store.triage import FLAGS, PAGE_SIZES
from core.text import printable

FLAG_WORDS = {  # triage words for store.FLAGS
    "key_replaced": "key replaced",
    "mode_changed": "mode changed",
    "account_changed": "another Stripe account",
    "mode_mismatch": "test key on a live tenant",
    "rotation_due": "rotation due",
    "shared_key": "shared key",
}
# the signals first (they weigh as failing), then the check's own summary
SIGNAL_ORDER = ("mode_mismatch", "account_changed", "key_replaced", "mode_changed", "shared_key", "rotation_due")
SEARCH_MAX = 200
STALE_MAX = 3650
DEFAULT_SIZE = 50
_SCOPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,99}$")

# The Triage table's columns and their widths in pixels: with the grid's row-selection column they fit the wide
# layout's content area at a 1280 px window with the sidebar open (818 px, measured in Chromium by
# tests/e2e/test_triage_width_e2e.py), so the table never scrolls sideways.
COLUMN_WIDTHS: dict[str, int] = {
    "Tenant": 156, "Status": 80, "Problem": 264, "Mode": 48, "Broken since": 88, "Last checked (UTC)": 104,
    "Open": 40,
}
TABLE_BUDGET_PX = 780


def mode_mismatch_words(row: Mapping[str, Any]) -> str:
    """The wrong-mode signal in words: a test key on a live tenant (or a live key on a test tenant)."""
    if row.get("expected_mode") == "test" and row.get("key_mode") == "live":
        return "live key on a test tenant"
    return FLAG_WORDS["mode_mismatch"]


def problem_text(row: Mapping[str, Any]) -> str:
    """The short problem shown next to the status: the key's signals, then the check's summary (store 0015)."""
    parts = []
    for flag in SIGNAL_ORDER:
        if row.get(flag):
            parts.append(mode_mismatch_words(row) if flag == "mode_mismatch" else FLAG_WORDS[flag])
    if row.get("summary"):
        parts.append(str(row["summary"]))
    return " · ".join(parts)


def mode_text(row: Mapping[str, Any]) -> str:
    mode = row.get("key_mode") or ""
    return f"{mode} ★" if row.get("expected_mode") == "live" else mode


def table(rows: Sequence[Mapping[str, Any]], *, demo: bool) -> pd.DataFrame:
    """The Triage table: one row per tenant, the columns of COLUMN_WIDTHS in that order."""
    demo_q = "&demo=1" if demo else ""
    return pd.DataFrame(
        {
            "Tenant": [r["tenant"] for r in rows],
            "Status": [r["status"] for r in rows],
            "Problem": [problem_text(r) for r in rows],
            "Mode": [mode_text(r) for r in rows],
            "Broken since": [r.get("broken_since") for r in rows],
            "Last checked (UTC)": [r["checked_at"] for r in rows],
            "Open": [f"tenant-history?tenant={r['slug']}{demo_q}" for r in rows],
        },
        columns=list(COLUMN_WIDTHS),
    )


# --- the view in the URL -------------------------------------------------------------------------------------
DEFAULT_VIEW: dict[str, Any] = {
    "status": [], "mode": "any", "stale": 0, "search": "", "flags": [], "worse": False, "size": DEFAULT_SIZE,
    "page": 1, "missing": None, "excess": None,
}
# view key -> query parameter
PARAMS = {"status": "status", "mode": "mode", "stale": "stale", "search": "q", "flags": "flags", "worse": "worse",
          "size": "size", "page": "page", "missing": "missing", "excess": "excess"}


def _int(text: str | None, lo: int, hi: int) -> int | None:
    if text is None or not text.strip().isdigit() or len(text.strip()) > 6:
        return None
    n = int(text.strip())
    return n if lo <= n <= hi else None


def _listed(text: str | None, allowed: Sequence[str]) -> list[str]:
    if not text:
        return []
    out: list[str] = []
    for part in text.split(","):
        if part in allowed and part not in out:
            out.append(part)
    return out


def view_from_params(params: Mapping[str, str]) -> dict[str, Any]:
    """The Triage view a URL's query parameters ask for (unknown or malformed values: the default)."""
    v = dict(DEFAULT_VIEW)
    v["status"] = _listed(params.get("status"), KEY_STATUSES)
    v["flags"] = _listed(params.get("flags"), list(FLAGS))
    mode = params.get("mode")
    v["mode"] = mode if mode in ("live", "test") else "any"
    v["stale"] = _int(params.get("stale"), 0, STALE_MAX) or 0
    search = params.get("q") or ""
    v["search"] = printable(search, SEARCH_MAX)
    v["worse"] = params.get("worse") == "1"
    size = _int(params.get("size"), 1, 10_000)
    v["size"] = size if size in PAGE_SIZES else DEFAULT_SIZE
    v["page"] = _int(params.get("page"), 1, 1_000_000) or 1
    for kind in ("missing", "excess"):
        scope = params.get(kind)
        v[kind] = scope if scope and _SCOPE_RE.match(scope) else None
    return v


def params_from_view(view: Mapping[str, Any]) -> dict[str, str]:
    """The query parameters of a view: only what differs from the default (an empty dict for the default view)."""
    out: dict[str, str] = {}
    for key, param in PARAMS.items():
        value = view.get(key, DEFAULT_VIEW[key])
        if value == DEFAULT_VIEW[key] or value in (None, "", []):
            continue
        if isinstance(value, bool):
            out[param] = "1"
        elif isinstance(value, (list, tuple)):
            out[param] = ",".join(value)
        else:
            out[param] = str(value)
    return out


def store_filters(view: Mapping[str, Any]) -> dict[str, Any]:
    """latest_page's filters for a view (without the page, its size and `worse_since`, which needs the time)."""
    return {
        "status": list(view["status"]) or None,
        "mode": None if view["mode"] == "any" else view["mode"],
        "stale_days": float(view["stale"]) if view["stale"] else None,
        "search": view["search"] or None,
        "flag": list(view["flags"]) or None,
        "missing": view["missing"],
        "excess": view["excess"],
    }


def is_filtered(view: Mapping[str, Any]) -> bool:
    return any(view[k] != DEFAULT_VIEW[k] for k in ("status", "mode", "stale", "search", "flags", "worse", "missing",
                                                    "excess"))
