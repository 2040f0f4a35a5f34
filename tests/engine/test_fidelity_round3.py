"""Fidelity round three (issue 20), against the sandbox with the real SDK over real HTTP: the key's own edit link in
the tenant message, usage records at their API version, the corrections Stripe's sources call for, the rows and
levels Stripe added, Connect's second column. (Stripe's own permission map in calibration:
tests/recheck/test_calibrate.py.)
"""
from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
import stripe
from support import fast_probe

from core import store
from core.engine.catalogue import (
    PERMISSION_REFERENCE,
    PROBE_PARAM,
    CatalogueError,
    Probe,
    load_catalogue,
    load_profile,
    parse_catalogue,
    parse_profile,
)
from core.engine.check import check_key
from core.engine.probe import Answer, EditLink, Prober, ScopeOutcome, edit_link, interpret, refusal_label
from core.engine.remediation import edit_link_lines
from core.engine.verdict import build_rows
from core.features.calibrate import stripe_map
from core.ui.grid import grid_frame
from core.ui.tenant import history_frame
from sandbox import DEMO_KEYS
from sandbox.server import dashboard_key_id

ROOT = Path(__file__).resolve().parents[2]
FAST = fast_probe(retries=2, timeout_s=2.0)
ACCT = "acct_1AbCdEf"
MK = "mk_1NxYzAbC"
HEAD = (f"Permission denied. The provided key 'rk_test_***1234' does not have the required permissions for this "
        f"endpoint on account '{ACCT}'. Enabling \"Prices Read\" ('plan_read') permissions on this key would allow "
        "this request to continue.")
LINK = f"https://dashboard.stripe.com/b/{ACCT}?destination=%2Fapikeys%2F{MK}%2Fedit"


@pytest.fixture(autouse=True)
def _clean(sandbox):
    sandbox.reset()
    yield
    sandbox.deny_style = "rotate"
    sandbox.implied_permissions = False
    sandbox.faults.clear()


def rk(name: str, mode: str = "test") -> str:
    return f"rk_{mode}_51KeyHealthRoundThree{name}" + "q7R8s9" * 12


def rows_of(result) -> dict:
    return {r.scope: r for r in result.rows if r.scope}


def _perm_error(message: str, code: str | None = "more_permissions_required") -> stripe.PermissionError:
    err = {"message": message, "type": "invalid_request_error"}
    if code:
        err["code"] = code
    return stripe.PermissionError(message, None, 403, json_body={"error": err})


# ------------------------------------------------------------------------------ 1. the key's edit link
def test_the_newest_wording_gives_the_keys_edit_link_label_and_id():
    a = interpret(_perm_error(f"{HEAD} You can edit permissions at {LINK}"), Probe("GET", "/v1/prices/{id}"))
    assert a.kind == "denied" and a.named == ("plan_read",) and a.account == ACCT
    assert a.label == "Prices Read"
    assert a.edit == EditLink(ACCT, MK) and a.edit.url == LINK
    # a trailing full stop is not part of the link
    assert edit_link(f"{HEAD} You can edit permissions at {LINK}.") == EditLink(ACCT, MK)


@pytest.mark.parametrize(
    "message",
    [
        # the four older wordings carry no link: each is still a verdict, none gives an edit link
        "The provided key 'rk_test_***1234' does not have the required permissions for this endpoint on account "
        f"'{ACCT}'. Having the 'rak_charge_read' permission would allow this request to continue.",
        "The provided key 'rk_test_***1234' does not have the required permissions for this endpoint on account "
        f"'{ACCT}'. Having the 'rak_payment_intent_read', 'rak_checkout_session_read' permissions would allow this "
        "request to continue.",
        "The provided key 'rk_test_***1234' does not have the required permissions for this endpoint on account "
        f"'{ACCT}'. Having more permissions would allow this request to continue.",
        HEAD,
    ],
)
def test_the_older_wordings_give_no_link(message):
    a = interpret(_perm_error(message), Probe("GET", "/v1/x"))
    assert a.kind == "denied" and a.edit is None and edit_link(message) is None


