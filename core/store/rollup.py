"""The fleet's daily rollup (0008): what the fleet charts read instead of walking every check.

Two tables, by UTC day and by the tenant's archived flag (fleet figures leave archived tenants out unless asked):
- rollup_days (day, archived): checks that day, distinct tenants checked that day (any status), and checks
  Stripe never answered (status "unreachable");
- rollup_status (day, archived, status): how many tenants ENDED the day in each status, i.e. the status of
  the tenant's last check of that day by (checked_at, id) among its checks Stripe answered (unreachable
  checks say nothing about the key and are left out before "last of the day" is taken).
These are exactly the raw aggregations of tests/store/store_oracle.py (`raw_status_mix_per_day`, `raw_checks_per_day`,
`raw_unreachable_share`), summed over both archived values when archived tenants are included.

Kept up to date in the writer's own transaction: `on_check` (called by record_check once the tenant row is
locked and the check inserted: checks recorded out of time order are handled) and `move_tenant` (called by
update_tenant when the archived flag changes). Counters move with `INSERT … ON CONFLICT … DO UPDATE SET
n = n + excluded.n`, atomic on SQLite and PostgreSQL, and rows are touched in one global order (days before
statuses, each sorted by key) so concurrent writers on PostgreSQL never deadlock on them. Rows that reach 0
may stay: readers ignore them. `backfill` fills empty tables from the history with set-based SQL (migration
0008 and bench seeding use it); `rebuild` recomputes them in one write transaction.

The day is the UTC day: `date(checked_at)` on SQLite (UTC text, see core.store.types.UTCDateTime),
`checked_at AT TIME ZONE 'UTC'` cast to a date on PostgreSQL, `at.date()` of the aware UTC datetime in Python.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from core.store.db import Database
from core.store.types import UTCDateTime

UNREACHABLE = "unreachable"

# Lightweight views of the tables, with only the columns the rollup needs (migration 0008 keeps its own frozen
# copy of `backfill`, so changing this one never changes an old upgrade).
_checks = sa.table(
    "checks", sa.column("id", sa.Integer), sa.column("tenant_id", sa.Integer),
    sa.column("checked_at", UTCDateTime()), sa.column("status", sa.String),
)
_tenants = sa.table("tenants", sa.column("id", sa.Integer), sa.column("archived", sa.Boolean))
rollup_days = sa.table(
    "rollup_days", sa.column("day", sa.Date), sa.column("archived", sa.Boolean), sa.column("checks", sa.Integer),
    sa.column("tenants", sa.Integer), sa.column("unreachable", sa.Integer),
)
rollup_status = sa.table(
    "rollup_status", sa.column("day", sa.Date), sa.column("archived", sa.Boolean), sa.column("status", sa.String),
    sa.column("tenants", sa.Integer),
)
_DAY_KEY = ("day", "archived")
_STATUS_KEY = ("day", "archived", "status")
_DAY_COUNTERS = ("checks", "tenants", "unreachable")

DayKey = tuple[date, bool]
StatusKey = tuple[date, bool, str]


def utc_day(at: datetime) -> date:
    """The UTC day of `at` (a naive datetime is UTC, as everywhere in the store)."""
    return at.date() if at.tzinfo is None else at.astimezone(UTC).date()


def day_sql(col, dialect: str):
    """SQL: the UTC day of a UTCDateTime column, as the raw queries see it."""
    if dialect == "sqlite":
        return sa.func.date(col)
    if dialect == "postgresql":
        return sa.cast(sa.func.timezone("UTC", col), sa.Date)
    return sa.cast(col, sa.Date)


# --- writing counters -------------------------------------------------------------------------------------
def upsert(conn: Connection, table: sa.TableClause, key: tuple[str, ...], counters: tuple[str, ...],
            rows: list[dict]) -> None:
    """Add each row's counters to the row with its key (created if missing), in the order given."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        # one executemany of one cached statement, row by row in the order given (a multi-VALUES upsert would be
        # compiled anew every time)
        ins = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)
        stmt = ins.on_conflict_do_update(
            index_elements=list(key),
            set_={n: table.c[n] + ins.excluded[n] for n in counters},
        )
        conn.execute(stmt, rows)
        return
    for row in rows:  # other backends: update, else insert (not atomic against a concurrent insert)
        where = [table.c[k] == row[k] for k in key]
        done = conn.execute(
            table.update().where(*where).values({n: table.c[n] + row[n] for n in counters})
        ).rowcount
        if not done:
            conn.execute(table.insert().values(row))


def apply(conn: Connection, days: Mapping[DayKey, tuple[int, int, int]], statuses: Mapping[StatusKey, int]) -> None:
    """Add (checks, tenants, unreachable) per (day, archived) and tenants per (day, archived, status).

    Zero deltas are skipped; rows are written days first, then statuses, each in key order (lock order)."""
    day_rows = [
        {"day": d, "archived": a, **dict(zip(_DAY_COUNTERS, v, strict=True))}
        for (d, a), v in sorted(days.items()) if any(v)
    ]
    status_rows = [
        {"day": d, "archived": a, "status": s, "tenants": n} for (d, a, s), n in sorted(statuses.items()) if n
    ]
    upsert(conn, rollup_days, _DAY_KEY, _DAY_COUNTERS, day_rows)
    upsert(conn, rollup_status, _STATUS_KEY, ("tenants",), status_rows)


