"""Masking, frames and payment charts without the network."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd
import pytest

from core.features.sample import (
    DATASETS,
    MASK_ADDRESS,
    MASK_EMAIL,
    MASK_NAME,
    MASK_PHONE,
    Masker,
    build_frame,
    columns,
    fetch_sample_data,
    mask_personal,
)
from core.ui.charts import payments

CHARGE = {
    "id": "ch_1",
    "object": "charge",
    "created": 1_700_000_000,
    "amount": 1234,
    "currency": "usd",
    "status": "succeeded",
    "description": "Order for Grace Hopper, grace.hopper7@example.com, +1 555 0142",
    "receipt_email": "grace.hopper7@example.com",
    "billing_details": {
        "name": "Grace Hopper",
        "email": "grace.hopper7@example.com",
        "phone": "+1 555 0142",
        "address": {"line1": "12 Harbour Road", "line2": None, "city": "Dublin", "postal_code": "D02 X285",
                    "state": None, "country": "IE"},
    },
    "shipping": {"name": "G. Hopper", "phone": "(555) 010-0199", "address": {"line1": "1 Elm Avenue", "country": "US"}},
    "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242", "exp_year": 2030}},
    "metadata": {"customer_name": "Grace Hopper", "note": "call 555-010-0199 or mail grace@hopper.example"},
    "customer": {"id": "cus_1", "object": "customer", "name": "Grace Hopper", "email": "g@h.example",
                 "tax_ids": {"object": "list", "data": [{"value": "IE1234567T"}]}},
}


def _all_strings(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _all_strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _all_strings(v)
    elif isinstance(obj, str):
        yield obj


def test_masks_by_field_name_and_pattern_recursively():
    m = mask_personal(CHARGE)
    text = json.dumps(m)
    for secret in ("Grace", "Hopper", "grace.hopper7@example.com", "grace@hopper.example", "g@h.example",
                   "555 0142", "010-0199", "Harbour Road", "Elm Avenue", "Dublin", "D02 X285", "IE1234567T"):
        assert secret not in text, secret
    assert m["billing_details"]["name"] == MASK_NAME
    assert m["billing_details"]["email"] == MASK_EMAIL
    assert m["billing_details"]["phone"] == MASK_PHONE
    assert m["billing_details"]["address"]["line1"] == MASK_ADDRESS
    assert m["billing_details"]["address"]["country"] == "IE"  # a country alone identifies nobody
    assert m["billing_details"]["address"]["line2"] is None  # absence stays visible
    assert m["receipt_email"] == MASK_EMAIL
    assert m["metadata"]["customer_name"] == MASK_NAME
    assert m["metadata"]["note"] == f"call {MASK_PHONE} or mail {MASK_EMAIL}"
    assert m["description"] == f"Order for {MASK_NAME}, {MASK_EMAIL}, {MASK_PHONE}"
    # card brand and last 4 stay, as do ids, amounts and times
    assert m["payment_method_details"]["card"] == {"brand": "visa", "last4": "4242", "exp_year": 2030}
    assert (m["id"], m["amount"], m["created"], m["currency"]) == ("ch_1", 1234, 1_700_000_000, "usd")
    assert CHARGE["billing_details"]["name"] == "Grace Hopper"  # the input is not changed


def test_product_and_price_names_are_not_personal():
    product = {"id": "prod_1", "object": "product", "name": "Pointai Pro", "description": "Pointai Pro plan"}
    assert mask_personal(product) == product
    # ...but a bare `name` (billing details, shipping, metadata) is
    assert mask_personal({"name": "Pointai Pro"}) == {"name": MASK_NAME}


def test_config_flags_are_kept():
    session = {"object": "checkout.session", "phone_number_collection": {"enabled": False},
               "billing_address_collection": "auto", "customer_email": None}
    assert mask_personal(session) == session


def test_learned_values_are_masked_across_objects():
    masker = Masker()
    a = {"billing_details": {"name": "Ada Lovelace"}}
    b = {"object": "invoice", "description": "Thanks, ada lovelace!"}
    masker.learn([a, b])
    assert masker.mask(b)["description"] == f"Thanks, {MASK_NAME}!"


def test_dates_and_ids_are_not_taken_for_phone_numbers():
    s = "2024-01-05 ch_3MmlLrLkdIwHu7ix0snN0B15 order 1234567 amount 4242"
    assert Masker().mask_text(s) == s


def test_frames_have_fixed_columns_and_utc_times():
    df = build_frame("charges", [mask_personal(CHARGE)])
    assert list(df.columns) == columns("charges")
    assert df.loc[0, "created"] == pd.Timestamp(1_700_000_000, unit="s", tz="UTC")
    assert (df.loc[0, "card_brand"], df.loc[0, "card_last4"]) == ("visa", "4242")
    assert df.loc[0, "billing_name"] == MASK_NAME
    assert df.loc[0, "customer"] == "cus_1"
    for spec in DATASETS:
        empty = build_frame(spec.name, [])
        assert empty.empty and list(empty.columns) == columns(spec.name)


def test_balance_frame_sums_per_currency():
    b = {"object": "balance", "available": [{"amount": 100, "currency": "usd"}, {"amount": 5, "currency": "eur"}],
         "pending": [{"amount": 7, "currency": "usd"}]}
    df = build_frame("balance", [b])
    assert df.to_dict("records") == [
        {"currency": "eur", "available": 5, "pending": 0},
        {"currency": "usd", "available": 100, "pending": 7},
    ]


@pytest.mark.parametrize("kw", [{"window_days": 0}, {"window_days": 366}, {"max_rows": 0}, {"max_rows": 1001},
                                {"window_days": 1.5}])
def test_bad_bounds_are_one_sentence(kw):
    with pytest.raises(ValueError) as e:
        fetch_sample_data("rk_test_" + "a" * 30, **kw)
    assert str(e.value).endswith(".") and "\n" not in str(e.value)


def test_refused_key_makes_no_request():
    data = fetch_sample_data("pk_test_" + "a" * 30)  # no client given: it must not even need one
    assert data.problem and "publishable" in data.problem
    assert data.datasets == [] and data.requests == 0


# --- charts -------------------------------------------------------------------------------------
def _charges():
    t = lambda d, h=12: int(datetime(2026, 3, d, h, tzinfo=timezone.utc).timestamp())  # noqa: E731
    rows = [
        {"id": "a", "created": t(1), "amount": 1000, "currency": "usd", "status": "succeeded"},
        {"id": "b", "created": t(1, 23), "amount": 500, "currency": "usd", "status": "failed"},
        {"id": "c", "created": t(1), "amount": 300, "currency": "usd", "status": "succeeded"},
        {"id": "d", "created": t(2), "amount": 700, "currency": "eur", "status": "succeeded"},
        {"id": "e", "created": t(2), "amount": 1000, "currency": "jpy", "status": "pending"},
        {"id": "f", "created": t(3), "amount": 200, "currency": "usd", "status": "failed"},
    ]
    return build_frame("charges", rows)


def test_daily_by_status_counts_and_major_units():
    per = payments.daily_by_status(_charges())
    got = {(str(r.day.date()), r.currency, r.status): (r.count, r.volume) for r in per.itertuples()}
    assert got == {
        ("2026-03-01", "usd", "succeeded"): (2, 13.0),
        ("2026-03-01", "usd", "failed"): (1, 5.0),
        ("2026-03-02", "eur", "succeeded"): (1, 7.0),
        ("2026-03-02", "jpy", "pending"): (1, 1000.0),  # zero-decimal currency
        ("2026-03-03", "usd", "failed"): (1, 2.0),
    }


def test_success_rate_ignores_pending():
    rate = payments.daily_success_rate(_charges())
    got = {str(r.day.date()): r.rate for r in rate.itertuples()}
    assert got["2026-03-01"] == pytest.approx(66.7)
    assert got["2026-03-02"] == 100.0
    assert got["2026-03-03"] == 0.0


def test_figures():
    ch = _charges()
    vol = payments.daily_volume(ch)
    assert {t.name for t in vol.data} == {"succeeded", "failed", "pending"}
    assert len(vol.layout.annotations) == 3  # one panel title per currency
    count = payments.daily_count(ch)
    assert sum(sum(t.y) for t in count.data) == 6
    sr = payments.success_rate(ch)
    assert list(sr.data[0].y) == pytest.approx([66.7, 100.0, 0.0])
    bal = payments.balance_by_currency(build_frame("balance", [{"available": [{"amount": 12345, "currency": "usd"}],
                                                                 "pending": [{"amount": 55, "currency": "usd"}]}]))
    assert [t.name for t in bal.data] == ["available", "pending"]
    assert list(bal.data[0].y) == [123.45] and list(bal.data[1].y) == [0.55]


def test_empty_figures_say_why():
    empty = build_frame("charges", [])
    fig = payments.daily_volume(empty, empty_message="The key lacks Charges Read (rak_charge_read).")
    assert fig.data == () and "rak_charge_read" in fig.layout.annotations[0].text
    assert payments.success_rate(empty).layout.annotations
    assert payments.balance_by_currency(build_frame("balance", [])).layout.annotations
