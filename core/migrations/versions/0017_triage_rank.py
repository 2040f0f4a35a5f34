"""Triage's impact order as a column the database computes: tenants.triage_rank, and the indexes Triage reads.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06

Why (issue 19, "Triage and Tenant under 200 ms at 20,000 tenants"): Triage's first page sorted every tenant row by
an expression (about 60 ms of its ~100 ms of SQL at 20,000 tenants on SQLite). The expression only reads the
tenant row's own columns, so the database can keep it as a generated column and index it: the first page becomes
a walk of 50 index entries.
- triage_rank: a generated column (PostgreSQL: STORED, computed on every write; SQLite: VIRTUAL, the only kind
  ALTER TABLE can add, and stored in the index). Nothing writes it, so no writer can forget it.
- ix_tenants_triage (triage_rank, broken_since DESC, last_checked_at, id): Triage's order. Not led by `archived`:
  an index with an equality prefix on `archived` lures SQLite's planner into reading every tenant row through it
  (by rowid, in index order) for the fleet figures, which scan the table far faster (measured: 3 s against 0.3 s).
- ix_tenants_worse_at (worse_at): "got worse in the last 24 hours".
- ix_tenants_status (last_status, last_score, archived, last_check_id): Triage's figures per status and Fleet
  health's score distribution, read from the index alone and grouped in its order (led by the status, for the
  same reason).
- ix_tenants_last_key_fingerprint: Fleet health's "due for rotation" and "shared key" counts start from the few keys
  concerned and find their tenants, instead of looking up the key of every tenant.
- ix_stripe_keys_first_seen_at: the keys first seen before the rotation cutoff.

The rule is frozen here as SQL text (core/store/rank.py builds the live one; a test checks that a fresh database
orders tenants by this column exactly as the live rule orders them). A later change of the rule is a new migration.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_STATUS = ("CASE last_status WHEN 'invalid' THEN 0 WHEN 'failing' THEN 1 WHEN 'incomplete' THEN 2 WHEN 'attention' "
           "THEN 3 WHEN 'healthy' THEN 4 WHEN 'unreachable' THEN 5 ELSE 6 END")
_SIGNAL = ("(expected_mode IS NOT NULL AND last_key_mode IS NOT NULL AND expected_mode != last_key_mode OR "
           "last_account_changed IS {true})")
_SEVERITY = f"CASE WHEN ({_SIGNAL} AND {_STATUS} > 1) THEN 1 ELSE {_STATUS} END"
RANK = (f"(CASE WHEN ({_SEVERITY} >= 4) THEN 100 ELSE 0 END + CASE WHEN (expected_mode = 'live' OR last_key_mode = "
        f"'live') THEN 0 ELSE 10 END + {_SEVERITY}) * 2 + CASE WHEN (broken_since IS NULL) THEN 1 ELSE 0 END")


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    kind = "STORED" if pg else "VIRTUAL"
    expr = RANK.format(true="true" if pg else "1")
    op.execute(f"ALTER TABLE tenants ADD COLUMN triage_rank INTEGER GENERATED ALWAYS AS ({expr}) {kind}")
    op.create_index("ix_tenants_triage", "tenants",
                    ["triage_rank", sa.text("broken_since DESC"), "last_checked_at", "id"])
    op.create_index("ix_tenants_worse_at", "tenants", ["worse_at"])
    op.create_index("ix_tenants_status", "tenants", ["last_status", "last_score", "archived", "last_check_id"])
    op.create_index("ix_tenants_last_key_fingerprint", "tenants", ["last_key_fingerprint"])
    op.create_index("ix_stripe_keys_first_seen_at", "stripe_keys", ["first_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_stripe_keys_first_seen_at", table_name="stripe_keys")
    op.drop_index("ix_tenants_last_key_fingerprint", table_name="tenants")
    op.drop_index("ix_tenants_status", table_name="tenants")
    op.drop_index("ix_tenants_worse_at", table_name="tenants")
    op.drop_index("ix_tenants_triage", table_name="tenants")
    op.execute("ALTER TABLE tenants DROP COLUMN triage_rank")
