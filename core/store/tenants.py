"""Tenants in the store: finding one by name, slug or id, creating it (refusing a name too close to another
tenant's), listing, searching and changing it, and locking its row for a writer (input rules: core.store.rules).
"""
from __future__ import annotations

import re
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from core.engine.redact import redact  # the one redaction step (re-exported: core.store.redact)
from core.store import latest, rollup
from core.store.confusable import look_alike
from core.store.db import Database
from core.store.models import (
    checks_t,
    tenants_t,
)
from core.store.names import TenantName
from core.store.rows import TenantListRow, TenantRow
from core.store.rules import (
    UNSET,
    StoreInputError,
    UnknownTenantError,
    clash_error,
    full_slug,
    legacy_slug,
    look_alike_error,
    optional_text,
    same_name,
    slugify,
)
from core.store.types import utcnow
from core.text import clean_text


def insert_ignore(conn: Connection, table: sa.Table, values: dict | list[dict], index_elements: list[str]) -> None:
    """INSERT … ON CONFLICT (index_elements) DO NOTHING of one row, or of many in one executemany (SQLAlchemy sends
    them in batches of multi-row VALUES: a run of 20,000 tenants is a few statements, not 20,000 compiled ones)."""
    name = conn.dialect.name
    stmt: sa.Insert
    if name == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing(index_elements=index_elements)
    elif name == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=index_elements)
    else:  # other backends: plain insert, unique violation handled by the caller's retry
        stmt = table.insert()
    if isinstance(values, dict):
        conn.execute(stmt.values(**values))
    elif values:
        conn.execute(stmt, values)


def _tenant_dict(row: Any) -> TenantRow:
    return cast(TenantRow, dict(row._mapping))


TENANT_COLS = [
    tenants_t.c.id,
    tenants_t.c.name,
    tenants_t.c.slug,
    tenants_t.c.account,
    tenants_t.c.contact,
    tenants_t.c.notes,
    tenants_t.c.archived,
    tenants_t.c.created_at,
    tenants_t.c.last_check_id,
    tenants_t.c.last_checked_at,
    tenants_t.c.expected_mode,
    # 0015: the latest check's short problem and the tenant's bad streak (core/store/latest.py)
    tenants_t.c.last_summary,
    tenants_t.c.broken_since,
    tenants_t.c.last_healthy_at,
]
EXPECTED_MODES: tuple[str, ...] = ("live", "test")


def tenant_where(tenant: str | int):
    """Rows that `tenant` can name: the id; or the exact name, or the name's slug (a slug names itself).

    A string can match two rows (the migration to Unicode slugs left a tenant on its old slug where its new
    one was taken): `pick` prefers the exact name."""
    if isinstance(tenant, bool) or not isinstance(tenant, (str, int)):
        raise StoreInputError("A tenant is named by its name, its slug or its id; give one of those.")
    if isinstance(tenant, int):
        return tenants_t.c.id == tenant
    clean = TenantName.parse(tenant)
    slugs = {slugify(clean), legacy_slug(clean)}
    return sa.or_(tenants_t.c.slug.in_(sorted(slugs)), tenants_t.c.name == clean)


def pick(rows, tenant: str | int):
    """The row `tenant` names among `rows` (see tenant_where): the exact name wins over the slug."""
    rows = list(rows)
    if len(rows) > 1 and isinstance(tenant, str):
        exact = [r for r in rows if r._mapping["name"] == tenant.strip()]
        if exact:
            return exact[0]
    return rows[0] if rows else None


def get_tenant_row(conn: Connection, tenant: str | int) -> TenantRow | None:
    row = pick(conn.execute(sa.select(*TENANT_COLS).where(tenant_where(tenant))), tenant)
    return _tenant_dict(row) if row else None


def _require_tenant(conn: Connection, tenant: str | int) -> TenantRow:
    found = get_tenant_row(conn, tenant)
    if found is None:
        raise UnknownTenantError(f"There is no tenant named {tenant!r}; check the spelling or add it first.")
    return found


