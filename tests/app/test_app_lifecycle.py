"""Issue 12 on the pages: triage key signals (column and filter), the tenant page's key facts, the fleet's key
signals and unreachable share in demo mode; Stripe unreachable and a replaced key on the check page in real mode."""
from __future__ import annotations

import json
import socket

import pytest
from apptest import AppTest
from test_app_pages import app, figures  # tests/ is on sys.path (no package: see conftest)

from core import runtime, store
from core.config import settings
from sandbox import DEMO_KEYS

APP = "../../app.py"


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory, demo_db):
    """Demo mode on a fresh data dir (the same settings as tests/app/test_app_pages.py)."""
    data = tmp_path_factory.mktemp("lc-demo-data")
    demo_db(data, "test-secret-for-app-tests")  # the seeded demo, copied (conftest)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEYHEALTH_DEMO", "1")
        mp.setenv("KEYHEALTH_DATA_DIR", str(data))
        mp.setenv("DATABASE_URL", f"sqlite:///{data / 'real.db'}")
        mp.delenv("STRIPE_API_BASE", raising=False)
        mp.setenv("KEYHEALTH_FINGERPRINT_SECRET", "test-secret-for-app-tests")
        mp.setenv("KEYHEALTH_RATE_TEST", "400")
        mp.setenv("KEYHEALTH_RATE_LIVE", "400")
        yield runtime.demo(settings())


def texts(at: AppTest) -> str:
    parts = [x.value for kind in ("markdown", "caption", "info", "warning", "error", "success") for x in at.get(kind)]
    return "\n".join(str(p) for p in parts)


def test_triage_key_signals_column_and_filter(demo_env):
    at = app("app_pages/triage.py")
    frame = at.dataframe[0].value
    words = " ".join(frame["Problem"])  # the key's signals lead the short problem
    for w in ("key replaced", "mode changed", "another Stripe account", "test key on a live tenant", "rotation due",
        "shared key"):
        assert w in words, w
    for flag, word in (("mode_changed", "mode changed"), ("rotation_due", "rotation due"), ("shared_key",
        "shared key")):
        at.multiselect(key="tr_flags").set_value([flag]).run()
        f = at.dataframe[0].value
        assert len(f) == len(demo_env.store.latest_checks(flag=flag)) >= 1
        assert all(word in s for s in f["Problem"])
    at.multiselect(key="tr_flags").set_value([]).run()


def test_tenant_page_shows_the_replaced_key_not_drift(demo_env):
    (t,) = demo_env.store.latest_checks(flag=["mode_changed", "mode_mismatch"])
    at = app("app_pages/tenant.py", tenant=t["slug"])
    page = texts(at)
    assert "Key replaced" in page and "mode changed" in page and "account changed" in page
    assert "live (in production) but its current key is a test-mode key" in page
    assert [s.value for s in at.subheader].count("Changes with the new key") == 1
    assert at.toggle(key=f"tn_live_{t['slug']}").value is True
    assert "No permission changed between checks of the same key" in page or demo_env.store.drift(t["slug"])
    figs = figures(at)
    shapes = figs[1]["layout"].get("shapes", [])
    assert any(s.get("line", {}).get("dash") == "dash" for s in shapes), "the replacement is marked on the timeline"


def test_tenant_page_flags_a_shared_key_and_key_age(demo_env):
    shared = demo_env.store.latest_checks(flag="shared_key")
    assert len(shared) >= 2
    at = app("app_pages/tenant.py", tenant=shared[0]["slug"])
    page = texts(at)
    assert "is also recorded for" in page and "has been in use for" in page
    old = demo_env.store.latest_checks(flag="rotation_due")[0]
    at = app("app_pages/tenant.py", tenant=old["slug"])
    assert "rotation is due" in texts(at)


def test_tenant_page_marks_a_tenant_live(demo_env):
    t = next(x for x in demo_env.store.list_tenants() if not x.get("expected_mode"))
    at = app("app_pages/tenant.py", tenant=t["slug"])
    at.toggle(key=f"tn_live_{t['slug']}").set_value(True).run()
    assert demo_env.store.get_tenant(t["slug"])["expected_mode"] == "live"
    at.toggle(key=f"tn_live_{t['slug']}").set_value(False).run()
    assert demo_env.store.get_tenant(t["slug"])["expected_mode"] is None


def test_fleet_key_signals_and_unreachable_share(demo_env):
    at = app("app_pages/fleet.py")
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["key replaced this week"]) >= 2
    assert int(metrics["mode or account changed"]) >= 2
    assert int(metrics["due for rotation"]) >= 1
    assert float(metrics["checks unreachable"].rstrip("%")) > 0
    figs = figures(at)
    unreachable = figs[4]["data"][0]
    assert max(unreachable["y"]) > 0
    mix = figs[0]["data"]
    assert "unreachable" not in {t["name"] for t in mix}, "out of the status mix"
    signals = figs[5]["data"][0]
    assert all(x >= 1 for x in signals["x"])


# --- real mode: the check page --------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check(at: AppTest, key: str, tenant: str) -> AppTest:
    pick = at.selectbox(key="kh_tenant_pick")
    if tenant in pick.options:
        pick.set_value(tenant).run()
    else:
        pick.set_value(pick.options[0]).run()
        at.text_input(key="kh_tenant_new").input(tenant)
    at.run()  # the tenant choice first; the key is sent with the form's submit
    at.text_input(key="kh_key_input").input(key)
    next(b for b in at.button if b.label == "Check and record").click().run()
    assert not at.exception, at.exception
    return at


def test_check_page_unreachable_is_our_side_and_offers_no_message(app_env, monkeypatch):
    monkeypatch.setenv("STRIPE_API_BASE", f"http://127.0.0.1:{_free_port()}")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    _check(at, DEMO_KEYS["healthy"].key, "Acme")
    errors = " ".join(e.value for e in at.error)
    assert "STRIPE UNREACHABLE" in errors and "not the tenant's key" in errors
    page = texts(at)
    assert "cannot reach" in page and "connection refused" in page
    assert "Message for the tenant" not in page and not at.code
    assert not at.dataframe, "no grid"
    (h,) = store.at(app_env).tenant_history("Acme")
    assert h["status"] == "unreachable" and h["score"] is None


def test_check_page_shows_a_replaced_key(app_env):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    _check(at, DEMO_KEYS["live_healthy"].key, "Acme")
    _check(at, DEMO_KEYS["healthy"].key, "Acme")
    page = texts(at)
    assert "Key replaced" in page and "mode changed" in page and "another Stripe account" in page
    # issue 19.4: another Stripe account than the tenant's: asked before recording
    assert "right tenant?" in page and store.at(app_env).key_events("Acme") == []
    next(b for b in at.button if b.label == "Yes, record it for Acme").click().run()
    assert not at.exception, at.exception
    assert store.at(app_env).drift("Acme") == []
    assert json.dumps(store.at(app_env).key_events("Acme")[0]["mode_changed"]) == "true"
