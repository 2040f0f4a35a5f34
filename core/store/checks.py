"""Recording checks: a check with its rows, the tenant's summary, the key's lifecycle, the check's audit entry and
the alert it raises, all in one transaction (`record_checked`); and the one read of history a check starts with
(`check_history`).
"""
from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from core.engine.redact import redact  # the one redaction step (re-exported: core.store.redact)
from core.engine.result import STATUSES, VERDICTS, CheckResult
from core.store import latest, rollup
from core.store.audit import audit_values as audit_entry
from core.store.audit import insert_audit
from core.store.db import Database
from core.store.models import (
    FINGERPRINT_MAX,
    MASKED_MAX,
    NAME_MAX,
    SOURCES,
    alerts_t,
    check_rows_t,
    checks_t,
    key_events_t,
    stripe_keys_t,
    tenants_t,
)
from core.store.names import SECRET_RE, TenantName
from core.store.rules import (
    DASHBOARD_ID_RE,
    StoreInputError,
    aware,
    clash_error,
    full_slug,
    legacy_slug,
    look_alike_error,
    optional_text,
    same_name,
    slugify,
)
from core.store.runs import finish_item
from core.store.tenants import TENANT_COLS, get_or_create, insert_ignore, lock_tenant_state, look_alike_tenant
from core.store.types import utcnow


def _check_values(result: CheckResult, source: str, checked_by: str | None) -> tuple[dict, list[dict]]:
    if source not in SOURCES:
        raise StoreInputError(f"The check source {source!r} is not one of {', '.join(SOURCES)}; use one of those.")
    who = optional_text(checked_by, "checker's name", NAME_MAX)
    key = result.key
    masked = key.masked or ""
    if len(masked) > MASKED_MAX or SECRET_RE.search(masked):
        raise StoreInputError(
            "The key to store is not masked (it looks like a whole key); store KeyInfo.masked, never the key."
        )
    fp = key.fingerprint
    if fp is not None and (len(fp) > FINGERPRINT_MAX or SECRET_RE.search(fp)):
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
        "checked_at": aware(result.checked_at),
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
    if DASHBOARD_ID_RE.fullmatch(result.key_dashboard_id or ""):
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
    history: History | None = None,
    run_item: int | None = None,
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
    `history`: the read the check started with (`check_history`), else it is read here, before the write lock. The
    write starts from it while it is still the tenant's state (the check's INSERT is guarded by it), else records
    the check the long way in the same transaction; docs/store.md, "A check's statements"
    (tests/service/test_unit_of_work.py).
    `run_item`: a fleet run's item (core.store.runs) this check is the tenant's last line of: it is marked done
    with the check in the same transaction, so a tenant is never left checked but not done.
    """
    clean = TenantName.parse(tenant)
    check, rows = _check_values(result, source, checked_by)
    audit_values = audit_entry(audit.action, who=audit.who, outcome=check["status"], detail=audit.detail,
                                at=None) if audit is not None else None
    fp = check["key_fingerprint"]
    if history is None or history.fingerprint != fp:  # read before the write lock is taken (kept short)
        history = check_history(db, clean, fp, clash=False)
    state = history.state
    with db.connect(write=True) as conn:
        done = None
        if state is not None and _usable(state, check):
            done = _write_known(conn, state, clean, check, rows, audit_values, alert)
        if done is None:
            done = _record_locked(conn, tenant, clean, check, rows, audit_values, alert)
        if run_item is not None:
            finish_item(conn, run_item, check_id=done.check_id, status=check["status"], problem=None)
        return done


def _record_locked(conn: Connection, tenant: str, clean: str, check: dict, rows: list[dict],
                   audit_values: dict | None, alert: AlertRule | None) -> Recorded:
    """record_checked reading the tenant's state under the lock, statement by statement (a new tenant, a check
    recorded out of time order, or a state that changed since it was read)."""
    t = get_or_create(conn, tenant)
    # before the rollup reads the tenant's other checks
    locked = lock_tenant_state(conn, t["id"])
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
    copy of them (`lock_tenant_state`), and its rows (with the columns the problem counts use too)."""
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
        created_at=utcnow(), tenant_id=tenant_id, tenant=TenantName.parse(tenant), check_id=check_id,
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
        insert_ignore(conn, stripe_keys_t, values, ["fingerprint"])
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



