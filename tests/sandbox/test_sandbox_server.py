"""The Stripe sandbox (sandbox/) over real HTTP with the real stripe SDK: no monkeypatching."""
from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import stripe

from sandbox import (
    DEMO_KEYS,
    DEMO_LIVE_ACCOUNT,
    DEMO_TEST_ACCOUNT,
    SANDBOX_ACCOUNT,
    Sandbox,
    build_demo_keys,
    load_model,
)
from sandbox.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]
RK_TEST = "rk_test_51SandboxTestKeyForTheSandboxServerTests0000000000000000000000000000000000000000000000"


def rk(tag: str, mode: str = "test") -> str:
    """A fresh, realistic-looking restricted key per test (ends in the tag's last 4 chars)."""
    return f"rk_{mode}_51SandboxTests{tag}".ljust(100, "x") + tag[-4:]


@pytest.fixture(scope="module")
def client(sandbox_client):
    return sandbox_client


@pytest.fixture(autouse=True)
def _clean(sandbox):
    sandbox.reset()
    yield
    sandbox.faults.clear()
    sandbox.rate_limits = None


def call(client, method, path, key, **params):
    """One request through the SDK; returns the answer as a plain dict."""
    resp = client.raw_request(method, path, api_key=key, **params)
    return json.loads(resp.body)


def raw_http(url, method="GET", headers=None, data=None):
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


# ------------------------------------------------------------------ lifecycle and control API
def test_health_and_control_paths_need_no_key(sandbox):
    status, _, body = raw_http(sandbox.url + "/_sandbox/health")
    assert (status, json.loads(body)) == (200, {"ok": True})
    status, _, body = raw_http(sandbox.url + "/_sandbox/requests")
    assert status == 200 and json.loads(body) == {"requests": []}
    assert raw_http(sandbox.url + "/_sandbox/nope")[0] == 404


def test_context_manager_and_free_port():
    with Sandbox(port=0, demo_keys=False) as a, Sandbox(port=0, demo_keys=False) as b:
        assert a.url != b.url and re.fullmatch(r"http://127\.0\.0\.1:\d+", a.url)
        assert raw_http(a.url + "/_sandbox/health")[0] == 200
        url = a.url
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/_sandbox/health", timeout=1)


# ------------------------------------------------------------------ 401
def test_no_key_is_401(sandbox):
    status, headers, body = raw_http(sandbox.url + "/v1/charges")
    assert status == 401
    assert json.loads(body)["error"]["message"].startswith("You did not provide an API key")
    assert json.loads(body)["error"]["type"] == "invalid_request_error"


def test_unknown_and_revoked_keys_look_the_same(sandbox, client):
    unknown = rk("Unknown1abcd")
    with pytest.raises(stripe.AuthenticationError) as e:
        call(client, "get", "/v1/charges", unknown)
    assert e.value.http_status == 401
    assert e.value.user_message == "Invalid API Key provided: rk_test_***abcd"
    revoked = rk("Revoked9wxyz")
    sandbox.add_key(revoked, {"rak_charge_read"}, state="revoked")
    with pytest.raises(stripe.AuthenticationError) as e2:
        call(client, "get", "/v1/charges", revoked)
    assert e2.value.user_message == "Invalid API Key provided: rk_test_***wxyz"
    assert e2.value.error.code is None


def test_expired_key_has_its_own_code(sandbox, client):
    key = rk("Expired1e9f0")
    sandbox.add_key(key, {"rak_charge_read"}, state="expired")
    with pytest.raises(stripe.AuthenticationError) as e:
        call(client, "get", "/v1/charges", key)
    assert e.value.http_status == 401
    assert e.value.error.code == "api_key_expired"
    assert e.value.user_message == "Expired API Key provided: rk_test_***e9f0"


def test_ip_allowlist_refusal(sandbox, client):
    key = rk("IpBlocked0001")
    sandbox.add_key(key, {"rak_charge_read"}, ip_allowed=False)
    with pytest.raises(stripe.AuthenticationError) as e:
        call(client, "get", "/v1/charges", key)
    assert e.value.user_message == (
        "The API key provided does not allow requests from your IP address (127.0.0.1)."
    )


def test_basic_auth_with_key_as_username(sandbox):
    key = rk("BasicAuth0001")
    sandbox.add_key(key, {"rak_charge_read"})
    token = base64.b64encode(f"{key}:".encode()).decode()
    status, _, body = raw_http(sandbox.url + "/v1/charges?limit=1", headers={"Authorization": f"Basic {token}"})
    assert status == 200 and json.loads(body)["object"] == "list"


# ------------------------------------------------------------------ the permission gate
def test_missing_permission_is_403_before_anything_else(sandbox, client):
    key = rk("ChargeRead001")
    sandbox.add_key(key, {"rak_charge_read"})
    # No customer permission: 403 even for a body Stripe would reject and an id that does not exist.
    for method, path, params in [
        ("get", "/v1/customers", {}),
        ("post", "/v1/customers", {"keyhealth_probe": "1"}),
        ("post", "/v1/customers", {}),
        ("post", "/v1/customers/cus_made_up", {}),
        ("delete", "/v1/customers/cus_made_up", {}),
        ("post", "/v1/charges/ch_made_up", {}),  # read does not give write
    ]:
        with pytest.raises(stripe.PermissionError) as e:
            call(client, method, path, key, **params)
        assert e.value.http_status == 403, (method, path)
        assert e.value.error.type == "invalid_request_error"
        assert e.value.error.code in (None, "more_permissions_required")  # newer wordings carry the code
        assert f"account '{SANDBOX_ACCOUNT}'" in e.value.user_message
    assert sandbox.created == [] and sandbox.writes == []


