"""Issue 19 (items 2 and 3): Triage by impact, with a short problem beside each status, what got worse overnight
first, and its view in the URL.

Store side (SQLite and PostgreSQL): the default order puts tenants in production and on live keys first, then
severity where a key signal (a test key on a live tenant, another Stripe account) weighs as failing, then the
newest breakage; healthy tenants last. broken_since / last_healthy_at / worse_at and the short problem come from
the stored history. Page side (AppTest, real mode): the columns fit 1280 px, the problem column says what is wrong,
"got worse in the last 24 hours" is the first thing shown when not empty, the view round-trips through the URL
(user text from it stays plain text), and the figures follow the filters.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from apptest import AppTest

from core import store
from core.engine.result import Row
from core.ui import triage

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MISSING = [Row("Billing", "Subscriptions", "subscription_write", "write", "read", "missing"),
           Row("Billing", "Invoices", "invoice_read", "read", "none", "missing"),
           Row("Core", "Charges", "charge_read", "read", "read", "ok")]
OK = [Row("Core", "Charges", "charge_read", "read", "read", "ok")]
EXCESS = [Row("Core", "Charges", "charge_read", "read", "write", "excess")]


def rec(s, name, status, hours_ago, *, mode="test", fp=None, account="acct_1", rows=None, problem=None, now=NOW):
    rows = rows if rows is not None else {"healthy": OK, "attention": EXCESS}.get(status, MISSING)
    from core.engine.result import CheckResult, KeyInfo

    result = CheckResult(
        key=KeyInfo("restricted", mode, f"rk_{mode}_…{abs(hash(name)) % 10000:04d}",
                    fp or "fp_" + name.lower().replace(" ", "_")),
        status=status, score={"invalid": 0, "failing": 40, "attention": 80, "healthy": 100}[status],
        problem=problem, account=None if status == "invalid" else account,
        rows=[] if status == "invalid" else rows, refused="expired" if status == "invalid" else None,
        checked_at=now - timedelta(hours=hours_ago),
    )
    s.record_check(result, name, source="cli", checked_by=None)


def seed_impact(url: str, now: datetime = NOW) -> None:
    s = store.at(url)
    s.upgrade()
    for name in ("Prod Failing", "Prod Attention", "Prod Test Key"):
        s.get_or_create_tenant(name)
        s.update_tenant(name, expected_mode="live")
    rec(s, "Prod Failing", "healthy", 72, mode="live", now=now)
    rec(s, "Prod Failing", "failing", 48, mode="live", now=now)
    rec(s, "Prod Failing", "failing", 24, mode="live", now=now)
    rec(s, "Prod Attention", "attention", 30, mode="live", now=now)
    rec(s, "Prod Test Key", "healthy", 5, mode="test", now=now)  # healthy, but a test key on a live tenant
    rec(s, "Live Invalid New", "healthy", 50, mode="live", now=now)
    rec(s, "Live Invalid New", "invalid", 1, mode="live", now=now)  # broke an hour ago
    rec(s, "Live Invalid Old", "invalid", 120, mode="live", now=now)
    rec(s, "Live Invalid Old", "invalid", 2, mode="live", now=now)
    rec(s, "Switched Account", "healthy", 240, fp="fp_switch_a", account="acct_1", now=now)
    rec(s, "Switched Account", "attention", 3, fp="fp_switch_b", account="acct_2", now=now)  # another account
    rec(s, "Test Failing", "failing", 72, now=now)
    rec(s, "Test Invalid", "invalid", 100, now=now)
    rec(s, "Healthy Live", "healthy", 10, mode="live", now=now)
    rec(s, "Healthy Test", "healthy", 400, now=now)


ORDER = [
    # production or a live key, worst first (invalid, then failing), the newest breakage first
    "Live Invalid New", "Live Invalid Old", "Prod Failing",
    "Prod Test Key",  # healthy, but a test key on a live tenant weighs as failing (no breakage: after Prod Failing)
    "Prod Attention",
    # the others: invalid, then failing (another Stripe account weighs as failing; broke 3 h ago, the newest)
    "Test Invalid", "Switched Account", "Test Failing",
    # nothing to do: last, live first
    "Healthy Live", "Healthy Test",
]


def names(rows) -> list[str]:
    return [r["tenant"] for r in rows]


def test_impact_order_covers_production_live_and_key_signals(store_url):
    seed_impact(store_url)
    s = store.at(store_url)
    rows = s.latest_checks(now=NOW)
    assert names(rows) == ORDER
    # the same order one page at a time (the slice query orders on the tenant rows' copies)
    assert [n for p in (1, 2, 3, 4) for n in names(s.latest_page(page=p, page_size=3, now=NOW)["rows"])] == ORDER
    by = {r["tenant"]: r for r in rows}
    assert by["Prod Test Key"]["mode_mismatch"] and by["Switched Account"]["account_changed"]
    assert by["Switched Account"]["last_account_changed"] and not by["Test Failing"]["last_account_changed"]
    # the old order is still there on request: worst status first, then the stalest
    assert names(s.latest_checks(now=NOW, order="status"))[:4] == ["Test Invalid", "Live Invalid Old",
                                                                 "Live Invalid New", "Test Failing"]
    with pytest.raises(store.StoreInputError, match="order"):
        s.latest_checks(order="alphabetical")


def test_streak_and_short_problem_come_from_the_history(store_url):
    seed_impact(store_url)
    s = store.at(store_url)
    by = {r["tenant"]: r for r in s.latest_checks(now=NOW)}
    pf = by["Prod Failing"]
    assert pf["broken_since"] == NOW - timedelta(hours=48) and pf["last_healthy_at"] == NOW - timedelta(hours=72)
    assert pf["worse_at"] == NOW - timedelta(hours=48)  # the second failing check is not worse than the first
    assert pf["summary"] == "missing: Subscriptions, Invoices"
    assert by["Live Invalid New"]["summary"] == "key expired"
    assert by["Live Invalid Old"]["broken_since"] == NOW - timedelta(hours=120)
    assert by["Healthy Live"]["broken_since"] is None and by["Healthy Live"]["summary"] is None
    assert by["Prod Attention"]["summary"] == "excess: Charges"
    assert triage.problem_text(by["Prod Test Key"]) == "test key on a live tenant"
    assert triage.problem_text(by["Switched Account"]).startswith("another Stripe account · key replaced")
    # got worse in the last 24 hours: broke an hour ago, a first failing check, worse after a healthy one
    worse = s.latest_checks(now=NOW, worse_since=NOW - timedelta(hours=24))
    assert names(worse) == ["Live Invalid New", "Switched Account"]
    assert s.count_latest(now=NOW, worse_since=NOW - timedelta(hours=24)) == 2
    # a check recorded out of time order rewrites the streak as the history says
    rec(s, "Prod Failing", "healthy", 36, mode="live")
    pf = {r["tenant"]: r for r in s.latest_checks(now=NOW)}["Prod Failing"]
    assert (pf["broken_since"], pf["last_healthy_at"], pf["worse_at"]) == (
        NOW - timedelta(hours=24), NOW - timedelta(hours=36), NOW - timedelta(hours=24))
    # figures under filters: every filter but the status
    assert s.latest_status_counts(now=NOW, mode="live") == {"invalid": 2, "failing": 1, "incomplete": 0,
                                                            "attention": 1, "healthy": 1}


# --- the page ---------------------------------------------------------------------------------------------
APP = "../../app.py"


def open_triage(params: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.query_params.update(params or {})
    at.switch_page("app_pages/triage.py").run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def impact_env(app_env):
    seed_impact(app_env, now=datetime.now(UTC))
    return app_env


def test_the_columns_fit_1280_px_and_say_what_is_wrong(impact_env):
    assert sum(triage.COLUMN_WIDTHS.values()) <= triage.TABLE_BUDGET_PX
    at = open_triage()
    frame = at.dataframe[0].value
    assert list(frame.columns) == list(triage.COLUMN_WIDTHS)
    assert list(frame["Tenant"]) == ORDER
    problem = dict(zip(frame["Tenant"], frame["Problem"], strict=True))
    assert problem["Prod Failing"] == "missing: Subscriptions, Invoices"
    assert problem["Live Invalid New"] == "key expired"
    assert problem["Prod Test Key"] == "test key on a live tenant"
    config = json.loads(at.dataframe[0].proto.columns)  # what the page asked the grid for: every column sized
    widths = {name: config[name]["width"] for name in triage.COLUMN_WIDTHS}
    assert widths == triage.COLUMN_WIDTHS


def test_what_got_worse_overnight_comes_first(impact_env):
    at = open_triage()
    assert at.subheader[0].value == "Got worse in the last 24 hours (2)"
    links = [lk.proto for lk in at.get("page_link")]
    assert links[0].label.startswith("Live Invalid New: invalid · key expired")
    assert links[1].label.startswith("Switched Account: attention · another Stripe account")
    show = [lk for lk in links if lk.label.startswith("Show only these")][0]
    assert "worse=1" in show.query_string
    at.toggle(key="tr_worse").set_value(True).run()
    assert list(at.dataframe[0].value["Tenant"]) == ["Live Invalid New", "Switched Account"]
    assert not [s for s in at.subheader if s.value.startswith("Got worse")]  # the filter is on: no summary
    assert at.query_params.get("worse") in ("1", ["1"])
    assert {m.label: int(m.value) for m in at.metric}["invalid"] == 1  # the figures follow the filter
    assert "The figures follow the filters above (all but Status)." in [c.value for c in at.caption]


def test_the_view_is_in_the_url_and_a_link_reopens_it(impact_env):
    at = open_triage()
    assert not {k for k in at.query_params if k in triage.PARAMS.values()}  # the default view: a clean URL
    at.multiselect(key="tr_status").set_value(["invalid", "failing"]).run()
    at.selectbox(key="tr_mode").set_value("live").run()
    at.text_input(key="tr_search").input("Invalid").run()
    params = {k: v for k, v in at.query_params.items() if k in triage.PARAMS.values()}
    assert params == {"status": "invalid,failing", "mode": "live", "q": "Invalid"}
    shown = list(at.dataframe[0].value["Tenant"])
    assert shown == ["Live Invalid New", "Live Invalid Old"]
    # a new session opened from that link shows the same view
    again = open_triage(params)
    assert again.multiselect(key="tr_status").value == ["invalid", "failing"]
    assert again.selectbox(key="tr_mode").value == "live" and again.text_input(key="tr_search").value == "Invalid"
    assert list(again.dataframe[0].value["Tenant"]) == shown
    # a link from elsewhere (Fleet health) into an open Triage session sets the view
    at.query_params.clear()
    at.query_params.update({"flags": "mode_mismatch", "page": "1"})
    at.run()
    assert at.multiselect(key="tr_flags").value == ["mode_mismatch"] and at.multiselect(key="tr_status").value == []
    assert list(at.dataframe[0].value["Tenant"]) == ["Prod Test Key"]


def test_user_text_and_nonsense_in_the_url_stay_plain(impact_env):
    hostile = "**bold** <b>x</b> [link](https://evil.example) :red[no]"
    at = open_triage({"q": hostile, "status": "nonsense,failing", "mode": "sideways", "size": "7", "page": "-3",
                      "missing": "'; DROP TABLE tenants; --", "flags": "<script>"})
    assert at.text_input(key="tr_search").value == hostile
    assert at.multiselect(key="tr_status").value == ["failing"]
    assert at.selectbox(key="tr_mode").value == "any" and at.selectbox(key="tr_size").value == 50
    assert at.multiselect(key="tr_flags").value == []
    assert at.info and "No tenant matches" in at.info[0].value
    assert all(hostile not in m.value for m in at.markdown)  # never rendered as markdown
    assert store.at(impact_env).count_latest() == 10  # nothing was dropped


def test_a_missing_permission_link_filters_and_can_be_cleared(impact_env):
    at = open_triage({"missing": "invoice_read"})
    assert list(at.dataframe[0].value["Tenant"]) == ["Prod Failing", "Test Failing"]
    assert any("rak_invoice_read" in m.value for m in at.markdown)
    at.button(key="tr_clear_missing").click().run()
    assert len(at.dataframe[0].value) == 10 and "missing" not in at.query_params


def test_fleet_figures_and_bars_open_triage_filtered_to_them(impact_env):
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.switch_page("app_pages/fleet.py").run()
    assert not at.exception, at.exception
    links = {lk.proto.label: lk.proto for lk in at.get("page_link") if lk.proto.page == "tenants"}
    assert links["failing in Triage"].query_string == "status=failing"
    assert links["test key on a live tenant"].query_string == "flags=mode_mismatch"
    bar = [p for label, p in links.items() if label.startswith("Billing → Invoices") and label.endswith("missing")]
    assert bar and bar[0].query_string == "missing=invoice_read"
    # a click on a bar of "permissions most often missing" opens Triage with those tenants
    at.session_state["fl_problems_0"] = {"selection": {"points": [{"curve_number": 0, "customdata": "rak_invoice_read",
                                                                 "x": 2, "y": "Billing → Invoices"}]}}
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Triage"
    assert list(at.dataframe[0].value["Tenant"]) == ["Prod Failing", "Test Failing"]
    assert at.query_params.get("missing") in ("invoice_read", ["invoice_read"])
