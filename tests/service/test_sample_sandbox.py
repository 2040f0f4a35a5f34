"""Sample data against the project's Stripe sandbox: real SDK over real HTTP, no monkeypatching."""
from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import stripe
from support import fast_probe

from core.engine.catalogue import load_catalogue
from core.engine.settings import ProbeSettings
from core.features.sample import DATASET_NAMES, DATASETS, fetch_sample_data
from core.ui.csv_safe import dataset_csv
from sandbox import DEMO_KEYS, DEMO_TEST_ACCOUNT

FAST = fast_probe(retries=2, timeout_s=2.0)
KEY_ONLY_CHARGES = "rk_test_51KeyHealthSampleOnlyCharges" + "a1B2c3D4e5" * 3
KEY_EMPTY = "rk_test_51KeyHealthSampleEmptyAccount" + "z9Y8x7W6v5" * 3
EMPTY_ACCOUNT = "acct_1KeyHealthSampleEmpty"


def make_client(url: str, timeout: float = 2.0) -> stripe.StripeClient:
    return stripe.StripeClient("sk_unused", base_addresses={"api": url, "files": url}, max_network_retries=0,
                               http_client=stripe.RequestsClient(timeout=timeout))


@pytest.fixture
def client(sandbox):
    return make_client(sandbox.url)


@pytest.fixture(autouse=True)
def _clean(sandbox):
    sandbox.reset()
    yield
    sandbox.faults.clear()


def gets(sandbox, prefix: str) -> list:
    return [r for r in sandbox.requests if r.path.startswith(prefix)]


# --- states -----------------------------------------------------------------------------------------
def test_healthy_key_loads_every_dataset(sandbox, client):
    now = datetime.now(UTC)
    data = fetch_sample_data(DEMO_KEYS["healthy"].key, client=client, settings=FAST, now=now)
    assert data.problem is None
    assert [d.name for d in data.datasets] == list(DATASET_NAMES)
    assert data.states() == {n: "loaded" for n in DATASET_NAMES}
    store = sandbox.store(DEMO_TEST_ACCOUNT, "test")
    since = int((now - timedelta(days=30)).timestamp())
    in_window = [c for c in store.objects["/v1/charges"].values() if c["created"] >= since]
    assert data.get("charges").count == min(100, len(in_window)) > 0
    assert set(data.frame("charges")["id"]) <= {c["id"] for c in in_window}
    # the balance per currency is what the sandbox holds
    bal = client.raw_request("get", "/v1/balance", api_key=DEMO_KEYS["healthy"].key).data
    want = {}
    for part in ("available", "pending"):
        for e in bal[part]:
            want.setdefault(e["currency"], {"available": 0, "pending": 0})[part] += e["amount"]
    got = {r["currency"]: {"available": r["available"], "pending": r["pending"]} for r in data.get("balance").rows()}
    assert got == want
    # only GETs, one per dataset (everything fits one page), and no dataset twice
    assert all(r.method == "GET" for r in sandbox.requests)
    assert data.requests == len(sandbox.requests) - 1 == len(DATASETS)  # -1: the balance read above


def test_missing_profile_is_not_permitted_with_the_permission(sandbox, client):
    data = fetch_sample_data(DEMO_KEYS["missing"].key, client=client, settings=FAST)
    assert data.states()["invoices"] == "not_permitted"
    assert data.states()["subscriptions"] == "not_permitted"
    assert data.get("invoices").permission == "rak_invoice_read"
    assert data.get("subscriptions").permission == "rak_subscription_read"
    label = load_catalogue().get("invoice").label  # the catalogue's label, whatever it is today
    assert f"{label} Read (rak_invoice_read)" in data.get("invoices").reason
    assert data.get("invoices").frame.empty
    assert data.states()["charges"] == "loaded"  # Charges Read is enough to read
    assert data.get("charges").permission is None and data.get("charges").reason is None


