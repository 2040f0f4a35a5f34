"""The pieces the store's read modules share, and the only place they take them from: the table names, the column
lists of a check and its tenant, the "latest check on the tenant row" stand-in (0010), and the tenant lookups.

Store modules import each other's public names only; a private helper two of them need lives here (or is named here:
the tenant lookups and `insert_ignore` / `optional_text` are tenants.py's and rules.py's)."""
from __future__ import annotations

from datetime import date, datetime, timezone
from types import SimpleNamespace

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.store.models import check_rows_t, checks_t, key_events_t, stripe_keys_t, tenants_t
from core.store.rules import optional_text as optional_text
from core.store.tenants import get_tenant_row as get_tenant_row
from core.store.tenants import insert_ignore as insert_ignore
from core.store.tenants import pick as pick
from core.store.tenants import tenant_where as tenant_where

c = checks_t
t = tenants_t
r = check_rows_t
k = stripe_keys_t
e = key_events_t

CHECK_COLUMNS = [
    c.c.id.label("check_id"),
    c.c.checked_at,
    c.c.checked_by,
    c.c.source,
    c.c.key_masked,
    c.c.key_fingerprint,
    c.c.key_kind,
    c.c.key_mode,
    c.c.account,
    c.c.status,
    c.c.score,
    c.c.n_ok,
    c.c.n_missing,
    c.c.n_excess,
    c.c.n_unknown,
    c.c.n_not_applicable,
    c.c.requests,
    c.c.elapsed_s,
    c.c.problem,
    c.c.refused,
    c.c.key_dashboard_id,
]
TENANT_COLUMNS = [
    t.c.id.label("tenant_id"),
    t.c.name.label("tenant"),
    t.c.slug,
    t.c.contact,
    t.c.archived,
    t.c.expected_mode,
]
ROW_COLUMNS = [r.c.category, r.c.resource, r.c.scope, r.c.required, r.c.granted, r.c.verdict, r.c.reason]
# 0015: the latest check's summary and the tenant's streak, on the tenant row (core/store/latest.py)
SUMMARY_COLUMNS = [
    t.c.last_summary.label("summary"),
    t.c.broken_since,
    t.c.last_healthy_at,
    t.c.worse_at,
    t.c.last_account_changed,
]


def utc(at: datetime) -> datetime:
    """`at` as an aware UTC datetime (a naive one is taken as UTC)."""
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


def as_date(v: object) -> date:
    """A day as the backends return it (date, datetime or ISO text) as a date."""
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    return date.fromisoformat(str(v)[:10])


class _OnTenant:
    """The latest check's columns as the tenant row holds them (0010, core/store/latest.py): `.c.status` is
    tenants.last_status, and so on. Stands where the checks table would (`cc` in triage.py) for ordering, filtering
    and counting, so those read the tenant rows only (tenants never checked have last_check_id NULL: callers keep
    them out with HAS_LATEST)."""

    c = SimpleNamespace(
        status=t.c.last_status,
        score=t.c.last_score,
        key_mode=t.c.last_key_mode,
        key_fingerprint=t.c.last_key_fingerprint,
        key_masked=t.c.last_key_masked,
        account=t.c.last_account,
        checked_at=t.c.last_checked_at,
        tenant_id=t.c.id,
    )


ON_TENANT = _OnTenant()
HAS_LATEST = t.c.last_check_id.is_not(None)


def latest_of() -> tuple[sa.Table, _OnTenant]:
    """(FROM clause, latest-check columns): each tenant with the figures of its latest check, read from the tenant
    row itself (0010); no check is read. Callers add HAS_LATEST."""
    return t, ON_TENANT


def latest_base(include_archived: bool) -> tuple[sa.Select, _OnTenant]:
    """SELECT (no columns yet) over the tenants with a latest check, and where its columns come from (the tenant
    row; tests/store/store_oracle.py joins the checks themselves and compares)."""
    froms, cc = latest_of()
    q = sa.select().select_from(froms).where(HAS_LATEST)
    if not include_archived:
        q = q.where(t.c.archived.is_(False))
    return q, cc


def tenant_id(conn: Connection, tenant: str | int) -> int | None:
    """The id of the tenant `tenant` names (see tenants.tenant_where; the exact name wins when a string names
    two), or None. One indexed lookup, so the per-tenant queries then read checks by tenant_id alone."""
    where = tenant_where(tenant)  # refuses a bad name before the database is touched
    if isinstance(tenant, int):
        return tenant
    row = pick(conn.execute(sa.select(t.c.id, t.c.name).where(where)), tenant)
    return None if row is None else int(row._mapping["id"])


__all__ = [
    "CHECK_COLUMNS",
    "HAS_LATEST",
    "ON_TENANT",
    "ROW_COLUMNS",
    "SUMMARY_COLUMNS",
    "TENANT_COLUMNS",
    "as_date",
    "c",
    "e",
    "get_tenant_row",
    "insert_ignore",
    "k",
    "latest_base",
    "latest_of",
    "optional_text",
    "pick",
    "r",
    "t",
    "tenant_id",
    "tenant_where",
    "utc",
]
