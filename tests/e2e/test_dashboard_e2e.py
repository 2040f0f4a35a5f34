"""The dashboard end to end: a real `streamlit run app.py` in demo mode, driven in Debian's Chromium.

Pastes a bad key (answered at once, no request reaches the embedded sandbox), checks a demo key, sees the
grid (st.dataframe paints on a canvas; its cell text is in a hidden grid: [role=gridcell]), forgets the key,
checks a healthy key, finds the tenant on the triage page, opens its history, and runs a sample transaction.
Saves screenshots (tests/artifacts/screenshots/; `make screenshots` refreshes docs/screenshots/ for the README).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from e2e_support import HAVE_CHROMIUM, NO_CHROMIUM, http_get, streamlit_server

ROOT = Path(__file__).resolve().parents[2]
# Every run saves its screenshots under tests/artifacts/ (git-ignored); `make screenshots` sets
# KEYHEALTH_SCREENSHOTS=docs/screenshots to refresh the README's copies.
SHOTS = ROOT / os.environ.get("KEYHEALTH_SCREENSHOTS", "tests/artifacts/screenshots")
TENANT = "E2E Coffee Roasters"
WAIT_MS = 60_000

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_CHROMIUM, reason=NO_CHROMIUM),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_db):
    """`streamlit run app.py` with KEYHEALTH_DEMO=1 and a temporary data dir, on a free port."""
    data = tmp_path_factory.mktemp("e2e-data")
    demo_db(data, None)  # the seeded demo (and its fingerprint secret), copied (conftest)
    env = dict(os.environ)
    env.update({"KEYHEALTH_DEMO": "1", "KEYHEALTH_DATA_DIR": str(data)})
    for k in ("DATABASE_URL", "STRIPE_API_BASE", "KEYHEALTH_FINGERPRINT_SECRET"):
        env.pop(k, None)
    with streamlit_server("app.py", cwd=ROOT, env=env, log_path=data / "streamlit.log") as base:
        yield {"url": base, "data": data, "log": data / "streamlit.log"}


def settle(page) -> None:
    """Wait until the script run is over (the "Running…" indicator is gone)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=stStatusWidget]')"
        " || getComputedStyle(document.querySelector('[data-testid=stStatusWidget]')).visibility === 'hidden'",
        timeout=WAIT_MS,
    )
    page.wait_for_timeout(300)


def key_field(page):
    return page.locator("input[type=password][aria-label='Restricted key']")


def nav(page, title: str) -> None:
    """The router's own links in the sidebar (Streamlit's page list is off: it would show the file names)."""
    page.locator("[data-testid=stSidebar] [data-testid=stPageLink]").get_by_text(title, exact=True).click()
    page.get_by_role("heading", level=1).first.wait_for(timeout=WAIT_MS)
    settle(page)


def shot(page, name: str) -> None:
    """A screenshot for the README, reduced to a 256-colour palette (about 50 KB instead of 150 KB)."""
    import io

    from PIL import Image

    SHOTS.mkdir(parents=True, exist_ok=True)
    png = page.screenshot()
    img = Image.open(io.BytesIO(png)).convert("RGB")
    img = img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    img.save(SHOTS / f"{name}.png", "PNG", optimize=True)


def sandbox_requests(sandbox_url: str) -> list[dict]:
    return json.loads(http_get(sandbox_url + "/_sandbox/requests"))["requests"]


def seeded_tenant_with_history(data_dir: Path) -> str:
    """The demo tenant whose history shows the most permission changes (read from the server's demo DB)."""
    from core import store

    url = f"sqlite:///{data_dir / 'demo' / 'keyhealth-demo.db'}"
    best = max(
        (t for t in store.at(url).list_tenants() if t["name"] != TENANT),
        key=lambda t: (len({h["status"] for h in store.at(url).tenant_history(t["slug"])}),
                       len(store.at(url).drift(t["slug"]))),
    )
    return best["name"]


