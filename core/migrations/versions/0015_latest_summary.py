"""Why, without the key: the latest check's short problem, the bad streak and the account-change signal on the
tenant row, so Triage shows and orders them at 20,000 tenants without reading any check.

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-06

Why (issue 19, items 2 and 3): Triage shows a short problem next to the status ("missing: Subscriptions,
Invoices", "key expired"), orders by impact (production and live first, then severity where a changed account
weighs as failing, then the newest breakage), and filters "got worse in the last 24 hours"; the Tenant page says
"broken since" and "last healthy". Reading the latest check's rows or walking each tenant's history per page would
be per-row queries; instead record_check keeps, with the latest-check pointer (core/store/latest.py):
- last_summary: the latest check's short problem;
- broken_since, last_healthy_at, worse_at: the first check of the current non-healthy streak, the last healthy
  check, and the last check whose status was worse than the one before it in the streak;
- last_account_changed: the current key arrived by a replacement that changed the Stripe account.

The backfill is frozen here (the rules copied from core/store/latest.py as of this revision): one walk over the
checks in time order (about 1,000,000 rows at the bench's size), the latest checks' non-ok rows, the newest key
event per tenant, then one UPDATE per checked tenant in batches.
"""
from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from core.store.types import UTCDateTime

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None

_RANK = {s: i for i, s in enumerate(("invalid", "failing", "incomplete", "attention", "healthy"))}
_REFUSED = {"expired": "key expired", "revoked": "key revoked", "ip_not_allowed": "IP not allowed",
            "no_key": "no key", "invalid": "key refused by Stripe"}
_COLUMNS = (
    ("last_summary", sa.String(200)),
    ("broken_since", UTCDateTime()),
    ("last_healthy_at", UTCDateTime()),
    ("worse_at", UTCDateTime()),
)


def _step(state, status, at):
    broken, healthy, worse, last = state
    if status == "unreachable" or status not in _RANK:
        return state
    if status == "healthy":
        return (None, at, None, status)
    if last is None or _RANK[status] < _RANK.get(last, len(_RANK)):
        worse = at
    return (broken or at, healthy, worse, status)


def _summary(status, refused, key_kind, rows):
    if status in ("healthy", "unreachable"):
        return None
    if status == "invalid":
        if refused in _REFUSED:
            return _REFUSED[refused]
        return "not a restricted key" if key_kind and key_kind != "restricted" else "key refused"
    parts = []
    for verdict in ("missing", "excess"):
        names: list[str] = []
        for v, res in rows:
            if v == verdict and res and res not in names:
                names.append(res)
        if names:
            more = f" +{len(names) - 3} more" if len(names) > 3 else ""
            parts.append(f"{verdict}: {', '.join(names[:3])}{more}")
    unknown = sum(1 for v, _ in rows if v == "unknown")
    if unknown:
        parts.append(f"{unknown} not settled")
    text = "; ".join(parts) or status
    return text if len(text) <= 200 else text[:199] + "…"


def _backfill(conn) -> None:
    t = sa.table("tenants", sa.column("id", sa.Integer), sa.column("last_check_id", sa.Integer),
                 sa.column("last_key_fingerprint", sa.String), sa.column("last_account", sa.String),
                 sa.column("last_summary", sa.String), sa.column("broken_since", UTCDateTime()),
                 sa.column("last_healthy_at", UTCDateTime()), sa.column("worse_at", UTCDateTime()),
                 sa.column("last_account_changed", sa.Boolean))
    c = sa.table("checks", sa.column("id", sa.Integer), sa.column("tenant_id", sa.Integer),
                 sa.column("checked_at", UTCDateTime()), sa.column("status", sa.String),
                 sa.column("refused", sa.String), sa.column("key_kind", sa.String))
    r = sa.table("check_rows", sa.column("check_id", sa.Integer), sa.column("verdict", sa.String),
                 sa.column("resource", sa.String), sa.column("id", sa.Integer))
    e = sa.table("key_events", sa.column("id", sa.Integer), sa.column("tenant_id", sa.Integer),
                 sa.column("new_fingerprint", sa.String), sa.column("old_account", sa.String))
    tenants = {tid: (cid, fp, acct) for tid, cid, fp, acct in conn.execute(
        sa.select(t.c.id, t.c.last_check_id, t.c.last_key_fingerprint, t.c.last_account)
        .where(t.c.last_check_id.is_not(None)))}
    if not tenants:
        return
    streaks: dict = {}
    walk = (sa.select(c.c.tenant_id, c.c.status, c.c.checked_at).where(c.c.status != "unreachable")
            .order_by(c.c.tenant_id, c.c.checked_at, c.c.id))
    for tid, status, at in conn.execute(walk.execution_options(yield_per=20_000)):
        streaks[tid] = _step(streaks.get(tid, (None, None, None, None)), status, at)
    heads = {cid: (s, ref, kind) for cid, s, ref, kind in conn.execute(
        sa.select(c.c.id, c.c.status, c.c.refused, c.c.key_kind)
        .select_from(c.join(t, t.c.last_check_id == c.c.id)))}
    rows: dict = defaultdict(list)
    for cid, verdict, resource in conn.execute(
            sa.select(r.c.check_id, r.c.verdict, r.c.resource).select_from(r.join(t, t.c.last_check_id == r.c.check_id))
            .where(r.c.verdict.in_(("missing", "excess", "unknown"))).order_by(r.c.check_id, r.c.id)):
        rows[cid].append((verdict, resource))
    newest = sa.select(sa.func.max(e.c.id)).group_by(e.c.tenant_id).scalar_subquery()
    events = {tid: (fp, old) for tid, fp, old in conn.execute(
        sa.select(e.c.tenant_id, e.c.new_fingerprint, e.c.old_account).where(e.c.id.in_(newest)))}
    updates = []
    for tid, (cid, fp, acct) in tenants.items():
        status, refused, kind = heads.get(cid, ("healthy", None, None))
        broken, healthy, worse, _ = streaks.get(tid, (None, None, None, None))
        ev = events.get(tid)
        changed = bool(ev and fp and acct and ev[0] == fp and ev[1] and ev[1] != acct)
        updates.append({"tid": tid, "last_summary": _summary(status, refused, kind, rows.get(cid, [])),
                        "broken_since": broken, "last_healthy_at": healthy, "worse_at": worse,
                        "last_account_changed": changed})
    stmt = t.update().where(t.c.id == sa.bindparam("tid")).values(
        {n: sa.bindparam(n) for n in ("last_summary", "broken_since", "last_healthy_at", "worse_at",
                                      "last_account_changed")})
    for i in range(0, len(updates), 5000):
        conn.execute(stmt, updates[i:i + 5000])


def upgrade() -> None:
    for name, type_ in _COLUMNS:
        op.add_column("tenants", sa.Column(name, type_, nullable=True))
    op.add_column("tenants", sa.Column("last_account_changed", sa.Boolean(), nullable=False,
                                       server_default=sa.false()))
    _backfill(op.get_bind())


def downgrade() -> None:
    op.drop_column("tenants", "last_account_changed")
    for name, _type in reversed(_COLUMNS):
        op.drop_column("tenants", name)
