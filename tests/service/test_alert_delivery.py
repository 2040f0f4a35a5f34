"""Alerts from every entry, their text, and the webhook setting (issue 17 items 8, 7 (webhook) and 3 (alert text)).

- An alert raised by `check --tenant` or by the dashboard is delivered by that process's own background sender
  (same retries); the CLI waits for it at most 5 s and says so when it is left pending.
- What is posted neutralises Slack's formatting, mentions and links in user text.
- A webhook URL that is not http(s) is refused at start-up with one sentence (CLI and dashboard).
- A key replacement alerts as "key replaced", never "permissions changed".
Real receivers over HTTP, the real CLI, the sandbox; waits poll.
"""
from __future__ import annotations

import json
import time

import pytest

from core.config import SettingError, Settings
from core.features.alerts import post, slack_escape, what_changed
from core.store import Database, Store
from sandbox import DEMO_KEYS

HEALTHY = DEMO_KEYS["healthy"]


@pytest.fixture
def hooks(webhooks):
    return webhooks


def key_for(tag: str) -> str:
    return f"rk_test_51Alert{tag}" + "Zx8Yw7Vu6T" * 8


def alerts_in(tmp_path) -> list[dict]:
    return Store(Database(f"sqlite:///{tmp_path / 'keyhealth.db'}")).open_alerts()


# --- 8. from every entry -----------------------------------------------------------------------------------
def test_an_alert_raised_by_check_tenant_is_delivered_before_the_cli_exits(sandbox, core_cli, hooks, tmp_path):
    key = key_for("Cli")
    sandbox.add_key(key, HEALTHY.permissions, "test")
    hook = hooks(delay_s=3.5)  # slower than the CLI takes to exit: the old CLI left it pending
    try:
        assert core_cli("check", "--tenant", "Cli Alert Ltd", key=key).returncode == 0
        sandbox.add_key(key, set(), "test")  # every permission gone: worse
        p = core_cli("check", "--tenant", "Cli Alert Ltd", key=key, KEYHEALTH_ALERT_WEBHOOK=hook.url)
    finally:
        sandbox.remove_key(key)
    assert p.returncode == 1, p.stderr
    assert "warning" not in p.stderr
    assert len(hook.bodies) == 1 and "Cli Alert Ltd" in hook.bodies[0]["text"]
    [alert] = alerts_in(tmp_path)
    assert alert["delivery"] == "delivered" and alert["attempts"] == 1


def test_a_check_tenant_waits_at_most_5_s_for_its_alert_and_says_so(sandbox, core_cli, hooks, tmp_path):
    key = key_for("Hang")
    sandbox.add_key(key, HEALTHY.permissions, "test")
    hook = hooks(hang=True)
    try:
        assert core_cli("check", "--tenant", "Hang Ltd", key=key).returncode == 0
        sandbox.add_key(key, set(), "test")
        started = time.monotonic()
        p = core_cli("check", "--tenant", "Hang Ltd", key=key, KEYHEALTH_ALERT_WEBHOOK=hook.url,
                     KEYHEALTH_ALERT_TIMEOUT_S="30")
        took = time.monotonic() - started
    finally:
        sandbox.remove_key(key)
    assert p.returncode == 1, p.stderr
    assert "an alert is still being delivered after 5 s; it stays pending" in p.stderr
    assert took < 5.0 + 20, took  # the 5 s wait on top of starting Python and the check (a busy machine)
    assert hook.bodies  # it was being posted
    [alert] = alerts_in(tmp_path)
    assert alert["delivery"] == "pending"


def test_an_alert_raised_by_the_dashboard_is_delivered_by_its_sender(sandbox, app_env, hooks, monkeypatch):
    from apptest import AppTest

    from core import runtime
    from core.config import settings
    from core.service import Service

    key = key_for("Page")
    sandbox.add_key(key, HEALTHY.permissions, "test")
    hook = hooks()
    monkeypatch.setenv("KEYHEALTH_ALERT_WEBHOOK", hook.url)
    try:
        svc = Service(runtime.real(settings(), who="seed"))
        assert svc.check(key, "Page Alert Ltd", source="cli").result.status == "healthy"
        sandbox.add_key(key, set(), "test")
        at = AppTest.from_file("../../app.py", default_timeout=90)
        at.run()
        at.selectbox(key="kh_tenant_pick").set_value("Page Alert Ltd").run()  # the tenant first
        at.text_input(key="kh_key_input").set_value(key)  # the key is sent with the form's submit
        [b for b in at.button if b.label == "Check and record"][0].click().run()
        assert not at.exception
        deadline = time.monotonic() + 30
        while not hook.bodies:
            assert time.monotonic() < deadline, "the dashboard's alert was never posted"
            time.sleep(0.05)  # poll interval
    finally:
        sandbox.remove_key(key)
    assert "Page Alert Ltd" in hook.bodies[0]["text"] and key not in json.dumps(hook.bodies)
    deadline = time.monotonic() + 30
    while svc.store.open_alerts()[0]["delivery"] != "delivered":
        assert time.monotonic() < deadline
        time.sleep(0.05)  # poll interval


# --- 7. the webhook setting and what is posted -------------------------------------------------------------
@pytest.mark.parametrize("url", ["hooks.slack.com/services/T0/B0/x", "ftp://hooks.example/x", "file:///etc/passwd",
                                 "javascript:alert(1)", "https://", "http://exa mple.com/x", "https://h:port/x"])
