"""Sign-in end to end: a real `streamlit run app.py` with `[auth]` pointing at a local OIDC provider the test
starts (tests/e2e/oidc_provider.py), driven in Debian's Chromium.

Signed out, every path shows only the sign-in page: the old pages/ file names, each of the router's url_paths,
an unknown path and paths with query parameters, the first one on the fresh server's very first request. No
tenant data, no page list in the sidebar, no database file opened, no "Page not found", and no websocket
message carries a page title or URL path (app.py builds the navigation only for a signed-in, allowed person).
Then an allowed person signs in (every page opens, /check-key answers, demo mode survives a refresh); after a
server restart a direct first load of /tenants etc. opens without a "Page not found" popup; a signed-in
outsider, and an allowed address whose identity provider says `email_verified: false`, are refused everywhere.
Sign-in settings that are incomplete (an `[auth]` whose keys are all commented out, a capitalised `[Auth]`)
close every page for everyone with one sentence naming what is missing.

The server reads its secrets from a temporary `.streamlit/secrets.toml` (`--secrets.files`), never the
repository's own.
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core import store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e_support import HAVE_CHROMIUM, NO_CHROMIUM, ROOT, free_port, streamlit_server, wait_for
from oidc_provider import OIDCProvider

WAIT_MS = 60_000
CLIENT_ID, CLIENT_SECRET = "kh-e2e", "kh-e2e-client-secret"
ALLOWED, OUTSIDER = "ana@pointai.tech", "mallory@evil.example"
TENANT, SLUG = "Foods Ltd", "foods-ltd"
TENANT_DATA = (TENANT, "acct_1FoodsAccount", "f00d", "buyer@foods.example")
FILE_NAMES = ["/audit", "/about", "/check", "/fleet", "/sample_data", "/sample_transaction", "/tenant", "/triage",
              "/shared"]
URL_PATHS = {  # the router's paths and the heading each shows once signed in
    "/check-key": "Check a key",
    "/tenants": "Triage",
    "/tenant-history": "Tenant",
    "/fleet-health": "Fleet health",
    "/sample-data": "Sample data",
    "/sample-transaction": "Sample transaction",
    "/audit-trail": "Audit trail",
    "/verify-integration": "Verify integration",
    "/about-key-health": "About Key Health",
}
WITH_QUERY = [f"/tenant-history?tenant={SLUG}", "/tenant-history?tenant=foods", f"/audit-trail?tenant={SLUG}",
              f"/?tenant={SLUG}&demo=1"]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_CHROMIUM, reason=NO_CHROMIUM),
]


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def idp():
    provider = OIDCProvider(CLIENT_ID, CLIENT_SECRET).start()
    try:
        wait_for(provider.url + "/health", None, None, "the OIDC provider", b"ok")
        yield provider
    finally:
        provider.stop()


def auth_section(base: str, idp, header: str = "[auth]", comment: str = "") -> str:
    """Streamlit's [auth] for the local provider; `comment="# "` comments out every key, as an admin might."""
    keys = [f'redirect_uri = "{base}/oauth2callback"', 'cookie_secret = "e2e-cookie-secret-not-for-production"',
            f'client_id = "{CLIENT_ID}"', f'client_secret = "{CLIENT_SECRET}"',
            f'server_metadata_url = "{idp.metadata_url}"']
    return "\n".join([header, *(comment + k for k in keys)]) + "\n"


ALLOW_LIST = '\n[keyhealth]\nallowed_domains = ["pointai.tech"]\n'