# --- one read of history, one write (issue #21 item 3) -----------------------------------------------------------
# A check reads what it needs of the tenant's history ONCE, before its requests (`check_history`: the name clash
# question, the lifecycle's facts and the tenant's state for recording, in one SELECT), and writes everything in ONE
# transaction from that state (`_write_known`), guarded: the check is inserted only if nothing the state was read
# from has changed since (no newer check of the tenant, the same archived flag, name, account and latest pointer).
# Otherwise the write falls back to reading under the lock (`_record_locked`). docs/store.md lists the statements.
_TENANT_STATE = ("last_status", "broken_since", "last_healthy_at", "worse_at", "last_key_fingerprint",
                 "last_account", "last_score", "last_key_masked", "last_key_mode")
_ROW_COLS = ("id", "scope", "resource", "category", "required", "granted", "verdict")


@dataclass(frozen=True)
class History:
    """One read of a tenant's history for a check (see `check_history`).

    `clash`: the sentence refusing the name as a new tenant, or None. `known`: what the key's lifecycle reads
    (`queries.key_history`'s shape). `state`: the tenant's state for recording (None: a new tenant), read at
    `fingerprint`."""

    clash: str | None
    known: dict
    state: Mapping[str, Any] | None
    fingerprint: str | None


def _json_rows(dialect: str, cols: Mapping[str, Any]) -> Any:
    """An aggregate: the rows' `cols` as one JSON array of objects (keys are fixed names, not user input)."""
    pairs: list[Any] = []
    for name, col in cols.items():
        pairs += [sa.literal_column(f"'{name}'"), col]
    if dialect == "postgresql":
        return sa.func.json_agg(sa.func.json_build_object(*pairs))
    return sa.func.json_group_array(sa.func.json_object(*pairs))


def _loads(value: Any) -> list[dict]:
    if value is None:
        return []
    return value if isinstance(value, list) else json.loads(value)


_FP = sa.bindparam("h_fp", type_=sa.String)


def _key_facts(dialect: str, has_fp: bool) -> list[Any]:
    """Scalar subqueries about the key (bound as h_fp; none of the tenant's): its first-seen date, an account any
    check of it saw, and the tenants it was recorded for (JSON, by name)."""
    fp = _FP
    if not has_fp:
        return [sa.null().label("first_seen"), sa.null().label("key_account"), sa.null().label("key_tenants")]
    c, t = checks_t.alias("kc"), tenants_t.alias("kt")
    named = (sa.select(t.c.id.label("tenant_id"), t.c.name.label("tenant"), t.c.slug)
             .where(t.c.id.in_(sa.select(c.c.tenant_id).where(c.c.key_fingerprint == fp)))
             .order_by(sa.func.lower(t.c.name), t.c.id).subquery("named"))
    return [
        sa.select(stripe_keys_t.c.first_seen_at).where(stripe_keys_t.c.fingerprint == fp)
        .scalar_subquery().label("first_seen"),
        sa.select(c.c.account).where(c.c.key_fingerprint == fp, c.c.account.is_not(None)).limit(1)
        .scalar_subquery().label("key_account"),
        sa.select(_json_rows(dialect, {k: named.c[k] for k in ("tenant_id", "tenant", "slug")}))
        .scalar_subquery().label("key_tenants"),
    ]


