"""`python -m core test-transaction` as a user runs it: a subprocess talking to the sandbox over real HTTP."""
from __future__ import annotations

import json

import pytest

from core import store
from core.engine.catalogue import load_catalogue
from sandbox import DEMO_KEYS


@pytest.fixture(autouse=True)
def _clean(sandbox):
    sandbox.reset()
    yield
    sandbox.faults.clear()




def charges(sandbox):
    return [o for o in sandbox.created if o.get("object") == "charge"]


# --- test-transaction ----------------------------------------------------------------------------------
def test_transaction_json_and_repeat_makes_one_charge(sandbox, tmp_path, core_cli):
    key = DEMO_KEYS["healthy"].key
    first = core_cli("test-transaction", "--json", key=key)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["status"] == "passed" and out["problem"] is None
    assert [s["name"] for s in out["steps"]] == ["create_charge", "read_charge", "balance_transaction"]
    assert all(set(s) >= {"name", "result", "elapsed_s", "detail"} and s["result"] == "passed" for s in out["steps"])
    assert set(out["charge"]) >= {"id", "amount", "currency", "status"}
    assert out["charge"]["amount"] == 100 and out["charge"]["currency"] == "usd"
    assert out["balance_transaction"].startswith("txn_")
    second = core_cli("test-transaction", "--json", key=key)
    assert second.returncode == 0
    assert json.loads(second.stdout)["charge"]["id"] == out["charge"]["id"]
    assert len(charges(sandbox)) == 1
    assert key not in first.stdout + second.stdout


def test_transaction_live_key_refused_with_zero_posts(sandbox, tmp_path, core_cli):
    p = core_cli("test-transaction", "--json", key=DEMO_KEYS["live_healthy"].key)
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert out["status"] == "refused" and "live" in out["problem"]
    assert out["steps"] == [] and out["charge"] is None and out["balance_transaction"] is None
    assert [r for r in sandbox.requests if r.method == "POST"] == [] and sandbox.requests == []


def test_transaction_without_charges_write(sandbox, tmp_path, core_cli):
    p = core_cli("test-transaction", "--json", key=DEMO_KEYS["missing"].key)
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert out["status"] == "failed" and "rak_charge_write" in out["problem"]
    assert out["missing_permission"] == "rak_charge_write"
    words = load_catalogue().get("charge").label + " Write"  # the catalogue's label, whatever it is today
    assert out["steps"][0]["detail"] == f"failed: the key lacks {words} (rak_charge_write)"
    assert charges(sandbox) == []


def test_transaction_table_amount_currency_and_tenant(sandbox, tmp_path, core_cli):
    db = tmp_path / "kh.db"
    p = core_cli("test-transaction", "--amount", "700", "--currency", "eur", "--tenant", "Acme Shop",
            key=DEMO_KEYS["healthy"].key, DATABASE_URL=f"sqlite:///{db}")
    assert p.returncode == 0, p.stderr
    assert "PASSED" in p.stdout and "700 eur" in p.stdout and "balance transaction txn_" in p.stdout

    [entry] = store.at(f"sqlite:///{db}").list_audit(tenant="Acme Shop")
    assert entry["action"] == "sample_transaction" and entry["outcome"] == "passed"
    assert json.loads(entry["detail"])["charge"]["amount"] == 700


def test_transaction_bad_amount_is_refused(sandbox, tmp_path, core_cli):
    p = core_cli("test-transaction", "--json", "--amount", "0", key=DEMO_KEYS["healthy"].key)
    assert p.returncode == 1
    assert json.loads(p.stdout)["status"] == "refused"
    assert sandbox.requests == []
