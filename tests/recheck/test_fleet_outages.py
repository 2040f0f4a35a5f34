"""Issue 17.3 and 17.4: our outage is never the tenant's fault, and a fleet run ends finished or says why.

Real SDK over real HTTP against the sandbox (its own instance where a test stops it); PostgreSQL workers against the
shared test server, except the freeze test, which freezes a cluster of its own (scripts/pg.sh in a temp dir).
Waits poll with deadlines; nothing sleeps a fixed time.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cli_process import run_core

from core import store
from core.engine.settings import ProbeSettings
from core.features.fleet import FleetOptions, run_fleet
from core.features.recheck import BatchLine
from core.runtime import Runtime
from core.service import Service
from core.store import Database
from core.store.types import utcnow
from sandbox import DEMO_KEYS, Sandbox

ROOT = Path(__file__).resolve().parents[2]
PG_SCRIPT = str(ROOT / "scripts" / "pg.sh")
HEALTHY = DEMO_KEYS["healthy"]


def add_keys(sb: Sandbox, n: int, tag: str) -> list[tuple[str, str]]:
    """n tenants with healthy keys, each of its own Stripe account (as tests/recheck/test_fleet.py makes them)."""
    out = []
    for i in range(n):
        rng = random.Random(f"{tag}{i}")
        head = f"rk_test_51Outage{tag}{i}x"
        key = head + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(100 - len(head)))
        sb.add_key(key, HEALTHY.permissions, "test", account=f"acct_1Outage{tag}{i}")
        out.append((f"Tenant {tag} {i}", key))
    return out


def source_script(tmp_path: Path, pairs: list[tuple[str, str]]) -> str:
    p = tmp_path / "source.py"
    p.write_text("".join(f"print({f'{t},{k}'!r})\n" for t, k in pairs))
    return f"{sys.executable} {p}"


def _env(sb_url: str, tmp_path: Path, db_url: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("STRIPE_KEY", "KEYHEALTH_KEYS_FROM")}
    env.update(STRIPE_API_BASE=sb_url, KEYHEALTH_RATE_TEST="200", KEYHEALTH_RATE_LIVE="200", NO_COLOR="1",
               KEYHEALTH_DATA_DIR=str(tmp_path), DATABASE_URL=db_url, KEYHEALTH_FINGERPRINT_SECRET="fleet-test",
               KEYHEALTH_BACKOFF_S="0.01", KEYHEALTH_RETRIES="1", KEYHEALTH_TIMEOUT_S="3",
               KEYHEALTH_MAX_NETWORK_FAILURES="3")
    env.update(extra)
    return env


def _cli(args: list[str], env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    return run_core(args, check=False, cwd=ROOT, env=env, text=True, timeout=timeout)


def _service(url: str, sb_url: str, **probe) -> Service:
    settings = ProbeSettings(**{"rate_test": 200, "retries": 1, "backoff_s": 0.01, "timeout_s": 3.0, **probe})
    return Service(Runtime(demo=False, api_base=sb_url, db=Database(url), who="fleet-test", probe=settings))


def _items(url: str, run_id: int) -> list[dict]:
    try:
        return store.at(url).run_items(run_id)
    except sa.exc.OperationalError:  # SQLite busy under the writer: poll again
        return []


def _poll(cond, deadline_s: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + deadline_s
    while True:
        got = cond()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the worker ended before {what}: {proc.stderr.read() if proc.stderr else ''}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # poll interval


def _batch_checks(url: str, since) -> dict[str, list[str]]:
    """tenant name -> statuses of its fleet checks since `since`, in order."""
    q = sa.text("SELECT t.name, c.status FROM checks c JOIN tenants t ON t.id = c.tenant_id "
                "WHERE c.source = 'batch' AND c.checked_at >= :since ORDER BY c.id")
    out: dict[str, list[str]] = {}
    with store.get_engine(url).connect() as conn:
        for name, status in conn.execute(q, {"since": since}):
            out.setdefault(name, []).append(status)
    return out


# --- 17.3 our outage ------------------------------------------------------------------------------------------
def test_stripe_going_away_mid_run_blames_no_tenant_and_resume_checks_them_again(tmp_path):
    """Stripe goes away partway through a recheck of healthy tenants: the tenants caught mid-sweep are recorded
    unreachable (never incomplete), no tenant's latest status moves, no alert is raised, and the run exits 4 with
    the count. `--resume` then checks every tenant the outage left (unreachable or not checked) and finishes."""
    url = f"sqlite:///{tmp_path / 'outage.db'}"
    sb = Sandbox(port=0)
    sb.start()
    sb.port = int(sb.url.rsplit(":", 1)[1])  # restart on the same address later
    try:
        pairs = add_keys(sb, 12, "Out")
        src = source_script(tmp_path, pairs)
        env = _env(sb.url, tmp_path, url)
        first = _cli(["recheck", "--keys-from", src, "--json"], env)
        assert first.returncode == 0, first.stderr
        s = store.at(url)
        assert {t["last_status"] for t in s.list_tenants()} == {"healthy"}
        started = utcnow()
        sb.faults.latency(0.03)  # slow enough that sweeps are in flight when Stripe goes away
        proc = subprocess.Popen([sys.executable, "-m", "core", "recheck", "--keys-from", src, "--concurrency", "3"],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _poll(lambda: sum(i["state"] == "recorded" for i in _items(url, 2)) >= 3, 120, "3 tenants recorded", proc)
            sb.stop()
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 4, err
        checks = _batch_checks(url, started)
        statuses = [x for v in checks.values() for x in v]
        assert "incomplete" not in statuses and "unreachable" in statuses, statuses
        unsettled = 12 - statuses.count("healthy")
        assert f", {unsettled} unreachable (run 2" in out, out
        tenants = "tenant" if unsettled == 1 else "tenants"
        assert f"error: {unsettled} {tenants} not settled: " in err and "--resume" in err
        assert {t["last_status"] for t in s.list_tenants()} == {"healthy"}  # no status moved
        assert s.open_alerts() == []  # and no "worse" alert
        run = s.get_run(2)
        assert run["finished_at"] is None
        states = [i["state"] for i in s.run_items(2)]
        assert states.count("recorded") == 12 - unsettled and "unreachable" in states

        sb.start()  # Stripe is back: resume checks every tenant the outage left, and only those
        again = _cli(["recheck", "--keys-from", src, "--resume", "--json"], env)
        assert again.returncode == 0, again.stderr
        rep = json.loads(again.stdout)
        assert rep["run"]["id"] == 2 and rep["run"]["finished"] and rep["run"]["skipped"] == 12 - unsettled
        assert len(rep["results"]) == unsettled and rep["unreachable_tenants"] == 0
        checks = _batch_checks(url, started)
        assert sorted(checks) == sorted(t for t, _ in pairs)
        assert all(v[-1] == "healthy" and v.count("healthy") == 1 for v in checks.values()), checks
        assert s.get_run(2)["recorded"] == 12
    finally:
        sb.stop()


def test_a_storm_of_5xx_in_a_run_moves_no_status_and_raises_no_alert(sandbox, tmp_path):
    """A 500 storm during a recheck of healthy tenants: the checks stop early as Stripe's trouble (unreachable,
    "Stripe answered with errors"), no tenant moves, no alert; resume after the storm checks them all."""
    sandbox.reset()
    pairs = add_keys(sandbox, 6, "Storm")
    url = f"sqlite:///{tmp_path / 'storm.db'}"
    svc = _service(url, sandbox.url)
    entries = [BatchLine(i + 1, t, k) for i, (t, k) in enumerate(pairs)]
    assert run_fleet(svc, entries, FleetOptions(concurrency=3)).recorded == 6
    sandbox.faults.fail(None, status=500)
    started = time.monotonic()
    rep = run_fleet(svc, entries, FleetOptions(concurrency=3))
    took = time.monotonic() - started
    sandbox.faults.clear()
    assert rep.unreachable is not None and rep.unreachable.startswith("Stripe answered with errors"), rep.unreachable
    assert rep.unreachable_tenants == 6 and all(r["status"] == "unreachable" for r in rep.results)
    assert took < 30, took
    assert {t["last_status"] for t in svc.store.list_tenants()} == {"healthy"}
    assert svc.store.open_alerts() == []
    assert rep.run["finished_at"] is None and rep.run["open"] == 6
    again = run_fleet(svc, entries, FleetOptions(concurrency=3, resume=True))
    assert again.run["id"] == rep.run["id"] and again.run["finished_at"] is not None
    assert sorted(r["tenant"] for r in again.results) == sorted(t for t, _ in pairs)
    assert all(r["status"] == "healthy" for r in again.results)


def test_resume_checks_again_a_tenant_an_older_run_marked_recorded_though_unreachable(sandbox, tmp_path):
    """A run written before unreachable tenants stayed open has them "recorded" with status unreachable: resuming
    it checks them again (before, --resume counted them done, finished the run and exited 0)."""
    sandbox.reset()
    pairs = add_keys(sandbox, 3, "Old")
    url = f"sqlite:///{tmp_path / 'old.db'}"
    svc = _service(url, sandbox.url)
    entries = [BatchLine(i + 1, t, k) for i, (t, k) in enumerate(pairs)]
    run = svc.store.start_run(started_by="test", command="recheck")
    svc.store.add_run_items(run["id"], [t for t, _ in pairs])
    items = svc.store.run_items(run["id"])
    with store.get_engine(url).begin() as conn:  # as the old code left it: "recorded", status unreachable
        conn.execute(sa.text("UPDATE fleet_items SET state = 'recorded', status = 'unreachable' WHERE id = :i"),
                     {"i": items[0]["id"]})
        conn.execute(sa.text("UPDATE fleet_items SET state = 'recorded', status = 'healthy' WHERE id = :i"),
                     {"i": items[1]["id"]})
    rep = run_fleet(svc, entries, FleetOptions(concurrency=2, resume=True))
    assert rep.run["id"] == run["id"] and rep.run["finished_at"] is not None
    assert sorted(r["tenant"] for r in rep.results) == sorted([pairs[0][0], pairs[2][0]]) and rep.skipped == 1


# --- 17.4 a fleet run ends finished, or says why ----------------------------------------------------------------
def test_claims_default_to_30_s_and_the_wait_is_a_setting():
    from core.config import Settings

    assert FleetOptions().claim_ttl_s == 30.0 and Settings.from_env({}).claim_ttl_s == 30.0
    s = Settings.from_env({"KEYHEALTH_CLAIM_TTL_S": "12", "KEYHEALTH_FLEET_WAIT_S": "45"})
    assert (s.claim_ttl_s, s.fleet_wait_s) == (12.0, 45.0)


def test_a_worker_heartbeat_keeps_its_claims_alive(tmp_path):
    """A check that lasts longer than the claim TTL: the worker's heartbeat moves claimed_until on while it runs,
    so the claim never expires under a live worker (nobody could take it over)."""
    with Sandbox(latency_s=0.25) as sb:
        pairs = add_keys(sb, 1, "Beat")
        url = f"sqlite:///{tmp_path / 'beat.db'}"
        svc = _service(url, sb.url, concurrency=2)
        seen: list = []
        box: dict = {}
        t = threading.Thread(target=lambda: box.setdefault("rep", run_fleet(
            svc, [BatchLine(1, *pairs[0])], FleetOptions(concurrency=1, claim_ttl_s=5.0))))
        t.start()
        try:
            def watch():
                items = _items(url, 1)
                if items and items[0]["state"] == "claimed":
                    until = items[0]["claimed_until"]
                    assert until.replace(tzinfo=None) > utcnow().replace(tzinfo=None), "a live worker's claim expired"
                    if not seen or seen[-1] != until:
                        seen.append(until)
                return len(seen) >= 3 or not t.is_alive()

            _poll(watch, 120, "the heartbeat")
        finally:
            t.join(timeout=120)
    assert len(seen) >= 3, seen  # moved on at least twice while the check ran
    assert box["rep"].recorded == 1


def test_a_worker_waits_on_other_claims_and_ends_unfinished_naming_them(sandbox, tmp_path):
    """Another worker holds claims it never finishes (alive, or frozen with a long claim): this worker checks what
    it can, waits, and ends after its own deadline with exit 5 and one sentence naming the worker and the count."""
    sandbox.reset()
    pairs = add_keys(sandbox, 4, "Ghost")
    url = f"sqlite:///{tmp_path / 'ghost.db'}"
    s = store.at(url)
    s.upgrade()
    run = s.start_run(name="ghost-run", started_by="test", command="recheck")
    s.add_run_items(run["id"], [t for t, _ in pairs])
    ghost = s.claim_run_items(run["id"], "ghost-host:999", 2, 600.0)
    assert len(ghost) == 2
    started = time.monotonic()
    p = _cli(["recheck", "--keys-from", source_script(tmp_path, pairs), "--run-name", "ghost-run"],
             _env(sandbox.url, tmp_path, url, KEYHEALTH_FLEET_WAIT_S="2"))
    took = time.monotonic() - started
    assert p.returncode == 5, p.stderr
    assert (f"error: run {run['id']} unfinished: 2 tenants claimed by worker ghost-host:999, which stopped "
            "answering") in p.stderr
    assert "2 recorded, 0 lines failed" in p.stdout
    assert took < 60
    states = sorted(i["state"] for i in s.run_items(run["id"]))
    assert states == ["claimed", "claimed", "recorded", "recorded"]


@pytest.mark.postgres
def test_three_postgresql_workers_one_killed_the_survivors_finish_the_run(sandbox, tmp_path, db_url):
    """kill -9 one of three workers sharing a run: its claims expire (no heartbeat), the survivors wait for them,
    take them over and finish the run. Every tenant is checked exactly once: 0 duplicates, 0 missed."""
    if not db_url.startswith("postgresql"):
        pytest.skip("workers share a run on PostgreSQL")
    sandbox.reset()
    n = 45
    pairs = add_keys(sandbox, n, "Kill9")
    store.at(db_url).upgrade()
    sandbox.faults.latency(0.02)  # a sweep lasts long enough that the victim dies holding claims
    src = source_script(tmp_path, pairs)
    env = _env(sandbox.url, tmp_path, db_url, KEYHEALTH_CLAIM_TTL_S="5", KEYHEALTH_FLEET_WAIT_S="60")
    started = utcnow() - timedelta(seconds=1)
    procs = [subprocess.Popen([sys.executable, "-m", "core", "recheck", "--keys-from", src, "--run-name", "kill9",
                               "--concurrency", "3", "--json"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    victim = procs[0]
    try:
        def victim_holds_claims():
            items = store.at(db_url).run_items(1) if store.at(db_url).list_runs() else []
            mine = [i for i in items if i["state"] == "claimed" and i["claimed_by"].endswith(f":{victim.pid}")]
            pending = [i for i in items if i["state"] == "pending"]
            # near the end: nothing left to claim, so the survivors can only finish by taking the victim's over
            return mine if items and not pending and mine else None

        held = _poll(victim_holds_claims, 120, "the victim holding claims with nothing left to claim", victim)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        assert held
        outs = [p.communicate(timeout=240) for p in procs[1:]]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs[1:]), [o[1][-800:] for o in outs]
    s = store.at(db_url)
    run = s.list_runs()[0]
    assert run["name"] == "kill9" and run["finished_at"] is not None and run["recorded"] == n
    checks = _batch_checks(db_url, started)
    assert sorted(checks) == sorted(t for t, _ in pairs)  # 0 missed
    assert all(len(v) == 1 for v in checks.values()), {k: v for k, v in checks.items() if len(v) != 1}  # 0 twice
    claimed_by = {i["claimed_by"] for i in s.run_items(run["id"])}
    assert any(w.endswith(f":{victim.pid}") for w in claimed_by) or held  # the victim did take part


# --- a frozen PostgreSQL (SIGSTOP) --------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cluster_pids(data_dir: str) -> list[int]:
    """The postmaster of the cluster in `data_dir` and its children (found through /proc)."""
    with open(os.path.join(data_dir, "postmaster.pid")) as f:
        master = int(f.readline())
    pids = [master]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == master:
                pids.append(int(d))
    return pids


@pytest.fixture
def own_postgres():
    """A PostgreSQL cluster of this test's own (never the shared one: this test freezes it)."""
    if not (shutil.which("pg_ctl") or any(Path(p).exists() for p in ("/usr/lib/postgresql/15/bin/pg_ctl",))):
        pytest.skip("PostgreSQL server binaries are not installed")
    base = tempfile.mkdtemp(prefix="kh-freeze-")  # not under pytest's tmp dir: the server runs as postgres
    os.chmod(base, 0o755)
    data = os.path.join(base, "data")
    p = subprocess.run(["bash", PG_SCRIPT, "start", data, str(_free_port())], check=False, capture_output=True,
                       text=True, timeout=180)
    if p.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"scripts/pg.sh could not start a cluster: {p.stderr[-500:]}")
    try:
        yield p.stdout.strip().splitlines()[-1], data
    finally:
        try:
            for pid in _cluster_pids(data):
                os.kill(pid, signal.SIGCONT)
        except (OSError, ValueError):
            pass
        subprocess.run(["bash", PG_SCRIPT, "stop", data], check=False, capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.postgres
def test_a_frozen_postgresql_stops_the_run_within_30_s_with_its_summary(sandbox, tmp_path, own_postgres):
    """SIGSTOP the whole cluster mid-recheck: the server never answers (nor sends its own statement timeout), so the
    client's deadlines stop the run: exit 3 within 30 s, the usual summary, and one sentence naming the cause."""
    url, data = own_postgres
    sandbox.reset()
    pairs = add_keys(sandbox, 30, "Frz")
    store.at(url).upgrade()
    sandbox.faults.latency(0.02)
    env = _env(sandbox.url, tmp_path, url)
    proc = subprocess.Popen([sys.executable, "-m", "core", "recheck", "--keys-from", source_script(tmp_path, pairs),
                             "--concurrency", "2"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    frozen: list[int] = []
    try:
        _poll(lambda: sum(i["state"] == "recorded" for i in _items(url, 1)) >= 3, 120, "3 tenants recorded", proc)
        store.at(url).db.dispose()  # this test's own connections: not part of the frozen run
        for pid in _cluster_pids(data):
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:  # a backend that ended between the listing and now
                continue
            frozen.append(pid)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=90)
        took = time.monotonic() - t0
    finally:
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
        if proc.poll() is None:
            proc.kill()
    print(f"frozen PostgreSQL: exit {proc.returncode} after {took:.1f} s; {err.strip()}")
    assert proc.returncode == 3, (out[-500:], err[-800:])
    assert took < 30, f"took {took:.1f} s"
    assert "recorded, " in out and "lines failed" in out and "(run 1," in out, out  # the usual summary
    assert "not reached" in out
    assert "did not answer" in err and "Traceback" not in err, err


@pytest.mark.postgres
def test_postgres_client_deadline_keepalives_and_the_bulk_exemption(postgres, monkeypatch):
    """The client's own deadline ends a statement the server has not answered (here: the server's own limit set
    higher), with one "client deadline" sentence; a connection that turned the server's statement timeout off
    (bench seeding's long statements) gets no client deadline either; keepalives and tcp_user_timeout are set."""
    from core.store import DatabaseFailure

    monkeypatch.setenv("KEYHEALTH_DB_STATEMENT_TIMEOUT_S", "0.5")  # client deadline: 2.5 s
    url = postgres
    store.dispose_engine(url)
    try:
        with store.connect(url) as conn:
            params = conn.connection.dbapi_connection.info.get_parameters()
            assert params.get("keepalives") == "1" and params.get("tcp_user_timeout") == "2500", params
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
            started = time.monotonic()
            conn.execute(sa.text("SELECT pg_sleep(3)"))  # longer than the client deadline: exempt, it completes
            assert time.monotonic() - started >= 2.9
        started = time.monotonic()
        with pytest.raises(DatabaseFailure) as ei, store.guard(url), store.connect(url) as conn:
            conn.exec_driver_sql("SET LOCAL statement_timeout = '20s'")  # the server would wait 20 s
            conn.execute(sa.text("SELECT pg_sleep(10)"))
        took = time.monotonic() - started
        assert 2.0 < took < 5, took
        assert ei.value.kind == "timed_out" and "within 2.5 s (client deadline" in str(ei.value), str(ei.value)
        with store.connect(url) as conn:  # the pool recovers: the next statement runs on a fresh connection
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        store.dispose_engine(url)
