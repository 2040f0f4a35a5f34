"""Alembic migrations: the upgrade path keeps data, models and migrations agree, the CLI works."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from core import store
from core.store.db import get_engine
from core.store.models import metadata

ROOT = Path(__file__).resolve().parents[2]


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
                        ("expected_mode", "refused", "key_dashboard_id", "broken_since", "worse_at", "triage_rank")
                        and not c["name"].startswith("last_")]
                out[table] = conn.execute(sa.text(f"SELECT {', '.join(cols)} FROM {table} ORDER BY id")).all()
            return out

    before = snapshot()
    assert len(before["check_rows"]) == 8
    store.dispose_engine(db_url)
    store.at(db_url).upgrade()
    assert store.at(db_url).current_revision() == store.db.newest_revision()
    engine = get_engine(db_url)
    assert snapshot() == before
    tenants = {t["name"]: t for t in store.at(db_url).list_tenants(include_archived=True)}
    assert tenants["Acme"]["last_check_id"] == 2
    assert tenants["Acme"]["last_checked_at"] == datetime(2025, 2, 3, 10, tzinfo=UTC)
    assert tenants["Globex"]["last_check_id"] == 4
    assert tenants["Never"]["last_check_id"] is None and tenants["Never"]["last_checked_at"] is None
    with engine.connect() as conn:  # 0010: the latest check's figures copied onto the tenant row
        copies = conn.execute(sa.text("SELECT name, last_status, last_score, last_key_masked FROM tenants "
                                      "ORDER BY id")).all()
    assert [tuple(x) for x in copies] == [("Acme", "failing", 40, "rk_test_…0002"),
                                          ("Globex", "invalid", 0, "rk_test_…0004"), ("Never", None, None, None)]
    assert [(p["scope"], p["tenants"]) for p in store.at(db_url).top_problem_scopes(include_archived=True)] == [
        ("customer_write", 2)]
    # the store works on the migrated data, and carries on from it
    assert [(d["tenant"], d["status"]) for d in store.at(db_url).latest_checks(include_archived=True)] == [
        ("Globex", "invalid"), ("Acme", "failing")]
    assert store.at(db_url).get_check(3)["rows"][1]["reason"] == "r3"
    with engine.connect() as conn:  # 0015: the short problem and the streak, walked from the history in time order
        summary = conn.execute(sa.text("SELECT name, last_summary, broken_since, last_healthy_at, worse_at, "
                                       "last_account_changed FROM tenants ORDER BY id")).all()
    at_ = lambda s: datetime.fromisoformat(s).replace(tzinfo=UTC)  # noqa: E731
    got = [(n, sm, *(None if v is None else (at_(v) if isinstance(v, str) else v.astimezone(UTC)) for v in vs),
            bool(ch)) for n, sm, *vs, ch in summary]
    assert got == [
        ("Acme", "missing: Customers", at_("2025-02-02 10:00:00"), at_("2025-02-01 10:00:00"),
         at_("2025-02-03 10:00:00"), False),
        ("Globex", "key refused by Stripe", at_("2025-02-05 08:30:00"), None, at_("2025-02-05 08:30:00"), False),
        ("Never", None, None, None, None, False),
    ]


def test_models_and_migrations_agree(db_url):
    store.at(db_url).upgrade()  # the migrations themselves, not store_url's copy of a template
    with get_engine(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def _schema(url: str) -> dict:
    with get_engine(url).connect() as conn:
        insp = sa.inspect(conn)
        tables = {
            t: (
                [(c["name"], str(c["type"]), c["nullable"], str(c.get("default"))) for c in insp.get_columns(t)],
                sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(t)),
                sorted(str(k["constrained_columns"]) + str(k["referred_table"]) for k in insp.get_foreign_keys(t)),
                sorted(str(u["column_names"]) for u in insp.get_unique_constraints(t)),
            )
            for t in insp.get_table_names()
        }
        rows = {t: conn.execute(sa.text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one() for t in tables}
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    return {"tables": tables, "rows": rows, "version": version}


def test_store_url_is_a_database_at_head(store_url, db_url, make_result):
    """conftest's store_url copies a template migrated once per process: it must be exactly what running the
    migrations on a fresh database gives (same tables, columns, indexes, rows, revision), and writable."""
    store.at(db_url).upgrade()
    assert _schema(store_url) == _schema(db_url)
    assert _schema(store_url)["version"] == [store.db.newest_revision()]
    store.at(store_url).record_check(make_result(), "Acme", source="cli", checked_by=None)
    assert [d["tenant"] for d in store.at(store_url).latest_checks()] == ["Acme"]


def test_downgrade_to_0001_and_back_keeps_data(store_url, make_result):
    store.at(store_url).record_check(make_result(), "Acme", source="cli", checked_by=None)
    store.db.downgrade(store_url, "0001")
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
    assert store.at(env["DATABASE_URL"]).current_revision() == store.db.newest_revision()
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
    assert store.at(db_url).current_revision() == store.db.newest_revision()


def test_upgrade_0005_to_0006_reslugs_and_reports_merges_and_collisions(db_url, make_result):
    """Unicode slugs: a populated 0005 database gets the new slugs, keeps every row, and reports what it cannot
    fix: tenants merged by the old ASCII slug, and two tenants whose new slugs would be the same."""

    store.at(db_url).upgrade("0005")  # the previous head
    engine = get_engine(db_url)
    T = lambda s: ts(s, engine.dialect.name)  # noqa: E731
    old = [  # (id, name, slug as the old ASCII rule made it)
        (1, "Foods", "foods"),
        (2, "Acme Café", "acme-cafe"),
        (3, "Straße", "strae"),
        (4, "Strasse", "strasse"),
        (5, "東京", "tenant-" + __import__("hashlib").sha256("東京".encode()).hexdigest()[:10]),
        (6, "Plain", "plain"),
    ]
    with engine.begin() as conn:
        for tid, name, slug in old:
            conn.execute(sa.text("INSERT INTO tenants (id, name, slug, archived, created_at) VALUES "
                                 f"({tid}, :n, :s, false, '{T('2025-01-01 00:00:00')}')"), {"n": name, "s": slug})
        # Foods' history holds the checks of three businesses: the audit trail kept each check's name as given
        for i, given in enumerate(["Foods", "北京 Foods", "北京 Foods", "上海 Foods", "Plain"], start=1):
            tid = 6 if given == "Plain" else 1
            conn.execute(sa.text(
                "INSERT INTO checks (id, tenant_id, checked_at, source, key_masked, key_kind, status, score, n_ok, "
                "n_missing, n_excess, n_unknown, n_not_applicable, requests, elapsed_s) VALUES "
                f"({i}, {tid}, '{T(f'2025-02-0{i} 10:00:00')}', 'cli', 'rk_test_…000{i}', 'restricted', "
                "'healthy', 100, 1, 0, 0, 0, 0, 1, 0.5)"))
            conn.execute(sa.text("INSERT INTO audit (at, who, action, tenant_id, tenant, outcome, detail) VALUES "
                                 f"('{T(f'2025-02-0{i} 10:00:01')}', 'ann', 'check', {tid}, :t, 'healthy', 'd')"),
                         {"t": given})
        conn.execute(sa.text("INSERT INTO audit (at, who, action, tenant_id, tenant, outcome) VALUES "
                             f"('{T('2025-02-09 10:00:00')}', 'ann', 'sample_data', 1, '北京 Foods', 'ok')"))
        if engine.dialect.name == "postgresql":
            for table in ("tenants", "checks"):
                conn.execute(sa.text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))"))
        checks_before = conn.execute(sa.text("SELECT * FROM checks ORDER BY id")).all()
    store.dispose_engine(db_url)

    store.at(db_url).upgrade()
    assert store.at(db_url).current_revision() == store.db.newest_revision()
    engine = get_engine(db_url)
    with engine.connect() as conn:
        slugs = dict(conn.execute(sa.text("SELECT name, slug FROM tenants")).all())
        after = conn.execute(sa.text("SELECT * FROM checks ORDER BY id")).all()
        assert [tuple(r)[:len(checks_before[0])] for r in after] == [tuple(r) for r in checks_before]
    assert slugs == {"Foods": "foods", "Acme Café": "acme-café", "Straße": "strae", "Strasse": "strasse",
                     "東京": "東京", "Plain": "plain"}
    reports = {(a["tenant"], a["outcome"]): a for a in store.at(db_url).list_audit(action="reslug")}
    assert set(reports) == {("Straße", "kept_slug"), ("Foods", "merged")}
    kept = reports[("Straße", "kept_slug")]
    assert kept["who"] == "migration 0006" and kept["tenant_id"] == 3
    assert "'Strasse'" in kept["detail"] and "'strae'" in kept["detail"]
    merged = reports[("Foods", "merged")]["detail"]
    assert "'上海 Foods' (1 check)" in merged and "'北京 Foods' (2 checks)" in merged and "'Plain'" not in merged
    assert merged.count("'Foods'") == 0

    # the store works on the migrated data: exact names first, slugs too, and the merged names now stand alone
    assert store.at(db_url).get_tenant("Straße")["id"] == 3
    assert store.at(db_url).get_tenant("Strasse")["id"] == 4 and store.at(db_url).get_tenant("strasse")["id"] == 4
    assert store.at(db_url).get_tenant("acme-café")["id"] == 2 and store.at(db_url).get_tenant("東京")["id"] == 5
    store.at(db_url).record_check(make_result(), "Acme Café", source="cli", checked_by=None)
    assert len(store.at(db_url).tenant_history(2)) == 1
    cid = store.at(db_url).record_check(make_result(), "北京 Foods", source="cli", checked_by=None)
    beijing = store.at(db_url).get_tenant("北京 Foods")
    assert beijing["id"] not in range(1, 7) and beijing["slug"] == "北京-foods"
    assert store.at(db_url).get_check(cid)["tenant_id"] == beijing["id"]
    assert len(store.at(db_url).tenant_history(1)) == 4  # the old merged history stays where it was

    # and back: the old ASCII slugs, made unique where the Unicode ones had separated tenants
    store.db.downgrade(db_url, "0005")
    with engine.connect() as conn:
        slugs = dict(conn.execute(sa.text("SELECT name, slug FROM tenants")).all())
    assert slugs["Foods"] == "foods" and slugs["北京 Foods"] == f"foods-{beijing['id']}"
    assert slugs["Acme Café"] == "acme-cafe" and slugs["Straße"] == "strae"
    store.dispose_engine(db_url)
    store.at(db_url).upgrade()
    assert store.at(db_url).get_tenant("北京 Foods")["slug"] == "北京-foods"


def test_about_page_lists_what_the_slug_migration_reported(tmp_path, monkeypatch):
    from apptest import AppTest

    url = f"sqlite:///{tmp_path / 'keyhealth.db'}"
    store.at(url).upgrade("0005")
    with get_engine(url).begin() as conn:
        conn.execute(sa.text("INSERT INTO tenants (id, name, slug, archived, created_at) VALUES "
                             "(1, 'Foods', 'foods', false, '2025-01-01 00:00:00.000000')"))
        conn.execute(sa.text("INSERT INTO audit (at, who, action, tenant_id, tenant, outcome) VALUES "
                             "('2025-01-02 00:00:00.000000', 'ann', 'check', 1, '北京 Foods', 'healthy')"))
    store.at(url).upgrade()
    store.dispose_engine(url)
    monkeypatch.setenv("KEYHEALTH_DEMO", "0")
    monkeypatch.setenv("DATABASE_URL", url)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.switch_page("app_pages/about.py").run()
    assert not at.exception
    assert "Tenants the slug migration reported" in [h.value for h in at.subheader]
    frame = next(d.value for d in at.dataframe if "Tenant" in d.value.columns)
    assert list(frame["Tenant"]) == ["Foods"] and list(frame["What"]) == ["holds merged history"]
    assert "'北京 Foods' (1 check)" in frame["Detail"][0]
    store.dispose_engine(url)


def test_migration_files_name_their_revision_and_the_newest_is_alembics_head():
    from alembic.script import ScriptDirectory

    from core.store.db import MIGRATIONS_DIR, alembic_config, newest_revision

    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    for rev in scripts.walk_revisions():
        assert Path(rev.path).name.startswith(f"{rev.revision}_"), rev.path
    assert len(list((MIGRATIONS_DIR / "versions").glob("[0-9]*_*.py"))) == len(list(scripts.walk_revisions()))
    assert newest_revision() == scripts.get_current_head()


def test_upgrade_at_the_newest_revision_is_one_query_without_alembic(tmp_path):
    """Every CLI process upgrades at start: at head it must not load Alembic (and its migration scripts); an older
    database still gets the full upgrade."""
    url = f"sqlite:///{tmp_path / 'fast.db'}"
    probe = ("import sys; from core.store.db import Database; Database(sys.argv[1]).upgrade(); "
             "print('alembic' in sys.modules)")

    def upgrade_loads_alembic() -> bool:
        p = subprocess.run([sys.executable, "-c", probe, url], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        return p.stdout.strip() == "True"

    assert upgrade_loads_alembic()  # empty: migrated
    assert not upgrade_loads_alembic()  # at head: one query
    store.db.downgrade(url, "0007")
    assert store.at(url).current_revision() == "0007"
    store.dispose_engine(url)
    assert upgrade_loads_alembic()  # behind: migrated again
    assert store.at(url).current_revision() == store.db.newest_revision()
    store.dispose_engine(url)


def test_migrations_freeze_their_backfill_rules():
    """A migration's data rule is a copy frozen in its file (issue 18.9, as 0006 does): no migration imports live
    store code other than the column type, so a later change to core.store never changes an old upgrade."""
    import ast

    from core.store.db import MIGRATIONS_DIR

    allowed = {"core.store.types"}
    for path in sorted((MIGRATIONS_DIR / "versions").glob("[0-9]*_*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                assert not name.startswith("core") or name in allowed, f"{path.name} imports live code from {name}"


def test_0016_lets_checks_come_from_a_key_source_and_keeps_every_check(db_url, make_result):
    """0016 widens checks.source to 'key source' in place (SQLite: the table's CREATE text, no table copy), keeping
    every check and its rows; before it, the database itself refuses that source."""
    s = store.at(db_url)
    s.upgrade("0015")  # 0016's down_revision: the live code reads every column before it
    s.record_check(make_result(), "Acme Ltd", source="cli", checked_by="ops")
    with pytest.raises(sa.exc.IntegrityError):
        s.record_check(make_result(), "Acme Ltd", source="key source", checked_by="ops")
    store.dispose_engine(db_url)
    store.at(db_url).upgrade()
    s = store.at(db_url)
    assert s.current_revision() == store.db.newest_revision()
    s.record_check(make_result(), "Acme Ltd", source="key source", checked_by="ops")
    history = s.tenant_history("Acme Ltd")
    assert [h["source"] for h in history] == ["key source", "cli"]
    assert all(s.get_check(h["check_id"])["rows"] for h in history)
    with get_engine(db_url).connect() as conn:
        if conn.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    store.dispose_engine(db_url)
