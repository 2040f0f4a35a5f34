"""Read side of the store: triage, history, drift and the fleet figures, aggregated in SQL.

"Latest check of a tenant" is the check tenants.last_check_id points at (newest checked_at, kept by
record_check; migration 0002). Days are UTC days. Fleet figures leave archived tenants out unless
include_archived=True. Every function returns plain dicts (one per row) so pages can hand them to
pandas/plotly as they are.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, cast

import sqlalchemy as sa

from core.engine.result import STATUSES
from core.store.db import Database
from core.store.models import check_rows_t, checks_t, tenants_t
from core.store.record import StoreInputError, _tenant_where, tenant_search
from core.store.rows import (
    AcceptedCheck,
    CheckDetail,
    ChecksPerDay,
    DriftRow,
    HistoryRow,
    LatestCheck,
    ProblemScope,
    ScoreBucket,
    StaleTenant,
    StatusMixDay,
    StoredRow,
)
from core.store.types import utcnow

c = checks_t
t = tenants_t
r = check_rows_t

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
]
TENANT_COLUMNS = [
    t.c.id.label("tenant_id"),
    t.c.name.label("tenant"),
    t.c.slug,
    t.c.contact,
    t.c.archived,
]
ROW_COLUMNS = [r.c.category, r.c.resource, r.c.scope, r.c.required, r.c.granted, r.c.verdict, r.c.reason]


def status_rank():
    """SQL expression: 0 for the worst status (invalid) … 4 for healthy, 5 for anything else."""
    return sa.case({s: i for i, s in enumerate(STATUSES)}, value=c.c.status, else_=len(STATUSES))


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


def _latest_base(include_archived: bool):
    q = sa.select().select_from(t.join(c, c.c.id == t.c.last_check_id))
    if not include_archived:
        q = q.where(t.c.archived.is_(False))
    return q


def latest_checks(db: Database, status: str | Iterable[str] | None = None,
    mode: str | None = None,
    stale_days: float | None = None,
    search: str | None = None,
    *,
    include_archived: bool = False,
    limit: int | None = None,
    now: datetime | None = None,
) -> list[LatestCheck]:
    """Triage: each tenant's latest check, worst status first (see STATUSES), then stalest first.

    status: one status or several; mode: "live" | "test"; stale_days: only tenants whose latest check
    is older than that; search: case-insensitive substring of name, slug, account, contact or masked key.
    Tenants never checked are not here (see stale_tenants). Each dict has the tenant's and the check's
    columns plus age_days.
    """
    now = _utc(now) if now else utcnow()
    q = _latest_base(include_archived).add_columns(*TENANT_COLUMNS, *CHECK_COLUMNS)
    wanted = _statuses(status)
    if wanted is not None:
        q = q.where(c.c.status.in_(wanted))
    if mode is not None:
        q = q.where(c.c.key_mode == mode)
    if stale_days is not None:
        q = q.where(c.c.checked_at < now - timedelta(days=float(stale_days)))
    if search and search.strip():
        q = q.where(tenant_search(search, c.c.key_masked))
    q = q.order_by(status_rank(), c.c.checked_at.asc(), t.c.id)
    if limit is not None:
        q = q.limit(int(limit))
    with db.connect() as conn:
        out = [cast(LatestCheck, dict(row._mapping)) for row in conn.execute(q)]
    for d in out:
        d["age_days"] = (now - d["checked_at"]).total_seconds() / 86400
    return out


def tenant_history(db: Database, tenant: str | int, *, limit: int | None = None) -> list[HistoryRow]:
    """Every check of one tenant (by name, slug or id), newest first; [] for an unknown tenant."""
    q = (
        sa.select(*TENANT_COLUMNS, *CHECK_COLUMNS)
        .select_from(c.join(t, t.c.id == c.c.tenant_id))
        .where(_tenant_where(tenant))
        .order_by(c.c.checked_at.desc(), c.c.id.desc())
    )
    if limit is not None:
        q = q.limit(int(limit))
    with db.connect() as conn:
        return [cast(HistoryRow, dict(row._mapping)) for row in conn.execute(q)]


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


def drift(db: Database, tenant: str | int, *, limit: int | None = None) -> list[DriftRow]:
    """Scopes whose granted level or verdict changed between consecutive checks of one tenant, newest first.

    "Consecutive" skips checks that probed nothing (no rows, e.g. an invalid key), so a key that was
    rejected once and then fixed is compared with the last check that did probe. Rows are paired by
    (scope, resource); guide items with no scope and scopes present on one side only are not drift.
    Each dict: at, scope, resource, category, from_granted, to_granted, from_verdict, to_verdict,
    check_id, from_check_id.
    """
    probed = (c.c.n_ok + c.c.n_missing + c.c.n_excess + c.c.n_unknown + c.c.n_not_applicable) > 0
    seq = (
        sa.select(
            c.c.id,
            c.c.checked_at,
            sa.func.lag(c.c.id).over(order_by=(c.c.checked_at, c.c.id)).label("prev_id"),
        )
        .select_from(c.join(t, t.c.id == c.c.tenant_id))
        .where(_tenant_where(tenant))
        .where(probed)
        .subquery("seq")
    )
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
        .where(sa.or_(prev.c.granted.is_distinct_from(cur.c.granted), prev.c.verdict != cur.c.verdict))
        .order_by(seq.c.checked_at.desc(), seq.c.id.desc(), cur.c.category, cur.c.scope, cur.c.resource)
    )
    if limit is not None:
        q = q.limit(int(limit))
    with db.connect() as conn:
        out = [cast(DriftRow, dict(row._mapping)) for row in conn.execute(q)]
    for d in out:  # `at` came through a subquery: make sure it is an aware datetime on every backend
        if isinstance(d["at"], str):
            d["at"] = datetime.fromisoformat(d["at"])
        if d["at"].tzinfo is None:
            d["at"] = d["at"].replace(tzinfo=timezone.utc)
    return out


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


def status_mix_per_day(db: Database, start: date | datetime | None = None,
    end: date | datetime | None = None,
    *,
    include_archived: bool = False,
) -> list[StatusMixDay]:
    """Per UTC day: how many tenants ended the day in each status.

    Each tenant counts once per day it was checked, with the status of its LAST check that day (so a
    tenant checked ten times on one day is one tenant, not ten checks). `start`/`end` are inclusive days.
    Returns [{"day": date, "invalid": n, "failing": n, "incomplete": n, "attention": n, "healthy": n,
    "total": n}] oldest first, only days with checks.
    """
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
            row = days.setdefault(key, {"day": key, **{s: 0 for s in STATUSES}, "total": 0})
            row[status] = row.get(status, 0) + n
            row["total"] += n
    return [cast(StatusMixDay, days[k]) for k in sorted(days)]


def checks_per_day(db: Database, start: date | datetime | None = None,
    end: date | datetime | None = None,
    *,
    include_archived: bool = False,
) -> list[ChecksPerDay]:
    """Per UTC day: number of checks and of distinct tenants checked. [{"day", "checks", "tenants"}] oldest first."""
    day = sa.func.date(c.c.checked_at).label("day")
    q = (
        sa.select(day, sa.func.count().label("checks"), sa.func.count(sa.distinct(c.c.tenant_id)).label("tenants"))
        .where(*_fleet_checks(start, end, include_archived))
        .group_by(day)
        .order_by(day)
    )
    with db.connect() as conn:
        return [{"day": _as_date(d), "checks": n, "tenants": k} for d, n, k in conn.execute(q)]


def status_counts(db: Database, *, include_archived: bool = False) -> dict[str, int]:
    """How many tenants' latest check is in each status (every status present, worst first)."""
    q = _latest_base(include_archived).add_columns(c.c.status, sa.func.count()).group_by(c.c.status)
    out: dict[str, int] = {s: 0 for s in STATUSES}
    with db.connect() as conn:
        for status, n in conn.execute(q):
            out[status] = out.get(status, 0) + n
    return out


