"""Shared pytest fixtures: the one fixtures module (shared helpers that are not fixtures: tests/support.py). Safe
under pytest-xdist (`make test` runs `-n 2`): every worker process has its own data dir, sandbox and temp files;
PostgreSQL is one cluster per run that the workers share (see `postgres`).

The tests live in folders that mirror the layout (engine/, store/, service/, recheck/, cli/, app/, sandbox/,
security/, e2e/). Neither tests/ nor its folders are packages: test modules import each other and the helpers by
their base name (`from test_app_pages import …`, `from support import FAST`), never as `tests.…`, because a
dependency (confusables) installs a top-level `tests` package of its own that would win over a namespace package.
So tests/ and every folder of it are on sys.path (below), and a base name is unique across tests/
(tests/cli/test_packaging.py::test_the_tests_mirror_the_layout holds both)."""
import atexit as _atexit_early
import os as _os_early
import shutil as _shutil_early
import sys as _sys_early
import tempfile as _tempfile_early

_TESTS_DIR = _os_early.path.dirname(_os_early.path.abspath(__file__))
for _folder in sorted(_os_early.listdir(_TESTS_DIR)):
    _folder_path = _os_early.path.join(_TESTS_DIR, _folder)
    if _os_early.path.isdir(_folder_path) and not _folder.startswith((".", "_")) \
            and _folder_path not in _sys_early.path:
        _sys_early.path.append(_folder_path)  # after site-packages: a folder never shadows an installed package
if _TESTS_DIR not in _sys_early.path:
    _sys_early.path.append(_TESTS_DIR)

# Tests never write into the repository's data/ (the fingerprint secret, default databases): unless the caller
# set its own, KEYHEALTH_DATA_DIR points at a throwaway folder for this process (subprocesses inherit it). xdist
# workers inherit the controller's environment, so each process that made the folder marks it as its own and a
# worker that sees another process's folder makes a fresh one: no two workers share a data dir.
_DATA_MARK = "KEYHEALTH_TEST_DATA_DIR_AUTO"
if "KEYHEALTH_DATA_DIR" not in _os_early.environ or (
    _os_early.environ.get(_DATA_MARK) == _os_early.environ["KEYHEALTH_DATA_DIR"]
    and _os_early.environ.get(_DATA_MARK + "_PID") != str(_os_early.getpid())
):
    _data_dir = _tempfile_early.mkdtemp(prefix="kh-test-data-")
    _os_early.environ.update({"KEYHEALTH_DATA_DIR": _data_dir, _DATA_MARK: _data_dir,
                              _DATA_MARK + "_PID": str(_os_early.getpid())})
    _atexit_early.register(_shutil_early.rmtree, _data_dir, True)


# ---------------------------------------------------------------------------------------------
# Store fixtures (core/store): a real PostgreSQL for the tests, and a fresh database per test.
#   postgres  (session) URL of a PostgreSQL database: $KEYHEALTH_TEST_PG_URL (.ci/run starts one), or else one
#             throwaway cluster per test run, started with scripts/pg.sh by the first process that needs it
#             (under a file lock, so xdist workers share it) and stopped when the run ends; skipped if
#             PostgreSQL is not installed.
#   db_url    a fresh EMPTY database (a unique name), parametrised over ["sqlite", "postgres"].
#   db_kind   that parametrisation ("sqlite" or "postgres"), shared by db_url and store_url.
#   store_url a fresh database migrated to head (a copy of a per-process template: no Alembic per test).
#   make_result  factory for core.engine.result.CheckResult objects.
# ---------------------------------------------------------------------------------------------
import fcntl as _fcntl
import glob as _glob
import hashlib as _hashlib
import os as _os
import shutil as _shutil
import socket as _socket
import subprocess as _subprocess
import tempfile as _tempfile
import time as _time
import uuid as _uuid
from datetime import datetime as _datetime
from datetime import timezone as _timezone
from pathlib import Path as _Path

import pytest as _pytest

from core import store