def _matching(conn: Connection, clean: str, slug: str, *, new: bool = True) -> TenantRow | None:
    """The tenant `clean` names (exact name, else its slug), or None; StoreInputError when the slug is
    another tenant's whose name is not a spelling of this one (nothing is merged silently), or when `clean`
    names no tenant yet (`new`) and looks the same on screen as an existing one (TR39 skeletons)."""
    slugs = sorted({slug, legacy_slug(clean)})
    rows = conn.execute(
        sa.select(*TENANT_COLS).where(sa.or_(tenants_t.c.name == clean, tenants_t.c.slug.in_(slugs)))
    ).all()
    exact = [r for r in rows if r._mapping["name"] == clean]
    if exact:
        return _tenant_dict(exact[0])
    for row in rows:
        found = _tenant_dict(row)
        if same_name(found["name"], clean):
            return found
        if full_slug(found["name"]) == full_slug(clean):  # the same letters and digits: punctuation only
            raise clash_error(found["name"], clean)
        # else a slug cut at 100 characters before 17.7 (a legacy slug) that this name shares by accident
    if new:
        alike = look_alike_tenant(conn, clean)
        if alike is not None and (same_name(alike, clean) or full_slug(alike) == full_slug(clean)):
            # Another writer created this name's tenant between the two reads (PostgreSQL reads each statement
            # at its own snapshot): it is the tenant itself (or a punctuation clash), not a look-alike of it.
            return _matching(conn, clean, slug, new=False)
        if alike is not None:
            raise look_alike_error(alike, clean)
    return None


def look_alike_tenant(conn: Connection, clean: str) -> str | None:
    """The name of an existing tenant that reads the same as `clean` on screen, or None. Every name is read
    (one indexed column); their skeletons are cached per process, so this costs a dictionary look-up per
    tenant after the first time."""
    for (existing,) in conn.execute(sa.select(tenants_t.c.name).order_by(tenants_t.c.id)):
        if look_alike(existing, clean):
            return str(existing)
    return None


def get_or_create(conn: Connection, name: str) -> TenantRow:
    clean = TenantName.parse(name)
    slug = slugify(clean)
    found = _matching(conn, clean, slug)
    if found is None:
        insert_ignore(
            conn,
            tenants_t,
            {"name": clean, "slug": slug, "archived": False, "created_at": utcnow()},
            ["slug"],
        )
        found = _matching(conn, clean, slug, new=False)  # another process may have created a clashing name
    assert found is not None
    return found


def get_or_create_tenant(db: Database, name: str) -> TenantRow:
    """The tenant called `name` (its exact name, or another spelling of it), created if new.

    Raises StoreInputError on a bad name, or on a name whose slug another tenant has (see `same_name`)."""
    TenantName.parse(name)
    with db.connect(write=True) as conn:
        return get_or_create(conn, name)


def name_clash(db: Database, name: str) -> str | None:
    """The sentence refusing `name` as a new tenant because it is too close to an existing one, or None
    (the name is free, or it names an existing tenant). For asking before work that ends in recording."""
    clean = TenantName.parse(name)
    with db.connect() as conn:
        try:
            _matching(conn, clean, slugify(clean))
        except StoreInputError as e:
            return str(e)
    return None


def get_tenant(db: Database, tenant: str | int) -> TenantRow | None:
    """The tenant by name, slug or id, or None."""
    tenant_where(tenant)  # a bad name is refused before the database is touched
    with db.connect() as conn:
        return get_tenant_row(conn, tenant)


def list_tenants(db: Database, *, include_archived: bool = False, search: str | None = None
) -> list[TenantListRow]:
    """Tenants by name, each with its latest check's status and score (None if never checked)."""
    c = checks_t
    q = (
        sa.select(*TENANT_COLS, c.c.status.label("last_status"), c.c.score.label("last_score"))
        .select_from(tenants_t.outerjoin(c, c.c.id == tenants_t.c.last_check_id))
        .order_by(sa.func.lower(tenants_t.c.name), tenants_t.c.id)
    )
    if not include_archived:
        q = q.where(tenants_t.c.archived.is_(False))
    if search and search.strip():
        q = q.where(tenant_search(search))
    with db.connect() as conn:
        return [cast(TenantListRow, dict(r._mapping)) for r in conn.execute(q)]


def like_pattern(search: str) -> str:
    """A case-insensitive LIKE pattern (use with escape='\\\\' and a lower()ed column)."""
    s = search.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{s}%"


def tenant_search(search: str, *extra_columns) -> sa.ColumnElement:
    """Case-insensitive substring match on a tenant's name, slug, account or contact (and `extra_columns`)."""
    pat = like_pattern(search)
    t = tenants_t
    columns = [t.c.name, t.c.slug, t.c.account, t.c.contact, *extra_columns]
    return sa.or_(*(sa.func.lower(col).like(pat, escape="\\") for col in columns))


def _clean_account(account: object) -> str | None:
    acct = optional_text(account, "Stripe account id", 64)
    if acct is not None and not re.fullmatch(r"acct_[A-Za-z0-9]{1,59}", acct):
        raise StoreInputError(
            "The Stripe account id is not of the form acct_ and letters or digits; copy it from Stripe."
        )
    return acct


