"""The benchmarks' bulk seeding (bench/seed.py) leaves exactly what record_check would have left.

A tiny plan is seeded in bulk into one SQLite file and replayed check by check through record_check (and
update_tenant for what support edits) into another; every table record_check writes must match.
"""
from __future__ import annotations

import sqlalchemy as sa

from bench import seed as bench_seed
from core import store
from core.engine.result import CheckResult, KeyInfo, Row
from core.store.db import connect, dispose_engine
from core.store.models import check_rows_t, checks_t, key_events_t, stripe_keys_t, tenants_t

TENANT_COLS = ["id", "name", "slug", "account", "contact", "notes", "archived", "last_check_id", "last_checked_at",
               "expected_mode", "last_summary", "broken_since", "last_healthy_at", "worse_at", "last_account_changed"]


def _dump(url: str) -> dict[str, list[tuple]]:
    with connect(url) as conn:
        out = {
            "tenants": [tuple(r) for r in conn.execute(
                sa.select(*(tenants_t.c[n] for n in TENANT_COLS)).order_by(tenants_t.c.id))],
            "checks": [tuple(r) for r in conn.execute(sa.select(checks_t).order_by(checks_t.c.id))],
            "check_rows": [tuple(r) for r in conn.execute(sa.select(check_rows_t).order_by(check_rows_t.c.id))],
            "stripe_keys": [tuple(r) for r in conn.execute(sa.select(stripe_keys_t).order_by(stripe_keys_t.c.id))],
            "key_events": [tuple(r) for r in conn.execute(sa.select(key_events_t).order_by(key_events_t.c.id))],
        }
    dispose_engine(url)
    return out


def _replay(url: str, plan: bench_seed.Plan) -> None:
    s = store.at(url)
    s.upgrade()
    for t in plan.tenant_rows():  # created in order, so the ids are the bulk load's
        s.get_or_create_tenant(t["name"])
        s.update_tenant(t["name"], contact=t["contact"], archived=t["archived"], expected_mode=t["expected_mode"])
    for ti, ch, rows in plan.stream():
        result = CheckResult(
            key=KeyInfo(ch["key_kind"], ch["key_mode"], ch["key_masked"], ch["key_fingerprint"]),
            status=ch["status"], score=ch["score"], problem=ch["problem"], account=ch["account"],
            rows=[Row(cat, res, scope, req, granted, v) for scope, res, cat, req, granted, v in rows],
            requests=ch["requests"], elapsed_s=ch["elapsed_s"], refused=ch["refused"], checked_at=ch["checked_at"],
        )
        s.record_check(result, bench_seed.tenant_name(ti), source=ch["source"], checked_by=ch["checked_by"])


def test_bulk_seed_equals_record_check(tmp_path, monkeypatch):
    hooked: list[str] = []
    monkeypatch.setattr(bench_seed, "_after_seed", hooked.append)
    plan = bench_seed.Plan(tenants=20, checks=240, days=30, seed=3, unreachable=0.05)
    bulk, replay = f"sqlite:///{tmp_path / 'bulk.db'}", f"sqlite:///{tmp_path / 'replay.db'}"

    info = bench_seed.seed(bulk, plan)
    _replay(replay, plan)
    got, want = _dump(bulk), _dump(replay)

    assert hooked == [bulk]  # the rollup hook ran once, on the seeded database
    assert info["checks"] == len(got["checks"]) == 240
    assert info["rows"] == len(got["check_rows"]) > 240
    # the plan exercises what the lifecycle queries join: replacements, several keys, unreachable checks
    assert info["events"] == len(got["key_events"]) > 0
    assert len(got["stripe_keys"]) > 20
    assert {c[10] for c in got["checks"]} >= {"unreachable", "invalid", "healthy"}
    for table in ("tenants", "checks", "check_rows", "stripe_keys", "key_events"):
        assert got[table] == want[table], table
    # 0015: the summaries and streaks are there to compare (a short problem, a streak, a last healthy check)
    assert {t[10] for t in got["tenants"]} - {None} and {t[11] for t in got["tenants"]} - {None}
    assert {t[12] for t in got["tenants"]} - {None} and any(t[14] for t in got["tenants"])
    # every tenant points at its newest check that is not unreachable
    by_tenant: dict[int, tuple] = {}
    for c in got["checks"]:
        if c[10] != "unreachable":
            by_tenant[c[1]] = c
    assert {t[0]: t[7] for t in got["tenants"]} == {tid: c[0] for tid, c in by_tenant.items()}
    assert len(by_tenant) == 20


def test_bulk_seed_fills_the_daily_rollup(tmp_path):
    """The seeding hook fills the fleet's daily rollup (0008) as record_check would have kept it."""
    from core.store import rollup

    plan = bench_seed.Plan(tenants=20, checks=240, days=30, seed=3, unreachable=0.05)
    bulk, replay = f"sqlite:///{tmp_path / 'bulk.db'}", f"sqlite:///{tmp_path / 'replay.db'}"
    bench_seed.seed(bulk, plan)
    _replay(replay, plan)

    def rollups(url: str) -> dict[str, list[tuple]]:
        with connect(url) as conn:
            out = {  # rows whose counters went back to 0 may stay (readers ignore them)
                tbl.name: sorted(tuple(r) for r in conn.execute(sa.select(tbl)) if any(isinstance(v, int)
                                 and not isinstance(v, bool) and v for v in r))
                for tbl in (rollup.rollup_days, rollup.rollup_status)
            }
        dispose_engine(url)
        return out

    got, want = rollups(bulk), rollups(replay)
    assert got["rollup_days"] and got["rollup_status"]
    assert got == want