@contextmanager
def run_server(tmp: Path, port: int, secrets_text: str) -> Iterator[dict]:
    """`streamlit run app.py` in real mode with these secrets and the seeded database under `tmp`, on `port`."""
    secrets = tmp / ".streamlit" / "secrets.toml"
    secrets.parent.mkdir(exist_ok=True)
    secrets.write_text(secrets_text, encoding="utf-8")
    db_dir = tmp / "db"
    if not db_dir.exists():
        db_dir.mkdir()
        _seed(f"sqlite:///{db_dir / 'kh.db'}")
    url = f"sqlite:///{db_dir / 'kh.db'}"
    env = {k: v for k, v in os.environ.items() if k not in ("STRIPE_API_BASE", "KEYHEALTH_FINGERPRINT_SECRET")}
    env.update({
        "KEYHEALTH_DEMO": "0",
        "KEYHEALTH_DATA_DIR": str(tmp / "data"),
        "DATABASE_URL": url,
        "KEYHEALTH_FINGERPRINT_SECRET": "sign-in-e2e-secret",
        "STRIPE_API_BASE": "http://127.0.0.1:9",  # no check runs here; never Stripe itself
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    })
    log_path = tmp / "streamlit.log"
    with streamlit_server("app.py", cwd=ROOT, env=env, log_path=log_path,
                          extra_args=("--secrets.files", str(secrets)), port=port) as base:
        assert base == f"http://127.0.0.1:{port}"
        yield {"url": base, "tmp": tmp, "db_dir": db_dir, "data": tmp / "data", "log": log_path, "port": port,
               "secrets": secrets_text}


@pytest.fixture(scope="module")
def server(idp, tmp_path_factory):
    """`streamlit run app.py` in real mode with [auth] -> the local provider, a seeded database, on a free port."""
    tmp = tmp_path_factory.mktemp("sign-in-e2e")
    port = free_port()
    with run_server(tmp, port, auth_section(f"http://127.0.0.1:{port}", idp) + ALLOW_LIST) as srv:
        yield srv


def _seed(url: str) -> None:
    from datetime import UTC, datetime

    from core.engine.result import CheckResult, KeyInfo, Row

    s = store.at(url)
    s.upgrade()
    result = CheckResult(
        key=KeyInfo(kind="restricted", mode="test", masked="rk_test_…f00d", fingerprint="fp_" + "f" * 61),
        status="failing", score=40, problem=None, account="acct_1FoodsAccount",
        rows=[Row(category="Core", resource="Charges", scope="charge_read", required="read", granted="none",
                  verdict="missing")],
        requests=3, elapsed_s=0.5, checked_at=datetime.now(UTC),
    )
    s.record_check(result, TENANT, source="dashboard", checked_by=ALLOWED)
    s.update_tenant(TENANT, contact="buyer@foods.example")
    s.record_audit("check", who=ALLOWED, tenant=TENANT, outcome="failing")
    store.dispose_engine(url)


def settle(page) -> None:
    """Wait until the script run is over (the "Running…" indicator is gone)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=stStatusWidget]')"
        " || getComputedStyle(document.querySelector('[data-testid=stStatusWidget]')).visibility === 'hidden'",
        timeout=WAIT_MS,
    )


ARTIFACTS = ROOT / "tests" / "artifacts" / "sign-in"


def shows(page, locator, what: str) -> None:
    """Wait for `locator`; on a timeout, keep a screenshot and the page's text in tests/artifacts/sign-in/."""
    try:
        locator.wait_for(timeout=WAIT_MS)
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9]+", "-", what).strip("-")[:80]
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
        (ARTIFACTS / f"{name}.txt").write_text(f"{page.url}\n\n{page.locator('body').inner_text()}", encoding="utf-8")
        raise


def not_found_shown(page) -> bool:
    return page.get_by_text("Page not found", exact=True).count() > 0


def sidebar_links(page) -> list[str]:
    return [t.strip() for t in page.locator("[data-testid=stSidebar] [data-testid=stPageLink] p").all_inner_texts()]