def on_check(conn: Connection, *, tenant_id: int, archived: bool, check_id: int, at: datetime, status: str) -> None:
    """Count one check just inserted (id `check_id`) in the rollup, in the writer's transaction.

    The caller holds the tenant's row lock (PostgreSQL) or the write lock (SQLite), so the tenant's other
    checks read here are settled. Works whatever the order checks are recorded in."""
    day = utc_day(at)
    lo = datetime.combine(day, time(), UTC)
    c = _checks.c
    same_day = (c.tenant_id == tenant_id, c.checked_at >= lo, c.checked_at < lo + timedelta(days=1),
                c.id != check_id)
    # One round trip: the tenant's other check of that day that ended it so far, answered checks first. No row:
    # the tenant's first check of the day; an unreachable row: no answered check that day before this one.
    other = conn.execute(
        sa.select(c.checked_at, c.id, c.status)
        .where(*same_day)
        .order_by(c.status == UNREACHABLE, c.checked_at.desc(), c.id.desc())
        .limit(1)
    ).first()
    unreachable = status == UNREACHABLE
    days = {(day, archived): (1, 0 if other is not None else 1, 1 if unreachable else 0)}
    statuses: dict[StatusKey, int] = {}
    if not unreachable:
        prev = other if other is not None and other.status != UNREACHABLE else None
        if prev is None:  # the tenant's first answered check of the day
            statuses[(day, archived, status)] = 1
        elif (at, check_id) > (prev.checked_at, prev.id) and prev.status != status:  # the new end of its day
            statuses[(day, archived, prev.status)] = -1
            statuses[(day, archived, status)] = 1
    apply(conn, days, statuses)


def tenant_contributions(conn: Connection, tenant_id: int) -> tuple[dict[date, tuple[int, int]], dict[date, str]]:
    """One tenant's share of the rollup: {day: (checks, unreachable)} and {day: status it ended the day in}."""
    c = _checks.c
    days: dict[date, tuple[int, int]] = {}
    ended: dict[date, str] = {}
    q = sa.select(c.checked_at, c.status).where(c.tenant_id == tenant_id).order_by(c.checked_at, c.id)
    for at, status in conn.execute(q):  # the (tenant_id, checked_at, id, status) index, in order
        d = utc_day(at)
        n, u = days.get(d, (0, 0))
        days[d] = (n + 1, u + (status == UNREACHABLE))
        if status != UNREACHABLE:
            ended[d] = status  # later checks of the day overwrite earlier ones
    return days, ended


def move_tenant(conn: Connection, tenant_id: int, *, archived_from: bool, archived_to: bool) -> None:
    """Move a tenant's contributions between the archived=False/True rows (its archived flag changed)."""
    if archived_from == archived_to:
        return
    per_day, ended = tenant_contributions(conn, tenant_id)
    days: dict[DayKey, tuple[int, int, int]] = {}
    for d, (n, u) in per_day.items():
        days[(d, archived_from)] = (-n, -1, -u)
        days[(d, archived_to)] = (n, 1, u)
    statuses: dict[StatusKey, int] = defaultdict(int)
    for d, s in ended.items():
        statuses[(d, archived_from, s)] -= 1
        statuses[(d, archived_to, s)] += 1
    apply(conn, days, statuses)


# --- whole-history (re)computation --------------------------------------------------------------------------
def backfill(conn: Connection) -> None:
    """Fill the (empty) rollup tables from every stored check, set-based (INSERT … SELECT), on the connection's
    transaction. Same aggregation as the raw queries: "last answered check of the day" is the check whose next
    answered check of the same tenant (LEAD over (checked_at, id), read in index order) is on another day."""
    dialect = conn.dialect.name
    c, t = _checks.c, _tenants.c
    day = day_sql(c.checked_at, dialect)
    per_day = (
        sa.select(
            day.label("day"),
            t.archived,
            sa.func.count().label("checks"),
            sa.func.count(sa.distinct(c.tenant_id)).label("tenants"),
            sa.func.sum(sa.case((c.status == UNREACHABLE, 1), else_=0)).label("unreachable"),
        )
        .select_from(_checks.join(_tenants, t.id == c.tenant_id))
        .group_by(day, t.archived)
    )
    conn.execute(sa.insert(rollup_days).from_select(["day", "archived", "checks", "tenants", "unreachable"], per_day))
    ranked = (
        sa.select(
            c.tenant_id,
            day.label("day"),
            c.status,
            sa.func.lead(c.checked_at).over(partition_by=c.tenant_id, order_by=(c.checked_at, c.id)).label("next_at"),
        )
        .where(c.status != UNREACHABLE)
        .subquery("ranked")
    )
    r = ranked.c
    ended = (
        sa.select(r.day, t.archived, r.status, sa.func.count().label("tenants"))
        .select_from(ranked.join(_tenants, t.id == r.tenant_id))
        .where(sa.or_(r.next_at.is_(None), day_sql(r.next_at, dialect) != r.day))
        .group_by(r.day, t.archived, r.status)
    )
    conn.execute(sa.insert(rollup_status).from_select(["day", "archived", "status", "tenants"], ended))


def rebuild(db: Database) -> None:
    """Recompute the rollup from the whole history in one write transaction (bulk loads that bypass
    record_check, e.g. bench seeding, call this once afterwards)."""
    with db.connect(write=True) as conn:
        conn.execute(rollup_status.delete())
        conn.execute(rollup_days.delete())
        backfill(conn)
