"""Store benchmark: the dashboard's queries and record_check on fleet-sized histories, SQLite and PostgreSQL.

    .venv/bin/python -m bench store                          # both sizes, both databases (reuses seeded ones)
    .venv/bin/python bench/bench_store.py --reuse --sizes 2k --engines sqlite
    .venv/bin/python bench/bench_store.py                    # re-seed everything first

Sizes: 2,000 tenants / 100,000 checks and 20,000 tenants / 1,000,000 checks (about 10 permission rows each;
see bench/seed.py for what is seeded). PostgreSQL is the bench's own throwaway cluster (bench/dbs.py).
Goal: every query < 200 ms and one record_check < 20 ms (medians).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.dbs import ENGINES, SIZES, BenchDb, databases  # noqa: E402
from bench.seed import SCOPES, log, tenant_name  # noqa: E402
from core import store  # noqa: E402
from core.engine.result import CheckResult, KeyInfo, Row  # noqa: E402

QUERY_GOAL_MS = 200.0
RECORD_GOAL_MS = 20.0
REPEATS = {"2k": 7, "20k": 3}  # timed runs per query after one warm-up; fewer at the big size
RECORDS = {"2k": 30, "20k": 15}
FLEET_DAYS = 42  # the Fleet page's default date range


def _time_ms(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(median, max) in ms of `repeat` runs after one warm-up (statement compilation, page cache)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), max(times)


def queries(url: str, tenants: int) -> list[tuple[str, Callable[[], Any]]]:
    """(label, call) for every store read the pages make, with the arguments the pages pass."""
    s = store.at(url)
    one = tenant_name(101 if tenants > 101 else tenants - 1)  # several keys, one shared with another tenant
    slug = store.slugify(one)
    today = datetime.now(timezone.utc).date()
    start = today - timedelta(days=FLEET_DAYS)
    now = datetime.now(timezone.utc)
    return [
        ("latest_page(page 1 of 50) — Triage as it opens", lambda: s.latest_page(page=1, page_size=50)),
        ("latest_page(page 40 of 50)", lambda: s.latest_page(page=40, page_size=50)),
        ("latest_page(status=[failing], mode=live)", lambda: s.latest_page(["failing"], "live")),
        ("latest_page(flag=rotation_due)", lambda: s.latest_page(flag="rotation_due")),
        ("latest_page(flag=shared_key)", lambda: s.latest_page(flag="shared_key")),
        ("latest_page(stale_days=30)", lambda: s.latest_page(stale_days=30)),
        ("latest_page(search='tenant 01')", lambda: s.latest_page(search="tenant 01")),
        ("count_latest(status=[failing])", lambda: s.count_latest(["failing"])),
        ("status_counts()", lambda: s.status_counts()),
        ("score_distribution(10)", lambda: s.score_distribution(10)),
        ("top_problem_scopes('missing', 10)", lambda: s.top_problem_scopes("missing", 10)),
        ("top_problem_scopes('excess', 10)", lambda: s.top_problem_scopes("excess", 10)),
        ("lifecycle_counts()", lambda: s.lifecycle_counts()),
        ("replaced_tenants(last 7 days)", lambda: s.replaced_tenants(now - timedelta(days=7))),
        (f"unreachable_share(last {FLEET_DAYS} days)", lambda: s.unreachable_share(start, today)),
        (f"status_mix_per_day(last {FLEET_DAYS} days) — Fleet default", lambda: s.status_mix_per_day(start, today)),
        ("status_mix_per_day() — all 180 days", lambda: s.status_mix_per_day()),
        (f"checks_per_day(last {FLEET_DAYS} days)", lambda: s.checks_per_day(start, today)),
        ("checks_per_day() — all 180 days", lambda: s.checks_per_day()),
        ("stale_tenants(7)", lambda: s.stale_tenants(7)),
        ("get_tenant(one tenant)", lambda: s.get_tenant(slug)),
        ("tenant_history(one tenant, limit=1000)", lambda: s.tenant_history(slug, limit=1000)),
        ("drift(one tenant, limit=500)", lambda: s.drift(slug, limit=500)),
        ("drift(one tenant, new_key=True, limit=500)", lambda: s.drift(slug, new_key=True, limit=500)),
        ("key_events(one tenant)", lambda: s.key_events(slug)),
        ("shared_keys(one tenant)", lambda: s.shared_keys(slug)),
        ("list_runs(10)", lambda: s.list_runs(10)),
        ("open_alerts(20)", lambda: s.open_alerts(limit=20)),
        ("tenant_names() — the tenant pickers", lambda: s.tenant_names()),
    ]


def _recorder(url: str, tenants: int) -> Callable[[], None]:
    """One record_check per call, each for the next tenant, with that tenant's current key (no spurious
    replacement) and 10 rows."""
    s = store.at(url)
    names = [tenant_name(i) for i in range(0, tenants, max(1, tenants // 50))]
    keys = []
    for name in names:
        t = s.get_tenant(name)
        last = s.get_check(t["last_check_id"]) if t and t["last_check_id"] else None
        keys.append(KeyInfo("restricted", last["key_mode"] if last else "live", last["key_masked"] if last else
                            "rk_live_…bnch", last["key_fingerprint"] if last else "f" * 64))
    rows = [Row(cat, res, scope, lvl, lvl, "ok") for cat, scope, res, lvl in SCOPES[:10]]
    i = iter(range(10**9))

    def one() -> None:
        n = next(i) % len(names)
        res = CheckResult(key=keys[n], status="healthy", score=100, account=f"acct_bench{n:06d}", rows=rows)
        s.record_check(res, names[n], source="cli", checked_by="bench")

    return one


def run(db: BenchDb) -> list[tuple[str, str, float, str]]:
    """[(operation, 'median / max' text, goal, met)] for one database."""
    assert db.url is not None
    repeat, records = REPEATS[db.size], RECORDS[db.size]
    out: list[tuple[str, str, float, str]] = []
    for label, fn in queries(db.url, db.tenants):
        try:
            med, worst = _time_ms(fn, repeat)
        except Exception as e:  # noqa: BLE001 - a failing query is a result to report, not a reason to stop
            log(f"  {label}: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
            out.append((label, f"error: {type(e).__name__}", QUERY_GOAL_MS, "**NO**"))
            continue
        log(f"  {label}: {med:.1f} ms (max {worst:.1f})")
        out.append((label, f"{med:.1f} / {worst:.1f}", QUERY_GOAL_MS, "yes" if med < QUERY_GOAL_MS else "**NO**"))
    med, worst = _time_ms(_recorder(db.url, db.tenants), records)
    log(f"  record_check: {med:.1f} ms (max {worst:.1f})")
    out.append((f"record_check (10 rows), {records} calls", f"{med:.1f} / {worst:.1f}", RECORD_GOAL_MS,
                "yes" if med < RECORD_GOAL_MS else "**NO**"))
    store.dispose_engine(db.url)
    return out


def table(db: BenchDb) -> str:
    head = f"**{db.title}**"
    if db.url is None:
        return f"{head}: not measured — {db.problem}"
    seeded = (f" Seeded in this run: {db.seeded['checks']:,} checks, {db.seeded['rows']:,} rows, "
              f"{db.seeded['keys']:,} keys, {db.seeded['events']:,} key replacements in {db.seeded['seconds']:.0f} s."
              if db.seeded else " Reused the database seeded by an earlier run.")
    log(f"timing queries on {db.title}")
    results = run(db)
    lines = [f"{head}: median / max of {REPEATS[db.size]} runs after a warm-up.{seeded}", "",
             "| operation | ms (median / max) | goal ms | met |", "| --- | ---: | ---: | :---: |"]
    lines += [f"| {label} | {ms} | {goal:.0f} | {ok} |" for label, ms, goal, ok in results]
    return "\n".join(lines)


def report(*, reuse: bool = True, sizes: tuple[str, ...] = tuple(SIZES), engines: tuple[str, ...] = ENGINES) -> str:
    """The markdown section `python -m bench` writes into docs/benchmarks.md: one table per (size, database)."""
    with databases(reuse=reuse, sizes=sizes, engines=engines) as dbs:
        tables = [table(db) for db in dbs]
    intro = (f"Every store read the pages make, with the pages' arguments (Fleet's default range is the last "
             f"{FLEET_DAYS} days; \"one tenant\" has {3} keys over time, one shared). Goal: every query < "
             f"{QUERY_GOAL_MS:.0f} ms, record_check < {RECORD_GOAL_MS:.0f} ms (medians). Fewer runs at 20,000 "
             "tenants to keep `make bench` short.")
    return "\n\n".join([intro, *tables])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--reuse", action="store_true",
                    help="keep already seeded databases (seeding 1M checks takes minutes)")
    ap.add_argument("--sizes", default=",".join(SIZES), help="comma-separated: 2k,20k")
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma-separated: sqlite,postgresql")
    args = ap.parse_args(argv)
    text = report(reuse=args.reuse, sizes=tuple(args.sizes.split(",")), engines=tuple(args.engines.split(",")))
    print(text)
    return 0 if "**NO**" not in text else 1


if __name__ == "__main__":
    raise SystemExit(main())