def test_403_wordings_rotate(sandbox, client):
    key = rk("Wordings00001")
    sandbox.add_key(key, set())
    messages = []
    for _ in range(5):
        with pytest.raises(stripe.PermissionError) as e:
            call(client, "get", "/v1/payment_intents", key, limit=1)
        messages.append(e.value.user_message)
    patterns = [
        r"You can edit permissions at https://dashboard\.stripe\.com/b/acct_\w+\?destination=%2Fapikeys%2Fmk_\w+%2Fedit$",
        r"Having the 'rak_payment_intent_read' permission would allow this request to continue\.$",
        r"Having the 'rak_payment_intent_read', 'rak_checkout_session_read' permissions would allow",
        r"Having more permissions would allow this request to continue\.$",
        r"^Permission denied\. .*Enabling \"PaymentIntents Read\" \('payment_intent_read'\) permissions on this key"
        r" would allow this request to continue\.$",
    ]
    for p in patterns:
        assert sum(bool(re.search(p, m)) for m in messages) == 1, (p, messages)
    for m in messages:
        assert f"on account '{SANDBOX_ACCOUNT}'" in m and "rk_test_***0001" in m


def test_file_upload_refusal_names_the_wrong_permission(sandbox, client):
    key = rk("FileNone00001")
    sandbox.add_key(key, {"rak_file_read"})
    sandbox.deny_style = "single"
    try:
        with pytest.raises(stripe.PermissionError) as e:
            client.v1.files.create(params={"purpose": "dispute_evidence", "file": ("a.txt", b"x")},
                                   options={"api_key": key})
    finally:
        sandbox.deny_style = "rotate"
    assert "'rak_dispute_write'" in e.value.user_message


def test_granted_probes_get_stripe_answers(sandbox, client):
    key = rk("Granted000001")
    sandbox.add_key(key, {"rak_charge_read", "rak_customer_write"})
    assert call(client, "get", "/v1/charges", key, limit=1)["object"] == "list"
    with pytest.raises(stripe.InvalidRequestError) as e:
        call(client, "get", "/v1/charges/keyhealth_probe_missing", key)
    assert e.value.http_status == 404 and e.value.code == "resource_missing"
    assert e.value.user_message == "No such charge: 'keyhealth_probe_missing'"
    # write implies read
    assert call(client, "get", "/v1/customers", key, limit=1)["object"] == "list"
    with pytest.raises(stripe.InvalidRequestError) as e:
        call(client, "post", "/v1/customers/keyhealth_probe_missing", key)
    assert e.value.http_status == 404 and e.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as e:
        call(client, "post", "/v1/customers", key, keyhealth_probe="1")
    assert e.value.http_status == 400 and e.value.code == "parameter_unknown"
    assert e.value.user_message == "Received unknown parameter: keyhealth_probe"
    assert sandbox.created == []


def test_unknown_url_and_read_only_resource(sandbox, client):
    key = DEMO_KEYS["standard"].key
    with pytest.raises(stripe.InvalidRequestError) as e:
        call(client, "get", "/v1/keyhealth_nothing", key)
    assert e.value.http_status == 404 and e.value.code is None
    assert e.value.user_message.startswith("Unrecognized request URL (GET: /v1/keyhealth_nothing)")
    assert call(client, "get", "/v1/balance", key)["object"] == "balance"
    with pytest.raises(stripe.InvalidRequestError) as e:
        call(client, "post", "/v1/balance", key)
    assert e.value.http_status == 404 and e.value.user_message.startswith("Unrecognized request URL (POST: "
        "/v1/balance)")


def test_scope_aliases_and_write_only_scopes(sandbox, client):
    key = rk("Aliases000001")
    sandbox.add_key(key, {"rak_topup_read", "rak_account_link_write"})
    assert call(client, "get", "/v1/topups", key, limit=1)["object"] == "list"  # old spelling of top_up
    with pytest.raises(stripe.InvalidRequestError) as e:
        call(client, "post", "/v1/account_links", key, keyhealth_probe="1")
    assert e.value.code == "parameter_unknown"
    with pytest.raises(stripe.PermissionError):  # connected accounts offer Read only: no restricted key writes
        call(client, "post", "/v1/accounts", key)


def test_empty_create_really_creates(sandbox, client):
    key = rk("CustWrite0001")
    sandbox.add_key(key, {"rak_customer_write"})
    cus = call(client, "post", "/v1/customers", key)
    assert cus["object"] == "customer" and cus["id"].startswith("cus_") and cus["livemode"] is False
    assert [o["id"] for o in sandbox.created] == [cus["id"]]
    assert call(client, "get", f"/v1/customers/{cus['id']}", key)["id"] == cus["id"]
    # a create Stripe would refuse creates nothing
    with pytest.raises(stripe.InvalidRequestError) as e:
        call(client, "post", "/v1/products", DEMO_KEYS["standard"].key)
    assert e.value.code == "parameter_missing"
    assert len(sandbox.created) == 1


# ------------------------------------------------------------------ rate limit
def test_rate_limit_per_account(sandbox, client):
    sandbox.rate_limits = {"test": 5, "live": 100}
    a, b = rk("RateA00000001"), rk("RateB00000001")
    sandbox.add_key(a, {"rak_charge_read"}, account="acct_1RateLimitA")
    sandbox.add_key(b, {"rak_charge_read"}, account="acct_1RateLimitB")
    errors, limited = [], []
    for _ in range(10):
        try:
            call(client, "get", "/v1/balance", a)
            limited.append(False)
        except stripe.PermissionError:
            limited.append(False)  # no balance permission: still counts
        except stripe.RateLimitError as e:
            errors.append(e)
            limited.append(True)
    # The first five always pass; then ten calls in a row are refused as long as five passed within the last
    # second. Judged on the sandbox's own arrival times, not on how fast a loaded machine made the calls.
    assert limited[:5] == [False] * 5 and errors
    log = [r for r in sandbox.requests if r.account == "acct_1RateLimitA"]
    assert [r.status == 429 for r in log] == limited

    def passed_within(i: int, seconds: float) -> int:
        return sum(1 for x in log[:i] if x.status != 429 and log[i].t - x.t < seconds)

    for i, r in enumerate(log):  # 50 ms for the limiter reading its clock a moment after the arrival
        if r.status == 429:
            assert passed_within(i, 1.05) >= 5, f"call {i + 1} refused with fewer than 5 in the last second"
        else:
            assert passed_within(i, 0.95) < 5, f"call {i + 1} let through with 5 in the last second"
    assert all(e.http_status == 429 and e.error.code == "rate_limit" for e in errors)
    assert errors[0].user_message.startswith("Request rate limit exceeded.")
    assert call(client, "get", "/v1/charges", b, limit=1)["object"] == "list"  # another account is not limited
    # the window slides: within about a second the account may call again (polled, not slept through)
    deadline = time.monotonic() + 3
    while True:
        try:
            call(client, "get", "/v1/charges", a, limit=1)
            break
        except stripe.RateLimitError:
            assert time.monotonic() < deadline, "rate limit never lifted"
            time.sleep(0.05)


