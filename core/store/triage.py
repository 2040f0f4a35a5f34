"""Triage: each tenant's latest check, filtered, ordered by impact and paged, and the counts under the same filters.

"Latest check of a tenant" is the check tenants.last_check_id points at (newest checked_at, kept by record_check;
migration 0002). Since 0010 the tenant row also carries that check's status, score, key mode, fingerprint, masked
key and account (core/store/latest.py), so Triage orders, filters and counts tenants from the tenant rows and reads
checks only for the page shown. Every query returns plain dicts (core/store/rows.py).
"""
from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa

from core.config import DEFAULT_ROTATION_DAYS
from core.engine.result import KEY_STATUSES, STATUSES
from core.store import rank
from core.store.db import Database
from core.store.models import key_tenants_t
from core.store.rows import LatestCheck, LatestPage
from core.store.rules import StoreInputError
from core.store.sql import (
    CHECK_COLUMNS,
    HAS_LATEST,
    ON_TENANT,
    SUMMARY_COLUMNS,
    TENANT_COLUMNS,
    c,
    e,
    k,
    latest_base,
    latest_of,
    r,
    t,
    utc,
)
from core.store.tenants import tenant_search
from core.store.types import utcnow

FLAGS: dict[str, str] = {
    "key_replaced": "key replaced in the last 7 days",
    "mode_changed": "mode changed (live ↔ test) with the current key",
    "account_changed": "another Stripe account with the current key",
    "mode_mismatch": "a key in the wrong mode for the tenant (test key on a live tenant)",
    "rotation_due": "key due for rotation",
    "shared_key": "the same key recorded for another tenant",
}
REPLACED_RECENT_DAYS = 7
ORDERS = ("impact", "status")
WORSE_HOURS = 24
PAGE_SIZES: tuple[int, ...] = (25, 50, 100, 200)
MAX_PAGE_SIZE = 1000


def _statuses(status: str | Iterable[str] | None) -> list[str] | None:
    if status is None:
        return None
    wanted = [status] if isinstance(status, str) else list(status)
    bad = [s for s in wanted if s not in STATUSES]
    if bad:
        raise StoreInputError(f"Unknown status {bad[0]!r}; use one of {', '.join(STATUSES)}.")
    return wanted


# The lifecycle expressions are built once per source of the latest check's columns (checks, or their copies on
# the tenant row): building them took most of a Triage query's time. What depends on the time of the call (the
# rotation and "replaced lately" cutoffs) is a bound parameter, given at execution (_cutoffs).
_EV = e.alias("ev")
# the tenant's newest event: one index seek per tenant (ix_key_events_tenant_id_at), not every tenant's events
_LAST_EVENT = _EV.c.id == (
    sa.select(sa.func.max(e.c.id)).where(e.c.tenant_id == t.c.id).correlate(t).scalar_subquery()
)
_ROTATION_CUTOFF: sa.BindParameter[datetime] = sa.bindparam("kh_rotation_cutoff")
_REPLACED_SINCE: sa.BindParameter[datetime] = sa.bindparam("kh_replaced_since")


def _cutoffs(now: datetime, rotation_days: int) -> dict[str, datetime]:
    """The values of the lifecycle expressions' bound parameters at `now` (extra ones are ignored by a query that
    has none)."""
    return {"kh_rotation_cutoff": now - timedelta(days=rotation_days),
            "kh_replaced_since": now - timedelta(days=REPLACED_RECENT_DAYS)}


