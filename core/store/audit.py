"""The audit trail: appending entries (alone, or inside a check's transaction) and reading them back."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.engine.redact import redact  # the one redaction step (re-exported: core.store.redact)
from core.store.db import Database
from core.store.models import (
    NAME_MAX,
    audit_t,
    tenants_t,
)
from core.store.names import TenantName
from core.store.rows import AuditRow
from core.store.rules import (
    ACTION_RE,
    OUTCOME_RE,
    StoreInputError,
    aware,
    optional_text,
    same_name,
)
from core.store.tenants import TENANT_COLS, pick, tenant_where


def audit_values(action: str, *, who: str | None, outcome: str, detail: str | None,
                  at: datetime | None) -> dict:
    """An audit entry's columns (but its tenant), checked: StoreInputError names what is wrong."""
    if not isinstance(action, str) or not ACTION_RE.match(action):
        raise StoreInputError(
            f"The audit action {action!r} is not a short lower-case word (e.g. 'check', 'view'); use one."
        )
    if not isinstance(outcome, str) or not OUTCOME_RE.match(outcome):
        raise StoreInputError(f"The audit outcome {outcome!r} is not a short lower-case word (e.g. 'ok'); use one.")
    who_ = optional_text(who, "user name", NAME_MAX)
    if detail is not None and not isinstance(detail, str):
        raise StoreInputError("The audit detail must be text.")
    return {"at": aware(at), "who": who_, "action": action, "outcome": outcome,
            "detail": redact(detail[:5000]) if detail else None}


def insert_audit(conn: Connection, values: dict) -> int:
    """One audit entry (`audit_values` plus tenant_id and tenant), in the caller's transaction; its id."""
    pk = conn.execute(audit_t.insert().values(**values)).inserted_primary_key
    assert pk is not None
    return int(pk[0])


def record_audit(db: Database, action: str,
    *,
    who: str | None = None,
    tenant: str | None = None,
    outcome: str = "ok",
    detail: str | None = None,
    at: datetime | None = None,
) -> int:
    """Append one audit entry; returns its id. `tenant` is a name (not created if unknown: kept as text)."""
    values = audit_values(action, who=who, outcome=outcome, detail=detail, at=at)
    tenant_name = TenantName.parse(tenant) if tenant is not None else None
    with db.connect(write=True) as conn:
        tenant_id = None
        if tenant_name is not None:
            found = pick(conn.execute(sa.select(*TENANT_COLS).where(tenant_where(tenant_name))), tenant_name)
            if found is not None and (found._mapping["name"] == tenant_name
                                      or same_name(found._mapping["name"], tenant_name)):
                tenant_id = found._mapping["id"]
        return insert_audit(conn, {**values, "tenant_id": tenant_id, "tenant": tenant_name})


def list_audit(db: Database, *,
    tenant: str | int | None = None,
    action: str | Iterable[str] | None = None,
    who: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = 500,
    who_contains: str | None = None,
    tenant_contains: str | None = None,
) -> list[AuditRow]:
    """Audit entries matching every given filter, newest first.

    `tenant` matches the tenant (by name, slug or id) and also entries whose tenant text has that slug.
    `who_contains` / `tenant_contains` match a case-insensitive substring ("ana" finds "Ana@…"; % and _ are
    plain characters). `since` is inclusive, `until` exclusive.
    """
    a = audit_t
    q = sa.select(
        a.c.id,
        a.c.at,
        a.c.who,
        a.c.action,
        a.c.tenant_id,
        sa.func.coalesce(tenants_t.c.name, a.c.tenant).label("tenant"),
        a.c.outcome,
        a.c.detail,
    ).select_from(a.outerjoin(tenants_t, tenants_t.c.id == a.c.tenant_id))
    if tenant is not None:
        if isinstance(tenant, int) and not isinstance(tenant, bool):
            q = q.where(a.c.tenant_id == tenant)
        else:
            name = TenantName.parse(tenant)
            q = q.where(sa.or_(tenant_where(name), sa.func.lower(a.c.tenant) == name.lower()))
    if action is not None:
        q = q.where(a.c.action == action) if isinstance(action, str) else q.where(a.c.action.in_(list(action)))
    if who is not None:
        q = q.where(a.c.who == who)
    if who_contains:
        q = q.where(sa.func.lower(a.c.who).contains(who_contains.lower(), autoescape=True))
    if tenant_contains:
        q = q.where(sa.func.lower(sa.func.coalesce(tenants_t.c.name, a.c.tenant)).contains(
            tenant_contains.lower(), autoescape=True))
    if outcome is not None:
        q = q.where(a.c.outcome == outcome)
    if since is not None:
        q = q.where(a.c.at >= aware(since))
    if until is not None:
        q = q.where(a.c.at < aware(until))
    q = q.order_by(a.c.at.desc(), a.c.id.desc())
    if limit is not None:
        q = q.limit(int(limit))
    with db.connect() as conn:
        return [cast(AuditRow, dict(r._mapping)) for r in conn.execute(q)]
