"""Verify integration (core/features/verify.py and app_pages/verify.py) against the project's Stripe sandbox: one
action runs the check, the sample data and (test keys) the sample transaction through the service, each recorded
and audited, and gives one summary for the ticket and one message for the tenant."""
from __future__ import annotations

import re

import pytest
from apptest import AppTest

from core.features.verify import verify_integration
from core.ui.text import plain
from sandbox import DEMO_KEYS

TENANT = "Acme Coffee Roasters"


def charges(sandbox) -> list[dict]:
    return [o for o in sandbox.created if o.get("object") == "charge"]


@pytest.fixture
def svc(make_service, tmp_path, sandbox):
    sandbox.reset()
    return make_service(f"sqlite:///{tmp_path / 'verify.db'}", who="ana@pointai.example")


def test_test_key_runs_check_sample_and_transaction_and_audits_each(svc, sandbox):
    v = verify_integration(svc, DEMO_KEYS["healthy"].key, TENANT)
    assert v.passed, v.summary
    assert v.checked is not None and v.checked.saved
    assert v.sample is not None and not v.unreadable
    assert v.transaction is not None and v.transaction.passed
    made = charges(sandbox)
    assert len(made) == 1 and v.charge_id == made[0]["id"]
    # one message for the tenant, second person, naming what Pointai can read and the test charge
    msg = v.tenant_message
    assert msg is not None
    assert "Pointai can read your balance, charges" in msg and "invoices" in msg
    assert f"created a test charge {v.charge_id} on " in msg
    assert "the tenant" not in msg.lower() and DEMO_KEYS["healthy"].key not in msg
    # one summary for the ticket, UTC
    assert re.search(r"verified on \d{4}-\d\d-\d\d \d\d:\d\d UTC: all good", v.summary)
    assert "Sample transaction: passed" in v.summary and DEMO_KEYS["healthy"].key not in v.summary
    actions = [a["action"] for a in svc.store.list_audit(limit=50)]
    assert {"check", "sample_data", "sample_transaction"} <= set(actions)
    assert svc.store.tenant_history(TENANT)[0]["source"] == "dashboard"


def test_live_key_gets_check_and_sample_only_and_says_why(svc, sandbox):
    v = verify_integration(svc, DEMO_KEYS["live_healthy"].key, TENANT)
    assert v.transaction is None and charges(sandbox) == []
    assert v.sample is not None and v.passed
    assert "live-mode key" in v.summary and "real charge" in v.summary
    assert v.tenant_message and "live key we made no test charge" in v.tenant_message
    assert "created a test charge" not in v.tenant_message


def test_missing_permissions_name_what_cannot_be_read_and_what_to_change(svc, sandbox):
    v = verify_integration(svc, DEMO_KEYS["missing"].key, TENANT)
    assert not v.passed
    assert "invoices" in v.unreadable and "subscriptions" in v.unreadable
    msg = v.tenant_message or ""
    assert "Pointai cannot read your invoices and subscriptions yet" in msg or (
        "invoices" in msg and "subscriptions" in msg and "cannot read" in msg)
    assert "problems found" in v.summary


def test_refused_key_stops_after_the_check(svc, sandbox):
    v = verify_integration(svc, DEMO_KEYS["expired"].key, TENANT)
    assert v.stopped and v.sample is None and v.transaction is None
    assert not v.passed and charges(sandbox) == []
    assert len(sandbox.requests) == 1  # the check's first probe only
    assert v.tenant_message  # the check's own message for a refused key


def test_verify_page_one_action_gives_summary_and_message(app_env, sandbox):
    at = AppTest.from_file("../../app_pages/verify.py", default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    at.text_input(key="kh_verify_key").input(DEMO_KEYS["healthy"].key)
    at.button[0].click().run()  # the form's one button: "Verify integration"
    assert not at.exception, at.exception
    heads = [h.value for h in at.subheader]
    assert heads == ["Summary for the ticket", "Message for the tenant"]
    codes = [c.value for c in at.code]
    assert "all good" in codes[0] and "created a test charge ch_" in codes[1]
    shown = " ".join(plain(str(e.value)) for kind in ("success", "info", "error", "warning") for e in at.get(kind))
    assert "VERIFIED" in shown
    everything = shown + " ".join(codes)
    assert DEMO_KEYS["healthy"].key not in everything
    assert "kh_verify_key" not in at.session_state  # the page keeps no key
    assert "kh_key" not in at.session_state


def test_verify_page_can_take_the_key_pointai_holds(app_env, sandbox, monkeypatch, tmp_path):
    """With a key source, one click verifies the tenant's key without anyone pasting it; the check is recorded
    with source "key source"."""
    from core import store

    src = tmp_path / "src.sh"
    src.write_text(f'#!/bin/sh\necho "$KEYHEALTH_TENANT,{DEMO_KEYS["healthy"].key}"\n')
    src.chmod(0o755)
    monkeypatch.setenv("KEYHEALTH_KEYS_FROM", str(src))
    s = store.at(app_env)
    s.upgrade()
    s.get_or_create_tenant(TENANT)
    store.dispose_engine(app_env)
    at = AppTest.from_file("../../app_pages/verify.py", default_timeout=60)
    at.run()
    at.selectbox(key="kh_verify_tenant").select(TENANT)
    [held] = [b for b in at.button if b.label == "Verify the key Pointai holds"]
    held.click().run()
    assert not at.exception, at.exception
    codes = [c.value for c in at.code]
    assert "all good" in codes[0] and "created a test charge ch_" in codes[1]
    assert all(DEMO_KEYS["healthy"].key not in c for c in codes)
    assert [h["source"] for h in store.at(app_env).tenant_history(TENANT)] == ["key source"]
    store.dispose_engine(app_env)