@functools.cache
def _lifecycle_flags(cc=c) -> dict[str, Any]:
    """SQL expressions over the latest check and its tenant `t`: the key lifecycle signals Triage shows (one per
    FLAGS entry). The latest replacement event of the tenant counts when it brought the tenant's current key.
    `cc`: where the latest check's columns come from (checks itself, or sql.latest_of's copies on the tenant row)."""
    ev = _EV
    current = sa.and_(ev.c.id.is_not(None), ev.c.new_fingerprint == cc.c.key_fingerprint)
    # the key was recorded for another tenant: key_tenants (0010) counts the tenants of each key
    shared = key_tenants_t.c.tenants > 1
    return {
        "key_replaced": sa.and_(current, ev.c.at >= _REPLACED_SINCE),
        "mode_changed": sa.and_(current, ev.c.old_mode.is_not(None), cc.c.key_mode.is_not(None),
                                ev.c.old_mode != cc.c.key_mode),
        "account_changed": sa.and_(current, ev.c.old_account.is_not(None), cc.c.account.is_not(None),
                                   ev.c.old_account != cc.c.account),
        "mode_mismatch": sa.and_(t.c.expected_mode.is_not(None), cc.c.key_mode.is_not(None),
                                 t.c.expected_mode != cc.c.key_mode),
        "rotation_due": sa.and_(k.c.first_seen_at.is_not(None), k.c.first_seen_at <= _ROTATION_CUTOFF,
                                cc.c.status != "invalid"),
        "shared_key": sa.and_(cc.c.key_fingerprint.is_not(None), shared),
    }


def _lifecycle_froms(base=None, cc=c):
    """tenants ⋈ their latest check, with the tenant's last key event and the key's first-seen row (outer joins:
    at most one row each, so a tenant is still one row). `base`: a page of ids (a subquery with `tid`) to join
    the tenants to, or the FROM of sql.latest_of (`cc` then names the latest check's columns there)."""
    if base is None:
        froms = t.join(c, c.c.id == t.c.last_check_id)
    elif isinstance(base, sa.Subquery):  # a page of tenant ids
        froms = base.join(t, t.c.id == base.c.tid).join(c, c.c.id == t.c.last_check_id)
    else:  # tenants with their latest check already (sql.latest_of)
        froms = base
    return (froms.outerjoin(_EV, _LAST_EVENT).outerjoin(k, k.c.fingerprint == cc.c.key_fingerprint)
            .outerjoin(key_tenants_t, key_tenants_t.c.fingerprint == cc.c.key_fingerprint))


@functools.cache
def _lifecycle_columns() -> tuple[Any, ...]:
    """The columns latest_checks gives for each row: the tenant's, its latest check's, the summary, and the
    lifecycle ones (over `checks` itself)."""
    ev = _EV
    return (*TENANT_COLUMNS, *CHECK_COLUMNS, *SUMMARY_COLUMNS,
            k.c.first_seen_at.label("key_first_seen_at"),
            sa.case((ev.c.new_fingerprint == c.c.key_fingerprint, ev.c.at), else_=None).label("replaced_at"),
            sa.case((ev.c.new_fingerprint == c.c.key_fingerprint, ev.c.old_masked), else_=None).label("replaced_from"),
            *(sa.case((cond, True), else_=False).label(name) for name, cond in _lifecycle_flags().items()))


def _lifecycle_select(froms):
    return sa.select(*_lifecycle_columns()).select_from(froms)


@functools.cache
def _whole_select():
    """latest_checks' SELECT over every tenant with a latest check (before its filters and order)."""
    return _lifecycle_select(_lifecycle_froms())


# 0015: the latest check's summary and the tenant's streak, on the tenant row (core/store/latest.py)


def _known_order(order: str) -> str:
    if order not in ORDERS:
        raise StoreInputError(f"Unknown order {order!r}; use one of {', '.join(ORDERS)}.")
    return order


def order_keys(order: str, cc=c) -> list[tuple[Any, bool]]:
    """Triage's order as (expression, descending) pairs.

    "impact" (the default): core/store/rank.py's impact rank (tenants that need nothing last; before them, tenants
    in production or on a live key; then severity, where a key signal weighs as failing; then tenants with a
    current bad streak), then the newest breakage first (broken_since, the first check of the current bad streak),
    then the stalest. Read from the tenant row (cc is ON_TENANT), the rank is the generated column
    tenants.triage_rank (0017), which ix_tenants_triage keeps in this order. "status": worst status first, then the
    stalest (the old order)."""
    if _known_order(order) == "status":
        return [(rank.status_rank(cc.c.status), False), (cc.c.checked_at, False), (t.c.id, False)]
    if cc is ON_TENANT:
        impact = t.c.triage_rank
    else:
        impact = rank.impact_rank(cc.c.status, cc.c.key_mode, t.c.expected_mode, t.c.last_account_changed,
                                  t.c.broken_since)
    return [(impact, False), (t.c.broken_since, True), (cc.c.checked_at, False), (t.c.id, False)]