@pytest.mark.parametrize(
    "url",
    [
        f"https://evil.example/b/{ACCT}?destination=%2Fapikeys%2F{MK}%2Fedit",  # another host
        f"https://dashboard.stripe.com.evil.example/b/{ACCT}?destination=%2Fapikeys%2F{MK}%2Fedit",
        f"https://dashboard.stripe.com@evil.example/b/{ACCT}?destination=%2Fapikeys%2F{MK}%2Fedit",  # a user part
        f"http://dashboard.stripe.com/b/{ACCT}?destination=%2Fapikeys%2F{MK}%2Fedit",  # not https
        f"https://dashboard.stripe.com:8443/b/{ACCT}?destination=%2Fapikeys%2F{MK}%2Fedit",  # a port
        f"https://dashboard.stripe.com/b/acct_1Other?destination=%2Fapikeys%2F{MK}%2Fedit",  # another account
        f"https://dashboard.stripe.com/b/{ACCT}?destination=https%3A%2F%2Fevil.example",  # an open redirect
        f"https://dashboard.stripe.com/b/{ACCT}?destination=%2Fapikeys%2F{MK}%2Fedit&next=x",  # an extra parameter
        f"https://dashboard.stripe.com/b/{ACCT}?destination=%2Fapikeys%2Fmk_1%3Cb%3E%2Fedit",  # markup in the id
        f"javascript:alert(1)//dashboard.stripe.com/b/{ACCT}",
        f"https://dashboard.stripe.com/b/{ACCT}?destination=%2Fapikeys%2F{MK}%2Fedit#frag",
    ],
)
def test_an_edit_link_to_anything_else_is_dropped(url):
    assert edit_link(f"{HEAD} You can edit permissions at {url}") is None


def test_a_label_is_plain_text_of_bounded_length():
    assert refusal_label(HEAD) == "Prices Read"
    assert refusal_label('Enabling "' + "x" * 200 + '" (\'plan_read\') permissions') is None
    assert refusal_label("Having the 'rak_charge_read' permission") is None


def test_tenant_message_carries_the_edit_link_exactly_when_stripe_gave_it(sandbox, sandbox_client):
    demo = DEMO_KEYS["missing"]
    expected = f"https://dashboard.stripe.com/b/{demo.account}?destination=%2Fapikeys%2F{dashboard_key_id(demo.key)}%2Fedit"
    sandbox.deny_style = "newest"
    r = check_key(demo.key, client=sandbox_client, settings=FAST)
    assert r.status == "failing"
    assert r.key_dashboard_id == dashboard_key_id(demo.key) and r.edit_link == expected
    assert f"Open your key's edit page: {expected}" in r.message
    assert r.to_json()["edit_link"] == expected and r.to_json()["key_dashboard_id"] == r.key_dashboard_id
    # the key is never in the link, the message or the id
    assert demo.key not in r.message and demo.key[8:] not in expected

    for style in ("single", "several", "none", "newer"):  # no link in the refusal: no line
        sandbox.deny_style = style
        r = check_key(demo.key, client=sandbox_client, settings=FAST)
        assert r.status == "failing" and r.edit_link is None and r.key_dashboard_id is None, style
        assert "edit page" not in r.message, style

    # a healthy key is refused too (for what Pointai does not need), but the message asks for no change
    sandbox.deny_style = "newest"
    ok = check_key(DEMO_KEYS["healthy"].key, client=sandbox_client, settings=FAST)
    assert ok.status == "healthy" and ok.edit_link is not None
    assert "edit page" not in ok.message and edit_link_lines(ok) == []


