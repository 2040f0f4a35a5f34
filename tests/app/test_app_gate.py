"""Every route is closed until an allowed person signs in (AppTest; tests/e2e/test_sign_in_e2e.py does it in Chromium).

With `[auth]` configured and nobody signed in, every page file shows only the sign-in page, however it is
reached: run directly (`AppTest.from_file("app_pages/audit.py")`), through the router (`switch_page` after a run),
and through Streamlit's legacy file-name route (`switch_page` before the first run, which AppTest resolves by
file name the way a fresh server does). Nothing touches the database (no file in the data or database folder
is created or opened) and no tenant data appears. Signed in as an allowed person the page opens; signed in as
anyone else, only the refusal shows. Also: demo mode rides in the URL, and the server listens on 127.0.0.1
unless told otherwise.
"""
from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from apptest import AppTest
from streamlit.testing.v1.element_tree import Block

from core import store

ROOT = Path(__file__).resolve().parents[2]
PAGE_FILES = sorted(p.name for p in (ROOT / "app_pages").glob("*.py"))
TITLES = {  # each page file's title when it opens
    "about.py": "About Key Health",
    "audit.py": "Audit trail",
    "check.py": "Check a key",
    "fleet.py": "Fleet health",
    "sample_data.py": "Sample data",
    "sample_transaction.py": "Sample transaction",
    "tenant.py": "Tenant",
    "triage.py": "Triage",
    "verify.py": "Verify integration",
}
AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "test-cookie-secret",
    "client_id": "kh-test",
    "client_secret": "kh-test-secret",
    "server_metadata_url": "https://idp.example.invalid/.well-known/openid-configuration",
}
SECRETS = {"auth": AUTH, "keyhealth": {"allowed_domains": ["pointai.tech"]}}
SIGNED_OUT = {"is_logged_in": False}
ALLOWED = {"is_logged_in": True, "email": "ana@pointai.tech", "name": "Ana", "email_verified": True}
OUTSIDER = {"is_logged_in": True, "email": "mallory@evil.example", "name": "Mallory", "email_verified": True}
# what the seeded database holds: none of it may show before sign-in
TENANT_DATA = ("Foods Ltd", "foods-ltd", "acct_1FoodsAccount", "f00d", "buyer@foods.example", "ana@pointai.tech")


