"""Initial schema: tenants, checks, check_rows, audit.

Revision ID: 0001
Revises:
Create Date: 2025-11-26
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("slug", sa.String(120), nullable=False),
        sa.Column("account", sa.String(64), nullable=True),
        sa.Column("contact", sa.String(200), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("archived", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("slug", name="uq_tenants_slug"),
    )
    op.create_table(
        "checks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.Integer(),
            sa.ForeignKey("tenants.id", name="fk_checks_tenant_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("checked_at", TS, nullable=False),
        sa.Column("checked_by", sa.String(100), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("key_masked", sa.String(40), nullable=False),
        sa.Column("key_fingerprint", sa.String(128), nullable=True),
        sa.Column("key_kind", sa.String(32), nullable=False),
        sa.Column("key_mode", sa.String(8), nullable=True),
        sa.Column("account", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("n_ok", sa.Integer(), nullable=False),
        sa.Column("n_missing", sa.Integer(), nullable=False),
        sa.Column("n_excess", sa.Integer(), nullable=False),
        sa.Column("n_unknown", sa.Integer(), nullable=False),
        sa.Column("n_not_applicable", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("elapsed_s", sa.Float(), nullable=False),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.CheckConstraint("source IN ('dashboard', 'cli', 'batch')", name="ck_checks_source"),
        # The raw key is never stored; the database itself refuses anything longer than a masked form.
        sa.CheckConstraint("length(key_masked) <= 40", name="ck_checks_key_masked_len"),
        sa.CheckConstraint("length(key_fingerprint) <= 128", name="ck_checks_key_fingerprint_len"),
    )
    op.create_index("ix_checks_tenant_checked_at", "checks", ["tenant_id", "checked_at"])
    op.create_index("ix_checks_checked_at", "checks", ["checked_at"])
    op.create_index("ix_checks_key_fingerprint", "checks", ["key_fingerprint"])
    op.create_table(
        "check_rows",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "check_id",
            sa.Integer(),
            sa.ForeignKey("checks.id", name="fk_check_rows_check_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("scope", sa.String(100), nullable=True),
        sa.Column("resource", sa.String(200), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("required", sa.String(8), nullable=False),
        sa.Column("granted", sa.String(8), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
    )
    op.create_index("ix_check_rows_check_id", "check_rows", ["check_id"])
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("who", sa.String(100), nullable=True),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column(
            "tenant_id",
            sa.Integer(),
            sa.ForeignKey("tenants.id", name="fk_audit_tenant_id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("tenant", sa.String(100), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
    )
    op.create_index("ix_audit_at", "audit", ["at"])
    op.create_index("ix_audit_tenant_id_at", "audit", ["tenant_id", "at"])


def downgrade() -> None:
    op.drop_table("audit")
    op.drop_table("check_rows")
    op.drop_table("checks")
    op.drop_table("tenants")
