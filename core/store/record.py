"""Writing to the store: tenants, checks (with their rows) and the audit trail.

Tenant names are user input: `validate_tenant_name` is the one gate (non-empty after strip, at most 100
characters, no control, invisible or text-direction characters). The tenant's slug is derived from its
name (`slugify`: Unicode letters and digits kept, NFKC and case-folded, everything else a dash), so
"北京 Foods", "上海 Foods" and "Foods" are three tenants, and "Acme Inc." and "ACME  inc." (the same name in
another case or spacing) are one. Two names that differ in more than that but still share a slug ("Acme Inc."
and "ACME, INC") are never merged: creating the second is refused with a sentence naming the first (`same_name`,
`name_clash`); a look-up by name or slug still finds the tenant. Free text that reaches the database
(problem, notes, audit detail) passes through `redact`, which masks anything shaped like a Stripe secret,
and a masked key that still looks like a whole key is refused.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from core.engine.redact import redact  # the one redaction step (re-exported: core.store.redact)
from core.engine.result import STATUSES, VERDICTS, CheckResult
from core.store import latest, rollup
from core.store.confusable import look_alike
from core.store.db import Database
from core.store.models import (
    FINGERPRINT_MAX,
    MASKED_MAX,
    NAME_MAX,
    SOURCES,
    alerts_t,
    audit_t,
    check_rows_t,
    checks_t,
    key_events_t,
    stripe_keys_t,
    tenants_t,
)
from core.store.rows import AuditRow, TenantListRow, TenantRow
from core.store.types import utcnow


class StoreInputError(ValueError):
    """Input the store refuses; the message is one sentence naming the problem and the fix."""


class UnknownTenantError(StoreInputError):
    """The named tenant does not exist."""


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

# Anything shaped like a whole Stripe secret: prefix, mode, then a long random tail.
_SECRET_RE = re.compile(
    r"\b(?:(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{12,}|whsec_[A-Za-z0-9+/=]{16,}|"
    r"(?:sk|rk)_(?:org|live|test)_[A-Za-z0-9_]{20,})"
)
_DASHBOARD_ID_RE = re.compile(r"mk_[A-Za-z0-9]{1,61}")  # a key's Dashboard id: fits checks.key_dashboard_id
_ACTION_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_OUTCOME_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")


def _has_control(s: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in s)


# Invisible characters and text-direction controls: a name holding them looks like another name (U+202E
# turns "Acme\u202etxt.exe" around on screen; "Acme\u200b" shows as "Acme"). ZWJ/ZWNJ (U+200C/D) stay allowed:
# emoji sequences and several scripts need them.
_INVISIBLE = frozenset(
    "\u00ad\u061c\u180e\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
)


def _not_utf8(s: str) -> bool:
    """Lone surrogates: what Python makes of bytes that are not UTF-8 (argv, stdin); no database stores them."""
    return any("\ud800" <= c <= "\udfff" for c in s)


def _invisible(s: str) -> str | None:
    """The first invisible or text-direction character in `s`, as U+XXXX, or None."""
    ch = next((c for c in s if c in _INVISIBLE), None)
    return None if ch is None else f"U+{ord(ch):04X}"


def validate_tenant_name(name: object) -> str:
    """The tenant name stripped of surrounding spaces, or StoreInputError."""
    if not isinstance(name, str):
        raise StoreInputError("The tenant name must be text; type the tenant's name.")
    clean = name.strip()
    if not clean:
        raise StoreInputError("The tenant name is empty; type the tenant's name.")
    if len(clean) > NAME_MAX:
        raise StoreInputError(
            f"The tenant name is {len(clean)} characters long; shorten it to at most {NAME_MAX}."
        )
    if _has_control(clean):
        raise StoreInputError(
            "The tenant name contains a control character (such as a newline or tab); remove it."
        )
    if _not_utf8(clean):
        raise StoreInputError("The tenant name holds bytes that are not valid UTF-8 text; retype it.")
    bad = _invisible(clean)
    if bad:
        raise StoreInputError(f"The tenant name contains an invisible or text-direction character ({bad}); remove it.")
    if _SECRET_RE.search(clean):  # a key pasted into the tenant box must not become a stored name
        raise StoreInputError(
            "The tenant name contains what looks like a Stripe key; type the tenant's name and paste the key "
            "only where the key goes."
        )
    return clean


def _slug_char(ch: str) -> bool:
    """Letters, marks (a Devanagari vowel sign is part of its word) and digits stay in a slug."""
    return unicodedata.category(ch)[0] in "LMN"


SLUG_MAX = 100


def _full_slug(clean: str) -> str:
    """The slug before any shortening (may be longer than SLUG_MAX: case-folding 'ß' gives 'ss')."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", clean).casefold())
    return re.sub(r"-+", "-", "".join(ch if _slug_char(ch) else "-" for ch in folded)).strip("-")