_STORE_ROOT = _Path(__file__).resolve().parent.parent
_PG_SCRIPT = str(_STORE_ROOT / "scripts" / "pg.sh")
# The folder where this run's fallback cluster lives: made by the run's first process (the xdist controller, or
# the only process) and inherited by the workers. Holds `lock`, `url` (once started), `error`, and `data/`.
_PG_SHARED = "KEYHEALTH_TEST_PG_SHARED"
_RUN_SHARED = "KEYHEALTH_TEST_RUN_SHARED"


def _pg_binaries_present() -> bool:
    if _os.environ.get("PG_BIN") and _os.path.exists(_os.path.join(_os.environ["PG_BIN"], "initdb")):
        return True
    dirs = ["/usr/lib/postgresql/15/bin", *_glob.glob("/usr/lib/postgresql/*/bin")]
    if any(_os.path.exists(_os.path.join(d, "initdb")) and _os.path.exists(_os.path.join(d, "pg_ctl")) for d in dirs):
        return True
    return bool(_shutil.which("initdb") and _shutil.which("pg_ctl"))


def _free_port() -> int:
    with _socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_configure(config):
    # The run's first process (not an xdist worker) makes a folder its workers share (seeded demo templates), and
    # owns the fallback cluster's folder.
    if not hasattr(config, "workerinput"):
        config._kh_run_shared = _os.environ[_RUN_SHARED] = _tempfile.mkdtemp(prefix="kh-run-")
    if not hasattr(config, "workerinput") and not _os.environ.get("KEYHEALTH_TEST_PG_URL"):
        shared = _tempfile.mkdtemp(prefix="khpg-run-")  # not under pytest's tmp dir: see _start_shared_pg
        _os.environ[_PG_SHARED] = shared
        config._kh_pg_shared = shared


def pytest_unconfigure(config):
    run = getattr(config, "_kh_run_shared", None)
    if run:  # every worker is done by now
        _shutil.rmtree(run, ignore_errors=True)
        _os.environ.pop(_RUN_SHARED, None)
    shared = getattr(config, "_kh_pg_shared", None)
    if shared:  # every worker is done by now: stop the cluster one of them may have started
        if _os.path.exists(_os.path.join(shared, "data", "PG_VERSION")):
            _subprocess.run(["bash", _PG_SCRIPT, "stop", _os.path.join(shared, "data")], check=False,
                            capture_output=True, timeout=120)
        _shutil.rmtree(shared, ignore_errors=True)
        _os.environ.pop(_PG_SHARED, None)


def _start_shared_pg(shared: str) -> str:
    """The URL of the run's cluster in `shared`, starting it if no process has yet. One process at a time."""
    with open(_os.path.join(shared, "lock"), "w") as lock:
        _fcntl.flock(lock, _fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        url_file, err_file = _os.path.join(shared, "url"), _os.path.join(shared, "error")
        if _os.path.exists(url_file):
            return _Path(url_file).read_text().strip()
        if _os.path.exists(err_file):  # another worker tried already: fail the same way, without retrying
            raise RuntimeError(_Path(err_file).read_text())
        # The server runs as `postgres` when we are root, so its folder cannot be under pytest's tmp dir
        # (/tmp/pytest-of-root is 0700); pg.sh chowns data/ itself.
        _os.chmod(shared, 0o755)
        data_dir = _os.path.join(shared, "data")
        err = ""
        for _ in range(3):  # a free port can be taken by someone else before the server binds it
            proc = _subprocess.run(["bash", _PG_SCRIPT, "start", data_dir, str(_free_port())],
                                   check=False, capture_output=True, text=True, timeout=180)
            if proc.returncode == 0:
                url = proc.stdout.strip().splitlines()[-1]
                _Path(url_file).write_text(url)
                return url
            err = proc.stderr.strip()[-2000:]
        _subprocess.run(["bash", _PG_SCRIPT, "stop", data_dir], check=False, capture_output=True, timeout=120)
        _Path(err_file).write_text(f"scripts/pg.sh could not start PostgreSQL: {err}")
        raise RuntimeError(_Path(err_file).read_text())


@_pytest.fixture(scope="session")
def postgres():
    """URL (postgresql+psycopg://…) of a PostgreSQL database the store tests may create databases from."""
    url = _os.environ.get("KEYHEALTH_TEST_PG_URL")
    if url:
        yield url
        return
    if not _pg_binaries_present():
        _pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed; set KEYHEALTH_TEST_PG_URL "
                     "or install postgresql-15 to run the PostgreSQL variant.")
    shared, own = _os.environ.get(_PG_SHARED), False
    if not shared:  # not set up by pytest_configure (an unusual plugin order): a cluster of this process's own
        shared, own = _tempfile.mkdtemp(prefix="khpg-run-"), True
    try:
        url = _start_shared_pg(shared)
    except RuntimeError as e:
        _pytest.fail(str(e))
    try:
        yield url
    finally:
        if own:
            _subprocess.run(["bash", _PG_SCRIPT, "stop", _os.path.join(shared, "data")], check=False,
                            capture_output=True, timeout=120)
            _shutil.rmtree(shared, ignore_errors=True)


