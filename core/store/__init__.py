"""The tenant key-health history store (SQLite by default, PostgreSQL via DATABASE_URL).

    from core import store
    store.upgrade()                                   # once at start: migrations to head
    check_id = store.record_check(result, "Acme", source="cli", checked_by="ops")
    store.latest_checks(status="failing")             # triage

Nothing here ever sees the key itself: a check stores KeyInfo.masked and KeyInfo.fingerprint only.
"""
from core.store.db import connect, current_revision, dispose_engine, get_engine, normalize_url, session, upgrade
from core.store.models import SOURCES, Audit, Check, CheckRow, Tenant
from core.store.queries import (
    checks_per_day,
    drift,
    get_check,
    last_accepted_check,
    latest_checks,
    score_distribution,
    stale_tenants,
    status_counts,
    status_mix_per_day,
    tenant_history,
    top_problem_scopes,
)
from core.store.record import (
    UNSET,
    StoreInputError,
    UnknownTenantError,
    get_or_create_tenant,
    get_tenant,
    list_audit,
    list_tenants,
    record_audit,
    record_check,
    redact,
    slugify,
    update_tenant,
    validate_tenant_name,
)

__all__ = [
    "Audit",
    "Check",
    "CheckRow",
    "SOURCES",
    "StoreInputError",
    "Tenant",
    "UNSET",
    "UnknownTenantError",
    "checks_per_day",
    "connect",
    "current_revision",
    "dispose_engine",
    "drift",
    "get_check",
    "get_engine",
    "get_or_create_tenant",
    "get_tenant",
    "last_accepted_check",
    "latest_checks",
    "list_audit",
    "list_tenants",
    "normalize_url",
    "record_audit",
    "record_check",
    "redact",
    "score_distribution",
    "session",
    "slugify",
    "stale_tenants",
    "status_counts",
    "status_mix_per_day",
    "tenant_history",
    "top_problem_scopes",
    "update_tenant",
    "upgrade",
    "validate_tenant_name",
]