# ------------------------------------------------------------------ faults
def test_fail_fault_counts_down_and_sdk_retries(sandbox, client):
    key = DEMO_KEYS["standard"].key
    sandbox.faults.fail("/v1/charges", status=500, times=2)
    for _ in range(2):
        with pytest.raises(stripe.APIError) as e:
            call(client, "get", "/v1/charges", key, limit=1)
        assert e.value.http_status == 500
    assert call(client, "get", "/v1/charges", key, limit=1)["object"] == "list"
    # with retries the SDK gets through; the sandbox saw every attempt
    sandbox.reset()
    sandbox.faults.fail("/v1/charges", status=503, times=2)
    retrying = stripe.StripeClient("sk_unused", base_addresses={"api": sandbox.url}, max_network_retries=2,
                                   http_client=stripe.RequestsClient(timeout=2.0))
    assert call(retrying, "get", "/v1/charges", key, limit=1)["object"] == "list"
    assert [r.status for r in sandbox.requests] == [503, 503, 200]


def test_fail_fault_html_and_429(sandbox, client):
    key = DEMO_KEYS["standard"].key
    sandbox.faults.fail("/v1/balance", status=502, body="html", times=1)
    with pytest.raises(stripe.APIError) as e:
        call(client, "get", "/v1/balance", key)
    assert e.value.http_status == 502 and "<html>" in str(e.value.http_body)
    sandbox.faults.fail("/v1/balance", status=429, times=1)
    with pytest.raises(stripe.RateLimitError) as e2:
        call(client, "get", "/v1/balance", key)
    assert e2.value.error.code == "rate_limit"
    assert call(client, "get", "/v1/balance", key)["object"] == "balance"


def test_latency_fault_and_constructor_latency(sandbox, client):
    key = DEMO_KEYS["standard"].key
    sandbox.faults.latency(1.0, "/v1/charges")
    t = time.monotonic()
    call(client, "get", "/v1/balance", key)  # another path: not delayed (a local call, far below 1 s even when busy)
    assert time.monotonic() - t < 1.0
    t = time.monotonic()
    call(client, "get", "/v1/charges", key, limit=1)
    assert time.monotonic() - t >= 1.0
    with Sandbox(latency_s=0.2, demo_keys=False) as slow:
        slow.add_key(RK_TEST, {"*"})
        c = stripe.StripeClient("sk_unused", base_addresses={"api": slow.url})
        t = time.monotonic()
        call(c, "get", "/v1/balance", RK_TEST)
        assert time.monotonic() - t >= 0.2


def test_hang_fault_makes_client_timeouts(sandbox):
    key = DEMO_KEYS["standard"].key
    sandbox.faults.hang("/v1/charges", 5)
    impatient = stripe.StripeClient("sk_unused", base_addresses={"api": sandbox.url}, max_network_retries=0,
                                    http_client=stripe.RequestsClient(timeout=0.5))
    t = time.monotonic()
    with pytest.raises(stripe.APIConnectionError):
        call(impatient, "get", "/v1/charges", key, limit=1)
    assert time.monotonic() - t < 5  # the client's 0.5 s timeout, not the end of the 5 s hang


def test_drop_fault_closes_the_connection(sandbox, client):
    key = DEMO_KEYS["standard"].key
    sandbox.faults.drop("/v1/customers", times=1)
    with pytest.raises(stripe.APIConnectionError):
        call(client, "get", "/v1/customers", key, limit=1)
    assert call(client, "get", "/v1/customers", key, limit=1)["object"] == "list"
    assert [r.status for r in sandbox.requests] == [0, 200]


def test_faults_over_http(sandbox, client):
    key = DEMO_KEYS["standard"].key
    spec = json.dumps({"kind": "fail", "path_prefix": "/v1/balance", "status": 503, "times": 1}).encode()
    status, _, body = raw_http(sandbox.url + "/_sandbox/faults", "POST", {"Content-Type": "application/json"}, spec)
    assert status == 200 and json.loads(body)["faults"][0]["status"] == 503
    with pytest.raises(stripe.APIError) as e:
        call(client, "get", "/v1/balance", key)
    assert e.value.http_status == 503
    raw_http(sandbox.url + "/_sandbox/faults", "POST", {}, json.dumps({"kind": "drop"}).encode())
    assert raw_http(sandbox.url + "/_sandbox/faults", "DELETE")[0] == 200
    assert sandbox.faults.list() == []
    assert raw_http(sandbox.url + "/_sandbox/faults", "POST", {}, b'{"kind": "explode"}')[0] == 400
    status, _, body = raw_http(sandbox.url + "/_sandbox/requests")
    log = json.loads(body)["requests"]
    assert [(r["path"], r["status"], r["account"]) for r in log] == [("/v1/balance", 503, None)]