@_pytest.fixture(scope="session")
def _pg_admin(postgres):
    import sqlalchemy as sa

    from core.store.db import normalize_url

    engine = sa.create_engine(normalize_url(postgres), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


_DB_KINDS = ["sqlite", _pytest.param("postgres", marks=_pytest.mark.postgres)]


@_pytest.fixture(params=_DB_KINDS)
def db_kind(request):
    """Which database a store test runs on: db_url and store_url are parametrised over it (one kind only:
    `@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)`)."""
    return request.param


@_pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory):
    """A SQLite file migrated to head once per process: store_url copies it instead of running Alembic."""
    from core.store.db import dispose_engine

    path = tmp_path_factory.mktemp("store-template") / "store.db"
    url = f"sqlite:///{path}"
    store.at(url).upgrade()
    dispose_engine(url)
    return path


@_pytest.fixture
def sqlite_at_head(_sqlite_template):
    """`url = sqlite_at_head(path)`: a SQLite database at `path` migrated to head, a copy of the template migrated
    once per process (running the migrations costs 0.1-0.25 s of CPU; the copy, under a millisecond)."""

    def make(path) -> str:
        _shutil.copyfile(_sqlite_template, path)
        return f"sqlite:///{path}"

    return make


@_pytest.fixture(scope="session")
def _pg_template(_pg_admin):
    """A PostgreSQL database migrated to head once per process (its name): store_url creates each test's database
    from it (CREATE DATABASE … TEMPLATE), which is a file copy instead of running Alembic. Nobody connects to it
    after the upgrade (PostgreSQL refuses to copy a database that has connections)."""
    from sqlalchemy.engine import make_url

    from core.store.db import dispose_engine

    name = f"kh_tmpl_{_uuid.uuid4().hex[:16]}"
    with _pg_admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"{_COPY}')
    url = make_url(_pg_admin.url).set(database=name).render_as_string(hide_password=False)
    try:
        store.at(url).upgrade()
        dispose_engine(url)
        yield name
    finally:
        dispose_engine(url)
        with _pg_admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# PostgreSQL 15 copies a database block by block through its write-ahead log by default (WAL_LOG): 0.28 s of the
# server's CPU per test database, against 0.03 s for a file copy (measured, 10 databases each). The test cluster
# runs with fsync off, so the checkpoint a file copy needs first is cheap.
_COPY = " STRATEGY = FILE_COPY"

# What a database's schema is: its tables and columns, indexes, constraints, sequences, functions, triggers, schemas
# and Alembic revision, as one digest (a test that migrated, altered or added anything changes it).
_PG_SCHEMA_DIGEST = r"""
SELECT md5(string_agg(x, E'\n' ORDER BY x)) FROM (
  SELECT 'col ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' '
         || a.attnotnull::text || ' ' || a.attgenerated::text || ' '
         || coalesce(pg_get_expr(d.adbin, d.adrelid), '') AS x
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL SELECT 'rel ' || relname || ' ' || relkind::text FROM pg_class WHERE relnamespace = 'public'::regnamespace
  UNION ALL SELECT 'idx ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
  UNION ALL SELECT 'con ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
              FROM pg_constraint WHERE connamespace = 'public'::regnamespace
  UNION ALL SELECT 'fn ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace
  UNION ALL SELECT 'trg ' || tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
             WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
  UNION ALL SELECT 'nsp ' || nspname FROM pg_namespace
             WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'
  UNION ALL SELECT 'ver ' || version_num FROM alembic_version
) s
"""