def assert_only_sign_in(page, path: str) -> None:
    shows(page, page.get_by_role("button", name="Sign in"), f"sign-in page on {path}")
    settle(page)
    assert page.locator("h1").all_inner_texts() == ["Key Health"], path
    body = page.locator("[data-testid=stMain]").inner_text()
    assert "Sign in to continue." in body, path
    for secret in TENANT_DATA:
        assert secret not in page.content(), (path, secret)
    for title in set(URL_PATHS.values()) - {"Tenant"}:
        assert title not in body, (path, title)
    assert page.locator("[data-testid=stSidebarNav]").count() == 0, f"{path}: Streamlit's page list is shown"
    assert sidebar_links(page) == [], f"{path}: the router's links are shown signed out"
    assert page.locator("[data-testid=stDataFrame], input, [data-testid=stPlotlyChart]").count() == 0, path


# What the navigation message would carry: every page's title and URL path (and the page files' folder).
NAVIGATION_WORDS = sorted({*(p.strip("/") for p in URL_PATHS), "check-a-key", "about-key-health", "app_pages",
                           *(t for t in URL_PATHS.values() if t != "Tenant"), "Fleet health", "Audit trail"})


def leaked_navigation(frames: list[bytes], asked: str) -> list[str]:
    """The page titles and URL paths in these messages, but for the address the browser itself asked for (the
    server echoes the requested path back)."""
    sent = b"\n".join(frames)
    return [w for w in NAVIGATION_WORDS if w.encode("utf-8") in sent and w not in asked]


def record_frames(page) -> list[bytes]:
    """Every websocket message the server sends this page, as bytes (protobuf keeps strings as UTF-8)."""
    frames: list[bytes] = []

    def on_socket(ws) -> None:
        ws.on("framereceived", lambda payload: frames.append(
            payload if isinstance(payload, bytes) else str(payload).encode("utf-8")))

    page.on("websocket", on_socket)
    return frames


