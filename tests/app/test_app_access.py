"""Sign-in (st.login with an allow-list when [auth] is configured), the open-access banner, and the audit page."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from apptest import AppTest

from core import store
from core.access import email_unverified, identity, policy_from_secrets

APP = "../../app.py"
AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "test-cookie-secret",
    "client_id": "kh-test",
    "client_secret": "kh-test-secret",
    "server_metadata_url": "https://idp.example.invalid/.well-known/openid-configuration",
}


@pytest.fixture
def real_env(tmp_path, monkeypatch, sqlite_at_head):
    monkeypatch.setenv("KEYHEALTH_DEMO", "0")
    monkeypatch.setenv("KEYHEALTH_DATA_DIR", str(tmp_path))
    url = sqlite_at_head(tmp_path / "kh.db")
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("KEYHEALTH_FINGERPRINT_SECRET", "test-secret")
    return url


def run_app(secrets=None, user=None, page=None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in (secrets or {}).items():
        at.secrets[k] = v
    if user is not None:
        at.user = user
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def page_titles(at) -> list[str]:
    return [t.value for t in at.title]


# --- the policy ------------------------------------------------------------------------------------
def test_policy_without_auth_is_open():
    p = policy_from_secrets({})
    assert not p.enabled and p.allows(None)


@pytest.mark.parametrize(
    "email,ok",
    [
        ("ana@pointai.tech", True),
        ("ANA@PointAI.tech", True),
        ("contractor@example.com", True),
        ("someone@example.com", False),
        ("ana@pointai.tech.evil.com", False),
        ("pointai.tech@evil.com", False),
        ("", False),
        (None, False),
        ("no-at-sign", False),
    ],
)
def test_allow_list(email, ok):
    p = policy_from_secrets({"auth": AUTH, "keyhealth": {"allowed_domains": ["@pointai.tech"],
                                                        "allowed_emails": ["Contractor@Example.com"]}})
    assert p.enabled and p.allows(email) is ok


def test_auth_with_empty_allow_list_fails_closed():
    p = policy_from_secrets({"auth": AUTH})
    assert p.enabled and p.closed and not p.allows("ana@pointai.tech")
    assert "allowed_domains" in p.problem and "allowed_domains" in p.refusal("ana@pointai.tech")


ALLOW = {"allowed_domains": ["pointai.tech"]}


@pytest.mark.parametrize("secrets,names", [
    # [auth] with every key commented out parses as an empty section: sign-in is wanted, and incomplete
    ({"auth": {}, "keyhealth": ALLOW}, ["redirect_uri", "cookie_secret", "client_id", "client_secret",
                                        "server_metadata_url"]),
    ({"auth": {}}, ["redirect_uri", "allowed_domains"]),
    # Streamlit reads only [auth]: a capitalised section is sign-in wanted but unusable
    ({"Auth": AUTH, "keyhealth": ALLOW}, ["[Auth]", "[auth] in lower case"]),
    ({"AUTH": AUTH, "auth": AUTH, "keyhealth": ALLOW}, ["[AUTH]", "more than one"]),
    # a provider section only ([auth.google]): st.login() uses the default provider's keys under [auth]
    ({"auth": {"redirect_uri": "x", "cookie_secret": "y", "google": {"client_id": "a"}}, "keyhealth": ALLOW},
     ["client_id", "client_secret", "server_metadata_url"]),
    ({"auth.google": {"client_id": "a"}, "keyhealth": ALLOW}, ["[auth.google]"]),
    # an allow-list alone (any spelling of the section) asks for sign-in
    ({"keyhealth": ALLOW}, ["no [auth] section"]),
    ({"KeyHealth": {"Allowed_Emails": ["a@b.c"]}}, ["no [auth] section"]),
    ({"keyhealth": {"allowed_domains": []}}, ["no [auth] section", "nobody could be let in"]),
    # empty values are missing values
    ({"auth": {**AUTH, "cookie_secret": " "}, "keyhealth": ALLOW}, ["cookie_secret"]),
])
def test_sign_in_wanted_but_incomplete_closes_everything_and_names_what_is_missing(secrets, names):
    p = policy_from_secrets(secrets)
    assert p.enabled and p.closed, secrets
    assert not p.allows("ana@pointai.tech") and not p.allows("a@b.c")
    assert p.problem.startswith("Sign-in is configured but incomplete") and p.problem.endswith(").")
    assert ". " not in p.problem, "one sentence"
    for name in names:
        assert name in p.problem, (name, p.problem)


@pytest.mark.parametrize("secrets", [{}, {"DATABASE_URL": "sqlite://"}, {"keyhealth": {"other": 1}},
                                     {"authors": {"x": 1}}])
def test_only_secrets_with_neither_sign_in_nor_allow_list_run_open(secrets):
    p = policy_from_secrets(secrets)
    assert not p.enabled and not p.closed and p.allows(None)


def test_a_complete_configuration_in_any_allow_list_spelling_opens_for_the_list():
    p = policy_from_secrets({"auth": AUTH, "KEYHEALTH": {"ALLOWED_DOMAINS": "PointAI.tech"}})
    assert p.enabled and not p.closed and p.allows("ana@pointai.tech") and not p.allows("m@evil.example")


@pytest.mark.parametrize("user,claims,refused", [
    ({"email_verified": True}, None, False),
    ({"email_verified": "true"}, None, False),
    ({"email_verified": False}, None, True),
    ({"email_verified": "false"}, None, True),
    ({"email_verified": 0}, None, True),
    ({}, frozenset({"email", "email_verified"}), True),  # the provider says it sends it, and it is absent
    ({}, frozenset({"email"}), False),  # a provider that never sends it (Microsoft Entra, for one)
])
def test_email_verified(user, claims, refused):
    assert email_unverified(user, claims) is refused


def test_identity():
    assert identity({"is_logged_in": True, "email": "a@b.c"}) == "a@b.c"
    assert identity({"is_logged_in": False, "email": "a@b.c"}) == "anonymous"
    assert identity(None) == "anonymous"


# --- the app ---------------------------------------------------------------------------------------
def test_without_auth_every_page_shows_the_open_access_banner(real_env):
    at = run_app()
    assert "Check a key" in page_titles(at)
    assert any("Open access" in m.value for m in at.markdown)
    at.switch_page("app_pages/triage.py").run()
    assert any("Open access" in m.value for m in at.markdown)


def test_signed_out_sees_only_the_sign_in_page(real_env):
    at = run_app(secrets={"auth": AUTH, "keyhealth": {"allowed_domains": ["pointai.tech"]}},
                 user={"is_logged_in": False})
    assert page_titles(at) == ["Key Health"]
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.text_input and not at.dataframe and not at.sidebar.toggle
    assert not any("Open access" in m.value for m in at.markdown)


def test_allowed_user_gets_in_and_is_named(real_env):
    at = run_app(secrets={"auth": AUTH, "keyhealth": {"allowed_domains": ["pointai.tech"]}},
                 user={"is_logged_in": True, "email": "ana@pointai.tech", "name": "Ana", "email_verified": True})
    assert "Check a key" in page_titles(at)
    assert "Signed in as ana@pointai.tech" in [t.value for t in at.sidebar.text]  # plain text, exactly as given
    assert "Sign out" in [b.label for b in at.sidebar.button]


def test_signed_in_outsider_is_refused(real_env):
    at = run_app(secrets={"auth": AUTH, "keyhealth": {"allowed_domains": ["pointai.tech"]}},
                 user={"is_logged_in": True, "email": "mallory@evil.example", "email_verified": True})
    assert page_titles(at) == ["Key Health"]
    assert any("This account is not allowed" in e.value for e in at.error)
    assert [t.value for t in at.text] == ["Signed in as mallory@evil.example"]  # plain text: no autolink
    assert [b.label for b in at.button] == ["Sign out"]
    assert not at.text_input


# --- the audit page --------------------------------------------------------------------------------
def test_audit_page_filters_and_downloads(real_env):
    now = datetime.now(timezone.utc)
    store.at(real_env).record_audit("check", who="ana@pointai.tech", tenant="Acme Ltd", outcome="failing", at=now)
    store.at(real_env).record_audit("sample_data", who="bo@pointai.tech", tenant="Acme Ltd", outcome="ok",
                       at=now - timedelta(hours=1))
    store.at(real_env).record_audit("sample_transaction", who="ana@pointai.tech", tenant="Beta", outcome="passed",
                       detail="charge ch_123", at=now - timedelta(days=2))
    store.at(real_env).record_audit("check", who="old@pointai.tech", tenant="Beta", outcome="healthy",
                       at=now - timedelta(days=90))
    at = run_app(page="app_pages/audit.py")
    assert "Audit trail" in page_titles(at)
    df = at.dataframe[0].value
    assert list(df["Action"]) == ["check", "sample_data", "sample_transaction"]  # newest first; 90 days ago is out
    assert list(df["Who"]) == ["ana@pointai.tech", "bo@pointai.tech", "ana@pointai.tech"]
    at.multiselect(key="au_action").set_value(["sample_transaction"]).run()
    df = at.dataframe[0].value
    assert list(df["Tenant"]) == ["Beta"] and list(df["Outcome"]) == ["passed"]
    at.multiselect(key="au_action").set_value([]).run()
    at.text_input(key="au_who").set_value("bo@pointai.tech").run()
    assert list(at.dataframe[0].value["Action"]) == ["sample_data"]
    assert at.get("download_button")[0].proto.label == "Download audit CSV"


def test_a_dashboard_check_lands_in_the_audit_trail(real_env, sandbox, monkeypatch):
    from sandbox import DEMO_KEYS

    monkeypatch.setenv("STRIPE_API_BASE", sandbox.url)
    monkeypatch.setenv("KEYHEALTH_RATE_TEST", "400")
    at = run_app(user={"is_logged_in": True, "email": "ana@pointai.tech", "email_verified": True},
                 secrets={"auth": AUTH, "keyhealth": {"allowed_domains": ["pointai.tech"]}})
    tenant_inputs = [t for t in at.text_input if "tenant" in (t.label or "").lower()]
    if tenant_inputs:
        tenant_inputs[0].set_value("Audit Co")
    else:
        at.selectbox(key="kh_tenant_pick").set_value("Audit Co")
    at.run()  # the tenant choice first; the key is sent with the form's submit
    at.text_input(key="kh_key_input").set_value(DEMO_KEYS["healthy"].key)
    [b for b in at.button if b.label == "Check and record"][0].click().run()
    assert not at.exception
    entries = store.at(real_env).list_audit()
    assert entries and entries[0]["action"] == "check" and entries[0]["who"] == "ana@pointai.tech"
    assert entries[0]["outcome"] == "healthy"
