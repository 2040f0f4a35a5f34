"""The sample transaction against the project's Stripe sandbox: real SDK over real HTTP, no monkeypatching."""
from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import stripe
from support import fast_probe

from core import store
from core.engine.catalogue import load_catalogue
from core.engine.keys import intake
from core.features.transaction import (
    DESCRIPTION,
    LIVE_REFUSAL,
    METADATA,
    default_idempotency_key,
    refusal,
    run_test_transaction,
)
from sandbox import DEMO_KEYS

FAST = fast_probe(retries=2, timeout_s=2.0)
KEY_NO_TXN_READ = "rk_test_51KeyHealthTxnNoBalanceRead" + "q1W2e3R4t5" * 3


@pytest.fixture
def client(sandbox):
    return stripe.StripeClient("sk_unused", base_addresses={"api": sandbox.url, "files": sandbox.url},
                               max_network_retries=0, http_client=stripe.RequestsClient(timeout=2.0))


@pytest.fixture(autouse=True)
def _clean(sandbox):
    sandbox.reset()
    yield
    sandbox.faults.clear()


def created_charges(sandbox) -> list[dict]:
    return [o for o in sandbox.created if o.get("object") == "charge"]


def posts(sandbox) -> list:
    return [r for r in sandbox.requests if r.method == "POST"]


def test_passes_and_shows_the_charge_and_its_balance_transaction(sandbox, client):
    r = run_test_transaction(DEMO_KEYS["healthy"].key, amount=250, currency="EUR", client=client, settings=FAST)
    assert r.status == "passed" and r.problem is None
    assert [s.name for s in r.steps] == ["create_charge", "read_charge", "balance_transaction"]
    assert all(s.result == "passed" and s.elapsed_s >= 0 for s in r.steps)
    [made] = created_charges(sandbox)
    assert r.charge == {"id": made["id"], "amount": 250, "currency": "eur", "status": "succeeded"}
    assert made["description"] == DESCRIPTION and made["metadata"] == METADATA
    txns = [o for o in sandbox.created if o.get("object") == "balance_transaction"]
    assert [t["id"] for t in txns] == [r.balance_transaction] and txns[0]["source"] == made["id"]
    assert r.balance_transaction.startswith("txn_")
    assert r.balance_transaction_detail["amount"] == 250
    out = r.to_json()
    assert out["status"] == "passed" and out["charge"]["id"] == made["id"]
    assert out["balance_transaction"] == r.balance_transaction
    assert {tuple(sorted(s)) for s in out["steps"]} == {("detail", "elapsed_s", "name", "result")}
    assert [(p.path, p.status) for p in posts(sandbox)] == [("/v1/charges", 200)]


def test_two_identical_requests_create_one_charge(sandbox, client):
    key = DEMO_KEYS["healthy"].key
    first = run_test_transaction(key, client=client, settings=FAST)
    second = run_test_transaction(key, client=client, settings=FAST)
    assert first.passed and second.passed
    assert first.charge["id"] == second.charge["id"]
    assert first.idempotency_key == second.idempotency_key
    assert not first.replayed and second.replayed
    assert len(created_charges(sandbox)) == 1
    assert len(posts(sandbox)) == 2  # the second POST was answered from Stripe's idempotency cache