def _legacy_slug(clean: str) -> str:
    """The slug a name longer than SLUG_MAX once folded got before 17.7: cut at 100 (still found by it)."""
    return _full_slug(clean)[:SLUG_MAX].strip("-")


def slugify(name: str) -> str:
    """URL-safe identity of a tenant name: 'Acme Café, Inc.' -> 'acme-café-inc', '北京 Foods' -> '北京-foods'.

    NFKC (full-width and compatibility forms become their plain letters), case-folded ('Straße' -> 'strasse'),
    every run of other characters one dash, at most 100 characters: a longer one keeps its first 89 and ends in
    a dash and 10 hex digits of a hash of the whole, so two names that differ in letters past the cut (even
    only because 'ß' became 'ss') never share a slug. slugify(slug) == slug, so a slug names its tenant too. A
    name with no letter or digit at all (e.g. '🔑') gets 'tenant-' plus a short hash.
    """
    clean = validate_tenant_name(name)
    slug = _full_slug(clean)
    if len(slug) > SLUG_MAX:
        slug = slug[:SLUG_MAX - 11].rstrip("-") + "-" + hashlib.sha256(slug.encode()).hexdigest()[:10]
    if not slug:
        slug = "tenant-" + hashlib.sha256(clean.casefold().encode()).hexdigest()[:10]
    return slug