@functools.cache
def _history_select(dialect: str, has_fp: bool) -> sa.Select:
    """ONE statement: every tenant row the name h_clean can name (exact name, or a slug in h_slugs), each with its
    state for recording (the newest check with a key and the newest account, its newest key event, its newest check's
    id and time, whether it has a check of the key h_fp, its latest check's rows as JSON), plus the key's facts. Built
    once per shape (aliasing tables costs more than the statement)."""
    t = tenants_t
    c = checks_t.alias("c2")
    pk, ev, e2, r = checks_t.alias("pk"), key_events_t.alias("ev"), key_events_t.alias("e2"), check_rows_t.alias("r")
    mine = c.c.tenant_id == t.c.id
    newest = (c.c.checked_at.desc(), c.c.id.desc())
    key_check = (sa.select(c.c.id).where(mine, c.c.key_fingerprint.is_not(None)).order_by(*newest).limit(1)
                 .correlate(t).scalar_subquery())
    event = sa.select(sa.func.max(e2.c.id)).where(e2.c.tenant_id == t.c.id).correlate(t).scalar_subquery()
    has_key = (sa.exists().where(mine, c.c.key_fingerprint == _FP).correlate(t) if has_fp else sa.false())
    q = (
        sa.select(
            *TENANT_COLS, *(t.c[n] for n in _TENANT_STATE),
            pk.c.key_fingerprint.label("pk_fingerprint"), pk.c.key_masked.label("pk_masked"),
            pk.c.key_mode.label("pk_mode"), pk.c.checked_at.label("pk_checked_at"), pk.c.account.label("pk_account"),
            sa.select(c.c.account).where(mine, c.c.key_fingerprint.is_not(None), c.c.account.is_not(None))
            .order_by(*newest).limit(1).correlate(t).scalar_subquery().label("pk_newest_account"),
            sa.select(c.c.account).where(mine, c.c.account.is_not(None)).order_by(*newest).limit(1)
            .correlate(t).scalar_subquery().label("newest_account"),
            ev.c.new_fingerprint.label("ev_fingerprint"), ev.c.old_account.label("ev_old_account"),
            sa.select(sa.func.max(c.c.id)).where(mine).correlate(t).scalar_subquery().label("max_check_id"),
            sa.select(sa.func.max(c.c.checked_at)).where(mine).correlate(t).scalar_subquery().label("max_checked_at"),
            has_key.label("has_key"),
            sa.select(_json_rows(dialect, {k: r.c[k] for k in _ROW_COLS})).where(r.c.check_id == t.c.last_check_id)
            .correlate(t).scalar_subquery().label("prev_rows"),
            *_key_facts(dialect, has_fp),
        )
        .select_from(t.outerjoin(pk, pk.c.id == key_check).outerjoin(ev, ev.c.id == event))
        .where(sa.or_(t.c.name == sa.bindparam("h_clean", type_=sa.String),
                      t.c.slug.in_(sa.bindparam("h_slugs", expanding=True))))
    )
    return q


def _named(rows: Sequence[Any], clean: str) -> Any:
    """The row `clean` names among the name/slug matches (as `_matching` decides), or None; StoreInputError for a
    name that differs from another tenant's only in punctuation."""
    exact = [x for x in rows if x.name == clean]
    if exact:
        return exact[0]
    for x in rows:
        if same_name(x.name, clean):
            return x
        if full_slug(x.name) == full_slug(clean):
            raise clash_error(x.name, clean)
    return None


def _known(row: Any, fp: str | None) -> dict:
    """queries.key_history's answer from a history row (`row` None: no tenant; the key facts then come alone)."""
    m = row._mapping
    out: dict[str, Any] = {"tenant": None, "previous_key": None, "first_seen": m["first_seen"],
                           "tenants_with_key": _loads(m["key_tenants"]) if fp else []}
    if "id" in m and m["id"] is not None:
        out["tenant"] = {col.name: m[col.name] for col in TENANT_COLS}
        if m["pk_fingerprint"] is not None:
            out["previous_key"] = {"key_fingerprint": m["pk_fingerprint"], "key_masked": m["pk_masked"],
                                   "key_mode": m["pk_mode"], "checked_at": m["pk_checked_at"],
                                   "account": m["pk_newest_account"]}
    return out


def _read_history(conn: Connection, clean: str, fp: str | None) -> tuple[dict, dict | None]:
    """(the lifecycle's facts, the tenant's state) from one SELECT (two for a name that names no tenant yet: the key's
    facts then come alone). Raises StoreInputError for a name too close to another tenant's."""
    params = {"h_clean": clean, "h_slugs": sorted({slugify(clean), legacy_slug(clean)}), "h_fp": fp}
    rows = conn.execute(_history_select(conn.dialect.name, bool(fp)), params).all()
    row = _named(rows, clean)
    if row is None:
        if rows or not fp:
            return {"tenant": None, "previous_key": None, "first_seen": None, "tenants_with_key": []}, None
        only = conn.execute(sa.select(*_key_facts(conn.dialect.name, True)), {"h_fp": fp}).one()
        return _known(only, fp), None
    state = dict(row._mapping, fp=fp)
    prev: list[dict] = sorted(_loads(state["prev_rows"]), key=lambda x: int(x["id"]))
    state["prev_rows"] = [{k: x[k] for k in _ROW_COLS[1:]} for x in prev]
    return _known(row, fp), state


