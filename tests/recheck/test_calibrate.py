"""`python -m core calibrate` against the sandbox: a sandbox that agrees with the catalogue passes, one that
disagrees on purpose is reported (never hidden), and keys come only from standard input."""
from __future__ import annotations

import json
import re
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from core import store
from core.engine.catalogue import load_catalogue
from sandbox import DEMO_KEYS, Sandbox
from sandbox.routes import API_TOML, parse_model

NONE_KEY = "rk_test_51KeyHealthCalibrateNone" + "k2L3m4" * 12
FULL_KEY = DEMO_KEYS["standard"].key  # sk_test_…, every permission, on the demo test account


@pytest.fixture(autouse=True)
def _clean(sandbox):
    sandbox.reset()
    sandbox.add_key(NONE_KEY, set(), account=DEMO_KEYS["standard"].account)
    yield
    sandbox.remove_key(NONE_KEY)


def _lines(**keys) -> str:
    return "".join(f"{run},{key}\n" for run, key in keys.items())


def _probe_paths() -> set[tuple[str, str]]:
    out = set()
    for s in load_catalogue().scopes:
        for p in (s.read, s.write):
            if p is not None:
                out.add((p.method, p.concrete_path()))
    return out


def test_an_agreeing_account_passes_with_side_effect_free_probes_only(sandbox, core_cli, tmp_path):
    db = f"sqlite:///{tmp_path / 'calibrate.db'}"
    p = core_cli("calibrate", "--json", stdin=_lines(full=FULL_KEY, none=NONE_KEY, guide=DEMO_KEYS["healthy"].key),
                 DATABASE_URL=db)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr
    out = json.loads(p.stdout)
    assert out["ok"] is True and out["mismatches"] == [] and out["problems"] == []
    assert out["runs"] == ["full", "none", "guide"] and out["guide"]["status"] == "healthy"
    assert out["requests"] == len(sandbox.requests)
    n_probes = len([1 for s in load_catalogue().scopes for p in (s.read, s.write) if p is not None])
    assert out["probes"] == 2 * n_probes
    # every probe the none key sent was refused, and the names are collected
    assert out["named_permissions"]  # the sandbox's older wording names nothing, the others do
    assert all(isinstance(v, list) for v in out["named_permissions"].values())
    # APIs gone for this account are reported, not wrong
    # (usage records are reached at their API version, so they are no longer absent)
    assert {a["scope"] for a in out["absent"]} == {"order", "sku", "balance_transfer"}
    # Stripe's own map (issue 20): asked with the full key for every probe's endpoint, set beside the catalogue
    smap = out["stripe_map"]
    assert smap["available"] is True and smap["error"] is None
    assert len(smap["entries"]) == n_probes == smap["agree"] + smap["disagree"] + smap["unresolved"]
    assert smap["requests"] == n_probes
    by = {(e["scope"], e["level"]): e for e in smap["entries"]}
    assert by[("charge", "read")]["endpoint"] == "GET /v1/charges/:id"
    assert by[("charge", "read")]["stripe"] == ["charge_read"] and by[("charge", "read")]["verdict"] == "agree"
    assert smap["disagree"] == 0 and smap["unresolved"] == 0, [e for e in smap["entries"] if e["verdict"] != "agree"]
    # only the catalogue's GET and unknown-parameter probes, the map's questions (and the guide key's check) were sent
    allowed = _probe_paths() | {("POST", "/v1/stripecli/key_permissions")}
    for rec in sandbox.requests:
        assert (rec.method, rec.path) in allowed, rec
    assert sandbox.created == [] and sandbox.writes == []
    assert FULL_KEY not in p.stdout + p.stderr and NONE_KEY not in p.stdout + p.stderr
    # the run is recorded in the audit trail, without any key
    (entry,) = store.at(db).list_audit(action="calibrate")
    assert entry["outcome"] == "ok" and "0 mismatches" in entry["detail"] and "guide key healthy" in entry["detail"]
    assert "sk_test" not in entry["detail"] and "rk_test" not in entry["detail"]


def test_the_table_names_every_probe(sandbox, core_cli):
    p = core_cli("calibrate", stdin=_lines(full=FULL_KEY, none=NONE_KEY))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr
    head = p.stdout.splitlines()[0].split()
    assert head[:5] == ["run", "scope", "level", "expected", "seen"] and "verdict" in head
    assert re.search(r"^full\s+connected_account\s+write\s+granted\s+granted\s+-\s+match$", p.stdout, re.MULTILINE)
    assert re.search(r"^none\s+connected_account\s+write\s+none\s+none\s+.*match$", p.stdout, re.MULTILINE)
    assert "OK: the catalogue matches this account" in p.stdout
    # Stripe's own map, beside the catalogue (issue 20): a summary line, informational
    n = len([1 for s in load_catalogue().scopes for q in (s.read, s.write) if q is not None])
    assert f"stripe map: {n} agree, 0 disagree, 0 unresolved" in p.stdout


