"""Test-only oracles: the store's fleet figures computed the slow, obvious way from the checks themselves.

The product reads these figures from the daily rollup (0008) and from the latest-check copies and counters on the
tenant rows (0010); tests/store/test_rollup.py and tests/store/test_latest_counters.py compare each with its raw
twin here.
Product code never imports this module. Each takes the Database first, as the figures' Store methods take the
same arguments after it.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from core.engine.result import KEY_STATUSES
from core.store.db import Database
from core.store.models import check_rows_t, checks_t, tenants_t

c, t, r = checks_t, tenants_t, check_rows_t


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


def _as_date(v: Any) -> date:
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    return date.fromisoformat(str(v)[:10])


def _day_bounds(start: date | datetime | None, end: date | datetime | None):
    """[start 00:00 UTC, day after end 00:00 UTC) for inclusive dates; datetimes are used as they are."""
    lo = hi = None
    if start is not None:
        lo = _utc(start) if isinstance(start, datetime) else datetime.combine(start, time(), timezone.utc)
    if end is not None:
        hi = _utc(end) if isinstance(end, datetime) else datetime.combine(end + timedelta(days=1), time(), timezone.utc)
    return lo, hi


def _fleet_checks(start, end, include_archived: bool) -> list:
    lo, hi = _day_bounds(start, end)
    conds = []
    if lo is not None:
        conds.append(c.c.checked_at >= lo)
    if hi is not None:
        conds.append(c.c.checked_at < hi)
    if not include_archived:
        conds.append(c.c.tenant_id.not_in(sa.select(t.c.id).where(t.c.archived.is_(True)).scalar_subquery()))
    return conds


def raw_status_mix_per_day(db: Database, start: date | datetime | None = None, end: date | datetime | None = None,
                           *, include_archived: bool = False) -> list[dict]:
    """status_mix_per_day from the raw checks: per UTC day, each tenant once with the status of its last check that
    day (unreachable checks left out). Datetime bounds are exact here."""
    # "last check of its day" = the tenant's next check (in time order) is on another day, or there is none
    day = sa.func.date(c.c.checked_at)
    ranked = (
        sa.select(day.label("day"), c.c.status,
                  sa.func.lead(c.c.checked_at).over(partition_by=c.c.tenant_id, order_by=(c.c.checked_at, c.c.id))
                  .label("next_at"))
        .where(*_fleet_checks(start, end, include_archived))
        .where(c.c.status != "unreachable")
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
    return [days[k] for k in sorted(days)]


def raw_checks_per_day(db: Database, start: date | datetime | None = None, end: date | datetime | None = None,
                       *, include_archived: bool = False) -> list[dict]:
    """checks_per_day from the raw checks."""
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


def raw_unreachable_share(db: Database, start: date | datetime | None = None, end: date | datetime | None = None,
                          *, include_archived: bool = False) -> dict:
    """unreachable_share from the raw checks."""
    q = sa.select(sa.func.count(), sa.func.sum(sa.case((c.c.status == "unreachable", 1), else_=0))).where(
        *_fleet_checks(start, end, include_archived))
    with db.connect() as conn:
        n, u = conn.execute(q).first() or (0, 0)
    n, u = int(n or 0), int(u or 0)
    return {"checks": n, "unreachable": u, "share": u / n if n else 0.0}


def _latest_checks(include_archived: bool) -> sa.Select:
    """SELECT (no columns yet) over each tenant joined to its latest check, the check's own row (not the copies)."""
    q = sa.select().select_from(t.join(c, c.c.id == t.c.last_check_id))
    return q if include_archived else q.where(t.c.archived.is_(False))


def raw_status_counts(db: Database, *, include_archived: bool = False) -> dict[str, int]:
    """status_counts from the latest checks themselves."""
    out: dict[str, int] = {s: 0 for s in KEY_STATUSES}
    q = _latest_checks(include_archived).add_columns(c.c.status, sa.func.count()).group_by(c.c.status)
    with db.connect() as conn:
        for status, n in conn.execute(q):
            out[status] = out.get(status, 0) + n
    return out


def raw_score_distribution(db: Database, bucket: int = 10, *, include_archived: bool = False) -> list[dict]:
    """score_distribution from the latest checks themselves, one tenant at a time."""
    nb = -(-100 // bucket)
    buckets = [{"from": i * bucket, "to": 100 if i == nb - 1 else (i + 1) * bucket - 1, "tenants": 0,
                "statuses": {}} for i in range(nb)]
    with db.connect() as conn:
        for status, score in conn.execute(_latest_checks(include_archived).add_columns(c.c.status, c.c.score)):
            b = buckets[nb - 1 if score >= 100 else 0 if score < 0 else min(score // bucket, nb - 1)]
            b["tenants"] += 1
            b["statuses"][status] = b["statuses"].get(status, 0) + 1
    return buckets


def raw_top_problem_scopes(db: Database, kind: str = "missing", limit: int = 10, *, include_archived: bool = False
                           ) -> list[dict]:
    """top_problem_scopes counted from the latest checks' rows."""
    n = sa.func.count(sa.distinct(t.c.id)).label("tenants")
    q = (
        sa.select(r.c.scope, r.c.resource, r.c.category, n)
        .select_from(t.join(r, r.c.check_id == t.c.last_check_id))
        .where(r.c.verdict == kind, r.c.scope.is_not(None))
        .group_by(r.c.scope, r.c.resource, r.c.category)
        .order_by(n.desc(), r.c.scope, r.c.resource, r.c.category)
        .limit(int(limit))
    )
    total_q = sa.select(sa.func.count()).select_from(t).where(t.c.last_check_id.is_not(None))
    if not include_archived:
        q = q.where(t.c.archived.is_(False))
        total_q = total_q.where(t.c.archived.is_(False))
    with db.connect() as conn:
        total = conn.execute(total_q).scalar() or 0
        rows = [dict(x._mapping) for x in conn.execute(q)]
    for d in rows:
        d["share"] = d["tenants"] / total if total else 0.0
    return rows