def check_history(db: Database, tenant: str, fingerprint: str | None, *, clash: bool = True) -> History:
    """The one read a check starts with (before any request): whether `tenant` clashes with another tenant's name
    (`clash`; a new name that looks like an existing one is one more statement), the key's lifecycle facts, and the
    tenant's state for `record_checked(..., history=)`. One SELECT for a known tenant."""
    clean = TenantName.parse(tenant)
    with db.connect() as conn:
        try:
            known, state = _read_history(conn, clean, fingerprint)
        except StoreInputError as e:
            return History(str(e), {"tenant": None, "previous_key": None, "first_seen": None,
                                    "tenants_with_key": []}, None, fingerprint)
        problem = None
        if state is None and clash:
            alike = look_alike_tenant(conn, clean)
            problem = None if alike is None else str(look_alike_error(alike, clean))
    return History(problem, known, state, fingerprint)


def _usable(state: Mapping[str, Any] | None, check: dict) -> bool:
    """The state can record this check without reading more: a known tenant, and the check is its newest."""
    if state is None or state["id"] is None:
        return False
    newest = state["max_checked_at"]
    return state["fp"] == check["key_fingerprint"] and (newest is None or newest <= check["checked_at"])


def _changed(event: tuple[str | None, str | None] | None, fingerprint: str | None, account: str | None) -> bool:
    """latest.account_changed, from the tenant's newest key event (new fingerprint, old account)."""
    if not fingerprint or not account or event is None:
        return False
    return bool(event[0] == fingerprint and event[1] and event[1] != account)


def _write_known(conn: Connection, s: Mapping[str, Any], clean: str, check: dict, rows: list[dict],
                 audit_values: dict | None, alert: AlertRule | None) -> Recorded | None:
    """Record the check from the tenant's state `s` (read before, see `History`), or None (nothing written) when the
    state is no longer the tenant's: the insert is guarded by it. Same effects as `_record_locked`."""
    t, c = tenants_t, checks_t
    tid, archived, old_latest = s["id"], bool(s["archived"]), s["last_check_id"]
    if conn.dialect.name == "postgresql":  # the tenant's row first: its writers in turn
        if conn.execute(sa.select(t.c.id).where(t.c.id == tid).with_for_update()).first() is None:
            return None
    same = sa.exists().where(t.c.id == tid, t.c.archived == archived, t.c.name == s["name"],
                             t.c.account.is_not_distinct_from(s["account"]),
                             t.c.last_check_id.is_not_distinct_from(old_latest))
    newer = sa.exists().where(c.c.tenant_id == tid, c.c.id > (s["max_check_id"] or 0))
    values = {"tenant_id": tid, **check}
    guarded = sa.select(*(sa.bindparam(f"v_{k}", v, type_=c.c[k].type) for k, v in values.items()))
    guarded = guarded.where(same, ~newer)
    check_id = conn.execute(sa.insert(c).from_select(list(values), guarded).returning(c.c.id)).scalar()
    if check_id is None:
        return None
    check_id = int(check_id)
    if rows:  # one executemany of one cached statement (a multi-VALUES INSERT is compiled anew every time)
        conn.execute(check_rows_t.insert(), [{"check_id": check_id, **r} for r in rows])
    _rollup_known(conn, s, check)
    replaced, event = _key_known(conn, s, check_id, check)
    _tenant_known(conn, s, check_id, check, rows, replaced, event)
    if check["status"] != "unreachable":  # the newest answered check: the pointer moved
        latest.on_latest(conn, archived=archived, old_check_id=old_latest, new_rows=rows, old_rows=s["prev_rows"])
    if audit_values is not None:
        insert_audit(conn, {**audit_values, "tenant_id": tid, "tenant": clean})
    alert_id = None
    previous = None if old_latest is None else {
        "id": old_latest, "checked_at": s["last_checked_at"], "status": s["last_status"], "score": s["last_score"],
        "key_masked": s["last_key_masked"], "key_fingerprint": s["last_key_fingerprint"],
        "key_mode": s["last_key_mode"], "account": s["last_account"], "rows": s["prev_rows"]}
    raised = alert(previous, s["name"]) if alert is not None else None
    if raised is not None:
        kinds, text = raised
        alert_id = insert_alert(conn, tenant_id=tid, tenant=s["name"], check_id=check_id, kinds=kinds, text=text)
    return Recorded(check_id, alert_id)


