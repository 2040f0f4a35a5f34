"""Alembic migrations: the upgrade path keeps data, models and migrations agree, the CLI works."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from core import store
from core.store.db import get_engine
from core.store.models import metadata

ROOT = Path(__file__).resolve().parent.parent


def ts(s: str, dialect: str) -> str:
    """A UTC timestamp literal as each backend stores it."""
    return s + ".000000" if dialect == "sqlite" else s + "+00"


def test_upgrade_from_0001_keeps_every_row_and_backfills_latest(db_url):
    store.at(db_url).upgrade("0001")
    assert store.at(db_url).current_revision() == "0001"
    engine = get_engine(db_url)
    dialect = engine.dialect.name
    assert "last_check_id" not in {c["name"] for c in sa.inspect(engine).get_columns("tenants")}
    T = lambda s: ts(s, dialect)  # noqa: E731
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO tenants (id, name, slug, account, contact, notes, archived, created_at) VALUES "
            f"(1, 'Acme', 'acme', 'acct_1', 'ops@acme.test', 'n1', false, '{T('2025-01-01 00:00:00')}'),"
            f"(2, 'Globex', 'globex', NULL, NULL, NULL, true, '{T('2025-01-02 00:00:00')}'),"
            f"(3, 'Never', 'never', NULL, NULL, NULL, false, '{T('2025-01-03 00:00:00')}')"))
        # check 3 was inserted after check 2 but is older: the latest of Acme is check 2 (by time, not id)
        checks = [
            (1, 1, "2025-02-01 10:00:00", "healthy", 100, "cli"),
            (2, 1, "2025-02-03 10:00:00", "failing", 40, "dashboard"),
            (3, 1, "2025-02-02 10:00:00", "attention", 70, "batch"),
            (4, 2, "2025-02-05 08:30:00", "invalid", 0, "cli"),
        ]
        for cid, tid, at, status, score, source in checks:
            conn.execute(sa.text(
                "INSERT INTO checks (id, tenant_id, checked_at, checked_by, source, key_masked, key_fingerprint, "
                "key_kind, key_mode, account, status, score, n_ok, n_missing, n_excess, n_unknown, "
                "n_not_applicable, requests, elapsed_s, problem) VALUES "
                f"({cid}, {tid}, '{T(at)}', 'ann', '{source}', 'rk_test_…000{cid}', 'fp{cid}', 'restricted', "
                f"'test', 'acct_1', '{status}', {score}, 1, 1, 0, 0, 0, 9, 1.25, 'p{cid}')"))
            conn.execute(sa.text(
                "INSERT INTO check_rows (check_id, scope, resource, category, required, granted, verdict, reason) "
                f"VALUES ({cid}, 'charge_read', 'Charges', 'Core', 'read', 'read', 'ok', NULL),"
                f"({cid}, 'customer_write', 'Customers', 'Core', 'write', 'none', 'missing', 'r{cid}')"))
        conn.execute(sa.text(
            "INSERT INTO audit (at, who, action, tenant_id, tenant, outcome, detail) VALUES "
            f"('{T('2025-02-01 10:00:01')}', 'ann', 'check', 1, 'Acme', 'ok', 'd1')"))
        if dialect == "postgresql":  # explicit ids: move the sequences on as a real database would be
            for table in ("tenants", "checks"):
                conn.execute(sa.text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))"))

    def snapshot():
        with engine.connect() as conn:
            out = {}
            for table in ("tenants", "checks", "check_rows", "audit"):
                cols = [c["name"] for c in sa.inspect(conn).get_columns(table) if c["name"] not in
                        ("last_check_id", "last_checked_at", "expected_mode", "refused")]
                out[table] = conn.execute(sa.text(f"SELECT {', '.join(cols)} FROM {table} ORDER BY id")).all()
            return out

    before = snapshot()
    assert len(before["check_rows"]) == 8
    store.dispose_engine(db_url)
    store.at(db_url).upgrade()
    assert store.at(db_url).current_revision() == "0006"  # head (the lead renumbers on merge)
    engine = get_engine(db_url)
    assert snapshot() == before
    tenants = {t["name"]: t for t in store.at(db_url).list_tenants(include_archived=True)}
    assert tenants["Acme"]["last_check_id"] == 2
    assert tenants["Acme"]["last_checked_at"] == datetime(2025, 2, 3, 10, tzinfo=timezone.utc)
    assert tenants["Globex"]["last_check_id"] == 4
    assert tenants["Never"]["last_check_id"] is None and tenants["Never"]["last_checked_at"] is None
    # the store works on the migrated data, and carries on from it
    assert [(d["tenant"], d["status"]) for d in store.at(db_url).latest_checks(include_archived=True)] == [
        ("Globex", "invalid"), ("Acme", "failing")]
    assert store.at(db_url).get_check(3)["rows"][1]["reason"] == "r3"


def test_models_and_migrations_agree(store_url):
    with get_engine(store_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_downgrade_to_0001_and_back_keeps_data(store_url, make_result):
    store.at(store_url).record_check(make_result(), "Acme", source="cli", checked_by=None)
    from alembic import command

    cfg = store.db.alembic_config(store_url)
    with get_engine(store_url).connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
        conn.commit()
    assert store.at(store_url).current_revision() == "0001"
    store.dispose_engine(store_url)
    store.at(store_url).upgrade()
    assert [d["tenant"] for d in store.at(store_url).latest_checks()] == ["Acme"]
    assert len(store.at(store_url).get_check(1)["rows"]) == 2


def test_alembic_cli_upgrade_head_from_repo_root(tmp_path):
    alembic = Path(sys.executable).with_name("alembic")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    proc = subprocess.run([str(alembic), "upgrade", "head"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert store.at(env["DATABASE_URL"]).current_revision() == "0006"
    other = f"sqlite:///{tmp_path / 'x.db'}"
    proc = subprocess.run([str(alembic), "-x", f"url={other}", "upgrade", "0001"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert store.at(other).current_revision() == "0001"
    store.dispose_engine(env["DATABASE_URL"])
    store.dispose_engine(other)


def test_a_failed_upgrade_leaves_the_database_as_it_was(db_url, monkeypatch):
    """Each upgrade runs in one transaction (SQLite included): a failure half-way through 0002 changes nothing."""
    from alembic.operations import Operations

    store.at(db_url).upgrade("0001")
    real_execute = Operations.execute

    def failing_execute(self, sql, *a, **k):  # 0002 has added its columns by the time it backfills
        if "last_checked_at = (SELECT" in str(sql):
            raise RuntimeError("boom in the middle of 0002")
        return real_execute(self, sql, *a, **k)

    monkeypatch.setattr(Operations, "execute", failing_execute)
    with pytest.raises(RuntimeError, match="boom"):
        store.at(db_url).upgrade()
    monkeypatch.undo()
    store.dispose_engine(db_url)
    assert store.at(db_url).current_revision() == "0001"
    assert "last_check_id" not in {c["name"] for c in sa.inspect(get_engine(db_url)).get_columns("tenants")}
    store.at(db_url).upgrade()
    assert store.at(db_url).current_revision() == "0006"