def _scope_problem(kind: str, scope: str):
    """SQL: the tenant's latest check has `scope` with verdict `kind` (one index seek into its rows)."""
    if kind not in ("missing", "excess") or not isinstance(scope, str) or not scope.strip():
        raise StoreInputError("A permission filter names a scope and whether it is missing or excess.")
    return sa.exists().where(r.c.check_id == t.c.last_check_id, r.c.verdict == kind, r.c.scope == scope.strip())


def _latest_filtered(q, *, status, mode, stale_days, search, flag, flags: dict | None, include_archived: bool,
                     now: datetime, cc=c, worse_since: datetime | None = None, missing: str | None = None,
                     excess: str | None = None):
    """`q` narrowed by latest_checks' filters; `flags` are the lifecycle expressions (None: not joined, and
    then `flag` must be None); `cc`: where the latest check's columns come from (see sql.latest_of)."""
    q = q.where(HAS_LATEST)
    if worse_since is not None:
        q = q.where(t.c.worse_at >= utc(worse_since))
    if missing is not None:
        q = q.where(_scope_problem("missing", missing))
    if excess is not None:
        q = q.where(_scope_problem("excess", excess))
    if not include_archived:
        q = q.where(t.c.archived.is_(False))
    if flag is not None:
        wanted_flags = [flag] if isinstance(flag, str) else list(flag)
        bad = [f for f in wanted_flags if f not in FLAGS]
        if bad:
            raise StoreInputError(f"Unknown flag {bad[0]!r}; use one of {', '.join(FLAGS)}.")
        assert flags is not None
        for f in wanted_flags:
            q = q.where(flags[f])
    wanted = _statuses(status)
    if wanted is not None:
        q = q.where(cc.c.status.in_(wanted))
    if mode is not None:
        q = q.where(cc.c.key_mode == mode)
    if stale_days is not None:
        q = q.where(cc.c.checked_at < now - timedelta(days=float(stale_days)))
    if search and search.strip():
        q = q.where(tenant_search(search, cc.c.key_masked))
    return q

