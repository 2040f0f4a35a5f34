"""Dashboard pages benchmark: how long one run of each page takes on a 2,000-tenant database.

    .venv/bin/python bench/bench_pages.py                 # seeds bench/out/pages_bench.db once, then times
    .venv/bin/python bench/bench_pages.py --fresh         # re-seed
    .venv/bin/python -m bench pages                       # the same, as part of `make bench`

Each page runs through the real router (app.py) with Streamlit's AppTest, in real mode against the bench
database (DATABASE_URL); the first run of every page is a warm-up, then `--runs` reruns are timed.
Goal: every page under 1 s (median). The database is built with bench_store.seed_bench_db.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DB_PATH = ROOT / "bench" / "out" / "pages_bench.db"
TENANTS = 2000
CHECKS = 40_000  # 20 per tenant on average
GOAL_S = 1.0

PAGES = [
    ("Check a key", "pages/check.py", {}, False),
    ("Check a key, with a result", "pages/check.py", {}, True),
    ("Triage (2,000 tenants)", "pages/triage.py", {}, False),
    ("Tenant", "pages/tenant.py", {"tenant": "bench-tenant-00042"}, False),
    ("Fleet health", "pages/fleet.py", {}, False),
    ("About", "pages/about.py", {}, False),
]


def ensure_db(fresh: bool = False) -> tuple[str, float | None]:
    """The bench database's URL, seeded if needed; and the seeding time (None when reused)."""
    from bench.bench_store import seed_bench_db

    url = f"sqlite:///{DB_PATH}"
    if fresh or not DB_PATH.exists():
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(DB_PATH) + suffix)
            if p.exists():
                p.unlink()
        DB_PATH.parent.mkdir(parents=True, exist_ok=True)
        info = seed_bench_db(url, TENANTS, CHECKS, days=120)
        return url, info["seconds"]
    return url, None


def sample_result():
    """A check result with the real catalogue's rows (missing, excess and unknown ones), for the grid."""
    from core.demo import DemoKey, ideal_grants, synthetic_result, with_excess, with_missing
    from core.engine.catalogue import load_catalogue, load_profile

    cat, prof = load_catalogue(), load_profile()
    rng = random.Random(7)
    grants = with_excess(with_missing(ideal_grants(cat, prof), cat, prof, 3, rng), cat, prof, 4, rng)
    return synthetic_result(grants, key=DemoKey.new(rng, "live").info(), account="acct_1Bench", unknown=2,
                            checked_at=datetime.now(timezone.utc), rng=rng)


def time_page(page: str, query: dict, with_result: bool, runs: int) -> dict:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    if with_result:
        at.session_state["kh_result"] = sample_result()
        at.session_state["kh_result_tenant"] = "Bench Tenant 00042"
    at.query_params.update(query)
    at.switch_page(page)
    t0 = time.perf_counter()
    at.run()
    first = time.perf_counter() - t0
    if at.exception:
        raise RuntimeError(f"{page} raised: {at.exception[0].value}")
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
    rows = sum(len(d.value) for d in at.dataframe)
    return {"first": first, "median": statistics.median(times), "max": max(times), "rows": rows,
            "charts": len(at.get("plotly_chart"))}


def run(runs: int = 7, fresh: bool = False) -> str:
    """Seed (once) and time every page; returns the markdown table."""
    url, seeded = ensure_db(fresh)
    saved = {k: os.environ.get(k) for k in ("DATABASE_URL", "KEYHEALTH_DEMO")}
    os.environ["DATABASE_URL"] = url
    os.environ["KEYHEALTH_DEMO"] = "0"
    try:
        results = [(title, time_page(page, q, res, runs)) for title, page, q, res in PAGES]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    lines = [
        f"AppTest runs through app.py on SQLite with {TENANTS:,} tenants and {CHECKS:,} checks "
        f"({CHECKS * 10:,} permission rows); median of {runs} reruns after a first run. Goal: < {GOAL_S:.0f} s.",
        "",
        "| page | first run | median | max | table rows | charts | goal |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for title, r in results:
        ok = "ok" if r["median"] < GOAL_S else "SLOW"
        lines.append(
            f"| {title} | {r['first'] * 1000:.0f} ms | {r['median'] * 1000:.0f} ms | {r['max'] * 1000:.0f} ms "
            f"| {r['rows']:,} | {r['charts']} | {ok} |"
        )
    if seeded is not None:
        lines += ["", f"Seeding the bench database took {seeded:.1f} s."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--fresh", action="store_true", help="re-seed the bench database")
    args = ap.parse_args(argv)
    print(run(args.runs, args.fresh))
    return 0


if __name__ == "__main__":
    sys.exit(main())
