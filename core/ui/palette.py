"""Every label and colour the dashboard uses for statuses, verdicts, levels and charges: one table each, so a
status looks the same in the grid, the triage table, the charts and the banners. No Streamlit here.

Each status has ONE colour family, and the banner kind is the Streamlit alert of that family:
healthy green (st.success), attention amber (st.warning), incomplete blue (st.info), failing red (st.error),
invalid purple (st.error: Streamlit has no purple alert; the banner says INVALID). Streamlit's alerts have four
colours, so "incomplete" (some permissions could not be told) is the info blue everywhere, not a grey chart next
to an amber banner. "unreachable" (Stripe never answered: our network) is a greyed red-brown, with an error
banner that says it is our side's problem.

Every chart colour reaches WCAG 2.1's 3:1 for graphics against white and against the dark theme's background
(contrast_ratio; tests/app/test_palette.py), and a colour is never the only signal: every status and verdict is also
named (legend, label, hover) or has an icon (VERDICT_ICON, STATUS_ICON).
"""
from __future__ import annotations

from core.engine.result import STATUSES

# status -> (chart colour, table cell background, table cell text, Streamlit alert kind)
STATUS_PALETTE: dict[str, tuple[str, str, str, str]] = {
    "healthy": ("#2f9e44", "#d3f9d8", "#1b5e20", "success"),
    "attention": ("#c77700", "#ffe8a3", "#7a4f00", "warning"),
    "incomplete": ("#1c83e1", "#e8f3fc", "#004280", "info"),
    "failing": ("#e03131", "#ffc9c9", "#8b0000", "error"),
    "invalid": ("#ae3ec9", "#eebefa", "#5f3dc4", "error"),
    # our side: Stripe gave no answer at all (not a status of the key; never stacked with the others)
    "unreachable": ("#a98274", "#f4ece9", "#5c3d33", "error"),  # a greyed red-brown: an error, but not failing red
}
STATUS_COLOURS: dict[str, str] = {s: p[0] for s, p in STATUS_PALETTE.items()}
# Colour is never the only signal: a status also has an icon (text) and a marker shape (charts).
STATUS_ICON: dict[str, str] = {"healthy": "✓", "attention": "▲", "incomplete": "?", "failing": "✗", "invalid": "⊘",
                               "unreachable": "⚡"}
STATUS_SYMBOL: dict[str, str] = {"healthy": "circle", "attention": "triangle-up", "incomplete": "diamond",
                                 "failing": "x", "invalid": "square", "unreachable": "line-ns"}
STATUS_CELL: dict[str, tuple[str, str]] = {s: (p[1], p[2]) for s, p in STATUS_PALETTE.items()}
STATUS_BANNER: dict[str, str] = {s: p[3] for s, p in STATUS_PALETTE.items()}
assert set(STATUS_PALETTE) == set(STATUSES) == set(STATUS_ICON) == set(STATUS_SYMBOL)

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
    "excess": "#c77700",
    "unknown": "#767e86",
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
CHARGE_STATUS_COLOURS: dict[str, str] = {"succeeded": "#2f9e44", "pending": "#c77700", "failed": "#e03131"}
BALANCE_COLOURS: dict[str, str] = {"available": "#635bff", "pending": "#767e86"}
OTHER_COLOUR = "#767e86"
ACCENT_COLOUR = "#635bff"  # Pointai's violet: counts that are no status (checks per day, the score line)
INK_COLOUR = "#767e86"  # marks and labels that are no status (key replacements, the tenants line), both themes
GRID_COLOUR = "rgba(128, 128, 128, 0.25)"  # grid and axis lines, readable on a light and a dark background

# The terminal's colour of each status and verdict (an ANSI SGR code, for the CLI: core/cli/render.py): the same
# family as the dashboard's, in the eight colours every terminal has. Invalid is magenta (the dashboard's purple);
# unreachable a faint red (the dashboard's greyed red-brown: an error, but not failing red).
TERMINAL_SGR: dict[str, str] = {
    "healthy": "32",
    "attention": "33",
    "incomplete": "34",
    "failing": "31",
    "invalid": "35",
    "unreachable": "2;31",
    "ok": "32",
    "missing": "31",
    "excess": "33",
    "unknown": "90",
    "not_applicable": "36",
}
assert set(STATUS_PALETTE) | set(VERDICT_COLOURS) == set(TERMINAL_SGR)

# WCAG 2.1 (SC 1.4.11, non-text contrast): every colour a chart mark uses reaches 3:1 against a white background
# (and, for the dark theme, against Streamlit's dark background). tests/app/test_palette.py computes each ratio.
WHITE, DARK_BACKGROUND = "#ffffff", "#0e1117"
MIN_GRAPHICS_CONTRAST = 3.0


def relative_luminance(colour: str) -> float:
    """WCAG 2.1's relative luminance of a #rrggbb colour."""
    h = colour.lstrip("#")
    if len(h) != 6:
        raise ValueError(f"{colour!r} is not a #rrggbb colour.")

    def channel(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast_ratio(a: str, b: str = WHITE) -> float:
    """WCAG 2.1's contrast ratio (1 to 21) between two #rrggbb colours."""
    la, lb = relative_luminance(a), relative_luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def chart_colours() -> dict[str, str]:
    """Every colour a chart draws a mark with, by name."""
    out = {f"status {k}": v for k, v in STATUS_COLOURS.items()}
    out.update({f"verdict {k}": v for k, v in VERDICT_COLOURS.items()})
    out.update({f"charge {k}": v for k, v in CHARGE_STATUS_COLOURS.items()})
    out.update({f"balance {k}": v for k, v in BALANCE_COLOURS.items()})
    out.update({"other": OTHER_COLOUR, "accent": ACCENT_COLOUR, "ink": INK_COLOUR})
    return out


def status_css(status: object) -> str:
    """CSS for a table cell holding a status (empty for anything else)."""
    cell = STATUS_CELL.get(status) if isinstance(status, str) else None
    return f"background-color: {cell[0]}; color: {cell[1]}" if cell else ""


def verdict_css(verdict: str) -> str:
    bg, fg = VERDICT_STYLE.get(verdict, VERDICT_STYLE["unknown"])
    return f"background-color: {bg}; color: {fg}"


__all__ = [
    "ACCENT_COLOUR",
    "BALANCE_COLOURS",
    "CHARGE_STATUS_COLOURS",
    "GRID_COLOUR",
    "INK_COLOUR",
    "LEVEL_LABEL",
    "OTHER_COLOUR",
    "SAMPLE_STATE_ICON",
    "STATUS_BANNER",
    "STATUS_CELL",
    "STATUS_ICON",
    "STATUS_SYMBOL",
    "STATUS_COLOURS",
    "STATUS_PALETTE",
    "TERMINAL_SGR",
    "VERDICT_COLOURS",
    "VERDICT_ICON",
    "VERDICT_LABEL",
    "VERDICT_STYLE",
    "status_css",
    "chart_colours",
    "contrast_ratio",
    "relative_luminance",
    "verdict_css",
]