class TriageQueries:
    """Triage's reads (composed into Store)."""

    db: Database

    def latest_checks(
        self,
        status: str | Iterable[str] | None = None,
        mode: str | None = None,
        stale_days: float | None = None,
        search: str | None = None,
        *,
        flag: str | Iterable[str] | None = None,
        rotation_days: int | None = None,
        include_archived: bool = False,
        limit: int | None = None,
        offset: int | None = None,
        now: datetime | None = None,
        worse_since: datetime | None = None,
        missing: str | None = None,
        excess: str | None = None,
        order: str = "impact",
    ) -> list[LatestCheck]:
        """Triage: each tenant's latest check, by impact (see order_keys; order="status": worst status first, then
        stalest first).

        status: one status or several; mode: "live" | "test"; stale_days: only tenants whose latest check
        is older than that; search: case-insensitive substring of name, slug, account, contact or masked key;
        flag: only tenants with every given key-lifecycle flag (see FLAGS); worse_since: only tenants whose status got
        worse at or after that time (worse_at, 0015); missing / excess: only tenants whose latest check has that scope
        missing / in excess; limit/offset: one slice of that order (see latest_page for a page and the total).
        Each row also has summary (the short problem), broken_since, last_healthy_at, worse_at and
        last_account_changed (0015).
        Tenants never checked are not here (see stale_tenants). Each dict has the tenant's and the check's
        columns plus age_days, key_first_seen_at, key_age_days, replaced_at, replaced_from and one boolean per
        FLAGS entry. rotation_days: the key age after which rotation is due (the runtime passes
        KEYHEALTH_ROTATION_DAYS; DEFAULT_ROTATION_DAYS otherwise).
        """
        now = utc(now) if now else utcnow()
        filters: dict[str, Any] = {"status": status, "mode": mode, "stale_days": stale_days, "search": search,
                                   "flag": flag, "include_archived": include_archived, "now": now,
                                   "worse_since": worse_since, "missing": missing, "excess": excess}
        return self._latest(filters, rotation_days, limit, offset, with_total=False, order=order)[0]

    def _latest(self, filters: dict[str, Any], rotation_days: int | None, limit: int | None,
                offset: int | None, *, with_total: bool, order: str = "impact") -> tuple[list[LatestCheck], int | None]:
        """latest_checks' rows; with_total (a slice only): also how many rows the filters give, counted by the same
        query (None when the slice is empty, e.g. past the end)."""
        now: datetime = filters["now"]
        rot = int(rotation_days) if rotation_days is not None else DEFAULT_ROTATION_DAYS
        _known_order(order)  # an unknown order is refused before the database is touched
        if limit is None and not offset:
            q = _latest_filtered(_whole_select(), flags=_lifecycle_flags(), **filters)
            q = q.order_by(*(x.desc() if desc else x.asc() for x, desc in order_keys(order)))
        else:
            # A slice: first the slice's tenant ids in triage order, reading only what the filters and the order
            # need; then the lifecycle columns for those rows only (not for every tenant before sorting).
            froms, cc = latest_of()
            inner_flags = _lifecycle_flags(cc) if filters["flag"] is not None else None
            if inner_flags is not None:
                froms = _lifecycle_froms(froms, cc)
            keys = order_keys(order, cc)
            cols = [t.c.id.label("tid"), *(x.label(f"k{i}") for i, (x, _) in enumerate(keys))]
            if with_total:
                cols.append(sa.func.count().over().label("total"))
            ids = sa.select(*cols).select_from(froms)
            ids = _latest_filtered(ids, flags=inner_flags, cc=cc, **filters)
            ids = ids.order_by(*(x.desc() if desc else x.asc() for x, desc in keys))
            if limit is not None:
                ids = ids.limit(max(int(limit), 0))
            if offset:
                ids = ids.offset(max(int(offset), 0))
            page = ids.subquery("page")
            q = _lifecycle_select(_lifecycle_froms(page)).order_by(
                *(page.c[f"k{i}"].desc() if desc else page.c[f"k{i}"].asc() for i, (_, desc) in enumerate(keys)))
            if with_total:
                q = q.add_columns(page.c.total.label("_total"))
        with self.db.connect() as conn:
            out = [cast(LatestCheck, dict(row._mapping)) for row in conn.execute(q, _cutoffs(now, rot))]
        total = None
        for d in out:
            d["age_days"] = (now - d["checked_at"]).total_seconds() / 86400
            first = d["key_first_seen_at"]
            d["key_age_days"] = None if first is None else int((now - first).total_seconds() // 86400)
            flags_ = cast(dict[str, Any], d)
            for name in FLAGS:
                flags_[name] = bool(flags_[name])
            if with_total:
                total = int(flags_.pop("_total"))
        return out, total

    def count_latest(
        self,
        status: str | Iterable[str] | None = None,
        mode: str | None = None,
        stale_days: float | None = None,
        search: str | None = None,
        *,
        flag: str | Iterable[str] | None = None,
        rotation_days: int | None = None,
        include_archived: bool = False,
        now: datetime | None = None,
        worse_since: datetime | None = None,
        missing: str | None = None,
        excess: str | None = None,
    ) -> int:
        """How many rows latest_checks gives for the same filters (the lifecycle joins only when a flag is asked)."""
        q, params = self._count_query(status=status, mode=mode, stale_days=stale_days, search=search, flag=flag,
                                      rotation_days=rotation_days, include_archived=include_archived, now=now,
                                      worse_since=worse_since, missing=missing, excess=excess)
        with self.db.connect() as conn:
            return int(conn.execute(q.add_columns(sa.func.count()), params).scalar() or 0)

    def _count_query(self, *, status, mode, stale_days, search, flag, rotation_days, include_archived, now,
                     worse_since, missing, excess):
        """SELECT (no columns yet) over the tenant rows latest_checks gives for these filters, and the values of its
        bound cutoffs."""
        now = utc(now) if now else utcnow()
        rot = int(rotation_days) if rotation_days is not None else DEFAULT_ROTATION_DAYS
        if flag is None:
            q, cc = latest_base(True)
            flags = None
        else:
            froms, cc = latest_of()
            q, flags = sa.select().select_from(_lifecycle_froms(froms, cc)), _lifecycle_flags(cc)
        q = _latest_filtered(q, status=status, mode=mode, stale_days=stale_days, search=search, flag=flag,
                             flags=flags, include_archived=include_archived, now=now, cc=cc, worse_since=worse_since,
                             missing=missing, excess=excess)
        return q, _cutoffs(now, rot)

    def latest_status_counts(
        self,
        mode: str | None = None,
        stale_days: float | None = None,
        search: str | None = None,
        *,
        flag: str | Iterable[str] | None = None,
        rotation_days: int | None = None,
        include_archived: bool = False,
        now: datetime | None = None,
        worse_since: datetime | None = None,
        missing: str | None = None,
        excess: str | None = None,
    ) -> dict[str, int]:
        """Triage's figures under its filters: how many tenants latest_checks gives in each status for every filter
        but the status itself (every key status present, worst first; one GROUP BY over the tenant rows)."""
        q, params = self._count_query(status=None, mode=mode, stale_days=stale_days, search=search, flag=flag,
                                      rotation_days=rotation_days, include_archived=include_archived, now=now,
                                      worse_since=worse_since, missing=missing, excess=excess)
        q = q.add_columns(t.c.last_status, sa.func.count()).group_by(t.c.last_status)
        with self.db.connect() as conn:
            got = {s_: int(n) for s_, n in conn.execute(q, params)}
        return {s_: got.get(s_, 0) for s_ in KEY_STATUSES}

    def latest_page(
        self,
        status: str | Iterable[str] | None = None,
        mode: str | None = None,
        stale_days: float | None = None,
        search: str | None = None,
        *,
        flag: str | Iterable[str] | None = None,
        rotation_days: int | None = None,
        include_archived: bool = False,
        page: int = 1,
        page_size: int = 50,
        now: datetime | None = None,
        worse_since: datetime | None = None,
        missing: str | None = None,
        excess: str | None = None,
        order: str = "impact",
        total: int | None = None,
    ) -> LatestPage:
        """One page of latest_checks (same filters, same order) and where it sits: {"rows", "total", "page",
        "pages", "page_size", "first", "last"}. `page` counts from 1 and is clamped to 1..pages (a filter that
        shrank the list never leaves the caller past the end); first/last are the 1-based row numbers shown (0, 0
        when nothing matches). page_size: 1..MAX_PAGE_SIZE. total: how many rows these filters give, when the caller
        has counted them already (Triage sums latest_status_counts under the same filters): the page's query then
        sorts with a top-N sort instead of counting every row with a window."""
        size = int(page_size)
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise StoreInputError(f"The page size must be a whole number from 1 to {MAX_PAGE_SIZE}.")
        now = utc(now) if now else utcnow()
        filters: dict[str, Any] = {"status": status, "mode": mode, "stale_days": stale_days, "search": search,
                                   "flag": flag, "include_archived": include_archived, "now": now,
                                   "worse_since": worse_since, "missing": missing, "excess": excess}
        if total is not None:
            total = max(int(total), 0)
            page_ = min(max(int(page), 1), max(1, -(-total // size)))
            rows = self._latest(filters, rotation_days, size, (page_ - 1) * size, with_total=False,
                           order=order)[0] if total else []
        else:
            rows, total = self._latest(filters, rotation_days, size, (max(int(page), 1) - 1) * size, with_total=True,
                                  order=order)
        if total is None:  # nothing on that page: count, then show the last page there is (if any)
            total = self.count_latest(**filters, rotation_days=rotation_days)
            pages = max(1, -(-total // size))
            rows = self._latest(filters, rotation_days, size, (pages - 1) * size, with_total=False,
                           order=order)[0] if total else []
        pages = max(1, -(-total // size))
        page_ = min(max(int(page), 1), pages)
        offset = (page_ - 1) * size
        return {"rows": rows, "total": total, "page": page_, "pages": pages, "page_size": size,
                "first": offset + 1 if rows else 0, "last": offset + len(rows)}
