"""Fleet recheck: 200 keys (each its own Stripe account) on the sandbox at 100 ms latency, with Stripe's
per-account limits enforced (25/s test), against today's sequential recheck measured in the same run.

The sandbox runs in its own process, and so does the recheck: `python -m core recheck --csv FILE --json`, as an
operator runs it, on a fresh SQLite database. The client's CPU per request is that whole process's user+system
time (os.wait4's rusage: every thread, the imports and start-up, judging and recording included) divided by the
requests the SANDBOX logged (not those the client believes it sent). The sequential baseline (`run_fleet` with
concurrency 1, one key after another) is measured in this process on a subset of keys and extrapolated per key.
Every figure is the median of bench.machine.RUNS runs. Projections assume the measured keys/s holds
(per-account pacing keeps each key's sweep time constant; more tenants only add keys in flight).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.machine import RUNS, median

ROOT = Path(__file__).resolve().parent.parent
N_KEYS = int(os.environ.get("BENCH_FLEET_KEYS", "200"))
N_SEQUENTIAL = int(os.environ.get("BENCH_FLEET_SEQUENTIAL", "4"))
LATENCY_S = 0.100

_SANDBOX = """
import sys, time
sys.path.insert(0, {root!r})
from sandbox import Sandbox, DEMO_KEYS
from bench.bench_fleet import bench_keys
sb = Sandbox(latency_s={latency}, rate_limits={{"test": 25, "live": 100}})
for tenant, key, acct in bench_keys({n}):
    sb.add_key(key, DEMO_KEYS["healthy"].permissions, "test", account=acct)
sb.start()
print(sb.url, flush=True)
sys.stdin.read()  # until the bench closes our stdin
sb.stop()
"""


def bench_keys(n: int) -> list[tuple[str, str, str]]:
    """(tenant, key, account) for n healthy bench keys, each in its own account (stable across runs)."""
    import random
    import string

    out = []
    for i in range(n):
        rng = random.Random(f"bench-fleet-{i}")
        head = f"rk_test_51BenchFleet{i:05d}"
        key = head + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(100 - len(head)))
        out.append((f"Bench tenant {i:05d}", key, f"acct_1BenchFleet{i:05d}"))
    return out


def _start_sandbox(n: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", _SANDBOX.format(root=str(ROOT), latency=LATENCY_S, n=n)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    url = proc.stdout.readline().strip()  # type: ignore[union-attr]
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/_sandbox/health", timeout=1):
                return proc, url
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the bench sandbox did not start") from None
            time.sleep(0.05)  # between health polls


def _service(url: str, db_url: str):
    from core.config import settings
    from core.runtime import Runtime
    from core.service import Service
    from core.store import Database

    conf = settings()
    return Service(Runtime(demo=False, api_base=url, db=Database(db_url), who="bench", probe=conf.probe))


def _sandbox_log(url: str, clear: bool = False) -> list[dict]:
    """The sandbox's request log (its API requests, each as it arrived), or clear it."""
    req = urllib.request.Request(url + "/_sandbox/requests", method="DELETE" if clear else "GET")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return [] if clear else json.loads(resp.read())["requests"]


def recheck_process(url: str, keys: list[tuple[str, str, str]], tmp: str, *, extra: tuple[str, ...] = (),
                    env: dict[str, str] | None = None, db: Path | None = None) -> dict:
    """Run `python -m core recheck` on `keys` as its own process against the sandbox at `url`, on the SQLite
    database `db` (default: a new one); its wall time, its whole CPU (rusage of the process: threads and start-up
    included), its JSON report, and the requests the sandbox logged meanwhile."""
    csv_path = Path(tmp) / "keys.csv"
    csv_path.write_text("".join(f"{t},{k}\n" for t, k, _ in keys))
    db = db or Path(tmp) / f"fleet-{time.monotonic_ns()}.db"
    child_env = {**os.environ, "STRIPE_API_BASE": url, "DATABASE_URL": f"sqlite:///{db}",
                 "KEYHEALTH_DATA_DIR": tmp, "KEYHEALTH_FINGERPRINT_SECRET": "bench-fleet", **(env or {})}
    child_env.pop("KEYHEALTH_DEMO", None)
    _sandbox_log(url, clear=True)
    out_path = Path(tmp) / "recheck.json"
    with csv_path.open() as stdin, out_path.open("w") as stdout:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "core", "recheck", "--csv", "-", "--json", *extra],
                                stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT, env=child_env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"the bench recheck exited {proc.returncode}: {err[-500:]}")
    report = json.loads(out_path.read_text())
    logged = _sandbox_log(url)
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "report": report, "logged": len(logged),
            "r429": sum(1 for r in logged if r["status"] == 429), "rc": proc.returncode}


