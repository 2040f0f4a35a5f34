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
- ix_tenants_triage (archived, triage_rank, broken_since DESC, last_checked_at, id): Triage's order.
- ix_tenants_worse_at (worse_at): "got worse in the last 24 hours".
- ix_tenants_status (archived, last_status, last_check_id): Triage's figures per status, from the index alone.

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
                    ["archived", "triage_rank", sa.text("broken_since DESC"), "last_checked_at", "id"])
    op.create_index("ix_tenants_worse_at", "tenants", ["worse_at"])
    op.create_index("ix_tenants_status", "tenants", ["archived", "last_status", "last_check_id"])


def downgrade() -> None:
    op.drop_index("ix_tenants_status", table_name="tenants")
    op.drop_index("ix_tenants_worse_at", table_name="tenants")
    op.drop_index("ix_tenants_triage", table_name="tenants")
    op.execute("ALTER TABLE tenants DROP COLUMN triage_rank")
