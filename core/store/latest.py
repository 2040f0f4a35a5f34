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
  (`move_tenant`). Counters move with the rollup's atomic upsert (`rollup.upsert`), rows touched in key order so
  concurrent writers on PostgreSQL never deadlock on them (the tenant's own row is locked first). Rows that reach 0
  may stay: readers ignore them;
- key_tenants (fingerprint): how many distinct tenants have a check of that key (any status), so Triage's
  "shared key" flag is `tenants > 1`; counted by record_check on a tenant's first check of a key (`on_key`).

0015 adds the latest check's summary for support, kept by record_check in the same UPDATE (SUMMARY_COLUMNS):
- last_summary: the short problem Triage shows next to the status ("missing: Subscriptions, Invoices", "key
  expired"), from the check's own rows and refusal (`summary_of`);
- broken_since / last_healthy_at / worse_at: the current bad streak (the first check after the last healthy one),
  the last healthy check, and the last check whose status was worse than the one before it in the streak (`step`;
  a healthy check clears the streak). A check recorded out of time order recomputes the tenant's streak from its
  history (`streak_of`), so the columns always equal a walk over the history in time order;
- last_account_changed: the current key arrived by a replacement that changed the Stripe account (the tenant's
  newest key event brought this key, and its old account differs from the latest check's account).

`backfill` fills the 0010 figures from the stored history with set-based SQL (migration 0010 and bench seeding use
it); `backfill_summary` the 0015 ones (a Python walk over the checks in time order); `rebuild` recomputes them all
in one write transaction. Like rollup.py, this module names only the columns it reads
and writes (lightweight table views); migrations 0010 and 0015 keep their own frozen copies of the backfill.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.engine.result import KEY_STATUSES
from core.store import rollup
from core.store.db import Database
from core.store.types import UTCDateTime

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
    "check_rows", sa.column("id", sa.Integer), sa.column("check_id", sa.Integer),
    sa.column("verdict", sa.String), sa.column("scope", sa.String),
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

SUMMARY_MAX = 200
SUMMARY_COLUMNS = ("last_summary", "broken_since", "last_healthy_at", "worse_at", "last_account_changed")
_RANK = {s: i for i, s in enumerate(KEY_STATUSES)}  # invalid 0 … healthy 4
REFUSED_WORDS = {"expired": "key expired", "revoked": "key revoked", "ip_not_allowed": "IP not allowed",
                 "no_key": "no key", "invalid": "key refused by Stripe"}
NAMES_SHOWN = 3

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
    rollup.upsert(conn, latest_problems, _KEY, ("tenants",), rows)


def on_latest(conn: Connection, *, archived: bool, old_check_id: int | None, new_rows: Iterable[Mapping],
              old_rows: Iterable[Mapping] | None = None) -> None:
    """The tenant's latest pointer moved from `old_check_id` (None: it had none) to a check with `new_rows`:
    move its problem counts, in the writer's transaction (the caller holds the tenant's row lock). `old_rows`:
    the old check's rows when the caller already read them (no second read)."""
    deltas: dict[ProblemKey, int] = defaultdict(int)
    old = problems_of_check(conn, old_check_id) if old_rows is None or old_check_id is None \
        else problems_of_rows(old_rows)
    for p in old:
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
        rollup.upsert(conn, key_tenants, ("fingerprint",), ("tenants",), [{"fingerprint": fingerprint, "tenants": 1}])


# --- 0015: the latest check's summary and the tenant's streak ----------------------------------------------
Streak = tuple  # (broken_since, last_healthy_at, worse_at, last_status)
NO_STREAK: Streak = (None, None, None, None)


def step(state: Streak, status: str, at) -> Streak:
    """The streak after one more check (in time order). An unreachable check changes nothing; a healthy one ends
    the streak; any other starts it (if none) and marks `worse_at` when its status is worse than the check before
    (a tenant's first check counts as worse when it is not healthy)."""
    broken, healthy, worse, last = state
    if status == "unreachable" or status not in _RANK:
        return state
    if status == "healthy":
        return (None, at, None, status)
    if last is None or _RANK[status] < _RANK.get(last, len(_RANK)):
        worse = at
    return (broken or at, healthy, worse, status)


def streak_of(checks: Iterable[tuple[str, object]]) -> Streak:
    """The streak after every (status, checked_at) of `checks`, in time order."""
    state = NO_STREAK
    for status, at in checks:
        state = step(state, status, at)
    return state


def _names(rows: Iterable[Mapping], verdict: str) -> list[str]:
    out: list[str] = []
    for r in rows:
        if r["verdict"] == verdict and r["resource"] and r["resource"] not in out:
            out.append(r["resource"])
    return out


def summary_of(status: str, refused: str | None, key_kind: str | None, rows: Iterable[Mapping]) -> str | None:
    """The short problem of a check (None when healthy): the refusal in two words, else the Dashboard labels of
    the missing permissions (the first three, then how many more), the excess ones, how many are unknown."""
    if status == "healthy" or status == "unreachable":
        return None
    if status == "invalid":
        if refused in REFUSED_WORDS:
            return REFUSED_WORDS[refused]
        return "not a restricted key" if key_kind and key_kind != "restricted" else "key refused"
    rows = list(rows)
    parts = []
    for verdict in ("missing", "excess"):
        names = _names(rows, verdict)
        if names:
            more = f" +{len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
            parts.append(f"{verdict}: {', '.join(names[:NAMES_SHOWN])}{more}")
    unknown = sum(1 for r in rows if r["verdict"] == "unknown")
    if unknown:
        parts.append(f"{unknown} not settled")
    text = "; ".join(parts) or status
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"


_streak_tenants = sa.table(
    "tenants", sa.column("id", sa.Integer), sa.column("last_check_id", sa.Integer),
    sa.column("last_key_fingerprint", sa.String), sa.column("last_account", sa.String),
    sa.column("last_summary", sa.String), sa.column("broken_since", UTCDateTime()),
    sa.column("last_healthy_at", UTCDateTime()), sa.column("worse_at", UTCDateTime()),
    sa.column("last_account_changed", sa.Boolean),
)
_walk = sa.table("checks", sa.column("id", sa.Integer), sa.column("tenant_id", sa.Integer),
                 sa.column("checked_at", UTCDateTime()), sa.column("status", sa.String),
                 sa.column("refused", sa.String), sa.column("key_kind", sa.String))
_events = sa.table("key_events", sa.column("id", sa.Integer), sa.column("tenant_id", sa.Integer),
                   sa.column("new_fingerprint", sa.String), sa.column("old_account", sa.String))


def streak_values(state: Streak) -> dict:
    return {"broken_since": state[0], "last_healthy_at": state[1], "worse_at": state[2]}


def tenant_streak(conn: Connection, tenant_id: int) -> dict:
    """The tenant's streak columns recomputed from its checks in time order (by the (tenant_id, checked_at, id,
    status) index)."""
    w = _walk.c
    q = (sa.select(w.status, w.checked_at).where(w.tenant_id == tenant_id, w.status != "unreachable")
         .order_by(w.checked_at, w.id))
    return streak_values(streak_of((s, at) for s, at in conn.execute(q)))


def account_changed(conn: Connection, tenant_id: int, fingerprint: str | None, account: str | None) -> bool:
    """The tenant's newest key event brought this key from another Stripe account than `account`."""
    if not fingerprint or not account:
        return False
    ev = _events.c
    last = conn.execute(sa.select(ev.new_fingerprint, ev.old_account).where(ev.tenant_id == tenant_id)
                        .order_by(ev.id.desc()).limit(1)).first()
    return bool(last is not None and last.new_fingerprint == fingerprint and last.old_account
                and last.old_account != account)


def backfill_summary(conn: Connection) -> None:
    """Fill the 0015 columns of every checked tenant from the stored history (one walk over the checks in time
    order, the latest checks' rows, the newest key event per tenant)."""
    t, w, r, ev = _streak_tenants.c, _walk.c, _rows.c, _events.c
    latest_ids = dict(conn.execute(sa.select(t.id, t.last_check_id).where(t.last_check_id.is_not(None))).all())
    if not latest_ids:
        return
    streaks: dict[int, Streak] = {}
    q = (sa.select(w.tenant_id, w.status, w.checked_at).where(w.status != "unreachable")
         .order_by(w.tenant_id, w.checked_at, w.id))
    for tid, status, at in conn.execute(q.execution_options(yield_per=20_000)):
        streaks[tid] = step(streaks.get(tid, NO_STREAK), status, at)
    heads = {cid: (s, ref, kind) for cid, s, ref, kind in conn.execute(
        sa.select(w.id, w.status, w.refused, w.key_kind).select_from(
            _walk.join(_streak_tenants, t.last_check_id == w.id)))}
    rows: dict[int, list[dict]] = defaultdict(list)
    rq = (sa.select(r.check_id, r.verdict, r.resource)
          .select_from(_rows.join(_streak_tenants, t.last_check_id == r.check_id))
          .where(r.verdict.in_(("missing", "excess", "unknown"))).order_by(r.check_id, r.id))
    for cid, verdict, resource in conn.execute(rq):
        rows[cid].append({"verdict": verdict, "resource": resource})
    newest = sa.select(sa.func.max(ev.id)).group_by(ev.tenant_id).scalar_subquery()
    events = {tid: (fp, old) for tid, fp, old in conn.execute(
        sa.select(ev.tenant_id, ev.new_fingerprint, ev.old_account).where(ev.id.in_(newest)))}
    cur = {tid: (fp, acct) for tid, fp, acct in conn.execute(
        sa.select(t.id, t.last_key_fingerprint, t.last_account).where(t.last_check_id.is_not(None)))}
    updates = []
    for tid, cid in latest_ids.items():
        status, refused, kind = heads.get(cid, ("healthy", None, None))
        fp, acct = cur.get(tid, (None, None))
        e = events.get(tid)
        changed = bool(e and fp and acct and e[0] == fp and e[1] and e[1] != acct)
        updates.append({"tid": tid, "last_summary": summary_of(status, refused, kind, rows.get(cid, [])),
                        **streak_values(streaks.get(tid, NO_STREAK)), "last_account_changed": changed})
    stmt = (_streak_tenants.update().where(t.id == sa.bindparam("tid"))
            .values({n: sa.bindparam(n) for n in SUMMARY_COLUMNS}))
    for i in range(0, len(updates), 5000):
        conn.execute(stmt, updates[i:i + 5000])


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
        conn.execute(_streak_tenants.update().values({n: (False if n == "last_account_changed" else None)
                                                      for n in SUMMARY_COLUMNS}))
        backfill(conn)
        backfill_summary(conn)