def test_a_double_click_at_the_same_moment_creates_one_charge(sandbox, client):
    key = DEMO_KEYS["healthy"].key
    results = []
    go = threading.Barrier(4)

    def click():
        go.wait()
        results.append(run_test_transaction(key, client=client, settings=FAST, idempotency_key="keyhealth-click-1"))

    threads = [threading.Thread(target=click) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 4 and all(r.passed for r in results)
    assert len({r.charge["id"] for r in results}) == 1
    assert len(created_charges(sandbox)) == 1


def test_an_explicit_idempotency_key_overrides_the_default(sandbox, client):
    key = DEMO_KEYS["healthy"].key
    a = run_test_transaction(key, client=client, settings=FAST, idempotency_key="keyhealth-intent-a")
    b = run_test_transaction(key, client=client, settings=FAST, idempotency_key="keyhealth-intent-b")
    a2 = run_test_transaction(key, client=client, settings=FAST, idempotency_key="keyhealth-intent-a")
    assert a.charge["id"] != b.charge["id"] and a2.charge["id"] == a.charge["id"]
    assert len(created_charges(sandbox)) == 2


def test_a_retry_after_a_server_error_reuses_the_idempotency_key(sandbox, client):
    sandbox.faults.fail("/v1/charges", status=503, times=1)
    r = run_test_transaction(DEMO_KEYS["healthy"].key, client=client, settings=FAST)
    assert r.passed
    assert [p.status for p in posts(sandbox)] == [503, 200]
    assert len(created_charges(sandbox)) == 1


def test_persistent_errors_fail_with_a_sentence(sandbox, client):
    sandbox.faults.fail("/v1/charges", status=429)
    r = run_test_transaction(DEMO_KEYS["healthy"].key, client=client, settings=FAST)
    assert r.status == "failed" and r.charge is None
    assert "429" in r.problem and "3 tries" in r.problem
    assert len(posts(sandbox)) == FAST.retries + 1
    assert created_charges(sandbox) == []


def test_the_default_idempotency_key_changes_with_the_hour_amount_and_currency():
    fp = "fp_abc"
    t = datetime(2026, 5, 1, 10, 5, tzinfo=UTC)
    k = default_idempotency_key(fp, 100, "usd", t)
    assert k == default_idempotency_key(fp, 100, "usd", t + timedelta(minutes=50))
    assert k != default_idempotency_key(fp, 100, "usd", t + timedelta(hours=1))
    assert k != default_idempotency_key(fp, 101, "usd", t)
    assert k != default_idempotency_key(fp, 100, "eur", t)
    assert k != default_idempotency_key("fp_other", 100, "usd", t)
    assert fp not in k and len(k) <= 255


def test_a_live_key_is_refused_before_any_request(sandbox, client):
    r = run_test_transaction(DEMO_KEYS["live_healthy"].key, client=client, settings=FAST)
    assert r.status == "refused" and r.problem == LIVE_REFUSAL
    assert r.steps == [] and r.charge is None and r.requests == 0
    assert sandbox.requests == []  # not a single request, so certainly no POST
    assert refusal(intake(DEMO_KEYS["live_healthy"].key).info) == LIVE_REFUSAL


@pytest.mark.parametrize(
    "raw, kw, words",
    [
        (DEMO_KEYS["standard"].key, {}, "restricted key"),
        ("pk_test_" + "a" * 30, {}, "publishable"),
        (None, {"amount": 0}, "amount"),
        (None, {"amount": 10_001}, "amount"),
        (None, {"amount": "100"}, "whole number"),
        (None, {"currency": "dollars"}, "three-letter"),
    ],
)
def test_bad_input_is_refused_without_a_request(sandbox, client, raw, kw, words):
    r = run_test_transaction(raw or DEMO_KEYS["healthy"].key, client=client, settings=FAST, **kw)
    assert r.status == "refused" and words in r.problem and r.problem.endswith(".")
    assert sandbox.requests == []


def test_a_key_without_charges_write_is_told_the_permission(sandbox, client):
    r = run_test_transaction(DEMO_KEYS["missing"].key, client=client, settings=FAST)  # Charges at Read
    assert r.status == "failed"
    assert r.steps[0].name == "create_charge" and r.steps[0].result == "failed"
    words = load_catalogue().get("charge").label + " Write"  # the catalogue's label, whatever it is today
    assert r.steps[0].detail == f"failed: the key lacks {words} (rak_charge_write)"
    assert f"{words} (rak_charge_write)" in r.problem and r.missing_permission == "rak_charge_write"
    assert r.charge is None and created_charges(sandbox) == []
    assert [(p.path, p.status) for p in posts(sandbox)] == [("/v1/charges", 403)]


def test_a_key_without_balance_transaction_read_fails_the_last_step(sandbox, client):
    sandbox.add_key(KEY_NO_TXN_READ, {"rak_charge_write"})
    r = run_test_transaction(KEY_NO_TXN_READ, client=client, settings=FAST)
    assert r.status == "failed"
    assert [(s.name, s.result) for s in r.steps] == [
        ("create_charge", "passed"), ("read_charge", "passed"), ("balance_transaction", "failed")]
    assert "rak_balance_transaction_source_read" in r.steps[-1].detail
    assert r.missing_permission == "rak_balance_transaction_source_read"
    assert r.charge["id"] == created_charges(sandbox)[0]["id"]  # the charge is still shown
    assert r.balance_transaction is None


def test_a_revoked_key_fails_with_stripes_reason(sandbox, client):
    r = run_test_transaction(DEMO_KEYS["revoked"].key, client=client, settings=FAST)
    assert r.status == "failed" and "revoked" in r.problem
    assert len(sandbox.requests) == 1


def test_recorded_in_the_tenants_history(sandbox, make_service, tmp_path):
    url = f"sqlite:///{tmp_path / 'kh.db'}"
    svc = make_service(url, who="ops", probe=FAST)
    svc.store.get_or_create_tenant("Acme Shop")
    key = DEMO_KEYS["healthy"].key
    r = svc.transact(key, "Acme Shop", source="cli")
    live = svc.transact(DEMO_KEYS["live_healthy"].key, "Acme Shop", source="cli")
    assert r.audit_problem is None and live.audit_problem is None
    entries = store.at(url).list_audit(tenant="Acme Shop", action="sample_transaction")
    assert [e["outcome"] for e in entries] == ["refused", "passed"]
    assert entries[1]["tenant"] == "Acme Shop" and entries[1]["who"] == "ops"
    detail = json.loads(entries[1]["detail"])
    assert detail["charge"]["id"] == r.charge["id"] and detail["balance_transaction"] == r.balance_transaction
    everything = json.dumps(entries, default=str)
    assert key not in everything and DEMO_KEYS["live_healthy"].key not in everything