# ------------------------------------------------------------------ charges, idempotency, live mode
def test_idempotent_test_charge(sandbox, client):
    key = rk("ChargeWrite01")
    sandbox.add_key(key, {"rak_charge_write", "rak_balance_transaction_source_read"})
    params = {"amount": 2000, "currency": "usd", "source": "tok_visa", "description": "Key Health sample"}
    opts = {"api_key": key, "idempotency_key": "keyhealth-sample-1"}
    ch = client.v1.charges.create(params=params, options=opts)
    assert ch["status"] == "succeeded" and ch["paid"] and ch["livemode"] is False
    assert ch["payment_method_details"]["card"]["last4"] == "4242"
    assert len(sandbox.created) == 2  # the charge and its balance transaction
    again = client.v1.charges.create(params=params, options=opts)
    assert again["id"] == ch["id"] and len(sandbox.created) == 2
    txn = call(client, "get", f"/v1/balance_transactions/{ch['balance_transaction']}", key)
    assert txn["source"] == ch["id"] and txn["amount"] == 2000 and txn["type"] == "charge"
    assert call(client, "get", f"/v1/charges/{ch['id']}", key)["id"] == ch["id"]
    with pytest.raises(stripe.IdempotencyError):
        client.v1.charges.create(params={**params, "amount": 2100}, options=opts)
    other = client.v1.charges.create(params=params, options={"api_key": key, "idempotency_key": "keyhealth-sample-2"})
    assert other["id"] != ch["id"] and len(sandbox.created) == 4


def test_charge_validation_and_declines(sandbox, client):
    key = DEMO_KEYS["standard"].key
    with pytest.raises(stripe.InvalidRequestError) as e:
        call(client, "post", "/v1/charges", key, amount=2000, currency="usd")
    assert e.value.code == "parameter_missing"
    with pytest.raises(stripe.CardError) as e2:
        call(client, "post", "/v1/charges", key, amount=2000, currency="usd", source="tok_chargeDeclined")
    assert e2.value.http_status == 402 and e2.value.code == "card_declined"
    assert sandbox.created[0]["status"] == "failed"


def test_live_key_with_test_card_is_declined(sandbox, client):
    key = rk("LiveCharge001", "live")
    sandbox.add_key(key, {"rak_charge_write"})
    with pytest.raises(stripe.CardError) as e:
        client.v1.charges.create(params={"amount": 2000, "currency": "usd", "source": "tok_visa"},
                                 options={"api_key": key})
    assert e.value.http_status == 402 and e.value.code == "card_declined"
    assert "live mode, but used a known test card" in e.value.user_message
    assert sandbox.created == []


# ------------------------------------------------------------------ lists and objects
def test_list_paging_and_filters(sandbox, client):
    key = DEMO_KEYS["standard"].key
    first = call(client, "get", "/v1/charges", key)
    assert len(first["data"]) == 10 and first["has_more"] and first["url"] == "/v1/charges"
    everything = call(client, "get", "/v1/charges", key, limit=100)
    assert len(everything["data"]) == 60 and not everything["has_more"]
    created = [c["created"] for c in everything["data"]]
    assert created == sorted(created, reverse=True)
    seen, after = [], None
    while True:
        params = {"limit": 25, **({"starting_after": after} if after else {})}
        page = call(client, "get", "/v1/charges", key, **params)
        seen += [c["id"] for c in page["data"]]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert seen == [c["id"] for c in everything["data"]]
    mid = everything["data"][30]["created"]
    recent = call(client, "get", "/v1/charges", key, limit=100, **{"created[gte]": mid})
    assert recent["data"] and all(c["created"] >= mid for c in recent["data"])
    older = call(client, "get", "/v1/charges", key, limit=100, created={"lte": mid})
    assert len(recent["data"]) + len(older["data"]) >= 60
    with pytest.raises(stripe.InvalidRequestError) as e:
        call(client, "get", "/v1/charges", key, limit=101)
    assert e.value.http_status == 400
    with pytest.raises(stripe.InvalidRequestError) as e:
        call(client, "get", "/v1/charges", key, keyhealth_probe="1")
    assert e.value.code == "parameter_unknown"


def test_sample_data_shape(sandbox, client):
    key = DEMO_KEYS["healthy"].key
    charges = call(client, "get", "/v1/charges", key, limit=100)["data"]
    statuses = {c["status"] for c in charges}
    assert statuses == {"succeeded", "failed"} and any(c["refunded"] for c in charges)
    assert {c["payment_method_details"]["card"]["brand"] for c in charges} >= {"visa", "mastercard"}
    c = next(c for c in charges if c["status"] == "succeeded")
    bd = c["billing_details"]
    assert bd["name"] and "@" in bd["email"] and bd["phone"] and bd["address"]["city"] and c["receipt_email"]
    txns = call(client, "get", "/v1/balance_transactions", key, limit=100)["data"]
    assert sorted(t["source"] for t in txns) == sorted(c["id"] for c in charges if c["status"] == "succeeded")
    balance = call(client, "get", "/v1/balance", key)
    assert {b["currency"] for b in balance["available"]} == {"usd", "eur"}
    assert {b["currency"] for b in balance["pending"]} == {"usd", "eur"}
    sessions = call(client, "get", "/v1/checkout/sessions", key, limit=100)["data"]
    done = next(s for s in sessions if s["status"] == "complete")
    assert "@" in done["customer_details"]["email"] and done["customer_details"]["name"]
    items = call(client, "get", f"/v1/checkout/sessions/{done['id']}/line_items", key)
    assert items["object"] == "list" and items["data"][0]["price"]["id"].startswith("price_")
    for path in ("/v1/invoices", "/v1/subscriptions", "/v1/payment_links", "/v1/products", "/v1/prices"):
        assert call(client, "get", path, key, limit=1)["data"], path
    standard = DEMO_KEYS["standard"].key
    assert call(client, "get", "/v1/customers", standard, limit=1)["data"][0]["email"]


def test_sample_data_is_deterministic():
    a = Sandbox(demo_keys=False, anchor=1_750_000_000).store(DEMO_TEST_ACCOUNT, "test")
    b = Sandbox(demo_keys=False, anchor=1_750_000_000).store(DEMO_TEST_ACCOUNT, "test")
    assert a.ordered("/v1/charges") == b.ordered("/v1/charges") and len(a.ordered("/v1/charges")) == 60
    live = Sandbox(demo_keys=False, anchor=1_750_000_000).store(DEMO_TEST_ACCOUNT, "live")
    assert {c["id"] for c in live.ordered("/v1/charges")}.isdisjoint(c["id"] for c in a.ordered("/v1/charges"))
    assert all(c["livemode"] for c in live.ordered("/v1/charges"))


