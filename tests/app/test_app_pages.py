"""Every page in demo mode (the embedded sandbox + the seeded demo database), driven with AppTest.

The charts are checked from the figure each page sent (json of the plotly spec) against the store's own
figures, and the demo switch is flipped both ways.
"""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apptest import AppTest

from core import runtime, store
from core.config import settings
from core.demo import DEMO_TENANTS
from core.engine.result import KEY_STATUSES
from core.ui.text import md_escape
from sandbox import DEMO_KEYS

APP = "../../app.py"
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 90


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory, demo_db):
    data = tmp_path_factory.mktemp("demo-data")
    demo_db(data, "test-secret-for-app-tests")  # the seeded demo, copied (conftest)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEYHEALTH_DEMO", "1")
        mp.setenv("KEYHEALTH_DATA_DIR", str(data))
        mp.setenv("DATABASE_URL", f"sqlite:///{data / 'real.db'}")  # real mode, when a test switches to it
        mp.delenv("STRIPE_API_BASE", raising=False)
        mp.setenv("KEYHEALTH_FINGERPRINT_SECRET", "test-secret-for-app-tests")
        mp.setenv("KEYHEALTH_RATE_TEST", "400")
        mp.setenv("KEYHEALTH_RATE_LIVE", "400")
        rt = runtime.demo(settings())
        yield rt