def same_name(a: str, b: str) -> bool:
    """Two spellings of one name: equal once NFKC-normalised, case-folded and with spaces collapsed."""

    def norm(s: str) -> str:
        return " ".join(unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", s).casefold()).split())

    return norm(a) == norm(b)


def _look_alike_clash(existing_name: str, name: str) -> StoreInputError:
    return StoreInputError(
        f"The name {name!r} looks the same on screen as the existing tenant {existing_name!r} (some letters are "
        f"look-alikes, such as Cyrillic or Greek letters that look Latin); use {existing_name!r} for that tenant, "
        "or a name that reads differently for a new one."
    )


def _clash(existing_name: str, name: str) -> StoreInputError:
    return StoreInputError(
        f"The name {name!r} is too close to the existing tenant {existing_name!r} (they differ only in "
        f"punctuation or symbols); use {existing_name!r} for that tenant, or a name that differs in letters or "
        "digits for a new one."
    )


def _optional_text(value: object, what: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise StoreInputError(f"The {what} must be text; give it as text or leave it empty.")
    clean = value.strip()
    if not clean:
        return None
    if len(clean) > limit:
        raise StoreInputError(f"The {what} is {len(clean)} characters long; shorten it to at most {limit}.")
    if _has_control(clean):
        raise StoreInputError(f"The {what} contains a control character (such as a newline); remove it.")
    if _not_utf8(clean):
        raise StoreInputError(f"The {what} holds bytes that are not valid UTF-8 text; retype it.")
    bad = _invisible(clean)
    if bad:
        raise StoreInputError(f"The {what} contains an invisible or text-direction character ({bad}); remove it.")
    if _SECRET_RE.search(clean):
        raise StoreInputError(f"The {what} contains what looks like a Stripe key; remove it (keys are never stored).")
    return clean


def _aware(at: datetime | None) -> datetime:
    if at is None:
        return utcnow()
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _insert_ignore(conn: Connection, table: sa.Table, values: dict, index_elements: list[str]) -> None:
    name = conn.dialect.name
    stmt: sa.Insert
    if name == "postgresql":
        stmt = postgresql.insert(table).values(**values).on_conflict_do_nothing(index_elements=index_elements)
    elif name == "sqlite":
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing(index_elements=index_elements)
    else:  # other backends: plain insert, unique violation handled by the caller's retry
        stmt = table.insert().values(**values)
    conn.execute(stmt)


def _tenant_dict(row: Any) -> TenantRow:
    return cast(TenantRow, dict(row._mapping))


_TENANT_COLS = [
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


def _tenant_where(tenant: str | int):
    """Rows that `tenant` can name: the id; or the exact name, or the name's slug (a slug names itself).

    A string can match two rows (the migration to Unicode slugs left a tenant on its old slug where its new
    one was taken): `_pick` prefers the exact name."""
    if isinstance(tenant, bool) or not isinstance(tenant, (str, int)):
        raise StoreInputError("A tenant is named by its name, its slug or its id; give one of those.")
    if isinstance(tenant, int):
        return tenants_t.c.id == tenant
    clean = validate_tenant_name(tenant)
    slugs = {slugify(clean), _legacy_slug(clean)}
    return sa.or_(tenants_t.c.slug.in_(sorted(slugs)), tenants_t.c.name == clean)


def _pick(rows, tenant: str | int):
    """The row `tenant` names among `rows` (see _tenant_where): the exact name wins over the slug."""
    rows = list(rows)
    if len(rows) > 1 and isinstance(tenant, str):
        exact = [r for r in rows if r._mapping["name"] == tenant.strip()]
        if exact:
            return exact[0]
    return rows[0] if rows else None


def _get_tenant(conn: Connection, tenant: str | int) -> TenantRow | None:
    row = _pick(conn.execute(sa.select(*_TENANT_COLS).where(_tenant_where(tenant))), tenant)
    return _tenant_dict(row) if row else None


def _require_tenant(conn: Connection, tenant: str | int) -> TenantRow:
    found = _get_tenant(conn, tenant)
    if found is None:
        raise UnknownTenantError(f"There is no tenant named {tenant!r}; check the spelling or add it first.")
    return found


def _matching(conn: Connection, clean: str, slug: str, *, new: bool = True) -> TenantRow | None:
    """The tenant `clean` names (exact name, else its slug), or None; StoreInputError when the slug is
    another tenant's whose name is not a spelling of this one (nothing is merged silently), or when `clean`
    names no tenant yet (`new`) and looks the same on screen as an existing one (TR39 skeletons)."""
    slugs = sorted({slug, _legacy_slug(clean)})
    rows = conn.execute(
        sa.select(*_TENANT_COLS).where(sa.or_(tenants_t.c.name == clean, tenants_t.c.slug.in_(slugs)))
    ).all()
    exact = [r for r in rows if r._mapping["name"] == clean]
    if exact:
        return _tenant_dict(exact[0])
    for row in rows:
        found = _tenant_dict(row)
        if same_name(found["name"], clean):
            return found
        if _full_slug(found["name"]) == _full_slug(clean):  # the same letters and digits: punctuation only
            raise _clash(found["name"], clean)
        # else a slug cut at 100 characters before 17.7 (a legacy slug) that this name shares by accident
    if new:
        alike = _look_alike_tenant(conn, clean)
        if alike is not None:
            raise _look_alike_clash(alike, clean)
    return None


def _look_alike_tenant(conn: Connection, clean: str) -> str | None:
    """The name of an existing tenant that reads the same as `clean` on screen, or None. Every name is read
    (one indexed column); their skeletons are cached per process, so this costs a dictionary look-up per
    tenant after the first time."""
    for (existing,) in conn.execute(sa.select(tenants_t.c.name).order_by(tenants_t.c.id)):
        if look_alike(existing, clean):
            return str(existing)
    return None


def _get_or_create(conn: Connection, name: str) -> TenantRow:
    clean = validate_tenant_name(name)
    slug = slugify(clean)
    found = _matching(conn, clean, slug)
    if found is None:
        _insert_ignore(
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
    validate_tenant_name(name)
    with db.connect(write=True) as conn:
        return _get_or_create(conn, name)


def name_clash(db: Database, name: str) -> str | None:
    """The sentence refusing `name` as a new tenant because it is too close to an existing one, or None
    (the name is free, or it names an existing tenant). For asking before work that ends in recording."""
    clean = validate_tenant_name(name)
    with db.connect() as conn:
        try:
            _matching(conn, clean, slugify(clean))
        except StoreInputError as e:
            return str(e)
    return None


def get_tenant(db: Database, tenant: str | int) -> TenantRow | None:
    """The tenant by name, slug or id, or None."""
    _tenant_where(tenant)  # a bad name is refused before the database is touched
    with db.connect() as conn:
        return _get_tenant(conn, tenant)


def list_tenants(db: Database, *, include_archived: bool = False, search: str | None = None
) -> list[TenantListRow]:
    """Tenants by name, each with its latest check's status and score (None if never checked)."""
    c = checks_t
    q = (
        sa.select(*_TENANT_COLS, c.c.status.label("last_status"), c.c.score.label("last_score"))
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
    acct = _optional_text(account, "Stripe account id", 64)
    if acct is not None and not re.fullmatch(r"acct_[A-Za-z0-9]{1,59}", acct):
        raise StoreInputError(
            "The Stripe account id is not of the form acct_ and letters or digits; copy it from Stripe."
        )
    return acct


def _clean_notes(notes: object) -> str | None:
    """The notes as stored: trimmed, at most 5000 characters of plain text, redacted; None when empty."""
    if notes is not None and not isinstance(notes, str):
        raise StoreInputError("The notes must be text; type them as text or leave them empty.")
    n = (notes or "").strip()
    if len(n) > 5000:
        raise StoreInputError(f"The notes are {len(n)} characters long; shorten them to at most 5000.")
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in n):
        raise StoreInputError("The notes contain a control character (such as a NUL byte); remove it.")
    if _not_utf8(n):
        raise StoreInputError("The notes hold bytes that are not valid UTF-8 text; retype them.")
    bad = _invisible(n)
    if bad:
        raise StoreInputError(f"The notes contain an invisible or text-direction character ({bad}); remove it.")
    return redact(n) or None


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
        clean = validate_tenant_name(name)
        values["name"] = clean
        values["slug"] = slugify(clean)
    if account is not UNSET:
        values["account"] = _clean_account(account)
    if contact is not UNSET:
        values["contact"] = _optional_text(contact, "contact", 200)
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


def _lock_tenant_state(conn: Connection, tenant_id: int) -> Any:
    """_lock_tenant, returning the tenant's archived flag, latest-check pointer, its copy of the latest check's
    figures (0010) and streak (0015) as of the lock (one round trip)."""
    tc = tenants_t.c
    return conn.execute(
        sa.select(tc.archived, tc.last_check_id, tc.last_checked_at, tc.last_status, tc.broken_since,
                  tc.last_healthy_at, tc.worse_at, tc.last_key_fingerprint, tc.last_account, tc.last_score,
                  tc.last_key_masked, tc.last_key_mode)
        .where(tc.id == tenant_id).with_for_update()
    ).one()


def _check_values(result: CheckResult, source: str, checked_by: str | None) -> tuple[dict, list[dict]]:
    if source not in SOURCES:
        raise StoreInputError(f"The check source {source!r} is not one of {', '.join(SOURCES)}; use one of those.")
    who = _optional_text(checked_by, "checker's name", NAME_MAX)
    key = result.key
    masked = key.masked or ""
    if len(masked) > MASKED_MAX or _SECRET_RE.search(masked):
        raise StoreInputError(
            "The key to store is not masked (it looks like a whole key); store KeyInfo.masked, never the key."
        )
    fp = key.fingerprint
    if fp is not None and (len(fp) > FINGERPRINT_MAX or _SECRET_RE.search(fp)):
        raise StoreInputError("The key fingerprint is not a fingerprint; store KeyInfo.fingerprint, never the key.")
    if result.status not in STATUSES:
        raise StoreInputError(f"The check status {result.status!r} is not one of {', '.join(STATUSES)}.")
    counts = {v: 0 for v in VERDICTS}
    rows: list[dict] = []
    for r in result.rows:
        if r.verdict not in VERDICTS:
            raise StoreInputError(f"The row verdict {r.verdict!r} is not one of {', '.join(VERDICTS)}.")
        counts[r.verdict] += 1
        rows.append(
            {
                "scope": r.scope,
                "resource": (r.resource or "")[:200],
                "category": (r.category or "")[:100],
                "required": r.required,
                "granted": r.granted,
                "verdict": r.verdict,
                "reason": (redact(r.reason) or "")[:200] if r.reason else None,
            }
        )
    check = {
        "checked_at": _aware(result.checked_at),
        "checked_by": who,
        "source": source,
        "key_masked": masked,
        "key_fingerprint": fp,
        "key_kind": (key.kind or "unknown")[:32],
        "key_mode": key.mode,
        "account": result.account,
        "status": result.status,
        "score": int(result.score),
        "n_ok": counts["ok"],
        "n_missing": counts["missing"],
        "n_excess": counts["excess"],
        "n_unknown": counts["unknown"],
        "n_not_applicable": counts["not_applicable"],
        "requests": int(result.requests),
        "elapsed_s": float(result.elapsed_s),
        "problem": redact(result.problem or key.problem),
        "refused": (result.refused or None) and str(result.refused)[:16],
    }
    # 0012: the key's Dashboard id, only when Stripe gave one (the column is NULL otherwise; leaving it out keeps these
    # values insertable into a database before 0012 too, as the migration tests do)
    if _DASHBOARD_ID_RE.fullmatch(result.key_dashboard_id or ""):
        check["key_dashboard_id"] = result.key_dashboard_id
    return check, rows


@dataclass(frozen=True)
class AuditOfCheck:
    """The audit entry written with a check, in its transaction: who and what (the tenant is the check's)."""

    who: str | None
    detail: str
    action: str = "check"


# Given the tenant's previous latest check (its columns and its "rows", or None when it had none) and the
# tenant's stored name: (kinds, text) of the alert the new check raises, or None. Called inside the check's
# transaction, after the tenant's row is locked; it must not touch the database.
AlertRule = Callable[[Mapping[str, Any] | None, str], tuple[list[str], str] | None]


@dataclass(frozen=True)
class Recorded:
    """What one unit of work wrote: the check's id and, when one was raised, the alert's id (pending delivery)."""

    check_id: int
    alert_id: int | None = None


def record_check(db: Database, result: CheckResult,
    tenant: str,
    *,
    source: str,
    checked_by: str | None,
) -> int:
    """Store one check and its rows in one transaction; returns the check's id (see `record_checked`)."""
    return record_checked(db, result, tenant, source=source, checked_by=checked_by).check_id


def record_checked(db: Database, result: CheckResult,
    tenant: str,
    *,
    source: str,
    checked_by: str | None,
    audit: AuditOfCheck | None = None,
    alert: AlertRule | None = None,
) -> Recorded:
    """One unit of work: the check and its rows, the tenant's summary, the check's audit entry (`audit`) and the
    alert it raises (`alert`, an outbox row in `alerts` with delivery "pending", delivered by the background sender
    after the commit) are written in ONE transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: the tenant's row
    locked), so either all of them are stored or none is (tests/service/test_unit_of_work.py kills the database at every
    statement of it).

    Creates the tenant if new, moves the tenant's latest-check pointer when this check is the newest,
    and records the Stripe account on the tenant once a check has seen it. An unreachable check (Stripe never
    answered) is kept as an attempt but never becomes the tenant's latest check: it says nothing about the key.
    The fleet's daily rollup (0008, core/store/rollup.py) counts the check in the same transaction, after the
    tenant's row is locked (concurrent checks of one tenant are counted one after the other). When the pointer
    moves, the tenant row's copies of the latest check's figures and the latest checks' problem counts (0010,
    core/store/latest.py) move with it.
    Key lifecycle (0006): the key's first-seen date, and a "replaced" event when the fingerprint differs from
    the tenant's previous check with one (checks recorded out of time order are compared with the check just
    before them; later events are not rewritten).
    The alert rule is given the tenant's previous latest check as read under the lock, so two checks of one
    tenant recorded at once are each compared with the one before it.
    """
    clean = validate_tenant_name(tenant)
    check, rows = _check_values(result, source, checked_by)
    audit_values = _audit_values(audit.action, who=audit.who, outcome=check["status"], detail=audit.detail,
                                 at=None) if audit is not None else None
    with db.connect(write=True) as conn:
        t = _get_or_create(conn, tenant)
        # before the rollup reads the tenant's other checks
        locked = _lock_tenant_state(conn, t["id"])
        archived, old_latest = bool(locked.archived), locked.last_check_id
        previous = _previous_check(conn, locked) if alert is not None else None
        pk = conn.execute(checks_t.insert().values(tenant_id=t["id"], **check)).inserted_primary_key
        assert pk is not None
        check_id = pk[0]
        if rows:
            conn.execute(check_rows_t.insert(), [{"check_id": check_id, **r} for r in rows])
        at = check["checked_at"]
        rollup.on_check(conn, tenant_id=t["id"], archived=archived, check_id=int(check_id), at=at,
                        status=check["status"])
        replaced = bool(check["key_fingerprint"]) and _track_key(conn, t["id"], int(check_id), check)
        newest = 0
        if check["status"] != "unreachable":
            if locked.last_checked_at is None or locked.last_checked_at <= at:
                # 0015: the streak moves on by this check; the summary and the account signal are this check's
                state = latest.step((locked.broken_since, locked.last_healthy_at, locked.worse_at,
                                     locked.last_status), check["status"], at)
                summary = {
                    **latest.streak_values(state),
                    "last_summary": latest.summary_of(check["status"], check["refused"], check["key_kind"], rows),
                    "last_account_changed": latest.account_changed(conn, t["id"], check["key_fingerprint"],
                                                                   check["account"]),
                }
                newest = conn.execute(
                    tenants_t.update()
                    .where(tenants_t.c.id == t["id"])
                    .where(sa.or_(tenants_t.c.last_checked_at.is_(None), tenants_t.c.last_checked_at <= at))
                    .values(last_check_id=check_id, last_checked_at=at, **latest.tenant_values(check), **summary)
                ).rowcount
            else:  # recorded out of time order: the streak is recomputed from the history
                conn.execute(tenants_t.update().where(tenants_t.c.id == t["id"])
                             .values(**latest.tenant_streak(conn, t["id"])))
            if newest:  # the latest check's problem counts (0010) move with the pointer
                latest.on_latest(conn, archived=archived, old_check_id=old_latest, new_rows=rows,
                                 old_rows=previous["rows"] if previous is not None else None)
        if replaced and not newest:  # a key event of an older (or unreachable) check is now the tenant's newest
            conn.execute(tenants_t.update().where(tenants_t.c.id == t["id"]).values(
                last_account_changed=latest.account_changed(conn, t["id"], locked.last_key_fingerprint,
                                                            locked.last_account)))
        acct = check["account"]
        if acct and (newest or t["account"] is None) and acct != t["account"]:
            conn.execute(tenants_t.update().where(tenants_t.c.id == t["id"]).values(account=acct))
        if audit_values is not None:
            insert_audit(conn, {**audit_values, "tenant_id": t["id"], "tenant": clean})
        alert_id = None
        raised = alert(previous, t["name"]) if alert is not None else None
        if raised is not None:
            kinds, text = raised
            alert_id = insert_alert(conn, tenant_id=t["id"], tenant=t["name"], check_id=int(check_id), kinds=kinds,
                                    text=text)
        return Recorded(int(check_id), alert_id)


def _previous_check(conn: Connection, locked: Any) -> dict | None:
    """The tenant's previous latest check as the alert rule reads it, or None: its figures from the tenant row's
    copy of them (`_lock_tenant_state`), and its rows (with the columns the problem counts use too)."""
    if locked.last_check_id is None:
        return None
    r = check_rows_t.c
    return {
        "id": locked.last_check_id, "checked_at": locked.last_checked_at, "status": locked.last_status,
        "score": locked.last_score, "key_masked": locked.last_key_masked,
        "key_fingerprint": locked.last_key_fingerprint, "key_mode": locked.last_key_mode,
        "account": locked.last_account,
        "rows": [dict(x._mapping) for x in conn.execute(
            sa.select(r.scope, r.resource, r.category, r.required, r.granted, r.verdict)
            .where(r.check_id == locked.last_check_id).order_by(r.id))],
    }


def insert_alert(conn: Connection, *, tenant_id: int | None, tenant: str, check_id: int | None, kinds: list[str],
                 text: str, delivery: str = "pending") -> int:
    """One alert row (the outbox: "pending" until the background sender delivers it), in the caller's
    transaction; its id."""
    pk = conn.execute(alerts_t.insert().values(
        created_at=utcnow(), tenant_id=tenant_id, tenant=validate_tenant_name(tenant), check_id=check_id,
        kinds=",".join(kinds)[:100], text=redact(text) or "", delivery=delivery, attempts=0,
    )).inserted_primary_key
    assert pk is not None
    return int(pk[0])


# The statuses of a check in which Stripe accepted the key (an answered sweep): only these start a key's age.
ACCEPTED_STATUSES = ("healthy", "attention", "failing", "incomplete")


def _first_seen(conn: Connection, values: dict) -> None:
    """The key's row in stripe_keys, its first-seen date moved back to `values["first_seen_at"]` if earlier: one
    upsert."""
    name = conn.dialect.name
    if name not in ("postgresql", "sqlite"):  # other backends: insert if new, then move the date
        _insert_ignore(conn, stripe_keys_t, values, ["fingerprint"])
        conn.execute(stripe_keys_t.update().where(stripe_keys_t.c.fingerprint == values["fingerprint"],
                                                  stripe_keys_t.c.first_seen_at > values["first_seen_at"])
                     .values(first_seen_at=values["first_seen_at"]))
        return
    ins = (postgresql.insert if name == "postgresql" else sqlite.insert)(stripe_keys_t).values(**values)
    conn.execute(ins.on_conflict_do_update(
        index_elements=["fingerprint"], set_={"first_seen_at": ins.excluded.first_seen_at},
        where=stripe_keys_t.c.first_seen_at > ins.excluded.first_seen_at))


def _track_key(conn: Connection, tenant_id: int, check_id: int, check: dict) -> bool:
    """First-seen date of the key (its first check Stripe accepted it in), and a replacement event when it is not
    the tenant's previous key (also when the new key is one Stripe refuses: "replaced by a key Stripe refuses").
    True when a replacement event was inserted."""
    c, e = checks_t, key_events_t
    fp, at = check["key_fingerprint"], check["checked_at"]
    if check["status"] in ACCEPTED_STATUSES:  # a key Stripe never accepted has no first-seen date, no age (0013)
        _first_seen(conn, {"fingerprint": fp, "key_masked": check["key_masked"], "key_mode": check["key_mode"],
                           "first_seen_at": at})
    before = sa.or_(c.c.checked_at < at, sa.and_(c.c.checked_at == at, c.c.id < check_id))
    prev = conn.execute(
        sa.select(c.c.key_fingerprint, c.c.key_masked, c.c.key_mode, c.c.account)
        .where(c.c.tenant_id == tenant_id, c.c.key_fingerprint.is_not(None), before)
        .order_by(c.c.checked_at.desc(), c.c.id.desc())
        .limit(1)
    ).first()
    if prev is None or prev.key_fingerprint != fp:  # else the tenant is already counted for the key
        latest.on_key(conn, tenant_id=tenant_id, check_id=check_id, fingerprint=fp)  # 0010: tenants per key
    acct = check["account"]
    if prev is not None and prev.key_fingerprint != fp:
        old_account = conn.execute(
            sa.select(c.c.account)
            .where(c.c.tenant_id == tenant_id, c.c.account.is_not(None), before)
            .order_by(c.c.checked_at.desc(), c.c.id.desc())
            .limit(1)
        ).scalar()
        if acct is None:  # the new key's account, if another tenant's check of it has seen it
            acct = conn.execute(
                sa.select(c.c.account).where(c.c.key_fingerprint == fp, c.c.account.is_not(None)).limit(1)
            ).scalar()
        conn.execute(
            e.insert().values(
                tenant_id=tenant_id, check_id=check_id, at=at, kind="replaced",
                old_fingerprint=prev.key_fingerprint, new_fingerprint=fp,
                old_masked=prev.key_masked, new_masked=check["key_masked"],
                old_mode=prev.key_mode, new_mode=check["key_mode"],
                old_account=old_account, new_account=acct,
            )
        )
        return True
    if acct and prev is not None and prev.account is None:  # a later check of the new key learnt its account
        # (when the check before it, of this key, had an account, that check already gave it to the events, and
        # events inserted since got it from that check)
        conn.execute(
            e.update()
            .where(e.c.tenant_id == tenant_id, e.c.new_fingerprint == fp, e.c.new_account.is_(None))
            .values(new_account=acct)
        )
    return False


def _audit_values(action: str, *, who: str | None, outcome: str, detail: str | None,
                  at: datetime | None) -> dict:
    """An audit entry's columns (but its tenant), checked: StoreInputError names what is wrong."""
    if not isinstance(action, str) or not _ACTION_RE.match(action):
        raise StoreInputError(
            f"The audit action {action!r} is not a short lower-case word (e.g. 'check', 'view'); use one."
        )
    if not isinstance(outcome, str) or not _OUTCOME_RE.match(outcome):
        raise StoreInputError(f"The audit outcome {outcome!r} is not a short lower-case word (e.g. 'ok'); use one.")
    who_ = _optional_text(who, "user name", NAME_MAX)
    if detail is not None and not isinstance(detail, str):
        raise StoreInputError("The audit detail must be text.")
    return {"at": _aware(at), "who": who_, "action": action, "outcome": outcome,
            "detail": redact(detail[:5000]) if detail else None}


def insert_audit(conn: Connection, values: dict) -> int:
    """One audit entry (`_audit_values` plus tenant_id and tenant), in the caller's transaction; its id."""
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
    values = _audit_values(action, who=who, outcome=outcome, detail=detail, at=at)
    tenant_name = validate_tenant_name(tenant) if tenant is not None else None
    with db.connect(write=True) as conn:
        tenant_id = None
        if tenant_name is not None:
            found = _pick(conn.execute(sa.select(*_TENANT_COLS).where(_tenant_where(tenant_name))), tenant_name)
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
            name = validate_tenant_name(tenant)
            q = q.where(sa.or_(_tenant_where(name), sa.func.lower(a.c.tenant) == name.lower()))
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
        q = q.where(a.c.at >= _aware(since))
    if until is not None:
        q = q.where(a.c.at < _aware(until))
    q = q.order_by(a.c.at.desc(), a.c.id.desc())
    if limit is not None:
        q = q.limit(int(limit))
    with db.connect() as conn:
        return [cast(AuditRow, dict(r._mapping)) for r in conn.execute(q)]
