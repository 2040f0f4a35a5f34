"""Each tenant's latest check, kept where the triage and fleet readers can count it without reading the check (0010).

Two denormalisations of "the check tenants.last_check_id points at", kept by record_check in the same UPDATE and
transaction that moves the pointer (so they can never disagree with it), and one of the keys' history:
- on the tenant row, the latest check's figures the triage/fleet queries order, filter and count by:
  last_status, last_score, last_key_mode, last_key_fingerprint, last_key_masked, last_account (LATEST_COLUMNS;
  last_checked_at is the pointer's own column since 0002);
- latest_problems (archived, kind, scope, resource, category): how many tenants' LATEST check has that scope
  `missing` or `excess` (check rows with a scope only, each (kind, scope, resource, category) once per check).
  record_check subtracts the old latest check's problem rows and adds the new one's when the pointer moves
  (`on_latest`); update_tenant's archived flag moves the tenant's rows between archived=False/True
  (`move_tenant`). Counters move with the rollup's atomic upsert (`rollup._upsert`), rows touched in key order so
  concurrent writers on PostgreSQL never deadlock on them (the tenant's own row is locked first). Rows that reach 0
  may stay: readers ignore them;
- key_tenants (fingerprint): how many distinct tenants have a check of that key (any status), so Triage's
  "shared key" flag is `tenants > 1`; counted by record_check on a tenant's first check of a key (`on_key`).

`backfill` fills them from the stored history with set-based SQL (migration 0010 and bench seeding use it);
`rebuild` recomputes them in one write transaction. Like rollup.py, this module names only the columns it reads
and writes (lightweight table views); migration 0010 keeps its own frozen copy of `backfill`.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.store import rollup
from core.store.db import Database

KINDS = ("missing", "excess")

# tenant column -> the latest check's column it copies
LATEST_COLUMNS: dict[str, str] = {
    "last_status": "status",
    "last_score": "score",
    "last_key_mode": "key_mode",
    "last_key_fingerprint": "key_fingerprint",
    "last_key_masked": "key_masked",
    "last_account": "account",
}

_tenants = sa.table(
    "tenants", sa.column("id", sa.Integer), sa.column("archived", sa.Boolean), sa.column("last_check_id", sa.Integer),
    *(sa.column(name) for name in LATEST_COLUMNS),
)
_checks = sa.table("checks", sa.column("id", sa.Integer), *(sa.column(name) for name in LATEST_COLUMNS.values()))
_rows = sa.table(
    "check_rows", sa.column("check_id", sa.Integer), sa.column("verdict", sa.String), sa.column("scope", sa.String),
    sa.column("resource", sa.String), sa.column("category", sa.String),
)
_key_checks = sa.table("checks", sa.column("id", sa.Integer), sa.column("tenant_id", sa.Integer),
                       sa.column("key_fingerprint", sa.String))
key_tenants = sa.table("key_tenants", sa.column("fingerprint", sa.String), sa.column("tenants", sa.Integer))
latest_problems = sa.table(
    "latest_problems", sa.column("archived", sa.Boolean), sa.column("kind", sa.String), sa.column("scope", sa.String),
    sa.column("resource", sa.String), sa.column("category", sa.String), sa.column("tenants", sa.Integer),
)
_KEY = ("archived", "kind", "scope", "resource", "category")

Problem = tuple[str, str, str, str]  # (kind, scope, resource, category)
ProblemKey = tuple[bool, str, str, str, str]  # (archived, kind, scope, resource, category)


def tenant_values(check: Mapping) -> dict:
    """The tenant row's copy of a check (a dict with the checks table's column names)."""
    return {name: check[col] for name, col in LATEST_COLUMNS.items()}


def problems_of_rows(rows: Iterable[Mapping]) -> set[Problem]:
    """The problems a check's rows (dicts with verdict, scope, resource, category) count: each once."""
    return {(r["verdict"], r["scope"], r["resource"], r["category"])
            for r in rows if r["verdict"] in KINDS and r["scope"] is not None}


def problems_of_check(conn: Connection, check_id: int | None) -> set[Problem]:
    """The problems a stored check counts (none for None)."""
    if check_id is None:
        return set()
    r = _rows.c
    q = sa.select(r.verdict, r.scope, r.resource, r.category).where(
        r.check_id == check_id, r.verdict.in_(KINDS), r.scope.is_not(None))
    return {(v, s, res, cat) for v, s, res, cat in conn.execute(q)}