def workers_process(url: str, keys: list[tuple[str, str, str]], tmp: str, db_url: str, workers: int) -> dict:
    """`workers` recheck processes started together on one stored run (`--run-name`, the same CSV each), on the
    database `db_url` (already migrated), against the sandbox at `url`: the wall time from the first start to the
    last exit, every process's CPU summed (rusage), the requests the sandbox logged, and what each recorded."""
    csv_path = Path(tmp) / "keys.csv"
    csv_path.write_text("".join(f"{t},{k}\n" for t, k, _ in keys))
    child_env = {**os.environ, "STRIPE_API_BASE": url, "DATABASE_URL": db_url, "KEYHEALTH_DATA_DIR": tmp,
                 "KEYHEALTH_FINGERPRINT_SECRET": "bench-fleet"}
    child_env.pop("KEYHEALTH_DEMO", None)
    name = f"bench-{time.monotonic_ns()}"
    _sandbox_log(url, clear=True)
    procs, outs = [], []
    t0 = time.perf_counter()
    for i in range(workers):
        out_path = Path(tmp) / f"worker-{i}.json"
        outs.append(out_path)
        with csv_path.open() as stdin, out_path.open("w") as stdout:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "core", "recheck", "--csv", "-", "--json", "--run-name", name],
                stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL, cwd=ROOT, env=child_env))
    cpu, codes = 0.0, []
    for p in procs:
        _, status, usage = os.wait4(p.pid, 0)
        cpu += usage.ru_utime + usage.ru_stime
        codes.append(os.waitstatus_to_exitcode(status))
    wall = time.perf_counter() - t0
    if any(c not in (0, 1) for c in codes):
        raise RuntimeError(f"a bench worker exited {codes}")
    reports = [json.loads(o.read_text()) for o in outs]
    logged = _sandbox_log(url)
    return {"wall": wall, "cpu": cpu, "logged": len(logged), "r429": sum(1 for r in logged if r["status"] == 429),
            "recorded": [int(r["recorded"]) for r in reports]}


def _fresh_pg(base: str, name: str) -> str:
    """An empty, migrated PostgreSQL database `name` on the server at `base` (no database name): its URL."""
    from bench.seed import _wipe

    url = f"{base}/{name}"
    _wipe(url)
    _service("http://127.0.0.1:9", url).store  # noqa: B018 - the property migrates: before the workers start
    from core.store.db import dispose_engine

    dispose_engine(url)
    return url


def _fresh_sqlite(tmp: str) -> str:
    """An empty, migrated SQLite database in `tmp`: its URL."""
    from core.store.db import dispose_engine

    url = f"sqlite:///{Path(tmp) / f'scale-{time.monotonic_ns()}.db'}"
    _service("http://127.0.0.1:9", url).store  # noqa: B018 - the property migrates: before the workers start
    dispose_engine(url)
    return url


def measure_scale_out(pg_base: str | None, worker_counts: tuple[int, ...] = (1, 2)) -> dict:
    """Requests/s of 1 and 2 recheck processes sharing one run on PostgreSQL (on SQLite when `pg_base` is None),
    the sandbox in its own process; each figure the median of RUNS runs, with what every run recorded."""
    keys = bench_keys(N_KEYS)
    load_before = os.getloadavg()
    proc, url = _start_sandbox(N_KEYS)
    rows: dict[int, list[dict]] = {n: [] for n in worker_counts}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # one database, its tenants known from a first run that is not measured: the nightly case
            db_url = _fresh_pg(pg_base, "kh_bench_fleet") if pg_base else _fresh_sqlite(tmp)
            workers_process(url, keys, tmp, db_url, 1)
            for _ in range(RUNS):
                for n in worker_counts:  # interleaved: load that comes and goes hits every row alike
                    r = workers_process(url, keys, tmp, db_url, n)
                    r["duplicates"] = sum(r["recorded"]) - len(keys)
                    rows[n].append(r)
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=30)
    out = {}
    for n, rs in rows.items():
        out[n] = {"req_s": median([r["logged"] / r["wall"] for r in rs]), "wall": median([r["wall"] for r in rs]),
                  "cpu_ms": median([r["cpu"] * 1000 / max(1, r["logged"]) for r in rs]),
                  "r429": max(r["r429"] for r in rs), "duplicates": max(r["duplicates"] for r in rs),
                  "recorded_min": min(sum(r["recorded"]) for r in rs), "runs": len(rs)}
    return {"rows": out, "keys": N_KEYS, "load": (load_before, os.getloadavg()),
            "engine": "PostgreSQL" if pg_base else "SQLite"}


