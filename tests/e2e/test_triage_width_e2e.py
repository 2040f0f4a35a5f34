"""Triage fits a 1280 px window: a real `streamlit run app.py` in demo mode, Chromium at 1280 × 900 with the sidebar
open. The table's scroller is no wider than its box (no sideways scrolling), and the Problem column is there."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from e2e_support import HAVE_CHROMIUM, NO_CHROMIUM, streamlit_server

ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 60_000

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not HAVE_CHROMIUM, reason=NO_CHROMIUM)]


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_db):
    data = tmp_path_factory.mktemp("e2e-triage")
    demo_db(data, None)  # the seeded demo (and its fingerprint secret), copied (conftest)
    env = dict(os.environ)
    env.update({"KEYHEALTH_DEMO": "1", "KEYHEALTH_DATA_DIR": str(data)})
    for k in ("DATABASE_URL", "STRIPE_API_BASE", "KEYHEALTH_FINGERPRINT_SECRET"):
        env.pop(k, None)
    with streamlit_server("app.py", cwd=ROOT, env=env, log_path=data / "streamlit.log") as base:
        yield base


def test_triage_fits_1280_px_without_sideways_scrolling(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server}/tenants?demo=1", timeout=WAIT_MS)
    page.get_by_role("heading", name="Triage").wait_for(timeout=WAIT_MS)
    grid = page.locator("[data-testid=stDataFrame]").first
    grid.wait_for(timeout=WAIT_MS)
    page.wait_for_function("() => document.querySelector('[data-testid=stDataFrame] .dvn-scroller')",
                           timeout=WAIT_MS)
    page.wait_for_timeout(500)  # the grid sizes its columns after its first paint
    assert page.locator("[data-testid=stSidebar]").first.is_visible()
    widths = grid.evaluate(
        "el => { const s = el.querySelector('.dvn-scroller') || el;"
        " return [s.scrollWidth, s.clientWidth, el.getBoundingClientRect().right]; }")
    scroll_width, client_width, right = widths
    assert scroll_width <= client_width + 1, widths  # nothing hidden to the right
    assert right <= 1280, widths
    page.close()
