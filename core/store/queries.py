"""Read side of the store: triage, history, drift and the fleet figures, aggregated in SQL.

"Latest check of a tenant" is the check tenants.last_check_id points at (newest checked_at, kept by
record_check; migration 0002). Since 0010 the tenant row also carries that check's status, score, key mode,
fingerprint, masked key and account, so the triage/fleet readers order, filter and count tenants from the tenant
rows and read checks only for the page shown; the top problem scopes and "shared key" read counters kept by
record_check (core/store/latest.py). Days are UTC days. Fleet figures leave archived tenants out unless
include_archived=True. Every function returns plain dicts (one per row) so pages can hand them to
pandas/plotly as they are.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone
from types import SimpleNamespace
from typing import Any, cast

import sqlalchemy as sa

from core.config import DEFAULT_ROTATION_DAYS
from core.engine.result import KEY_STATUSES, STATUSES
from core.store import rank
from core.store.db import Database
from core.store.models import (
    check_rows_t,
    checks_t,
    key_events_t,
    key_tenants_t,
    latest_problems_t,
    rollup_days_t,
    rollup_status_t,
    stripe_keys_t,
    tenants_t,
)
from core.store.rows import (
    CheckDetail,
    DriftRow,
    HistoryRow,
    LatestCheck,
    LatestPage,
    ProblemScope,
    ScoreBucket,
    StaleTenant,
    StatusMixDay,
    StoredRow,
    TenantName,
)
from core.store.rules import StoreInputError
from core.store.tenants import _get_tenant, _pick, _tenant_where, tenant_search
from core.store.types import utcnow

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


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


def _day_bounds(start: date | datetime | None, end: date | datetime | None):
    """[start 00:00 UTC, day after end 00:00 UTC) for inclusive dates; datetimes are used as they are."""
    lo = hi = None
    if start is not None:
        lo = _utc(start) if isinstance(start, datetime) else datetime.combine(start, time(), timezone.utc)
    if end is not None:
        hi = _utc(end) if isinstance(end, datetime) else datetime.combine(end + timedelta(days=1), time(), timezone.utc)
    return lo, hi


def _as_date(v) -> date:
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    return date.fromisoformat(str(v)[:10])


def _statuses(status: str | Iterable[str] | None) -> list[str] | None:
    if status is None:
        return None
    wanted = [status] if isinstance(status, str) else list(status)
    bad = [s for s in wanted if s not in STATUSES]
    if bad:
        raise StoreInputError(f"Unknown status {bad[0]!r}; use one of {', '.join(STATUSES)}.")
    return wanted


class _OnTenant:
    """The latest check's columns as the tenant row holds them (0010, core/store/latest.py): `.c.status` is
    tenants.last_status, and so on. Stands where the checks table would (`cc` below) for ordering, filtering and
    counting, so those read the tenant rows only (tenants never checked have last_check_id NULL: callers keep
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


def _latest_of(db: Database):
    """(FROM clause, latest-check columns): each tenant with the figures of its latest check, read from the tenant
    row itself (0010); no check is read. Callers add HAS_LATEST."""
    return t, ON_TENANT


def _latest_base(db: Database, include_archived: bool, *, raw: bool = False):
    """SELECT over the tenants with a latest check, and where its columns come from. raw: join the checks
    themselves (the pre-0010 way; tests compare both)."""
    if raw:
        q, cc = sa.select().select_from(t.join(c, c.c.id == t.c.last_check_id)), c
    else:
        froms, cc = _latest_of(db)
        q = sa.select().select_from(froms).where(HAS_LATEST)
    if not include_archived:
        q = q.where(t.c.archived.is_(False))
    return q, cc


FLAGS: dict[str, str] = {
    "key_replaced": "key replaced in the last 7 days",
    "mode_changed": "mode changed (live ↔ test) with the current key",
    "account_changed": "another Stripe account with the current key",
    "mode_mismatch": "a key in the wrong mode for the tenant (test key on a live tenant)",
    "rotation_due": "key due for rotation",
    "shared_key": "the same key recorded for another tenant",
}
REPLACED_RECENT_DAYS = 7


def _lifecycle_columns(now: datetime, rotation_days: int, cc=c, base=None) -> dict:
    """SQL expressions over the latest check and its tenant `t`: the key lifecycle signals Triage shows, and the
    FROM clause they need (key "froms"; see _lifecycle_froms).

    The latest replacement event of the tenant counts when it brought the tenant's current key. `cc`: where the
    latest check's columns come from (checks itself, or _latest_of's copies on the tenant row, whose FROM is
    `base`)."""
    ev = e.alias("ev")
    # the tenant's newest event: one index seek per tenant (ix_key_events_tenant_id_at), not every tenant's events
    last_event = ev.c.id == (
        sa.select(sa.func.max(e.c.id)).where(e.c.tenant_id == t.c.id).correlate(t).scalar_subquery()
    )
    current = sa.and_(ev.c.id.is_not(None), ev.c.new_fingerprint == cc.c.key_fingerprint)
    # the key was recorded for another tenant: key_tenants (0010) counts the tenants of each key
    shared = key_tenants_t.c.tenants > 1
    cutoff = now - timedelta(days=rotation_days)
    recent = now - timedelta(days=REPLACED_RECENT_DAYS)
    flags = {
        "key_replaced": sa.and_(current, ev.c.at >= recent),
        "mode_changed": sa.and_(current, ev.c.old_mode.is_not(None), cc.c.key_mode.is_not(None),
                                ev.c.old_mode != cc.c.key_mode),
        "account_changed": sa.and_(current, ev.c.old_account.is_not(None), cc.c.account.is_not(None),
                                   ev.c.old_account != cc.c.account),
        "mode_mismatch": sa.and_(t.c.expected_mode.is_not(None), cc.c.key_mode.is_not(None),
                                 t.c.expected_mode != cc.c.key_mode),
        "rotation_due": sa.and_(k.c.first_seen_at.is_not(None), k.c.first_seen_at <= cutoff, cc.c.status != "invalid"),
        "shared_key": sa.and_(cc.c.key_fingerprint.is_not(None), shared),
    }
    joins = (last_event, ev)
    lc = {"flags": flags, "joins": joins, "ev": ev, "cc": cc}
    lc["froms"] = _lifecycle_froms(lc, base=base)
    return lc


def _lifecycle_froms(lc: dict, base=None):
    """tenants ⋈ their latest check, with the tenant's last key event and the key's first-seen row (outer joins:
    at most one row each, so a tenant is still one row). `base`: a page of ids (a subquery with `tid`) to join
    the tenants to, or the FROM of _latest_of (lc["cc"] then names the latest check's columns there)."""
    last_event, ev = lc["joins"]
    cc = lc["cc"]
    if base is None:
        froms = t.join(c, c.c.id == t.c.last_check_id)
    elif isinstance(base, sa.Subquery):  # a page of tenant ids
        froms = base.join(t, t.c.id == base.c.tid).join(c, c.c.id == t.c.last_check_id)
    else:  # tenants with their latest check already (_latest_of)
        froms = base
    return (froms.outerjoin(ev, last_event).outerjoin(k, k.c.fingerprint == cc.c.key_fingerprint)
            .outerjoin(key_tenants_t, key_tenants_t.c.fingerprint == cc.c.key_fingerprint))


def _lifecycle_select(lc: dict, froms):
    ev = lc["ev"]
    return sa.select(*TENANT_COLUMNS, *CHECK_COLUMNS, *SUMMARY_COLUMNS).select_from(froms).add_columns(
        k.c.first_seen_at.label("key_first_seen_at"),
        sa.case((ev.c.new_fingerprint == c.c.key_fingerprint, ev.c.at), else_=None).label("replaced_at"),
        sa.case((ev.c.new_fingerprint == c.c.key_fingerprint, ev.c.old_masked), else_=None).label("replaced_from"),
        *(sa.case((cond, True), else_=False).label(name) for name, cond in lc["flags"].items()),
    )


# 0015: the latest check's summary and the tenant's streak, on the tenant row (core/store/latest.py)
SUMMARY_COLUMNS = [
    t.c.last_summary.label("summary"),
    t.c.broken_since,
    t.c.last_healthy_at,
    t.c.worse_at,
    t.c.last_account_changed,
]
ORDERS = ("impact", "status")
WORSE_HOURS = 24


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
    then `flag` must be None); `cc`: where the latest check's columns come from (see _latest_of)."""
    q = q.where(HAS_LATEST)
    if worse_since is not None:
        q = q.where(t.c.worse_at >= _utc(worse_since))
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