def scale_out_table(m: dict) -> str:
    base = m["rows"][min(m["rows"])]["req_s"]
    (b1, b5, b15), (a1, a5, a15) = m["load"]
    lines = [
        f"Scale-out on {m['engine']}: {m['keys']} keys, 1 and 2 `recheck --run-name` processes started together on one "
        "run (the same CSV each), the sandbox in its own process, on one database whose tenants a first run (not "
        "measured) made known. Requests/s = requests the sandbox logged ÷ wall "
        f"time from the first start to the last exit. Medians of {m['rows'][min(m['rows'])]['runs']} runs. Load "
        f"average before: {b1:.2f} / {b5:.2f} / {b15:.2f}; after: {a1:.2f} / {a5:.2f} / {a15:.2f}.",
        "",
        "| workers | requests/s | vs one worker | client CPU (ms/request, all workers) | 429s | recorded | "
        "recorded twice |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, r in sorted(m["rows"].items()):
        lines.append(f"| {n} | {r['req_s']:.0f} | {r['req_s'] / base:.2f}× | {r['cpu_ms']:.2f} | {r['r429']} | "
                     f"{r['recorded_min']}/{m['keys']} | {r['duplicates']} |")
    return "\n".join(lines)


def statements_per_check(svc, key: str, tenant: str) -> int:
    """The SQL statements one recorded check of a known tenant sends (BEGIN included; as
    tests/service/test_unit_of_work.py counts them): `svc.check` on a tenant checked before."""
    import sqlalchemy as sa

    from core import store

    engine = store.get_engine(svc.rt.db.url)
    seen: list[str] = []

    def spy(conn, cursor, statement, *a):
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", spy)
    try:
        checked = svc.check(key, tenant, source="cli")
    finally:
        sa.event.remove(engine, "before_cursor_execute", spy)
    assert checked.saved, "the counted check was not saved"
    return len(seen)


def measure() -> dict:
    from core.engine.keys import SecretKey
    from core.features.fleet import FleetOptions, run_fleet
    from core.features.recheck import BatchLine
    from core.store import TenantName

    keys = bench_keys(N_KEYS)
    entries = [BatchLine(i + 1, TenantName.parse(t), SecretKey.parse(k)) for i, (t, k, _) in enumerate(keys)]
    load_before = os.getloadavg()
    proc, url = _start_sandbox(N_KEYS)
    seq_walls, runs = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # one key at a time (the sequential recheck this replaced), on a subset
            seq = _service(url, f"sqlite:///{tmp}/seq.db")
            seq.store  # noqa: B018 - the property migrates the database: before timing
            for _ in range(RUNS):
                t0 = time.perf_counter()
                # (each key with the dashboard's probes in flight, as the sequential recheck sent them)
                seq_rep = run_fleet(seq, entries[:N_SEQUENTIAL], FleetOptions(
                    concurrency=1, key_concurrency=seq.rt.probe.concurrency, command="bench"))
                seq_walls.append((time.perf_counter() - t0) / N_SEQUENTIAL)
                assert seq_rep.recorded == N_SEQUENTIAL
            statements = statements_per_check(seq, keys[0][1], keys[0][0])  # a tenant checked above
            # the fleet: the recheck command, as its own process. The first run finds a new database (migrated
            # at start-up) and 200 new tenants; the nightly recheck finds every tenant known: the runs after it.
            db = Path(tmp) / "fleet.db"
            first = recheck_process(url, keys, tmp, db=db)
            for _ in range(RUNS):
                runs.append(recheck_process(url, keys, tmp, db=db))
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=30)
    seq_per_key = median(seq_walls)
    wall = median([r["wall"] for r in runs])
    logged = median([r["logged"] for r in runs])
    cpu_ms = [r["cpu"] * 1000 / max(1, r["logged"]) for r in runs]
    recorded = [int(r["report"]["recorded"]) for r in runs]
    return {
        "keys": N_KEYS, "runs": len(runs), "wall": wall, "walls": [r["wall"] for r in runs],
        "keys_s": median([n / r["wall"] for n, r in zip(recorded, runs, strict=True)]),
        "req_s": median([r["logged"] / r["wall"] for r in runs]), "requests": logged,
        "client_requests": median([int(r["report"]["run"]["requests"]) for r in runs]),
        "cpu_ms": median(cpu_ms), "cpu_ms_all": cpu_ms, "r429": max(r["r429"] for r in runs),
        "recorded": min(recorded), "failed": max(len(r["report"].get("failed_lines", [])) for r in runs),
        "seq_per_key": seq_per_key, "seq_n": N_SEQUENTIAL, "ratio": seq_per_key * N_KEYS / wall,
        "load": (load_before, os.getloadavg()), "statements": statements,
        "first": {"wall": first["wall"], "cpu_ms": first["cpu"] * 1000 / max(1, first["logged"]),
                  "requests": first["logged"], "r429": first["r429"], "recorded": int(first["report"]["recorded"])},
    }