def _rollup_known(conn: Connection, s: Mapping[str, Any], check: dict) -> None:
    """rollup.on_check for a check that is the tenant's newest: its other check of the day is known from the state
    (the tenant's newest check, and its latest answered one: the pointer)."""
    at, status, archived = check["checked_at"], check["status"], bool(s["archived"])
    day = rollup.utc_day(at)
    newest_at, last_at = s["max_checked_at"], s["last_checked_at"]
    other_today = newest_at is not None and rollup.utc_day(newest_at) == day
    unreachable = status == rollup.UNREACHABLE
    days = {(day, archived): (1, 0 if other_today else 1, 1 if unreachable else 0)}
    statuses: dict[rollup.StatusKey, int] = {}
    if not unreachable:
        ended = s["last_status"] if last_at is not None and rollup.utc_day(last_at) == day else None
        if ended is None:
            statuses[(day, archived, status)] = 1
        elif ended != status:
            statuses[(day, archived, ended)] = -1
            statuses[(day, archived, status)] = 1
    rollup.apply(conn, days, statuses)


def _key_known(conn: Connection, s: Mapping[str, Any], check_id: int, check: dict
               ) -> tuple[bool, tuple[str | None, str | None] | None]:
    """_track_key from the state: (a replacement event was inserted, the tenant's newest key event after it)."""
    event = None if s["ev_fingerprint"] is None else (s["ev_fingerprint"], s["ev_old_account"])
    fp, at, acct = check["key_fingerprint"], check["checked_at"], check["account"]
    if not fp:
        return False, event
    first = s["first_seen"]
    if check["status"] in ACCEPTED_STATUSES and (first is None or first > at):
        _first_seen(conn, {"fingerprint": fp, "key_masked": check["key_masked"], "key_mode": check["key_mode"],
                           "first_seen_at": at})
    prev_fp = s["pk_fingerprint"]
    if prev_fp != fp and not s["has_key"]:  # 0010: the tenant's first check of this key
        rollup.upsert(conn, latest.key_tenants, ("fingerprint",), ("tenants",), [{"fingerprint": fp, "tenants": 1}])
    e = key_events_t
    if prev_fp is not None and prev_fp != fp:
        conn.execute(e.insert().values(
            tenant_id=s["id"], check_id=check_id, at=at, kind="replaced", old_fingerprint=prev_fp,
            new_fingerprint=fp, old_masked=s["pk_masked"], new_masked=check["key_masked"], old_mode=s["pk_mode"],
            new_mode=check["key_mode"], old_account=s["newest_account"],
            new_account=acct if acct is not None else s["key_account"]))
        return True, (fp, s["newest_account"])
    if acct and prev_fp is not None and s["pk_account"] is None:  # a later check of the new key learnt its account
        conn.execute(e.update().where(e.c.tenant_id == s["id"], e.c.new_fingerprint == fp, e.c.new_account.is_(None))
                     .values(new_account=acct))
    return False, event


def _tenant_known(conn: Connection, s: Mapping[str, Any], check_id: int, check: dict, rows: list[dict],
                  replaced: bool, event: tuple[str | None, str | None] | None) -> None:
    """The tenant's row in one UPDATE: the pointer, its copies of the latest check, the streak and summary (an
    answered check: the newest), the account signal, and the Stripe account once a check has seen it."""
    at, status, acct = check["checked_at"], check["status"], check["account"]
    values: dict[str, Any] = {}
    newest = status != "unreachable"
    if newest:
        state = latest.step((s["broken_since"], s["last_healthy_at"], s["worse_at"], s["last_status"]), status, at)
        values.update(last_check_id=check_id, last_checked_at=at, **latest.tenant_values(check),
                      **latest.streak_values(state),
                      last_summary=latest.summary_of(status, check["refused"], check["key_kind"], rows),
                      last_account_changed=_changed(event, check["key_fingerprint"], acct))
    elif replaced:
        values["last_account_changed"] = _changed(event, s["last_key_fingerprint"], s["last_account"])
    if acct and (newest or s["account"] is None) and acct != s["account"]:
        values["account"] = acct
    if values:
        conn.execute(tenants_t.update().where(tenants_t.c.id == s["id"]).values(**values))
