"""Alembic environment for the key-health store.

Called two ways:
- Database.upgrade(): a connection is handed in via config.attributes["connection"];
- the alembic CLI from the repo root (`alembic upgrade head`): the URL is `-x url=…`, else the settings'
  database_url (DATABASE_URL or data/keyhealth.db)
  (DATABASE_URL or data/keyhealth.db), or `-x url=…` to aim elsewhere.
Either way the whole upgrade runs in one transaction; on SQLite that is BEGIN IMMEDIATE, on PostgreSQL
it takes an advisory lock first, so two processes upgrading at once run one after the other.
"""
from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from core.config import settings
from core.store.db import _bind
from core.store.models import metadata

config = context.config
PG_LOCK_ID = 0x6B68_7374  # "khst": serialises concurrent upgrades on PostgreSQL


def _configure_and_run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # pysqlite's own transaction handling is off (core.store.db), so SQLite DDL is transactional too:
        # a failed upgrade leaves the database as it was.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_LOCK_ID})")
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    url = context.get_x_argument(as_dictionary=True).get("url") or settings().database_url
    with _bind(url, True).connect() as conn:
        _configure_and_run(conn)
        conn.commit()


if context.is_offline_mode():
    raise SystemExit("Offline (--sql) migrations are not supported; run against a database.")
run_migrations_online()