class _PgPool:
    """Test databases at head, used again instead of created per test (CREATE DATABASE costs the server a
    checkpoint and a copy: 0.2-0.4 s a test under the suite's load; emptying one, about 10 ms).

    A database is taken back only when its test left its schema exactly as the template's (same digest); then every
    connection to it is ended, every table but alembic_version emptied and every sequence restarted, and it is
    renamed: a thread or process of the old test that reconnects finds no such database, as if it were dropped.
    Anything else (a schema changed, a connection that would not end, an error) drops it as before."""

    def __init__(self, admin, template: str):
        self.admin, self.template, self.idle = admin, template, []
        self.digest = self._with(template, lambda conn: conn.exec_driver_sql(_PG_SCHEMA_DIGEST).scalar())

    def _url(self, name: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.admin.url).set(database=name).render_as_string(hide_password=False)

    def _with(self, name: str, work):
        import sqlalchemy as sa

        engine = sa.create_engine(self._url(name), poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                return work(conn)
        finally:
            engine.dispose()

    def take(self) -> str:
        if self.idle:
            return self.idle.pop()
        name = f"kh_{_uuid.uuid4().hex[:16]}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"{_COPY}')
        return name

    def give_back(self, name: str) -> None:
        try:
            if self._ended_and_emptied(name):
                new = f"kh_{_uuid.uuid4().hex[:16]}"
                with self.admin.connect() as conn:
                    conn.exec_driver_sql(f'ALTER DATABASE "{name}" RENAME TO "{new}"')
                self.idle.append(new)
                return
        except Exception:  # noqa: BLE001 - whatever went wrong, the database is dropped below
            pass
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _ended_and_emptied(self, name: str) -> bool:
        with self.admin.connect() as conn:
            for _ in range(50):
                others = conn.exec_driver_sql(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %(n)s "
                    "AND pid <> pg_backend_pid()", {"n": name}).scalar()
                if not others:
                    break
                _time.sleep(0.02)  # a terminated backend takes a moment to go
            else:
                return False

        def empty(conn) -> bool:
            if conn.exec_driver_sql(_PG_SCHEMA_DIGEST).scalar() != self.digest:
                return False
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")  # no foreign-key order to keep
            tables = conn.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                          "AND tablename <> 'alembic_version'").scalars().all()
            for table in tables:
                conn.exec_driver_sql(f'DELETE FROM "{table}"')
            for (seq,) in conn.exec_driver_sql("SELECT c.oid::regclass::text FROM pg_class c "
                                               "WHERE relkind = 'S' AND relnamespace = 'public'::regnamespace"):
                conn.exec_driver_sql(f"ALTER SEQUENCE {seq} RESTART")
            return True

        return bool(self._with(name, empty))

    def close(self) -> None:
        with self.admin.connect() as conn:
            for name in self.idle:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.idle.clear()


@_pytest.fixture(scope="session")
def _pg_pool(_pg_admin, _pg_template):
    pool = _PgPool(_pg_admin, _pg_template)
    yield pool
    pool.close()