def test_a_link_for_another_account_never_reaches_the_message(sandbox, sandbox_client):
    """The link must name the very account the refusal names; a result for another account drops it."""
    from core.engine.check import assemble

    demo = DEMO_KEYS["missing"]
    sandbox.deny_style = "newest"
    r = check_key(demo.key, client=sandbox_client, settings=FAST)
    outcomes = {row.scope: ScopeOutcome(row.scope, row.granted) for row in r.rows if row.scope and row.granted}
    other = assemble(r.key, outcomes, catalogue=load_catalogue(), profile=load_profile(), account="acct_1Other",
                     edit=EditLink(demo.account, "mk_1Foreign"))
    assert other.status == "failing" and other.edit_link is None and "edit page" not in other.message


def test_a_re_probe_keeps_the_link_of_the_full_check(sandbox, sandbox_client):
    demo = DEMO_KEYS["missing"]
    sandbox.deny_style = "newest"
    first = check_key(demo.key, client=sandbox_client, settings=FAST)
    sandbox.deny_style = "single"
    again = check_key(demo.key, client=sandbox_client, settings=FAST, only={"invoice"}, previous=first)
    assert again.edit_link == first.edit_link and "Open your key's edit page" in again.message


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_the_dashboard_id_is_kept_with_the_check_and_shown(sandbox, sandbox_client, store_url):
    demo = DEMO_KEYS["missing"]
    sandbox.deny_style = "newest"
    r = check_key(demo.key, client=sandbox_client, settings=FAST)
    s = store.at(store_url)
    s.record_check(r, "Acme", source="cli", checked_by="ops")
    sandbox.deny_style = "single"
    s.record_check(check_key(demo.key, client=sandbox_client, settings=FAST), "Acme", source="cli", checked_by="ops")
    history = s.tenant_history("acme")
    assert [h["key_dashboard_id"] for h in history] == [None, dashboard_key_id(demo.key)]
    frame = history_frame(history)
    assert list(frame["Key id"]) == ["", dashboard_key_id(demo.key)]
    # a malformed id is never stored
    s.record_check(replace(r, key_dashboard_id="mk_<script>"), "Acme", source="cli", checked_by="ops")
    assert s.tenant_history("acme")[0]["key_dashboard_id"] is None


# ------------------------------------------------------------------------ 2. usage records by API version
def test_usage_records_are_version_gated_in_the_sandbox(sandbox, sandbox_client):
    key = rk("UsageGate")
    sandbox.add_key(key, {"rak_usage_record_read"})
    path = "/v1/subscription_items/si_keyhealth/usage_record_summaries"
    with pytest.raises(stripe.InvalidRequestError) as e:  # the SDK's own (basil or later) version: gone
        sandbox_client.raw_request("get", path, api_key=key)
    assert "Unrecognized request URL" in e.value.user_message
    with pytest.raises(stripe.InvalidRequestError) as e:  # an older version still reaches it: no such item
        sandbox_client.raw_request("get", path, api_key=key, stripe_version="2025-02-24.acacia")
    assert e.value.code == "resource_missing"
    sandbox.add_key(rk("UsageNone"), set())
    with pytest.raises(stripe.PermissionError):
        sandbox_client.raw_request("get", path, api_key=rk("UsageNone"), stripe_version="2025-02-24.acacia")


def test_usage_records_are_probed_at_their_api_version_only():
    cat = load_catalogue()
    ur = cat.get("usage_record")
    for p in (ur.read, ur.write):
        assert p.api_version == "2025-02-24.acacia" and p.options()["stripe_version"] == "2025-02-24.acacia"
    assert "2025-02-24.acacia" in ur.absent_api and "even at API version" in ur.absent_api
    for s in cat.scopes:  # no other probe changes the version
        if s.scope != "usage_record":
            for p in (s.read, s.write):
                assert p is None or ("stripe_version" not in p.options() and p.api_version is None), s.scope