def latest_checks(db: Database, status: str | Iterable[str] | None = None,
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
    now = _utc(now) if now else utcnow()
    filters: dict[str, Any] = {"status": status, "mode": mode, "stale_days": stale_days, "search": search,
                               "flag": flag, "include_archived": include_archived, "now": now,
                               "worse_since": worse_since, "missing": missing, "excess": excess}
    return _latest(db, filters, rotation_days, limit, offset, with_total=False, order=order)[0]


def _latest(db: Database, filters: dict[str, Any], rotation_days: int | None, limit: int | None,
            offset: int | None, *, with_total: bool, order: str = "impact") -> tuple[list[LatestCheck], int | None]:
    """latest_checks' rows; with_total (a slice only): also how many rows the filters give, counted by the same
    query (None when the slice is empty, e.g. past the end)."""
    now: datetime = filters["now"]
    rot = int(rotation_days) if rotation_days is not None else DEFAULT_ROTATION_DAYS
    _known_order(order)  # an unknown order is refused before the database is touched
    if limit is None and not offset:
        lc = _lifecycle_columns(now, rot)
        q = _latest_filtered(_lifecycle_select(lc, _lifecycle_froms(lc)), flags=lc["flags"], **filters)
        q = q.order_by(*(x.desc() if desc else x.asc() for x, desc in order_keys(order)))
    else:
        # A slice: first the slice's tenant ids in triage order, reading only what the filters and the order
        # need; then the lifecycle columns for those rows only (not for every tenant before sorting).
        froms, cc = _latest_of(db)
        inner_lc = _lifecycle_columns(now, rot, cc, froms) if filters["flag"] is not None else None
        if inner_lc is not None:
            froms = inner_lc["froms"]
        keys = order_keys(order, cc)
        cols = [t.c.id.label("tid"), *(x.label(f"k{i}") for i, (x, _) in enumerate(keys))]
        if with_total:
            cols.append(sa.func.count().over().label("total"))
        ids = sa.select(*cols).select_from(froms)
        ids = _latest_filtered(ids, flags=inner_lc["flags"] if inner_lc is not None else None, cc=cc, **filters)
        ids = ids.order_by(*(x.desc() if desc else x.asc() for x, desc in keys))
        if limit is not None:
            ids = ids.limit(max(int(limit), 0))
        if offset:
            ids = ids.offset(max(int(offset), 0))
        page = ids.subquery("page")
        lc = _lifecycle_columns(now, rot)
        q = _lifecycle_select(lc, _lifecycle_froms(lc, page)).order_by(
            *(page.c[f"k{i}"].desc() if desc else page.c[f"k{i}"].asc() for i, (_, desc) in enumerate(keys)))
        if with_total:
            q = q.add_columns(page.c.total.label("_total"))
    with db.connect() as conn:
        out = [cast(LatestCheck, dict(row._mapping)) for row in conn.execute(q)]
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


def count_latest(db: Database, status: str | Iterable[str] | None = None,
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
    q = _count_query(db, status=status, mode=mode, stale_days=stale_days, search=search, flag=flag,
                     rotation_days=rotation_days, include_archived=include_archived, now=now, worse_since=worse_since,
                     missing=missing, excess=excess)
    with db.connect() as conn:
        return int(conn.execute(q.add_columns(sa.func.count())).scalar() or 0)


def _count_query(db: Database, *, status, mode, stale_days, search, flag, rotation_days, include_archived, now,
                 worse_since, missing, excess):
    """SELECT (no columns yet) over the tenant rows latest_checks gives for these filters."""
    now = _utc(now) if now else utcnow()
    rot = int(rotation_days) if rotation_days is not None else DEFAULT_ROTATION_DAYS
    if flag is None:
        q, cc = _latest_base(db, True)
        flags = None
    else:
        froms, cc = _latest_of(db)
        lc = _lifecycle_columns(now, rot, cc, froms)
        q, flags = sa.select().select_from(lc["froms"]), lc["flags"]
    return _latest_filtered(q, status=status, mode=mode, stale_days=stale_days, search=search, flag=flag,
                            flags=flags, include_archived=include_archived, now=now, cc=cc, worse_since=worse_since,
                            missing=missing, excess=excess)


def latest_status_counts(db: Database, mode: str | None = None,
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
    q = _count_query(db, status=None, mode=mode, stale_days=stale_days, search=search, flag=flag,
                     rotation_days=rotation_days, include_archived=include_archived, now=now, worse_since=worse_since,
                     missing=missing, excess=excess)
    q = q.add_columns(t.c.last_status, sa.func.count()).group_by(t.c.last_status)
    with db.connect() as conn:
        got = {s_: int(n) for s_, n in conn.execute(q)}
    return {s_: got.get(s_, 0) for s_ in KEY_STATUSES}


PAGE_SIZES: tuple[int, ...] = (25, 50, 100, 200)
MAX_PAGE_SIZE = 1000


def latest_page(db: Database, status: str | Iterable[str] | None = None,
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
    now = _utc(now) if now else utcnow()
    filters: dict[str, Any] = {"status": status, "mode": mode, "stale_days": stale_days, "search": search,
                               "flag": flag, "include_archived": include_archived, "now": now,
                               "worse_since": worse_since, "missing": missing, "excess": excess}
    if total is not None:
        total = max(int(total), 0)
        page_ = min(max(int(page), 1), max(1, -(-total // size)))
        rows = _latest(db, filters, rotation_days, size, (page_ - 1) * size, with_total=False,
                       order=order)[0] if total else []
    else:
        rows, total = _latest(db, filters, rotation_days, size, (max(int(page), 1) - 1) * size, with_total=True,
                              order=order)
    if total is None:  # nothing on that page: count, then show the last page there is (if any)
        total = count_latest(db, **filters, rotation_days=rotation_days)
        pages = max(1, -(-total // size))
        rows = _latest(db, filters, rotation_days, size, (pages - 1) * size, with_total=False,
                       order=order)[0] if total else []
    pages = max(1, -(-total // size))
    page_ = min(max(int(page), 1), pages)
    offset = (page_ - 1) * size
    return {"rows": rows, "total": total, "page": page_, "pages": pages, "page_size": size,
            "first": offset + 1 if rows else 0, "last": offset + len(rows)}


def _tenant_id(conn, tenant: str | int) -> int | None:
    """The id of the tenant `tenant` names (see tenants._tenant_where; the exact name wins when a string names
    two), or None. One indexed lookup, so the per-tenant queries then read checks by tenant_id alone."""
    where = _tenant_where(tenant)  # refuses a bad name before the database is touched
    if isinstance(tenant, int):
        return tenant
    row = _pick(conn.execute(sa.select(t.c.id, t.c.name).where(where)), tenant)
    return None if row is None else int(row._mapping["id"])


def tenant_history(db: Database, tenant: str | int, *, limit: int | None = None) -> list[HistoryRow]:
    """Every check of one tenant (by name, slug or id), newest first; [] for an unknown tenant."""
    with db.connect() as conn:
        tid = _tenant_id(conn, tenant)
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


def get_check(db: Database, check_id: int) -> CheckDetail | None:
    """One check with its tenant and its rows (key "rows", in stored order), or None."""
    with db.connect() as conn:
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
    db: Database, tenant: str | int, *, new_key: bool = False, limit: int | None = None
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
    with db.connect() as conn:
        tid = _tenant_id(conn, tenant)
        if tid is None:
            return []
        out = [cast(DriftRow, dict(row._mapping)) for row in conn.execute(_drift_query(tid, new_key, limit))]
    for d in out:  # `at` came through a subquery: make sure it is an aware datetime on every backend
        if isinstance(d["at"], str):
            d["at"] = datetime.fromisoformat(d["at"])
        if d["at"].tzinfo is None:
            d["at"] = d["at"].replace(tzinfo=timezone.utc)
    return out


def _drift_query(tenant_id: int, new_key: bool, limit: int | None):
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
        .where(c.c.tenant_id == tenant_id)
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


def _fleet_checks(start, end, include_archived: bool):
    lo, hi = _day_bounds(start, end)
    conds = []
    if lo is not None:
        conds.append(c.c.checked_at >= lo)
    if hi is not None:
        conds.append(c.c.checked_at < hi)
    if not include_archived:
        conds.append(
            c.c.tenant_id.not_in(sa.select(t.c.id).where(t.c.archived.is_(True)).scalar_subquery())
        )
    return conds


def _rollup_days(start: date | datetime | None, end: date | datetime | None) -> tuple[date | None, date | None]:
    """Inclusive UTC days for the rollup: a date as it is, a datetime by its UTC day."""

    def day(v: date | datetime | None) -> date | None:
        if v is None:
            return None
        return _utc(v).date() if isinstance(v, datetime) else v

    return day(start), day(end)


def _rollup_where(table: sa.TableClause, start, end, include_archived: bool) -> list:
    lo, hi = _rollup_days(start, end)
    conds: list = []
    if lo is not None:
        conds.append(table.c.day >= lo)
    if hi is not None:
        conds.append(table.c.day <= hi)
    if not include_archived:
        conds.append(table.c.archived == sa.false())
    return conds


def status_mix_per_day(db: Database, start: date | datetime | None = None,
    end: date | datetime | None = None,
    *,
    include_archived: bool = False,
) -> list[StatusMixDay]:
    """Per UTC day: how many tenants ended the day in each status.

    Each tenant counts once per day it was checked, with the status of its LAST check that day (so a
    tenant checked ten times on one day is one tenant, not ten checks); checks Stripe never answered
    (unreachable) are left out. `start`/`end` are inclusive UTC days (a datetime stands for its UTC day).
    Returns [{"day": date, "invalid": n, "failing": n, "incomplete": n, "attention": n, "healthy": n,
    "total": n}] oldest first, only days with checks. Read from the daily rollup (0008, core/store/rollup.py).
    """
    rs = rollup_status_t
    q = (
        sa.select(rs.c.day, rs.c.status, sa.func.sum(rs.c.tenants))
        .where(*_rollup_where(rs, start, end, include_archived))
        .group_by(rs.c.day, rs.c.status)
        .order_by(rs.c.day)
    )
    days: dict[date, dict[str, Any]] = {}
    with db.connect() as conn:
        for d, status, n in conn.execute(q):
            if not n:  # rollup rows may stay at 0 (an archived tenant's counts moved away)
                continue
            key = _as_date(d)
            row = days.setdefault(key, {"day": key, **{s: 0 for s in KEY_STATUSES}, "total": 0})
            row[status] = row.get(status, 0) + int(n)
            row["total"] += int(n)
    return [cast(StatusMixDay, days[k]) for k in sorted(days)]


def checks_per_day(db: Database, start: date | datetime | None = None,
    end: date | datetime | None = None,
    *,
    include_archived: bool = False,
) -> list[dict]:
    """Per UTC day: number of checks, of distinct tenants checked, and of checks Stripe never answered
    (unreachable: our outage, not the tenants'). [{"day", "checks", "tenants", "unreachable"}] oldest first,
    only days with checks. `start`/`end` are inclusive UTC days (a datetime stands for its UTC day). Read from
    the daily rollup (0008)."""
    rd = rollup_days_t
    q = (
        sa.select(rd.c.day, sa.func.sum(rd.c.checks), sa.func.sum(rd.c.tenants), sa.func.sum(rd.c.unreachable))
        .where(*_rollup_where(rd, start, end, include_archived))
        .group_by(rd.c.day)
        .order_by(rd.c.day)
    )
    with db.connect() as conn:
        return [{"day": _as_date(d), "checks": int(n), "tenants": int(nt), "unreachable": int(u or 0)}
                for d, n, nt, u in conn.execute(q) if n]


def _raw_status_mix_per_day(db: Database, start: date | datetime | None = None,
    end: date | datetime | None = None,
    *,
    include_archived: bool = False,
) -> list[StatusMixDay]:
    """status_mix_per_day computed from the raw checks (what the rollup must equal; tests compare them).
    Datetime bounds are exact here. Walks every check in the range: too slow for the pages at fleet size."""
    # "last check of its day" = the tenant's next check (in time order) is on another day, or there is
    # none. LEAD over (tenant_id, checked_at, id) reads the covering index in order: no sort, no lookups.
    day = sa.func.date(c.c.checked_at)
    ranked = (
        sa.select(
            day.label("day"),
            c.c.status,
            sa.func.lead(c.c.checked_at)
            .over(partition_by=c.c.tenant_id, order_by=(c.c.checked_at, c.c.id))
            .label("next_at"),
        )
        .where(*_fleet_checks(start, end, include_archived))
        .where(c.c.status != "unreachable")  # says nothing about the key: out of the status mix
        .subquery("ranked")
    )
    q = (
        sa.select(ranked.c.day, ranked.c.status, sa.func.count().label("n"))
        .where(sa.or_(ranked.c.next_at.is_(None), sa.func.date(ranked.c.next_at) != ranked.c.day))
        .group_by(ranked.c.day, ranked.c.status)
        .order_by(ranked.c.day)
    )
    days: dict[date, dict[str, Any]] = {}
    with db.connect() as conn:
        for d, status, n in conn.execute(q):
            key = _as_date(d)
            row = days.setdefault(key, {"day": key, **{s: 0 for s in KEY_STATUSES}, "total": 0})
            row[status] = row.get(status, 0) + n
            row["total"] += n
    return [cast(StatusMixDay, days[k]) for k in sorted(days)]


def _raw_checks_per_day(db: Database, start: date | datetime | None = None,
    end: date | datetime | None = None,
    *,
    include_archived: bool = False,
) -> list[dict]:
    """checks_per_day computed from the raw checks (tests compare it with the rollup)."""
    day = sa.func.date(c.c.checked_at).label("day")
    unreachable = sa.func.sum(sa.case((c.c.status == "unreachable", 1), else_=0))
    q = (
        sa.select(day, sa.func.count().label("checks"), sa.func.count(sa.distinct(c.c.tenant_id)).label("tenants"),
                  unreachable.label("unreachable"))
        .where(*_fleet_checks(start, end, include_archived))
        .group_by(day)
        .order_by(day)
    )
    with db.connect() as conn:
        return [{"day": _as_date(d), "checks": n, "tenants": nt, "unreachable": int(u or 0)}
                for d, n, nt, u in conn.execute(q)]


def status_counts(db: Database, *, include_archived: bool = False) -> dict[str, int]:
    """How many tenants' latest check is in each status (every status present, worst first; an unreachable
    check is never a tenant's latest, so only KEY_STATUSES). Read from the tenant rows (0010)."""
    return _status_counts(db, include_archived=include_archived)


def _raw_status_counts(db: Database, *, include_archived: bool = False) -> dict[str, int]:
    """status_counts from the latest checks themselves (tests compare it with the tenant rows' copies)."""
    return _status_counts(db, include_archived=include_archived, raw=True)


def _status_counts(db: Database, *, include_archived: bool, raw: bool = False) -> dict[str, int]:
    q, cc = _latest_base(db, include_archived, raw=raw)
    q = q.add_columns(cc.c.status, sa.func.count()).group_by(cc.c.status)
    out: dict[str, int] = {s: 0 for s in KEY_STATUSES}
    with db.connect() as conn:
        for status, n in conn.execute(q):
            out[status] = out.get(status, 0) + n
    return out


def score_distribution(db: Database, bucket: int = 10, *, include_archived: bool = False
) -> list[ScoreBucket]:
    """Histogram of the latest check's score per tenant (scores 0–100).

    [{"from": 0, "to": 9, "tenants": n, "statuses": {"failing": n, …}}, …, {"from": 90, "to": 100, …}]: every
    bucket present, the last one includes 100, each with its tenants by latest status (the chart colours each
    bucket by status, since a score alone does not say the status). Read from the tenant rows (0010).
    """
    return _score_distribution(db, bucket, include_archived=include_archived)


def _raw_score_distribution(db: Database, bucket: int = 10, *, include_archived: bool = False
) -> list[ScoreBucket]:
    """score_distribution from the latest checks themselves (tests compare it with the tenant rows' copies)."""
    return _score_distribution(db, bucket, include_archived=include_archived, raw=True)


def _score_distribution(db: Database, bucket: int, *, include_archived: bool, raw: bool = False
) -> list[ScoreBucket]:
    if not isinstance(bucket, int) or not 1 <= bucket <= 100:
        raise StoreInputError("The score bucket width must be a whole number from 1 to 100.")
    nb = -(-100 // bucket)  # buckets covering 0..99; 100 goes in the last
    q, cc = _latest_base(db, include_archived, raw=raw)
    # grouped by (status, score), in ix_tenants_status's order (0017): no sort; the buckets are made here
    q = q.add_columns(cc.c.status, cc.c.score, sa.func.count()).group_by(cc.c.status, cc.c.score)
    counts = [0] * nb
    by_status: list[dict[str, int]] = [{} for _ in range(nb)]
    with db.connect() as conn:
        for status, score, n in conn.execute(q):
            i = nb - 1 if score >= 100 else 0 if score < 0 else min(score // bucket, nb - 1)
            counts[i] += n
            by_status[i][status] = by_status[i].get(status, 0) + n
    return [
        {"from": i * bucket, "to": 100 if i == nb - 1 else (i + 1) * bucket - 1, "tenants": counts[i],
         "statuses": by_status[i]}
        for i in range(nb)
    ]


def top_problem_scopes(db: Database, kind: str = "missing", limit: int = 10, *, include_archived: bool = False
) -> list[ProblemScope]:
    """The scopes most often `kind` ("missing" or "excess") in the tenants' latest checks.

    [{"scope", "resource", "category", "tenants", "share"}], most tenants first (then by scope, resource and
    category); share = tenants / tenants with a latest check. Read from the latest_problems counters (0010).
    """
    if kind not in ("missing", "excess"):
        raise StoreInputError(f"kind must be 'missing' or 'excess', not {kind!r}.")
    lp = latest_problems_t
    n = sa.func.sum(lp.c.tenants)
    q = (
        sa.select(lp.c.scope, lp.c.resource, lp.c.category, n.label("tenants"))
        .where(lp.c.kind == kind)
        .group_by(lp.c.scope, lp.c.resource, lp.c.category)
        .having(n > 0)
        .order_by(n.desc(), lp.c.scope, lp.c.resource, lp.c.category)
        .limit(int(limit))
    )
    if not include_archived:
        q = q.where(lp.c.archived.is_(False))
    return _problem_scopes(db, q, include_archived)


def _raw_top_problem_scopes(db: Database, kind: str = "missing", limit: int = 10, *, include_archived: bool = False
) -> list[ProblemScope]:
    """top_problem_scopes counted from the latest checks' rows (tests compare it with the counters)."""
    n = sa.func.count(sa.distinct(t.c.id)).label("tenants")
    q = (
        sa.select(r.c.scope, r.c.resource, r.c.category, n)
        .select_from(t.join(r, r.c.check_id == t.c.last_check_id))
        .where(r.c.verdict == kind, r.c.scope.is_not(None))
        .group_by(r.c.scope, r.c.resource, r.c.category)
        .order_by(n.desc(), r.c.scope, r.c.resource, r.c.category)
        .limit(int(limit))
    )
    if not include_archived:
        q = q.where(t.c.archived.is_(False))
    return _problem_scopes(db, q, include_archived)


def _problem_scopes(db: Database, q, include_archived: bool) -> list[ProblemScope]:
    total_q = sa.select(sa.func.count()).select_from(t).where(HAS_LATEST)
    if not include_archived:
        total_q = total_q.where(t.c.archived.is_(False))
    with db.connect() as conn:
        total = conn.execute(total_q).scalar() or 0
        rows = [cast(ProblemScope, dict(x._mapping)) for x in conn.execute(q)]
    for d in rows:
        d["share"] = d["tenants"] / total if total else 0.0
    return rows


def stale_tenants(db: Database, days: float, *, include_archived: bool = False, now: datetime | None = None
) -> list[StaleTenant]:
    """Tenants not checked for `days` days, never-checked ones first, then the stalest.

    [{"tenant_id", "tenant", "slug", "contact", "archived", "last_checked_at", "status", "score",
    "age_days"}]; last_checked_at/status/score/age_days are None for a tenant never checked.
    """
    if days is None or float(days) < 0:
        raise StoreInputError("The number of days must be zero or more.")
    now = _utc(now) if now else utcnow()
    cutoff = now - timedelta(days=float(days))
    q = (
        sa.select(*TENANT_COLUMNS, t.c.last_checked_at, c.c.status, c.c.score)
        .select_from(t.outerjoin(c, c.c.id == t.c.last_check_id))
        .where(sa.or_(t.c.last_checked_at.is_(None), t.c.last_checked_at < cutoff))
        .order_by(t.c.last_checked_at.is_not(None), t.c.last_checked_at, t.c.id)
    )
    if not include_archived:
        q = q.where(t.c.archived.is_(False))
    with db.connect() as conn:
        out = [cast(StaleTenant, dict(x._mapping)) for x in conn.execute(q)]
    for d in out:
        last = d["last_checked_at"]
        d["age_days"] = None if last is None else (now - last).total_seconds() / 86400
    return out


def last_accepted_check(db: Database, fingerprint: str) -> dict | None:
    """The newest check of the key with this fingerprint that Stripe accepted (any status but invalid or
    unreachable), or None. Lets a 401 on a key that worked before be told apart as revoked rather than mistyped."""
    q = (
        sa.select(c.c.id, c.c.checked_at, c.c.status)
        .where(c.c.key_fingerprint == fingerprint)
        .where(c.c.status.not_in(("invalid", "unreachable")))
        .order_by(c.c.checked_at.desc(), c.c.id.desc())
        .limit(1)
    )
    with db.connect() as conn:
        row = conn.execute(q).first()
    return dict(row._mapping) if row is not None else None


# --- key lifecycle (0006) ---------------------------------------------------------------------------------
EVENT_COLUMNS = [
    e.c.id.label("event_id"), e.c.at, e.c.kind, e.c.check_id, e.c.old_fingerprint, e.c.new_fingerprint,
    e.c.old_masked, e.c.new_masked, e.c.old_mode, e.c.new_mode, e.c.old_account, e.c.new_account,
]


def _event_dict(row) -> dict:
    d = dict(row._mapping)
    d["mode_changed"] = bool(d["old_mode"] and d["new_mode"] and d["old_mode"] != d["new_mode"])
    d["account_changed"] = bool(d["old_account"] and d["new_account"] and d["old_account"] != d["new_account"])
    return d


def key_events(db: Database, tenant: str | int) -> list[dict]:
    """A tenant's key replacements, newest first: at, old/new masked key, fingerprint, mode and account, plus
    mode_changed and account_changed; [] for an unknown tenant."""
    with db.connect() as conn:
        tid = _tenant_id(conn, tenant)
        if tid is None:
            return []
        q = sa.select(*EVENT_COLUMNS).where(e.c.tenant_id == tid).order_by(e.c.at.desc(), e.c.id.desc())
        return [_event_dict(x) for x in conn.execute(q)]


def key_first_seen(db: Database, fingerprint: str) -> datetime | None:
    """When Key Health first saw the key with this fingerprint (any tenant), or None."""
    with db.connect() as conn:
        return _key_first_seen(conn, fingerprint)


def _key_first_seen(conn, fingerprint: str) -> datetime | None:
    return conn.execute(sa.select(k.c.first_seen_at).where(k.c.fingerprint == fingerprint)).scalar()


def tenants_with_key(db: Database, fingerprint: str) -> list[dict]:
    """Every tenant a check of this key was recorded for: [{"tenant_id", "tenant", "slug"}] by name."""
    with db.connect() as conn:
        return _tenants_with_key(conn, fingerprint)


def _tenants_with_key(conn, fingerprint: str) -> list[dict]:
    q = (
        sa.select(t.c.id.label("tenant_id"), t.c.name.label("tenant"), t.c.slug)
        .where(t.c.id.in_(sa.select(c.c.tenant_id).where(c.c.key_fingerprint == fingerprint)))
        .order_by(sa.func.lower(t.c.name), t.c.id)
    )
    return [dict(x._mapping) for x in conn.execute(q)]


def key_history(db: Database, tenant: str | None, fingerprint: str | None) -> dict:
    """What a check's lifecycle reads, in ONE read transaction: {"tenant": the tenant row or None,
    "previous_key": previous_key(tenant) or None, "first_seen": key_first_seen(fingerprint) or None,
    "tenants_with_key": tenants_with_key(fingerprint) ([] without a fingerprint)}."""
    if tenant is not None:
        _tenant_where(tenant)  # a bad name is refused before the database is touched
    out: dict[str, Any] = {"tenant": None, "previous_key": None, "first_seen": None, "tenants_with_key": []}
    with db.connect() as conn:
        if tenant is not None:
            out["tenant"] = found = _get_tenant(conn, tenant)
            if found is not None:
                out["previous_key"] = _previous_key(conn, found["id"], None)
        if fingerprint:
            out["first_seen"] = _key_first_seen(conn, fingerprint)
            if tenant is not None:
                out["tenants_with_key"] = _tenants_with_key(conn, fingerprint)
    return out


def shared_keys(db: Database, tenant: str | int) -> list[dict]:
    """The tenant's keys that were also recorded for other tenants: [{"fingerprint", "key_masked",
    "others": [tenant names]}], one per shared key."""
    with db.connect() as conn:
        tid = _tenant_id(conn, tenant)
        if tid is None:
            return []
        mine = [fp for (fp,) in conn.execute(
            sa.select(c.c.key_fingerprint).where(c.c.tenant_id == tid, c.c.key_fingerprint.is_not(None)).distinct())]
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


def previous_key(db: Database, tenant: str | int, *, before: datetime | None = None) -> dict | None:
    """The tenant's newest check with a key fingerprint (before `before`), and the newest account its checks
    saw: {"key_fingerprint", "key_masked", "key_mode", "checked_at", "account"} or None."""
    with db.connect() as conn:
        tid = _tenant_id(conn, tenant)
        return None if tid is None else _previous_key(conn, tid, before)


def _previous_key(conn, tid: int, before: datetime | None) -> dict | None:
    """previous_key for the tenant with id `tid`, in one statement (the account is a scalar subquery)."""
    conds = [c.c.tenant_id == tid, c.c.key_fingerprint.is_not(None)]
    if before is not None:
        conds.append(c.c.checked_at < _utc(before))
    newest = (c.c.checked_at.desc(), c.c.id.desc())
    account = (sa.select(c.c.account).where(*conds, c.c.account.is_not(None)).order_by(*newest).limit(1)
               .scalar_subquery().label("account"))
    row = conn.execute(sa.select(c.c.key_fingerprint, c.c.key_masked, c.c.key_mode, c.c.checked_at, account)
                       .where(*conds).order_by(*newest).limit(1)).first()
    return None if row is None else dict(row._mapping)


def lifecycle_counts(
    db: Database, *, rotation_days: int | None = None, include_archived: bool = False, now: datetime | None = None,
) -> dict[str, int]:
    """Fleet: how many tenants (by their latest check) have each key-lifecycle flag (see FLAGS), plus
    "mode_or_account_changed".

    The same flags latest_checks computes per row, counted from where each one lives instead of joining every
    tenant to its events and keys (20,000 tenants: 60,000 index seeks): the wrong mode from the tenant rows; the
    replacement flags from each tenant's newest key event; rotation from the keys first seen before the cutoff;
    shared keys from the keys recorded for more than one tenant (the last two through
    ix_tenants_last_key_fingerprint, 0017)."""
    now = _utc(now) if now else utcnow()
    rot = int(rotation_days) if rotation_days is not None else DEFAULT_ROTATION_DAYS
    latest = [HAS_LATEST] if include_archived else [HAS_LATEST, t.c.archived.is_(False)]

    def count(cond) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)

    mismatch = sa.and_(t.c.expected_mode.is_not(None), t.c.last_key_mode.is_not(None),
                       t.c.expected_mode != t.c.last_key_mode)
    newest = sa.select(e.c.tenant_id, sa.func.max(e.c.id).label("id")).group_by(e.c.tenant_id).subquery("newest")
    ev = e.alias("ev")
    mode = sa.and_(ev.c.old_mode.is_not(None), t.c.last_key_mode.is_not(None), ev.c.old_mode != t.c.last_key_mode)
    account = sa.and_(ev.c.old_account.is_not(None), t.c.last_account.is_not(None),
                      ev.c.old_account != t.c.last_account)
    events = (sa.select(count(ev.c.at >= now - timedelta(days=REPLACED_RECENT_DAYS)).label("key_replaced"),
                        count(mode).label("mode_changed"), count(account).label("account_changed"),
                        count(sa.or_(mode, account)).label("mode_or_account_changed"))
              .select_from(newest.join(ev, ev.c.id == newest.c.id).join(t, t.c.id == newest.c.tenant_id))
              .where(ev.c.new_fingerprint == t.c.last_key_fingerprint, *latest))
    by_key = t.c.last_key_fingerprint
    old_keys = sa.select(k.c.fingerprint).where(k.c.first_seen_at <= now - timedelta(days=rot))
    rotation = sa.select(sa.func.count()).where(by_key.in_(old_keys), t.c.last_status != "invalid", *latest)
    shared_keys = sa.select(key_tenants_t.c.fingerprint).where(key_tenants_t.c.tenants > 1)
    shared = sa.select(sa.func.count()).where(by_key.in_(shared_keys), *latest)
    with db.connect() as conn:
        out = {name: int(n) for name, n in conn.execute(events).one()._mapping.items()}
        out["mode_mismatch"] = int(conn.execute(sa.select(count(mismatch)).where(*latest)).scalar_one())
        out["rotation_due"] = int(conn.execute(rotation).scalar_one())
        out["shared_key"] = int(conn.execute(shared).scalar_one())
    return {name: out[name] for name in [*FLAGS, "mode_or_account_changed"]}


def replaced_tenants(db: Database, since: datetime, *, include_archived: bool = False) -> int:
    """How many tenants had their key replaced at or after `since`."""
    q = sa.select(sa.func.count(sa.distinct(e.c.tenant_id))).where(e.c.at >= _utc(since))
    if not include_archived:
        q = q.where(e.c.tenant_id.not_in(sa.select(t.c.id).where(t.c.archived.is_(True)).scalar_subquery()))
    with db.connect() as conn:
        return int(conn.execute(q).scalar() or 0)


def unreachable_share(
    db: Database, start: date | datetime | None = None, end: date | datetime | None = None, *,
    include_archived: bool = False,
) -> dict:
    """Of the checks in the date range (inclusive UTC days; a datetime stands for its UTC day), how many Stripe
    never answered: {"checks", "unreachable", "share"}. Read from the daily rollup (0008)."""
    rd = rollup_days_t
    q = sa.select(sa.func.sum(rd.c.checks), sa.func.sum(rd.c.unreachable)).where(
        *_rollup_where(rd, start, end, include_archived)
    )
    with db.connect() as conn:
        n, u = conn.execute(q).first() or (0, 0)
    n, u = int(n or 0), int(u or 0)
    return {"checks": n, "unreachable": u, "share": u / n if n else 0.0}


def _raw_unreachable_share(
    db: Database, start: date | datetime | None = None, end: date | datetime | None = None, *,
    include_archived: bool = False,
) -> dict:
    """unreachable_share computed from the raw checks (tests compare it with the rollup)."""
    q = sa.select(sa.func.count(), sa.func.sum(sa.case((c.c.status == "unreachable", 1), else_=0))).where(
        *_fleet_checks(start, end, include_archived)
    )
    with db.connect() as conn:
        n, u = conn.execute(q).first() or (0, 0)
    n, u = int(n or 0), int(u or 0)
    return {"checks": n, "unreachable": u, "share": u / n if n else 0.0}


def tenant_names(db: Database, *, include_archived: bool = False) -> list[TenantName]:
    """Every tenant's name and slug, by name (case-insensitive): what the pages' tenant pickers list. Two columns of
    the tenants table only, so it stays quick at 20,000 tenants (list_tenants also joins each latest check)."""
    q = sa.select(t.c.name, t.c.slug).order_by(sa.func.lower(t.c.name), t.c.id)
    if not include_archived:
        q = q.where(t.c.archived.is_(False))
    with db.connect() as conn:
        return [{"name": name, "slug": slug} for name, slug in conn.execute(q)]
