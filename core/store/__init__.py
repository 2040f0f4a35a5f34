"""The tenant key-health history store (SQLite by default, PostgreSQL via DATABASE_URL).

    from core.store import Database, Store
    s = Store(Database(url))                      # or store.at(url); the runtime builds one per database
    s.upgrade()                                   # migrations to head
    check_id = s.record_check(result, "Acme", source="cli", checked_by="ops")
    s.latest_checks(status="failing")             # triage

A `Store` is the queries and writes over one Database (a class per concern, docs/store.md), so a caller holding
a Store cannot write to another database by forgetting an argument.
Nothing here ever sees the key itself: a check stores KeyInfo.masked and KeyInfo.fingerprint only.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from core.engine.redact import redact
from core.engine.result import CheckResult
from core.store import audit as audit_trail
from core.store import checks, tenants
from core.store.alerts import AlertQueries
from core.store.checks import AlertRule, AuditOfCheck, History, Recorded
from core.store.db import Database, connect, current_revision, dispose_engine, get_engine, mask_url, normalize_url
from core.store.errors import DATABASE_ERRORS, DatabaseFailure, DatabaseProblem, classify, guard, is_database_error
from core.store.figures import FigureQueries
from core.store.history import HistoryQueries
from core.store.models import SOURCES, Audit, Check, CheckRow, KeyEvent, StripeKey, Tenant
from core.store.name_queries import NameQueries
from core.store.names import TenantName
from core.store.rows import AuditRow, TenantListRow, TenantRow
from core.store.rules import UNSET, StoreInputError, UnknownTenantError, same_name, slugify, validate_tenant_name
from core.store.runs import RunQueries
from core.store.tenants import EXPECTED_MODES
from core.store.triage import FLAGS, MAX_PAGE_SIZE, PAGE_SIZES, TriageQueries


class Store(TriageQueries, HistoryQueries, FigureQueries, NameQueries, RunQueries, AlertQueries):
    """The store's queries and writes, bound to one Database.

    Each concern's reads live in its own module as a class of methods (triage.py, history.py, figures.py,
    names.py, runs.py, alerts.py: docs/store.md); Store is those classes over one Database, so a new query is
    written once, in its module. The tenant, check and audit writes and reads below are tenants.py's, checks.py's
    and audit.py's functions with this Store's Database."""

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

    # tenants, checks and audit (core/store/tenants.py, checks.py, audit.py)
    def get_or_create_tenant(self, name: str) -> TenantRow:
        return tenants.get_or_create_tenant(self.db, name)

    def update_tenant(self, tenant: str | int, *, name: str = UNSET, account: str | None = UNSET,
                      contact: str | None = UNSET, notes: str | None = UNSET, archived: bool = UNSET,
                      expected_mode: str | None = UNSET) -> TenantRow:
        return tenants.update_tenant(self.db, tenant, name=name, account=account, contact=contact, notes=notes,
                                     archived=archived, expected_mode=expected_mode)

    def record_check(self, result: CheckResult, tenant: str, *, source: str, checked_by: str | None) -> int:
        return checks.record_check(self.db, result, tenant, source=source, checked_by=checked_by)

    def record_checked(self, result: CheckResult, tenant: str, *, source: str, checked_by: str | None,
                       audit: AuditOfCheck | None = None, alert: AlertRule | None = None,
                       history: History | None = None, run_item: int | None = None) -> Recorded:
        return checks.record_checked(self.db, result, tenant, source=source, checked_by=checked_by, audit=audit,
                                     alert=alert, history=history, run_item=run_item)

    def check_history(self, tenant: str, fingerprint: str | None, *, clash: bool = True) -> History:
        return checks.check_history(self.db, tenant, fingerprint, clash=clash)

    def record_audit(self, action: str, *, who: str | None = None, tenant: str | None = None, outcome: str = "ok",
                     detail: str | None = None, at: datetime | None = None) -> int:
        return audit_trail.record_audit(self.db, action, who=who, tenant=tenant, outcome=outcome, detail=detail,
                                        at=at)

    def get_tenant(self, tenant: str | int) -> TenantRow | None:
        return tenants.get_tenant(self.db, tenant)

    def name_clash(self, name: str) -> str | None:
        return tenants.name_clash(self.db, name)

    def list_tenants(self, *, include_archived: bool = False, search: str | None = None) -> list[TenantListRow]:
        return tenants.list_tenants(self.db, include_archived=include_archived, search=search)

    def list_audit(self, *, tenant: str | int | None = None, action: str | Iterable[str] | None = None,
                   who: str | None = None, outcome: str | None = None, since: datetime | None = None,
                   until: datetime | None = None, limit: int | None = 500, who_contains: str | None = None,
                   tenant_contains: str | None = None) -> list[AuditRow]:
        return audit_trail.list_audit(self.db, tenant=tenant, action=action, who=who, outcome=outcome,
                                      since=since, until=until, limit=limit, who_contains=who_contains,
                                      tenant_contains=tenant_contains)


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
    "TenantName",
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
