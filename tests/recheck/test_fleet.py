"""Fleet recheck (issue 13): key sources, per-account pacing, one writer, stored runs and resume, scale-out.

Everything runs against the sandbox over real HTTP with the real SDK; waits poll, never sleep a fixed time.
"""
from __future__ import annotations

import json
import os
import random
import signal
import string
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from cli_process import run_core

from core import store
from core.engine.settings import ProbeSettings
from core.features.fleet import FleetOptions, SourceError, read_source, run_fleet
from core.features.recheck import BatchLine
from core.runtime import Runtime
from core.service import Service
from core.store import Database
from sandbox import DEMO_KEYS, Sandbox

ROOT = Path(__file__).resolve().parents[2]
HEALTHY = DEMO_KEYS["healthy"]


def make_key(tag: str) -> str:
    rng = random.Random(tag)
    head = f"rk_test_51Fleet{tag}"
    return head + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(100 - len(head)))


def add_keys(sb, n: int, tag: str, accounts: int | None = None) -> list[tuple[str, str]]:
    """n tenants with healthy keys; `accounts`: how many Stripe accounts they spread over (default: one each)."""
    out = []
    for i in range(n):
        key = make_key(f"{tag}{i}")
        acct = f"acct_1Fleet{tag}{i % (accounts or n)}"
        sb.add_key(key, HEALTHY.permissions, "test", account=acct)
        out.append((f"Tenant {tag} {i}", key))
    return out


def source_script(tmp_path: Path, pairs: list[tuple[str, str]], name: str = "source.py") -> str:
    """A key-source command: a script printing tenant,key lines (the keys live in the script, as they would
    in Pointai's platform)."""
    p = tmp_path / name
    p.write_text("import sys\n" + "".join(f"print({f'{t},{k}'!r})\n" for t, k in pairs))
    return f"{sys.executable} {p}"


def cli(args, sb, tmp_path, db_url=None, stdin="", **env_extra):
    env = {k: v for k, v in os.environ.items() if k not in ("STRIPE_KEY", "KEYHEALTH_KEYS_FROM")}
    env.update(STRIPE_API_BASE=sb.url, KEYHEALTH_RATE_TEST="200", KEYHEALTH_RATE_LIVE="200", NO_COLOR="1",
               KEYHEALTH_DATA_DIR=str(tmp_path), DATABASE_URL=db_url or f"sqlite:///{tmp_path / 'fleet.db'}",
               KEYHEALTH_FINGERPRINT_SECRET="fleet-test", KEYHEALTH_BACKOFF_S="0.01")
    env.update(env_extra)
    return run_core(args, check=False, cwd=ROOT, env=env, input=stdin, text=True, timeout=180)


def count(url: str, table: str) -> int:
    with store.get_engine(url).connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


@pytest.fixture(autouse=True)
def _clean(sandbox):
    sandbox.reset()


# --- 1. key sources -----------------------------------------------------------------------------------
def test_keys_from_a_source_command_records_every_tenant(sandbox, tmp_path):
    pairs = add_keys(sandbox, 5, "Src")
    p = cli(["recheck", "--keys-from", source_script(tmp_path, pairs), "--json"], sandbox, tmp_path)
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["recorded"] == 5 and rep["failed_lines"] == []
    assert [r["tenant"] for r in rep["results"]] == [t for t, _ in pairs]
    assert rep["run"]["id"] and rep["run"]["finished"] and rep["run"]["rate_limited"] == 0
    assert all(k not in p.stdout + p.stderr for _, k in pairs)  # keys never echoed


def test_keys_from_the_setting(sandbox, tmp_path):
    pairs = add_keys(sandbox, 2, "Set")
    p = cli(["recheck", "--json"], sandbox, tmp_path, KEYHEALTH_KEYS_FROM=source_script(tmp_path, pairs))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["recorded"] == 2


