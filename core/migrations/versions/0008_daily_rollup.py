"""The fleet's daily rollup: checks, tenants and unreachable checks per UTC day, and the status tenants ended
each day in, kept as checks are written.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

Why (issue 13): the fleet charts walked every check in their date range (a window over the whole history),
4.2 s for 180 days at 20,000 tenants and 1,000,000 checks. rollup_days and rollup_status hold the same figures
per (day, archived) and are kept by record_check (and update_tenant's archived flag) in the writer's own
transaction; see core/store/rollup.py. Backfilled here from the existing history with set-based
INSERT … SELECT (the same aggregation as the raw queries).

The backfill rule is frozen in this file (issue 18.9, as 0006 does): a copy of core.store.rollup.backfill as it
was at 0008, naming only the columns it reads (checks.id, tenant_id, checked_at, status; tenants.id, archived)
and the rollup tables as created here. A later change to the live rule (or to the models) never changes what
this migration does to an old database.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core.store.types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


UNREACHABLE = "unreachable"

# Lightweight views of the tables as they are at this revision, with only the columns the backfill reads.
_checks = sa.table(
    "checks", sa.column("id", sa.Integer), sa.column("tenant_id", sa.Integer),
    sa.column("checked_at", UTCDateTime()), sa.column("status", sa.String),
)
_tenants = sa.table("tenants", sa.column("id", sa.Integer), sa.column("archived", sa.Boolean))
_rollup_days = sa.table(
    "rollup_days", sa.column("day", sa.Date), sa.column("archived", sa.Boolean), sa.column("checks", sa.Integer),
    sa.column("tenants", sa.Integer), sa.column("unreachable", sa.Integer),
)
_rollup_status = sa.table(
    "rollup_status", sa.column("day", sa.Date), sa.column("archived", sa.Boolean), sa.column("status", sa.String),
    sa.column("tenants", sa.Integer),
)


def _day_sql(col, dialect: str):
    """SQL: the UTC day of a UTCDateTime column (UTC text on SQLite, timestamptz on PostgreSQL)."""
    if dialect == "sqlite":
        return sa.func.date(col)
    if dialect == "postgresql":
        return sa.cast(sa.func.timezone("UTC", col), sa.Date)
    return sa.cast(col, sa.Date)


def backfill(conn) -> None:
    """Fill the (empty) rollup tables from every stored check, set-based (INSERT … SELECT). Per (UTC day,
    archived): checks, distinct tenants, unreachable checks; per (day, archived, status): tenants whose last
    answered check of the day (the one whose next answered check, by (checked_at, id), is on another day) has
    that status. Frozen copy of the rule at 0008."""
    dialect = conn.dialect.name
    c, t = _checks.c, _tenants.c
    day = _day_sql(c.checked_at, dialect)
    per_day = (
        sa.select(
            day.label("day"),
            t.archived,
            sa.func.count().label("checks"),
            sa.func.count(sa.distinct(c.tenant_id)).label("tenants"),
            sa.func.sum(sa.case((c.status == UNREACHABLE, 1), else_=0)).label("unreachable"),
        )
        .select_from(_checks.join(_tenants, t.id == c.tenant_id))
        .group_by(day, t.archived)
    )
    conn.execute(sa.insert(_rollup_days).from_select(["day", "archived", "checks", "tenants", "unreachable"], per_day))
    ranked = (
        sa.select(
            c.tenant_id,
            day.label("day"),
            c.status,
            sa.func.lead(c.checked_at).over(partition_by=c.tenant_id, order_by=(c.checked_at, c.id)).label("next_at"),
        )
        .where(c.status != UNREACHABLE)
        .subquery("ranked")
    )
    r = ranked.c
    ended = (
        sa.select(r.day, t.archived, r.status, sa.func.count().label("tenants"))
        .select_from(ranked.join(_tenants, t.id == r.tenant_id))
        .where(sa.or_(r.next_at.is_(None), _day_sql(r.next_at, dialect) != r.day))
        .group_by(r.day, t.archived, r.status)
    )
    conn.execute(sa.insert(_rollup_status).from_select(["day", "archived", "status", "tenants"], ended))


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