def score_distribution(db: Database, bucket: int = 10, *, include_archived: bool = False
) -> list[ScoreBucket]:
    """Histogram of the latest check's score per tenant (scores 0–100).

    [{"from": 0, "to": 9, "tenants": n}, …, {"from": 90, "to": 100, "tenants": n}]: every bucket present,
    the last one includes 100.
    """
    if not isinstance(bucket, int) or not 1 <= bucket <= 100:
        raise StoreInputError("The score bucket width must be a whole number from 1 to 100.")
    nb = -(-100 // bucket)  # buckets covering 0..99; 100 goes in the last
    idx = sa.case((c.c.score >= 100, nb - 1), (c.c.score < 0, 0), else_=c.c.score / bucket).label("b")
    q = _latest_base(include_archived).add_columns(idx, sa.func.count()).group_by(idx)
    counts = [0] * nb
    with db.connect() as conn:
        for b, n in conn.execute(q):
            counts[min(int(b), nb - 1)] += n
    return [
        {"from": i * bucket, "to": 100 if i == nb - 1 else (i + 1) * bucket - 1, "tenants": counts[i]}
        for i in range(nb)
    ]


def top_problem_scopes(db: Database, kind: str = "missing", limit: int = 10, *, include_archived: bool = False
) -> list[ProblemScope]:
    """The scopes most often `kind` ("missing" or "excess") in the tenants' latest checks.

    [{"scope", "resource", "category", "tenants", "share"}], most tenants first; share = tenants / tenants
    with a latest check.
    """
    if kind not in ("missing", "excess"):
        raise StoreInputError(f"kind must be 'missing' or 'excess', not {kind!r}.")
    n = sa.func.count(sa.distinct(t.c.id)).label("tenants")
    q = (
        sa.select(r.c.scope, r.c.resource, r.c.category, n)
        .select_from(t.join(r, r.c.check_id == t.c.last_check_id))
        .where(r.c.verdict == kind, r.c.scope.is_not(None))
        .group_by(r.c.scope, r.c.resource, r.c.category)
        .order_by(n.desc(), r.c.scope, r.c.resource)
        .limit(int(limit))
    )
    total_q = sa.select(sa.func.count()).select_from(t).where(t.c.last_check_id.is_not(None))
    if not include_archived:
        q = q.where(t.c.archived.is_(False))
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


def last_accepted_check(db: Database, fingerprint: str) -> AcceptedCheck | None:
    """The newest check of the key with this fingerprint that Stripe accepted (any status but invalid), or None.
    Lets a 401 on a key that worked before be told apart as revoked rather than mistyped."""
    q = (
        sa.select(c.c.id, c.c.checked_at, c.c.status)
        .where(c.c.key_fingerprint == fingerprint)
        .where(c.c.status != "invalid")
        .order_by(c.c.checked_at.desc(), c.c.id.desc())
        .limit(1)
    )
    with db.connect() as conn:
        row = conn.execute(q).first()
    return cast(AcceptedCheck, dict(row._mapping)) if row is not None else None