@pytest.mark.parametrize("script,expect,good_first", [
    ("import sys; sys.stderr.write('vault sealed\\n'); sys.exit(3)",
     "failed with exit status 3 (it said: 'vault sealed')", True),
    ("print('only-one-field')", "malformed line (line 2", True),
    ("print('')", "no tenant,key lines", False),
    ("import time; time.sleep(30)", "did not finish within 1 s", True),
])
def test_a_failing_or_malformed_source_records_nothing(script, expect, good_first, sandbox, tmp_path):
    pairs = add_keys(sandbox, 1, "Bad")
    p = tmp_path / "src.py"
    p.write_text((f"print({pairs[0][0] + ',' + pairs[0][1]!r})\n" if good_first else "") + script)
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    r = cli(["recheck", "--keys-from", f"{sys.executable} {p}", "--json"], sandbox, tmp_path, db_url=url,
            KEYHEALTH_KEYS_FROM_TIMEOUT_S="1")
    assert r.returncode == 2, r.stderr
    assert r.stdout == "" and expect in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0  # one sentence
    assert pairs[0][1] not in r.stderr
    assert not sandbox.requests  # nothing was checked
    assert not Path(url.removeprefix("sqlite:///")).exists() or count(url, "checks") == 0


def test_source_not_found_is_one_sentence():
    with pytest.raises(SourceError, match="was not found"):
        read_source("/nonexistent/keyhealth-source")
    with pytest.raises(SourceError, match="quoting"):
        read_source("'unclosed")


# --- 2. concurrency across accounts -----------------------------------------------------------------------
def _service(url, sb, **probe):
    settings = ProbeSettings(**{"rate_test": 20, "retries": 1, "backoff_s": 0.01, "timeout_s": 5.0, **probe})
    return Service(Runtime(demo=False, api_base=sb.url, db=Database(url), who="fleet-test", probe=settings))


def test_keys_of_one_account_share_its_pace_and_none_is_rate_limited(tmp_path):
    """Six tenants, two Stripe accounts, Stripe's real limit (25/s per account) enforced by the sandbox:
    each account is paced as one (never more than 25 requests in any second), no 429, every check recorded,
    and each key's first request is answered before its second is sent."""
    latency = 0.03
    with Sandbox(latency_s=latency, rate_limits={"test": 25}) as sb:
        pairs = add_keys(sb, 6, "Acct", accounts=2)
        url = f"sqlite:///{tmp_path / 'fleet.db'}"
        svc = _service(url, sb)
        entries = [BatchLine(i + 1, t, k) for i, (t, k) in enumerate(pairs)]
        rep = run_fleet(svc, entries, FleetOptions(concurrency=6))
        log = sb.requests
    assert rep.recorded == 6 and not rep.failed_lines, rep.failed_lines
    assert rep.rate_limited == 0 and all(r.status != 429 for r in log)
    by_acct: dict[str, list[float]] = {}
    for r in log:
        by_acct.setdefault(r.account or "", []).append(r.t)
    assert set(by_acct) == {"acct_1FleetAcct0", "acct_1FleetAcct1"}
    for times in by_acct.values():
        times.sort()
        worst = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
        assert worst <= 25, worst
    # both accounts were checked at once (in parallel), not one after the other
    a, b = (sorted(v) for v in by_acct.values())
    assert a[0] < b[-1] and b[0] < a[-1]
    by_key: dict[str, list[float]] = {}
    for r in log:
        by_key.setdefault(r.key_id or "", []).append(r.t)
    for times in by_key.values():
        times.sort()
        assert times[1] >= times[0] + latency * 0.9  # the first probe went alone, and was answered first
    runs = svc.store.list_runs()
    assert runs[0]["recorded"] == 6 and runs[0]["rate_limited"] == 0 and runs[0]["finished_at"] is not None


