"""Fleet runs and their per-tenant claims (tables from migration 0005).

A run's tenants are rows of fleet_items. Workers claim pending (or expired) items: on PostgreSQL with
`SELECT … FOR UPDATE SKIP LOCKED`, so several processes split one run without a tenant checked twice; on
SQLite the claim runs under BEGIN IMMEDIATE (one writer at a time), and one process runs the fleet.

An item's state: pending -> claimed (by a worker, until claimed_until; the worker's heartbeat moves that on while
it is alive, so a dead worker's claims expire within one TTL) -> recorded | failed (done) | unreachable (its check
got no usable answer from Stripe: our network or Stripe's storm of errors; not done, claimable again, so
`--resume` checks it again and the run does not finish until it is).
"""
from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime, timedelta

import sqlalchemy as sa

from core.engine.redact import redact
from core.store.db import Database
from core.store.models import NAME_MAX, checks_t, fleet_items_t, fleet_runs_t, tenants_t
from core.store.names import TenantName
from core.store.rules import slugify
from core.store.sql import insert_ignore, optional_text
from core.store.types import utcnow

r_, i_ = fleet_runs_t, fleet_items_t
DONE_STATES = ("recorded", "failed")
OPEN_STATES = ("pending", "claimed", "unreachable")


def _run_dict(row) -> dict:
    d = dict(row._mapping)
    d["status_counts"] = json.loads(d["status_counts"]) if d.get("status_counts") else {}
    return d


def finish_item(conn: sa.Connection, item_id: int, *, check_id: int | None, status: str | None,
                problem: str | None) -> None:
    """RunQueries.finish_run_item in the caller's transaction (one UPDATE)."""
    state = "failed" if check_id is None else "unreachable" if status == "unreachable" else "recorded"
    conn.execute(i_.update().where(i_.c.id == item_id).values(
        state=state, check_id=check_id, status=status, problem=redact(problem), done_at=utcnow(),
        claimed_until=None))


