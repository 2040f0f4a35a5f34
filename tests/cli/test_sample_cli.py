"""`python -m core sample-data` as a user runs it: a subprocess talking to the sandbox over real HTTP."""
from __future__ import annotations

import json
import re

import pytest

from core.features.sample import DATASET_NAMES
from sandbox import DEMO_KEYS


@pytest.fixture(autouse=True)
def _clean(sandbox):
    sandbox.reset()
    yield
    sandbox.faults.clear()




# --- sample-data -------------------------------------------------------------------------------------
def test_sample_data_json(sandbox, tmp_path, core_cli):
    p = core_cli("sample-data", "--json", key=DEMO_KEYS["missing"].key)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [d["name"] for d in out["datasets"]] == list(DATASET_NAMES)
    by = {d["name"]: d for d in out["datasets"]}
    for d in out["datasets"]:
        assert set(d) >= {"name", "state", "permission", "reason", "rows"}
        assert d["state"] in ("loaded", "empty", "not_permitted", "failed")
    assert (by["invoices"]["state"], by["invoices"]["permission"]) == ("not_permitted", "rak_invoice_read")
    assert by["invoices"]["rows"] == []
    charges = by["charges"]
    assert charges["state"] == "loaded" and charges["permission"] is None and charges["reason"] is None
    row = by["charges"]["rows"][0]
    assert row["id"].startswith("ch_") and re.fullmatch(r"\d{4}-\d\d-\d\dT.*Z", row["created"])
    assert row["billing_email"] == "[email]"
    assert not re.search(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}", p.stdout)  # no email anywhere
    assert DEMO_KEYS["missing"].key not in p.stdout + p.stderr
    assert all(r.method == "GET" for r in sandbox.requests)


def test_sample_data_key_on_standard_input_and_table(sandbox, tmp_path, core_cli):
    p = core_cli("sample-data", "--dataset", "charges", "--dataset", "balance", "--rows", "5",
            stdin=DEMO_KEYS["healthy"].key + "\n")
    assert p.returncode == 0, p.stderr
    assert "Charges" in p.stdout and "loaded" in p.stdout and "5 rows (capped)" in p.stdout
    assert "Invoices" not in p.stdout


def test_sample_data_failed_dataset_exits_1(sandbox, tmp_path, core_cli):
    sandbox.faults.fail("/v1/products", status=500)
    p = core_cli("sample-data", "--json", key=DEMO_KEYS["healthy"].key, KEYHEALTH_RETRIES="1")
    assert p.returncode == 1
    by = {d["name"]: d for d in json.loads(p.stdout)["datasets"]}
    assert by["products"]["state"] == "failed" and "500" in by["products"]["reason"]


def test_sample_data_bad_bounds_is_a_usage_error(sandbox, tmp_path, core_cli):
    p = core_cli("sample-data", "--days", "0", key=DEMO_KEYS["healthy"].key)
    assert p.returncode == 2
    assert p.stderr.strip().startswith("error: The time window") and "Traceback" not in p.stderr
    assert sandbox.requests == []


def test_sample_data_refused_key(sandbox, tmp_path, core_cli):
    p = core_cli("sample-data", "--json", key="pk_test_" + "b" * 30)
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert out["datasets"] == [] and "publishable" in out["problem"]
    assert sandbox.requests == []
