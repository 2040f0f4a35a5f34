"""Fleet recheck: 200 keys (each its own Stripe account) on the sandbox at 100 ms latency, with Stripe's
per-account limits enforced (25/s test), against today's sequential recheck measured in the same run.

The sandbox runs in its own process, so the CPU measured here (this process's user+system time during the
run, divided by the requests sent) is the client's alone: the SDK, the pacing, the threads, judging and
recording in SQLite. The sequential baseline (Service.recheck, one key after another) is measured on a
subset of keys and extrapolated per key. Projections assume the measured keys/s holds (per-account pacing
keeps each key's sweep time constant; more tenants only add keys in flight).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

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


def measure() -> dict:
    from core.config import settings
    from core.features.fleet import FleetOptions, run_fleet
    from core.features.recheck import BatchLine

    keys = bench_keys(N_KEYS)
    entries = [BatchLine(i + 1, t, k) for i, (t, k, _) in enumerate(keys)]
    proc, url = _start_sandbox(N_KEYS)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # one key at a time (the sequential recheck this replaced), on a subset
            seq = _service(url, f"sqlite:///{tmp}/seq.db")
            seq.store  # noqa: B018 - the property migrates the database: before timing
            t0 = time.perf_counter()
            seq_rep = run_fleet(seq, entries[:N_SEQUENTIAL], FleetOptions(concurrency=1, command="bench"))
            seq_per_key = (time.perf_counter() - t0) / N_SEQUENTIAL
            assert seq_rep.recorded == N_SEQUENTIAL
            # the fleet
            svc = _service(url, f"sqlite:///{tmp}/fleet.db")
            svc.store  # noqa: B018 - the property migrates the database: before timing
            conf = settings()
            opts = FleetOptions(concurrency=conf.fleet_concurrency, max_rps=conf.fleet_max_rps, command="bench")
            cpu0, t0 = time.process_time(), time.perf_counter()
            rep = run_fleet(svc, entries, opts)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            stored = svc.store.get_run(rep.run["id"])
            checks = len([1 for t in svc.store.list_tenants() if t["last_check_id"]])
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=30)
    load = os.getloadavg()
    return {
        "keys": N_KEYS, "concurrency": opts.concurrency, "max_rps": opts.max_rps, "wall": wall,
        "keys_s": rep.recorded / wall, "req_s": rep.requests / wall, "requests": rep.requests,
        "cpu_ms": cpu * 1000 / max(1, rep.requests), "r429": rep.rate_limited, "recorded": rep.recorded,
        "failed": len(rep.failed_lines), "stored_recorded": stored["recorded"], "tenants_with_check": checks,
        "seq_per_key": seq_per_key, "seq_n": N_SEQUENTIAL, "ratio": seq_per_key * N_KEYS / wall,
        "load": load, "statuses": stored["status_counts"],
    }


def _dur(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def report() -> str:
    m = measure()
    proj = "; ".join(f"{n:,} tenants: {_dur(n / m['keys_s'])} (sequential: {_dur(n * m['seq_per_key'])})"
                     for n in (2_000, 20_000))
    return "\n".join([
        f"{m['keys']} healthy keys, each its own Stripe account, sandbox at {int(LATENCY_S * 1000)} ms latency with "
        "Stripe's per-account limits enforced (25/s test) in its own process; client = this process "
        f"(concurrency {m['concurrency']}, ceiling {m['max_rps']:.0f} req/s, SQLite). Sequential = one key "
        f"at a time (`run_fleet` with concurrency 1), measured on {m['seq_n']} keys in the same run and "
        "extrapolated per key. "
        f"Load average during the run: {m['load'][0]:.2f} / {m['load'][1]:.2f} / {m['load'][2]:.2f} (2 cores, shared).",
        "",
        "| keys | wall (s) | keys/s | requests | requests/s | client CPU (ms/request) | 429s | recorded | "
        "sequential (s/key) | speed-up vs sequential |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {m['keys']} | {m['wall']:.1f} | {m['keys_s']:.2f} | {m['requests']} | {m['req_s']:.0f} | "
        f"{m['cpu_ms']:.2f} | {m['r429']} | {m['recorded']}/{m['keys']} (run: {m['stored_recorded']}, "
        f"failed {m['failed']}) | {m['seq_per_key']:.2f} | {m['ratio']:.1f}× |",
        "",
        f"Projection on this machine: {proj}.",
    ])


if __name__ == "__main__":
    print(report())
