"""Triage at 20,000 tenants: "is this key recorded for another tenant" answered from one index.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

Why (issue 13, pages that stay fast): Triage's "shared key" signal asks, for every tenant's latest check,
whether another tenant has a check with the same key fingerprint. With an index on the fingerprint alone each
answer read every check of that key from the table (about 50 per tenant at 1,000,000 checks). An index on
(key_fingerprint, tenant_id) answers it with two index seeks (a smaller and a larger tenant id), and it still
serves every lookup by fingerprint alone, so it replaces ix_checks_key_fingerprint.
"""
from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_checks_key_fingerprint_tenant_id", "checks", ["key_fingerprint", "tenant_id"])
    op.drop_index("ix_checks_key_fingerprint", table_name="checks")


def downgrade() -> None:
    op.create_index("ix_checks_key_fingerprint", "checks", ["key_fingerprint"])
    op.drop_index("ix_checks_key_fingerprint_tenant_id", table_name="checks")