def _fresh_database(request, kind: str, tmp_path, *, migrated: bool):
    """A new database of `kind` for one test: empty, or a copy of the migrated template (on PostgreSQL, one
    emptied and renamed after an earlier test: see _PgPool). Dropped or given back afterwards."""
    from sqlalchemy.engine import make_url

    from core.store.db import dispose_engine

    if kind == "sqlite":
        path = tmp_path / ("store-head.db" if migrated else "store.db")  # a test may ask for both
        url = request.getfixturevalue("sqlite_at_head")(path) if migrated else f"sqlite:///{path}"
        yield url
        dispose_engine(url)
        return
    admin = request.getfixturevalue("_pg_admin")
    if migrated:
        pool = request.getfixturevalue("_pg_pool")
        name = pool.take()
        url = pool._url(name)
        try:
            yield url
        finally:
            dispose_engine(url)
            pool.give_back(name)
        return
    name = f"kh_{_uuid.uuid4().hex[:16]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"{_COPY}')
    url = make_url(admin.url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        dispose_engine(url)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@_pytest.fixture
def db_url(request, db_kind, tmp_path):
    """A fresh, empty database: a SQLite file in tmp_path, or a new PostgreSQL database dropped afterwards."""
    yield from _fresh_database(request, db_kind, tmp_path, migrated=False)


@_pytest.fixture
def store_url(request, db_kind, tmp_path):
    """A fresh database migrated to head, as db_url then `store.at(url).upgrade()` would give: a copy of a
    template migrated once per process (tests/store/test_store_migrations.py runs the migrations themselves on db_url;
    test_store_url_is_a_database_at_head holds the copy to a real upgrade's schema)."""
    yield from _fresh_database(request, db_kind, tmp_path, migrated=True)


def _required_for(name, granted, verdict):
    """The level a made-up permission must require for the engine's own verdict rule to give `verdict`."""
    by_name = "write" if name.endswith("_write") else "read"
    if verdict in (None, "unknown"):
        return by_name
    if verdict == "ok":
        return granted
    if verdict == "excess":
        return "none"
    return by_name if ("none", "read", "write").index(by_name) > ("none", "read", "write").index(granted) else "write"


def _requirement_of(rows):
    """A catalogue and a profile holding exactly the permissions `rows` names, and what the probes saw of each:
    the engine's data, as small as a test needs (the catalogue is data: the engine judges any)."""
    from core.engine.catalogue import Catalogue, Probe, Profile, Requirement, Scope
    from core.engine.probe import ScopeOutcome
    from core.engine.result import Row

    scopes, items, outcomes = [], [], {}
    for x in rows:
        if isinstance(x, Row):
            if x.scope is None:  # a guide item that is no Stripe permission
                items.append(Requirement(guide=x.resource, section=x.category, level=x.required, scopes=(),
                                         note=x.note, category=x.category))
                continue
            name, category, label, granted, verdict = x.scope, x.category, x.resource, x.granted, x.verdict
            required, reason = x.required, x.reason
        elif x[0] is None:  # (None, None, "not_applicable"): a guide item that is no Stripe permission
            items.append(Requirement(guide="Guide item", section="Guide", level="none", scopes=(), category="Guide"))
            continue
        else:
            name, granted, *rest = x
            verdict = rest[0] if rest else None
            category, label, required, reason = "Core", f"Resource {name}", _required_for(name, granted, verdict), None
        scopes.append(Scope(scope=name, label=label, category=category, levels=("read", "write"),
                            read=Probe("GET", f"/v1/{name}"), write=Probe("POST", f"/v1/{name}")))
        items.append(Requirement(guide=label, section=category, level=required, scopes=(name,)))
        outcomes[name] = ScopeOutcome(name, granted, (reason or "429 rate limited after 4 tries")
                                      if granted == "unknown" else None)
    return (Catalogue(tuple(scopes)), Profile(name="test", key_name="Pointai", items=tuple(items)), outcomes)


_DEFAULT_ROWS = {  # rows that give each status (make_result's default for it; failing when no status is asked)
    "healthy": [("charge_read", "read", "ok"), ("customer_write", "write", "ok")],
    "attention": [("charge_read", "read", "ok"), ("customer_write", "write", "ok"), ("invoice_read", "read", "excess")],
    "failing": [("charge_read", "read", "ok"), ("customer_write", "read", "missing")],
    "incomplete": [("charge_read", "read", "ok"), ("customer_write", "unknown", "unknown")],
    "invalid": [],
    "unreachable": [],
}


def _rows_for_score(score):
    """The fewest made-up rows the engine scores `score` for (0: none, refused; see core.engine.verdict)."""
    import itertools

    from core.engine.verdict import SCORE_BANDS

    status = next(s for s, (low, high) in SCORE_BANDS.items() if low <= score <= high)
    if status in ("invalid", "healthy"):
        return status, _DEFAULT_ROWS[status]
    # rows required and ok (weight 3), Pointai needs none and has none (1), missing (3), excess (1), unknown (3)
    for total in range(1, 17):
        for ok3, ok1, miss, exc in itertools.product(range(total + 1), repeat=4):
            unk = total - ok3 - ok1 - miss - exc
            if unk < 0 or (status == "failing") != (miss > 0) or (status == "incomplete") != (miss == 0 and unk > 0):
                continue
            if status == "attention" and (exc == 0 or unk):
                continue
            weight = 3 * (ok3 + miss + unk) + ok1 + exc
            low, high = SCORE_BANDS[status]
            if low + round((high - low) * (3 * ok3 + ok1) / weight) == score:
                return status, ([(f"ok{i}_read", "read", "ok") for i in range(ok3)]
                                + [(f"none{i}_read", "none", "ok") for i in range(ok1)]
                                + [(f"missing{i}_read", "none", "missing") for i in range(miss)]
                                + [(f"excess{i}_read", "read", "excess") for i in range(exc)]
                                + [(f"unknown{i}_read", "unknown", "unknown") for i in range(unk)])
    raise ValueError(f"make_result: no small set of rows scores {score}")


def _make_result(
    status=None,
    score=None,
    rows=None,
    *,
    masked="rk_test_…a1b2",
    fingerprint="fp_" + "0" * 61,
    kind="restricted",
    mode="test",
    account="acct_1TestAccount",
    problem=None,
    refused=None,
    at=None,
    requests=12,
    elapsed_s=1.5,
    history=None,
):
    """A core.engine.result.CheckResult built through core.engine.check.assemble, the one way the engine builds
    one, so it can only be a state the engine produces. rows: Row objects or (scope, granted[, verdict]) tuples
    (a made-up scope named "x_write" requires Write, "x_read" Read, unless the verdict asked for needs otherwise);
    the status and score follow from them by the engine's rules. No rows: rows that give `status` (_DEFAULT_ROWS),
    or with only a `score`, rows the engine scores that. `status`/`score` given: what the test expects,
    checked (ValueError when the engine would say otherwise). status "invalid": refused (problem, refused: how);
    "unreachable": Stripe never answered (rows given: it stopped partway). `history`: the facts the service reads
    before assembling (core.engine.history.History), or how to read them, like check_key's `history`
    (e.g. lambda info, refused: svc.history(info, tenant, refused)): the lifecycle, and a refused key named revoked."""
    from core.engine.check import assemble
    from core.engine.result import KeyInfo, Row

    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=_timezone.utc)
    if rows is None and status is None and score is not None:
        status, rows = _rows_for_score(score)
    if rows is None:
        rows = _DEFAULT_ROWS.get(status, _DEFAULT_ROWS["failing"])
    catalogue, profile, outcomes = _requirement_of(rows)
    info = KeyInfo(kind=kind, mode=mode, masked=masked, fingerprint=fingerprint)
    if callable(history):  # read as the service reads it, before assembling: (info, how Stripe refused it)
        history = history(info, (refused or "invalid") if status == "invalid" else None)
    common = {"catalogue": catalogue, "profile": profile, "account": account, "requests": requests,
              "elapsed_s": elapsed_s, "checked_at": at or _datetime.now(_timezone.utc), "history": history}
    if status == "invalid":
        result = assemble(info, problem=problem or "Stripe does not accept this key.", refused=refused, **common)
    elif status == "unreachable":
        result = assemble(info, outcomes, unreachable=problem or "This server cannot reach api.stripe.com.",
                          answered=bool(outcomes), **common)
    else:
        if problem is not None:
            raise ValueError("make_result: a problem without status invalid or unreachable is no engine state")
        result = assemble(info, outcomes, **common)
    if status is not None and result.status != status:
        raise ValueError(f"make_result: these rows are {result.status} to the engine, not {status}")
    if score is not None and result.score != score:
        raise ValueError(f"make_result: these rows score {result.score} to the engine, not {score}")
    asked = {(x.scope if isinstance(x, Row) else x[0]): (x.verdict if isinstance(x, Row) else (x[2:] or (None,))[0])
             for x in rows if not isinstance(x, Row) or x.scope is not None}
    for r in result.rows:
        if r.scope in asked and asked[r.scope] not in (None, r.verdict):
            raise ValueError(f"make_result: {r.scope} is {r.verdict} to the engine, not {asked[r.scope]}")
    return result


