"""Fleet runs (with their per-tenant claims) and alerts.

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-30

fleet_runs: one row per fleet recheck (start, end, counts by status, 429s, failures, who and what started
it). fleet_items: one row per tenant of a run; PostgreSQL workers claim them with FOR UPDATE SKIP LOCKED and
a claim expiry (claimed_until), so a crashed worker's tenants are taken over, and `--resume` skips the
tenants a run already finished. alerts: a tenant got worse (status, permission drift, refused key), with
its webhook delivery state and acknowledgement. No key is stored in any of them.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "fleet_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("started_by", sa.String(100), nullable=True),
        sa.Column("command", sa.String(200), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("recorded", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("rate_limited", sa.Integer(), nullable=False),
        sa.Column("status_counts", sa.Text(), nullable=True),
        sa.UniqueConstraint("name", name="uq_fleet_runs_name"),
    )
    op.create_index("ix_fleet_runs_started_at", "fleet_runs", ["started_at"])
    op.create_table(
        "fleet_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(),
                  sa.ForeignKey("fleet_runs.id", name="fk_fleet_items_run_id", ondelete="CASCADE"), nullable=False),
        sa.Column("slug", sa.String(120), nullable=False),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("claimed_until", TS, nullable=True),
        sa.Column("check_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("done_at", TS, nullable=True),
        sa.UniqueConstraint("run_id", "slug", name="uq_fleet_items_run_slug"),
    )
    op.create_index("ix_fleet_items_run_state", "fleet_items", ["run_id", "state"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("tenant_id", sa.Integer(),
                  sa.ForeignKey("tenants.id", name="fk_alerts_tenant_id", ondelete="CASCADE"), nullable=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("check_id", sa.Integer(), nullable=True),
        sa.Column("kinds", sa.String(100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("delivery", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("acked_at", TS, nullable=True),
        sa.Column("acked_by", sa.String(100), nullable=True),
    )
    op.create_index("ix_alerts_acked_at_created_at", "alerts", ["acked_at", "created_at"])
    op.create_index("ix_alerts_delivery", "alerts", ["delivery"])


def downgrade() -> None:
    op.drop_table("alerts")
    op.drop_table("fleet_items")
    op.drop_table("fleet_runs")
