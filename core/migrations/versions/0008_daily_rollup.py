"""The fleet's daily rollup: checks, tenants and unreachable checks per UTC day, and the status tenants ended
each day in, kept as checks are written.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

Why (issue 13): the fleet charts walked every check in their date range (a window over the whole history),
4.2 s for 180 days at 20,000 tenants and 1,000,000 checks. rollup_days and rollup_status hold the same figures
per (day, archived) and are kept by record_check (and update_tenant's archived flag) in the writer's own
transaction; see core/store/rollup.py. Backfilled here from the existing history with set-based
INSERT … SELECT (the same aggregation as the raw queries), by core.store.rollup.backfill: that function names
only the columns it reads (checks.id, tenant_id, checked_at, status; tenants.id, archived) and the rollup
tables as created here, so later model changes do not change what this migration does.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core.store.rollup import backfill

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollup_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("tenants", sa.Integer(), nullable=False),
        sa.Column("unreachable", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "archived", name="pk_rollup_days"),
    )
    op.create_table(
        "rollup_status",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tenants", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "archived", "status", name="pk_rollup_status"),
    )
    backfill(op.get_bind())


def downgrade() -> None:
    op.drop_table("rollup_status")
    op.drop_table("rollup_days")
