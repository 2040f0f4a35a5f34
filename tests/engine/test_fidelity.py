"""Fidelity to real Stripe (issue 11), proved against the sandbox with the real SDK over real HTTP:
Connect Accounts Read and Write, 403s read by their body, KYC permissions, Orders / SKUs / Balance Transfers that
are gone for some accounts, live keys on test helpers, implied permissions, the guide's traps, provenance."""
from __future__ import annotations

import pytest
import stripe
from support import fast_probe

from core.engine.catalogue import PROBE_PARAM, Catalogue, Probe, Scope, load_catalogue, load_profile
from core.engine.check import check_key
from core.engine.probe import Prober, interpret, named_permissions
from core.engine.remediation import DISCOUNTS_NOTE, URL_FIELD_NOTE
from core.ui.grid import INFERRED_NOTE, VERDICT_STYLE, grid_frame, styled_grid
from sandbox import DEMO_KEYS
from sandbox.server import SANDBOX_ACCOUNT

FAST = fast_probe(retries=2, timeout_s=2.0)
LEGACY = ("order", "sku", "balance_transfer")  # usage records are version-gated instead (issue 20)


@pytest.fixture(autouse=True)
def _clean(sandbox):
    sandbox.reset()
    yield
    sandbox.deny_style = "rotate"
    sandbox.implied_permissions = False
    sandbox.faults.clear()


def rk(name: str, mode: str = "test") -> str:
    return f"rk_{mode}_51KeyHealthFidelity{name}" + "x7Y8z9" * 12


def rows_of(result) -> dict:
    return {r.scope: r for r in result.rows if r.scope}


# ---------------------------------------------------------------------------------- Connect Accounts
def test_accounts_write_is_required_and_probed_without_creating(sandbox, sandbox_client):
    cat, prof = load_catalogue(), load_profile()
    acc = cat.get("connected_account")
    assert acc.levels == ("read", "write")
    assert (acc.write.method, acc.write.path, acc.write.params) == ("POST", "/v1/accounts", {PROBE_PARAM: "1"})
    assert prof.required(acc)[0] == "write"

    good = check_key(DEMO_KEYS["healthy"].key, client=sandbox_client, settings=FAST)
    row = rows_of(good)["connected_account"]
    assert (row.granted, row.verdict) == ("write", "ok")
    posts = [r for r in sandbox.requests if r.path == "/v1/accounts" and r.method == "POST"]
    assert len(posts) == 1 and posts[0].status == 400  # parameter_unknown: past the permission check
    assert sandbox.created == [] and sandbox.writes == []

    bad = check_key(DEMO_KEYS["accounts_read"].key, client=sandbox_client, settings=FAST)
    row = rows_of(bad)["connected_account"]
    assert (row.granted, row.verdict) == ("read", "missing")
    assert bad.status == "failing"
    assert "Connect → Accounts: Write (now Read)" in bad.message
    assert [r.scope for r in bad.rows if r.verdict == "missing"] == ["connected_account"]


def test_a_made_up_account_id_is_account_invalid_whatever_the_key_may_do(sandbox, sandbox_client):
    """Stripe answers /v1/accounts/acct_<made-up> with 403 account_invalid with or without the permission: a
    probe there would read as None. The engine keeps it unknown, with the reason, and learns no account from it."""
    probe_scope = Scope("connected_account", "Accounts", "Connect", ("read",),
                        Probe("GET", "/v1/accounts/acct_keyhealthmadeup"), None)
    cat = Catalogue((probe_scope,))
    for perms in (set(), {"rak_connected_account_read"}, {"rak_connected_account_write"}):
        key = rk("AcctInvalid" + str(len(perms)))
        sandbox.add_key(key, perms)
        prober = Prober(key, "test", settings=FAST, client=sandbox_client)
        (out,) = list(prober.sweep(cat.scopes))
        assert out.granted == "unknown", perms
        assert "account_invalid" in out.reason and "no permission refusal" in out.reason
        assert prober.stats.account is None  # the account named is the made-up one, not the key's
    assert {r.status for r in sandbox.requests} == {403}


# ------------------------------------------------------------------------------------- 403 by body
def _perm_error(message: str, code: str | None = None) -> stripe.PermissionError:
    err = {"message": message, "type": "invalid_request_error"}
    if code:
        err["code"] = code
    return stripe.PermissionError(message, None, 403, json_body={"error": err})


