"""A full sweep against the sandbox at 100 ms latency: requests, wall time, and the ratio to the pacing bound.

The bound is requests ÷ rate: no sweep paced at `rate` can finish faster. Goal: within 1.2× of it,
and at most one request per scope the key does not have (read-first).
"""
from __future__ import annotations

import statistics

from core.engine.catalogue import load_catalogue
from core.engine.check import check_key
from core.engine.probe import client_for
from core.engine.settings import ProbeSettings
from sandbox import DEMO_KEYS, Sandbox

LATENCY_S = 0.100
RUNS = 3


def _sweep(sb: Sandbox, name: str, settings: ProbeSettings) -> dict:
    client = client_for(sb.url, settings.timeout_s)  # the client the product uses
    demo = DEMO_KEYS[name]
    walls, result = [], None
    for _ in range(RUNS):
        sb.clear_log()
        result = check_key(demo.key, client=client, settings=settings)
        walls.append(result.elapsed_s)
    assert result is not None and result.status == "healthy", result and result.status
    none_scopes = {r.scope for r in result.rows if r.scope and r.granted == "none"}
    per_path: dict[str, int] = {}
    for rec in sb.requests:
        per_path[rec.path] = per_path.get(rec.path, 0) + 1
    cat = load_catalogue()
    worst_none = max(
        per_path.get(probe.concrete_path(), 0) for s in none_scopes if (probe := cat.get(s).read) is not None
    )
    rate = settings.rate_for("live" if demo.mode == "live" else "test")
    bound = result.requests / rate
    wall = statistics.median(walls)
    return {
        "key": f"{name} ({demo.mode})",
        "scopes": len(cat.scopes),
        "requests": result.requests,
        "rate": rate,
        "bound": bound,
        "wall": wall,
        "ratio": wall / bound,
        "none_scopes": len(none_scopes),
        "worst_none": worst_none,
    }


def report() -> str:
    settings = ProbeSettings()  # the shipped defaults: 20/s test, 25/s live, 8 workers
    with Sandbox(latency_s=LATENCY_S) as sb:
        sb.start()
        rows = [_sweep(sb, "healthy", settings), _sweep(sb, "live_healthy", settings)]
    lines = [
        f"Full sweep against the sandbox at {int(LATENCY_S * 1000)} ms latency per request, shipped defaults "
        f"(median of {RUNS}). Bound = requests ÷ rate.",
        "",
        "| key | scopes | requests | rate (req/s) | bound (s) | wall (s) | wall ÷ bound | None scopes | max requests "
        "per None scope |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['key']} | {r['scopes']} | {r['requests']} | {r['rate']:.0f} | {r['bound']:.2f} | {r['wall']:.2f} | "
            f"{r['ratio']:.2f}× | {r['none_scopes']} | {r['worst_none']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
