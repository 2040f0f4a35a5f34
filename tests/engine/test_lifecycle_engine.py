"""Issue 12 against the sandbox: Stripe unreachable (before and during a sweep), a replaced key, and tenant
messages that never claim more than the result holds. Real SDK, real HTTP, no monkeypatching."""
from __future__ import annotations

import json
import socket
import time
from dataclasses import replace

import pytest
import stripe
from cli_process import run_core
from support import fast_probe

from core import store
from core.engine.catalogue import load_catalogue, load_profile
from core.engine.check import check_key
from core.engine.remediation import tenant_message
from core.engine.result import CheckResult, KeyInfo, KeyLifecycle, Row
from core.engine.settings import ProbeSettings
from sandbox import DEMO_KEYS, Sandbox


def _client(url: str, timeout: float = 2.0) -> stripe.StripeClient:
    return stripe.StripeClient("sk_unused", base_addresses={"api": url, "files": url}, max_network_retries=0,
                               http_client=stripe.RequestsClient(timeout=timeout))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_sandbox_that_is_not_listening_is_unreachable_at_once():
    settings = ProbeSettings()  # the real defaults: 3 retries, 0.25 s first backoff
    port = _free_port()
    started = time.monotonic()
    r = check_key(DEMO_KEYS["healthy"].key, client=_client(f"http://127.0.0.1:{port}"), settings=settings)
    took = time.monotonic() - started
    assert r.status == "unreachable"
    assert took < 5, f"took {took:.1f} s"
    assert r.requests <= settings.retries + 1, "at most the first probe's tries"
    assert r.problem.startswith(f"This server cannot reach 127.0.0.1:{port}: connection refused.")
    assert "not the tenant's key" in r.problem
    assert r.rows == [] and r.message is None
    j = r.to_json()
    assert j["status"] == "unreachable" and j["score"] is None and j["message"] is None


def test_a_sandbox_that_dies_mid_sweep_stops_after_the_bounded_failures():
    settings = ProbeSettings(rate_test=300, rate_live=300, concurrency=4, retries=3, backoff_s=0.01, timeout_s=2.0,
                             max_network_failures=5)
    sb = Sandbox(port=0)
    url = sb.start()
    sb.faults.latency(0.02)  # slow enough that the sweep is still going when the sandbox dies
    settled_at_death: list[int] = []
    seen: list[str] = []

    def on_progress(row, done, total):
        seen.append(row.verdict)
        if done == 12 and not settled_at_death:
            settled_at_death.append(len(sb.requests))
            settled_at_death.append(sum(v in ("ok", "missing", "excess") for v in seen))
            sb.stop()

    try:
        r = check_key(DEMO_KEYS["healthy"].key, client=_client(url), settings=settings, on_progress=on_progress)
    finally:
        sb.stop()
    served = settled_at_death[0]
    settled = [x for x in r.rows if x.verdict in ("ok", "missing", "excess")]
    unknown = [x for x in r.rows if x.verdict == "unknown"]
    assert r.status == "unreachable"  # our network, not the key (issue 17.3): never "incomplete"
    assert "stopped answering partway" in r.problem
    assert "connection refused" in r.problem or "closed without an answer" in r.problem, r.problem
    assert settled_at_death[1] >= 8 and len(settled) >= settled_at_death[1], "the rows settled before stand"
    assert all(x.verdict == "ok" for x in settled)
    assert len(unknown) > 20
    # bounded: the consecutive failures, plus what the other workers had in flight; not 4 tries per remaining scope
    unanswered = r.requests - served
    assert unanswered <= settings.max_network_failures + 2 * settings.concurrency, unanswered
    assert unanswered < len(unknown) * (settings.retries + 1) / 4
    assert any("Stripe did not answer" in (x.reason or "") for x in unknown)
    assert r.message is None and r.create_link is None  # nothing for the tenant: it is not their key