@pytest.fixture
def disagreeing_sandbox():
    """A sandbox whose Stripe disagrees with the catalogue: Disputes' endpoints are gone, Events' refusals name
    another permission, and Balance is not gated at all the way the catalogue thinks (always 403 naming another)."""
    data = tomllib.loads(Path(API_TOML).read_text(encoding="utf-8"))
    resources = []
    for r in data["resource"]:
        if r["scope"] == "dispute":
            continue  # the endpoint does not exist here
        if r["scope"] == "event":
            r = {**r, "scope": "event_v2"}
        resources.append(r)
    sb = Sandbox(model=parse_model({"resource": resources}), deny_style="single")
    url = sb.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(url + "/_sandbox/health", timeout=1) as r:
                if json.loads(r.read()).get("ok"):
                    break
        except OSError:
            if time.monotonic() > deadline:
                sb.stop()
                pytest.fail("the disagreeing sandbox did not answer /_sandbox/health")
            time.sleep(0.02)  # between polls
    sb.add_key(NONE_KEY, set(), account=DEMO_KEYS["standard"].account)
    try:
        yield sb
    finally:
        sb.stop()


def test_a_disagreeing_account_is_reported_not_hidden(disagreeing_sandbox, core_cli):
    p = core_cli("calibrate", "--json", stdin=_lines(full=FULL_KEY, none=NONE_KEY),
                 STRIPE_API_BASE=disagreeing_sandbox.url)
    assert p.returncode == 1, p.stderr
    out = json.loads(p.stdout)
    assert out["ok"] is False
    assert out["requests"] == len(disagreeing_sandbox.requests)
    by = {(m["run"], m["scope"], m["level"]): m for m in out["mismatches"]}
    gone = by[("full", "dispute", "read")]
    assert (gone["expected"], gone["seen"], gone["status"]) == ("granted", "absent", 404)
    assert gone["method"] == "GET" and gone["path"] == "/v1/disputes/{id}"
    assert "Unrecognized request URL" in gone["message"]
    assert ("none", "dispute", "read") in by  # not refused either: 404, not 403
    drift = by[("none", "event", "read")]
    assert drift["named"] == ["event_v2_read"] and drift["status"] == 403
    assert {"scope": "event", "level": "read", "named": ["event_v2_read"]} in out["drift"]
    assert {"run", "scope", "level", "expected", "seen", "status", "code", "named"} <= set(drift)
    # everything else still matches: the report is exact, not noisy
    assert {k[1] for k in by} == {"dispute", "event"}
    # Stripe's map disagrees on the same two, and only there; it changes nothing else in the run (issue 20)
    smap = {(e["scope"], e["level"]): e for e in out["stripe_map"]["entries"]}
    assert smap[("event", "read")]["verdict"] == "disagree" and smap[("event", "read")]["stripe"] == ["event_v2_read"]
    assert smap[("dispute", "read")]["verdict"] == "unresolved"
    assert "Unrecognized endpoint" in smap[("dispute", "read")]["reason"]
    assert {k for k, e in smap.items() if e["verdict"] != "agree"} == {
        ("event", "read"), ("dispute", "read"), ("dispute", "write")}

    table = core_cli("calibrate", stdin=_lines(full=FULL_KEY, none=NONE_KEY), STRIPE_API_BASE=disagreeing_sandbox.url)
    assert table.returncode == 1
    assert "NOT OK" in table.stdout and "MISMATCH" in table.stdout
    assert re.search(r"^mismatch: full dispute read: GET /v1/disputes/\{id\}: status 404", table.stdout, re.MULTILINE)


@pytest.mark.parametrize(
    "stdin, words",
    [
        (_lines(full="sk_live_" + "a" * 40, none=NONE_KEY), ["'full' key", "sk_test_", "test mode"]),
        (_lines(full=FULL_KEY, none=FULL_KEY), ["'none' key", "rk_test_"]),
        (_lines(full=FULL_KEY), ["No 'none' key"]),
        ("everything," + NONE_KEY + "\n", ["Line 1", "full, none or guide"]),
        (_lines(full=FULL_KEY, none=NONE_KEY) + "none," + NONE_KEY + "\n", ["second 'none'"]),
        ("", ["No 'full' key"]),
    ],
)
def test_bad_input_is_one_sentence_and_sends_nothing(sandbox, core_cli, stdin, words):
    sandbox.clear_log()
    p = core_cli("calibrate", stdin=stdin)
    assert p.returncode == 2, p.stdout + p.stderr
    err = p.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    for w in words:
        assert w in err, (w, err)
    assert FULL_KEY not in err and NONE_KEY not in err
    assert sandbox.requests == []


def test_keys_are_never_taken_from_arguments(sandbox, core_cli):
    p = core_cli("calibrate", "full," + FULL_KEY)
    assert p.returncode == 2 and FULL_KEY not in p.stderr + p.stdout
    assert "never from arguments" in p.stderr
    assert sandbox.requests == []