@pytest.mark.parametrize(
    "message, code, named",
    [
        (("The provided key 'rk_test_***1234' does not have the required permissions for this endpoint on account "
         "'acct_1Ab'. Having the 'rak_charge_read' permission would allow this request to continue."), None,
         ("charge_read",)),
        (("The provided key 'rk_test_***1234' does not have the required permissions for this endpoint on account "
         "'acct_1Ab'. Having the 'rak_payment_intent_read', 'rak_checkout_session_read' permissions would allow "
         "this request to continue."), "more_permissions_required", ("payment_intent_read", "checkout_session_read")),
        (("The provided key 'rk_test_***1234' does not have the required permissions for this endpoint on account "
         "'acct_1Ab'. Having more permissions would allow this request to continue."), None, ()),
        (("Permission denied. The provided key 'rk_test_***1234' does not have the required permissions for this "
         "endpoint on account 'acct_1Ab'. Enabling \"Prices Read\" ('plan_read') permissions on this key would "
         "allow this request to continue."), "more_permissions_required", ("plan_read",)),
        ("Forbidden.", "more_permissions_required", ()),  # the code alone is enough
    ],
)
def test_every_refusal_wording_is_a_verdict_with_its_names(message, code, named):
    a = interpret(_perm_error(message, code), Probe("GET", "/v1/x"))
    assert a.kind == "denied" and a.named == named
    assert named_permissions(message) == named
    if "acct_1Ab" in message:
        assert a.account == "acct_1Ab"


@pytest.mark.parametrize(
    "message, code",
    [
        (("The provided key 'rk_test_***1234' does not have access to account 'acct_x' (or that account does not "
         "exist). Application access may have been revoked."), "account_invalid"),
        ("This account cannot make live charges.", None),
    ],
)
def test_a_403_that_is_no_permission_refusal_is_inconclusive(message, code):
    a = interpret(_perm_error(message, code), Probe("GET", "/v1/x"))
    assert a.kind == "forbidden" and a.account is None
    assert (code or "403") in a.detail


def test_a_refusal_naming_another_permission_keeps_the_verdict_and_shows_the_name(sandbox, sandbox_client):
    sandbox.deny_style = "single"
    key = rk("KycNamed")
    sandbox.add_key(key, {"rak_charge_read"})
    r = check_key(key, client=sandbox_client, settings=FAST)
    acc = rows_of(r)["connected_account"]
    assert acc.granted == "none" and acc.verdict == "missing"  # the verdict is on the probed endpoint
    assert acc.named == "rak_accounts_kyc_basic_read (Basic Business Contact Information)"
    charges = rows_of(r)["charge"]
    assert charges.named is None  # named its own permission: nothing to add
    frame = grid_frame(r.rows)
    note = frame.loc[frame["Scope"] == "rak_connected_account", "Note"].item()
    assert note == "Stripe's refusal named rak_accounts_kyc_basic_read (Basic Business Contact Information)"


def test_kyc_basic_is_probed_on_the_keys_own_account(sandbox, sandbox_client):
    cat = load_catalogue()
    kyc = cat.get("accounts_kyc_basic")
    assert (kyc.read.method, kyc.read.path, kyc.provenance) == ("GET", "/v1/account", "error")
    for other in ("accounts_kyc_id_numbers", "accounts_kyc_raw_bank_details", "business_network_profile"):
        assert not cat.get(other).probed and cat.get(other).unchecked
    key = rk("KycBasic")
    sandbox.add_key(key, {"rak_accounts_kyc_basic_read"})
    r = check_key(key, client=sandbox_client, settings=FAST)
    rows = rows_of(r)
    assert (rows["accounts_kyc_basic"].granted, rows["accounts_kyc_basic"].verdict) == ("read", "excess")
    for other in ("accounts_kyc_id_numbers", "accounts_kyc_raw_bank_details", "business_network_profile"):
        assert rows[other].verdict == "not_applicable" and rows[other].granted is None
        assert rows[other].note.startswith("Not checkable from outside: ")