def test_global_ceiling_caps_the_process(tmp_path):
    with Sandbox() as sb:
        pairs = add_keys(sb, 4, "Ceil")
        svc = _service(f"sqlite:///{tmp_path / 'fleet.db'}", sb, rate_test=200)
        entries = [BatchLine(i + 1, t, k) for i, (t, k) in enumerate(pairs)]
        rep = run_fleet(svc, entries, FleetOptions(concurrency=4, max_rps=40))
        times = sorted(r.t for r in sb.requests)
    assert rep.recorded == 4
    worst = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    assert worst <= 42, worst  # 40/s (plus the ceiling's small burst of 2)


@pytest.mark.parametrize("per_key", [1, 4])
def test_a_keys_probes_go_one_after_another_by_default_and_through_the_probe_pool_when_asked(tmp_path, per_key):
    """key_concurrency 1 (the default): each sweep sends its own probes in turn, from its own thread, and no probe
    thread exists; at 4 the run's probe pool sends them, up to 4 of a key at once. The checks are the same."""
    import threading

    with Sandbox(latency_s=0.02) as sb:
        pairs = add_keys(sb, 3, f"PerKey{per_key}")
        svc = _service(f"sqlite:///{tmp_path / 'fleet.db'}", sb, rate_test=200)
        senders: set[str] = set()
        sent = svc.rt.client()._requestor._get_http_client().request

        def noting(*args, **kwargs):
            senders.add(threading.current_thread().name.split("_")[0])
            return sent(*args, **kwargs)

        svc.rt.client()._requestor._get_http_client().request = noting  # our own client, not stripe's code
        try:
            rep = run_fleet(svc, [BatchLine(i + 1, t, k) for i, (t, k) in enumerate(pairs)],
                            FleetOptions(concurrency=3, key_concurrency=per_key))
        finally:
            del svc.rt.client()._requestor._get_http_client().request
        in_flight = max(sum(1 for u in sb.requests if u.key_id == r.key_id and r.t <= u.t < r.t + 0.015)
                        for r in sb.requests)
    assert rep.recorded == 3 and rep.run["status_counts"] == {"healthy": 3}
    if per_key == 1:
        assert senders == {"fleet"}, senders  # the sweep threads themselves; no probe thread
        assert in_flight == 1
    else:
        assert "probe" in senders, senders
        assert in_flight > 1


# --- 3. a store that loses nothing ------------------------------------------------------------------------
def test_64_concurrent_sweeps_record_64_checks(sandbox, tmp_path):
    pairs = add_keys(sandbox, 64, "Sixty")
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    # the product's own retries and timeout: 64 sweeps at once on a loaded machine have left one request
    # unanswered twice within 5 s (one tenant "incomplete"), and this test is about the store, not timeouts
    svc = _service(url, sandbox, rate_test=200, retries=3, timeout_s=10.0)
    rep = run_fleet(svc, [BatchLine(i + 1, t, k) for i, (t, k) in enumerate(pairs)], FleetOptions(concurrency=64))
    assert rep.recorded == 64 and not rep.failed_lines
    assert count(url, "checks") == 64 and count(url, "audit") == 64
    assert rep.run["status_counts"] == {"healthy": 64}
    # every request the sweeps sent is counted: the sandbox saw each of them, except those that got no answer at
    # all (under a loaded machine a connection can time out before the sandbox accepts it; the sweep retries it)
    seen = len(sandbox.requests)
    assert seen > 64
    assert rep.requests - rep.no_answer <= seen <= rep.requests, (rep.requests, rep.no_answer, seen)


def test_a_store_that_throws_reports_the_line_failed_with_its_reason(sandbox, tmp_path):
    pairs = add_keys(sandbox, 4, "Throw")
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    svc = _service(url, sandbox, rate_test=200)
    svc.store.get_or_create_tenant(pairs[2][0])
    with store.get_engine(url).begin() as conn:  # the database itself refuses one tenant's checks
        conn.execute(sa.text("CREATE TRIGGER refuse BEFORE INSERT ON checks WHEN NEW.tenant_id = "
                             f"(SELECT id FROM tenants WHERE name = '{pairs[2][0]}') BEGIN "
                             "SELECT RAISE(ABORT, 'disk says no'); END"))
    rep = run_fleet(svc, [BatchLine(i + 1, t, k) for i, (t, k) in enumerate(pairs)], FleetOptions(concurrency=4))
    assert rep.recorded == 3
    assert [f["line"] for f in rep.failed_lines] == [3]
    assert "was not saved" in rep.failed_lines[0]["problem"]
    items = {i["tenant"]: i for i in svc.store.run_items(rep.run["id"])}
    assert items[pairs[2][0]]["state"] == "failed" and "was not saved" in items[pairs[2][0]]["problem"]
    assert rep.run["failed"] == 1 and rep.run["recorded"] == 3


