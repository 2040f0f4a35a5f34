"""The permission grid of one check as a pandas table and a colour-coded Styler, plus its downloads.

Pure pandas: no Streamlit. The dashboard hands the Styler to `st.dataframe`; the CSV and JSON are what
the download buttons offer. None of it ever holds the key (a CheckResult only has the masked form).
"""
from __future__ import annotations

import json

import pandas as pd
from pandas.io.formats.style import Styler

from core.engine.result import CheckResult, Row
from core.ui.check_view import row_word
from core.ui.csv_safe import frame_csv
from core.ui.palette import LEVEL_LABEL, VERDICT_LABEL, VERDICT_STYLE, verdict_css
from core.ui.text import md_escape

PROBLEMS = ("missing", "excess", "unknown")
__all__ = [
    "COLUMNS", "INFERRED_NOTE", "LEVEL_LABEL", "PROBLEMS", "VERDICT_LABEL", "VERDICT_STYLE", "counts_line",
    "download_name", "grid_csv", "grid_frame", "grid_json", "md_escape", "styled_grid", "verdict_css",
]
COLUMNS = ["Category", "Permission", "Scope", "Required", "Granted", "Verdict", "What to do", "Note"]
INFERRED_NOTE = "inferred: no Stripe docs or error text confirm this permission"


def grid_frame(rows: list[Row], *, problems_only: bool = False, categories: list[str] | None = None) -> pd.DataFrame:
    """One line per row, grouped by category in catalogue order (the rows already come in that order).

    The verdict is kept in a hidden-by-default `_verdict` column so the Styler can colour by it.
    """
    data = []
    for r in rows:
        if problems_only and r.verdict not in PROBLEMS:
            continue
        if categories and r.category not in categories:
            continue
        data.append(
            {
                "Category": r.category,
                "Permission": r.resource,
                "Scope": f"rak_{r.scope}" if r.scope else "—",
                "Required": LEVEL_LABEL.get(r.required, r.required),
                "Granted": LEVEL_LABEL.get(r.granted, r.granted),
                "Verdict": (VERDICT_LABEL["implied_unverified" if r.implied_unverified else "implied"] if r.implied
                            else VERDICT_LABEL.get(r.verdict, r.verdict)),
                "What to do": _what_to_do(r),
                "Note": row_note(r),
                "_verdict": row_word(r),  # the same word the live progress counts in (check_view.row_word)
            }
        )
    return pd.DataFrame(data, columns=COLUMNS + ["_verdict"])


def row_note(r: Row) -> str:
    """What the grid adds about where a row's facts come from: the permission a refusal named instead of the
    probed one, and whether the permission's name is only inferred."""
    parts = []
    if r.named:
        parts.append(f"Stripe's refusal named {r.named}")
    if r.provenance == "inferred":
        parts.append(INFERRED_NOTE)
    return " · ".join(parts)


def _what_to_do(r: Row) -> str:
    if r.implied:
        if r.implied_unverified:
            return f"allowed: implied by {r.implied_by} (unverified: no public source says Stripe grants it)"
        return f"allowed: implied by {r.implied_by}"
    if r.verdict == "ok":
        return ""
    if r.verdict == "not_applicable":
        return r.note or ""
    if r.verdict == "unknown":
        return r.reason or "Stripe did not answer conclusively"
    return r.fix or ""


def styled_grid(rows: list[Row], *, problems_only: bool = False, categories: list[str] | None = None) -> Styler:
    """The grid as a Styler: every cell of a row painted by that row's verdict."""
    frame = grid_frame(rows, problems_only=problems_only, categories=categories)
    verdicts = frame["_verdict"].tolist()
    shown = frame[COLUMNS].reset_index(drop=True)

    def paint(col: pd.Series) -> list[str]:
        return [verdict_css(verdicts[i]) for i in range(len(col))]

    return shown.style.apply(paint, axis=0)


def counts_line(result: CheckResult) -> str:
    c = result.counts()
    parts = [f"{c[v]} {VERDICT_LABEL[v]}" for v in ("ok", "missing", "excess", "unknown", "not_applicable") if c[v]]
    return " · ".join(parts)


def grid_csv(result: CheckResult) -> str:
    """The rows as CSV, with the check's masked key, status and time on every line."""
    frame = pd.DataFrame(
        [
            {
                "checked_at": result.checked_at.isoformat(),
                "key": result.key.masked,
                "mode": result.key.mode or "",
                "account": result.account or "",
                "status": result.status,
                "score": result.score,
                **r.to_dict(),
            }
            for r in result.rows
        ],
        columns=[
            "checked_at", "key", "mode", "account", "status", "score",
            "category", "resource", "scope", "required", "granted", "verdict", "fix", "note", "reason",
            "named", "implied_by", "implied_unverified", "provenance",
        ],
    )
    return frame_csv(frame)  # a cell that starts like a formula gets a leading ' (core.ui.csv_safe)


def grid_json(result: CheckResult) -> str:
    """The CLI's public JSON shape (core.engine.result.CheckResult.to_json), pretty-printed."""
    return json.dumps(result.to_json(), indent=2, ensure_ascii=False)


def download_name(result: CheckResult, tenant: str | None, ext: str) -> str:
    from re import sub

    who = sub(r"[^A-Za-z0-9]+", "-", tenant or "key").strip("-").lower() or "key"
    return f"keyhealth-{who}-{result.checked_at:%Y%m%d-%H%M%S}.{ext}"
