"""The five support tickets of issue 19, played in Chromium against a real `streamlit run app.py` in demo mode.

Each ticket takes at most 4 actions after its page opens (an action: a click, or typing a search or a key and
pressing Enter), and asserts that the agent sees what is wrong, since when, and the message to send. The demo's
key source (scripts/demo_key_source.py) holds the story keys, so no key is ever pasted for a tenant that Pointai
already holds a key for. Screenshots go to <KEYHEALTH_SCREENSHOTS or tests/artifacts/screenshots>/tickets/
(`make screenshots` writes docs/screenshots/tickets/).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from e2e_support import HAVE_CHROMIUM, NO_CHROMIUM, streamlit_server

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / os.environ.get("KEYHEALTH_SCREENSHOTS", "tests/artifacts/screenshots") / "tickets"
WAIT_MS = 90_000
MAX_ACTIONS = 4
UTC_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_CHROMIUM, reason=NO_CHROMIUM),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_db):
    """`streamlit run app.py` with KEYHEALTH_DEMO=1 and a temporary data dir, on a free port."""
    data = tmp_path_factory.mktemp("tickets-data")
    demo_db(data, None)  # the seeded demo (and its fingerprint secret), copied (conftest)
    env = dict(os.environ)
    env.update({"KEYHEALTH_DEMO": "1", "KEYHEALTH_DATA_DIR": str(data)})
    for k in ("DATABASE_URL", "STRIPE_API_BASE", "KEYHEALTH_FINGERPRINT_SECRET", "KEYHEALTH_KEYS_FROM"):
        env.pop(k, None)
    with streamlit_server("app.py", cwd=ROOT, env=env, log_path=data / "streamlit.log") as base:
        yield {"url": base, "data": data}


@pytest.fixture(scope="module", autouse=True)
def warm(server, browser):
    """A fresh server's very first script run answers any address but / with Streamlit's "Page not found"
    notice (a Streamlit limit, see the README); the demo is also seeded then. Done once, before the tickets."""
    page = browser.new_page()
    page.goto(server["url"] + "/?demo=1")
    page.get_by_role("heading", name="Check a key").wait_for(timeout=WAIT_MS)
    page.close()


@pytest.fixture(scope="module")
def owners():
    from core.demo import demo_key_owners

    return demo_key_owners()


class Agent:
    """A support agent in the browser, counting what they do after the page opens."""

    def __init__(self, browser, base: str, log: Path):
        self.page = browser.new_page(viewport={"width": 1360, "height": 1100}, device_scale_factor=1)
        self.base = base
        self.log = log
        self.actions = 0

    def open(self, path: str) -> None:
        sep = "&" if "?" in path else "?"
        self.page.goto(f"{self.base}{path}{sep}demo=1")
        self.page.get_by_role("heading", level=1).first.wait_for(timeout=WAIT_MS)
        self.settle()
        self.actions = 0

    def settle(self) -> None:
        """Until the app's script run has finished (Streamlit's own script state on stApp, and no running
        indicator): a page read before then may be only partly drawn."""
        self.page.wait_for_function(
            "() => { const app = document.querySelector('[data-testid=stApp]');"
            " const widget = document.querySelector('[data-testid=stStatusWidget]');"
            " return app && app.getAttribute('data-test-script-state') === 'notRunning'"
            " && (!widget || getComputedStyle(widget).visibility === 'hidden'); }",
            timeout=WAIT_MS,
        )
        self.page.wait_for_timeout(300)

    def act(self, what) -> None:
        """One action (a click, or typing and Enter), then wait for the app to finish."""
        self.actions += 1
        assert self.actions <= MAX_ACTIONS, "a ticket takes at most 4 actions"
        try:
            what()
        except Exception as e:  # a timed-out wait says what the page showed and what the server logged
            raise AssertionError(f"{e}\n\n{self.seen()}") from e
        self.settle()

    def seen(self) -> str:
        """What the page shows (address, headings, buttons, main text) and the server log's tail, for a failure."""
        page = self.page
        buttons = [(b.inner_text().strip(), b.is_disabled()) for b in page.get_by_role("button").all()]
        log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no server log)"
        return (f"page: {page.url}\nheadings: {page.locator('h1, h2, h3').all_inner_texts()}\nbuttons: {buttons}\n"
                f"main text:\n{self.text()[:2000]}\n\nserver log (tail):\n{log}")

    def choose(self, label: str, option: str) -> None:
        """Two actions: open the select box, pick `option`. Under load Chromium can lose the pick while the list is
        still opening: the list then stays open, and while it is open the rest of the page is hidden from the
        accessibility tree (CI met a form's buttons missing for 90 s that way). The pick is repeated until the list
        has closed; it is still one action."""
        self.act(lambda: self.page.get_by_label(label).click(timeout=WAIT_MS))

        def pick() -> None:
            listbox = self.page.get_by_role("listbox")
            for _ in range(5):
                self.page.get_by_role("option", name=option, exact=True).click(timeout=WAIT_MS)
                try:
                    listbox.wait_for(state="hidden", timeout=5_000)
                    return
                except Exception:  # noqa: BLE001 - the pick was lost: pick again (the list is still open)
                    continue
            raise AssertionError(f"the list stayed open after picking {option!r} five times")

        self.act(pick)

    def click(self, name: str) -> None:
        self.act(lambda: self.page.get_by_role("button", name=name).click(timeout=WAIT_MS))  # as slow as any wait

    def text(self) -> str:
        return self.page.locator("[data-testid=stMain]").inner_text().replace("\u2060", "")

    def see(self, text: str | re.Pattern) -> None:
        try:
            self.page.get_by_text(text).first.wait_for(timeout=WAIT_MS)
        except Exception as e:  # as in act
            raise AssertionError(f"{e}\n\n{self.seen()}") from e

    def shot(self, name: str) -> None:
        import io

        from PIL import Image

        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.mouse.move(1, 1)  # no tooltip over the page
        self.page.wait_for_timeout(300)
        png = self.page.screenshot(full_page=True)
        img = Image.open(io.BytesIO(png)).convert("RGB")
        img = img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        img.save(SHOTS / f"{name}.png", "PNG", optimize=True)


