"""One tenant's history and its keys: its checks (newest first), one check with its rows, drift between
consecutive checks of the same key, and the key lifecycle reads (replacements, first sightings, shared keys, the
previous key) a check's lifecycle and the tenant page use. A tenant is looked up once (sql.tenant_id); its checks
are then read by the (tenant_id, checked_at, id, status) index.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.store.db import Database
from core.store.rows import CheckDetail, DriftRow, HistoryRow, StoredRow
from core.store.sql import (
    CHECK_COLUMNS,
    ROW_COLUMNS,
    TENANT_COLUMNS,
    c,
    e,
    get_tenant_row,
    k,
    r,
    t,
    tenant_id,
    tenant_where,
    utc,
)

EVENT_COLUMNS = [
    e.c.id.label("event_id"), e.c.at, e.c.kind, e.c.check_id, e.c.old_fingerprint, e.c.new_fingerprint,
    e.c.old_masked, e.c.new_masked, e.c.old_mode, e.c.new_mode, e.c.old_account, e.c.new_account,
]


def _drift_query(tid: int, new_key: bool, limit: int | None):
    probed = (c.c.n_ok + c.c.n_missing + c.c.n_excess + c.c.n_unknown + c.c.n_not_applicable) > 0
    order = (c.c.checked_at, c.c.id)
    seq = (
        sa.select(
            c.c.id,
            c.c.checked_at,
            c.c.key_fingerprint.label("fp"),
            c.c.key_masked.label("masked"),
            sa.func.lag(c.c.id).over(order_by=order).label("prev_id"),
            sa.func.lag(c.c.key_fingerprint).over(order_by=order).label("prev_fp"),
            sa.func.lag(c.c.key_masked).over(order_by=order).label("prev_masked"),
        )
        .where(c.c.tenant_id == tid)
        .where(probed)
        .subquery("seq")
    )
    same_key = sa.and_(seq.c.fp.is_not(None), seq.c.prev_fp == seq.c.fp)
    cur = r.alias("cur")
    prev = r.alias("prev")
    q = (
        sa.select(
            seq.c.checked_at.label("at"),
            cur.c.scope,
            cur.c.resource,
            cur.c.category,
            prev.c.granted.label("from_granted"),
            cur.c.granted.label("to_granted"),
            prev.c.verdict.label("from_verdict"),
            cur.c.verdict.label("to_verdict"),
            seq.c.id.label("check_id"),
            seq.c.prev_id.label("from_check_id"),
            seq.c.prev_masked.label("from_key"),
            seq.c.masked.label("to_key"),
        )
        .select_from(
            seq.join(cur, cur.c.check_id == seq.c.id).join(
                prev,
                sa.and_(
                    prev.c.check_id == seq.c.prev_id,
                    prev.c.scope == cur.c.scope,
                    prev.c.resource == cur.c.resource,
                ),
            )
        )
        .where(cur.c.scope.is_not(None))
        .where(sa.not_(same_key) if new_key else same_key)
        .where(sa.or_(prev.c.granted.is_distinct_from(cur.c.granted), prev.c.verdict != cur.c.verdict))
        .order_by(seq.c.checked_at.desc(), seq.c.id.desc(), cur.c.category, cur.c.scope, cur.c.resource)
    )
    if limit is not None:
        q = q.limit(int(limit))
    return q


def _event_dict(row) -> dict:
    d = dict(row._mapping)
    d["mode_changed"] = bool(d["old_mode"] and d["new_mode"] and d["old_mode"] != d["new_mode"])
    d["account_changed"] = bool(d["old_account"] and d["new_account"] and d["old_account"] != d["new_account"])
    return d


def _key_first_seen(conn: Connection, fingerprint: str) -> datetime | None:
    return conn.execute(sa.select(k.c.first_seen_at).where(k.c.fingerprint == fingerprint)).scalar()


def _tenants_with_key(conn: Connection, fingerprint: str) -> list[dict]:
    q = (
        sa.select(t.c.id.label("tenant_id"), t.c.name.label("tenant"), t.c.slug)
        .where(t.c.id.in_(sa.select(c.c.tenant_id).where(c.c.key_fingerprint == fingerprint)))
        .order_by(sa.func.lower(t.c.name), t.c.id)
    )
    return [dict(x._mapping) for x in conn.execute(q)]


def _previous_key(conn: Connection, tid: int, before: datetime | None) -> dict | None:
    """previous_key for the tenant with id `tid`, in one statement (the account is a scalar subquery)."""
    conds = [c.c.tenant_id == tid, c.c.key_fingerprint.is_not(None)]
    if before is not None:
        conds.append(c.c.checked_at < utc(before))
    newest = (c.c.checked_at.desc(), c.c.id.desc())
    account = (sa.select(c.c.account).where(*conds, c.c.account.is_not(None)).order_by(*newest).limit(1)
               .scalar_subquery().label("account"))
    row = conn.execute(sa.select(c.c.key_fingerprint, c.c.key_masked, c.c.key_mode, c.c.checked_at, account)
                       .where(*conds).order_by(*newest).limit(1)).first()
    return None if row is None else dict(row._mapping)

class HistoryQueries:
    """A tenant's history and its keys (composed into Store)."""

    db: Database

    def tenant_history(self, tenant: str | int, *, limit: int | None = None) -> list[HistoryRow]:
        """Every check of one tenant (by name, slug or id), newest first; [] for an unknown tenant."""
        with self.db.connect() as conn:
            tid = tenant_id(conn, tenant)
            if tid is None:
                return []
            q = (
                sa.select(*TENANT_COLUMNS, *CHECK_COLUMNS)
                .select_from(c.join(t, t.c.id == c.c.tenant_id))
                .where(c.c.tenant_id == tid)
                .order_by(c.c.checked_at.desc(), c.c.id.desc())
            )
            if limit is not None:
                q = q.limit(int(limit))
            out = [cast(HistoryRow, dict(row._mapping)) for row in conn.execute(q)]
        for d in out:
            if d["status"] == "unreachable":
                d["score"] = None  # an attempt that says nothing about the key has no score
        return out

    def get_check(self, check_id: int) -> CheckDetail | None:
        """One check with its tenant and its rows (key "rows", in stored order), or None."""
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(*TENANT_COLUMNS, *CHECK_COLUMNS)
                .select_from(c.join(t, t.c.id == c.c.tenant_id))
                .where(c.c.id == check_id)
            ).first()
            if row is None:
                return None
            out = cast(CheckDetail, dict(row._mapping))
            out["rows"] = [
                cast(StoredRow, dict(x._mapping))
                for x in conn.execute(sa.select(*ROW_COLUMNS).where(r.c.check_id == check_id).order_by(r.c.id))
            ]
            return out

    def drift(
        self, tenant: str | int, *, new_key: bool = False, limit: int | None = None
    ) -> list[DriftRow]:
        """Scopes whose granted level or verdict changed between consecutive checks of the SAME key of one
        tenant, newest first.

        "Consecutive" skips checks that probed nothing (no rows, e.g. an invalid key or Stripe unreachable), so
        a key that was rejected once and then fixed is compared with the last check that did probe. A key
        replaced by another is not drift: new_key=True gives instead the changes across each replacement (the
        first probed check of a new key against the last probed check before it), "changes with the new key".
        Rows are paired by (scope, resource); guide items with no scope and scopes present on one side only are
        not drift. Each dict: at, scope, resource, category, from_granted, to_granted, from_verdict, to_verdict,
        check_id, from_check_id, from_key, to_key (masked keys).
        """
        with self.db.connect() as conn:
            tid = tenant_id(conn, tenant)
            if tid is None:
                return []
            out = [cast(DriftRow, dict(row._mapping)) for row in conn.execute(_drift_query(tid, new_key, limit))]
        for d in out:  # `at` came through a subquery: make sure it is an aware datetime on every backend
            if isinstance(d["at"], str):
                d["at"] = datetime.fromisoformat(d["at"])
            if d["at"].tzinfo is None:
                d["at"] = d["at"].replace(tzinfo=timezone.utc)
        return out

    def last_accepted_check(self, fingerprint: str) -> dict | None:
        """The newest check of the key with this fingerprint that Stripe accepted (any status but invalid or
        unreachable), or None. Lets a 401 on a key that worked before be told apart as revoked rather than mistyped."""
        q = (
            sa.select(c.c.id, c.c.checked_at, c.c.status)
            .where(c.c.key_fingerprint == fingerprint)
            .where(c.c.status.not_in(("invalid", "unreachable")))
            .order_by(c.c.checked_at.desc(), c.c.id.desc())
            .limit(1)
        )
        with self.db.connect() as conn:
            row = conn.execute(q).first()
        return dict(row._mapping) if row is not None else None

    def key_events(self, tenant: str | int) -> list[dict]:
        """A tenant's key replacements, newest first: at, old/new masked key, fingerprint, mode and account, plus
        mode_changed and account_changed; [] for an unknown tenant."""
        with self.db.connect() as conn:
            tid = tenant_id(conn, tenant)
            if tid is None:
                return []
            q = sa.select(*EVENT_COLUMNS).where(e.c.tenant_id == tid).order_by(e.c.at.desc(), e.c.id.desc())
            return [_event_dict(x) for x in conn.execute(q)]

    def key_first_seen(self, fingerprint: str) -> datetime | None:
        """When Key Health first saw the key with this fingerprint (any tenant), or None."""
        with self.db.connect() as conn:
            return _key_first_seen(conn, fingerprint)

    def tenants_with_key(self, fingerprint: str) -> list[dict]:
        """Every tenant a check of this key was recorded for: [{"tenant_id", "tenant", "slug"}] by name."""
        with self.db.connect() as conn:
            return _tenants_with_key(conn, fingerprint)

    def key_history(self, tenant: str | None, fingerprint: str | None) -> dict:
        """What a check's lifecycle reads, in ONE read transaction: {"tenant": the tenant row or None,
        "previous_key": previous_key(tenant) or None, "first_seen": key_first_seen(fingerprint) or None,
        "tenants_with_key": tenants_with_key(fingerprint) ([] without a fingerprint)}."""
        if tenant is not None:
            tenant_where(tenant)  # a bad name is refused before the database is touched
        out: dict[str, Any] = {"tenant": None, "previous_key": None, "first_seen": None, "tenants_with_key": []}
        with self.db.connect() as conn:
            if tenant is not None:
                out["tenant"] = found = get_tenant_row(conn, tenant)
                if found is not None:
                    out["previous_key"] = _previous_key(conn, found["id"], None)
            if fingerprint:
                out["first_seen"] = _key_first_seen(conn, fingerprint)
                if tenant is not None:
                    out["tenants_with_key"] = _tenants_with_key(conn, fingerprint)
        return out

    def shared_keys(self, tenant: str | int) -> list[dict]:
        """The tenant's keys that were also recorded for other tenants: [{"fingerprint", "key_masked",
        "others": [tenant names]}], one per shared key."""
        with self.db.connect() as conn:
            tid = tenant_id(conn, tenant)
            if tid is None:
                return []
            mine = [fp for (fp,) in conn.execute(
                sa.select(c.c.key_fingerprint).where(c.c.tenant_id == tid, c.c.key_fingerprint.is_not(None))
                .distinct())]
            if not mine:
                return []
            q = (
                sa.select(c.c.key_fingerprint, sa.func.max(c.c.key_masked).label("key_masked"), t.c.name)
                .select_from(c.join(t, t.c.id == c.c.tenant_id))
                .where(c.c.key_fingerprint.in_(mine), c.c.tenant_id != tid)
                .group_by(c.c.key_fingerprint, t.c.name)
                .order_by(c.c.key_fingerprint, t.c.name)
            )
            rows = conn.execute(q).all()
        out: dict[str, dict] = {}
        for fp, masked, name in rows:
            out.setdefault(fp, {"fingerprint": fp, "key_masked": masked, "others": []})["others"].append(name)
        return list(out.values())

    def previous_key(self, tenant: str | int, *, before: datetime | None = None) -> dict | None:
        """The tenant's newest check with a key fingerprint (before `before`), and the newest account its checks
        saw: {"key_fingerprint", "key_masked", "key_mode", "checked_at", "account"} or None."""
        with self.db.connect() as conn:
            tid = tenant_id(conn, tenant)
            return None if tid is None else _previous_key(conn, tid, before)