def test_usage_records_are_settled_not_written_off(sandbox, sandbox_client):
    healthy = check_key(DEMO_KEYS["healthy"].key, client=sandbox_client, settings=FAST)
    row = rows_of(healthy)["usage_record"]
    assert (row.granted, row.verdict) == ("none", "ok")  # answered at its version (before: not applicable)
    key = rk("UsageRead")
    sandbox.add_key(key, set(DEMO_KEYS["healthy"].permissions) | {"rak_usage_record_write"},
                    account=DEMO_KEYS["healthy"].account)
    r = check_key(key, client=sandbox_client, settings=FAST)
    assert (rows_of(r)["usage_record"].granted, rows_of(r)["usage_record"].verdict) == ("write", "excess")
    assert sandbox.created == [] and sandbox.writes == []


def test_a_bad_api_version_is_refused_by_the_loader():
    bad = ('[[scope]]\nscope = "usage_record"\nlabel = "Usage Records"\ncategory = "Billing"\nlevels = ["read"]\n'
           'read = { method = "GET", path = "/v1/subscription_items/{id}/usage_record_summaries", '
           'api_version = "acacia" }\n')
    with pytest.raises(CatalogueError, match="api_version 'acacia'"):
        parse_catalogue(tomllib.loads(bad))


# ------------------------------------------------------------------------------------ 3. corrections
def test_transfers_imply_payouts_read_only():
    cat, prof = load_catalogue(), load_profile()
    assert cat.get("transfer").implies == ("payout_read",)
    assert "Read and Write" not in cat.get("payout").note and "Payouts Read" in cat.get("payout").note
    (item,) = [i for i in prof.items if i.scopes == ("transfer",)]
    assert "Payouts Read (not Write)" in item.note
    assert prof.implied["payout"][0] == "read"


def test_prices_implies_products_is_shown_as_unverified():
    cat = load_catalogue()
    assert cat.get("plan").implies_unverified == ("product_read",)
    prof = parse_profile({"item": [{"guide": "Prices", "level": "write", "scopes": ["plan"]}]}, cat)
    assert prof.unverified == {"product"}
    rows = {r.scope: r for r in build_rows(cat, prof, {"plan": ScopeOutcome("plan", "write"),
                                                      "product": ScopeOutcome("product", "read")})}
    product = rows["product"]
    assert (product.verdict, product.implied, product.implied_unverified) == ("ok", True, True)
    assert "unverified" in product.note
    frame = grid_frame(list(rows.values()))
    line = frame.loc[frame["Scope"] == "rak_product"].iloc[0]
    assert line["Verdict"] == "implied (unverified)" and "unverified" in line["What to do"]
    # a verified implication stays plain "allowed (implied)"
    prof2 = parse_profile({"item": [{"guide": "Sessions", "level": "write", "scopes": ["checkout_session"]}]}, cat)
    rows2 = {r.scope: r for r in build_rows(cat, prof2, {"checkout_session": ScopeOutcome("checkout_session", "write"),
                                                       "product": ScopeOutcome("product", "read")})}
    assert rows2["product"].implied and not rows2["product"].implied_unverified


def test_the_loader_refuses_an_implication_listed_twice():
    bad = ('[[scope]]\nscope = "product"\nlabel = "Products"\ncategory = "Core"\nlevels = ["read"]\n'
           'read = { method = "GET", path = "/v1/products/{id}" }\n'
           '[[scope]]\nscope = "plan"\nlabel = "Prices"\ncategory = "Billing"\nlevels = ["read"]\n'
           'read = { method = "GET", path = "/v1/prices/{id}" }\nimplies = ["product_read"]\n'
           'implies_unverified = ["product_read"]\n')
    with pytest.raises(CatalogueError, match="both in implies and in implies_unverified"):
        parse_catalogue(tomllib.loads(bad))


def test_meter_event_summaries_say_a_granted_key_gets_400():
    s = load_catalogue().get("billing_meter_event")
    assert "400" in s.note and "customer, start_time and end_time" in s.note
    err = stripe.InvalidRequestError("Missing required param: customer.", "customer", code="parameter_missing",
                                     http_status=400, json_body={"error": {"code": "parameter_missing"}})
    assert interpret(err, s.read).kind == "granted"


