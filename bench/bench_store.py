"""Store benchmark: seed a fleet-sized history, time the dashboard's queries and record_check.

    .venv/bin/python bench/bench_store.py                      # SQLite file bench/out/store_bench.db
    .venv/bin/python bench/bench_store.py --url postgresql+psycopg://postgres@127.0.0.1:5432/keyhealth_bench
    .venv/bin/python bench/bench_store.py --reuse              # skip seeding if the file is already seeded

Goal on SQLite: every query < 200 ms, one record_check (10 rows) < 20 ms (medians).
`seed_bench_db(url, tenants, checks)` is reused by the dashboard bench.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from core import store  # noqa: E402
from core.engine.result import KEY_STATUSES, LEVELS, CheckResult, KeyInfo, Level, Row  # noqa: E402
from core.store import rollup  # noqa: E402
from core.store.db import connect, get_engine  # noqa: E402
from core.store.models import check_rows_t, checks_t, tenants_t  # noqa: E402

DEFAULT_URL = f"sqlite:///{ROOT / 'bench' / 'out' / 'store_bench.db'}"
SCOPES: list[tuple[str, str, str, Level]] = [
    (cat, f"{res.lower().replace(' ', '_')}_{lvl}", res, lvl)
    for cat, res in [
        ("Core", "Charges"), ("Core", "Customers"), ("Core", "Disputes"), ("Core", "Events"),
        ("Core", "Payment Intents"), ("Core", "Payouts"), ("Core", "Refunds"), ("Core", "Balance"),
        ("Billing", "Invoices"), ("Billing", "Subscriptions"), ("Billing", "Prices"), ("Billing", "Products"),
        ("Connect", "Accounts"), ("Connect", "Transfers"), ("Webhooks", "Webhook Endpoints"),
    ]
    for lvl in LEVELS[1:]
]
STATUS_WEIGHTS = [1, 3, 1, 4, 11]  # invalid, failing, incomplete, attention, healthy


def _verdict(required: str, granted: str) -> str:
    rank = {"none": 0, "read": 1, "write": 2}
    if granted == "unknown":
        return "unknown"
    if rank[granted] < rank[required]:
        return "missing"
    return "excess" if rank[granted] > rank[required] else "ok"


def seed_bench_db(
    url: str,
    tenants: int = 2000,
    checks: int = 100_000,
    *,
    rows_per_check: int = 10,
    days: int = 180,
    seed: int = 1,
    now: datetime | None = None,
) -> dict:
    """Fill an EMPTY store at `url` (migrated here) with `tenants` tenants and `checks` checks of
    `rows_per_check` rows each, spread over the last `days` days; deterministic for a given seed.

    Bulk inserts (executemany) with explicit ids, then the tenants' latest-check pointers, as record_check
    would have left them. Returns {"tenants", "checks", "rows", "seconds", "tenant_names"}.
    """
    t0 = time.perf_counter()
    rnd = random.Random(seed)
    now = now or datetime.now(timezone.utc)
    store.at(url).upgrade()
    with connect(url) as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(checks_t)).scalar():
            raise SystemExit(f"{url} already has checks; seed an empty database.")
        t_base = (conn.execute(sa.select(sa.func.max(tenants_t.c.id))).scalar() or 0) + 1
    names = [f"Bench Tenant {i:05d}" for i in range(tenants)]
    tenant_rows = [
        {"id": t_base + i, "name": n, "slug": store.slugify(n), "account": f"acct_bench{i:06d}",
         "contact": f"ops{i}@tenant{i}.test", "notes": None, "archived": i % 97 == 0,
         "created_at": now - timedelta(days=days + 1)}
        for i, n in enumerate(names)
    ]
    # each tenant: its own 10 scopes and a baseline grant per scope; each check perturbs a few
    profile = []
    for _ in range(tenants):
        picked = rnd.sample(SCOPES, min(rows_per_check, len(SCOPES)))
        while len(picked) < rows_per_check:
            picked.append(rnd.choice(SCOPES))
        profile.append([(cat, scope, res, lvl, rnd.choice(("none", "read", "write")))
                        for cat, scope, res, lvl in picked])
    span = days * 86400
    latest: dict[int, tuple[datetime, int]] = {}
    check_batch: list[dict] = []
    row_batch: list[dict] = []
    cid = 1
    engine = get_engine(url)
    with engine.execution_options(keyhealth_write=True).begin() as conn:
        conn.execute(tenants_t.insert(), tenant_rows)

        def flush():
            if check_batch:
                conn.execute(checks_t.insert(), check_batch)
                conn.execute(check_rows_t.insert(), row_batch)
                check_batch.clear()
                row_batch.clear()

        for n in range(checks):
            ti = n % tenants if n < tenants else rnd.randrange(tenants)
            tid = t_base + ti
            at = now - timedelta(seconds=rnd.randrange(span))
            status = rnd.choices(KEY_STATUSES, STATUS_WEIGHTS)[0]
            counts = {"ok": 0, "missing": 0, "excess": 0, "unknown": 0, "not_applicable": 0}
            for cat, scope, res, req, base in profile[ti] if status != "invalid" else []:
                granted = base if rnd.random() > 0.08 else rnd.choice(("none", "read", "write", "unknown"))
                verdict = _verdict(req, granted)
                counts[verdict] += 1
                row_batch.append({"check_id": cid, "scope": scope, "resource": res, "category": cat,
                                  "required": req, "granted": granted, "verdict": verdict, "reason": None})
            check_batch.append({
                "id": cid, "tenant_id": tid, "checked_at": at, "checked_by": "bench", "source": "batch",
                "key_masked": f"rk_live_…{ti % 10000:04d}", "key_fingerprint": f"{ti:064x}",
                "key_kind": "restricted", "key_mode": "live" if ti % 3 else "test",
                "account": f"acct_bench{ti:06d}", "status": status,
                "score": 0 if status == "invalid" else rnd.randrange(40, 101),
                **{f"n_{k}": v for k, v in counts.items()},
                "requests": 40, "elapsed_s": 2.5, "problem": "Key rejected." if status == "invalid" else None,
            })
            prev = latest.get(tid)
            if prev is None or (at, cid) > prev:
                latest[tid] = (at, cid)
            cid += 1
            if len(check_batch) >= 5000:
                flush()
        flush()
        t = tenants_t
        conn.execute(
            t.update().where(t.c.id == sa.bindparam("tid")).values(
                last_check_id=sa.bindparam("lcid"), last_checked_at=sa.bindparam("lat")),
            [{"tid": tid, "lcid": c, "lat": at} for tid, (at, c) in latest.items()],
        )
        if conn.dialect.name == "postgresql":
            for table in ("tenants", "checks", "check_rows"):
                conn.exec_driver_sql(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
    rollup.rebuild(store.Database(url))  # the bulk inserts bypassed record_check: fill the fleet's daily rollup
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("ANALYZE")
        else:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    with connect(url) as conn:
        n_rows = conn.execute(sa.select(sa.func.count()).select_from(check_rows_t)).scalar()
    return {"tenants": tenants, "checks": checks, "rows": n_rows, "seconds": time.perf_counter() - t0,
            "tenant_names": names}


def _median_ms(fn, repeat: int) -> float:
    fn()  # warm: first call pays for imports, statement compilation, page cache
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def run(url: str, repeat: int, records: int, names: list[str]) -> list[tuple[str, float, float, str]]:
    busiest = names[len(names) // 2]
    now = datetime.now(timezone.utc)
    queries = [
        ("latest_checks() — triage, all tenants", lambda: store.at(url).latest_checks()),
        ("latest_checks(status='failing', mode='live')", lambda: store.at(url).latest_checks("failing", "live")),
        ("latest_checks(stale_days=30, search='tenant 01')",
         lambda: store.at(url).latest_checks(stale_days=30, search="tenant 01")),
        ("tenant_history(one tenant)", lambda: store.at(url).tenant_history(busiest)),
        ("drift(one tenant)", lambda: store.at(url).drift(busiest)),
        ("status_mix_per_day() — all 180 days", lambda: store.at(url).status_mix_per_day()),
        ("status_mix_per_day(last 30 days)",
         lambda: store.at(url).status_mix_per_day(start=(now - timedelta(days=30)).date())),
        ("checks_per_day() — all 180 days", lambda: store.at(url).checks_per_day()),
        ("top_problem_scopes('missing')", lambda: store.at(url).top_problem_scopes("missing")),
        ("top_problem_scopes('excess')", lambda: store.at(url).top_problem_scopes("excess")),
        ("stale_tenants(7)", lambda: store.at(url).stale_tenants(7)),
        ("score_distribution()", lambda: store.at(url).score_distribution()),
        ("status_counts()", lambda: store.at(url).status_counts()),
        ("list_tenants()", lambda: store.at(url).list_tenants()),
    ]
    out = [(label, _median_ms(fn, repeat), 200.0) for label, fn in queries]
    rows = [Row("Core", res, scope, lvl, lvl, "ok") for cat, scope, res, lvl in SCOPES[:10]]
    i = iter(range(10**9))

    def one_record():
        n = next(i)
        res = CheckResult(key=KeyInfo("restricted", "live", "rk_live_…bnch", "f" * 64), status="healthy",
                          score=100, account="acct_bench000001", rows=rows)
        store.at(url).record_check(res, names[n % len(names)], source="cli", checked_by="bench")

    out.append((f"record_check (10 rows), median of {records}", _median_ms(one_record, records), 20.0))
    return [(label, ms, goal, "yes" if ms < goal else "**NO**") for label, ms, goal in out]


def report(url: str = DEFAULT_URL, tenants: int = 2000, checks: int = 100_000) -> str:
    """The markdown section `python -m bench` writes into the README (reuses a seeded database)."""
    names = [f"Bench Tenant {i:05d}" for i in range(tenants)]
    seeded = None
    if not (store.at(url).current_revision() and store.at(url).latest_checks(limit=1)):
        seeded = seed_bench_db(url, tenants, checks)
    lines = [f"{get_engine(url).dialect.name}, {tenants:,} tenants, {checks:,} checks (about 10 rows each); "
             "median of 7 runs per query."]
    if seeded:
        lines.append(f"Seeded {seeded['checks']:,} checks and {seeded['rows']:,} rows in {seeded['seconds']:.1f} s.")
    lines += ["", "| operation | median ms | goal ms | met |", "| --- | ---: | ---: | :---: |"]
    lines += [f"| {label} | {ms:.1f} | {goal:.0f} | {ok} |" for label, ms, goal, ok in run(url, 7, 50, names)]
    store.dispose_engine(url)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=DEFAULT_URL)
    ap.add_argument("--tenants", type=int, default=2000)
    ap.add_argument("--checks", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=7, help="timed runs per query (median)")
    ap.add_argument("--records", type=int, default=50, help="record_check calls timed (median)")
    ap.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    args = ap.parse_args(argv)
    url = args.url
    names = [f"Bench Tenant {i:05d}" for i in range(args.tenants)]
    seeded = None
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not args.reuse:
            for p in path.parent.glob(path.name + "*"):
                p.unlink()
    if not (args.reuse and store.at(url).current_revision() and store.at(url).latest_checks(limit=1)):
        seeded = seed_bench_db(url, args.tenants, args.checks)
    print(f"# Store bench — {get_engine(url).dialect.name}, {args.tenants:,} tenants, {args.checks:,} checks")
    if seeded:
        print(f"\nSeeded {seeded['checks']:,} checks and {seeded['rows']:,} rows in {seeded['seconds']:.1f} s.\n")
    results = run(url, args.repeat, args.records, names)
    print("| operation | median ms | goal ms | met |")
    print("| --- | ---: | ---: | :---: |")
    for label, ms, goal, ok in results:
        print(f"| {label} | {ms:.1f} | {goal:.0f} | {ok} |")
    store.dispose_engine(url)
    return 0 if all(ok == "yes" for *_, ok in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
