"""What a tenant's history says about a key, read BEFORE its CheckResult is assembled (one result, built once).

The service reads the history facts (core.features.lifecycle.read_history: the store's key_history and, for a key
Stripe refuses as invalid, when Stripe last accepted it) and hands them to `core.engine.check.assemble`, which
turns them into the result's lifecycle and, for a key accepted before, names the refusal "revoked". Nothing here
reads a database: these are plain values, so the engine stays apart from the store.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.engine.result import KeyInfo, KeyLifecycle, Status


@dataclass(frozen=True)
class PreviousKey:
    """The tenant's previous key, as its newest check recorded it."""

    fingerprint: str | None
    masked: str | None
    mode: str | None
    account: str | None


@dataclass(frozen=True)
class KeyFacts:
    """What the store knows about a key and its tenant before the check (core.store key_history)."""

    rotation_days: int
    tenant_known: bool = False  # the tenant is in the store (else: no expected mode and no previous key)
    expected_mode: str | None = None
    previous: PreviousKey | None = None
    first_seen: datetime | None = None  # when Stripe first accepted this key, for any tenant
    shared_with: tuple[str, ...] = ()  # other tenants this very key was recorded for


@dataclass(frozen=True)
class History:
    """The history facts `assemble` takes. `key` None: the history could not be read (the result then has no
    lifecycle, as the engine made it). `accepted_before`: when Stripe last accepted this very key, if ever."""

    key: KeyFacts | None = None
    accepted_before: datetime | None = None


def lifecycle_of(facts: KeyFacts, info: KeyInfo, *, account: str | None, status: Status,
                 checked_at: datetime, now: datetime | None = None) -> KeyLifecycle:
    """The key's lifecycle from the history facts and what the check found (account, status, when)."""
    lc = KeyLifecycle(rotation_days=facts.rotation_days)
    fp = info.fingerprint
    if facts.tenant_known:
        lc.expected_mode = facts.expected_mode
        prev = facts.previous
        if prev is not None:
            lc.previous_mode, lc.previous_account = prev.mode, prev.account
            if fp and prev.fingerprint != fp:
                lc.replaced = prev.masked
                lc.mode_changed = bool(prev.mode and info.mode and prev.mode != info.mode)
            if account and prev.account and prev.account != account:
                lc.account_changed = True
    if lc.expected_mode and info.mode and lc.expected_mode != info.mode:
        lc.mode_mismatch = True
    if fp:
        # A key's age starts when Stripe first accepted it: a key Stripe has never accepted has neither a
        # first-seen date nor an age (a refused or unanswered check is no sighting of a working key).
        first = facts.first_seen
        accepted = status not in ("invalid", "unreachable")
        lc.first_seen_at = (min(first, checked_at) if first else checked_at) if accepted else first
        if lc.first_seen_at is not None:
            ref = now or checked_at
            lc.age_days = max(0, int((ref - lc.first_seen_at).total_seconds() // 86400))
            lc.rotation_due = lc.age_days >= facts.rotation_days and accepted
        lc.shared_with = list(facts.shared_with)
    return lc


def revoked_problem(accepted_before: datetime) -> str:
    """Stripe answers a revoked key exactly like a mistyped one (401 "Invalid API Key"); history tells them apart:
    the problem for support of a key Stripe accepted on `accepted_before` and refuses now."""
    when = accepted_before.strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Stripe accepted this key on {when} but refuses it now, so it has been revoked or deleted in the "
        "Stripe Dashboard; ask the tenant to create a new restricted key and paste it."
    )
