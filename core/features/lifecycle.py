"""A key's lifecycle against the tenant's history, filled in before a check is shown (and recorded).

`apply_history(store, result, tenant, rotation_days=...)` reads what the store knows (the tenant's previous key,
its expected mode, the key's first-seen date, other tenants with the same key) and sets `result.lifecycle`: key
replaced, mode or account changed, a test key on a live tenant, key age and rotation due, one key on several
tenants. The tenant message (built from the result when read) then carries it: rotation due, live key wanted. The
service runs it right after judging a result, whether or not the check is then saved.
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from core.config import DEFAULT_ROTATION_DAYS
from core.engine.result import CheckResult, KeyLifecycle
from core.store.rules import slugify

if TYPE_CHECKING:
    from core.store import Store


def lifecycle_for(
    store: Store, result: CheckResult, tenant: str | None, *, now: datetime | None = None,
    rotation_days: int = DEFAULT_ROTATION_DAYS, known: dict | None = None,
) -> KeyLifecycle:
    """What the history bound to `store` says about this result's key (tenant None: only the key's age). `known`:
    the history already read for this tenant and key (core.store.checks.History.known), else it is read here."""
    lc = KeyLifecycle(rotation_days=rotation_days)
    fp = result.key.fingerprint
    if known is None:
        known = store.key_history(tenant, fp)  # one read of the history
    t = known["tenant"]
    if t is not None:
        lc.expected_mode = t.get("expected_mode")
        prev = known["previous_key"]
        if prev is not None:
            lc.previous_mode, lc.previous_account = prev["key_mode"], prev["account"]
            if fp and prev["key_fingerprint"] != fp:
                lc.replaced = prev["key_masked"]
                lc.mode_changed = bool(prev["key_mode"] and result.key.mode and prev["key_mode"] != result.key.mode)
            if result.account and prev["account"] and prev["account"] != result.account:
                lc.account_changed = True
    if lc.expected_mode and result.key.mode and lc.expected_mode != result.key.mode:
        lc.mode_mismatch = True
    if fp:
        # A key's age starts when Stripe first accepted it: a key Stripe has never accepted has neither a
        # first-seen date nor an age (a refused or unanswered check is no sighting of a working key).
        first = known["first_seen"]
        at = result.checked_at
        accepted = result.status not in ("invalid", "unreachable")
        lc.first_seen_at = (min(first, at) if first else at) if accepted else first
        if lc.first_seen_at is not None:
            ref = now or at
            lc.age_days = max(0, int((ref - lc.first_seen_at).total_seconds() // 86400))
            lc.rotation_due = lc.age_days >= rotation_days and accepted
        if tenant is not None:
            slug = slugify(tenant)
            lc.shared_with = [x["tenant"] for x in known["tenants_with_key"] if x["slug"] != slug]
    return lc


def apply_history(
    store: Store, result: CheckResult, tenant: str | None, *, rotation_days: int = DEFAULT_ROTATION_DAYS,
    known: dict | None = None,
) -> CheckResult:
    """Set result.lifecycle from the history (the tenant message, built when read, then carries it)."""
    result.lifecycle = lifecycle_for(store, result, tenant, rotation_days=rotation_days, known=known)
    return result
