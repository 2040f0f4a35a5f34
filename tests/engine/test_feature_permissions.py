"""The permissions sample data and the sample transaction need come from the catalogue, and their decisions are
made on the answer's kind, never on a sentence.

Unit half: every dataset's and every transaction step's permission resolves in data/catalogue.toml at the level the
request needs; the lookup refuses an endpoint no scope (or more than one) guards. Sandbox half (real SDK, real
HTTP): a catalogue whose labels or scope names differ changes the sentences and the permission names the features
report, and a key without Charges Write makes the transaction report `missing_permission`.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import stripe
from support import fast_probe

from core.engine.catalogue import CATALOGUE_PATH, Catalogue, CatalogueError, load_catalogue, parse_catalogue
from core.features import transaction
from core.features.sample import DATASETS, fetch_sample_data
from core.features.transaction import STEP_REQUESTS, run_test_transaction
from sandbox import DEMO_KEYS

FAST = fast_probe(retries=2, timeout_s=2.0)
KEY_CHARGE_READ_ONLY = "rk_test_51KeyHealthPermsChargeReadOnly" + "p0O9i8U7y6" * 3
KEY_NO_PRICES = "rk_test_51KeyHealthPermsNoPricesRead" + "m1N2b3V4c5" * 3
FEATURES = Path(__file__).resolve().parents[2] / "core" / "features"
TEST_LABEL = "Charges and Refunds (test label)"


def catalogue_data() -> dict[str, Any]:
    with open(CATALOGUE_PATH, "rb") as f:
        return tomllib.load(f)


def entry(data: dict[str, Any], scope: str) -> dict[str, Any]:
    [e] = [e for e in data["scope"] if e["scope"] == scope]
    return e


def relabelled(**labels: str) -> Catalogue:
    """The real catalogue with some scopes' Dashboard labels changed."""
    data = catalogue_data()
    for scope, label in labels.items():
        entry(data, scope)["label"] = label
    return parse_catalogue(data)


@pytest.fixture
def client(sandbox):
    """A StripeClient on a freshly reset sandbox (every sandbox test here takes it)."""
    sandbox.reset()
    yield stripe.StripeClient("sk_unused", base_addresses={"api": sandbox.url, "files": sandbox.url},
                              max_network_retries=0, http_client=stripe.RequestsClient(timeout=2.0))
    sandbox.faults.clear()


# ------------------------------------------------------------------ the catalogue is the source
def test_every_dataset_needs_a_catalogue_permission_at_read():
    cat = load_catalogue()
    got = {}
    for spec in DATASETS:
        need = spec.needs(cat)
        scope = cat.get(need.scope)  # KeyError if the catalogue does not list it
        assert need.level == "read" and "read" in scope.levels, spec.name
        assert (need.label, need.name) == (scope.label, scope.permission("read")), spec.name
        assert scope.read is not None and scope.read.path.removesuffix("/{id}") == spec.path, spec.name
        got[spec.name] = need.name
    # Pinned: the permission Stripe really checks for each list (the sandbox tests hold the same names).
    assert got == {
        "balance": "rak_balance_read",
        "charges": "rak_charge_read",
        "balance_transactions": "rak_balance_transaction_source_read",
        "invoices": "rak_invoice_read",
        "subscriptions": "rak_subscription_read",
        "checkout_sessions": "rak_checkout_session_read",
        "payment_links": "rak_payment_links_read",
        "products": "rak_product_read",
        "prices": "rak_plan_read",
    }


def test_every_transaction_step_needs_a_catalogue_permission_at_its_level():
    cat = load_catalogue()
    needs = transaction.needs(cat)
    assert set(needs) == set(STEP_REQUESTS) == set(transaction.STEP_LABELS)
    for step, need in needs.items():
        scope = cat.get(need.scope)
        method = STEP_REQUESTS[step][0]
        assert need.level == ("read" if method == "GET" else "write") and need.level in scope.levels, step
        assert (need.label, need.name) == (scope.label, scope.permission(need.level)), step
    assert {s: n.name for s, n in needs.items()} == {
        "create_charge": "rak_charge_write",
        "read_charge": "rak_charge_read",
        "balance_transaction": "rak_balance_transaction_source_read",
    }


def test_features_name_no_permission_themselves():
    """No rak_… permission name is written in the features' code: they all come from the catalogue."""
    for path in sorted(FEATURES.glob("*.py")):
        assert re.findall(r"rak_[a-z]", path.read_text()) == [], path.name


def test_permission_for_matches_the_collection_and_its_objects():
    cat = load_catalogue()
    assert cat.permission_for("GET", "/v1/charges").name == "rak_charge_read"
    assert cat.permission_for("get", "/v1/charges/{id}").name == "rak_charge_read"
    assert cat.permission_for("POST", "/v1/charges").name == "rak_charge_write"
    assert cat.permission_for("POST", "/v1/charges/{id}").words == f"{cat.get('charge').label} Write"


def test_permission_for_refuses_an_endpoint_no_scope_guards():
    with pytest.raises(CatalogueError, match=r"GET /v1/no_such_things: no catalogue scope"):
        load_catalogue().permission_for("GET", "/v1/no_such_things")
    with pytest.raises(CatalogueError, match=r"POST /v1/balance: no catalogue scope with a write probe"):
        load_catalogue().permission_for("POST", "/v1/balance")  # Balance is read-only