# ------------------------------------------------------------------- APIs gone for some accounts
def test_orders_skus_and_balance_transfers_are_not_applicable_where_the_api_is_gone(sandbox, sandbox_client):
    demo = DEMO_KEYS["healthy"]
    assert demo.account not in sandbox.legacy_accounts
    r = check_key(demo.key, client=sandbox_client, settings=FAST)
    rows = rows_of(r)
    for scope in LEGACY:
        row = rows[scope]
        assert row.verdict == "not_applicable" and row.granted is None, scope
        assert "404 Unrecognized request URL" in row.note and "for this key" in row.note
        assert row.fix and row.note in row.fix
    assert r.status == "healthy"
    paths = {"order": "/v1/orders", "sku": "/v1/skus", "balance_transfer": "/v1/balance_transfers"}
    for scope, path in paths.items():
        sent = [x for x in sandbox.requests if x.path == path]
        assert len(sent) == 1 and sent[0].status == 404, scope  # one request, never retried forever


def test_orders_skus_and_balance_transfers_are_probed_where_the_api_exists(sandbox, sandbox_client):
    key = rk("LegacyApis")
    perms = set(DEMO_KEYS["healthy"].permissions) - {"rak_sku_write"} | {"rak_usage_record_read"}
    sandbox.add_key(key, perms, account=SANDBOX_ACCOUNT)
    r = check_key(key, client=sandbox_client, settings=FAST)
    rows = rows_of(r)
    assert (rows["order"].granted, rows["order"].verdict) == ("write", "ok")
    assert (rows["balance_transfer"].granted, rows["balance_transfer"].verdict) == ("write", "ok")
    assert (rows["sku"].granted, rows["sku"].verdict) == ("none", "missing")
    assert (rows["usage_record"].granted, rows["usage_record"].verdict) == ("read", "excess")
    assert "SKU Read is not checkable" in rows["sku"].note
    assert sandbox.created == [] and sandbox.writes == []


def test_re_probing_keeps_not_applicable_rows(sandbox, sandbox_client):
    sandbox.faults.fail("/v1/invoices", status=500)
    first = check_key(DEMO_KEYS["healthy"].key, client=sandbox_client, settings=FAST)
    sandbox.faults.clear()
    second = check_key(DEMO_KEYS["healthy"].key, client=sandbox_client, settings=FAST, only={"invoice"},
                       previous=first)
    assert second.status == "healthy"
    assert rows_of(second)["order"].verdict == "not_applicable"


# ------------------------------------------------------------------- live keys and test helpers
def test_live_key_test_helpers_are_not_applicable_unless_refused_by_name(sandbox, sandbox_client):
    live = DEMO_KEYS["live_healthy"]
    r = check_key(live.key, client=sandbox_client, settings=FAST)
    rows = rows_of(r)
    for scope in ("billing_clock", "confirmation_token_client"):
        assert rows[scope].verdict == "not_applicable", scope
        assert "live mode" in rows[scope].note
    assert r.status == "healthy"

    # A live key lacking the permission: a refusal that names it is a verdict...
    sandbox.deny_style = "single"
    key = rk("LiveNoClock", "live")
    sandbox.add_key(key, set(live.permissions) - {"rak_billing_clock_write"}, mode="live", account=live.account)
    r = check_key(key, client=sandbox_client, settings=FAST)
    assert (rows_of(r)["billing_clock"].granted, rows_of(r)["billing_clock"].verdict) == ("none", "missing")
    # ...a refusal that names nothing is not
    sandbox.deny_style = "none"
    r = check_key(key, client=sandbox_client, settings=FAST)
    assert rows_of(r)["billing_clock"].verdict == "not_applicable"


# -------------------------------------------------------------------------------------- implied
def test_implies_lists_follow_stripes_reference():
    cat = load_catalogue()
    for s in ("checkout_session", "payment_intent", "payment_links", "quote"):
        assert "sku_read" in cat.get(s).implies, s
    # "Prices implies Products" has no public source: allowed, but unverified (issue 20)
    assert "product_read" in cat.get("plan").implies_unverified and "product_read" not in cat.get("plan").implies
    assert {"payout_read", "balance_transfer_read"} <= set(cat.get("balance_transaction_source").implies)