def app(page: str | None = None, **query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert_clean(at)
    if page:
        at.query_params.update(query)
        at.switch_page(page).run()
        assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    """No exception reached the page, and the router's catch-all did not fire either."""
    assert not at.exception, at.exception
    assert not [e for e in at.error if "Something went wrong" in e.value]
    # a bare expression in a page or the router is drawn by Streamlit's "magic": an object's repr on the page
    assert not [m.value for m in at.markdown if re.search(r"\b(Store|Runtime|Database|Service)\(", m.value)]


def figures(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def ts(x) -> str:
    """A plotly x value or a datetime, as 'YYYY-MM-DD HH:MM' for comparisons."""
    if isinstance(x, datetime):
        return x.strftime("%Y-%m-%d %H:%M")
    return str(x).replace("T", " ")[:16]


def test_demo_db_lives_in_the_data_dir(demo_env, tmp_path_factory):
    assert demo_env.demo and demo_env.db.url == settings().demo_database_url
    assert "/demo/keyhealth-demo.db" in demo_env.db.url
    assert demo_env.db.url != settings().database_url  # never the real database
    assert len(demo_env.store.list_tenants()) == DEMO_TENANTS


def test_sidebar_shows_demo_mode_and_keys(demo_env):
    at = app()
    assert at.toggle(key="kh_demo_switch").value is True
    assert any("Demo mode" in i.value for i in at.sidebar.info)
    shown = {c.value for c in at.sidebar.code}
    assert {DEMO_KEYS["healthy"].key, DEMO_KEYS["missing"].key} <= shown
    assert any("keyhealth-demo.db" in c.value for c in at.sidebar.caption)


def test_demo_switch_off_and_on_forgets_the_key(demo_env):
    at = app()
    at.selectbox(key="kh_tenant_pick").set_value(at.selectbox(key="kh_tenant_pick").options[1]).run()
    at.run()  # the tenant choice first; the key is sent with the form's submit
    at.text_input(key="kh_key_input").input(DEMO_KEYS["healthy"].key)
    [b for b in at.button if b.label == "Check and record"][0].click().run()
    assert "kh_key" in at.session_state and at.success
    at.toggle(key="kh_demo_switch").set_value(False).run()
    assert not at.exception
    assert any("Real mode" in s.value for s in at.sidebar.success)
    assert not at.sidebar.code, "no demo keys listed in real mode"
    assert "kh_key" not in at.session_state and "kh_result" not in at.session_state
    assert not at.selectbox(key="kh_tenant_pick").options[1:], "the real database has no demo tenants"
    at.toggle(key="kh_demo_switch").set_value(True).run()
    assert any("Demo mode" in i.value for i in at.sidebar.info)


def test_demo_mode_from_url_in_a_new_session(demo_env, monkeypatch):
    monkeypatch.setenv("KEYHEALTH_DEMO", "0")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["demo"] = "1"
    at.run()
    assert at.toggle(key="kh_demo_switch").value is True


def test_bad_key_in_demo_makes_no_request(demo_env):
    sb = runtime.demo_sandbox()
    at = app()
    sb.clear_log()
    at.text_input(key="kh_key_input").input(DEMO_KEYS["standard"].key)
    next(b for b in at.button if b.label == "Check only (don't record)").click().run()
    assert at.error and sb.requests == []


def test_check_in_demo_reaches_the_embedded_sandbox(demo_env):
    sb = runtime.demo_sandbox()
    sb.clear_log()
    at = app()
    tenant = at.selectbox(key="kh_tenant_pick").options[3]
    at.selectbox(key="kh_tenant_pick").set_value(tenant).run()
    at.run()  # the tenant choice first; the key is sent with the form's submit
    at.text_input(key="kh_key_input").input(DEMO_KEYS["over"].key)
    [b for b in at.button if b.label == "Check and record"][0].click().run()
    confirm = [b for b in at.button if b.label.startswith("Yes, record it for ")]
    if confirm:  # the demo tenant's key is of another Stripe account: asked before recording (issue 19.4)
        confirm[0].click().run()
    assert at.warning and "ATTENTION" in at.warning[0].value
    assert sb.requests
    assert demo_env.store.tenant_history(tenant)[0]["source"] == "dashboard"


def test_triage_lists_every_tenant_by_impact(demo_env):
    at = app("app_pages/triage.py")
    assert at.title[0].value == "Triage"
    frame = at.dataframe[0].value
    assert len(frame) == len(demo_env.store.list_tenants())
    # the store's impact order (tests/app/test_triage_impact.py): production and live keys first, then severity
    assert list(frame["Tenant"]) == [r["tenant"] for r in demo_env.store.latest_checks()]
    assert frame["Status"][0] in ("invalid", "failing") and frame["Mode"][0].startswith("live")
    assert all("tenant=" in u and "demo=1" in u for u in frame["Open"])
    assert all("rk_" not in u for u in frame["Open"]), "no key in a URL"
    counts = demo_env.store.status_counts()
    metrics = {m.label: int(m.value) for m in at.metric}
    assert metrics == counts


def test_triage_filters_and_search(demo_env):
    at = app("app_pages/triage.py")
    at.multiselect(key="tr_status").set_value(["failing"]).run()
    frame = at.dataframe[0].value
    assert len(frame) and set(frame["Status"]) == {"failing"}
    at.multiselect(key="tr_status").set_value([]).run()
    at.number_input(key="tr_stale").set_value(14).run()
    if at.dataframe:
        checked = at.dataframe[0].value["Last checked (UTC)"]
        assert (checked < datetime.now(UTC) - timedelta(days=14)).all()
    at.number_input(key="tr_stale").set_value(0).run()
    name = demo_env.store.list_tenants()[5]["name"]
    at.text_input(key="tr_search").input(name.split()[0].lower()).run()
    frame = at.dataframe[0].value
    assert name in set(frame["Tenant"])
    at.text_input(key="tr_search").input("no tenant is called this").run()
    assert not at.dataframe and at.info


def test_triage_row_opens_tenant(demo_env):
    at = app("app_pages/triage.py")
    first = at.dataframe[0].value["Tenant"][0]
    links = at.get("page_link")
    assert links and md_escape(first) in links[0].proto.label
    assert links[0].proto.page.endswith("tenant") or "tenant" in links[0].proto.page


def test_tenant_page_charts_and_drift(demo_env):
    tenants = demo_env.store.latest_checks(status="healthy")
    slug = max(tenants, key=lambda t: len(demo_env.store.tenant_history(t["slug"])))["slug"]
    history = demo_env.store.tenant_history(slug)
    at = app("app_pages/tenant.py", tenant=slug)
    assert at.title[0].value == md_escape(history[0]["tenant"])
    figs = figures(at)
    assert len(figs) == 2
    score = figs[0]["data"][0]
    assert score["y"] == [h["score"] for h in reversed(history)]
    assert [ts(x) for x in score["x"]] == [ts(h["checked_at"]) for h in reversed(history)]
    timeline = {t["name"]: t for t in figs[1]["data"] if t.get("mode") == "markers"}
    for status, trace in timeline.items():
        assert len(trace["x"]) == sum(1 for h in history if h["status"] == status)
    history_table = at.dataframe[-1].value
    assert len(history_table) == len(history)


def test_tenant_page_shows_the_keys_dashboard_id(demo_env):
    """Issue 20: the key's Dashboard id (mk_…) from Stripe's newest refusal is kept with the check and shown."""
    latest = [t for t in demo_env.store.latest_checks() if t.get("key_dashboard_id")]
    assert latest, "the demo's checks carry the Dashboard id Stripe's refusals give"
    slug = latest[0]["slug"]
    history = demo_env.store.tenant_history(slug)
    key_checks = [h for h in history if h["status"] != "unreachable"]
    at = app("app_pages/tenant.py", tenant=slug)
    text = " ".join(x.value for els in (at.markdown, at.info, at.warning, at.error, at.success) for x in els)
    assert key_checks[0]["key_dashboard_id"] == latest[0]["key_dashboard_id"]
    assert f"Dashboard id `{latest[0]['key_dashboard_id']}`" in text
    assert list(at.dataframe[-1].value["Key id"]) == [h["key_dashboard_id"] or "" for h in history]


def test_tenant_page_drift_for_a_fixed_tenant(demo_env):
    # some demo tenant went from failing to healthy: its drift lists the permissions that changed
    for t in demo_env.store.list_tenants():
        changes = demo_env.store.drift(t["slug"])
        if changes:
            break
    else:
        pytest.fail("the demo history has no drift at all")
    at = app("app_pages/tenant.py", tenant=t["slug"])
    frame = at.dataframe[0].value
    assert len(frame) == len(changes)
    assert frame["Scope"][0] == f"rak_{changes[0]['scope']}"


def test_check_again_goes_to_check_with_tenant(demo_env):
    t = demo_env.store.list_tenants()[2]
    at = app("app_pages/tenant.py", tenant=t["slug"])
    [b for b in at.button if b.label == "Check again"][0].click().run()
    assert not at.exception
    assert at.title[0].value == "Check a key"
    assert at.selectbox(key="kh_tenant_pick").value == t["name"]


def test_unknown_tenant_is_one_sentence(demo_env):
    at = app("app_pages/tenant.py", tenant="no-such-tenant")
    assert at.warning and md_escape("no-such-tenant") in at.warning[0].value
    assert at.selectbox(key="tn_pick")


def test_fleet_charts_match_the_store(demo_env):
    at = app("app_pages/fleet.py")
    figs = figures(at)
    assert len(figs) == 6  # + unreachable share per day, key lifecycle signals (issue 12)
    start, end = at.date_input(key="fl_range").value
    mix = demo_env.store.status_mix_per_day(start, end)
    by_name = {t["name"]: t for t in figs[0]["data"]}
    assert set(by_name) == set(KEY_STATUSES)
    assert by_name["failing"]["y"] == [d["failing"] for d in mix]
    assert by_name["failing"]["marker"]["color"] == "#e03131"
    per_day = demo_env.store.checks_per_day(start, end)
    bars = figs[3]["data"][0]
    assert bars["y"] == [d["checks"] for d in per_day]
    scores = demo_env.store.score_distribution(10)
    stacked = [sum(t["y"][i] for t in figs[2]["data"]) for i in range(len(scores))]
    assert stacked == [b["tenants"] for b in scores]  # stacked by latest status
    assert {t["name"] for t in figs[2]["data"]} <= set(KEY_STATUSES)
    missing = demo_env.store.top_problem_scopes("missing", 10)
    miss_trace = next(t for t in figs[1]["data"] if t["name"] == "missing")
    shown = miss_trace["customdata"]
    assert sum(miss_trace["x"]) == sum(d["tenants"] for d in missing[:10] if f"rak_{d['scope']}" in shown)
    assert int(at.metric[0].value) == sum(demo_env.store.status_counts().values())


def test_fleet_date_range_narrows(demo_env):
    at = app("app_pages/fleet.py")
    start, end = at.date_input(key="fl_range").value
    at.date_input(key="fl_range").set_value((end, end)).run()
    figs = figures(at)
    mix = demo_env.store.status_mix_per_day(end, end)
    traces = figs[0]["data"]  # no trace at all when the demo has no check on that day (it depends on the hour)
    days = traces[0].get("x", []) if traces else []
    assert len(days) == len(mix) <= 1
    at.toggle(key="fl_share").set_value(True).run()
    assert not at.exception


def test_about_page(demo_env):
    at = app("app_pages/about.py")
    text = " ".join(m.value for m in at.markdown)
    assert "embedded Stripe sandbox" in text and "keyhealth-demo.db" in text
    assert "Key Health 0." in text
    from core.engine.catalogue import load_catalogue

    cat = load_catalogue()
    frame = at.dataframe[0].value
    assert len(frame) == len(cat.scopes)
    # where each scope comes from, and the counts (issue 11)
    counts = cat.provenance_counts()
    assert f"{counts['docs']} from Stripe's docs" in text and f"{counts['inferred']} from inferred" in text
    assert list(frame["Source"]) == [s.provenance for s in cat.scopes]
    assert "not checkable from outside" in set(frame["Read probe"]) | set(frame["Write probe"])
    # issue 20: every count matches the catalogue, in full; Connect's second column is said to be unchecked; the
    # usage-records probes name their API version; the low-confidence row is marked
    from core.engine.catalogue import PROVENANCES

    assert all(f"{counts[p]} from " in text for p in PROVENANCES)
    assert sum(counts.values()) == len(cat.scopes) == len(frame)
    assert "second column" in text and "Stripe-Account" in text and "own account only" in text
    usage = frame.loc[frame["Scope"] == "rak_usage_record"].iloc[0]
    assert usage["Read probe"].endswith("(Stripe-Version 2025-02-24.acacia)")
    portal = frame.loc[frame["Scope"] == "rak_customer_portal"].iloc[0]
    assert portal["Read probe"].endswith("(inferred)") and portal["Write probe"] == "POST /v1/billing_portal/sessions"
    assert list(frame["Confidence"]) == ["low" if s.low_confidence else "" for s in cat.scopes]


def test_about_masks_the_database_password(demo_env, monkeypatch, tmp_path):
    assert store.mask_url("postgresql://kh:hunter2@db.example:5432/kh") == "postgresql://kh:***@db.example:5432/kh"
    url = f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["kh_demo"] = False
    at.run()
    at.switch_page("app_pages/about.py").run()
    text = " ".join(m.value for m in at.markdown)
    assert "Real" in text and url in text


def test_no_bare_expression_is_drawn_by_magic():
    """Streamlit's magic writes any bare expression of the router or a page onto the page (the router once showed
    `Store('sqlite:///…')` above every page): app.py and pages/*.py hold none but calls and docstrings."""
    import ast

    found = []
    for path in [ROOT / "app.py", *sorted((ROOT / "app_pages").glob("*.py"))]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Expr) and not isinstance(node.value, (ast.Call, ast.Await)):
                if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                    continue  # a docstring
                found.append(f"{path.name}:{node.lineno}")
    assert found == []


@pytest.mark.parametrize("page", ["app_pages/check.py", "app_pages/triage.py", "app_pages/tenant.py",
                                  "app_pages/fleet.py", "app_pages/about.py"])
def test_every_page_runs_without_error(demo_env, page):
    at = app(page)
    assert not at.exception
    assert at.title


def test_triage_status_cells_are_colour_coded(demo_env):
    import re

    at = app("app_pages/triage.py")
    df = at.dataframe[0]
    styles = df.proto.arrow_data.styler.styles
    rules = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", styles):
        for sel in selectors.split(","):
            m = re.search(r"_(row\d+_col\d+)", sel)
            if m:
                rules[m.group(1)] = body
    status_col = list(df.value.columns).index("Status")
    want = {"failing": "#ffc9c9", "healthy": "#d3f9d8", "invalid": "#eebefa", "attention": "#ffe8a3"}
    seen = set()
    for i, status in enumerate(df.value["Status"]):
        if status in want:
            assert want[status] in rules[f"row{i}_col{status_col}"], (status, rules.get(f"row{i}_col{status_col}"))
            seen.add(status)
    assert {"failing", "healthy"} <= seen


def test_a_broken_database_is_one_sentence_on_every_page(tmp_path, monkeypatch):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'broken.db'}"
    monkeypatch.setenv("KEYHEALTH_DEMO", "0")
    monkeypatch.setenv("DATABASE_URL", url)
    runtime.ensure_schema(store.Database(url))
    with store.get_engine(url).begin() as conn:  # someone dropped the tables after the app started
        conn.execute(sa.text("DROP TABLE key_events"))
        conn.execute(sa.text("DROP TABLE stripe_keys"))
        conn.execute(sa.text("DROP TABLE check_rows"))
        conn.execute(sa.text("DROP TABLE checks"))
        conn.execute(sa.text("DROP TABLE audit"))
        conn.execute(sa.text("DROP TABLE tenants"))
    for page in ("app_pages/check.py", "app_pages/triage.py", "app_pages/fleet.py", "app_pages/tenant.py"):
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.query_params["tenant"] = "acme"
        at.run()
        at.switch_page(page).run()
        assert not at.exception, page
        assert at.error, page
        assert all(len(e.value.split(". ")) <= 2 for e in at.error), [e.value for e in at.error]
        assert "Traceback" not in " ".join(e.value for e in at.error)