def message_block(agent: Agent) -> str:
    """The message for the tenant, as the page shows it to copy (a code block after its label)."""
    agent.see("Message for the tenant")
    return agent.page.locator("[data-testid=stMain] [data-testid=stCode]").last.inner_text()


def no_key_on_page(agent: Agent) -> None:
    from sandbox import DEMO_KEYS

    html = agent.page.content()
    for dk in DEMO_KEYS.values():
        if dk.story:  # the story keys the key source holds: never on the page (the sidebar lists them collapsed)
            body = html.split('data-testid="stSidebar"')[0]
            assert dk.key not in body, f"{dk.name} key shown on the page"


def slug(name: str) -> str:
    from core.store import slugify

    return slugify(name)


# --- 1. "Our key stopped working." -------------------------------------------------------------------------
def test_ticket_our_key_stopped_working(server, browser, owners):
    tenant = owners["live_revoked"]
    agent = Agent(browser, server["url"], server["data"] / "streamlit.log")
    agent.open(f"/tenant-history?tenant={slug(tenant)}")
    agent.click("Check the key Pointai holds")
    agent.see("Checked the key Pointai holds")
    text = agent.text()
    # what is wrong: Stripe refuses the key, which it accepted before: revoked
    assert "INVALID" in text and "revoked" in text, agent.seen()
    # since when: the key last worked on a date, and the tenant has not been healthy since (a failure shows the
    # page and the server's log: a history read that failed is logged there)
    assert re.search(r"accepted this key on \d{4}-\d\d-\d\d \d\d:\d\d UTC", text), agent.seen()
    assert re.search(r"Not healthy since \d{4}-\d\d-\d\d \d\d:\d\d UTC", text), agent.seen()
    # the message to send
    msg = message_block(agent)
    assert msg.strip() and "restricted key" in msg
    # the tenant's words, second person, never "the tenant"
    assert "the tenant" not in msg.lower() and "your" in msg.lower()
    no_key_on_page(agent)
    assert agent.actions <= MAX_ACTIONS
    agent.shot("1-our-key-stopped-working")