def test_each_dataset_names_its_own_permission(sandbox, client):
    sandbox.add_key(KEY_ONLY_CHARGES, {"rak_charge_read"})
    data = fetch_sample_data(KEY_ONLY_CHARGES, client=client, settings=FAST)
    assert data.states()["charges"] == "loaded"
    want = {
        "balance": "rak_balance_read",
        "balance_transactions": "rak_balance_transaction_source_read",
        "invoices": "rak_invoice_read",
        "subscriptions": "rak_subscription_read",
        "checkout_sessions": "rak_checkout_session_read",
        "payment_links": "rak_payment_links_read",
        "products": "rak_product_read",
        "prices": "rak_plan_read",
    }
    for name, perm in want.items():
        d = data.get(name)
        assert (d.state, d.permission) == ("not_permitted", perm), name
    assert data.account  # every 403 names the account


def test_empty_when_readable_but_nothing_there(sandbox, client):
    sandbox.add_key(KEY_EMPTY, {"rak_payment_links_read", "rak_charge_read"}, account=EMPTY_ACCOUNT)
    sandbox.store(EMPTY_ACCOUNT, "test").objects["/v1/payment_links"].clear()
    data = fetch_sample_data(KEY_EMPTY, client=client, settings=FAST, datasets=["payment_links", "charges"])
    assert data.states() == {"payment_links": "empty", "charges": "loaded"}
    d = data.get("payment_links")
    assert d.frame.empty and d.reason is None and d.permission is None


@pytest.mark.parametrize("status", [429, 500, 503])
def test_persistent_errors_fail_after_bounded_retries(sandbox, client, status):
    sandbox.faults.fail("/v1/invoices", status=status)
    data = fetch_sample_data(DEMO_KEYS["healthy"].key, client=client, settings=FAST)
    inv = data.get("invoices")
    assert inv.state == "failed"
    assert str(status) in inv.reason and "3 tries" in inv.reason and inv.reason.endswith(".")
    assert len(gets(sandbox, "/v1/invoices")) == FAST.retries + 1
    others = {n: s for n, s in data.states().items() if n != "invoices"}
    assert set(others.values()) == {"loaded"}


def test_a_transient_error_is_retried_and_loads(sandbox, client):
    sandbox.faults.fail("/v1/charges", status=503, times=1)
    data = fetch_sample_data(DEMO_KEYS["healthy"].key, client=client, settings=FAST)
    assert data.states()["charges"] == "loaded"
    assert [r.status for r in gets(sandbox, "/v1/charges")] == [503, 200]


def test_timeout_fails_with_a_sentence(sandbox):
    sandbox.faults.hang("/v1/products", seconds=2.5)  # longer than each try; the others answer well within 1 s
    settings = fast_probe(timeout_s=1.0)
    data = fetch_sample_data(DEMO_KEYS["healthy"].key, client=make_client(sandbox.url, timeout=1.0), settings=settings)
    prod = data.get("products")
    assert prod.state == "failed"
    assert "no answer from Stripe" in prod.reason and "2 tries" in prod.reason
    assert data.states()["prices"] == "loaded"
    # let the hung requests finish here, so they do not land in a later test's log
    deadline = time.monotonic() + 10
    while len(gets(sandbox, "/v1/products")) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(gets(sandbox, "/v1/products")) == 2


def test_a_refused_key_costs_one_request(sandbox, client):
    data = fetch_sample_data(DEMO_KEYS["revoked"].key, client=client, settings=FAST)
    assert data.problem and "revoked" in data.problem
    assert set(data.states().values()) == {"failed"}
    assert len(sandbox.requests) == 1 and data.requests == 1


def test_a_key_refused_locally_makes_no_request(sandbox, client):
    data = fetch_sample_data(DEMO_KEYS["standard"].key, client=client, settings=FAST)
    assert data.problem and "restricted key" in data.problem
    assert data.datasets == [] and sandbox.requests == []