def test_live_key_replaced_by_a_test_key_of_another_account(sandbox, make_service, tmp_path):
    sandbox.reset()
    url = f"sqlite:///{tmp_path / 'lc.db'}"
    fast = fast_probe(timeout_s=2.0)
    svc = make_service(url, who="t", probe=fast)
    live = svc.check(DEMO_KEYS["live_healthy"].key, "Harbor & Pine", source="cli").result
    svc.set_expected_mode("Harbor & Pine", "live")
    test = svc.check(DEMO_KEYS["missing"].key, "Harbor & Pine", source="cli").result
    assert live.account != test.account
    events = store.at(url).key_events("Harbor & Pine")
    assert len(events) == 1
    assert (events[0]["old_masked"], events[0]["new_masked"]) == (live.key.masked, test.key.masked)
    assert events[0]["mode_changed"] and events[0]["account_changed"]
    assert store.at(url).drift("Harbor & Pine") == [], "a replaced key is not drift"
    assert store.at(url).drift("Harbor & Pine", new_key=True), "the changes with the new key are their own list"
    lc = test.lifecycle
    assert lc.replaced == live.key.masked and lc.mode_changed and lc.account_changed and lc.mode_mismatch
    assert test.to_json()["lifecycle"]["account_changed"] is True
    (row,) = store.at(url).latest_checks()
    assert row["mode_changed"] and row["account_changed"] and row["key_replaced"] and row["mode_mismatch"]


# --- tenant messages never claim more than was observed ------------------------------------------------------
def _row(verdict: str, granted: str = "write", required: str = "write") -> Row:
    return Row("Core", f"R{verdict}", f"s_{verdict}", required, granted, verdict)  # type: ignore[arg-type]


def _result(status: str, rows: list[Row], **kw) -> CheckResult:
    key = KeyInfo("restricted", "live", "rk_live_…ab12", "fp1")
    return CheckResult(key=key, status=status, score=50, rows=rows, **kw)  # type: ignore[arg-type]


