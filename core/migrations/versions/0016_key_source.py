"""Checks may come from a key source: source 'key source' (issue 19.5, "Check the key Pointai holds").

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06

Only the CHECK constraint ck_checks_source widens (every existing row already satisfies the new one):
- PostgreSQL: the constraint is dropped and added again;
- SQLite cannot alter a constraint, and a table copy of `checks` (rows referencing it, up to millions of them) is
  what this migration must not do; SQLite documents editing the table's CREATE text in sqlite_schema for changes
  that leave the stored format alone, such as a CHECK constraint (https://www.sqlite.org/lang_altertable.html,
  "making other kinds of table schema changes"), which is done here inside the upgrade's transaction, the schema
  version bumped so every connection re-reads it.
"""
from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

OLD = "source IN ('dashboard', 'cli', 'batch')"
NEW = "source IN ('dashboard', 'cli', 'batch', 'key source')"


def _swap(old: str, new: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE checks DROP CONSTRAINT ck_checks_source")
        op.execute(f"ALTER TABLE checks ADD CONSTRAINT ck_checks_source CHECK ({new})")
        return
    sql = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'checks'").scalar()
    if sql is None or old not in sql:
        raise RuntimeError("checks.source's CHECK constraint is not the one this migration expects.")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar() or 0
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        bind.exec_driver_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'checks'",
                             (sql.replace(old, new),))
        bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    _swap(OLD, NEW)


def downgrade() -> None:
    op.execute("UPDATE checks SET source = 'dashboard' WHERE source = 'key source'")
    _swap(NEW, OLD)
