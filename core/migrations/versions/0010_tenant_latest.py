"""Triage and Fleet health at 20,000 tenants: the latest check's figures on the tenant row, the latest checks'
missing/excess scopes and each key's tenants counted as checks are written.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30

Why (issue 13, pages that stay fast): ordering, filtering and counting the tenants by their latest check read that
check for every tenant (a primary-key lookup per tenant on PostgreSQL: 20,000 of them, ~300 ms), "top missing /
excess scopes" joined every latest check to its rows (~200,000) to count them, and Triage's "shared key" flag
probed each tenant's key's checks twice (40,000 index probes). Now:
- the tenant row carries the latest check's status, score, key mode, fingerprint, masked key and account (kept by
  record_check in the UPDATE that moves last_check_id);
- latest_problems holds the per-scope counts of the latest checks (kept by record_check and update_tenant);
- key_tenants holds how many tenants each key was recorded for (kept by record_check).
Backfilled here, set-based (one UPDATE … FROM and two INSERT … SELECT). The backfill rule is frozen in this file
(issue 18.9, as 0006 does): a copy of core.store.latest.backfill as it was at 0010, naming only the columns it
reads and writes, so a later change to the live rule never changes what this migration does to an old database.

No index on the new columns, on purpose: every reader either scans all 20,000 tenant rows (counts, histograms,
the triage order, whose first key is a CASE over the status) or filters a share of them too large for an index
to pay. Measured at 20,000 tenants, an (archived, last_status, last_checked_at) index made SQLite read the
tenants through it with a table lookup per row: count 13 ms instead of 1.6 ms, lifecycle_counts 165 ms instead
of 82 ms; PostgreSQL was no faster with it.

One index on an existing column: tenants.name. A tenant is looked up by `slug = ? OR name = ?` (record_check
does it for every check); with only the slug indexed that OR scanned every tenant row on PostgreSQL (4.5 ms at
20,000 tenants, more now that the rows are wider), with both indexed it is two index seeks (0.06 ms).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("last_status", sa.String(16)),
    ("last_score", sa.Integer()),
    ("last_key_mode", sa.String(8)),
    ("last_key_fingerprint", sa.String(128)),
    ("last_key_masked", sa.String(40)),
    ("last_account", sa.String(64)),
)


# The key's copies get the same length limits as checks.key_masked / key_fingerprint, enforced by the database itself
# (SQLite ignores VARCHAR(n)): a column CHECK, which ADD COLUMN accepts on SQLite and PostgreSQL alike.
_CHECKED = {"last_key_fingerprint": 128, "last_key_masked": 40}


# Frozen copy of the backfill at 0010 -------------------------------------------------------------------------
_KINDS = ("missing", "excess")
# tenant column -> the latest check's column it copies
_LATEST_COLUMNS = {
    "last_status": "status",
    "last_score": "score",
    "last_key_mode": "key_mode",
    "last_key_fingerprint": "key_fingerprint",
    "last_key_masked": "key_masked",
    "last_account": "account",
}
_tenants = sa.table(
    "tenants", sa.column("id", sa.Integer), sa.column("archived", sa.Boolean), sa.column("last_check_id", sa.Integer),
    *(sa.column(name) for name in _LATEST_COLUMNS),
)
_checks = sa.table("checks", sa.column("id", sa.Integer), *(sa.column(name) for name in _LATEST_COLUMNS.values()))
_rows = sa.table(
    "check_rows", sa.column("check_id", sa.Integer), sa.column("verdict", sa.String), sa.column("scope", sa.String),
    sa.column("resource", sa.String), sa.column("category", sa.String),
)
_key_checks = sa.table("checks", sa.column("id", sa.Integer), sa.column("tenant_id", sa.Integer),
                       sa.column("key_fingerprint", sa.String))
_key_tenants = sa.table("key_tenants", sa.column("fingerprint", sa.String), sa.column("tenants", sa.Integer))
_latest_problems = sa.table(
    "latest_problems", sa.column("archived", sa.Boolean), sa.column("kind", sa.String), sa.column("scope", sa.String),
    sa.column("resource", sa.String), sa.column("category", sa.String), sa.column("tenants", sa.Integer),
)
_PROBLEM_KEY = ("archived", "kind", "scope", "resource", "category")


def backfill(conn) -> None:
    """Copy each tenant's latest check's figures onto its row, count the latest checks' missing/excess scopes per
    (archived, kind, scope, resource, category) and each key fingerprint's distinct tenants."""
    t, c, r = _tenants.c, _checks.c, _rows.c
    conn.execute(
        _tenants.update().where(t.last_check_id == c.id)
        .values({t[name]: c[col] for name, col in _LATEST_COLUMNS.items()})
    )
    per_problem = (
        sa.select(t.archived, r.verdict, r.scope, r.resource, r.category, sa.func.count(sa.distinct(t.id)))
        .select_from(_tenants.join(_rows, r.check_id == t.last_check_id))
        .where(r.verdict.in_(_KINDS), r.scope.is_not(None))
        .group_by(t.archived, r.verdict, r.scope, r.resource, r.category)
    )
    conn.execute(sa.insert(_latest_problems).from_select([*_PROBLEM_KEY, "tenants"], per_problem))
    k = _key_checks.c
    per_key = (
        sa.select(k.key_fingerprint, sa.func.count(sa.distinct(k.tenant_id)))
        .where(k.key_fingerprint.is_not(None))
        .group_by(k.key_fingerprint)
    )
    conn.execute(sa.insert(_key_tenants).from_select(["fingerprint", "tenants"], per_key))


def upgrade() -> None:
    for name, type_ in _COLUMNS:
        if name in _CHECKED:
            n = _CHECKED[name]
            op.execute(f"ALTER TABLE tenants ADD COLUMN {name} VARCHAR({n}) "
                       f"CONSTRAINT ck_tenants_{name}_len CHECK (length({name}) <= {n})")
        else:
            op.add_column("tenants", sa.Column(name, type_, nullable=True))
    op.create_table(
        "latest_problems",
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(100), nullable=False),
        sa.Column("resource", sa.String(200), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("tenants", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("archived", "kind", "scope", "resource", "category", name="pk_latest_problems"),
    )
    op.create_table(
        "key_tenants",
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("tenants", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_key_tenants"),
        sa.CheckConstraint("length(fingerprint) <= 128", name="ck_key_tenants_fingerprint_len"),
    )
    backfill(op.get_bind())
    op.create_index("ix_tenants_name", "tenants", ["name"])


def downgrade() -> None:
    op.drop_index("ix_tenants_name", table_name="tenants")
    op.drop_table("key_tenants")
    op.drop_table("latest_problems")
    for name, _type in reversed(_COLUMNS):
        op.drop_column("tenants", name)
