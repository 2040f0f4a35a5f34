"""tests/conftest.py's _PgPool: a PostgreSQL test database at head is used again only when it is as good as a fresh
copy of the template (empty, sequences restarted, the same schema), and a client of the test before it can never
reach it again."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.postgres


def _oid(admin, name: str) -> int | None:
    with admin.connect() as conn:
        return conn.exec_driver_sql("SELECT oid FROM pg_database WHERE datname = %(n)s", {"n": name}).scalar()


def _exists(admin, name: str) -> bool:
    return _oid(admin, name) is not None


def test_a_database_given_back_is_emptied_renamed_and_taken_again(_pg_pool, _pg_admin):
    first = _pg_pool.take()
    oid = _oid(_pg_admin, first)
    engine = sa.create_engine(_pg_pool._url(first))
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO tenants (name, slug, archived, created_at) "
                             "VALUES ('Acme', 'acme', false, now()), ('Beta', 'beta', false, now())")
    held = engine.connect()  # the old test's client, still connected when its database goes back
    held.exec_driver_sql("SELECT 1")
    _pg_pool.give_back(first)
    assert not _exists(_pg_admin, first), "the old name is gone"
    with pytest.raises(sa.exc.OperationalError):  # ended, and it cannot reconnect: no such database
        held.exec_driver_sql("SELECT 1")
    held.invalidate()
    with pytest.raises(sa.exc.OperationalError, match="does not exist"):
        engine.connect()
    engine.dispose()

    second = _pg_pool.take()
    try:
        assert _oid(_pg_admin, second) == oid, "the same database, under a new name"
        engine = sa.create_engine(_pg_pool._url(second))
        with engine.begin() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM tenants").scalar() == 0
            assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
            new_id = conn.exec_driver_sql("INSERT INTO tenants (name, slug, archived, created_at) "
                                          "VALUES ('Gamma', 'gamma', false, now()) RETURNING id").scalar()
            assert new_id == 1, "the sequences start again"
        engine.dispose()
    finally:
        _pg_pool.give_back(second)


@pytest.mark.parametrize("change", [
    "CREATE TABLE extra (id int)",
    "ALTER TABLE tenants ADD COLUMN extra int",
    "DROP INDEX ix_tenants_triage",
    "UPDATE alembic_version SET version_num = '0009'",
    "CREATE SCHEMA elsewhere",
    "DROP TABLE alembic_version",
])
def test_a_database_whose_schema_changed_is_dropped_not_taken_again(_pg_pool, _pg_admin, change):
    name = _pg_pool.take()
    idle = list(_pg_pool.idle)
    engine = sa.create_engine(_pg_pool._url(name))
    with engine.begin() as conn:
        conn.exec_driver_sql(change)
    engine.dispose()
    _pg_pool.give_back(name)
    assert not _exists(_pg_admin, name)
    assert _pg_pool.idle == idle, "not given back to the pool"
