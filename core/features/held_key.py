"""Check the key Pointai holds for a tenant, without anyone pasting it.

The runtime's key source (KEYHEALTH_KEYS_FROM, the command the fleet recheck runs; the demo ships its own) is run
with KEYHEALTH_TENANT=<tenant>, so a source may print just that tenant's line; that tenant's line is taken and its
key checked and recorded through the service with source "key source". The key passes through memory only: it is
never shown, stored or logged (the result carries its masked form, as every check does).

    held = check_held_key(svc, TenantName.parse("Acme Coffee Roasters"))
    held.checked          # the service's Checked, or None
    held.problem          # one sentence when the source is missing, fails, or has no line for the tenant

Every attempt is audited: a check as any check is; a source that could not give the key as action "key_source"
with outcome "failed" and the sentence.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.engine.check import Progress
from core.engine.keys import Intake
from core.features.fleet import SourceError, read_source
from core.store import TenantName, slugify

if TYPE_CHECKING:
    from core.service import Checked, Service

log = logging.getLogger("keyhealth")
SOURCE = "key source"
NOT_CONFIGURED = ("No key source is configured, so there is no key Pointai holds to check; set KEYHEALTH_KEYS_FROM "
                  "to the command that prints tenant,key lines (as for the fleet recheck).")


@dataclass
class HeldCheck:
    tenant: str
    checked: Checked | None = None
    problem: str | None = None  # one sentence: why no check ran
    since: datetime | None = None  # not healthy since: the first check of the current streak of non-healthy checks
    last_healthy: datetime | None = None  # the last healthy check before that streak


def bad_streak(history: Sequence[Mapping[str, Any]]) -> tuple[datetime | None, datetime | None]:
    """(broken since, last healthy) from a tenant's history (newest first): the first check of the current run of
    checks that are not healthy, and the healthy check before it. Unreachable attempts say nothing about the key
    and are skipped. (None, None) when the latest check is healthy or there is none."""
    checks = [h for h in history if h["status"] != "unreachable"]
    if not checks or checks[0]["status"] == "healthy":
        return None, None
    since = None
    for h in checks:
        if h["status"] == "healthy":
            return since, h["checked_at"]
        since = h["checked_at"]
    return since, None


def _same_tenant(a: str, b: str) -> bool:
    return a == b or slugify(a) == slugify(b)


def held_key_available(svc: Service) -> bool:
    """True when this runtime has a key source to ask (the page offers the action only then)."""
    return bool(svc.rt.keys_from)


def held_key(svc: Service, tenant: TenantName) -> tuple[Intake | None, str | None]:
    """(key, None) from the key source for `tenant` (parsed once, where the source's line was read), or (None,
    one sentence) when the source is missing, fails or has no line for the tenant; a failure is audited (action
    "key_source", outcome "failed"). The key stays in memory: the caller checks it and drops it."""
    command = svc.rt.keys_from
    problem: str | None = None
    if not command:
        problem = NOT_CONFIGURED
    else:
        try:
            entries = read_source(command, svc.rt.keys_from_timeout_s, tenant=tenant)
        except SourceError as e:
            problem = str(e)
        else:
            keys = {e.identity: e.key for e in entries if _same_tenant(e.tenant, tenant)}
            if not keys:
                problem = (f"The key source has no line for {tenant}, so Pointai holds no key for it there; "
                           "ask the tenant for their key, or add the tenant to the key source.")
            elif len(keys) > 1:
                problem = (f"The key source printed {len(keys)} different keys for {tenant}; fix the source so it "
                           "prints one line per tenant.")
            else:
                return keys.popitem()[1], None
    try:
        svc.audit("key_source", tenant=tenant, outcome="failed", detail=problem)
    except Exception as e:  # noqa: BLE001 - the sentence is shown either way; only its audit entry is missing
        log.error("auditing a key-source failure failed: %s", type(e).__name__)
    return None, problem


def check_held_key(svc: Service, tenant: TenantName, *, on_progress: Progress | None = None) -> HeldCheck:
    """Run the key source for `tenant`, check its key and record it (source "key source"). Never raises for a
    source that is missing, fails or has no line for the tenant: `problem` says so in one sentence."""
    out = HeldCheck(tenant)
    key, out.problem = held_key(svc, tenant)
    if key is None:
        return out
    out.checked = svc.check(key, tenant, source=SOURCE, on_progress=on_progress)
    del key
    if out.checked.saved:
        try:
            out.since, out.last_healthy = bad_streak(svc.store.tenant_history(tenant, limit=2000))
        except Exception as e:  # noqa: BLE001 - the check stands without its streak
            log.error("reading the streak failed: %s", type(e).__name__)
    return out
