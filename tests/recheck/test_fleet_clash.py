"""Issue 18, item 1: a fleet line whose tenant name clashes with another tenant's (punctuation only, or letters that
look the same on screen) is refused before any request, with the sentence the dashboard and `check` give.

Everything runs against the sandbox over real HTTP with the real SDK; the sandbox's request log is the witness.
"""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from test_fleet import _service, add_keys, cli, source_script

from core import store
from core.features.fleet import FleetOptions, run_fleet
from core.features.recheck import BatchLine
from core.store import StoreInputError
from sandbox.server import key_id

CYRILLIC = "\u0410\u0441me Ltd"  # "Асme Ltd": a Cyrillic A and es, reads "Acme Ltd"


def _requests_for(sb, key: str) -> int:
    kid = key_id(key)
    return sum(1 for r in sb.requests if r.key_id == kid)


def test_a_clashing_line_sends_no_request_and_says_the_dashboards_sentence(sandbox, tmp_path):
    sandbox.reset()
    pairs = add_keys(sandbox, 4, "Clash")
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    svc = _service(url, sandbox, rate_test=200)
    svc.store.get_or_create_tenant("Acme Inc.")
    svc.store.get_or_create_tenant("Acme Ltd")
    close = svc.store.name_clash("Acme Inc")  # what the Check page and `check --tenant` refuse with
    alike = svc.store.name_clash(CYRILLIC)
    assert close and alike
    entries = [BatchLine(1, pairs[0][0], pairs[0][1]), BatchLine(2, "Acme Inc", pairs[1][1]),
               BatchLine(3, CYRILLIC, pairs[2][1]), BatchLine(4, pairs[3][0], pairs[3][1])]
    sandbox.clear_log()
    rep = run_fleet(svc, entries, FleetOptions(concurrency=4))
    assert _requests_for(sandbox, pairs[1][1]) == 0 and _requests_for(sandbox, pairs[2][1]) == 0
    assert _requests_for(sandbox, pairs[0][1]) > 0 and _requests_for(sandbox, pairs[3][1]) > 0
    assert rep.failed_lines == [{"line": 2, "problem": close}, {"line": 3, "problem": alike}]
    assert [r["line"] for r in rep.results] == [1, 4] and rep.recorded == 2
    by_line = {x.line: x for x in rep.lines}  # the typed line results behind the report's JSON
    assert sorted(by_line) == [1, 2, 3, 4]
    assert by_line[2].result is None and by_line[2].check_id is None and by_line[2].problem == close
    assert by_line[1].check_id is not None and by_line[1].result is not None and by_line[1].to_json() == rep.results[0]
    seen = len(sandbox.requests)  # the refused lines count no request either
    assert rep.requests - rep.no_answer <= seen <= rep.requests, (rep.requests, rep.no_answer, seen)
    items = {i["tenant"]: i for i in svc.store.run_items(rep.run["id"])}
    assert items["Acme Inc"]["state"] == "failed" and items["Acme Inc"]["problem"] == close
    assert {t["name"] for t in svc.store.list_tenants()} == {"Acme Inc.", "Acme Ltd", pairs[0][0], pairs[3][0]}


def test_a_key_source_line_that_clashes_is_refused_before_any_request(sandbox, tmp_path):
    """The same through `recheck --keys-from` (a key source), as support runs it."""
    sandbox.reset()
    pairs = add_keys(sandbox, 2, "SrcClash")
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    _service(url, sandbox).store.get_or_create_tenant("Acme Ltd")
    src = source_script(tmp_path, [pairs[0], (CYRILLIC, pairs[1][1])])
    sandbox.clear_log()
    p = cli(["recheck", "--keys-from", src, "--json"], sandbox, tmp_path, db_url=url)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    rep = json.loads(p.stdout)
    assert _requests_for(sandbox, pairs[1][1]) == 0 and _requests_for(sandbox, pairs[0][1]) > 0
    assert [f["line"] for f in rep["failed_lines"]] == [2]
    problem = rep["failed_lines"][0]["problem"]
    assert "looks the same on screen as the existing tenant 'Acme Ltd'" in problem
    assert not problem.startswith("The check ran")
    assert rep["recorded"] == 1


def test_service_check_refuses_a_clash_before_any_request_only_when_it_would_record(sandbox, tmp_path):
    """Service.check's docstring: with record=True (or "later") a clashing name is refused (StoreInputError, the
    dashboard's sentence) before any request; record=False checks the key without saving, so the name is only
    read against history; a database that cannot say leaves the check to run."""
    sandbox.reset()
    (_, key), = add_keys(sandbox, 1, "SvcClash")
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    svc = _service(url, sandbox, rate_test=200)
    svc.store.get_or_create_tenant("Acme Inc.")
    close = svc.store.name_clash("Acme Inc")
    sandbox.clear_log()
    for record in (True, "later"):
        with pytest.raises(StoreInputError) as ei:
            svc.check(key, "Acme Inc", source="cli", record=record)
        assert str(ei.value) == close
    assert _requests_for(sandbox, key) == 0
    assert svc.check(key, "Acme Inc", record=False).result.status == "healthy" and _requests_for(sandbox, key) > 0
    with store.get_engine(url).begin() as conn:  # the tenants can no longer be read: the clash cannot be asked
        conn.execute(sa.text("ALTER TABLE tenants RENAME TO tenants_gone"))
    checked = svc.check(key, "Acme Inc", source="cli")
    assert checked.result.status == "healthy" and not checked.saved and checked.save_problem