def _clean_notes(notes: object) -> str | None:
    """The notes as stored: trimmed, at most 5000 characters of plain text (line breaks and tabs kept), redacted;
    None when empty."""
    n = clean_text(notes, what="notes", limit=5000, multiline=True, plural=True, error=StoreInputError)
    return (redact(n) or None) if n is not None else None


def _clean_archived(archived: object) -> bool:
    if not isinstance(archived, bool):
        raise StoreInputError("archived must be true or false.")
    return archived


def _clean_expected_mode(expected_mode: str | None) -> str | None:
    if expected_mode is not None and expected_mode not in EXPECTED_MODES:
        raise StoreInputError("The expected mode must be 'live', 'test' or empty (not said); use one of those.")
    return expected_mode


def _tenant_changes(name: Any, account: Any, contact: Any, notes: Any, archived: Any,
                    expected_mode: Any) -> dict[str, Any]:
    """The checked column values for the fields given (UNSET: not given); bad input raises StoreInputError."""
    values: dict[str, Any] = {}
    if name is not UNSET:
        clean = TenantName.parse(name)
        values["name"] = clean
        values["slug"] = slugify(clean)
    if account is not UNSET:
        values["account"] = _clean_account(account)
    if contact is not UNSET:
        values["contact"] = optional_text(contact, "contact", 200)
    if notes is not UNSET:
        values["notes"] = _clean_notes(notes)
    if archived is not UNSET:
        values["archived"] = _clean_archived(archived)
    if expected_mode is not UNSET:
        values["expected_mode"] = _clean_expected_mode(expected_mode)
    return values


def update_tenant(db: Database, tenant: str | int,
    *,
    name: str = UNSET,
    account: str | None = UNSET,
    contact: str | None = UNSET,
    notes: str | None = UNSET,
    archived: bool = UNSET,
    expected_mode: str | None = UNSET,
) -> TenantRow:
    """Change the given fields of a tenant (by name, slug or id); returns the tenant after the change.

    Renaming changes the slug; renaming onto another tenant's slug is refused. Empty text clears a field.
    """
    values = _tenant_changes(name, account, contact, notes, archived, expected_mode)
    with db.connect(write=True) as conn:
        current = _require_tenant(conn, tenant)
        was_archived = _lock_tenant(conn, current["id"]) if "archived" in values else current["archived"]
        if "slug" in values and values["slug"] != current["slug"]:
            clash = conn.execute(
                sa.select(tenants_t.c.name).where(tenants_t.c.slug == values["slug"])
                .where(tenants_t.c.id != current["id"])
            ).first()
            if clash:
                raise StoreInputError(
                    f"Another tenant, {clash.name!r}, already has that name or one too close to it; choose a "
                    "different name."
                )
        if values:
            conn.execute(tenants_t.update().where(tenants_t.c.id == current["id"]).values(**values))
        if "archived" in values and values["archived"] != was_archived:  # the fleet rollup splits by the flag
            rollup.move_tenant(conn, current["id"], archived_from=was_archived, archived_to=values["archived"])
            latest.move_tenant(conn, current["id"], archived_from=was_archived, archived_to=values["archived"])
        return _require_tenant(conn, current["id"])


def _lock_tenant(conn: Connection, tenant_id: int) -> bool:
    """Lock the tenant's row until the transaction ends (PostgreSQL: SELECT … FOR UPDATE; SQLite writers hold
    the database's write lock already) and return its archived flag as of the lock. Writers that keep the
    fleet rollup take it first, so one tenant's checks and archive changes are counted one after the other."""
    return _lock_tenant_latest(conn, tenant_id)[0]


def _lock_tenant_latest(conn: Connection, tenant_id: int) -> tuple[bool, int | None]:
    """_lock_tenant, also returning the tenant's latest-check pointer as of the lock (one round trip)."""
    archived, last = conn.execute(
        sa.select(tenants_t.c.archived, tenants_t.c.last_check_id).where(tenants_t.c.id == tenant_id)
        .with_for_update()
    ).one()
    return bool(archived), last


def lock_tenant_state(conn: Connection, tenant_id: int) -> Any:
    """_lock_tenant, returning the tenant's archived flag, latest-check pointer, its copy of the latest check's
    figures (0010) and streak (0015) as of the lock (one round trip)."""
    tc = tenants_t.c
    return conn.execute(
        sa.select(tc.archived, tc.last_check_id, tc.last_checked_at, tc.last_status, tc.broken_since,
                  tc.last_healthy_at, tc.worse_at, tc.last_key_fingerprint, tc.last_account, tc.last_score,
                  tc.last_key_masked, tc.last_key_mode)
        .where(tc.id == tenant_id).with_for_update()
    ).one()