def test_permission_for_refuses_an_endpoint_two_scopes_claim():
    data = catalogue_data()
    twin = dict(entry(data, "charge"), scope="charge_twin", label="Charges twin")
    data["scope"].append(twin)
    with pytest.raises(CatalogueError, match=r"2 catalogue scopes \(charge, charge_twin\)"):
        parse_catalogue(data).permission_for("GET", "/v1/charges")


def test_a_level_the_scope_does_not_offer_is_refused():
    with pytest.raises(CatalogueError, match=r"offers only read"):
        load_catalogue().get("balance").grant("write")


# ------------------------------------------------------------------ a catalogue change shows in the sentences
def test_sample_sentences_use_the_catalogues_label(sandbox, client):
    sandbox.add_key(KEY_NO_PRICES, {"rak_charge_read"})
    cat = relabelled(plan="Prices and Plans (test label)")
    data = fetch_sample_data(KEY_NO_PRICES, client=client, settings=FAST, datasets=["prices", "charges"],
                             catalogue=cat)
    d = data.get("prices")
    assert (d.state, d.permission) == ("not_permitted", "rak_plan_read")
    assert d.reason == ("The key lacks Prices and Plans (test label) Read (rak_plan_read), so Stripe refused to "
                        "show prices.")


def test_sample_permission_name_is_the_catalogues_scope(sandbox, client):
    """Rename the Prices scope in the catalogue: the dataset then reports the catalogue's name, whatever Stripe
    (here the sandbox) calls it. The feature repeats no name of its own."""
    data = catalogue_data()
    entry(data, "plan")["scope"] = "price_renamed"
    sandbox.add_key(KEY_NO_PRICES, {"rak_charge_read"})
    got = fetch_sample_data(KEY_NO_PRICES, client=client, settings=FAST, datasets=["prices"],
                            catalogue=parse_catalogue(data))
    d = got.get("prices")
    assert (d.state, d.permission) == ("not_permitted", "rak_price_renamed_read")
    assert "(rak_price_renamed_read)" in d.reason


def test_transaction_sentences_use_the_catalogues_label(sandbox, client):
    r = run_test_transaction(DEMO_KEYS["missing"].key, client=client, settings=FAST,
                             catalogue=relabelled(charge=TEST_LABEL))
    assert r.missing_permission == "rak_charge_write"
    assert r.steps[0].detail == f"failed: the key lacks {TEST_LABEL} Write (rak_charge_write)"
    assert r.problem is not None
    assert r.problem.startswith(f"The key lacks {TEST_LABEL} Write (rak_charge_write), so no test charge")
    assert f"set {TEST_LABEL} to Write on the key" in r.problem


# ------------------------------------------------------------------ decisions on codes
def test_a_key_without_charge_write_is_reported_as_a_structured_field(sandbox, client):
    sandbox.add_key(KEY_CHARGE_READ_ONLY, {"rak_charge_read", "rak_balance_transaction_source_read"})
    r = run_test_transaction(KEY_CHARGE_READ_ONLY, client=client, settings=FAST)
    assert r.status == "failed" and r.missing_permission == "rak_charge_write"
    assert [(s.name, s.result) for s in r.steps] == [("create_charge", "failed")]
    assert r.to_json()["missing_permission"] == "rak_charge_write"
    assert [o for o in sandbox.created if o.get("object") == "charge"] == []
    assert [(q.method, q.path, q.status) for q in sandbox.requests] == [("POST", "/v1/charges", 403)]


def test_the_decision_does_not_read_the_sentence(sandbox, client):
    """A label that no longer says "Charges Write" still leads to the permission sentence and field."""
    sandbox.add_key(KEY_CHARGE_READ_ONLY, {"rak_charge_read"})
    r = run_test_transaction(KEY_CHARGE_READ_ONLY, client=client, settings=FAST,
                             catalogue=relabelled(charge="Zahlungen"))
    assert r.missing_permission == "rak_charge_write"
    assert r.problem is not None and r.problem.startswith("The key lacks Zahlungen Write (rak_charge_write)")
    assert "Creating the test charge failed" not in r.problem


def test_a_later_step_names_its_own_permission(sandbox, client):
    sandbox.add_key(KEY_CHARGE_READ_ONLY, {"rak_charge_write"})
    r = run_test_transaction(KEY_CHARGE_READ_ONLY, client=client, settings=FAST)
    assert [(s.name, s.result) for s in r.steps][-1] == ("balance_transaction", "failed")
    assert r.missing_permission == "rak_balance_transaction_source_read"


def test_other_failures_name_no_permission(sandbox, client):
    sandbox.faults.fail("/v1/charges", status=503)
    r = run_test_transaction(DEMO_KEYS["healthy"].key, client=client, settings=FAST)
    assert r.status == "failed" and r.missing_permission is None
    assert r.problem is not None and r.problem.startswith("Creating the test charge failed: Stripe did not answer")
    sandbox.faults.clear()
    passed = run_test_transaction(DEMO_KEYS["healthy"].key, client=client, settings=FAST, amount=101)
    assert passed.status == "passed" and passed.missing_permission is None


def test_revoked_key_names_no_permission(sandbox, client):
    r = run_test_transaction(DEMO_KEYS["revoked"].key, client=client, settings=FAST)
    assert r.status == "failed" and r.missing_permission is None and "revoked" in (r.problem or "")