def apply(conn: Connection, deltas: Mapping[ProblemKey, int]) -> None:
    """Add tenants per (archived, kind, scope, resource, category); zero deltas skipped, rows in key order."""
    rows = [dict(zip(_KEY, key, strict=True), tenants=n) for key, n in sorted(deltas.items()) if n]
    rollup._upsert(conn, latest_problems, _KEY, ("tenants",), rows)


def on_latest(conn: Connection, *, archived: bool, old_check_id: int | None, new_rows: Iterable[Mapping]) -> None:
    """The tenant's latest pointer moved from `old_check_id` (None: it had none) to a check with `new_rows`:
    move its problem counts, in the writer's transaction (the caller holds the tenant's row lock)."""
    deltas: dict[ProblemKey, int] = defaultdict(int)
    for p in problems_of_check(conn, old_check_id):
        deltas[(archived, *p)] -= 1
    for p in problems_of_rows(new_rows):
        deltas[(archived, *p)] += 1
    apply(conn, deltas)


def move_tenant(conn: Connection, tenant_id: int, *, archived_from: bool, archived_to: bool) -> None:
    """Move the tenant's latest check's problems between the archived=False/True rows (its flag changed)."""
    if archived_from == archived_to:
        return
    last = conn.execute(sa.select(_tenants.c.last_check_id).where(_tenants.c.id == tenant_id)).scalar()
    deltas: dict[ProblemKey, int] = {}
    for p in problems_of_check(conn, last):
        deltas[(archived_from, *p)] = -1
        deltas[(archived_to, *p)] = 1
    apply(conn, deltas)


def on_key(conn: Connection, *, tenant_id: int, check_id: int, fingerprint: str) -> None:
    """A check of the key `fingerprint` was just inserted (id `check_id`) for the tenant: count the tenant for the
    key if it is the tenant's first check of it (the caller holds the tenant's row lock, so two checks of one
    tenant are never counted at once; other tenants' increments are atomic upserts)."""
    c = _key_checks.c
    seen = conn.execute(
        sa.select(c.id).where(c.key_fingerprint == fingerprint, c.tenant_id == tenant_id, c.id != check_id).limit(1)
    ).first()
    if seen is None:
        rollup._upsert(conn, key_tenants, ("fingerprint",), ("tenants",), [{"fingerprint": fingerprint, "tenants": 1}])


# --- whole-history (re)computation --------------------------------------------------------------------------
def backfill(conn: Connection) -> None:
    """Fill the tenant rows' copies and the (empty) latest_problems table from the stored history, set-based
    (one UPDATE … FROM and one INSERT … SELECT), on the connection's transaction."""
    t, c, r = _tenants.c, _checks.c, _rows.c
    conn.execute(
        _tenants.update().where(t.last_check_id == c.id)
        .values({t[name]: c[col] for name, col in LATEST_COLUMNS.items()})
    )
    per_problem = (
        sa.select(t.archived, r.verdict, r.scope, r.resource, r.category, sa.func.count(sa.distinct(t.id)))
        .select_from(_tenants.join(_rows, r.check_id == t.last_check_id))
        .where(r.verdict.in_(KINDS), r.scope.is_not(None))
        .group_by(t.archived, r.verdict, r.scope, r.resource, r.category)
    )
    conn.execute(sa.insert(latest_problems).from_select([*_KEY, "tenants"], per_problem))
    k = _key_checks.c
    per_key = (
        sa.select(k.key_fingerprint, sa.func.count(sa.distinct(k.tenant_id)))
        .where(k.key_fingerprint.is_not(None))
        .group_by(k.key_fingerprint)
    )
    conn.execute(sa.insert(key_tenants).from_select(["fingerprint", "tenants"], per_key))


def rebuild(db: Database) -> None:
    """Recompute both from the whole history in one write transaction (bulk loads that bypass record_check)."""
    with db.connect(write=True) as conn:
        conn.execute(latest_problems.delete())
        conn.execute(key_tenants.delete())
        conn.execute(_tenants.update().values({name: None for name in LATEST_COLUMNS}))
        backfill(conn)