def test_implied_rows_are_shown_as_allowed_not_plain_ok(sandbox, sandbox_client):
    sandbox.implied_permissions = True
    r = check_key(DEMO_KEYS["healthy"].key, client=sandbox_client, settings=FAST)
    rows = rows_of(r)
    pi = rows["payment_intent"]
    assert (pi.granted, pi.verdict, pi.implied) == ("read", "ok", True)
    assert "Checkout Sessions" in pi.implied_by
    assert r.status == "healthy"
    frame = grid_frame(r.rows)
    line = frame.loc[frame["Scope"] == "rak_payment_intent"].iloc[0]
    assert line["Verdict"] == "allowed (implied)"
    assert line["What to do"].startswith("allowed: implied by ") and "Checkout Sessions" in line["What to do"]
    styles = styled_grid(r.rows)._compute().ctx
    i = list(frame["Scope"]).index("rak_payment_intent")
    assert ("background-color", VERDICT_STYLE["implied"][0]) in styles[(i, 0)]
    plain = frame.loc[frame["Scope"] == "rak_charge"].iloc[0]
    assert plain["Verdict"] == "ok" and plain["What to do"] == ""


# ------------------------------------------------------------------------------------ the guide's traps
def test_an_all_permissions_key_names_the_likely_cause(sandbox, sandbox_client):
    key = rk("AllPerms")
    sandbox.add_key(key, {"*"})
    r = check_key(key, client=sandbox_client, settings=FAST)
    excess = [x for x in r.rows if x.verdict == "excess"]
    assert len(excess) > 20
    assert any("Customize permissions" in n and "unticked" in n for n in r.guide_notes)
    assert URL_FIELD_NOTE in r.guide_notes and DISCOUNTS_NOTE in r.guide_notes
    assert "Customize permissions" in r.message and URL_FIELD_NOTE in r.message


def test_few_excess_rows_do_not_blame_the_checkbox(sandbox, sandbox_client):
    r = check_key(DEMO_KEYS["over"].key, client=sandbox_client, settings=FAST)
    assert not any("Customize permissions" in n for n in r.guide_notes)
    assert r.guide_notes == [DISCOUNTS_NOTE]  # Customers Write is granted: the Discounts trap
    assert DISCOUNTS_NOTE in r.message
    healthy = check_key(DEMO_KEYS["healthy"].key, client=sandbox_client, settings=FAST)
    assert healthy.guide_notes == [] and "Discounts" not in healthy.message


# ------------------------------------------------------------------------------------ provenance, labels
def test_every_scope_has_a_provenance_and_inferred_rows_are_marked(sandbox, sandbox_client):
    cat = load_catalogue()
    counts = cat.provenance_counts()
    assert sum(counts.values()) == len(cat.scopes)
    assert counts["docs"] > 40 and counts["error"] >= 5 and counts["inferred"] >= 1
    assert cat.get("charge").label == "Charges and Refunds"
    assert cat.get("webhook").label == "Webhook Endpoints and Event Destinations"
    r = check_key(DEMO_KEYS["healthy"].key, client=sandbox_client, settings=FAST)
    frame = grid_frame(r.rows)
    for s in cat.scopes:
        note = frame.loc[frame["Scope"] == f"rak_{s.scope}", "Note"].item()
        assert (INFERRED_NOTE in note) == (s.provenance == "inferred"), s.scope


def test_the_guides_missing_rows_exist():
    cat = load_catalogue()
    labels = {s.label for s in cat.scopes}
    for label in ("Funding Instructions", "Usage Records", "Token Network Data",
                  "Access recent detailed verification results", "Access all detailed verification results",
                  "Debugging tools", "Balance Transfers", "Orders", "SKUs"):
        assert label in labels, label
    for s in cat.scopes:
        if not s.probed:
            assert s.unchecked and len(s.unchecked) > 40, s.scope


def test_live_refusal_must_name_this_permission_to_be_a_verdict(sandbox_client):
    clock = load_catalogue().get("billing_clock")
    prober = Prober(rk("LiveSettle", "live"), "live", settings=FAST, client=sandbox_client)
    own = interpret(_perm_error("… does not have the required permissions … Having the 'rak_billing_clock_read' "
                                "permission would allow this request to continue."), clock.read)
    other = interpret(_perm_error("… does not have the required permissions … Having the 'rak_charge_read' "
                                  "permission would allow this request to continue."), clock.read)
    assert prober._settle(clock, own, "read") == ("denied", None)
    assert prober._settle(clock, other, "read") == ("na", clock.test_only)
    assert sandbox_client is not None