def test_customer_portal_write_is_probed_on_sessions_without_creating(sandbox, sandbox_client):
    s = load_catalogue().get("customer_portal")
    assert (s.write.method, s.write.path, s.write.params) == ("POST", "/v1/billing_portal/sessions",
                                                              {PROBE_PARAM: "1"})
    assert s.read.provenance == "inferred" and s.provenance == "error"
    key = rk("Portal")
    sandbox.add_key(key, set(DEMO_KEYS["healthy"].permissions) | {"rak_customer_portal_write"},
                    account=DEMO_KEYS["healthy"].account)
    r = check_key(key, client=sandbox_client, settings=FAST)
    assert (rows_of(r)["customer_portal"].granted, rows_of(r)["customer_portal"].verdict) == ("write", "excess")
    sent = [x for x in sandbox.requests if x.path == "/v1/billing_portal/sessions"]
    assert [x.status for x in sent] == [400]
    assert sandbox.created == [] and sandbox.writes == []


def test_connect_refusal_names_and_kyc_basic_decided_by_the_name():
    cat = load_catalogue()
    assert "accounts_kyc_id_numbers_read" in cat.get("connected_account").refusal_names
    kyc = cat.get("accounts_kyc_basic")
    assert kyc.verdict_by_name and "connected_account_read" in kyc.note and "refusal" in kyc.note
    prober = Prober(rk("KycByName"), "test", settings=FAST)

    def said(msg):
        return interpret(_perm_error(f"The provided key does not have the required permissions for this endpoint on "
                                     f"account '{ACCT}'. {msg}"), kyc.read)

    own = said("Having the 'rak_accounts_kyc_basic_read' permission would allow this request to continue.")
    other = said("Having the 'rak_connected_account_read' permission would allow this request to continue.")
    nameless = said("Having more permissions would allow this request to continue.")
    assert prober._settle(kyc, own, "read") == ("denied", None)
    assert prober._settle(kyc, nameless, "read") == ("denied", None)
    verdict, why = prober._settle(kyc, other, "read")
    assert verdict == "unknown" and "rak_connected_account_read" in why
    # without the flag, any refusal is a verdict (every other row)
    assert prober._settle(cat.get("charge"), other, "read") == ("denied", None)


def test_verdict_by_name_needs_a_note_saying_so():
    bad = ('[[scope]]\nscope = "accounts_kyc_basic"\nlabel = "Basic"\ncategory = "Connect"\nlevels = ["read"]\n'
           'read = { method = "GET", path = "/v1/account" }\nverdict_by_name = true\n')
    with pytest.raises(CatalogueError, match="verdict_by_name"):
        parse_catalogue(tomllib.loads(bad))


def test_names_provenance_and_labels_follow_the_sources():
    cat = load_catalogue()
    assert cat.get("business_network_profile").provenance == "inferred"
    tok = cat.get("issuing_token")
    assert "issuing_network_token" not in cat
    assert set(tok.refusal_names) == {"issuing_network_token_read", "issuing_network_token_write"}
    assert tok.permission("read") == "rak_issuing_token_read"
    fi = cat.get("funding_instructions")
    assert fi.low_confidence and fi.note.startswith("Low confidence") and "TruffleHog" in fi.note
    assert cat.get("identity_verification_detailed_results").label == "Access recent detailed verification results"
    assert cat.get("identity_verification_sensitive_results").label == "Access all detailed verification results"
    order = cat.get("order")
    assert order.absent_api.startswith("Not applicable under the API version Key Health uses")
    assert "has no Orders" not in order.absent_api and "beta" in order.note


