"""The tenant key-health history store (SQLite by default, PostgreSQL via DATABASE_URL).

    from core.store import Database, Store
    s = Store(Database(url))                      # or store.at(url); the runtime builds one per database
    s.upgrade()                                   # migrations to head
    check_id = s.record_check(result, "Acme", source="cli", checked_by="ops")
    s.latest_checks(status="failing")             # triage

Every query and write takes the Database as its first argument; a `Store` is that set of functions bound to
one Database, so a caller holding a Store cannot write to another database by forgetting an argument.
Nothing here ever sees the key itself: a check stores KeyInfo.masked and KeyInfo.fingerprint only.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from core.engine.redact import redact
from core.store import audit, checks, fleet, queries, tenants
from core.store.checks import AlertRule, AuditOfCheck, History, Recorded
from core.store.db import Database, connect, current_revision, dispose_engine, get_engine, mask_url, normalize_url
from core.store.errors import DATABASE_ERRORS, DatabaseFailure, DatabaseProblem, classify, guard, is_database_error
from core.store.models import SOURCES, Audit, Check, CheckRow, KeyEvent, StripeKey, Tenant
from core.store.queries import FLAGS, MAX_PAGE_SIZE, PAGE_SIZES
from core.store.rules import UNSET, StoreInputError, UnknownTenantError, same_name, slugify, validate_tenant_name
from core.store.tenants import EXPECTED_MODES

P = ParamSpec("P")
R = TypeVar("R")


class _Bound(Generic[P, R]):
    """A store function seen from a Store: the Database argument is the Store's own."""

    def __init__(self, fn: Callable[Concatenate[Database, P], R]):
        self.fn = fn
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    @overload
    def __get__(self, obj: None, owner: type) -> _Bound[P, R]: ...
    @overload
    def __get__(self, obj: Store, owner: type) -> Callable[P, R]: ...
    def __get__(self, obj: Store | None, owner: type) -> Any:
        if obj is None:
            return self
        return functools.partial(self.fn, obj.db)


class Store:
    """The store's queries and writes, bound to one Database."""

    def __init__(self, db: Database):
        self.db = db

    def __repr__(self) -> str:
        return f"Store({self.db.label!r})"

    @property
    def label(self) -> str:
        return self.db.label

    def upgrade(self, revision: str = "head") -> None:
        self.db.upgrade(revision)

    def current_revision(self) -> str | None:
        return self.db.current_revision()

    # writes
    get_or_create_tenant = _Bound(tenants.get_or_create_tenant)
    update_tenant = _Bound(tenants.update_tenant)
    record_check = _Bound(checks.record_check)
    record_checked = _Bound(checks.record_checked)
    check_history = _Bound(checks.check_history)
    record_audit = _Bound(audit.record_audit)
    # reads
    get_tenant = _Bound(tenants.get_tenant)
    name_clash = _Bound(tenants.name_clash)
    list_tenants = _Bound(tenants.list_tenants)
    tenant_names = _Bound(queries.tenant_names)
    list_audit = _Bound(audit.list_audit)
    latest_checks = _Bound(queries.latest_checks)
    count_latest = _Bound(queries.count_latest)
    latest_page = _Bound(queries.latest_page)
    latest_status_counts = _Bound(queries.latest_status_counts)
    tenant_history = _Bound(queries.tenant_history)
    get_check = _Bound(queries.get_check)
    drift = _Bound(queries.drift)
    status_mix_per_day = _Bound(queries.status_mix_per_day)
    checks_per_day = _Bound(queries.checks_per_day)
    status_counts = _Bound(queries.status_counts)
    score_distribution = _Bound(queries.score_distribution)
    top_problem_scopes = _Bound(queries.top_problem_scopes)
    stale_tenants = _Bound(queries.stale_tenants)
    last_accepted_check = _Bound(queries.last_accepted_check)
    # fleet runs and alerts (core/store/fleet.py)
    start_run = _Bound(fleet.start_run)
    last_unfinished_run = _Bound(fleet.last_unfinished_run)
    get_run = _Bound(fleet.get_run)
    list_runs = _Bound(fleet.list_runs)
    add_run_items = _Bound(fleet.add_items)
    done_slugs = _Bound(fleet.done_slugs)
    claim_run_items = _Bound(fleet.claim_items)
    release_run_items = _Bound(fleet.release_items)
    finish_run_item = _Bound(fleet.finish_item)
    settle_checked_run_items = _Bound(fleet.settle_checked_items)
    add_rate_limited = _Bound(fleet.add_rate_limited)
    summarise_run = _Bound(fleet.summarise_run)
    run_items = _Bound(fleet.run_items)
    add_alert = _Bound(fleet.add_alert)
    get_alert = _Bound(fleet.get_alert)
    pending_alerts = _Bound(fleet.pending_alerts)
    mark_alert_delivery = _Bound(fleet.mark_delivery)
    open_alerts = _Bound(fleet.open_alerts)
    ack_alert = _Bound(fleet.ack_alert)
    # key lifecycle (0006)
    key_events = _Bound(queries.key_events)
    key_first_seen = _Bound(queries.key_first_seen)
    tenants_with_key = _Bound(queries.tenants_with_key)
    shared_keys = _Bound(queries.shared_keys)
    previous_key = _Bound(queries.previous_key)
    key_history = _Bound(queries.key_history)
    lifecycle_counts = _Bound(queries.lifecycle_counts)
    replaced_tenants = _Bound(queries.replaced_tenants)
    unreachable_share = _Bound(queries.unreachable_share)


def at(url: str) -> Store:
    """A Store for the database at `url` (scripts, tests and benchmarks; the app builds its own)."""
    return Store(Database(url))


__all__ = [
    "DATABASE_ERRORS",
    "EXPECTED_MODES",
    "FLAGS",
    "MAX_PAGE_SIZE",
    "PAGE_SIZES",
    "SOURCES",
    "UNSET",
    "AlertRule",
    "AuditOfCheck",
    "History",
    "Recorded",
    "Audit",
    "Check",
    "CheckRow",
    "Database",
    "DatabaseFailure",
    "DatabaseProblem",
    "KeyEvent",
    "Store",
    "StoreInputError",
    "StripeKey",
    "Tenant",
    "UnknownTenantError",
    "at",
    "classify",
    "connect",
    "current_revision",
    "dispose_engine",
    "get_engine",
    "guard",
    "is_database_error",
    "mask_url",
    "normalize_url",
    "redact",
    "same_name",
    "slugify",
    "validate_tenant_name",
]