def test_a_webhook_url_that_is_not_http_is_refused_at_start_up(url, core_cli):
    with pytest.raises(SettingError):
        Settings.from_env({"KEYHEALTH_ALERT_WEBHOOK": url})
    p = core_cli("catalogue", KEYHEALTH_ALERT_WEBHOOK=url)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("error: KEYHEALTH_ALERT_WEBHOOK is set to a value that is not allowed")
    assert "http:// or https:// URL" in p.stderr
    assert p.stderr.strip().count("\n") == 0 and "Traceback" not in p.stderr
    assert url == "https://" or url not in p.stderr  # the webhook URL is a secret: never echoed


def test_http_and_https_webhooks_and_none_are_accepted():
    for url in ("", "https://hooks.slack.com/services/T0/B0/x", "http://127.0.0.1:8080/hook"):
        assert Settings.from_env({"KEYHEALTH_ALERT_WEBHOOK": url}).alert_webhook == (url or None)


def test_the_dashboard_refuses_a_webhook_that_is_not_http(app_env, monkeypatch):
    from apptest import AppTest

    monkeypatch.setenv("KEYHEALTH_ALERT_WEBHOOK", "hooks.slack.com/services/T0/B0/xyzzyTOKEN")
    at = AppTest.from_file("../../app.py", default_timeout=60)
    at.run()
    assert not at.exception
    [err] = at.error
    shown = err.value.replace("\\", "").replace("\u2060", "")  # as read: md_escape's backslashes, word joiners out
    assert "KEYHEALTH_ALERT_WEBHOOK" in shown and "http:// or https:// URL" in shown
    assert not at.button  # nothing else runs
    shown_all = str([e.value for e in at.error])
    assert "xyzzyTOKEN" not in shown_all and "hooks.slack" not in shown_all  # the URL is a secret: never shown


def test_a_webhook_url_without_a_scheme_fails_with_a_reason_never_silently():
    assert post("hooks.slack.com/x", "hello", 1.0) == "the webhook address is not an http(s) URL"


@pytest.mark.parametrize("typed,never", [
    ("*bold* Ltd", "*"),
    ("_italic_ Ltd", "_"),
    ("~strike~ Ltd", "~"),
    ("`code` Ltd", "`"),
    ("<!channel> Ltd", "<!channel>"),
    ("<!here|here> Ltd", "<!here"),
    ("<@U024BE7LH> Ltd", "<@U"),
    ("@channel Ltd", "@channel"),
    ("<https://evil.example|Click> Ltd", "<https://"),
    ("Visit https://evil.example/x Ltd", "https://evil.example"),
    ("evil.example Ltd", "evil.example"),
    ("A & B <Ltd>", "<Ltd>"),
])
def test_webhook_texts_neutralise_slack_formatting_mentions_and_links(typed, never):
    text = f"Key Health: {typed} (key rk_test_…a1b2): status healthy → failing (score 100 → 40)"
    out = slack_escape(text)
    assert never not in out.replace("rk_test_…a1b2", "")
    assert "rk_test_…a1b2" in out  # the masked key is posted as it is
    assert "&" not in out.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")


def test_what_is_posted_is_neutralised_and_says_mrkdwn_false(hooks):
    hook = hooks()
    assert post(hook.url, "Key Health: *Acme* <!channel> https://evil.example", 5.0) is None
    [body] = hook.bodies
    assert body["mrkdwn"] is False
    assert "*" not in body["text"] and "<!channel>" not in body["text"] and "https://" not in body["text"]


# --- 3. the alert text follows the lifecycle ---------------------------------------------------------------
def test_a_key_replacement_alerts_as_key_replaced_never_permissions_changed(make_result):
    old = {"status": "healthy", "score": 100, "key_fingerprint": "fp_old", "key_masked": "rk_test_…AAAA",
           "rows": [{"scope": "charge_read", "granted": "read"}, {"scope": "customer_read", "granted": "read"}]}
    new = make_result("healthy", 100, [("charge_read", "write", "ok"), ("customer_read", "read", "ok")],
                      masked="rk_test_…BBBB", fingerprint="fp_new")
    kinds, lines = what_changed(old, new)
    assert kinds == ["replaced"]
    assert lines == [
        "key replaced (rk_test_…AAAA → rk_test_…BBBB); with the new key: Resource charge_read: read → write"]
    assert not any("permissions changed" in line for line in lines)
    same = make_result("healthy", 100, [("charge_read", "write", "ok"), ("customer_read", "read", "ok")],
                       masked="rk_test_…AAAA", fingerprint="fp_old")
    assert what_changed(old, same) == (["drift"], ["permissions changed: Resource charge_read: read → write"])


def test_a_real_key_replacement_alert_through_the_service(sandbox, make_service, tmp_path):
    svc = make_service(f"sqlite:///{tmp_path / 'replaced.db'}")
    first, second = key_for("Old"), key_for("New")
    sandbox.add_key(first, HEALTHY.permissions, "test")
    sandbox.add_key(second, set(HEALTHY.permissions) - {"rak_charge_read", "rak_charge_write"}, "test")
    try:
        assert svc.check(first, "Replaced Ltd", source="cli").result.status == "healthy"
        checked = svc.check(second, "Replaced Ltd", source="cli")
    finally:
        sandbox.remove_key(first)
        sandbox.remove_key(second)
    [alert] = svc.store.open_alerts()
    assert "replaced" in alert["kinds"].split(",") and "drift" not in alert["kinds"].split(",")
    assert f"key replaced ({first[:8]}…{first[-4:]} → {checked.result.key.masked})" in alert["text"]
    assert "permissions changed" not in alert["text"]