@_pytest.fixture
def make_result():
    return _make_result


# ---------------------------------------------------------------------------------------------
# Stripe sandbox (sandbox/): one local Stripe-compatible server per test session.
#   sandbox  (session) a running sandbox.Sandbox with the demo keys; tests call sandbox.reset()
#            when they need a clean log / objects / faults.
# ---------------------------------------------------------------------------------------------
@_pytest.fixture(scope="session")
def sandbox():
    import json as _json
    import time as _time
    import urllib.request as _urlreq

    from sandbox import Sandbox

    sb = Sandbox(host="127.0.0.1", port=0)
    url = sb.start()
    deadline = _time.monotonic() + 10
    while True:
        try:
            with _urlreq.urlopen(url + "/_sandbox/health", timeout=1) as r:
                if _json.loads(r.read()).get("ok"):
                    break
        except OSError:
            if _time.monotonic() > deadline:
                sb.stop()
                _pytest.fail(f"The Stripe sandbox at {url} did not answer /_sandbox/health within 10 s.")
            _time.sleep(0.02)  # between polls
    try:
        yield sb
    finally:
        sb.stop()


# ---------------------------------------------------------------------------------------------
# Shared helpers for tests that talk to the sandbox:
#   sandbox_client  a StripeClient pointed at the sandbox (keys are passed per call, as core does)
#   app_env         real-mode settings for AppTest: the sandbox as Stripe, a fresh SQLite file, fast pacing
#   core_cli        run `python -m core …` in a subprocess against the sandbox, as a user would
# ---------------------------------------------------------------------------------------------
@_pytest.fixture(scope="session")
def sandbox_client(sandbox):
    import stripe as _stripe

    return _stripe.StripeClient(
        "sk_unused",
        base_addresses={"api": sandbox.url, "files": sandbox.url},
        max_network_retries=0,
        http_client=_stripe.RequestsClient(timeout=2.0),
    )


