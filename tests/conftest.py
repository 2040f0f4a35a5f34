"""Shared pytest fixtures."""
import os as _os_early
import tempfile as _tempfile_early

# Tests never write into the repository's data/ (the fingerprint secret, default databases): unless a test
# sets its own, KEYHEALTH_DATA_DIR points at a throwaway folder for the whole session (subprocesses inherit it).
_os_early.environ.setdefault("KEYHEALTH_DATA_DIR", _tempfile_early.mkdtemp(prefix="kh-test-data-"))


# ---------------------------------------------------------------------------------------------
# Store fixtures (core/store): a real PostgreSQL for the tests, and a fresh database per test.
#   postgres  (session) URL of a PostgreSQL database: $KEYHEALTH_TEST_PG_URL, or a throwaway cluster
#             started with scripts/pg.sh in a temp dir on a free port (skipped if PostgreSQL is not installed).
#   db_url    a fresh EMPTY database, parametrised over ["sqlite", "postgres"].
#   store_url db_url migrated to head.
#   make_result  factory for core.engine.result.CheckResult objects.
# ---------------------------------------------------------------------------------------------
import glob as _glob
import os as _os
import shutil as _shutil
import socket as _socket
import subprocess as _subprocess
import tempfile as _tempfile
import uuid as _uuid
from datetime import datetime as _datetime
from datetime import timezone as _timezone
from pathlib import Path as _Path

import pytest as _pytest

from core import store

_STORE_ROOT = _Path(__file__).resolve().parent.parent


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
    # Not under pytest's tmp dir: /tmp/pytest-of-root is 0700 and the server runs as `postgres`.
    data_dir = _tempfile.mkdtemp(prefix="khpg-")
    script = str(_STORE_ROOT / "scripts" / "pg.sh")
    proc = _subprocess.run(
        ["bash", script, "start", data_dir, str(_free_port())], capture_output=True, text=True, timeout=180
    )
    if proc.returncode != 0:
        _subprocess.run(["bash", script, "stop", data_dir], capture_output=True, timeout=120)
        _shutil.rmtree(data_dir, ignore_errors=True)
        _pytest.fail(f"scripts/pg.sh could not start PostgreSQL: {proc.stderr.strip()[-2000:]}")
    try:
        yield proc.stdout.strip().splitlines()[-1]
    finally:
        _subprocess.run(["bash", script, "stop", data_dir], capture_output=True, timeout=120)
        _shutil.rmtree(data_dir, ignore_errors=True)


@_pytest.fixture(scope="session")
def _pg_admin(postgres):
    import sqlalchemy as sa

    from core.store.db import normalize_url

    engine = sa.create_engine(normalize_url(postgres), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@_pytest.fixture(params=["sqlite", _pytest.param("postgres", marks=_pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A fresh, empty database: a SQLite file in tmp_path, or a new PostgreSQL database dropped afterwards."""
    from sqlalchemy.engine import make_url

    from core.store.db import dispose_engine

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        yield url
        dispose_engine(url)
        return
    admin = request.getfixturevalue("_pg_admin")
    name = f"kh_{_uuid.uuid4().hex[:16]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(admin.url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        dispose_engine(url)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@_pytest.fixture
def store_url(db_url):
    """db_url migrated to head."""

    store.at(db_url).upgrade()
    return db_url


def _make_result(
    status="attention",
    score=80,
    rows=None,
    *,
    masked="rk_test_…a1b2",
    fingerprint="fp_" + "0" * 61,
    kind="restricted",
    mode="test",
    account="acct_1TestAccount",
    problem=None,
    at=None,
    requests=12,
    elapsed_s=1.5,
):
    """A core.engine.result.CheckResult built directly. rows: list of Row or of (scope, granted, verdict) tuples."""
    from core.engine.result import CheckResult, KeyInfo, Row

    built = []
    for x in rows if rows is not None else [("charge_read", "read", "ok"), ("customer_write", "read", "missing")]:
        if isinstance(x, Row):
            built.append(x)
            continue
        scope, granted, verdict = x
        built.append(
            Row(
                category="Core",
                resource=f"Resource {scope}",
                scope=scope,
                required="write" if scope and scope.endswith("_write") else "read",
                granted=granted,
                verdict=verdict,
            )
        )
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=_timezone.utc)
    return CheckResult(
        key=KeyInfo(kind=kind, mode=mode, masked=masked, fingerprint=fingerprint),
        status=status,
        score=score,
        problem=problem,
        account=account,
        rows=built,
        requests=requests,
        elapsed_s=elapsed_s,
        checked_at=at or _datetime.now(_timezone.utc),
    )


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
def app_env(sandbox, tmp_path, monkeypatch):
    sandbox.reset()
    url = f"sqlite:///{tmp_path / 'real.db'}"
    for k, v in {
        "STRIPE_API_BASE": sandbox.url,
        "DATABASE_URL": url,
        "KEYHEALTH_DEMO": "0",
        "KEYHEALTH_DATA_DIR": str(tmp_path / "data"),
        "KEYHEALTH_FINGERPRINT_SECRET": "test-secret-for-app-tests",
        "KEYHEALTH_RATE_TEST": "400",
        "KEYHEALTH_RATE_LIVE": "400",
        "KEYHEALTH_BACKOFF_S": "0.01",
        "KEYHEALTH_RETRIES": "1",
    }.items():
        monkeypatch.setenv(k, v)
    yield url
    sandbox.faults.clear()


@_pytest.fixture
def core_cli(sandbox, tmp_path):
    import sys as _sys

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
        return _subprocess.run([_sys.executable, "-m", "core", *args], cwd=_STORE_ROOT, env=env, input=stdin or "",
                               capture_output=True, text=True, timeout=60)

    return run


# ---------------------------------------------------------------------------------------------
# The service, as pages and the CLI get it, bound to a test database and the sandbox:
#   make_service(url, who=..., probe=...)  a core.service.Service on the sandbox and the database at `url`
# ---------------------------------------------------------------------------------------------
@_pytest.fixture
def make_service(sandbox):
    from core.engine.settings import ProbeSettings
    from core.runtime import Runtime
    from core.service import Service
    from core.store import Database

    fast = ProbeSettings(rate_test=400, rate_live=400, retries=1, backoff_s=0.01, timeout_s=5.0)

    def make(url: str, *, who: str | None = "test", probe: ProbeSettings = fast) -> Service:
        return Service(Runtime(demo=False, api_base=sandbox.url, db=Database(url), who=who, probe=probe))

    return make