class RunQueries:
    """Fleet runs, their items and claims (composed into Store)."""

    db: Database

    def start_run(self, *, name: str | None = None, started_by: str | None = None,
                  command: str | None = None) -> dict:
        """A new run, or (with `name`) the run of that name, created by whichever worker comes first."""
        who = optional_text(started_by, "user name", NAME_MAX)
        clean = TenantName.parse(name) if name is not None else None  # same rules as a name: plain text
        values = {"name": clean, "started_at": utcnow(), "started_by": who, "command": (command or "")[:200] or None,
                  "total": 0, "recorded": 0, "failed": 0, "rate_limited": 0}
        with self.db.connect(write=True) as conn:
            if clean is None:
                run_id = conn.execute(r_.insert().values(**values)).inserted_primary_key[0]
            else:
                insert_ignore(conn, r_, values, ["name"])
                run_id = conn.execute(sa.select(r_.c.id).where(r_.c.name == clean)).scalar_one()
            return _run_dict(conn.execute(sa.select(r_).where(r_.c.id == run_id)).one())

    def last_unfinished_run(self) -> dict | None:
        """The newest run that has not finished (killed halfway, or still running), or None."""
        with self.db.connect() as conn:
            row = conn.execute(sa.select(r_).where(r_.c.finished_at.is_(None))
                               .order_by(r_.c.started_at.desc(), r_.c.id.desc()).limit(1)).first()
            return _run_dict(row) if row else None

    def get_run(self, run_id: int) -> dict | None:
        with self.db.connect() as conn:
            row = conn.execute(sa.select(r_).where(r_.c.id == run_id)).first()
            return _run_dict(row) if row else None

    def list_runs(self, limit: int = 20) -> list[dict]:
        """Recent runs, newest first."""
        with self.db.connect() as conn:
            return [_run_dict(x) for x in conn.execute(
                sa.select(r_).order_by(r_.c.started_at.desc(), r_.c.id.desc()).limit(int(limit)))]

    def add_run_items(self, run_id: int, tenants: list[str]) -> None:
        """Put tenants (names) in a run; tenants already in it are left as they are."""
        rows = [{"run_id": run_id, "slug": slugify(t), "tenant": TenantName.parse(t), "state": "pending"}
                for t in tenants]
        with self.db.connect(write=True) as conn:
            insert_ignore(conn, i_, rows, ["run_id", "slug"])  # one executemany
            total = conn.execute(sa.select(sa.func.count()).where(i_.c.run_id == run_id)).scalar_one()
            conn.execute(r_.update().where(r_.c.id == run_id).values(total=total))

    def done_slugs(self, run_id: int) -> set[str]:
        """The tenants (slugs) a run has already finished (recorded or failed)."""
        with self.db.connect() as conn:
            return set(conn.execute(sa.select(i_.c.slug).where(i_.c.run_id == run_id, i_.c.state.in_(DONE_STATES)))
                       .scalars())

    def claim_run_items(self, run_id: int, worker: str, limit: int, ttl_s: float,
                        now: datetime | None = None, exclude: Collection[int] = ()) -> list[dict]:
        """Claim up to `limit` of the run's tenants that nobody holds: pending, unreachable (checked without an answer
        from Stripe: checked again), or claimed and expired (a worker that died or froze: taken over; such an item
        comes back with `taken_over` naming that worker)."""
        if limit <= 0:
            return []
        now = now or utcnow()
        free = sa.or_(i_.c.state.in_(("pending", "unreachable")),
                      sa.and_(i_.c.state == "claimed", i_.c.claimed_until < now))
        with self.db.connect(write=True) as conn:
            q = sa.select(i_.c.id, i_.c.slug, i_.c.tenant,
                          sa.case((i_.c.state == "claimed", i_.c.claimed_by), else_=sa.null()).label("taken_over"),
                          ).where(i_.c.run_id == run_id, free).order_by(i_.c.id)
            if exclude:  # items this worker cannot check (no key for them): left for the others
                q = q.where(i_.c.id.not_in(list(exclude)))
            q = q.limit(int(limit))
            if conn.dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            got = [dict(x._mapping) for x in conn.execute(q)]
            if got:
                conn.execute(i_.update().where(i_.c.id.in_([g["id"] for g in got])).values(
                    state="claimed", claimed_by=worker[:NAME_MAX], claimed_until=now + timedelta(seconds=ttl_s)))
            return got

    def heartbeat_run(self, run_id: int, worker: str, ttl_s: float, now: datetime | None = None) -> int:
        """A live worker's claims in the run stay its own for another `ttl_s` (their claimed_until moves on).
        Returns how many it holds."""
        now = now or utcnow()
        with self.db.connect(write=True) as conn:
            return int(conn.execute(i_.update().where(
                i_.c.run_id == run_id, i_.c.state == "claimed", i_.c.claimed_by == worker[:NAME_MAX],
            ).values(claimed_until=now + timedelta(seconds=ttl_s))).rowcount or 0)

    def open_run_claims(self, run_id: int) -> dict:
        """What keeps a run from finishing: {"open": items not done, "claimable": pending or unreachable,
        "claims": [(worker, tenants, latest claimed_until), ...] of the live (unexpired or not) claims}."""
        with self.db.connect() as conn:
            states = dict(conn.execute(sa.select(i_.c.state, sa.func.count()).where(i_.c.run_id == run_id)
                                       .group_by(i_.c.state)).all())
            claims = [(w, int(n), until) for w, n, until in conn.execute(
                sa.select(i_.c.claimed_by, sa.func.count(), sa.func.max(i_.c.claimed_until))
                .where(i_.c.run_id == run_id, i_.c.state == "claimed")
                .group_by(i_.c.claimed_by).order_by(sa.func.count().desc(), i_.c.claimed_by))]
        return {"open": sum(states.get(x, 0) for x in OPEN_STATES),
                "claimable": states.get("pending", 0) + states.get("unreachable", 0), "claims": claims}

    def checked_in_run(self, run_id: int, slug: str) -> tuple[int, str] | None:
        """(check id, status) of the newest fleet check (source "batch") of the tenant since the run started that
        Stripe answered, or None: a tenant taken over from a dead worker may have been checked just before it died."""
        c, t = checks_t, tenants_t
        with self.db.connect() as conn:
            started = conn.execute(sa.select(r_.c.started_at).where(r_.c.id == run_id)).scalar()
            if started is None:
                return None
            row = conn.execute(
                sa.select(c.c.id, c.c.status).select_from(c.join(t, t.c.id == c.c.tenant_id))
                .where(t.c.slug == slug, c.c.source == "batch", c.c.checked_at >= started, c.c.status != "unreachable")
                .order_by(c.c.id.desc()).limit(1)).first()
            return (int(row[0]), row[1]) if row else None

    def reopen_unreachable_run_items(self, run_id: int) -> int:
        """Tenants a run marked "recorded" although their check was unreachable (runs from before unreachable items
        stayed open) are open again, so that a resumed run checks them. Returns how many."""
        with self.db.connect(write=True) as conn:
            return int(conn.execute(i_.update().where(
                i_.c.run_id == run_id, i_.c.state == "recorded", i_.c.status == "unreachable",
            ).values(state="unreachable")).rowcount or 0)

    def release_run_items(self, item_ids: list[int]) -> None:
        """Give claimed tenants back (this worker will not check them)."""
        if item_ids:
            with self.db.connect(write=True) as conn:
                conn.execute(i_.update().where(i_.c.id.in_(item_ids), i_.c.state == "claimed")
                             .values(state="pending", claimed_by=None, claimed_until=None))

    def finish_run_item(self, item_id: int, *, check_id: int | None, status: str | None,
                        problem: str | None) -> None:
        """A tenant of a run is done: recorded (check_id set) or failed (problem says why). A check Stripe gave no
        usable answer to (status "unreachable") leaves the tenant open as "unreachable": checked again by --resume.
        (A recorded check usually marks its tenant done in its own transaction: `finish_item`, through
        record_checked's `run_item`.)"""
        with self.db.connect(write=True) as conn:
            finish_item(conn, item_id, check_id=check_id, status=status, problem=problem)

    def settle_checked_run_items(self, run_id: int) -> int:
        """On resume: the run's unfinished tenants that were checked in this run anyway are marked recorded.

        A worker killed after a check was written but before its tenant was marked done leaves the tenant open; its
        check is a fleet check (source "batch") of that tenant at or after the run's start. Such a tenant gets the
        newest of those checks and is not checked again. Returns how many were settled."""
        c, t = checks_t, tenants_t
        with self.db.connect(write=True) as conn:
            started = conn.execute(sa.select(r_.c.started_at).where(r_.c.id == run_id)).scalar()
            if started is None:
                return 0
            q = (
                sa.select(i_.c.id, sa.func.max(c.c.id).label("check_id"))
                .select_from(i_.join(t, t.c.slug == i_.c.slug).join(c, c.c.tenant_id == t.c.id))
                .where(i_.c.run_id == run_id, i_.c.state.not_in(DONE_STATES))
                .where(c.c.source == "batch", c.c.checked_at >= started, c.c.status != "unreachable")
                .group_by(i_.c.id)
            )
            found = conn.execute(q).all()
            now = utcnow()
            for item_id, check_id in found:
                status = conn.execute(sa.select(c.c.status).where(c.c.id == check_id)).scalar()
                conn.execute(i_.update().where(i_.c.id == item_id, i_.c.state.not_in(DONE_STATES)).values(
                    state="recorded", check_id=check_id, status=status, problem=None, done_at=now, claimed_until=None))
            return len(found)

    def add_rate_limited(self, run_id: int, n: int) -> None:
        if n:
            with self.db.connect(write=True) as conn:
                conn.execute(r_.update().where(r_.c.id == run_id).values(rate_limited=r_.c.rate_limited + int(n)))

    def summarise_run(self, run_id: int, *, finish: bool) -> dict:
        """Count the run's items by outcome (and the recorded ones by status); with `finish`, mark the run
        finished once every item is done. Returns the run."""
        with self.db.connect(write=True) as conn:
            counts = dict(conn.execute(sa.select(i_.c.state, sa.func.count()).where(i_.c.run_id == run_id)
                                       .group_by(i_.c.state)).all())
            by_status = dict(conn.execute(sa.select(i_.c.status, sa.func.count())
                                          .where(i_.c.run_id == run_id, i_.c.state == "recorded")
                                          .group_by(i_.c.status)).all())
            values: dict = {"total": sum(counts.values()), "recorded": counts.get("recorded", 0),
                            "failed": counts.get("failed", 0), "status_counts": json.dumps(by_status, sort_keys=True)}
            open_ = sum(counts.get(x, 0) for x in OPEN_STATES)
            q = r_.update().where(r_.c.id == run_id)
            if finish and open_ == 0:
                q = q.where(r_.c.finished_at.is_(None))
                conn.execute(q.values(finished_at=utcnow(), **values))
            else:
                conn.execute(q.values(**values))
            out = _run_dict(conn.execute(sa.select(r_).where(r_.c.id == run_id)).one())
            out["unreachable"] = counts.get("unreachable", 0)  # not stored: counted from the items
            out["open"] = open_
            return out

    def run_items(self, run_id: int) -> list[dict]:
        with self.db.connect() as conn:
            return [dict(x._mapping)
                    for x in conn.execute(sa.select(i_).where(i_.c.run_id == run_id).order_by(i_.c.id))]