def test_the_loader_refuses_low_confidence_docs_and_bad_refusal_names():
    low = ('[[scope]]\nscope = "funding_instructions"\nlabel = "Funding"\ncategory = "Issuing"\nlevels = ["read"]\n'
           'unchecked = "No endpoint of its own."\nprovenance = "docs"\nlow_confidence = true\n')
    with pytest.raises(CatalogueError, match="low-confidence"):
        parse_catalogue(tomllib.loads(low))
    bad_name = ('[[scope]]\nscope = "top_up"\nlabel = "Top-ups"\ncategory = "Connect"\nlevels = ["read"]\n'
                'read = { method = "GET", path = "/v1/topups/{id}" }\nrefusal_names = ["rak_topup_read"]\n')
    with pytest.raises(CatalogueError, match="refusal name 'rak_topup_read'"):
        parse_catalogue(tomllib.loads(bad_name))
    bad_prov = ('[[scope]]\nscope = "event"\nlabel = "Events"\ncategory = "Core"\nlevels = ["read"]\n'
                'read = { method = "GET", path = "/v1/events/{id}", provenance = "blog" }\n')
    with pytest.raises(CatalogueError, match="probe provenance 'blog'"):
        parse_catalogue(tomllib.loads(bad_prov))


def test_the_catalogue_header_cites_stripes_permission_reference():
    text = (ROOT / "data" / "catalogue.toml").read_text(encoding="utf-8")
    header = text.split("[[scope]]", 1)[0]
    assert PERMISSION_REFERENCE == "docs.stripe.com/keys/permissions-reference"
    assert PERMISSION_REFERENCE in header


# ---------------------------------------------------------------------------------- 4. levels and rows
NEW_ROWS = {
    # scope: (levels, read probe, write probe or None, provenance)
    "account_session": (("write",), None, ("POST", "/v1/account_sessions"), "docs"),
    "secret": (("read", "write"), ("GET", "/v1/apps/secrets"), ("POST", "/v1/apps/secrets"), "inferred"),
    "payment_records": (("read", "write"), ("GET", "/v1/payment_records/{id}"),
                        ("POST", "/v1/payment_records/{id}/report_payment_attempt"), "inferred"),
    "tax_locations": (("read", "write"), ("GET", "/v1/tax/locations/{id}"), ("POST", "/v1/tax/locations"),
                      "inferred"),
    "financial_account": (("read",), ("GET", "/v1/treasury/financial_accounts/{id}"), None, "inferred"),
    "treasury_transaction": (("read",), ("GET", "/v1/treasury/transactions/{id}"), None, "inferred"),
    "v2_account_storer": (("read", "write"), ("GET", "/v2/core/accounts"), None, "error"),
}


def test_the_new_levels_are_offered_and_checked_or_explained():
    cat = load_catalogue()
    for scope, level in (("confirmation_token_client", "read"), ("customer_session", "read"), ("mandate", "write")):
        s = cat.get(scope)
        assert level in s.levels and level in s.unchecked_levels and len(s.unchecked) > 60, scope
    rr = cat.get("report_runs_and_report_types")
    assert rr.levels == ("read", "write")
    assert (rr.write.method, rr.write.path, rr.write.params) == ("POST", "/v1/reporting/report_runs",
                                                                 {PROBE_PARAM: "1"})


def test_the_new_rows_have_side_effect_free_probes_or_a_reason():
    cat = load_catalogue()
    for scope, (levels, read, write, provenance) in NEW_ROWS.items():
        s = cat.get(scope)
        assert (s.levels, s.provenance) == (levels, provenance), scope
        assert (None if s.read is None else (s.read.method, s.read.path)) == read, scope
        assert (None if s.write is None else (s.write.method, s.write.path)) == write, scope
        if s.write is not None and "{id}" not in s.write.path:
            assert s.write.params == {PROBE_PARAM: "1"}, scope
        for lv in s.levels:
            assert lv in s.checked_levels or (s.unchecked and lv in s.unchecked_levels), (scope, lv)
    for s in cat.scopes:
        if s.category == "Treasury":
            assert s.levels == ("read",) and s.provenance == "inferred" and s.read is not None