@_pytest.fixture
def app_env(sandbox, tmp_path, monkeypatch, sqlite_at_head):
    """Real mode for AppTest (see above); the database is a fresh copy of the migrated template, so the app's
    start-up upgrade is the one query of a database already at head."""
    from support import FAST_ENV

    sandbox.reset()
    url = sqlite_at_head(tmp_path / "real.db")
    for k, v in {
        "STRIPE_API_BASE": sandbox.url,
        "DATABASE_URL": url,
        "KEYHEALTH_DEMO": "0",
        "KEYHEALTH_DATA_DIR": str(tmp_path / "data"),
        "KEYHEALTH_FINGERPRINT_SECRET": "test-secret-for-app-tests",
        **FAST_ENV,
    }.items():
        monkeypatch.setenv(k, v)
    yield url
    sandbox.faults.clear()


@_pytest.fixture
def core_cli(sandbox, tmp_path):
    from cli_process import run_core

    def run(*args, key: str | None = None, stdin: str | None = None, **env_extra):
        env = {k: v for k, v in _os.environ.items() if k not in ("STRIPE_KEY", "DATABASE_URL")}
        env.update(
            STRIPE_API_BASE=sandbox.url,
            KEYHEALTH_FINGERPRINT_SECRET="cli-test-secret",
            KEYHEALTH_DATA_DIR=str(tmp_path),
            KEYHEALTH_RATE_TEST="100",
            KEYHEALTH_BACKOFF_S="0.01",
            NO_COLOR="1",
        )
        if key is not None:
            env["STRIPE_KEY"] = key
        env.update(env_extra)
        return run_core(args, cwd=_STORE_ROOT, env=env, input=stdin or "", text=True, timeout=60)

    return run


