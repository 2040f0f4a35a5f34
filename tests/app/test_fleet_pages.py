"""Issue 13 pages: Triage shows open alerts and acknowledges them (audited); Fleet health lists recent runs."""
from __future__ import annotations

import pytest
from apptest import AppTest

from core.engine.result import Row

APP = "../../app.py"


@pytest.fixture
def real_env(app_env, make_service, make_result):
    svc = make_service(app_env, who="anonymous")
    rows = lambda g: [Row("Core", "Charges", "charge_read", "read", g, "ok" if g == "read" else "missing")]  # noqa: E731
    svc.record(make_result("healthy", 100, rows("read")), "<b>Acme</b>", source="cli")
    svc.record(make_result("failing", None, rows("none")), "<b>Acme</b>", source="cli")
    run = svc.store.start_run(name="nightly-1", started_by="cron", command="recheck --keys-from")
    svc.store.add_run_items(run["id"], ["<b>Acme</b>"])
    svc.store.summarise_run(run["id"], finish=False)
    return svc


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_triage_shows_open_alerts_and_acknowledging_is_audited(real_env):
    at = open_page("app_pages/triage.py")
    texts = [t.value for t in at.text]
    assert any("<b>Acme</b>" in t and "healthy → failing" in t and "not sent yet" in t for t in texts), texts
    [alert] = real_env.store.open_alerts()
    at.button(key=f"tr_ack_{alert['id']}").click().run()
    assert not at.exception
    assert real_env.store.open_alerts() == []
    assert [a["action"] for a in real_env.store.list_audit(action="alert_ack")] == ["alert_ack"]
    assert not any("healthy → failing" in t.value for t in at.text)


def test_fleet_page_lists_recent_runs(real_env):
    at = open_page("app_pages/fleet.py")
    runs = [d.value for d in at.dataframe]
    frame = runs[-1]
    assert list(frame["Name"]) == ["nightly-1"] and list(frame["Tenants"]) == [1]
    assert "cron (recheck --keys-from)" in list(frame["Started by"])[0]
