"""Tenants' latest-check pointer (last_check_id, last_checked_at) and a covering per-tenant index.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-26

Why: triage ("latest check per tenant, worst first, stalest first"), stale tenants, the fleet status
mix, the score distribution and the top problem scopes all start from "each tenant's latest check".
As a groupwise max that is a scan of every check (100,000 in the bench) on every dashboard render;
with the pointer it is a join of one row per tenant, and stale_tenants is a range scan on an index
that also sees tenants never checked. record_check keeps the pointer in the same transaction as the
check it records. Backfilled here from the existing checks (newest checked_at, then highest id).

Also replaces ix_checks_tenant_checked_at (tenant_id, checked_at) with a covering
(tenant_id, checked_at, id, status): status_mix_per_day walks every check of every tenant in time
order (window LEAD per tenant); with status in the index SQLite reads the index alone, in order, with
no table lookups and no sort (230 ms -> 120 ms on the 100,000-check bench). History and drift use it
as they used the old one.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN (no batch table copy: on SQLite with foreign_keys=ON a copy-and-drop
    # of tenants would cascade-delete every check).
    op.add_column("tenants", sa.Column("last_check_id", sa.Integer(), nullable=True))
    op.add_column("tenants", sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_tenants_last_checked_at", "tenants", ["last_checked_at"])
    op.drop_index("ix_checks_tenant_checked_at", table_name="checks")
    op.create_index(
        "ix_checks_tenant_checked_at_id_status", "checks", ["tenant_id", "checked_at", "id", "status"]
    )
    op.execute(
        """
        UPDATE tenants SET last_check_id = (
            SELECT c.id FROM checks c WHERE c.tenant_id = tenants.id
            ORDER BY c.checked_at DESC, c.id DESC LIMIT 1
        )
        """
    )
    op.execute(
        "UPDATE tenants SET last_checked_at = (SELECT c.checked_at FROM checks c WHERE c.id = tenants.last_check_id)"
    )


def downgrade() -> None:
    op.drop_index("ix_checks_tenant_checked_at_id_status", table_name="checks")
    op.create_index("ix_checks_tenant_checked_at", "checks", ["tenant_id", "checked_at"])
    op.drop_index("ix_tenants_last_checked_at", table_name="tenants")
    # Native DROP COLUMN (SQLite >= 3.35), for the same reason as above.
    op.drop_column("tenants", "last_checked_at")
    op.drop_column("tenants", "last_check_id")