# --- bounds and pacing --------------------------------------------------------------------------------
def test_row_cap_and_paging(sandbox, client):
    key = DEMO_KEYS["healthy"].key
    everything = fetch_sample_data(key, client=client, settings=FAST, datasets=["charges"], max_rows=1000)
    ids = list(everything.frame("charges")["id"])
    assert len(ids) > 30 and not everything.get("charges").truncated
    sandbox.clear_log()
    capped = fetch_sample_data(key, client=client, settings=FAST, datasets=["charges"], max_rows=25)
    assert list(capped.frame("charges")["id"]) == ids[:25]
    assert capped.get("charges").truncated
    assert len(gets(sandbox, "/v1/charges")) == 1
    sandbox.clear_log()
    paged = fetch_sample_data(key, client=client, settings=FAST, datasets=["charges"], max_rows=25, page_size=10)
    assert list(paged.frame("charges")["id"]) == ids[:25]
    assert len(gets(sandbox, "/v1/charges")) == 3  # 10 + 10 + 5, following starting_after


def test_time_window(sandbox, client):
    key = DEMO_KEYS["healthy"].key
    now = datetime.now(UTC)
    week = fetch_sample_data(key, client=client, settings=FAST, datasets=["charges", "products"], window_days=7,
        now=now)
    month = fetch_sample_data(key, client=client, settings=FAST, datasets=["charges", "products"], window_days=30,
        now=now)
    cutoff = now - timedelta(days=7)
    assert (week.frame("charges")["created"] >= cutoff).all()
    assert 0 < week.get("charges").count < month.get("charges").count
    assert week.get("products").count == month.get("products").count  # catalogue data is only capped


def test_paced_at_the_configured_rate(sandbox, client):
    settings = ProbeSettings(rate_test=10, concurrency=8, retries=0, backoff_s=0.01, timeout_s=2.0)
    t0 = time.monotonic()
    data = fetch_sample_data(DEMO_KEYS["healthy"].key, client=client, settings=settings)
    elapsed = time.monotonic() - t0
    assert data.requests == len(DATASETS)
    assert len([r for r in sandbox.requests if r.t >= t0]) == len(DATASETS)
    # 9 request starts at most 10 per second: at least 8 intervals of 0.1 s (without pacing: ~0.05 s in all)
    assert elapsed >= (len(DATASETS) - 1) * 0.1 * 0.95


# --- masking ---------------------------------------------------------------------------------------
def personal_values(sandbox, account=DEMO_TEST_ACCOUNT) -> set[str]:
    """Every name, email, phone and street the sandbox's customers hold (the source of all its personal data)."""
    out = set()
    for c in sandbox.store(account, "test").objects["/v1/customers"].values():
        for k in ("name", "email", "phone"):
            if c.get(k):
                out.add(c[k])
        addr = c.get("address") or {}
        for k in ("line1", "line2"):
            if addr.get(k):
                out.add(addr[k])
    return out


def test_no_personal_data_survives_anywhere(sandbox, client):
    key = DEMO_KEYS["healthy"].key
    secrets_ = personal_values(sandbox)
    assert len(secrets_) > 20
    # the unmasked answers really do carry them (so this test can fail)
    raw = json.dumps([
        client.raw_request("get", path, api_key=key, limit=100).data
        for path in ("/v1/charges", "/v1/invoices", "/v1/checkout/sessions")
    ])
    assert sum(v in raw for v in secrets_) > 10
    assert re.search(r"@example\.com", raw)

    data = fetch_sample_data(key, client=client, settings=FAST, max_rows=1000)
    outputs = [json.dumps(data.to_json())] + [d.frame.to_csv(index=False) for d in data.datasets]
    outputs += [dataset_csv(d).decode() for d in data.datasets]
    blob = "\n".join(outputs)
    leaked = sorted(v for v in secrets_ if v in blob)
    assert leaked == []
    assert not re.search(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}", blob)
    last_names = {v.split()[-1] for v in secrets_ if " " in v and "@" not in v and not v[0].isdigit()}
    for name in last_names:
        assert not re.search(rf"\b{re.escape(name)}\b", blob), name
    # what may stay, stays
    ch = data.frame("charges")
    assert set(ch["card_brand"]) <= {"visa", "mastercard", "amex"} and ch["card_last4"].str.fullmatch(r"\d{4}").all()
    assert (ch["billing_name"] == "[name]").all() and (ch["billing_email"] == "[email]").all()
    assert set(data.frame("products")["name"]) >= {"Pointai Pro"}