def test_live_test_mismatch(sandbox, client):
    test_key, live_key = rk("MismatchTest1"), rk("MismatchLive1", "live")
    sandbox.add_key(test_key, {"rak_charge_read"})
    sandbox.add_key(live_key, {"rak_charge_read"})
    live_charge = call(client, "get", "/v1/charges", live_key, limit=1)["data"][0]
    assert live_charge["livemode"] is True
    with pytest.raises(stripe.InvalidRequestError) as e:
        call(client, "get", f"/v1/charges/{live_charge['id']}", test_key)
    assert e.value.http_status == 404 and e.value.code == "resource_missing"
    assert "a similar object exists in live mode, but a test mode key was used" in e.value.user_message
    test_charge = call(client, "get", "/v1/charges", test_key, limit=1)["data"][0]
    with pytest.raises(stripe.InvalidRequestError) as e:
        call(client, "get", f"/v1/charges/{test_charge['id']}", live_key)
    assert "a similar object exists in test mode, but a live mode key was used" in e.value.user_message


def test_request_log_never_holds_the_key(sandbox, client):
    key = rk("LogCheck00001")
    kid = sandbox.add_key(key, {"rak_charge_read"})
    call(client, "get", "/v1/charges", key, limit=1)
    with pytest.raises(stripe.PermissionError):
        call(client, "get", "/v1/customers", key)
    log = sandbox.requests
    assert [(r.method, r.path, r.status, r.account, r.key_id) for r in log] == [
        ("GET", "/v1/charges", 200, SANDBOX_ACCOUNT, kid),
        ("GET", "/v1/customers", 403, SANDBOX_ACCOUNT, kid),
    ]
    assert key not in repr(log) and key[-30:] not in raw_http(sandbox.url + "/_sandbox/requests")[2].decode()
    sandbox.clear_log()
    assert sandbox.requests == []


# ------------------------------------------------------------------ demo keys
def test_demo_keys_look_real_and_follow_the_profile(sandbox, client):
    names = {"healthy", "accounts_read", "missing", "over", "readonly", "expired", "revoked", "live_healthy",
             "live_revoked", "live_expired", "live_missing", "live_over", "test_on_live", "standard"}
    assert set(DEMO_KEYS) == names
    for dk in DEMO_KEYS.values():
        assert re.fullmatch(r"(rk|sk)_(test|live)_[0-9A-Za-z]{90,}", dk.key) and "Demo" in dk.key
        assert dk.account.startswith("acct_1KeyHealthDemo")
    assert len({dk.key for dk in DEMO_KEYS.values()}) == len(DEMO_KEYS)
    healthy = DEMO_KEYS["healthy"].permissions
    assert "rak_charge_write" in healthy and all(p.startswith("rak_") for p in healthy)
    missing = DEMO_KEYS["missing"].permissions
    assert "rak_charge_read" in missing and "rak_charge_write" not in missing
    assert not any(p.startswith(("rak_subscription_", "rak_invoice_")) for p in missing)
    assert DEMO_KEYS["over"].permissions == healthy | {"rak_customer_write", "rak_payment_method_read",
        "rak_webhook_write"}
    assert "rak_connected_account_write" in healthy
    assert DEMO_KEYS["accounts_read"].permissions == (healthy - {"rak_connected_account_write"}) | {
        "rak_connected_account_read"}
    assert all(p.endswith("_read") for p in DEMO_KEYS["readonly"].permissions)
    assert (DEMO_KEYS["expired"].state, DEMO_KEYS["revoked"].state) == ("expired", "revoked")
    live = DEMO_KEYS["live_healthy"]
    assert live.key.startswith("rk_live_") and live.mode == "live" and live.account == DEMO_LIVE_ACCOUNT
    assert live.permissions == healthy
    std = DEMO_KEYS["standard"]
    assert std.key.startswith("sk_test_") and std.permissions == frozenset({"*"})
    # and the sandbox honours them
    assert call(client, "get", "/v1/charges", DEMO_KEYS["healthy"].key, limit=1)["object"] == "list"
    with pytest.raises(stripe.PermissionError):
        call(client, "post", "/v1/charges/keyhealth_probe_missing", DEMO_KEYS["missing"].key)
    with pytest.raises(stripe.AuthenticationError) as e:
        call(client, "get", "/v1/charges", DEMO_KEYS["expired"].key)
    assert e.value.error.code == "api_key_expired"
    with pytest.raises(stripe.AuthenticationError) as e:
        call(client, "get", "/v1/charges", DEMO_KEYS["revoked"].key)
    assert e.value.user_message.startswith("Invalid API Key provided: rk_test_***")


def test_build_demo_keys_from_other_data_files(tmp_path):
    (tmp_path / "catalogue.toml").write_text("""
[[scope]]
scope = "charge"
label = "Charges"
category = "Core"
levels = ["read", "write"]
read = { method = "GET", path = "/v1/charges/{id}" }
write = { method = "POST", path = "/v1/charges/{id}" }
[[scope]]
scope = "balance"
label = "Balance"
category = "Core"
levels = ["read"]
read = { method = "GET", path = "/v1/balance" }
[[scope]]
scope = "account_link"
label = "Account links"
category = "Connect"
levels = ["write"]
write = { method = "POST", path = "/v1/account_links", params = { keyhealth_probe = "1" } }
[[scope]]
scope = "subscription"
label = "Subscriptions"
category = "Billing"
levels = ["read", "write"]
read = { method = "GET", path = "/v1/subscriptions/{id}" }
write = { method = "POST", path = "/v1/subscriptions/{id}" }
[[scope]]
scope = "customer"
label = "Customers"
category = "Core"
levels = ["read", "write"]
read = { method = "GET", path = "/v1/customers/{id}" }
write = { method = "POST", path = "/v1/customers/{id}" }
""")
    (tmp_path / "requirements.toml").write_text("""
name = "test"
key_name = "Test key"
[[item]]
guide = "Charges"
level = "write"
scopes = ["charge"]
[[item]]
guide = "Balance"
level = "write"
scopes = ["balance"]
[[item]]
guide = "Account links"
level = "write"
scopes = ["account_link"]
[[item]]
guide = "Subscriptions"
level = "write"
scopes = ["subscription"]
[[item]]
guide = "Customers"
level = "none"
scopes = ["customer"]
""")
    keys = build_demo_keys(catalogue_path=tmp_path / "catalogue.toml", requirements_path=tmp_path / "requirements.toml")
    assert keys["healthy"].permissions == {"rak_charge_write", "rak_balance_read", "rak_account_link_write",
                                           "rak_subscription_write"}
    assert keys["missing"].permissions == {"rak_charge_read", "rak_balance_read", "rak_account_link_write"}
    assert keys["readonly"].permissions == {"rak_charge_read", "rak_balance_read", "rak_subscription_read"}
    assert keys["over"].permissions == keys["healthy"].permissions | {
        "rak_customer_write", "rak_payment_method_read", "rak_webhook_write"}
    # the same name gives the same key: stable across runs
    assert keys["healthy"].key == DEMO_KEYS["healthy"].key


