"""A key's history, read before its check is assembled (one result, built once).

`read_history(store_of, info, tenant, refused=..., rotation_days=...)` reads what the store knows, once: the
tenant's previous key and expected mode, the key's first-seen date and the other tenants with the same key
(Store.key_history, one read transaction), and for a key Stripe refuses as invalid when Stripe last accepted it
(Store.last_accepted_check). It hands back plain facts (core.engine.history.History) that
core.engine.check.assemble turns into the result's lifecycle (key replaced, mode or account changed, a test key
on a live tenant, key age and rotation due, one key on several tenants) and a "revoked" refusal, before the tenant
message is built. The service passes it to every check, whether or not the check is then saved.

A history that cannot be read leaves the result as the engine makes it: no lifecycle (the key's history), or no
"revoked" (the refusal stands as Stripe worded it); saving the check then says what is wrong.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from core.config import DEFAULT_ROTATION_DAYS
from core.engine.history import History, KeyFacts, PreviousKey
from core.engine.result import KeyInfo
from core.store import DATABASE_ERRORS
from core.store.rules import slugify

if TYPE_CHECKING:
    from core.store import Store

log = logging.getLogger("keyhealth")


def key_facts(known: dict, tenant: str | None, *, rotation_days: int = DEFAULT_ROTATION_DAYS) -> KeyFacts:
    """Store.key_history's answer as the facts assemble takes (the tenant's own name left out of shared_with)."""
    t = known["tenant"]
    prev = known["previous_key"] if t is not None else None
    slug = slugify(tenant) if tenant is not None else None
    return KeyFacts(
        rotation_days=rotation_days,
        tenant_known=t is not None,
        expected_mode=t.get("expected_mode") if t is not None else None,
        previous=PreviousKey(prev["key_fingerprint"], prev["key_masked"], prev["key_mode"], prev["account"])
        if prev is not None else None,
        first_seen=known["first_seen"],
        shared_with=tuple(x["tenant"] for x in known["tenants_with_key"] if x["slug"] != slug)
        if tenant is not None else (),
    )


def read_history(store_of: Callable[[], Store], info: KeyInfo, tenant: str | None, *, refused: str | None,
                 rotation_days: int = DEFAULT_ROTATION_DAYS, known: dict | None = None) -> History:
    """The history facts of the key `info` for `tenant` (None: only the key's age), read once before the check's
    result is assembled. `refused`: how Stripe refused the key (None: it did not); only an "invalid" refusal
    asks when Stripe last accepted this very key (a revoked key answers like a mistyped one). `store_of` gives
    the store (the runtime's is migrated on first use, which can fail like any read). `known`: the key's history
    as already read for this tenant and key (core.store.checks.History.known, Store.key_history's shape), else it
    is read here."""
    accepted_before = None
    if refused == "invalid" and info.fingerprint:
        try:
            earlier = store_of().last_accepted_check(info.fingerprint)
            accepted_before = earlier["checked_at"] if earlier else None
        except DATABASE_ERRORS as e:  # no history to judge by: the refusal stands; saving it says what is wrong
            log.error("judging against history failed: %s", type(e).__name__)
    try:
        if known is None:
            known = store_of().key_history(tenant, info.fingerprint)
        facts: KeyFacts | None = key_facts(known, tenant, rotation_days=rotation_days)
    except Exception as e:  # noqa: BLE001 - the check stands without the history's view of it
        log.error("reading the key's history failed: %s", type(e).__name__)
        facts = None
    return History(key=facts, accepted_before=accepted_before)
