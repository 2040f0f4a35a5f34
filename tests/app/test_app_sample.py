"""The "Sample data" and "Sample transaction" pages, driven with AppTest against the project's Stripe sandbox.

STRIPE_API_BASE points at the sandbox fixture and DATABASE_URL at a temporary SQLite file; the key is seeded
into the session the way the check page leaves it (st.session_state["kh_key"], a core.engine.keys.SecretKey).
"""
from __future__ import annotations

import json
import re

import pytest
from apptest import AppTest

from core import store
from core.engine.catalogue import load_catalogue
from core.engine.keys import intake
from core.features.sample import DATASETS
from core.ui.text import plain
from sandbox import DEMO_KEYS

SAMPLE_PAGE = "../../app_pages/sample_data.py"
TXN_PAGE = "../../app_pages/sample_transaction.py"
TIMEOUT = 60
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")


@pytest.fixture
def real_env(app_env):
    return app_env


def page(path: str, key: str | None, tenant: str | None = "Acme Coffee Roasters") -> AppTest:
    at = AppTest.from_file(path, default_timeout=TIMEOUT)
    if key is not None:
        at.session_state["kh_key"] = intake(key).key
    if tenant is not None:
        at.session_state["kh_tenant"] = tenant
    at.run()
    assert not at.exception, at.exception
    return at


def button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r} among {[b.label for b in at.button]}"
    return found[0]


def texts(at: AppTest) -> str:
    """Everything the page wrote as text, and every table's cells."""
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "subheader", "title", "metric"):
        for el in at.get(kind):
            parts.append(plain(str(getattr(el, "value", ""))) + " " + plain(str(getattr(el, "label", ""))))
    for df in at.dataframe:
        parts.append(df.value.to_csv(index=False))
    return "\n".join(parts)


def charges(sandbox) -> list[dict]:
    return [o for o in sandbox.created if o.get("object") == "charge"]


# --- sample data -----------------------------------------------------------------------------------
def test_sample_data_page_shows_every_state_charts_and_downloads(real_env, sandbox):
    sandbox.faults.fail("/v1/products", status=503)
    at = page(SAMPLE_PAGE, DEMO_KEYS["missing"].key)
    assert not at.get("plotly_chart")  # nothing read before the button
    assert sandbox.requests == []
    button(at, "Fetch sample data").click().run()
    assert not at.exception, at.exception

    heads = [h.value for h in at.subheader]
    assert {"Datasets", "Charts"} <= set(heads)
    assert all(d.label in heads for d in DATASETS)
    summary = at.dataframe[0].value
    states = dict(zip(summary["dataset"], summary["state"], strict=True))
    assert "not_permitted" in states["Invoices"] and "not_permitted" in states["Subscriptions"]
    assert "failed" in states["Products"] and "loaded" in states["Charges"]
    warnings = " ".join(plain(w.value) for w in at.warning)
    assert "rak_invoice_read" in warnings and "rak_subscription_read" in warnings
    errors = " ".join(plain(e.value) for e in at.error)
    assert "failed:" in errors and "503" in errors
    # four charts, built from the masked frames
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(figs) == 4
    assert {t["name"] for t in figs[0]["data"]} >= {"succeeded"}
    # a CSV download for each loaded dataset
    downloads = [d for d in at.get("download_button")]
    loaded = [s for s in summary["state"] if "loaded" in s]
    assert len(downloads) == len(loaded) >= 5
    [ch] = [d.value for d in at.dataframe if "billing_name" in d.value.columns]
    assert (ch["billing_name"] == "[name]").all()
    # no personal data anywhere on the page
    assert not EMAIL.search(texts(at))
    assert all(r.method == "GET" for r in sandbox.requests)
    # recorded in the tenant's history
    [entry] = store.at(real_env).list_audit(tenant="Acme Coffee Roasters", action="sample_data")
    assert entry["outcome"] == "failed" and json.loads(entry["detail"])["states"]["products"] == "failed"


def test_sample_data_page_without_a_key_takes_a_pasted_one(real_env, sandbox):
    at = page(SAMPLE_PAGE, None, tenant=None)
    box = at.text_input(key="kh_sample_key_input")
    assert box.label == "Restricted key"
    box.input("pk_test_" + "x1" * 15)
    button(at, "Use this key").click().run()
    assert "publishable" in " ".join(e.value for e in at.error)
    assert "kh_key" not in at.session_state
    at.text_input(key="kh_sample_key_input").input(DEMO_KEYS["healthy"].key)
    button(at, "Use this key").click().run()
    assert not at.exception, at.exception
    assert str(at.session_state["kh_key"]) == DEMO_KEYS["healthy"].key
    button(at, "Fetch sample data").click().run()
    summary = at.dataframe[0].value
    assert all("loaded" in s for s in summary["state"])
    assert DEMO_KEYS["healthy"].key not in texts(at)