# ------------------------------------------------------------------ the route table
def test_route_table_covers_the_reference():
    m = load_model()
    assert len(m.scopes) >= 65
    reference = ["apple_pay_domain", "balance", "balance_transaction_source", "billing_clock", "charge",
                 "confirmation_token", "confirmation_token_client", "checkout_session", "payment_links",
                 "subscription", "invoice", "product", "coupon", "plan", "promotion_code", "connected_account",
                 "account_link", "transfer", "application_fee", "order", "sku", "payment_method", "customer",
                 "dispute", "file", "webhook"]
    assert not [s for s in reference if s not in m.scopes]
    assert m.scopes["balance"].levels == ("read",)
    assert m.scopes["balance_transaction_source"].levels == ("read",)
    assert m.scopes["account_link"].levels == ("write",)
    assert m.scopes["confirmation_token"].levels == ("read",)
    assert m.scopes["plan"].label == "Prices"
    for method, path, perm in [
        ("GET", "/v1/prices", "rak_plan_read"), ("POST", "/v1/plans/x", "rak_plan_write"),
        ("GET", "/v1/checkout/sessions/cs_x/line_items", "rak_checkout_session_read"),
        ("GET", "/v1/balance_transactions", "rak_balance_transaction_source_read"),
        ("POST", "/v1/test_helpers/confirmation_tokens", "rak_confirmation_token_client_write"),
        ("GET", "/v1/confirmation_tokens/ctoken_x", "rak_confirmation_token_read"),
        ("POST", "/v1/test_helpers/test_clocks", "rak_billing_clock_write"),
        ("GET", "/v1/refunds", "rak_charge_read"), ("GET", "/v1/charges/search", "rak_charge_read"),
        ("POST", "/v1/accounts/acct_x/login_links", "rak_edit_link_write"),
    ]:
        route, _ = m.match(method, path)
        assert m.needed(route) == perm, path
    assert m.match("POST", "/v1/balance") is None and m.match("GET", "/v1/confirmation_tokens") is None
    templates = [(r.method, r.template) for r in m.routes]
    assert len(templates) == len(set(templates))


