"""Issue 19.4 and 19.7 on the Check page (AppTest, real mode against the project's Stripe sandbox): checks that keep
history true ("Check only", the tenant named before the click, "right tenant?" for another Stripe account,
similar-name suggestion, no age for a key Stripe refuses) and a result read at a glance (the verdict and what to
change first, "Problems only" by default, "What to change" grouped by category, progress in the grid's totals)."""
from __future__ import annotations

import pytest
from apptest import AppTest
from test_app_check import button, paste, record_button  # the Check page's AppTest helpers

from core import store
from sandbox import DEMO_KEYS

APP = "../../app.py"
ONLY = "Check only (don't record)"


def fresh_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert not [e for e in at.error if "Something went wrong" in e.value]


def check(at: AppTest, key: str, tenant: str) -> AppTest:
    paste(at, key, tenant)
    record_button(at).click().run()
    assert_clean(at)
    return at


@pytest.fixture
def real_env(app_env):
    return app_env


def plain(text: str) -> str:
    """Markdown as read: without md_escape's backslashes."""
    return text.replace("\\", "").replace("\u2060", "").replace("**", "")


def _history(url: str, tenant: str) -> list:
    return store.at(url).tenant_history(tenant)


def test_the_tenant_is_named_before_the_click_and_enter_records(real_env, sandbox):
    at = fresh_app()
    paste(at, DEMO_KEYS["healthy"].key, "Acme Coffee Roasters")
    labels = [b.label for b in at.button]
    # Enter in the key field presses the form's first submit button (st.form enter_to_submit): "Check and record"
    assert labels[:2] == ["Check and record", ONLY], labels
    said = [plain(c.value) for c in at.caption]
    assert any("records the check in Acme Coffee Roasters's history (a new tenant)" in c for c in said), said
    record_button(at).click().run()
    assert_clean(at)
    assert len(_history(real_env, "Acme Coffee Roasters")) == 1
    said = [plain(c.value) for c in at.caption]
    assert any("records the check in Acme Coffee Roasters's history;" in c for c in said), said


def test_check_and_record_without_a_tenant_asks_for_one(real_env, sandbox):
    at = fresh_app()
    sandbox.clear_log()
    paste(at, DEMO_KEYS["healthy"].key, None)
    record_button(at).click().run()
    assert any("Choose or type the tenant first" in e.value for e in at.error)
    assert sandbox.requests == []


def test_check_only_records_nothing_and_says_so(real_env):
    at = check(fresh_app(), DEMO_KEYS["healthy"].key, "Keep Co")
    assert len(_history(real_env, "Keep Co")) == 1
    paste(at, DEMO_KEYS["missing"].key, "Keep Co")
    button(at, ONLY).click().run()
    assert_clean(at)
    assert at.error and "FAILING" in at.error[0].value and "check only: not recorded" in plain(at.error[0].value)
    assert len(_history(real_env, "Keep Co")) == 1, "a check only never enters the history"
    audit = store.at(real_env).list_audit(action="check_only")
    assert audit and audit[0]["tenant"] == "Keep Co" and audit[0]["outcome"] == "failing"


def test_a_key_of_another_account_asks_before_recording(real_env):
    at = check(fresh_app(), DEMO_KEYS["live_healthy"].key, "Harbor Co")
    assert len(_history(real_env, "Harbor Co")) == 1
    paste(at, DEMO_KEYS["missing"].key, "Harbor Co")  # the test account: another Stripe account
    record_button(at).click().run()
    assert_clean(at)
    warnings = " ".join(w.value for w in at.warning)
    assert "This key belongs to another Stripe account: right tenant?" in warnings
    assert len(_history(real_env, "Harbor Co")) == 1, "nothing recorded before the answer"
    button(at, "No, don't record it").click().run()
    assert len(_history(real_env, "Harbor Co")) == 1
    assert "not recorded" in plain(at.error[0].value)
    # asked again, and this time confirmed
    paste(at, DEMO_KEYS["missing"].key, "Harbor Co")
    record_button(at).click().run()
    button(at, "Yes, record it for Harbor Co").click().run()
    assert_clean(at)
    assert [h["status"] for h in _history(real_env, "Harbor Co")] == ["failing", "healthy"]
    assert "recorded in Harbor Co's history" in plain(at.error[0].value)


def test_a_similar_name_offers_the_existing_tenant(real_env):
    at = check(fresh_app(), DEMO_KEYS["healthy"].key, "Northwind Bikes")
    pick = at.selectbox(key="kh_tenant_pick")
    pick.set_value(pick.options[0]).run()  # "New tenant…"
    at.text_input(key="kh_tenant_new").input("Northwind Bike").run()
    assert any("Northwind Bikes" in w.value and "already exists" in w.value for w in at.warning)
    button(at, "Use Northwind Bikes").click().run()
    assert at.selectbox(key="kh_tenant_pick").value == "Northwind Bikes"
    assert any("records the check in Northwind Bikes's history;" in plain(c.value) for c in at.caption)
    record_button(at).click().run()
    assert len(_history(real_env, "Northwind Bikes")) == 2
    assert store.at(real_env).get_tenant("Northwind Bike") is None


def test_a_key_stripe_refuses_gets_no_age_and_reads_replaced_by_a_refused_key(real_env):
    at = check(fresh_app(), DEMO_KEYS["healthy"].key, "Refuse Co")
    never = "rk_test_" + "NeverAcceptedByStripe" + "q" * 60  # well-formed, unknown to Stripe
    at = check(at, never, "Refuse Co")
    assert at.error and "INVALID" in at.error[0].value
    infos = " ".join(i.value for i in at.info)
    assert "Replaced by a key Stripe refuses" in infos
    assert not any("in use for" in c.value for c in at.caption), "a key Stripe never accepted has no age"
    (latest, _first) = _history(real_env, "Refuse Co")
    assert store.at(real_env).key_first_seen(latest["key_fingerprint"]) is None


def test_the_result_reads_at_a_glance(real_env):
    at = check(fresh_app(), DEMO_KEYS["missing"].key, "Glance Co")
    banner = plain(at.error[0].value)
    # the verdict and what to change first, then the facts
    assert banner.startswith("FAILING · Set ") and "more changes below" in banner
    assert at.toggle(key="kh_problems_only").value is True, "opens on Problems only when there are problems"
    changes = plain(next(m.value for m in at.markdown if m.value.startswith("In the Stripe Dashboard")))
    assert changes.count("⋯ → Edit key") == 1, "where to go is said once, not once per row"
    assert "\nBilling (2)\n" in changes and "- Subscriptions: Write (now None)" in changes
    assert any(c.value.startswith("By category: ") for c in at.caption)
    # the progress bar's totals and words: tests/app/test_check_view.py (AppTest cannot see it after the rerun)


def test_a_key_refused_here_shows_the_tenant_message_without_recording(real_env, sandbox):
    at = fresh_app()
    sandbox.clear_log()
    paste(at, "pk_live_" + "a" * 40, "Pk Co")
    record_button(at).click().run()
    assert "publishable" in at.error[0].value.lower()
    assert "Pointai needs a restricted key instead" in at.code[0].value
    assert sandbox.requests == [] and store.at(real_env).get_tenant("Pk Co") is None