def test_a_check_whose_audit_entry_fails_is_not_saved_and_the_line_says_so(sandbox, tmp_path):
    """The check and its audit entry are one transaction: when the database refuses the audit entry, the check is
    not in the history either, and the line fails with the reason (the summary and the database agree)."""
    pairs = add_keys(sandbox, 3, "Audit")
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    svc = _service(url, sandbox, rate_test=200)
    assert svc.store.list_tenants() == []  # migrated
    with store.get_engine(url).begin() as conn:  # the database refuses one tenant's audit entries
        conn.execute(sa.text("CREATE TRIGGER refuse BEFORE INSERT ON audit WHEN NEW.tenant = "
                             f"'{pairs[1][0]}' BEGIN SELECT RAISE(ABORT, 'disk says no'); END"))
    rep = run_fleet(svc, [BatchLine(i + 1, t, k) for i, (t, k) in enumerate(pairs)], FleetOptions(concurrency=3))
    assert rep.recorded == 2 and [f["line"] for f in rep.failed_lines] == [2] and rep.not_reached == []
    assert "was not saved" in rep.failed_lines[0]["problem"]
    assert all("audit_problem" not in r for r in rep.results)
    assert count(url, "checks") == 2 and count(url, "audit") == 2
    assert rep.run["recorded"] == 2 and rep.run["failed"] == 1


# --- 4. progress and runs ------------------------------------------------------------------------------
def test_progress_bar_line_and_redraws():
    from core.cli import ProgressBar

    assert ProgressBar.line(0, 200, 0, 0.0).endswith("0/200 tenants  ETA …")
    mid = ProgressBar.line(50, 200, 2, 30.0)
    assert "[#######......" in mid and "50/200 tenants  2 failed  ETA 0:01:30" in mid
    assert ProgressBar.line(200, 200, 0, 75.0).endswith("done in 1:15")

    class Tty:
        def __init__(self):
            self.out = ""

        def write(self, s):
            self.out += s

        def flush(self):
            pass

    clock = iter([0.0, 1.0, 1.01, 2.0]).__next__
    t = Tty()
    bar = ProgressBar(t, clock=clock)
    bar(1, 3, 0)
    bar(2, 3, 0)  # 10 ms after the last redraw: skipped
    bar(3, 3, 0)
    assert t.out.count("\r") == 2 and t.out.endswith("\n")


def test_json_output_has_no_progress_bar(sandbox, tmp_path):
    pairs = add_keys(sandbox, 2, "Quiet")
    p = cli(["recheck", "--csv", "-", "--json"], sandbox, tmp_path, stdin="".join(f"{t},{k}\n" for t, k in pairs))
    assert p.returncode == 0 and p.stderr == ""


