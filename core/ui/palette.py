"""Every label and colour the dashboard uses for statuses, verdicts, levels and charges: one table each, so a
status looks the same in the grid, the triage table, the charts and the banners. No Streamlit here.

Each status has ONE colour family, and the banner kind is the Streamlit alert of that family:
healthy green (st.success), attention amber (st.warning), incomplete blue (st.info), failing red (st.error),
invalid purple (st.error: Streamlit has no purple alert; the banner says INVALID). Streamlit's alerts have four
colours, so "incomplete" (some permissions could not be told) is the info blue everywhere, not a grey chart next
to an amber banner. "unreachable" (Stripe never answered: our network) is a greyed red-brown, with an error
banner that says it is our side's problem.
"""
from __future__ import annotations

from core.engine.result import STATUSES

# status -> (chart colour, table cell background, table cell text, Streamlit alert kind)
STATUS_PALETTE: dict[str, tuple[str, str, str, str]] = {
    "healthy": ("#2f9e44", "#d3f9d8", "#1b5e20", "success"),
    "attention": ("#f59f00", "#ffe8a3", "#7a4f00", "warning"),
    "incomplete": ("#1c83e1", "#e8f3fc", "#004280", "info"),
    "failing": ("#e03131", "#ffc9c9", "#8b0000", "error"),
    "invalid": ("#862e9c", "#eebefa", "#5f3dc4", "error"),
    # our side: Stripe gave no answer at all (not a status of the key; never stacked with the others)
    "unreachable": ("#a98274", "#f4ece9", "#5c3d33", "error"),  # a greyed red-brown: an error, but not failing red
}
STATUS_COLOURS: dict[str, str] = {s: p[0] for s, p in STATUS_PALETTE.items()}
STATUS_CELL: dict[str, tuple[str, str]] = {s: (p[1], p[2]) for s, p in STATUS_PALETTE.items()}
STATUS_BANNER: dict[str, str] = {s: p[3] for s, p in STATUS_PALETTE.items()}
assert set(STATUS_PALETTE) == set(STATUSES)

# verdict -> (table cell background, table cell text); chart colours below. Green ok, red missing, amber excess,
# grey unknown, blue-grey not applicable.
VERDICT_STYLE: dict[str, tuple[str, str]] = {
    "ok": ("#d3f9d8", "#1b5e20"),
    "missing": ("#ffc9c9", "#8b0000"),
    "excess": ("#ffe8a3", "#7a4f00"),
    "unknown": ("#e9ecef", "#495057"),
    "not_applicable": ("#dde4ee", "#3b4a5c"),
    # ok only because a required permission implies it: allowed, but not what the tenant ticked
    "implied": ("#c5f6fa", "#0b4f57"),
}
VERDICT_COLOURS: dict[str, str] = {
    "ok": "#2f9e44",
    "missing": "#e03131",
    "excess": "#f59f00",
    "unknown": "#868e96",
    "not_applicable": "#5c7cfa",
}
VERDICT_LABEL: dict[str, str] = {
    "ok": "ok",
    "missing": "missing",
    "excess": "excess",
    "unknown": "unknown",
    "not_applicable": "not applicable",
    "implied": "allowed (implied)",
    "implied_unverified": "implied (unverified)",
}
VERDICT_ICON: dict[str, str] = {"ok": "✓", "missing": "✗", "excess": "▲", "unknown": "?", "not_applicable": "–"}
LEVEL_LABEL: dict[str | None, str] = {"none": "None", "read": "Read", "write": "Write", "unknown": "?", None: "—"}
# sample-data dataset states (plain glyphs: no emoji font needed)
SAMPLE_STATE_ICON: dict[str, str] = {"loaded": "✓", "empty": "–", "not_permitted": "✗", "failed": "!"}

# Stripe charge statuses and balance parts in the payment charts.
CHARGE_STATUS_COLOURS: dict[str, str] = {"succeeded": "#2f9e44", "pending": "#f59f00", "failed": "#e03131"}
BALANCE_COLOURS: dict[str, str] = {"available": "#635bff", "pending": "#adb5bd"}
OTHER_COLOUR = "#868e96"


def status_css(status: object) -> str:
    """CSS for a table cell holding a status (empty for anything else)."""
    cell = STATUS_CELL.get(status) if isinstance(status, str) else None
    return f"background-color: {cell[0]}; color: {cell[1]}" if cell else ""


def verdict_css(verdict: str) -> str:
    bg, fg = VERDICT_STYLE.get(verdict, VERDICT_STYLE["unknown"])
    return f"background-color: {bg}; color: {fg}"


__all__ = [
    "BALANCE_COLOURS",
    "CHARGE_STATUS_COLOURS",
    "LEVEL_LABEL",
    "OTHER_COLOUR",
    "SAMPLE_STATE_ICON",
    "STATUS_BANNER",
    "STATUS_CELL",
    "STATUS_COLOURS",
    "STATUS_PALETTE",
    "VERDICT_COLOURS",
    "VERDICT_ICON",
    "VERDICT_LABEL",
    "VERDICT_STYLE",
    "status_css",
    "verdict_css",
]