# ---------------------------------------------------------------------------------------------
# The service, as pages and the CLI get it, bound to a test database and the sandbox:
#   make_service(url, who=..., probe=...)  a core.service.Service on the sandbox and the database at `url`
# ---------------------------------------------------------------------------------------------
@_pytest.fixture
def make_service(sandbox):
    from support import FAST

    from core.engine.settings import ProbeSettings
    from core.runtime import Runtime
    from core.service import Service
    from core.store import Database

    def make(url: str, *, who: str | None = "test", probe: ProbeSettings = FAST) -> Service:
        return Service(Runtime(demo=False, api_base=sandbox.url, db=Database(url), who=who, probe=probe))

    return make


@_pytest.fixture(scope="session")
def demo_db(tmp_path_factory):
    """Seeding the demo database takes seconds (a year of history for every demo tenant): it is seeded once per
    run (per fingerprint secret: the demo's history holds the demo keys' fingerprints), by the first process that
    needs it, under a file lock in the folder the run's processes share, and copied.
    `demo_db(data_dir, secret)` puts a copy where the demo looks for it (<data_dir>/demo/keyhealth-demo.db), as
    `runtime.demo` would have seeded it with KEYHEALTH_FINGERPRINT_SECRET=secret; with secret=None (the variable
    unset) the data dir also gets the template's generated .fingerprint_secret. The demo then finds the database
    seeded (seed_demo is idempotent) and only checks its schema. Tests of the seeding itself seed for real
    (tests/service/test_demo.py, tests/app/test_demo_stories.py, the CLI's `--demo` in test_cli_demo_and_csv)."""
    from core import runtime
    from core.config import settings
    from core.engine.keys import FINGERPRINT_SECRET_FILE
    from core.store.db import dispose_engine

    templates: dict[str | None, _Path] = {}

    def seed(made: _Path, secret: str | None) -> None:
        with _pytest.MonkeyPatch.context() as mp:
            mp.setenv("KEYHEALTH_DATA_DIR", str(made))
            if secret is None:
                mp.delenv("KEYHEALTH_FINGERPRINT_SECRET", raising=False)
            else:
                mp.setenv("KEYHEALTH_FINGERPRINT_SECRET", secret)
            url = runtime.demo(settings()).db.url
        dispose_engine(url)  # the last connection closes: the WAL is folded into the file
        path = _Path(url.removeprefix("sqlite:///"))
        wal = path.with_name(path.name + "-wal")
        assert not wal.exists() or not wal.stat().st_size, "the demo template's WAL was not folded in"

    def template(secret: str | None) -> _Path:
        if secret in templates:
            return templates[secret]
        shared = _os.environ.get(_RUN_SHARED)
        if not shared:  # a process of its own (no run folder): a template of its own
            made = tmp_path_factory.mktemp("demo-template")
            seed(made, secret)
        else:
            made = _Path(shared) / f"demo-{_hashlib.sha256(repr(secret).encode()).hexdigest()[:16]}"
            with open(f"{made}.lock", "w") as lock:
                _fcntl.flock(lock, _fcntl.LOCK_EX)  # another process may be seeding it: wait, then copy
                if not made.exists():
                    seeding = _Path(_tempfile.mkdtemp(prefix=made.name + ".", dir=shared))
                    seed(seeding, secret)
                    seeding.rename(made)
        templates[secret] = made
        return made

    def put(data_dir, secret: str | None) -> _Path:
        made = template(secret)
        target = _Path(data_dir) / "demo" / "keyhealth-demo.db"
        target.parent.mkdir(parents=True, exist_ok=True)
        _shutil.copyfile(made / "demo" / "keyhealth-demo.db", target)
        if secret is None:
            _shutil.copy2(made / FINGERPRINT_SECRET_FILE, _Path(data_dir) / FINGERPRINT_SECRET_FILE)  # mode 0600
        return target

    return put


@_pytest.fixture
def webhooks():
    """Factory of local webhook receivers (tests/webhook.py), closed when the test ends: webhooks(hang=True)."""
    from webhook import Webhook

    made: list[Webhook] = []

    def make(**kw) -> Webhook:
        made.append(Webhook(**kw))
        return made[-1]

    yield make
    for w in made:
        w.close()
