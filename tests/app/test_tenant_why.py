"""Issue 19 (item 2): the Tenant page says why a tenant fails without the key.

From the stored rows of the latest check (no key in the session, no request to Stripe): the permissions that are not
ok by their Stripe Dashboard label with what to change, the message for the tenant rebuilt by the engine's
`tenant_message`, "broken since" (the first check of the current bad streak) and "last healthy". AppTest in real
mode, history written through record_check.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apptest import AppTest

from core import store
from core.engine.result import CheckResult, KeyInfo, Row
from core.ui import tenant as tables
from dashboard import session as state

APP = "../../app.py"
NOW = datetime.now(UTC).replace(microsecond=0)
OK = Row("Core", "Charges", "charge_read", "read", "read", "ok")
MISSING = [Row("Billing", "Subscriptions", "subscription_write", "write", "read", "missing"),
           Row("Billing", "Invoices", "invoice_read", "read", "none", "missing"),
           Row("Core", "Customers", "customer_write", "none", "write", "excess"), OK]


def rec(s, name, status, hours_ago, rows, *, mode="live", refused=None, problem=None):
    s.record_check(CheckResult(
        key=KeyInfo("restricted", mode, f"rk_{mode}_…w9y1", f"fp_{name.lower()}_{mode}"), status=status,
        score={"healthy": 100, "failing": 28, "invalid": 0}[status], rows=rows, account="acct_1Why",
        refused=refused, problem=problem, checked_at=NOW - timedelta(hours=hours_ago)),
        name, source="cli", checked_by=None)


def open_tenant(slug: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.query_params.update({"tenant": slug})
    at.switch_page("app_pages/tenant.py").run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    return "\n".join(str(x.value) for kind in ("markdown", "caption", "info", "warning", "error") for x in at.get(kind))


def test_the_tenant_page_names_the_missing_permissions_and_the_message_without_the_key(app_env):
    s = store.at(app_env)
    s.upgrade()
    rec(s, "Why Failing", "healthy", 72, [OK])
    rec(s, "Why Failing", "failing", 30, MISSING)
    rec(s, "Why Failing", "failing", 2, MISSING)
    at = open_tenant("why-failing")
    assert not at.session_state[state.KEY] if state.KEY in at.session_state else True  # no key in the session
    why = at.dataframe[0].value  # the first table on the page
    assert list(why["Permission"]) == ["Billing → Subscriptions", "Billing → Invoices", "Core → Customers"]
    assert list(why["Verdict"]) == ["missing", "missing", "excess"]
    change = dict(zip(why["Permission"], why["What to change"], strict=True))
    assert "Subscriptions to Write" in change["Billing → Subscriptions"]
    message = at.code[0].value
    assert "Subscriptions" in message and "Invoices" in message
    assert "the tenant" not in message.lower().replace("the tenant's", "")
    page = texts(at)
    broken = (NOW - timedelta(hours=30)).strftime("%Y-%m-%d %H:%M")
    healthy = (NOW - timedelta(hours=72)).strftime("%Y-%m-%d %H:%M")
    assert f"Broken since {broken} UTC" in page and f"last healthy {healthy} UTC" in page


def test_a_refused_key_and_a_test_key_on_a_live_tenant_get_their_message(app_env):
    s = store.at(app_env)
    s.upgrade()
    rec(s, "Why Expired", "invalid", 5, [], refused="expired", problem="Stripe says this key has expired.")
    at = open_tenant("why-expired")
    assert "Broken since" in texts(at) and "never healthy" in texts(at)
    assert at.code and "expired" in at.code[0].value.lower()
    s.get_or_create_tenant("Why Test Key")
    s.update_tenant("Why Test Key", expected_mode="live")
    rec(s, "Why Test Key", "healthy", 1, [OK], mode="test")
    at = open_tenant("why-test-key")
    assert at.code and "rk_live_" in at.code[0].value  # healthy, but the message asks for the live key
    assert "Broken since" not in texts(at)


def test_a_healthy_tenant_shows_no_why():
    tenant = {"expected_mode": None, "broken_since": None, "last_healthy_at": NOW}
    assert tables.streak_line(tenant, "healthy") is None
    row = {"category": "Core", "resource": "Charges", "scope": "charge_read", "required": "read", "granted": "read",
           "verdict": "ok"}
    stored = {"status": "healthy", "score": 100, "key_kind": "restricted", "key_mode": "live",
              "key_masked": "rk_live_…1", "key_fingerprint": "fp", "rows": [row]}
    rebuilt = tables.result_from_stored(stored, tenant)
    assert rebuilt.key.masked == "rk_live_…1" and rebuilt.rows[0].verdict == "ok"
    from core.engine.catalogue import load_profile

    assert tables.why_frame(rebuilt, load_profile()).empty
