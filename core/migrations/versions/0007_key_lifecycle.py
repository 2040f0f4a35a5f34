"""Key lifecycle: first-seen dates per key, key-replaced events, why Stripe refused a key, a tenant's expected mode.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Why (issue 12): a tenant whose live key was replaced by a test key from another account showed up as
permission drift. History already knows each check's key fingerprint, mode and account; this keeps what
follows from them:
- stripe_keys: one row per fingerprint with the date Key Health first saw it (key age, rotation due);
- key_events: a check bringing a new fingerprint for a tenant is a "replaced" event with the old and new
  masked keys, modes and accounts (mode changed, account changed);
- checks.refused: why Stripe refused a key (expired, revoked, ...) so the timeline keeps their own labels;
- tenants.expected_mode: "live" once a tenant is in production (a test key is then a problem).
Backfilled here from the existing checks, oldest first (checked_at, then id). Plain ADD COLUMN, no batch
table copy (on SQLite with foreign_keys=ON a copy-and-drop of checks would cascade-delete their rows).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core.store.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tenants", sa.Column("expected_mode", sa.String(8), nullable=True))
    op.add_column("checks", sa.Column("refused", sa.String(16), nullable=True))
    op.create_table(
        "stripe_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("key_masked", sa.String(40), nullable=False),
        sa.Column("key_mode", sa.String(8), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("fingerprint", name="uq_stripe_keys_fingerprint"),
        sa.CheckConstraint("length(fingerprint) <= 128", name="ck_stripe_keys_fingerprint_len"),
        sa.CheckConstraint("length(key_masked) <= 40", name="ck_stripe_keys_key_masked_len"),
    )
    op.create_table(
        "key_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id", name="fk_key_events_tenant_id",
                                                           ondelete="CASCADE"), nullable=False),
        sa.Column("check_id", sa.Integer(), sa.ForeignKey("checks.id", name="fk_key_events_check_id",
                                                          ondelete="CASCADE"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("old_fingerprint", sa.String(128), nullable=True),
        sa.Column("new_fingerprint", sa.String(128), nullable=False),
        sa.Column("old_masked", sa.String(40), nullable=True),
        sa.Column("new_masked", sa.String(40), nullable=False),
        sa.Column("old_mode", sa.String(8), nullable=True),
        sa.Column("new_mode", sa.String(8), nullable=True),
        sa.Column("old_account", sa.String(64), nullable=True),
        sa.Column("new_account", sa.String(64), nullable=True),
    )
    op.create_index("ix_key_events_tenant_id_at", "key_events", ["tenant_id", "at"])
    op.create_index("ix_key_events_at", "key_events", ["at"])

    # Why Stripe refused a key, read back from the problem sentence the check stored.
    op.execute("UPDATE checks SET refused = 'expired' WHERE status = 'invalid' AND problem LIKE '%has expired%'")
    op.execute("UPDATE checks SET refused = 'revoked' WHERE status = 'invalid' AND problem LIKE '%revoked or deleted "
        "in the%'")
    op.execute("UPDATE checks SET refused = 'ip_not_allowed' WHERE status = 'invalid' AND problem LIKE '%certain IP "
        "addresses%'")
    op.execute(
        "UPDATE checks SET refused = 'invalid' WHERE status = 'invalid' AND refused IS NULL "
        "AND requests > 0 AND key_fingerprint IS NOT NULL"
    )
    _backfill(op.get_bind())


def _backfill(conn) -> None:
    """First-seen dates and replacement events, walking every check oldest first (one pass, in Python:
    the same rules as core.store.checks.record_check)."""
    checks = sa.table(
        "checks", sa.column("id"), sa.column("tenant_id"), sa.column("checked_at", UTCDateTime()),
        sa.column("key_fingerprint"), sa.column("key_masked"), sa.column("key_mode"), sa.column("account"),
    )
    keys = sa.table("stripe_keys", sa.column("fingerprint"), sa.column("key_masked"), sa.column("key_mode"),
                    sa.column("first_seen_at", UTCDateTime()))
    events = sa.table(
        "key_events", sa.column("tenant_id"), sa.column("check_id"), sa.column("at", UTCDateTime()),
        sa.column("kind"), sa.column("old_fingerprint"), sa.column("new_fingerprint"), sa.column("old_masked"),
        sa.column("new_masked"), sa.column("old_mode"), sa.column("new_mode"), sa.column("old_account"),
        sa.column("new_account"),
    )
    q = sa.select(checks).order_by(checks.c.checked_at, checks.c.id)
    first_seen: dict[str, dict] = {}
    last_key: dict[int, dict] = {}  # tenant -> its previous check with a fingerprint
    last_account: dict[int, str] = {}  # tenant -> the newest account seen so far
    key_account: dict[str, str] = {}  # fingerprint -> its account, once seen
    new_events: list[dict] = []
    for row in conn.execute(q):
        ch = dict(row._mapping)
        fp, tid = ch["key_fingerprint"], ch["tenant_id"]
        if fp:
            if ch["account"]:
                key_account.setdefault(fp, ch["account"])
            first_seen.setdefault(fp, {"fingerprint": fp, "key_masked": ch["key_masked"], "key_mode": ch["key_mode"],
                                       "first_seen_at": ch["checked_at"]})
            prev = last_key.get(tid)
            if prev is not None and prev["key_fingerprint"] != fp:
                new_events.append({
                    "tenant_id": tid, "check_id": ch["id"], "at": ch["checked_at"], "kind": "replaced",
                    "old_fingerprint": prev["key_fingerprint"], "new_fingerprint": fp,
                    "old_masked": prev["key_masked"], "new_masked": ch["key_masked"],
                    "old_mode": prev["key_mode"], "new_mode": ch["key_mode"],
                    "old_account": last_account.get(tid), "new_account": None,
                })
            last_key[tid] = ch
        if ch["account"]:
            last_account[tid] = ch["account"]
    for e in new_events:  # the new key's account, as any check of it saw it
        e["new_account"] = key_account.get(e["new_fingerprint"])
    if first_seen:
        conn.execute(keys.insert(), list(first_seen.values()))
    if new_events:
        conn.execute(events.insert(), new_events)


def downgrade() -> None:
    op.drop_index("ix_key_events_at", table_name="key_events")
    op.drop_index("ix_key_events_tenant_id_at", table_name="key_events")
    op.drop_table("key_events")
    op.drop_table("stripe_keys")
    op.drop_column("checks", "refused")
    op.drop_column("tenants", "expected_mode")
