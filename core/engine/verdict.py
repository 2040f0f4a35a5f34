"""Verdicts: what the key has against what Pointai requires, row by row and overall.

Per row: ok, missing, excess (granted where None is required, or above the requirement), unknown,
not_applicable (a guide item that is no Stripe permission; a permission no request can check from outside; an
API gone for the key's account; a test-mode endpoint with a live key), each with its sentence in the note.
A permission Stripe grants along with a required one (the catalogue's `implies`) is not excess up to the
implied level: the row is ok, marked implied (`Row.implied_by`).

Overall status, first match wins:
  invalid     the key is malformed, of the wrong kind, or refused by Stripe
  failing     a required permission is missing
  incomplete  a row is unknown (Stripe did not answer conclusively), none missing
  attention   only excess permissions
  healthy     every row ok

Score (0-100), banded by status so that it sorts like the status does:
  share = weight of ok rows / weight of all applicable rows, where a row Pointai requires (Read or Write)
          weighs 3 and every other row 1; unknown rows count as not ok, not_applicable rows are left out;
  score = low + round((high - low) x share) within the status's band:
          healthy 100, attention 80-99, incomplete 50-79, failing 1-49, invalid 0.
"""
from __future__ import annotations

from collections.abc import Mapping

from core.engine.catalogue import Catalogue, Profile, Scope
from core.engine.probe import ScopeOutcome
from core.engine.result import Granted, Level, Row, Status, Verdict, level_rank

REQUIRED_WEIGHT = 3
SCORE_BANDS = {
    "healthy": (100, 100), "attention": (80, 99), "incomplete": (50, 79), "failing": (1, 49), "invalid": (0, 0),
}


def judge(required: Level, granted: Granted, allowed: Level | None = None) -> Verdict:
    """`allowed` (default: the requirement) is the most a key may have before it is excess: higher
    when Stripe grants the permission along with a required one ("also implies")."""
    if granted == "unknown":
        return "unknown"
    r, g = level_rank(required), level_rank(granted)
    if g < r:
        return "missing"
    if g > max(r, level_rank(allowed or required)):
        return "excess"
    return "ok"


def named_note(
    catalogue: Catalogue, scope: Scope, named: tuple[str, ...], stripe_label: str | None = None
) -> str | None:
    """The permission(s) a refusal named, when none of them is the probed scope's own: "rak_x_read (Label)".
    `stripe_label`: the Dashboard's words a newer refusal gave ("Prices Read"), shown for a single name the
    catalogue does not know."""
    if not named or {f"{scope.scope}_read", f"{scope.scope}_write"} & set(named):
        return None
    parts = []
    for n in named:
        base = n.rsplit("_", 1)[0]
        label = catalogue.get(base).label if base in catalogue else (stripe_label if len(named) == 1 else None)
        parts.append(f"rak_{n} ({label})" if label else f"rak_{n}")
    return ", ".join(parts)


def scope_row(catalogue: Catalogue, profile: Profile, s: Scope, out: ScopeOutcome | None) -> Row:
    """The grid's row for one catalogue scope from what its probes saw (None: not probed yet, or never).
    The one row builder: the grid (build_rows) and the live progress of a sweep (core.engine.check) use it."""
    required, item = profile.required(s)
    allowed, implied_note = profile.allowed(s)
    if not s.probed or (out is not None and out.not_applicable):
        # Not checkable from outside, or not applicable for this key (API absent, live mode): no verdict.
        why = (
            out.not_applicable if out is not None and out.not_applicable
            else f"Not checkable from outside: {s.unchecked}"
        )
        return _with_fix(profile, Row(
            category=s.category, resource=s.label, scope=s.scope, required=required,
            granted=None, verdict="not_applicable", note=why, guide_item=item.guide if item else None,
            provenance=s.provenance,
        ))
    granted = out.granted if out else "unknown"
    note = item.note if item and item.note else None
    if s.unchecked and s.unchecked_levels:
        note = f"{note} {s.unchecked}" if note else s.unchecked
    implied_by = None
    if implied_note and granted != "none":
        note = implied_note
        implied_by = ", ".join(profile.implied.get(s.scope, ("none", ()))[1]) or None
    return _with_fix(profile, Row(
        category=s.category,
        resource=s.label,
        scope=s.scope,
        required=required,
        granted=granted,
        verdict=judge(required, granted, allowed),
        note=note,
        reason=(out.reason if out else "not probed") if granted == "unknown" else None,
        guide_item=item.guide if item else None,
        named=named_note(catalogue, s, out.named, out.named_label) if out else None,
        implied_by=implied_by,
        implied_unverified=implied_by is not None and s.scope in profile.unverified,
        provenance=s.provenance,
    ))


def _with_fix(profile: Profile, row: Row) -> Row:
    from core.engine.remediation import fix_for

    row.fix = fix_for(row, profile)
    return row


def build_rows(catalogue: Catalogue, profile: Profile, outcomes: Mapping[str, ScopeOutcome]) -> list[Row]:
    """One row per catalogue scope, plus one not_applicable row per guide item with no Stripe permission,
    in catalogue order grouped by category."""
    rows = [scope_row(catalogue, profile, s, outcomes.get(s.scope)) for s in catalogue.scopes]
    for item in profile.unmapped():
        rows.append(
            _with_fix(profile, Row(
                category=item.category or item.section or "Guide",
                resource=item.guide,
                scope=None,
                required=item.level,
                granted=None,
                verdict="not_applicable",
                note=item.note,
                guide_item=item.guide,
            ))
        )
    order = {c: i for i, c in enumerate(catalogue.categories())}
    rows.sort(key=lambda r: order.get(r.category, len(order)))  # stable: catalogue order within a category
    return rows


def overall_status(rows: list[Row]) -> Status:
    verdicts = {r.verdict for r in rows}
    if "missing" in verdicts:
        return "failing"
    if "unknown" in verdicts:
        return "incomplete"
    if "excess" in verdicts:
        return "attention"
    return "healthy"


def ok_share(rows: list[Row]) -> float:
    total = got = 0
    for r in rows:
        if r.verdict == "not_applicable":
            continue
        w = REQUIRED_WEIGHT if r.required != "none" else 1
        total += w
        if r.verdict == "ok":
            got += w
    return got / total if total else 0.0


def score(rows: list[Row], status: Status) -> int:
    low, high = SCORE_BANDS[status]
    return low + round((high - low) * ok_share(rows))