# ------------------------------------------------------------------ CLI
def test_cli_refuses_a_bad_port(capsys):
    assert cli_main(["--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert "70000" in err and "Traceback" not in err


def _ctrl_c_works() -> None:
    """In the child before it runs: SIGINT back to its default. A shell starts background commands with SIGINT
    ignored, and a Python started that way never turns Ctrl-C into KeyboardInterrupt, as a terminal user's would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_python_m_core_sandbox_serves_and_stops():
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "--port", "0"], cwd=ROOT, preexec_fn=_ctrl_c_works,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        out = "".join(lines)
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", out).group(1)
        assert DEMO_KEYS["healthy"].key in out and "live_healthy" in out
        status, _, body = raw_http(url + "/_sandbox/health")
        assert status == 200
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:  # never leave a sandbox behind, whatever failed
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Sandbox stopped." in rest and "Traceback" not in err


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's per-thread signals (tgkill)")
def test_ctrl_c_delivered_to_a_server_thread_still_stops_the_sandbox():
    """The kernel may hand a process's SIGINT to any of its threads. Python raises KeyboardInterrupt only in the main
    thread, when it next runs bytecode: a main thread parked in a wait with no timeout never noticed (CI hung on
    this once). Force it: SIGINT straight to the serving thread."""
    import ctypes

    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "--port", "0"], cwd=ROOT, preexec_fn=_ctrl_c_works,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("Press Ctrl-C"):
                break
        others = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid]
        assert others, "the sandbox serves from a thread of its own"
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.tgkill(proc.pid, others[0], signal.SIGINT) == 0, ctypes.get_errno()
        rest, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Sandbox stopped." in rest and "Traceback" not in err


def test_cli_port_in_use_is_one_sentence(capsys):
    with Sandbox(demo_keys=False) as busy:
        port = int(busy.url.rsplit(":", 1)[1])
        assert cli_main(["--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"Cannot listen on 127.0.0.1:{port}") and "Traceback" not in err


def test_reset_ends_hanging_requests_and_keeps_them_out_of_the_new_log(sandbox):
    import threading

    key = DEMO_KEYS["standard"].key
    sandbox.faults.hang("/v1/charges", 30)
    impatient = stripe.StripeClient("sk_unused", base_addresses={"api": sandbox.url}, max_network_retries=0,
                                    http_client=stripe.RequestsClient(timeout=20))
    errors = []

    def hang():
        try:
            call(impatient, "get", "/v1/charges", key, limit=1)
        except stripe.APIConnectionError as e:
            errors.append(e)

    deadline = time.monotonic() + 10
    while sandbox.in_flight:  # a request an earlier test left hanging is still unwinding from its reset
        assert time.monotonic() < deadline, "an earlier request never left the sandbox"
        time.sleep(0.01)
    t = threading.Thread(target=hang)
    t.start()
    while sandbox.in_flight == 0:  # poll until the request is inside the sandbox
        assert time.monotonic() < deadline, "the request never reached the sandbox"
        time.sleep(0.01)
    started = time.monotonic()
    sandbox.reset()
    t.join(timeout=10)
    # ended by the reset: the hang lasts 30 s and the client would only give up after 20 s
    assert not t.is_alive() and errors and time.monotonic() - started < 10
    assert sandbox.requests == [] and sandbox.in_flight == 0


# ------------------------------------------------------------------ fidelity (issue 11)
def test_refusals_carry_the_code_in_newer_wordings(sandbox, client):
    key = rk("CodeOnDeny01")
    sandbox.add_key(key, set())
    codes = {}
    for style in ("single", "several", "none", "newer", "newest"):
        sandbox.deny_style = style
        try:
            with pytest.raises(stripe.PermissionError) as e:
                call(client, "get", "/v1/charges", key, limit=1)
        finally:
            sandbox.deny_style = "rotate"
        codes[style] = e.value.error.code
    assert codes == {"single": None, "several": "more_permissions_required", "none": None,
                     "newer": "more_permissions_required", "newest": "more_permissions_required"}


def test_the_newest_wording_links_to_the_keys_own_edit_page(sandbox, client):
    """Issue 20: Stripe's newest refusal ends with a link to edit this very key (its Dashboard id, mk_…)."""
    from sandbox.server import SANDBOX_ACCOUNT, dashboard_key_id

    key = rk("NewestLink01")
    sandbox.add_key(key, set())
    sandbox.deny_style = "newest"
    try:
        with pytest.raises(stripe.PermissionError) as e:
            call(client, "get", "/v1/prices/price_x", key)
    finally:
        sandbox.deny_style = "rotate"
    said = e.value.user_message
    assert said.startswith("Permission denied. ") and "Enabling \"Prices Read\" ('plan_read')" in said
    mk = dashboard_key_id(key)
    assert mk.startswith("mk_") and key not in said and mk == dashboard_key_id(key)
    assert said.endswith(f"You can edit permissions at https://dashboard.stripe.com/b/{SANDBOX_ACCOUNT}"
                         f"?destination=%2Fapikeys%2F{mk}%2Fedit")


def test_made_up_connected_account_is_account_invalid_with_or_without_permission(sandbox, client):
    for perms in (set(), {"rak_connected_account_write", "rak_edit_link_write"}):
        key = rk("AcctInv" + str(len(perms)).zfill(5))
        sandbox.add_key(key, perms)
        for method, path in (("get", "/v1/accounts/acct_madeup"), ("post", "/v1/accounts/acct_madeup/login_links")):
            with pytest.raises(stripe.PermissionError) as e:
                call(client, method, path, key)
            assert e.value.error.code == "account_invalid"
            said = e.value.user_message
            assert "does not have access to account 'acct_madeup' (or that account does not exist)" in said
            assert "required permissions" not in e.value.user_message


def test_accounts_write_and_kyc(sandbox, client):
    key = rk("AcctWrite001")
    sandbox.add_key(key, {"rak_connected_account_write"})
    with pytest.raises(stripe.InvalidRequestError) as e:
        call(client, "post", "/v1/accounts", key, keyhealth_probe="1")
    assert e.value.code == "parameter_unknown"
    reader = rk("AcctRead0001")
    sandbox.add_key(reader, {"rak_connected_account_read"})
    assert call(client, "get", "/v1/accounts", reader, limit=1)["object"] == "list"
    with pytest.raises(stripe.PermissionError):
        call(client, "post", "/v1/accounts", reader, keyhealth_probe="1")
    none = rk("NoAcct000001")
    sandbox.add_key(none, set())
    sandbox.deny_style = "single"
    try:
        with pytest.raises(stripe.PermissionError) as e:  # Connect reads ask for the KYC permission
            call(client, "get", "/v1/accounts", none, limit=1)
    finally:
        sandbox.deny_style = "rotate"
    assert "'rak_accounts_kyc_basic_read'" in e.value.user_message
    with pytest.raises(stripe.PermissionError):
        call(client, "get", "/v1/account", none)
    sandbox.add_key(none, {"rak_accounts_kyc_basic_read"})
    assert call(client, "get", "/v1/account", none)["object"] == "account"
    assert sandbox.created == []


def test_legacy_apis_answer_404_unless_the_account_has_them(sandbox, client):
    other = rk("LegacyOther1")
    sandbox.add_key(other, {"*"}, account="acct_1KeyHealthNoLegacy")
    mine = rk("LegacyMine01")
    sandbox.add_key(mine, {"*"})  # SANDBOX_ACCOUNT keeps the legacy APIs
    for method, path in (("get", "/v1/orders"), ("post", "/v1/skus"), ("post", "/v1/balance_transfers")):
        with pytest.raises(stripe.InvalidRequestError) as e:
            call(client, method, path, other, keyhealth_probe="1")
        assert e.value.http_status == 404 and e.value.user_message.startswith("Unrecognized request URL")
        with pytest.raises(stripe.InvalidRequestError) as e:
            call(client, method, path, mine, keyhealth_probe="1")
        assert e.value.http_status == 400 and e.value.code == "parameter_unknown"


def test_live_keys_cannot_use_test_helpers(sandbox, client):
    key = rk("LiveHelper01", "live")
    sandbox.add_key(key, {"rak_billing_clock_write"}, mode="live")
    with pytest.raises(stripe.InvalidRequestError) as e:
        call(client, "get", "/v1/test_helpers/test_clocks/clock_x", key)
    assert e.value.http_status == 400 and "test mode" in e.value.user_message


# --- the request parse ------------------------------------------------------------------------------------------
def raw_headers(raw: bytes) -> list[tuple[str, str]]:
    """The header lines of a raw request, as (name, rest)."""
    lines = raw.decode("iso-8859-1").replace("\r\n", "\n").split("\n")[1:]
    return [tuple(x.split(":", 1)) for x in lines if ":" in x]  # type: ignore[misc]


REQUESTS = [
    b"GET /v1/charges?limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer rk_test_x\r\n"
    b"Stripe-Version: 2025-02-24.acacia\r\nAccept-Encoding: gzip, deflate\r\n\r\n",
    b"POST /v1/customers HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n"
    b"Connection: close\r\nX-Dup: a\r\nX-Dup: b\r\nX-Space:   padded value  \r\nX-Tab:\tt\r\nX-Empty:\r\n\r\n",
    b"GET //v1//balance HTTP/1.0\r\nConnection: keep-alive\r\nHost: x\r\n\r\n",
    b"GET /v1/balance HTTP/1.0\r\n\r\n",
    b"GET /health HTTP/1.1\nHost: bare-newlines\n\n",
    b"DELETE /v1/webhook_endpoints/we_1 HTTP/1.1\r\nhost: lower\r\nCONNECTION: Keep-Alive\r\nX-Colon: a:b:c\r\n\r\n",
    b"GET /v1/charges HTTP/1.1\r\nX-Latin: caf\xe9\r\n\r\n",
    b"GET /v1/charges HTTP/2.0\r\n\r\n",  # not HTTP/1.x: the standard library's own parse
]


@pytest.mark.parametrize("raw", REQUESTS, ids=range(len(REQUESTS)))
def test_the_sandbox_reads_a_request_as_the_standard_library_does(raw):
    """The sandbox's own request parse (no email feed parser) gives what BaseHTTPRequestHandler.parse_request gives:
    the command, path, version, keep-alive, and the same answer to every header lookup (by any case of its name;
    a repeated header answers its first value, as HTTPMessage.get does)."""
    import io
    from http.server import BaseHTTPRequestHandler

    from sandbox.server import _Handler

    def parsed(parse) -> tuple:
        h = object.__new__(_Handler)
        h.rfile, h.wfile = io.BytesIO(raw), io.BytesIO()
        h.raw_requestline = h.rfile.readline(65537)
        h.request_version, h.client_address, h.requestline, h.command = "HTTP/1.1", ("127.0.0.1", 0), "", None
        ok = parse(h)
        headers = None
        if ok:
            names = {n for n, _ in raw_headers(raw)} | {"Authorization", "Missing"}
            headers = sorted((n, v, h.headers.get(v), h.headers[v], v in h.headers)
                             for n in names for v in (n, n.lower(), n.upper()))
        return ok, h.command, getattr(h, "path", None), h.request_version, h.close_connection, headers, \
            h.wfile.getvalue()[:12], h.rfile.read()

    assert parsed(_Handler.parse_request) == parsed(BaseHTTPRequestHandler.parse_request)


def test_route_matching_and_effective_permissions_remembered_give_the_same_answers():
    """ApiModel.match and .effective remember what they found: asked again, they answer the same, and what a
    caller does with an answer (the ids dict, the permission set) does not change the next one."""
    from sandbox.routes import load_model

    m = load_model()
    first = m.match("GET", "/v1/charges/ch_123")
    assert first is not None and first[1] == {"id": "ch_123"}
    first[1]["id"] = "changed"
    again = m.match("GET", "/v1/charges/ch_123")
    assert again is not None and again[0] is first[0] and again[1] == {"id": "ch_123"}
    assert m.match("GET", "/v1/no_such_thing") is None and m.match("GET", "/v1/no_such_thing") is None
    perms = {"rak_charge_read", "rak_plan_read"}
    eff = m.effective(perms, True)
    eff.add("rak_everything_write")
    assert "rak_everything_write" not in m.effective(perms, True)
    assert m.effective(perms, True) == m._effective_of(perms, True)
    assert m.effective(perms) == m._effective_of(perms, False)


def test_every_answer_has_the_current_http_date(sandbox):
    """The Date header is formatted once per second and reused: it is always the current second's date."""
    import email.utils
    import time
    import urllib.request

    for _ in range(3):
        with urllib.request.urlopen(sandbox.url + "/_sandbox/health", timeout=5) as r:
            date = r.headers["Date"]
        when = email.utils.parsedate_to_datetime(date).timestamp()
        assert abs(when - time.time()) < 2 and date.endswith(" GMT"), date


def _some_json(rng, depth: int = 0):
    """A random value of what JSON answers are made of, and of what they are not usually made of."""
    import collections

    scalars = [None, True, False, 0, -7, 10**20, 1.5, -0.0, 1e300, float("nan"), float("inf"), "", "plain",
               "quote \" backslash \\ slash / newline \n tab \t", "caf\u00e9 \u2603 \U0001f600", "\x00\x1f\x7f"]
    if depth > 3 or rng.random() < 0.4:
        return rng.choice(scalars)
    n = rng.randrange(4)
    kind = rng.randrange(6)
    if kind == 0:
        return [_some_json(rng, depth + 1) for _ in range(n)]
    if kind == 1:
        return tuple(_some_json(rng, depth + 1) for _ in range(n))
    if kind == 2:  # keys that are not text: json.dumps writes them as text
        return {rng.choice([1, 2.5, True, None, "k"]): _some_json(rng, depth + 1) for _ in range(n)}
    if kind == 3:
        return collections.OrderedDict((f"o{i}", _some_json(rng, depth + 1)) for i in range(n))
    return {f"key {i} \u00e9\"": _some_json(rng, depth + 1) for i in range(n)}


def test_answers_are_indented_byte_for_byte_as_json_dumps_writes_them(sandbox, client):
    """The sandbox writes the common shapes of its answers itself (the standard library indents only in pure
    Python): every body is exactly json.dumps(obj, indent=2), for what a check's answers are made of and for 3,000
    random values, floats, NaN, keys that are not text and subclasses included (those go to json.dumps whole)."""
    import random

    from sandbox.server import _json

    rng = random.Random(2026)
    for _ in range(3000):
        obj = _some_json(rng)
        assert _json(obj) == json.dumps(obj, indent=2).encode(), obj
    key = rk("Indent01")
    sandbox.add_key(key, {"rak_charge_read"})
    listing = client.v1.charges.list({"limit": 3}, options={"api_key": key})
    with urllib.request.urlopen(urllib.request.Request(
            sandbox.url + "/v1/charges?limit=3", headers={"Authorization": f"Bearer {key}"}), timeout=10) as r:
        body = r.read()
    assert body == json.dumps(json.loads(body), indent=2).encode() and listing.data
