"""The Check page's reading aids, without Streamlit: the verdict line and what to change first, "What to change"
grouped by category, the grid's group counts, the progress line in the grid's words with the time left, and the
similar-name suggestion for a new tenant. Every returned string is plain text; the page escapes it."""
from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

from core.engine.remediation import EDIT_PATH, LEVEL_WORD, change_lines
from core.engine.result import CheckResult, Row
from core.ui.palette import VERDICT_LABEL

PROBLEM_VERDICTS = ("missing", "excess", "unknown")
SIMILAR_RATIO = 0.85


def has_problems(result: CheckResult) -> bool:
    return any(r.verdict in PROBLEM_VERDICTS for r in result.rows)


def first_change(result: CheckResult) -> str:
    """What to change first, in one sentence for support (the verdict line's second half)."""
    lc = result.lifecycle
    if result.status == "unreachable":
        return "Nothing for the tenant: fix this server's connection to Stripe, then check again."
    if lc is not None and lc.mode_mismatch and lc.expected_mode == "live" and result.key.mode == "test":
        return "Ask the tenant for their live restricted key (rk_live_…): this test-mode key cannot take payments."
    if result.status == "invalid":
        return "The tenant creates a new restricted key from the link and pastes it (message below)."
    missing = [r for r in result.rows if r.verdict == "missing"]
    excess = [r for r in result.rows if r.verdict == "excess"]
    unknown = [r for r in result.rows if r.verdict == "unknown"]
    more = len(missing) + len(excess) - 1
    tail = f" (and {more} more change{'s' if more != 1 else ''} below)" if more > 0 else ""
    if missing:
        r = missing[0]
        return f"Set {r.category} → {r.resource} to {LEVEL_WORD[r.required]}{tail}."
    if excess:
        r = excess[0]
        return f"Lower {r.category} → {r.resource} to {LEVEL_WORD[r.required]}{tail}."
    if unknown:
        return f"Nothing to change yet: re-probe the {len(unknown)} permission{'s' if len(unknown) != 1 else ''} " \
               "Stripe did not answer for."
    return "Nothing: the key has exactly the permissions Pointai needs."


def changes_markdown_parts(result: CheckResult, key_name: str) -> tuple[str, list[tuple[str, list[str]]]]:
    """"What to change" as one list: where to go (once), then the settings grouped by category, in grid order."""
    where = (f'In the Stripe Dashboard go to {EDIT_PATH}, open the key "{key_name}" (⋯ → Edit key), set the '
             "following, then Save:")
    return where, change_lines(result.rows)


def unknown_groups(rows: Sequence[Row]) -> list[tuple[str, list[str]]]:
    groups: dict[str, list[str]] = {}
    for r in rows:
        if r.verdict == "unknown":
            groups.setdefault(r.category, []).append(r.resource)
    return list(groups.items())


def group_counts(rows: Iterable[Row], *, problems_only: bool) -> list[tuple[str, int]]:
    """Each category with its count of rows as the grid shows them (problems only, or all), in grid order."""
    counts: dict[str, int] = {}
    for r in rows:
        if problems_only and r.verdict not in PROBLEM_VERDICTS:
            continue
        counts[r.category] = counts.get(r.category, 0) + 1
    return list(counts.items())


def verdict_words(seen: Counter) -> str:
    """Counts in the grid's words, in the grid's order: "40 ok · 2 missing · 15 not applicable"."""
    order = ("ok", "implied", "missing", "excess", "unknown", "not_applicable")
    return " · ".join(f"{seen[v]} {VERDICT_LABEL.get(v, v)}" for v in order if seen.get(v))


def row_word(row: Row) -> str:
    return "implied" if row.implied else row.verdict


def time_left(done: int, total: int, elapsed_s: float) -> str | None:
    """An estimate of the time left from the pace so far ("about 4 s left"), or None before it means anything."""
    if done <= 0 or total <= done or elapsed_s <= 0:
        return None
    left = elapsed_s / done * (total - done)
    return "less than a second left" if left < 1 else f"about {round(left)} s left"


def progress_text(seen: Counter, settled: int, grid_total: int, probes_done: int, probes_total: int,
                  elapsed_s: float) -> str:
    """The progress bar's text: rows settled of the grid's rows, the counts in the grid's words, the time left."""
    parts = [f"{settled}/{grid_total} permissions", verdict_words(seen)]
    eta = time_left(probes_done, probes_total, elapsed_s)
    if eta:
        parts.append(eta)
    return " · ".join(p for p in parts if p)


def _norm(name: str) -> str:
    folded = unicodedata.normalize("NFKC", name).casefold()
    return " ".join(re.sub(r"[^\w]+", " ", folded).split())


def similar_tenants(name: str, existing: Iterable[str], *, limit: int = 3) -> list[str]:
    """Existing tenants whose names look like `name` ("Northwind Bike" → "Northwind Bikes"), closest first;
    [] for an exact (or same-spelling) match, which is the tenant itself, or when nothing is close."""
    want = _norm(name)
    if not want:
        return []
    scored = []
    for other in existing:
        have = _norm(other)
        if not have:
            continue
        if have == want:
            return []  # the very tenant: nothing to suggest
        ratio = difflib.SequenceMatcher(None, want, have).ratio()
        prefix = have.startswith(want) or want.startswith(have)
        if ratio >= SIMILAR_RATIO or (prefix and min(len(want), len(have)) >= 4):
            scored.append((-ratio, other))
    return [o for _, o in sorted(scored)[:limit]]