def _dur(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def _scale_out_section() -> str:
    """The scale-out tables: SQLite, and PostgreSQL on the server KEYHEALTH_BENCH_PG_BASE names
    (postgresql+psycopg://user@host:port) or else on the bench's own cluster (bench.dbs.pg_cluster); one sentence
    instead of the PostgreSQL table when there is no PostgreSQL."""
    sqlite = scale_out_table(measure_scale_out(None))
    base = os.environ.get("KEYHEALTH_BENCH_PG_BASE")
    if base:
        return scale_out_table(measure_scale_out(base.rstrip("/"))) + "\n\n" + sqlite
    from bench.dbs import pg_cluster

    with pg_cluster() as (pg_base, problem):
        if pg_base is None:
            return f"Scale-out on PostgreSQL: not measured ({problem}).\n\n{sqlite}"
        return scale_out_table(measure_scale_out(pg_base)) + "\n\n" + sqlite


def report() -> str:
    m = measure()
    proj = "; ".join(f"{n:,} tenants: {_dur(n / m['keys_s'])} (sequential: {_dur(n * m['seq_per_key'])})"
                     for n in (2_000, 20_000))
    (b1, b5, b15), (a1, a5, a15) = m["load"]
    spread = ", ".join(f"{x:.2f}" for x in m["cpu_ms_all"])
    return "\n".join([
        f"{m['keys']} healthy keys, each its own Stripe account, sandbox at {int(LATENCY_S * 1000)} ms latency with "
        "Stripe's per-account limits enforced (25/s test) in its own process; client = `python -m core recheck "
        "--csv - --json` in its own process (shipped defaults, SQLite). Client CPU = the recheck process's whole "
        "user+system time (threads, imports and start-up included) ÷ the requests the sandbox logged. The table's "
        "runs are the nightly case: every tenant known from a first run on the same database, which is given "
        "below the table (a new database, migrated at start-up, and every tenant new). Sequential = "
        f"one key at a time (`run_fleet` with concurrency 1), measured on {m['seq_n']} keys and extrapolated per "
        f"key. Medians of {m['runs']} runs. Load average before: {b1:.2f} / {b5:.2f} / {b15:.2f}; after: "
        f"{a1:.2f} / {a5:.2f} / {a15:.2f}.",
        "",
        "| keys | wall (s) | keys/s | requests (sandbox) | requests/s | client CPU (ms/request) | 429s | recorded | "
        "sequential (s/key) | speed-up vs sequential |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {m['keys']} | {m['wall']:.1f} | {m['keys_s']:.2f} | {m['requests']:.0f} | {m['req_s']:.0f} | "
        f"{m['cpu_ms']:.2f} | {m['r429']} | {m['recorded']}/{m['keys']} (failed {m['failed']}) | "
        f"{m['seq_per_key']:.2f} | {m['ratio']:.1f}× |",
        "",
        f"Client CPU per run (ms/request): {spread}. First run (new database, {m['first']['recorded']} new "
        f"tenants): {m['first']['cpu_ms']:.2f} ms/request, {m['first']['requests']} requests in "
        f"{m['first']['wall']:.1f} s, {m['first']['r429']} 429s. SQL statements of one recorded check of a known "
        f"tenant (SQLite, BEGIN included): {m['statements']} (goal: at most 8). Projection on this machine: {proj}.",
        "",
        _scale_out_section(),
    ])


if __name__ == "__main__":
    if sys.argv[1:] == ["scale-out"]:  # only the scale-out table
        print(_scale_out_section())
    else:
        print(report())