CASES = {
    "healthy": (_result("healthy", [_row("ok"), _row("ok")]), ["exactly the permissions"]),
    "attention": (_result("attention", [_row("ok"), _row("excess", "write", "none")]), ["Pointai does not use it"]),
    "failing": (_result("failing", [_row("ok"), _row("missing", "read")]), ["Write (now Read)"]),
    "incomplete, some settled": (_result("incomplete", [_row("ok"), _row("unknown", "unknown")]),
                                 ["the 1 permissions we could check are right", "could not check 1 more"]),
    "incomplete, failing part": (_result("incomplete", [_row("missing", "read"), _row("unknown", "unknown")]),
                                 ["Write (now Read)", "could not check 1 more"]),
    "incomplete, nothing settled": (_result("incomplete", [_row("unknown", "unknown")]), None),
    "invalid": (_result("invalid", [], problem="Stripe does not accept this live key."),
                ["Create a new restricted key with this link", "paste it into Pointai"]),
    "unreachable": (_result("unreachable", [], problem="This server cannot reach api.stripe.com: connection refused."),
                    None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_every_status_message_matches_what_the_result_holds(name):
    result, must = CASES[name]
    msg = tenant_message(result, load_profile(), load_catalogue())
    if must is None:
        assert msg is None, "nothing observed: no message for the tenant"
        return
    assert msg is not None
    for words in must:
        assert words in msg, (words, msg)
    settled = [r for r in result.rows if r.verdict in ("ok", "missing", "excess")]
    unknown = [r for r in result.rows if r.verdict == "unknown"]
    if unknown or result.status != "healthy":
        assert "exactly the permissions" not in msg and "Nothing to change" not in msg
    if result.status == "invalid":
        assert "accept" not in msg.split(":")[0], "never says Stripe accepted a refused key"
        assert result.problem not in msg, "support's problem is not the tenant's message (issue 19.1)"
    if unknown:
        assert "every permission" not in msg
    if not settled:
        assert "could check" not in msg
    assert "rotating" not in msg and "account is live" not in msg


def test_lifecycle_lines_are_gentle_and_only_when_true():
    base = replace(_result("healthy", [_row("ok")]), key=KeyInfo("restricted", "test", "rk_test_…ab12", "fp1"),
                   lifecycle=KeyLifecycle(age_days=200, rotation_days=180, rotation_due=True))
    msg = tenant_message(base, load_profile(), load_catalogue())
    assert "in use for 200 days" in msg and "nothing is broken" in msg
    assert msg.rstrip().endswith("Thank you!")
    # a test key on a tenant in production: one clear line asking for the live key, in live mode only
    base = replace(base, lifecycle=KeyLifecycle(age_days=200, rotation_days=180, rotation_due=True,
                                                expected_mode="live", mode_mismatch=True))
    msg = tenant_message(base, load_profile(), load_catalogue())
    assert "test-mode key; Pointai needs your live key" in msg and "rk_live_" in msg and "rk_test_" not in msg
    base = replace(base, lifecycle=KeyLifecycle(age_days=20, rotation_days=180))
    msg = tenant_message(base, load_profile(), load_catalogue())
    assert "rotating" not in msg and "test-mode" not in msg


# --- the CLI -------------------------------------------------------------------------------------------------
def _cli(args, api_base, tmp_path, key=None, stdin=""):
    import os
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "STRIPE_KEY"}
    env.update(STRIPE_API_BASE=api_base, KEYHEALTH_RATE_TEST="300", KEYHEALTH_RATE_LIVE="300", NO_COLOR="1",
               KEYHEALTH_DATA_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
               KEYHEALTH_BACKOFF_S="0.01")
    if key is not None:
        env["STRIPE_KEY"] = key
    return run_core(args, cwd=Path(__file__).resolve().parents[2], env=env, input=stdin, text=True, timeout=120,
                    check=False)


def test_cli_unreachable_is_its_own_status_and_exit_code(tmp_path):
    api = f"http://127.0.0.1:{_free_port()}"
    p = _cli(["check", "--json", "--tenant", "Acme"], api, tmp_path, key=DEMO_KEYS["healthy"].key)
    assert p.returncode == 4, p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == "unreachable" and out["score"] is None and out["message"] is None
    assert "cannot reach 127.0.0.1" in out["problem"]
    p = _cli(["check"], api, tmp_path, key=DEMO_KEYS["healthy"].key)
    assert p.returncode == 4 and "UNREACHABLE" in p.stdout and "no score" in p.stdout
    h = json.loads(_cli(["history", "--tenant", "Acme", "--json"], api, tmp_path).stdout)
    assert [c["status"] for c in h["checks"]] == ["unreachable"] and h["checks"][0]["score"] is None
    # a batch stops at the first unreachable line instead of waiting out every key's retries
    csv = f"A,{DEMO_KEYS['healthy'].key}\nB,{DEMO_KEYS['missing'].key}\nC,{DEMO_KEYS['over'].key}\n"
    p = _cli(["recheck", "--csv", "-", "--json", "--concurrency", "1"], api, tmp_path, stdin=csv)
    assert p.returncode == 4, p.stderr
    rep = json.loads(p.stdout)
    assert rep["recorded"] == 1 and [f["line"] for f in rep["failed_lines"]] == [2, 3]
    assert "cannot reach" in rep["unreachable"] and rep["results"][0]["score"] is None


def test_cli_history_shows_the_replacement(sandbox, tmp_path):
    sandbox.reset()
    for key in (DEMO_KEYS["live_healthy"].key, DEMO_KEYS["healthy"].key):
        _cli(["check", "--tenant", "Acme"], sandbox.url, tmp_path, key=key)
    h = json.loads(_cli(["history", "--tenant", "Acme", "--json"], sandbox.url, tmp_path).stdout)
    assert len(h["key_events"]) == 1 and h["key_events"][0]["mode_changed"] and h["drift"] == []
    text = _cli(["history", "--tenant", "Acme"], sandbox.url, tmp_path).stdout
    assert "key replaced" in text and "mode changed" in text and "account changed" in text