# --- 2. "Permission errors on subscriptions." ----------------------------------------------------------------
def test_ticket_permission_errors_on_subscriptions(server, browser, owners):
    tenant = owners["live_missing"]
    agent = Agent(browser, server["url"], server["data"] / "streamlit.log")
    agent.open("/tenants")
    search = agent.page.locator("input[aria-label=Search]")
    agent.act(lambda: (search.fill(tenant.split()[0]), search.press("Enter")))
    agent.act(lambda: agent.page.locator("[data-testid=stPageLink]", has_text=tenant).first.click(timeout=WAIT_MS))
    agent.page.get_by_role("heading", name=tenant).wait_for(timeout=WAIT_MS)
    agent.click("Check the key Pointai holds")
    agent.see("Checked the key Pointai holds")
    text = agent.text()
    assert "FAILING" in text  # what is wrong
    assert re.search(r"Not healthy since \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)  # since when
    assert re.search(r"[Ll]ast healthy \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)
    msg = message_block(agent)
    assert "Subscriptions" in msg and "Invoices" in msg  # what to change, in the message to send
    # the Tenant page names the missing permissions from the stored rows
    assert "Subscriptions" in agent.page.locator("[data-testid=stMain]").inner_text()
    no_key_on_page(agent)
    agent.shot("2-permission-errors-on-subscriptions")


# --- 3. "Checkout fails." -----------------------------------------------------------------------------------
def test_ticket_checkout_fails(server, browser, owners):
    tenant = owners["test_on_live"]
    agent = Agent(browser, server["url"], server["data"] / "streamlit.log")
    agent.open(f"/tenant-history?tenant={slug(tenant)}")
    text = agent.text()
    # what is wrong, before any action: a live tenant on a test key of another account, since the replacement
    assert "current key is a test-mode key" in text
    assert re.search(r"Key replaced on \d{4}-\d\d-\d\d", text) and "account changed" in text
    agent.click("Check the key Pointai holds")
    agent.see("Checked the key Pointai holds")
    text = agent.text()
    assert "FAILING" in text and re.search(r"Not healthy since \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)
    msg = message_block(agent)
    assert "test-mode key" in msg and "rk_live_" in msg  # the message: send us your live key
    # one mode per message, the live create-key link only
    assert "rk_test_" not in msg.split("test-mode key")[-1]
    no_key_on_page(agent)
    agent.shot("3-checkout-fails")


# --- 4. "Please verify our integration." --------------------------------------------------------------------
def test_ticket_please_verify_our_integration(server, browser, owners):
    tenant = owners["healthy"]  # a test-mode tenant: the check, sample data and a test charge
    agent = Agent(browser, server["url"], server["data"] / "streamlit.log")
    agent.open("/verify-integration")
    agent.choose("Tenant (the check is recorded in its history)", tenant)  # two actions: open the list, pick
    agent.click("Verify the key Pointai holds")
    agent.see("VERIFIED")
    codes = agent.page.locator("[data-testid=stMain] [data-testid=stCode]")
    summary, msg = codes.nth(0).inner_text(), codes.nth(1).inner_text()
    # what happened, and when (UTC), for the ticket
    assert re.search(r"verified on \d{4}-\d\d-\d\d \d\d:\d\d UTC: all good", summary)
    assert "Sample transaction: passed, test charge ch_" in summary
    # the message to send
    assert re.search(r"Pointai can read your balance, charges, .*invoices", msg)
    assert re.search(r"created a test charge ch_\w+ on \d{1,2} \w+ \d{4}", msg)
    assert "the tenant" not in msg.lower()
    no_key_on_page(agent)
    agent.shot("4-please-verify-our-integration")


# --- 5. "Which tenants need us this morning?" ---------------------------------------------------------------
def test_ticket_which_tenants_need_us_this_morning(server, browser):
    agent = Agent(browser, server["url"], server["data"] / "streamlit.log")
    agent.open("/tenants")
    agent.page.locator("[role=gridcell]").first.wait_for(state="attached", timeout=WAIT_MS)
    # what is wrong, first: the worst tenants head the list, each with its problem
    links = agent.page.locator("[data-testid=stPageLink]").filter(has_text=re.compile(r"\((invalid|failing)\)"))
    assert links.count() >= 3, "the tenants that need us are linked first"
    first = links.first.inner_text()
    assert re.search(r"\((invalid|failing)\)", first)
    statuses = agent.page.locator("[role=gridcell]").filter(has_text=re.compile(r"^(invalid|failing)$"))
    assert statuses.count() >= 3
    # tenants in production and live keys first, "got worse in the last 24 hours"
    agent.see(re.compile("last 24 hours"))
    agent.shot("5-which-tenants-need-us-this-morning")
    name = re.sub(r"\s*\((invalid|failing)\)\s*$", "", first).strip()
    agent.act(lambda: links.first.click(timeout=WAIT_MS))
    agent.page.get_by_role("heading", name=name).wait_for(timeout=WAIT_MS)
    agent.settle()
    text = agent.text()
    # since when: the latest check's time, in UTC; what: its status and problem
    assert re.search(r"(INVALID|FAILING) · score \d+/100", text) and UTC_TIME.search(text)
    assert "Problem:" in text
    # the Tenant page shows "broken since" and the message from the stored rows
    assert "broken since" in text.lower() and "Message for the tenant" in text
    assert agent.actions <= MAX_ACTIONS
    agent.shot("5b-the-first-tenant")