def test_a_run_killed_halfway_keeps_its_checks_and_resume_skips_them(sandbox, tmp_path):
    pairs = add_keys(sandbox, 12, "Kill")
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    src = source_script(tmp_path, pairs)
    env = {k: v for k, v in os.environ.items() if k != "STRIPE_KEY"}
    env.update(STRIPE_API_BASE=sandbox.url, KEYHEALTH_RATE_TEST="40", DATABASE_URL=url,
               KEYHEALTH_DATA_DIR=str(tmp_path), KEYHEALTH_FINGERPRINT_SECRET="fleet-test")
    proc = subprocess.Popen([sys.executable, "-m", "core", "recheck", "--keys-from", src, "--concurrency", "2",
                             "--json"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while True:  # poll until some tenants are done, then kill the run
        try:
            items = store.at(url).run_items(1) if count(url, "fleet_items") else []
            done = [i for i in items if i["state"] == "recorded"]
        except sa.exc.OperationalError:
            done = []
        if len(done) >= 3:
            break
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)  # poll interval
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    s = store.at(url)
    run = s.list_runs()[0]
    assert run["finished_at"] is None
    done = {i["tenant"] for i in s.run_items(run["id"]) if i["state"] == "recorded"}
    checked_before = count(url, "checks")
    assert checked_before >= len(done) >= 3  # every finished check kept
    # a sweep killed between writing its tenant's check and marking the tenant done: resume counts that check too
    # (test_resume_does_not_check_again_a_tenant_recorded_just_before_the_kill), so it skips every tenant with a check
    kept = {t["name"] for t in s.list_tenants() if s.tenant_history(t["id"])}
    assert done <= kept and len(kept - done) <= 2  # at most one such tenant per sweep (--concurrency 2)
    p = cli(["recheck", "--keys-from", src, "--resume", "--json"], sandbox, tmp_path, db_url=url)
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["run"]["id"] == run["id"] and rep["run"]["finished"]
    assert rep["run"]["skipped"] == len(kept)
    assert {r["tenant"] for r in rep["results"]} == {t for t, _ in pairs} - kept
    tenants_checked = {t["name"] for t in s.list_tenants() if s.tenant_history(t["id"])}
    assert tenants_checked == {t for t, _ in pairs}
    assert s.get_run(run["id"])["recorded"] == 12


def test_resume_does_not_check_again_a_tenant_recorded_just_before_the_kill(sandbox, tmp_path):
    """Killed between writing a tenant's check and marking the tenant done: resume counts that check and does not
    check the tenant a second time (the others are checked)."""
    pairs = add_keys(sandbox, 3, "Gap")
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    svc = _service(url, sandbox, rate_test=200)
    entries = [BatchLine(i + 1, t, k) for i, (t, k) in enumerate(pairs)]
    run = svc.store.start_run(started_by="test", command="recheck")
    svc.store.add_run_items(run["id"], [t for t, _ in pairs])
    # the first tenant: its check written by this run's worker, its item still claimed when the worker died
    svc.store.claim_run_items(run["id"], "gone-host:1", 1, 600.0)
    checked = svc.check(pairs[0][1], tenant=pairs[0][0], source="batch")
    assert checked.check_id is not None
    before = len(sandbox.requests)
    rep = run_fleet(svc, entries, FleetOptions(concurrency=2, resume=True, claim_ttl_s=0.0))
    assert rep.run["id"] == run["id"] and rep.skipped == 1
    assert {r["tenant"] for r in rep.results} == {pairs[1][0], pairs[2][0]}
    assert len(svc.store.tenant_history(pairs[0][0])) == 1  # not checked again
    item = next(i for i in svc.store.run_items(run["id"]) if i["tenant"] == pairs[0][0])
    assert item["state"] == "recorded" and item["check_id"] == checked.check_id and item["status"] == "healthy"
    assert svc.store.get_run(run["id"])["recorded"] == 3 and svc.store.get_run(run["id"])["finished_at"] is not None
    assert len(sandbox.requests) > before


def test_a_worker_never_takes_over_its_own_tenant_while_checking_it(tmp_path):
    """A claim that lapses while its check runs (here every claim lapses at once: TTL 0, and each check takes a
    while against a slow Stripe) is not taken over by the same worker: each tenant is checked once, none is
    counted as "already done"."""
    with Sandbox(latency_s=0.02) as sb:
        pairs = add_keys(sb, 4, "Lapse")
        url = f"sqlite:///{tmp_path / 'fleet.db'}"
        svc = _service(url, sb, rate_test=200)
        rep = run_fleet(svc, [BatchLine(i + 1, t, k) for i, (t, k) in enumerate(pairs)],
                        FleetOptions(concurrency=2, claim_ttl_s=0.0))
        assert rep.recorded == 4 and rep.skipped == 0 and not rep.failed_lines
        assert [len(svc.store.tenant_history(t)) for t, _ in pairs] == [1, 1, 1, 1]  # none checked twice


def test_a_worker_asks_what_is_left_only_once_its_own_checks_are_written(sandbox, tmp_path, monkeypatch):
    """A worker whose sweeps are all done waits for its own writer before it asks the run what is left: a claim
    whose check is still being written looks open, and asking then would wait a poll for its own write (it cost
    every fleet run up to a second at its end). Every write is made slow here; every answer must be "nothing
    open"."""
    from core.features import fleet

    pairs = add_keys(sandbox, 3, "OwnWrites")
    svc = _service(f"sqlite:///{tmp_path / 'fleet.db'}", sandbox, rate_test=200)
    write, ask = fleet.FleetRun._write, store.Store.open_run_claims
    answers: list[int] = []

    def slow_write(self, *a, **k):
        time.sleep(0.3)  # a busy database: the write lands well after its sweep ended
        return write(self, *a, **k)

    def asked(self, run_id):
        left = ask(self, run_id)
        answers.append(left["open"])
        return left

    monkeypatch.setattr(fleet.FleetRun, "_write", slow_write)
    monkeypatch.setattr(store.Store, "open_run_claims", asked)
    rep = run_fleet(svc, [BatchLine(i + 1, t, k) for i, (t, k) in enumerate(pairs)], FleetOptions(concurrency=3))
    assert rep.recorded == 3 and not rep.unfinished
    assert answers == [0]


def test_resume_without_an_unfinished_run_is_one_sentence(sandbox, tmp_path):
    pairs = add_keys(sandbox, 1, "NoRun")
    p = cli(["recheck", "--keys-from", source_script(tmp_path, pairs), "--resume"], sandbox, tmp_path)
    assert p.returncode == 2 and "no unfinished run to resume" in p.stderr


# --- 6. scale-out on PostgreSQL ------------------------------------------------------------------------
@pytest.mark.postgres
def test_three_workers_split_60_tenants_on_postgresql(sandbox, tmp_path, db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("scale-out is a PostgreSQL feature; on SQLite one process runs the fleet")
    pairs = add_keys(sandbox, 60, "Pg")
    store.at(db_url).upgrade()
    src = source_script(tmp_path, pairs)
    env = {k: v for k, v in os.environ.items() if k != "STRIPE_KEY"}
    env.update(STRIPE_API_BASE=sandbox.url, KEYHEALTH_RATE_TEST="200", DATABASE_URL=db_url,
               KEYHEALTH_DATA_DIR=str(tmp_path), KEYHEALTH_FINGERPRINT_SECRET="fleet-test")
    procs = [subprocess.Popen([sys.executable, "-m", "core", "recheck", "--keys-from", src, "--run-name",
                               "nightly-test", "--concurrency", "4", "--json"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    reps = [json.loads(o[0]) for o in outs]
    checked = [r["tenant"] for rep in reps for r in rep["results"]]
    assert sorted(checked) == sorted(t for t, _ in pairs)  # 60, none twice, none missing
    assert count(db_url, "checks") == 60
    s = store.at(db_url)
    run = s.list_runs()[0]
    assert run["name"] == "nightly-test" and run["recorded"] == 60 and run["finished_at"] is not None
    assert len({i["claimed_by"] for i in s.run_items(run["id"])}) >= 1


@pytest.mark.postgres
def test_an_expired_claim_is_taken_over(db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL claims")
    s = store.at(db_url)
    s.upgrade()
    run = s.start_run(name="claims")
    s.add_run_items(run["id"], ["A", "B"])
    got = s.claim_run_items(run["id"], "crashed:1", 2, 0.0)
    assert len(got) == 2
    assert s.claim_run_items(run["id"], "alive:2", 1, 60.0)[0]["slug"] == "a"  # expired at once: taken over
    assert [x["slug"] for x in s.claim_run_items(run["id"], "alive:3", 5, 60.0)] == ["b"]
    assert s.claim_run_items(run["id"], "alive:4", 5, 60.0) == []


# --- 3. the lean client keeps the SDK's error semantics ---------------------------------------------------
def test_pooled_client_keeps_the_sdks_errors(sandbox):
    import stripe

    from core.engine.http import PooledClient

    def client(timeout: float) -> stripe.StripeClient:
        return stripe.StripeClient("sk_unused", base_addresses={"api": sandbox.url}, max_network_retries=0,
                                   http_client=PooledClient(timeout=timeout))

    # answers within a timeout a loaded machine keeps; a short one only where the server is made to hang
    c, impatient = client(10.0), client(1.0)
    key = HEALTHY.key
    assert c.raw_request("get", "/v1/balance", api_key=key) is not None
    with pytest.raises(stripe.AuthenticationError):
        c.raw_request("get", "/v1/balance", api_key=make_key("Unknown"))
    with pytest.raises(stripe.InvalidRequestError) as e:
        c.raw_request("get", "/v1/charges/ch_missing", api_key=key)
    assert e.value.http_status == 404 and e.value.error.code == "resource_missing"
    sandbox.faults.fail("/v1/balance", status=429, times=1)
    with pytest.raises(stripe.RateLimitError):
        c.raw_request("get", "/v1/balance", api_key=key)
    sandbox.faults.hang("/v1/balance", seconds=5, times=1)
    with pytest.raises(stripe.APIConnectionError) as e2:
        impatient.raw_request("get", "/v1/balance", api_key=key)
    assert e2.value.should_retry
    sandbox.faults.drop("/v1/balance", times=1)
    with pytest.raises(stripe.APIConnectionError):
        c.raw_request("get", "/v1/balance", api_key=key)
    sandbox.faults.clear()


def test_a_key_source_may_hold_the_whole_fleet(tmp_path):
    """20,000 tenants and more: a key source is not held to standard input's 10,000-line limit."""
    p = tmp_path / "big.py"
    p.write_text("for i in range(20_000):\n    print(f'Tenant {i},rk_test_51Big{i:08d}')\n")
    entries = read_source(f"{sys.executable} {p}")
    assert len(entries) == 20_000 and entries[-1].tenant == "Tenant 19999" and entries[-1].line == 20_000


def test_fleet_settings_from_the_environment():
    from core.config import SettingError, Settings, default_fleet_concurrency

    s = Settings.from_env({"KEYHEALTH_KEYS_FROM": " /opt/src ", "KEYHEALTH_FLEET_CONCURRENCY": "12",
                           "KEYHEALTH_FLEET_MAX_RPS": "250", "KEYHEALTH_ALERT_WEBHOOK": "http://hook.test/x",
                           "KEYHEALTH_CLAIM_TTL_S": "60", "KEYHEALTH_ALERT_TIMEOUT_S": "2"})
    assert (s.keys_from, s.fleet_concurrency, s.fleet_max_rps, s.claim_ttl_s) == ("/opt/src", 12, 250.0, 60.0)
    assert s.alert_webhook == "http://hook.test/x" and s.alert_timeout_s == 2.0
    assert "hook.test" not in repr(s)  # a webhook URL is a secret
    d = Settings.from_env({"KEYHEALTH_FLEET_CONCURRENCY": ""})
    assert d.keys_from is None and d.alert_webhook is None
    assert d.fleet_concurrency == default_fleet_concurrency() and 8 <= d.fleet_concurrency <= 128
    assert d.fleet_key_concurrency == 1 and Settings.from_env(
        {"KEYHEALTH_FLEET_KEY_CONCURRENCY": "4"}).fleet_key_concurrency == 4
    with pytest.raises(SettingError, match="KEYHEALTH_FLEET_CONCURRENCY is set to 'lots'"):  # never the default
        Settings.from_env({"KEYHEALTH_FLEET_CONCURRENCY": "lots"})
