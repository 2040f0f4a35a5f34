"""The fleet's figures: per-day status mix, checks per day and the unreachable share (from the daily rollup, 0008,
core/store/rollup.py), and, about the tenants' latest checks, the status counts, the score distribution, the
permissions most often wrong, the stale tenants and the key-lifecycle counts (from the tenant rows and the counters
of 0010, core/store/latest.py). Days are UTC days. Archived tenants are left out unless include_archived=True.
Each has a raw twin computed from the checks in tests/store/store_oracle.py that the tests compare it with.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa

from core.config import DEFAULT_ROTATION_DAYS
from core.engine.result import KEY_STATUSES
from core.store.db import Database
from core.store.models import key_tenants_t, latest_problems_t, rollup_days_t, rollup_status_t
from core.store.rows import ProblemScope, ScoreBucket, StaleTenant, StatusMixDay
from core.store.rules import StoreInputError
from core.store.sql import HAS_LATEST, TENANT_COLUMNS, as_date, c, e, k, latest_base, t, utc
from core.store.triage import FLAGS, REPLACED_RECENT_DAYS
from core.store.types import utcnow


def _rollup_days(start: date | datetime | None, end: date | datetime | None) -> tuple[date | None, date | None]:
    """Inclusive UTC days for the rollup: a date as it is, a datetime by its UTC day."""

    def day(v: date | datetime | None) -> date | None:
        if v is None:
            return None
        return utc(v).date() if isinstance(v, datetime) else v

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

class FigureQueries:
    """The fleet's figures (composed into Store)."""

    db: Database

    def status_mix_per_day(
        self,
        start: date | datetime | None = None,
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
        with self.db.connect() as conn:
            for d, status, n in conn.execute(q):
                if not n:  # rollup rows may stay at 0 (an archived tenant's counts moved away)
                    continue
                key = as_date(d)
                row = days.setdefault(key, {"day": key, **{s: 0 for s in KEY_STATUSES}, "total": 0})
                row[status] = row.get(status, 0) + int(n)
                row["total"] += int(n)
        return [cast(StatusMixDay, days[k]) for k in sorted(days)]

    def checks_per_day(
        self,
        start: date | datetime | None = None,
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
        with self.db.connect() as conn:
            return [{"day": as_date(d), "checks": int(n), "tenants": int(nt), "unreachable": int(u or 0)}
                    for d, n, nt, u in conn.execute(q) if n]

    def status_counts(self, *, include_archived: bool = False) -> dict[str, int]:
        """How many tenants' latest check is in each status (every status present, worst first; an unreachable
        check is never a tenant's latest, so only KEY_STATUSES). Read from the tenant rows (0010)."""
        q, cc = latest_base(include_archived)
        q = q.add_columns(cc.c.status, sa.func.count()).group_by(cc.c.status)
        out: dict[str, int] = {s: 0 for s in KEY_STATUSES}
        with self.db.connect() as conn:
            for status, n in conn.execute(q):
                out[status] = out.get(status, 0) + n
        return out

    def score_distribution(self, bucket: int = 10, *, include_archived: bool = False) -> list[ScoreBucket]:
        """Histogram of the latest check's score per tenant (scores 0–100).

        [{"from": 0, "to": 9, "tenants": n, "statuses": {"failing": n, …}}, …, {"from": 90, "to": 100, …}]: every
        bucket present, the last one includes 100, each with its tenants by latest status (the chart colours each
        bucket by status, since a score alone does not say the status). Read from the tenant rows (0010).
        """
        if not isinstance(bucket, int) or not 1 <= bucket <= 100:
            raise StoreInputError("The score bucket width must be a whole number from 1 to 100.")
        nb = -(-100 // bucket)  # buckets covering 0..99; 100 goes in the last
        q, cc = latest_base(include_archived)
        # grouped by (status, score), in ix_tenants_status's order (0017): no sort; the buckets are made here
        q = q.add_columns(cc.c.status, cc.c.score, sa.func.count()).group_by(cc.c.status, cc.c.score)
        counts = [0] * nb
        by_status: list[dict[str, int]] = [{} for _ in range(nb)]
        with self.db.connect() as conn:
            for status, score, n in conn.execute(q):
                i = nb - 1 if score >= 100 else 0 if score < 0 else min(score // bucket, nb - 1)
                counts[i] += n
                by_status[i][status] = by_status[i].get(status, 0) + n
        return [
            {"from": i * bucket, "to": 100 if i == nb - 1 else (i + 1) * bucket - 1, "tenants": counts[i],
             "statuses": by_status[i]}
            for i in range(nb)
        ]

    def top_problem_scopes(self, kind: str = "missing", limit: int = 10, *, include_archived: bool = False
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
        return self._problem_scopes(q, include_archived)

    def _problem_scopes(self, q, include_archived: bool) -> list[ProblemScope]:
        total_q = sa.select(sa.func.count()).select_from(t).where(HAS_LATEST)
        if not include_archived:
            total_q = total_q.where(t.c.archived.is_(False))
        with self.db.connect() as conn:
            total = conn.execute(total_q).scalar() or 0
            rows = [cast(ProblemScope, dict(x._mapping)) for x in conn.execute(q)]
        for d in rows:
            d["share"] = d["tenants"] / total if total else 0.0
        return rows

    def stale_tenants(self, days: float, *, include_archived: bool = False, now: datetime | None = None
    ) -> list[StaleTenant]:
        """Tenants not checked for `days` days, never-checked ones first, then the stalest.

        [{"tenant_id", "tenant", "slug", "contact", "archived", "last_checked_at", "status", "score",
        "age_days"}]; last_checked_at/status/score/age_days are None for a tenant never checked.
        """
        if days is None or float(days) < 0:
            raise StoreInputError("The number of days must be zero or more.")
        now = utc(now) if now else utcnow()
        cutoff = now - timedelta(days=float(days))
        q = (
            sa.select(*TENANT_COLUMNS, t.c.last_checked_at, c.c.status, c.c.score)
            .select_from(t.outerjoin(c, c.c.id == t.c.last_check_id))
            .where(sa.or_(t.c.last_checked_at.is_(None), t.c.last_checked_at < cutoff))
            .order_by(t.c.last_checked_at.is_not(None), t.c.last_checked_at, t.c.id)
        )
        if not include_archived:
            q = q.where(t.c.archived.is_(False))
        with self.db.connect() as conn:
            out = [cast(StaleTenant, dict(x._mapping)) for x in conn.execute(q)]
        for d in out:
            last = d["last_checked_at"]
            d["age_days"] = None if last is None else (now - last).total_seconds() / 86400
        return out

    def lifecycle_counts(
        self, *, rotation_days: int | None = None, include_archived: bool = False, now: datetime | None = None,
    ) -> dict[str, int]:
        """Fleet: how many tenants (by their latest check) have each key-lifecycle flag (see FLAGS), plus
        "mode_or_account_changed".

        The same flags latest_checks computes per row, counted from where each one lives instead of joining every
        tenant to its events and keys (20,000 tenants: 60,000 index seeks): the wrong mode from the tenant rows; the
        replacement flags from each tenant's newest key event; rotation from the keys first seen before the cutoff;
        shared keys from the keys recorded for more than one tenant (the last two through
        ix_tenants_last_key_fingerprint, 0017)."""
        now = utc(now) if now else utcnow()
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
        with self.db.connect() as conn:
            out = {name: int(n) for name, n in conn.execute(events).one()._mapping.items()}
            out["mode_mismatch"] = int(conn.execute(sa.select(count(mismatch)).where(*latest)).scalar_one())
            out["rotation_due"] = int(conn.execute(rotation).scalar_one())
            out["shared_key"] = int(conn.execute(shared).scalar_one())
        return {name: out[name] for name in [*FLAGS, "mode_or_account_changed"]}

    def replaced_tenants(self, since: datetime, *, include_archived: bool = False) -> int:
        """How many tenants had their key replaced at or after `since`."""
        q = sa.select(sa.func.count(sa.distinct(e.c.tenant_id))).where(e.c.at >= utc(since))
        if not include_archived:
            q = q.where(e.c.tenant_id.not_in(sa.select(t.c.id).where(t.c.archived.is_(True)).scalar_subquery()))
        with self.db.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    def unreachable_share(
        self, start: date | datetime | None = None, end: date | datetime | None = None, *,
        include_archived: bool = False,
    ) -> dict:
        """Of the checks in the date range (inclusive UTC days; a datetime stands for its UTC day), how many Stripe
        never answered: {"checks", "unreachable", "share"}. Read from the daily rollup (0008)."""
        rd = rollup_days_t
        q = sa.select(sa.func.sum(rd.c.checks), sa.func.sum(rd.c.unreachable)).where(
            *_rollup_where(rd, start, end, include_archived)
        )
        with self.db.connect() as conn:
            n, u = conn.execute(q).first() or (0, 0)
        n, u = int(n or 0), int(u or 0)
        return {"checks": n, "unreachable": u, "share": u / n if n else 0.0}