def test_dashboard_in_chromium(server, browser):
    from sandbox import DEMO_KEYS

    keys = [DEMO_KEYS["missing"].key, DEMO_KEYS["healthy"].key]
    page = browser.new_page(viewport={"width": 1360, "height": 1000}, device_scale_factor=1)
    urls: list[str] = []
    page.on("framenavigated", lambda f: urls.append(f.url))
    page.on("request", lambda r: urls.append(r.url))

    # --- the check page, in demo mode ---------------------------------------------------------------
    page.goto(server["url"] + "/")
    page.get_by_role("heading", name="Check a key").wait_for(timeout=WAIT_MS)
    settle(page)
    sidebar = page.locator("[data-testid=stSidebar]")
    sidebar.get_by_text("Demo mode:").wait_for(timeout=WAIT_MS)
    # shown as text: an invisible word joiner after "http:" keeps it from being a link (core.ui.text)
    caption = page.get_by_text("probing the embedded Stripe sandbox at").inner_text().replace("\u2060", "")
    sandbox_url = re.search(r"(http://127\.0\.0\.1:\d+)", caption).group(1)

    # a bad key is answered at once (Enter in the key field submits), without any request to Stripe
    before = len(sandbox_requests(sandbox_url))
    key_field(page).fill("pk_test_" + "x" * 30)
    key_field(page).press("Enter")
    page.get_by_text("publishable").first.wait_for(timeout=WAIT_MS)
    settle(page)
    assert len(sandbox_requests(sandbox_url)) == before

    # a new tenant
    page.get_by_label("Tenant", exact=True).click()
    page.get_by_role("option", name="New tenant").click()
    settle(page)
    new_name = page.get_by_label("New tenant's name", exact=True)
    new_name.fill(TENANT)
    new_name.press("Enter")
    settle(page)

    # the demo key with missing permissions: Enter in the key field checks and records it (the page names the
    # tenant before the click), and the grid opens on its problems
    page.get_by_text(f"records the check in {TENANT}'s history (a new tenant)").wait_for(timeout=WAIT_MS)
    key_field(page).fill(keys[0])
    key_field(page).press("Enter")
    page.get_by_text("FAILING", exact=True).first.wait_for(timeout=WAIT_MS)
    settle(page)
    page.locator("[role=gridcell]", has_text="missing").first.wait_for(state="attached", timeout=WAIT_MS)
    assert page.locator("[role=gridcell]", has_text="Charges").count() >= 1
    page.get_by_text("Message for the tenant").scroll_into_view_if_needed()
    page.get_by_text("FAILING", exact=True).first.scroll_into_view_if_needed()
    shot(page, "check")

    # forget the key: the field empties, the session says so
    page.get_by_role("button", name="Forget key").click()
    page.get_by_text("The key was forgotten").wait_for(timeout=WAIT_MS)
    assert key_field(page).input_value() == ""

    # a healthy key
    key_field(page).fill(keys[1])
    key_field(page).press("Enter")
    page.get_by_text("HEALTHY", exact=True).first.wait_for(timeout=WAIT_MS)
    settle(page)
    assert page.get_by_text("recorded in " + TENANT).count() >= 1, "Enter recorded the check"
    assert sidebar.get_by_text("Demo mode:").is_visible(), "demo mode must survive the checks"

    # --- triage: find the tenant, open its history ----------------------------------------------------
    nav(page, "Triage")
    shot(page, "triage")
    search = page.locator("input[aria-label=Search]")
    search.fill("e2e coffee")
    search.press("Enter")
    settle(page)
    page.locator("[role=gridcell]", has_text=TENANT).first.wait_for(state="attached", timeout=WAIT_MS)
    page.locator("[data-testid=stPageLink]", has_text=TENANT).click()
    page.get_by_role("heading", name=TENANT).wait_for(timeout=WAIT_MS)
    settle(page)
    assert "tenant=e2e-coffee-roasters" in page.url
    page.get_by_role("heading", name="History").wait_for(timeout=WAIT_MS)
    page.locator("[data-testid=stPlotlyChart]").nth(1).wait_for(timeout=WAIT_MS)
    assert page.locator("[data-testid=stPlotlyChart]").count() == 2
    page.get_by_role("heading", name="History").scroll_into_view_if_needed()
    history = page.locator("[role=gridcell]", has_text="dashboard")
    history.nth(1).wait_for(state="attached", timeout=WAIT_MS)
    assert history.count() == 2, "both checks are in the tenant's history"
    drift = page.locator("[role=gridcell]", has_text="missing → ok")
    assert drift.count() >= 1, "the fix shows as drift"

    # for the README: a seeded tenant with weeks of history, breakage and fix
    name = seeded_tenant_with_history(server["data"])
    nav(page, "Triage")
    search = page.locator("input[aria-label=Search]")
    search.fill(name)
    search.press("Enter")
    settle(page)
    page.locator("[data-testid=stPageLink]", has_text=name).click()
    page.get_by_role("heading", name=name).wait_for(timeout=WAIT_MS)
    settle(page)
    page.locator("[data-testid=stPlotlyChart]").nth(1).wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(500)
    shot(page, "tenant")

    # --- fleet health ----------------------------------------------------------------------------------
    nav(page, "Fleet health")
    page.locator("[data-testid=stPlotlyChart]").nth(3).wait_for(timeout=WAIT_MS)
    shot(page, "fleet")

    # --- a sample transaction with the session's (healthy, test) key --------------------------------------
    nav(page, "Sample transaction")
    page.get_by_role("button", name="Create test charge").click()
    page.get_by_text("Passed:").wait_for(timeout=WAIT_MS)
    settle(page)
    shot(page, "sample_transaction")

    # the key never went into a URL (page addresses and every request the browser made)
    for u in urls:
        for k in keys:
            assert k not in u
    assert not any(k in server["log"].read_text() for k in keys), "the key must not reach the server log"
    page.close()
