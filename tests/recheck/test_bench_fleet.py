"""bench_fleet measures the recheck as its own process (CPU from its rusage, start-up included) against the
requests the sandbox logged."""
from __future__ import annotations

from bench.bench_fleet import _start_sandbox, bench_keys, recheck_process


def test_recheck_process_counts_the_sandboxs_requests_and_the_whole_process_cpu(tmp_path):
    keys = bench_keys(2)
    proc, url = _start_sandbox(2)
    try:
        r = recheck_process(url, keys, str(tmp_path))
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=30)
    assert r["rc"] == 0 and r["report"]["recorded"] == 2
    assert r["logged"] >= 2 * 70  # every scope of both keys, as the sandbox saw them
    assert r["logged"] == r["report"]["run"]["requests"]
    # the process's start-up (imports alone take a few hundred ms) is in the figure: more than 0.1 s in all
    assert r["cpu"] > 0.1
    assert r["r429"] == 0
