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


def test_two_workers_share_one_run_on_postgresql_each_tenant_once(tmp_path, postgres):
    import uuid

    import sqlalchemy as sa

    from bench.bench_fleet import _fresh_pg, workers_process
    from core.store.db import dispose_engine, normalize_url

    base, name = postgres.rsplit("/", 1)[0], f"kh_{uuid.uuid4().hex[:16]}"
    keys = bench_keys(4)
    proc, url = _start_sandbox(4)
    try:
        db_url = _fresh_pg(base, name)
        r = workers_process(url, keys, str(tmp_path), db_url, 2)
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=30)
        dispose_engine(f"{base}/{name}")
        admin = sa.create_engine(normalize_url(f"{base}/postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    assert len(r["recorded"]) == 2 and sum(r["recorded"]) == 4  # every tenant once, between the two workers
    assert r["logged"] >= 4 * 70 and r["r429"] == 0 and r["cpu"] > 0.2


def test_the_bench_counts_the_statements_of_a_known_tenants_check(tmp_path):
    """bench_fleet's statements figure: the SQL one recorded check of a known tenant sends (at most 8, as
    tests/service/test_unit_of_work.py holds), counted on a check that really ran."""
    from bench.bench_fleet import _service, statements_per_check

    keys = bench_keys(1)
    proc, url = _start_sandbox(1)
    try:
        svc = _service(url, f"sqlite:///{tmp_path / 'count.db'}")
        tenant, key, _ = keys[0]
        assert svc.check(key, tenant, source="cli").saved  # now a known tenant
        n = statements_per_check(svc, key, tenant)
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=30)
    assert 3 <= n <= 8
