"""`python -m core check|catalogue` as a user runs them: a subprocess against the sandbox."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_process import run_core

from core.engine.catalogue import load_catalogue
from sandbox import DEMO_KEYS

ROOT = Path(__file__).resolve().parents[2]
ROW_KEYS = {"category", "resource", "scope", "required", "granted", "verdict", "fix"}


def run_cli(args, sandbox, key=None, stdin=None, tmp_path=None, extra_env=None):
    env = {k: v for k, v in os.environ.items() if k != "STRIPE_KEY"}
    env.update(STRIPE_API_BASE=sandbox.url, KEYHEALTH_RATE_TEST="200", KEYHEALTH_RATE_LIVE="200", NO_COLOR="1")
    if tmp_path is not None:
        env["KEYHEALTH_DATA_DIR"] = str(tmp_path)
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    if key is not None:
        env["STRIPE_KEY"] = key
    env.update(extra_env or {})
    return run_core(args, cwd=ROOT, env=env, input=stdin if stdin is not None else "", text=True, timeout=120)


@pytest.fixture(autouse=True)
def _clean(sandbox):
    sandbox.reset()


def test_check_json_healthy_exit_0(sandbox, tmp_path):
    p = run_cli(["check", "--json"], sandbox, key=DEMO_KEYS["healthy"].key, tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert set(out) >= {"key", "account", "status", "score", "problem", "rows", "requests", "elapsed_s"}
    assert out["key"]["kind"] == "restricted" and out["key"]["mode"] == "test"
    assert out["key"]["masked"].startswith("rk_test_…") and out["key"]["fingerprint"].startswith("fp_")
    assert out["status"] == "healthy" and out["score"] == 100 and out["problem"] is None
    assert out["account"] == DEMO_KEYS["healthy"].account
    scopes = [r["scope"] for r in out["rows"] if r["scope"]]
    assert sorted(scopes) == sorted(s.scope for s in load_catalogue().scopes)
    for r in out["rows"]:
        assert set(r) >= ROW_KEYS
        assert r["verdict"] in ("ok", "not_applicable")
    assert out["requests"] == len(sandbox.requests)
    assert DEMO_KEYS["healthy"].key not in p.stdout + p.stderr


def test_check_reads_standard_input_and_exits_1_on_failing(sandbox, tmp_path):
    p = run_cli(["check", "--json"], sandbox, stdin=f'  "{DEMO_KEYS["missing"].key}"\n', tmp_path=tmp_path)
    assert p.returncode == 1, p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == "failing"
    assert {r["scope"] for r in out["rows"] if r["verdict"] == "missing"} == {"charge", "subscription", "invoice"}


def test_check_invalid_key_exit_1_with_problem_and_no_request(sandbox, tmp_path):
    p = run_cli(["check", "--json"], sandbox, key="pk_test_" + "Z" * 30, tmp_path=tmp_path)
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert out["status"] == "invalid" and out["score"] == 0 and "publishable" in out["problem"]
    assert out["requests"] == 0 and sandbox.requests == []


def test_no_key_is_a_usage_error(sandbox, tmp_path):
    p = run_cli(["check", "--json"], sandbox, stdin="", tmp_path=tmp_path)
    assert p.returncode == 2
    assert "STRIPE_KEY" in p.stderr and "Traceback" not in p.stderr


def test_unknown_command_and_key_as_argument_are_usage_errors(sandbox, tmp_path):
    assert run_cli(["nope"], sandbox, tmp_path=tmp_path).returncode == 2
    p = run_cli(["check", DEMO_KEYS["healthy"].key], sandbox, tmp_path=tmp_path)
    assert p.returncode == 2 and sandbox.requests == []
    assert DEMO_KEYS["healthy"].key not in p.stderr + p.stdout and "never from arguments" in p.stderr


def test_readable_table(sandbox, tmp_path):
    p = run_cli(["check"], sandbox, key=DEMO_KEYS["over"].key, tmp_path=tmp_path)
    assert p.returncode == 1
    assert "ATTENTION" in p.stdout and "excess" in p.stdout and "Customers" in p.stdout
    assert "\033[" not in p.stdout  # NO_COLOR honoured
    p = run_cli(["check"], sandbox, key=DEMO_KEYS["over"].key, tmp_path=tmp_path, extra_env={"FORCE_COLOR": "1",
        "NO_COLOR": ""})
    assert "\033[33m" in p.stdout


def test_catalogue_json_lists_every_probe(sandbox, tmp_path):
    p = run_cli(["catalogue", "--json"], sandbox, tmp_path=tmp_path)
    assert p.returncode == 0
    probes = json.loads(p.stdout)
    cat = load_catalogue()
    assert len(probes) == sum((s.read is not None) + (s.write is not None) for s in cat.scopes)
    for pr in probes:
        assert {"scope", "level", "method", "path"} <= set(pr)
        assert pr["path"].startswith(("/v1/", "/v2/"))  # Accounts v2 (issue 20) lives under /v2
    assert {"scope": "charge", "level": "read", "method": "GET", "path": "/v1/charges/{id}"}.items() <= next(
        p for p in probes if p["scope"] == "charge" and p["level"] == "read"
    ).items()


def test_recheck_records_every_line_and_reports_bad_ones(sandbox, tmp_path):
    h, m = DEMO_KEYS["healthy"].key, DEMO_KEYS["missing"].key
    lines = "\n".join([
        "tenant,key",
        f"Acme Ltd,{h}",
        f'"Beta, Inc.",{m}',
        "no comma on this line",
        f",{h}",
        "Gamma," + "pk_test_" + "Q" * 30,
        f"Delta,{h},extra",
        "",
    ])
    p = run_cli(["recheck", "--csv", "-", "--json"], sandbox, stdin=lines, tmp_path=tmp_path)
    assert p.returncode == 1, p.stderr
    out = json.loads(p.stdout)
    assert out["recorded"] == 3
    assert [f["line"] for f in out["failed_lines"]] == [4, 5, 7]
    assert all(f["problem"].endswith(".") for f in out["failed_lines"])
    assert [(r["tenant"], r["status"]) for r in out["results"]] == [
        ("Acme Ltd", "healthy"), ("Beta, Inc.", "failing"), ("Gamma", "invalid")
    ]
    assert h not in p.stdout + p.stderr and m not in p.stdout + p.stderr
    hist = json.loads(run_cli(["history", "--tenant", "Beta, Inc.", "--json"], sandbox, tmp_path=tmp_path).stdout)
    assert hist["checks"][0]["status"] == "failing" and hist["checks"][0]["source"] == "batch"


def test_check_tenant_then_history_shows_drift(sandbox, tmp_path):
    for name in ("healthy", "missing"):
        p = run_cli(["check", "--tenant", "Acme Ltd", "--json"], sandbox, key=DEMO_KEYS[name].key, tmp_path=tmp_path)
        assert p.returncode in (0, 1), p.stderr
    p = run_cli(["history", "--tenant", "Acme Ltd", "--json"], sandbox, tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["tenant"]["name"] == "Acme Ltd" and out["tenant"]["slug"] == "acme-ltd"
    assert out["tenant"]["account"] == DEMO_KEYS["missing"].account
    assert [c["status"] for c in out["checks"]] == ["failing", "healthy"]
    assert {"checked_at", "status", "score", "masked", "mode", "account", "source"} <= set(out["checks"][0])
    # two different keys: a replacement, so not drift; the differences are the changes with the new key
    assert out["drift"] == [] and len(out["key_events"]) == 1
    changed = {d["scope"]: (d["from_granted"], d["to_granted"], d["to_verdict"]) for d in out["new_key_changes"]}
    assert changed == {
        "charge": ("write", "read", "missing"),
        "subscription": ("write", "none", "missing"),
        "invoice": ("write", "none", "missing"),
    }
    for d in out["new_key_changes"]:
        assert {"at", "scope", "resource", "from_granted", "to_granted", "from_verdict", "to_verdict", "from_key",
                "to_key"} == set(d)
    text = run_cli(["history", "--tenant", "Acme Ltd"], sandbox, tmp_path=tmp_path).stdout
    assert "changes with the new key" in text and "Charges and Refunds: write → read" in text


def test_history_unknown_tenant_and_bad_tenant_name(sandbox, tmp_path):
    p = run_cli(["history", "--tenant", "Nobody", "--json"], sandbox, tmp_path=tmp_path)
    assert p.returncode == 2 and "No tenant named" in p.stderr and "Traceback" not in p.stderr
    p = run_cli(["check", "--tenant", "bad\tname", "--json"], sandbox, key=DEMO_KEYS["healthy"].key, tmp_path=tmp_path)
    assert p.returncode == 2 and "control character" in p.stderr and sandbox.requests == []