def test_signed_out_every_path_shows_only_the_sign_in_page(server, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    frames = record_frames(page)
    files_before = _files(server["db_dir"])
    # the first request of this fresh server: an old file-name route; then every other kind of address
    for path in FILE_NAMES + list(URL_PATHS) + ["/nonexistent", "/", *WITH_QUERY]:
        frames.clear()
        page.goto(server["url"] + path)
        assert_only_sign_in(page, path)
        assert not not_found_shown(page), f"{path}: signed out there is no navigation, so no 'Page not found'"
        assert b"Sign in to continue." in b"\n".join(frames), f"{path}: the websocket was not observed"
        leaked = leaked_navigation(frames, path)
        assert not leaked, f"{path}: signed out, the server sent other pages' titles or paths: {leaked}"
    assert _files(server["db_dir"]) == files_before, "signed out, the database was opened"
    assert not server["data"].exists(), "signed out, a data file (demo database, fingerprint secret) was created"
    context.close()


def sign_in(browser, idp, server, email: str):
    """A new browser: the sign-in page, the button, the provider's round trip, back signed in as `email`."""
    idp.email = email
    asked = idp.log.count("/authorize")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(server["url"] + "/")
    page.get_by_role("button", name="Sign in").click()
    shows(page, page.get_by_text(f"Signed in as {email}"), f"signed in as {email}")
    settle(page)
    assert idp.log.count("/authorize") == asked + 1 and "/token" in idp.log
    return context, page


def test_an_allowed_person_signs_in_and_every_page_opens(server, browser, idp):
    context, page = sign_in(browser, idp, server, ALLOWED)
    page.get_by_role("heading", name="Check a key").wait_for(timeout=WAIT_MS)
    sidebar = page.locator("[data-testid=stSidebar]")
    sidebar.get_by_text(f"Signed in as {ALLOWED}").wait_for(timeout=WAIT_MS)
    assert sidebar_links(page) == ["Check a key", "Triage", "Tenant", "Fleet health", "Sample data",
                                   "Sample transaction", "Verify integration", "Audit trail", "About"]
    assert page.locator("[data-testid=stSidebarNav]").count() == 0

    for path, heading in URL_PATHS.items():
        page.goto(server["url"] + path)
        shows(page, page.get_by_role("heading", name=heading, exact=True), f"{heading} on {path}")
        settle(page)
        assert not not_found_shown(page), f"{path} answered 'Page not found'"
    page.goto(server["url"] + f"/tenant-history?tenant={SLUG}")
    shows(page, page.get_by_role("heading", name=TENANT, exact=True), "the tenant's page")
    settle(page)
    # the router's own links work
    sidebar.locator("[data-testid=stPageLink]", has_text="Audit trail").click()
    page.get_by_role("heading", name="Audit trail").wait_for(timeout=WAIT_MS)
    assert page.url.endswith("/audit-trail")

    # a file name or an unknown path is no page of the router: Streamlit's notice, then the check page
    for path in ("/audit", "/nonexistent"):
        page.goto(server["url"] + path)
        shows(page, page.get_by_role("heading", name="Check a key", exact=True), f"the check page for {path}")
        settle(page)
        assert page.locator("h1").all_inner_texts() == ["Check a key"], path

    # demo mode survives a refresh (a refresh is a new session: the mode rides in the URL)
    page.goto(server["url"] + "/tenants")
    page.get_by_role("heading", name="Triage").wait_for(timeout=WAIT_MS)
    settle(page)
    sidebar.get_by_text("Demo mode", exact=True).click()
    sidebar.get_by_text("Demo mode:").wait_for(timeout=WAIT_MS)
    settle(page)
    assert "demo=1" in page.url
    page.reload()
    page.get_by_role("heading", name="Triage").wait_for(timeout=WAIT_MS)
    sidebar.get_by_text("Demo mode:").wait_for(timeout=WAIT_MS)
    settle(page)
    assert sidebar.locator("[data-testid=stCheckbox] input, input[role=switch], "
        "input[type=checkbox]").first.is_checked()
    sidebar.locator("[data-testid=stPageLink]", has_text="Fleet health").click()
    page.get_by_role("heading", name="Fleet health").wait_for(timeout=WAIT_MS)
    settle(page)
    assert "demo=1" in page.url, "the mode stays in the URL from page to page"
    context.close()


def test_a_signed_in_outsider_is_refused_everywhere(server, browser, idp):
    context, page = sign_in(browser, idp, server, OUTSIDER)
    for path in ["/", "/audit-trail", "/tenants", f"/tenant-history?tenant={SLUG}", "/audit", "/check-key",
                 "/nonexistent"]:
        page.goto(server["url"] + path)
        shows(page, page.get_by_text("This account is not allowed to use Key Health"), f"refused on {path}")
        settle(page)
        assert page.locator("h1").all_inner_texts() == ["Key Health"], path
        page.get_by_text(f"Signed in as {OUTSIDER}").wait_for(timeout=WAIT_MS)
        assert page.get_by_role("link", name=OUTSIDER).count() == 0, "the address is text, not a mailto link"
        for secret in TENANT_DATA:
            assert secret not in page.content(), (path, secret)
        assert sidebar_links(page) == [] and page.locator("[data-testid=stSidebarNav]").count() == 0
    context.close()


def test_an_allowed_address_the_provider_has_not_verified_is_refused_everywhere(server, browser, idp):
    """The identity provider says `email_verified: false`: the old gate never read it and let this person in."""
    idp.email_verified = False
    try:
        context, page = sign_in(browser, idp, server, ALLOWED)
    finally:
        idp.email_verified = True
    frames = record_frames(page)
    for path in ["/", "/tenants", f"/tenant-history?tenant={SLUG}", "/audit-trail", "/check-key"]:
        frames.clear()
        page.goto(server["url"] + path)
        shows(page, page.get_by_text("This account's email address is not verified"), f"unverified on {path}")
        settle(page)
        assert page.locator("h1").all_inner_texts() == ["Key Health"], path
        for secret in TENANT_DATA:
            assert secret not in page.content(), (path, secret)
        assert sidebar_links(page) == [] and page.locator("[data-testid=stSidebarNav]").count() == 0
        assert not not_found_shown(page), path
        leaked = leaked_navigation(frames, path)
        assert not leaked, f"{path}: refused, the server sent other pages' titles or paths: {leaked}"
    context.close()


def test_after_a_restart_a_direct_first_load_opens_without_page_not_found(idp, browser, tmp_path_factory):
    """A team reopening its tabs after a deploy: signed in (the cookie outlives the server), the first request a
    freshly started server gets is a direct link to a page. With the page scripts in pages/ each such load
    opened Streamlit's "Page not found" popup over the page."""
    tmp = tmp_path_factory.mktemp("sign-in-restart")
    port = free_port()
    secrets = auth_section(f"http://127.0.0.1:{port}", idp) + ALLOW_LIST
    with run_server(tmp, port, secrets) as srv:
        context, page = sign_in(browser, idp, srv, ALLOWED)
        page.close()
    for path, heading in [("/tenants", "Triage"), ("/audit-trail", "Audit trail"),
                          (f"/tenant-history?tenant={SLUG}", TENANT)]:
        with run_server(tmp, port, secrets) as srv:  # a fresh server: this is its first page load
            first = context.new_page()
            first.goto(srv["url"] + path)
            shows(first, first.get_by_role("heading", name=heading, exact=True), f"{heading} after a restart")
            settle(first)
            assert not not_found_shown(first), f"{path}: 'Page not found' on the first load after a restart"
            # more tabs reopened on the same fresh server
            for other, other_heading in [("/fleet-health", "Fleet health"), ("/about-key-health", "About Key Health")]:
                tab = context.new_page()
                tab.goto(srv["url"] + other)
                shows(tab, tab.get_by_role("heading", name=other_heading, exact=True), f"{other} after a restart")
                settle(tab)
                assert not not_found_shown(tab), f"{other}: 'Page not found' after a restart"
                tab.close()
            first.close()
    context.close()


INCOMPLETE = {
    # every key of [auth] commented out, next to an allow-list: the old code ran open
    "commented-out-auth": (lambda base, idp: auth_section(base, idp, comment="# ") + ALLOW_LIST,
                           "[auth] lacks redirect_uri"),
    # Streamlit reads only [auth]: the old code ran open
    "capitalised-Auth": (lambda base, idp: auth_section(base, idp, header="[Auth]") + ALLOW_LIST,
                         "spelled [Auth]"),
}


@pytest.mark.parametrize("case", sorted(INCOMPLETE))
def test_incomplete_sign_in_settings_close_every_page_with_one_sentence(case, idp, browser, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"sign-in-{case}")
    port = free_port()
    make, words = INCOMPLETE[case]
    with run_server(tmp, port, make(f"http://127.0.0.1:{port}", idp)) as srv:
        files_before = _files(srv["db_dir"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        frames = record_frames(page)
        for path in ["/tenants", "/", "/audit-trail", f"/tenant-history?tenant={SLUG}", "/fleet-health", "/audit"]:
            frames.clear()
            page.goto(srv["url"] + path)
            shows(page, page.get_by_text("Sign-in is configured but incomplete"), f"{case}: closed on {path}")
            settle(page)
            body = page.locator("[data-testid=stMain]").inner_text()
            assert words in body, (path, body)
            assert page.locator("h1").all_inner_texts() == ["Key Health"], path
            assert page.get_by_role("button", name="Sign in").count() == 0, path
            for secret in TENANT_DATA:
                assert secret not in page.content(), (path, secret)
            assert sidebar_links(page) == [] and page.locator("[data-testid=stSidebarNav]").count() == 0
            assert page.locator("[data-testid=stDataFrame], input, [data-testid=stPlotlyChart]").count() == 0
            assert not not_found_shown(page), path
            leaked = leaked_navigation(frames, path)
            assert not leaked, f"{path}: closed, the server sent other pages' titles or paths: {leaked}"
        assert _files(srv["db_dir"]) == files_before, "closed, the database was opened"
        context.close()