# --- sample transaction ----------------------------------------------------------------------------
def test_transaction_page_creates_one_charge_per_intent(real_env, sandbox):
    at = page(TXN_PAGE, DEMO_KEYS["healthy"].key)
    assert sandbox.requests == []
    assert at.number_input(key="kh_txn_amount").label == "Amount (smallest currency unit)"
    assert at.text_input(key="kh_txn_currency").label == "Currency"
    button(at, "Create test charge").click().run()
    assert not at.exception, at.exception
    assert "Passed" in at.success[0].value
    [made] = charges(sandbox)
    steps = at.dataframe[0].value
    assert len(steps) == 3 and all("passed" in r for r in steps["result"])
    txn = next(o for o in sandbox.created if o.get("object") == "balance_transaction")
    assert [c.value for c in at.code] == [made["id"], txn["id"]]
    metrics = {m.label: plain(m.value) for m in at.metric}
    # amounts the way the charts show them: major units with the currency's code
    assert metrics["Charge amount"] == "1.00 USD" and metrics["Charge status"] == "succeeded"
    assert metrics["Fee"] == f"{txn['fee'] / 100:,.2f} USD" and metrics["Net"] == f"{txn['net'] / 100:,.2f} USD"

    # a double click (or a retry) returns the same charge
    button(at, "Create test charge").click().run()
    assert len(charges(sandbox)) == 1
    assert any("same idempotency key" in i.value for i in at.info)
    assert at.code[0].value == made["id"]

    # a new intent makes a new charge
    button(at, "Start a new test charge").click().run()
    button(at, "Create test charge").click().run()
    assert len(charges(sandbox)) == 2
    # and a different amount is a different intent
    at.number_input(key="kh_txn_amount").set_value(500).run()
    button(at, "Create test charge").click().run()
    assert [c["amount"] for c in charges(sandbox)] == [100, 100, 500]

    history = store.at(real_env).list_audit(tenant="Acme Coffee Roasters", action="sample_transaction")
    assert [e["outcome"] for e in history] == ["passed"] * 4
    assert DEMO_KEYS["healthy"].key not in json.dumps(history, default=str)


def test_transaction_page_refuses_a_live_key_without_any_request(real_env, sandbox):
    at = page(TXN_PAGE, DEMO_KEYS["live_healthy"].key)
    err = " ".join(plain(e.value) for e in at.error)
    assert err.startswith("Refused:") and "live-mode key" in err
    assert [b.label for b in at.button] == []  # nothing to click
    assert sandbox.requests == []


def test_transaction_page_names_the_missing_permission(real_env, sandbox):
    at = page(TXN_PAGE, DEMO_KEYS["missing"].key)
    button(at, "Create test charge").click().run()
    words = load_catalogue().get("charge").label + " Write"  # the catalogue's label, whatever it is today
    assert f"{words} (rak_charge_write)" in plain(at.error[0].value)
    steps = at.dataframe[0].value
    assert list(steps["detail"]) == [f"failed: the key lacks {words} (rak_charge_write)"]
    assert charges(sandbox) == []


def test_pages_run_inside_the_app(real_env, sandbox):
    at = AppTest.from_file("../../app.py", default_timeout=TIMEOUT)
    at.session_state["kh_key"] = intake(DEMO_KEYS["healthy"].key).key
    at.run()
    assert not at.exception, at.exception
    at.switch_page("app_pages/sample_transaction.py").run()
    assert not at.exception, at.exception
    button(at, "Create test charge").click().run()
    assert any(s.value.startswith("Passed") for s in at.success)
    at.switch_page("app_pages/sample_data.py").run()
    button(at, "Fetch sample data").click().run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 4


def test_sample_data_view_is_audited_even_without_a_tenant(real_env, sandbox):
    at = page(SAMPLE_PAGE, DEMO_KEYS["healthy"].key, tenant=None)
    button(at, "Fetch sample data").click().run()
    assert not at.exception, at.exception
    [entry] = store.at(real_env).list_audit(action="sample_data")
    assert entry["tenant"] is None and entry["outcome"] == "ok"
    assert DEMO_KEYS["healthy"].key not in (entry["detail"] or "")