def test_the_new_rows_are_settled_against_the_sandbox_without_creating(sandbox, sandbox_client):
    healthy = check_key(DEMO_KEYS["healthy"].key, client=sandbox_client, settings=FAST)
    assert healthy.status == "healthy"
    rows = rows_of(healthy)
    for scope in (*NEW_ROWS, "report_runs_and_report_types"):
        assert (rows[scope].granted, rows[scope].verdict) == ("none", "ok"), scope
    key = rk("NewRows")
    extra = {"rak_account_session_write", "rak_secret_write", "rak_payment_records_write", "rak_tax_locations_write",
             "rak_financial_account_read", "rak_treasury_transaction_read", "rak_v2_account_storer_read",
             "rak_report_runs_and_report_types_write"}
    sandbox.add_key(key, set(DEMO_KEYS["healthy"].permissions) | extra, account=DEMO_KEYS["healthy"].account)
    r = check_key(key, client=sandbox_client, settings=FAST)
    rows = rows_of(r)
    want = {"account_session": "write", "secret": "write", "payment_records": "write", "tax_locations": "write",
            "financial_account": "read", "treasury_transaction": "read", "v2_account_storer": "read",
            "report_runs_and_report_types": "write"}
    for scope, level in want.items():
        assert (rows[scope].granted, rows[scope].verdict) == (level, "excess"), scope
    assert sandbox.created == [] and sandbox.writes == []


# ------------------------------------------------------------------------------- 6. Connect's second column
def test_every_connect_row_says_only_the_keys_own_account_is_probed():
    cat = load_catalogue()
    connect = [s for s in cat.scopes if s.category == "Connect"]
    assert len(connect) >= 10
    for s in connect:
        assert "Stripe-Account" in (s.note or "") and "connected accounts" in s.note, s.scope
    for s in cat.scopes:  # and no probe targets a connected account
        for p in (s.read, s.write):
            assert p is None or "Stripe-Account" not in p.params, s.scope
    assert not any("Stripe-Account" in (s.note or "") for s in cat.scopes if s.category != "Connect")


# ------------------------------------------------------------------------------ 5. the map, best effort
def test_stripes_map_refuses_restricted_keys_and_that_is_reported_not_raised(sandbox, sandbox_client):
    key = rk("MapRefused")
    sandbox.add_key(key, {"*"})
    out = stripe_map(key, load_catalogue(), FAST, sandbox_client)
    assert out["available"] is False and "not available" in out["error"] and "secret key" in out["error"]
    assert out["requests"] == 1 and out["entries"] == []
    assert key not in str(out)


def test_stripes_map_answers_for_a_standard_key(sandbox, sandbox_client):
    resp = sandbox_client.raw_request("post", "/v1/stripecli/key_permissions", api_key=DEMO_KEYS["standard"].key,
                                      endpoints=["GET /v1/customers", "GET /v1/charges/:id", "GET /v1/nothing"])
    data = resp.data
    assert data["permissions"] == ["rak_customer_read", "rak_charge_read"]
    assert data["unresolved_endpoints"] == [{"endpoint": "GET /v1/nothing", "reason": "Unrecognized endpoint"}]


def test_answer_dataclass_defaults_are_empty():
    a = Answer("granted", 200, "answered 2xx")
    assert a.label is None and a.edit is None


def test_a_refusal_naming_an_unknown_permission_shows_stripes_label():
    from core.engine.verdict import named_note

    cat = load_catalogue()
    charge = cat.get("charge")
    assert named_note(cat, charge, ("brand_new_read",), "Brand New Read") == "rak_brand_new_read (Brand New Read)"
    assert named_note(cat, charge, ("brand_new_read",)) == "rak_brand_new_read"
    # a name the catalogue knows keeps the catalogue's label
    assert named_note(cat, charge, ("plan_read",), "Something Else") == "rak_plan_read (Prices)"