def files_under(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def seeded(tmp_path, monkeypatch, make_result, sqlite_at_head):
    """A real-mode database holding one tenant (with a check, a contact and an audit row), then closed; the data
    dir (demo database, fingerprint secret) does not exist yet. Returns a function: the files now under tmp_path."""
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    url = sqlite_at_head(db_dir / "kh.db")
    for k, v in {"KEYHEALTH_DEMO": "0", "KEYHEALTH_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": url,
                 "KEYHEALTH_FINGERPRINT_SECRET": "test-secret-for-app-tests", "STRIPE_API_BASE": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(k, v)
    s = store.at(url)
    s.record_check(make_result(status="failing", account="acct_1FoodsAccount", masked="rk_test_…f00d"),
                   "Foods Ltd", source="dashboard", checked_by="ana@pointai.tech")
    s.update_tenant("Foods Ltd", contact="buyer@foods.example")
    s.record_audit("check", who="ana@pointai.tech", tenant="Foods Ltd", outcome="failing")
    store.dispose_engine(url)  # closed: SQLite's -wal/-shm files are gone until someone opens it again
    before = files_under(tmp_path)
    assert set(before) == {"db/kh.db"}
    yield lambda: files_under(tmp_path), before
    store.dispose_engine(url)


def new_app(script: str, user: dict | None, secrets: dict | None = SECRETS) -> AppTest:
    at = AppTest.from_file(script, default_timeout=60)
    for k, v in (secrets or {}).items():
        at.secrets[k] = v
    if user is not None:
        at.user = user
    return at


def leaves(node) -> list:
    """The elements under a node (empty containers, such as an unused sidebar, hold none)."""
    if isinstance(node, Block):
        return [leaf for child in node.children.values() for leaf in leaves(child)]
    return [node]


def shown(at: AppTest) -> list[tuple[str, str]]:
    """Every element on the page, main area and sidebar: (type, its protobuf as text)."""
    return [(getattr(e, "type", type(e).__name__), str(getattr(e, "proto", ""))) for e in leaves(at._tree)]


def assert_only_sign_in(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Key Health"]
    assert [b.label for b in at.button] == ["Sign in"]
    welcome = "Pointai's internal dashboard for Stripe key health. Sign in to continue."
    assert [m.value for m in at.markdown] == [welcome]
    types = sorted(t for t, _ in shown(at))
    assert types == ["button", "markdown", "title"], types
    assert not leaves(at.sidebar)
    everything = "\n".join(proto for _, proto in shown(at))
    for secret in TENANT_DATA:
        assert secret not in everything


def assert_refused(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Key Health"]
    assert [e.value for e in at.error] == [
        ("This account is not allowed to use Key Health; sign in with your Pointai account, or ask an "
         "administrator to add you to the allow-list.")
    ]
    assert [t.value for t in at.text] == ["Signed in as mallory@evil.example"]
    assert [b.label for b in at.button] == ["Sign out"]
    assert sorted(t for t, _ in shown(at)) == ["button", "error", "text", "title"]
    everything = "\n".join(proto for _, proto in shown(at))
    for secret in TENANT_DATA:
        assert secret not in everything


def test_pages_holds_only_pages_and_each_holds_the_gate_first():
    """app_pages/ is served file by file, so it holds nothing but the router's pages, and each calls the gate
    before anything else runs (the docstring and `from __future__` aside)."""
    routed = set(re.findall(r"[\"']app_pages/([A-Za-z0-9_]+\.py)[\"']", (ROOT / "app.py").read_text(encoding="utf-8")))
    assert set(PAGE_FILES) == routed == set(TITLES)
    for name in PAGE_FILES:
        code = [line for line in (ROOT / "app_pages" / name).read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith(("from __future__", "#", '"""'))]
        assert code[:2] == ["from dashboard.gate import require_access", "require_access()"] or (
            code[0] == "from dashboard.gate import require_access" and code[1].startswith("require_access()  #")
        ), f"{name} must call the gate first: {code[:3]}"


@pytest.mark.parametrize("page", PAGE_FILES)
def test_signed_out_a_page_file_run_directly_shows_only_the_sign_in_page(page, seeded):
    now, before = seeded
    at = new_app(f"../../app_pages/{page}", SIGNED_OUT)
    at.query_params["tenant"] = "foods-ltd"
    at.run()
    assert_only_sign_in(at)
    assert now() == before, "signed out, nothing may open the database or create data files"


@pytest.mark.parametrize("page", PAGE_FILES)
def test_every_route_to_a_page_is_closed_signed_out_and_opens_for_an_allowed_person(page, seeded):
    now, before = seeded
    # the legacy file-name route: before the first run AppTest resolves the page by its file name
    at = new_app("../../app.py", SIGNED_OUT)
    at.switch_page(f"app_pages/{page}")
    at.query_params["tenant"] = "foods-ltd"
    at.run()
    assert_only_sign_in(at)
    # the router's route: after a run, switch_page resolves the page the router registered
    at = new_app("../../app.py", SIGNED_OUT)
    at.run()
    assert_only_sign_in(at)
    at.switch_page(f"app_pages/{page}")
    at.query_params["tenant"] = "foods-ltd"
    at.run()
    assert_only_sign_in(at)
    assert now() == before, "signed out, nothing may open the database or create data files"

    # signed in and allowed, the same routes open the page (and the tenant data is there to be seen)
    at = new_app(f"../../app_pages/{page}", ALLOWED)
    at.run()
    # run on its own (no router) a page cannot draw links to other pages (st.page_link): triage's tenant links,
    # fleet's links to Triage
    assert not at.exception or page in ("triage.py", "fleet.py"), at.exception
    assert TITLES[page] in [t.value for t in at.title]
    at = new_app("../../app.py", ALLOWED)
    at.run()
    at.switch_page(f"app_pages/{page}")
    at.query_params["tenant"] = "foods-ltd"
    at.run()
    assert not at.exception, at.exception
    assert not [e for e in at.error if "Something went wrong" in e.value]
    assert "Sign out" in [b.label for b in at.sidebar.button]
    titles = [t.value for t in at.title]
    assert ("Foods Ltd" in titles) if page == "tenant.py" else (TITLES[page] in titles), titles


@pytest.mark.parametrize("page", PAGE_FILES)
def test_a_signed_in_outsider_is_refused_on_every_page(page, seeded):
    now, before = seeded
    at = new_app(f"../../app_pages/{page}", OUTSIDER)
    at.run()
    assert_refused(at)
    at = new_app("../../app.py", OUTSIDER)
    at.switch_page(f"app_pages/{page}")
    at.run()
    assert_refused(at)
    at = new_app("../../app.py", OUTSIDER)
    at.run()
    at.switch_page(f"app_pages/{page}")
    at.run()
    assert_refused(at)
    assert now() == before


class _UnreadableSecrets:
    """st.secrets when .streamlit/secrets.toml exists but does not parse."""

    def _fail(self, *_a, **_k):
        from streamlit.errors import StreamlitSecretNotFoundError

        raise StreamlitSecretNotFoundError("Error parsing secrets file", error_id="failed-parsing-secrets-file")

    to_dict = __contains__ = __getitem__ = _fail


def test_a_secrets_file_that_does_not_parse_closes_everything(seeded, monkeypatch):
    """Fail closed: a typo in secrets.toml must not turn sign-in off."""
    import streamlit

    from dashboard import gate

    assert gate.read_secrets(_UnreadableSecrets()) is None
    now, before = seeded
    monkeypatch.setattr(streamlit, "secrets", _UnreadableSecrets())
    for script in ("../../app.py", "../../app_pages/audit.py"):
        at = new_app(script, None, secrets=None)
        at.run()
        assert not at.exception, at.exception
        assert [t.value for t in at.title] == ["Key Health"]
        assert "could not be read" in at.error[0].value
        assert not at.button and not at.dataframe and not at.text_input
    assert now() == before


def test_no_secrets_file_at_all_means_open_access_as_documented(seeded):
    from dashboard import gate

    class NoFile:
        def to_dict(self):
            from streamlit.errors import StreamlitSecretNotFoundError

            raise StreamlitSecretNotFoundError("No secrets found", error_id="no-secrets-found")

    assert gate.read_secrets(NoFile()) == {}
    at = new_app("../../app_pages/audit.py", None, secrets=None)
    at.run()
    assert "Audit trail" in [t.value for t in at.title]


# --- the sidebar ---------------------------------------------------------------------------------------
def test_the_sidebar_lists_the_router_pages_by_title_never_the_files(seeded):
    at = new_app("../../app.py", ALLOWED)
    at.run()
    links = [e.proto.label for e in leaves(at.sidebar) if getattr(e, "type", None) == "page_link"]
    assert links == ["Check a key", "Triage", "Tenant", "Fleet health", "Sample data", "Sample transaction",
                     "Verify integration", "Audit trail", "About"]
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["client"]["showSidebarNavigation"] is False  # Streamlit's own list would show file names


# --- demo mode rides in the URL --------------------------------------------------------------------------
def test_demo_mode_is_kept_in_the_url_so_a_refresh_keeps_it(seeded, tmp_path, demo_db):
    demo_db(tmp_path / "data", "test-secret-for-app-tests")  # the seeded demo, copied (conftest)
    at = new_app("../../app.py", ALLOWED)
    at.run()
    assert at.session_state["kh_demo"] is False and "demo" not in at.query_params
    at.toggle(key="kh_demo_switch").set_value(True).run()
    assert not at.exception, at.exception
    assert at.query_params.get("demo") == "1"
    # a page switch keeps it
    at.switch_page("app_pages/fleet.py").run()
    assert at.query_params.get("demo") == "1"
    # a refresh is a new session with the same URL: it comes back in demo mode
    again = new_app("../../app.py", ALLOWED)
    again.query_params["demo"] = "1"
    again.run()
    assert not again.exception, again.exception
    assert again.session_state["kh_demo"] is True
    assert any("Demo mode" in i.value for i in again.sidebar.info)
    # switching back to real mode takes it out of the URL again
    again.toggle(key="kh_demo_switch").set_value(False).run()
    assert again.session_state["kh_demo"] is False and "demo" not in again.query_params


def test_when_demo_is_the_default_real_mode_is_kept_in_the_url(seeded, monkeypatch, tmp_path, demo_db):
    demo_db(tmp_path / "data", "test-secret-for-app-tests")  # the seeded demo, copied (conftest)
    monkeypatch.setenv("KEYHEALTH_DEMO", "1")  # `make demo`
    at = new_app("../../app.py", ALLOWED)
    at.query_params["demo"] = "0"
    at.run()
    assert at.session_state["kh_demo"] is False and at.query_params.get("demo") == "0"
    at.toggle(key="kh_demo_switch").set_value(True).run()
    assert at.query_params.get("demo") == "1"
    at.toggle(key="kh_demo_switch").set_value(False).run()
    assert at.session_state["kh_demo"] is False
    assert at.query_params.get("demo") == "0", "without it a refresh would come back in demo mode"


# --- safe by default -----------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["run", "demo"])
def test_make_run_and_demo_listen_on_this_machine_unless_told_otherwise(target):
    def command(*args: str) -> str:
        out = subprocess.run(["make", "-n", "-C", str(ROOT), target, *args], capture_output=True, text=True,
                             timeout=30, check=True).stdout
        return next(line for line in out.splitlines() if "streamlit run app.py" in line)

    assert "--server.address 127.0.0.1 " in command()
    assert "--server.address 0.0.0.0 " in command("ADDRESS=0.0.0.0")
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["address"] == "127.0.0.1"  # `streamlit run app.py` without make, too


# --- sign-in is closed unless it is complete (issue 17.1) ------------------------------------------------
def assert_closed_with(at: AppTest, *words: str) -> None:
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Key Health"]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Sign-in is configured but incomplete"), errors
    for w in words:
        assert w in errors[0], (w, errors[0])
    assert sorted(t for t, _ in shown(at)) == ["error", "title"], "nothing but the sentence: no sign-in, no data"
    assert not leaves(at.sidebar)
    everything = "\n".join(proto for _, proto in shown(at))
    for secret in TENANT_DATA:
        assert secret not in everything


INCOMPLETE = {
    # [auth] whose keys are all commented out, next to an allow-list: it parses as an empty section
    "commented-out [auth]": ({"auth": {}, "keyhealth": {"allowed_domains": ["pointai.tech"]}},
                             ("redirect_uri", "server_metadata_url")),
    "[Auth]": ({"Auth": AUTH, "keyhealth": {"allowed_domains": ["pointai.tech"]}}, ("[Auth]",)),
    "allow-list only": ({"keyhealth": {"allowed_domains": ["pointai.tech"]}}, ("no [auth] section",)),
}


@pytest.mark.parametrize("case", sorted(INCOMPLETE))
@pytest.mark.parametrize("user", [None, ALLOWED], ids=["no-user", "allowed"])
def test_incomplete_sign_in_settings_close_every_page_with_one_sentence(case, user, seeded):
    """On the old code each of these ran the app open: Triage and the audit trail for anyone."""
    now, before = seeded
    secrets, words = INCOMPLETE[case]
    at = new_app("../../app.py", user, secrets=secrets)
    at.run()
    assert_closed_with(at, *words)
    for page in PAGE_FILES:
        at = new_app(f"../../app_pages/{page}", user, secrets=secrets)
        at.query_params["tenant"] = "foods-ltd"
        at.run()
        assert_closed_with(at, *words)
        at = new_app("../../app.py", user, secrets=secrets)
        at.switch_page(f"app_pages/{page}")
        at.run()
        assert_closed_with(at, *words)
    assert now() == before


def registered_paths(at: AppTest) -> list[str]:
    """The url paths of the pages the run's st.navigation registered (what the browser's navigation message
    carries); empty when the run built no navigation."""
    return sorted(str(info.get("url_pathname")) for info in at._registered_pages.values() if "url_pathname" in info)


@pytest.mark.parametrize("user", [SIGNED_OUT, OUTSIDER], ids=["signed-out", "outsider"])
def test_no_navigation_is_built_for_anyone_who_may_not_see_the_pages(user, seeded):
    """Signed out (or refused) the run sends no page titles, url paths or script hashes: st.navigation is never
    called. On the old code the router called it before the gate, for everyone."""
    at = new_app("../../app.py", user)
    at.run()
    assert not at.exception, at.exception
    assert registered_paths(at) == []
    at = new_app("../../app.py", ALLOWED)
    at.run()
    assert "tenants" in registered_paths(at) and "audit-trail" in registered_paths(at)


UNVERIFIED_SENTENCE = "This account's email address is not verified by the identity provider"


def assert_refused_unverified(at: AppTest, sentence: str = UNVERIFIED_SENTENCE) -> None:
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Key Health"]
    assert [e.value[:len(sentence)] for e in at.error] == [sentence]
    assert [b.label for b in at.button] == ["Sign out"]
    assert sorted(t for t, _ in shown(at)) == ["button", "error", "text", "title"]
    assert registered_paths(at) == []


@pytest.mark.parametrize("verified", [False, "false"])
def test_an_allowed_address_whose_email_is_not_verified_is_refused(verified, seeded):
    """The old gate never read email_verified: an identity provider saying false was admitted."""
    now, before = seeded
    user = {**ALLOWED, "email_verified": verified}
    at = new_app("../../app.py", user)
    at.run()
    assert_refused_unverified(at)
    for page in PAGE_FILES:
        at = new_app(f"../../app_pages/{page}", user)
        at.run()
        assert_refused_unverified(at)
    assert now() == before


@pytest.fixture
def idp():
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    from oidc_provider import OIDCProvider

    from dashboard import gate

    gate._claims_cache.clear()
    provider = OIDCProvider("kh-test", "kh-test-secret").start()
    yield provider
    provider.stop()
    gate._claims_cache.clear()


def test_an_identity_without_email_verified_is_refused_when_the_provider_says_it_sends_it(seeded, idp):
    user = {k: v for k, v in ALLOWED.items() if k != "email_verified"}
    secrets = {**SECRETS, "auth": {**AUTH, "server_metadata_url": idp.metadata_url}}
    at = new_app("../../app.py", user, secrets=secrets)
    at.run()
    assert_refused_unverified(at)
    assert idp.log.count("/.well-known/openid-configuration") == 1
    # a provider whose metadata does not list the claim (it never sends it): admitted
    idp.claims_supported = ["sub", "email", "name"]
    from dashboard import gate

    gate._claims_cache.clear()
    at = new_app("../../app.py", user, secrets=secrets)
    at.run()
    assert not at.exception and "Check a key" in [t.value for t in at.title]


def test_an_identity_without_email_verified_is_refused_when_the_provider_cannot_be_asked(seeded):
    from dashboard import gate

    gate._claims_cache.clear()
    user = {k: v for k, v in ALLOWED.items() if k != "email_verified"}
    secrets = {**SECRETS, "auth": {**AUTH, "server_metadata_url": "http://127.0.0.1:9/.well-known/x"}}
    at = new_app("../../app.py", user, secrets=secrets)
    at.run()
    assert_refused_unverified(at, "Key Health could not read the identity provider's settings")
