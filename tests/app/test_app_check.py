"""The "Check a key" page in real mode, driven with AppTest against the project's Stripe sandbox.

Real mode here means: STRIPE_API_BASE points at the sandbox fixture and DATABASE_URL at a temporary SQLite
file, exactly the way an operator would point the app at another Stripe or database.
"""
from __future__ import annotations

import json
import logging
import re

import pytest
from apptest import AppTest

from core import store
from core.ui.palette import VERDICT_STYLE
from sandbox import DEMO_KEYS

APP = "../../app.py"
TIMEOUT = 60


@pytest.fixture
def real_env(app_env):
    return app_env


def fresh_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert not [e for e in at.error if "Something went wrong" in e.value]


def paste(at: AppTest, key: str, tenant: str | None = "Acme Coffee Roasters") -> AppTest:
    """Choose the tenant (each choice runs the page), then type the key into the form's field: it is sent with the
    form's submit (a button, or Enter), so the caller clicks one of them next."""
    if tenant is not None:
        pick = at.selectbox(key="kh_tenant_pick")
        if tenant in pick.options:
            pick.set_value(tenant).run()
        else:
            pick.set_value(pick.options[0]).run()  # "New tenant…"
            at.text_input(key="kh_tenant_new").input(tenant).run()
    at.text_input(key="kh_key_input").input(key)
    return at


def button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r} among {[b.label for b in at.button]}"
    return found[0]


def record_button(at: AppTest):
    found = [b for b in at.button if b.label == "Check and record"]
    assert found, f"no record button among {[b.label for b in at.button]}"
    return found[0]


ONLY = "Check only (don't record)"


def check(at: AppTest, key: str, tenant: str = "Acme Coffee Roasters") -> AppTest:
    paste(at, key, tenant)
    record_button(at).click().run()
    assert_clean(at)
    return at


def css_rules(styles: str) -> dict[str, str]:
    """Styler CSS text -> {"row3_col0": "background-color: …; color: …", …}."""
    out: dict[str, str] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", styles):
        for sel in selectors.split(","):
            m = re.search(r"_(row\d+_col\d+)", sel)
            if m:
                out[m.group(1)] = body.strip()
    return out


def row_background(at: AppTest, i: int = 0) -> list[str]:
    """The background colour of every row of dataframe i, read from the Styler's CSS."""
    df = at.dataframe[i]
    rules = css_rules(df.proto.arrow_data.styler.styles)
    out = []
    for r in range(len(df.value)):
        m = re.search(r"background-color:\s*(#[0-9a-fA-F]{6})", rules.get(f"row{r}_col0", ""))
        out.append(m.group(1).lower() if m else "")
    return out


BG = {v: bg.lower() for v, (bg, _fg) in VERDICT_STYLE.items()}


def test_page_renders_in_real_mode(real_env, sandbox):
    at = fresh_app()
    assert at.title[0].value == "Check a key"
    assert any("Real mode" in s.value for s in at.sidebar.success)
    assert at.toggle(key="kh_demo_switch").value is False
    assert [b.label for b in at.button if b.label.startswith("Check")] == ["Check and record", ONLY]
    assert any("Choose or type the tenant" in c.value for c in at.caption)
    assert sandbox.requests == []


@pytest.mark.parametrize(
    "raw,words",
    [
        (DEMO_KEYS["standard"].key, "restricted"),  # a standard secret key (sk_test_…)
        ("pk_test_" + "a" * 30, "publishable"),
        ("rk_test_abc", "truncated"),
        ("whsec_" + "b" * 32, "webhook"),
        ("hello there", "key"),
    ],
)
def test_bad_keys_are_answered_without_a_request(real_env, sandbox, raw, words):
    at = fresh_app()
    sandbox.clear_log()
    paste(at, raw)
    record_button(at).click().run()
    assert at.error, "a bad key must be answered at once"
    assert words in at.error[0].value.lower()
    assert sandbox.requests == [], "a key refused locally must not reach Stripe"
    assert at.code and "Hello," in at.code[0].value, "the tenant still gets a message they can act on"
    assert store.at(real_env).tenant_history("Acme Coffee Roasters") == [], "nothing recorded"
    assert "kh_key" not in at.session_state


def test_healthy_key_green_grid_recorded_and_audited(real_env, sandbox):
    at = check(fresh_app(), DEMO_KEYS["healthy"].key, "Acme Coffee Roasters")
    assert at.success and "HEALTHY" in at.success[0].value
    assert "acct_" in at.success[0].value
    colours = row_background(at)
    verdicts = at.dataframe[0].value["Verdict"].tolist()
    assert set(verdicts) <= {"ok", "not applicable"}
    for v, c in zip(verdicts, colours, strict=True):
        assert c == BG["ok" if v == "ok" else "not_applicable"]
    assert sandbox.requests, "the check must have reached the sandbox"

    hist = store.at(real_env).tenant_history("Acme Coffee Roasters")
    assert len(hist) == 1 and hist[0]["source"] == "dashboard" and hist[0]["status"] == "healthy"
    assert hist[0]["checked_by"] == "test@example.com"
    audit = store.at(real_env).list_audit(action="check")
    assert audit and audit[0]["tenant"] == "Acme Coffee Roasters" and audit[0]["outcome"] == "healthy"
    assert audit[0]["who"] == "test@example.com"
    # the session keeps the key (for the sample pages) and the tenant
    assert str(at.session_state["kh_key"]) == DEMO_KEYS["healthy"].key
    assert at.session_state["kh_tenant"] == "Acme Coffee Roasters"


def test_anonymous_when_not_logged_in(real_env):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.user = {"is_logged_in": False}
    at.run()
    check(at, DEMO_KEYS["healthy"].key, "Anon Tenant")
    assert store.at(real_env).list_audit(action="check")[0]["who"] == "anonymous"


def test_grid_colours_missing_and_excess(real_env):
    at = check(fresh_app(), DEMO_KEYS["missing"].key, "Missing Co")
    assert at.error and "FAILING" in at.error[0].value
    at.toggle(key="kh_problems_only").set_value(False).run()  # every row, to see every colour
    frame = at.dataframe[0].value
    colours = row_background(at)
    seen = set()
    for v, c in zip(frame["Verdict"], colours, strict=True):
        key = "not_applicable" if v == "not applicable" else v
        assert c == BG[key], f"{v} row painted {c}"
        seen.add(key)
    assert {"ok", "missing", "not_applicable"} <= seen
    assert frame.loc[frame["Verdict"] == "missing", "Scope"].str.contains("rak_charge").any()

    at = check(at, DEMO_KEYS["over"].key, "Over Co")
    frame = at.dataframe[0].value
    colours = row_background(at)
    excess = [c for v, c in zip(frame["Verdict"], colours, strict=True) if v == "excess"]
    assert excess and set(excess) == {BG["excess"]}
    assert at.warning and "ATTENTION" in at.warning[0].value


def test_problems_only_filter_and_categories(real_env):
    at = check(fresh_app(), DEMO_KEYS["missing"].key, "Filter Co")
    # issue 19.7: with problems, the grid opens on "Problems only"
    assert at.toggle(key="kh_problems_only").value is True
    frame = at.dataframe[0].value
    assert set(frame["Verdict"]) <= {"missing", "excess", "unknown"}
    assert set(row_background(at)) == {BG["missing"]}
    at.toggle(key="kh_problems_only").set_value(False).run()
    everything = len(at.dataframe[0].value)
    assert 0 < len(frame) < everything
    at.multiselect(key="kh_categories").set_value(["Billing"]).run()
    assert set(at.dataframe[0].value["Category"]) == {"Billing"}


def test_remediation_message_and_downloads(real_env):
    at = check(fresh_app(), DEMO_KEYS["missing"].key, "Fix Co")
    steps = [m.value for m in at.markdown if m.value.startswith("In the Stripe Dashboard")]
    assert steps and "⋯ → Edit key" in steps[0]
    message = at.code[0].value
    assert message.startswith("Hello") and "Edit key" in message
    downloads = at.get("download_button")
    assert len(downloads) == 2
    key = DEMO_KEYS["missing"].key
    for d in downloads:
        assert key not in str(d.proto), "a download must never contain the key"
    labels = [d.proto.label for d in downloads]
    assert labels == ["Download CSV", "Download JSON"]


def test_revoked_key_is_invalid_with_one_sentence(real_env):
    at = check(fresh_app(), DEMO_KEYS["revoked"].key, "Revoked Co")
    assert at.error and "INVALID" in at.error[0].value
    problem = [m.value for m in at.markdown if m.value.startswith("**Problem (for support):**")]
    assert problem and "revoked" in problem[0]
    assert not at.dataframe  # no grid for a key Stripe refused
    assert store.at(real_env).tenant_history("Revoked Co")[0]["status"] == "invalid"


def test_forget_key(real_env):
    at = check(fresh_app(), DEMO_KEYS["healthy"].key, "Forget Co")
    assert "kh_key" in at.session_state
    button(at, "Forget key").click().run()
    assert "kh_key" not in at.session_state
    assert at.text_input(key="kh_key_input").value == ""
    assert any("forgotten" in c.value for c in at.caption)
    assert button(at, "Forget key").disabled


def test_reprobe_unknown_rows(real_env, sandbox):
    sandbox.faults.fail("/v1/charges", status=503)  # Stripe "busy" for one resource: its row is unknown
    at = check(fresh_app(), DEMO_KEYS["healthy"].key, "Flaky Co")
    assert at.info and "INCOMPLETE" in at.info[0].value  # the info blue: one colour for incomplete (core/ui/palette)
    reprobe = [b for b in at.button if b.label.startswith("Re-probe")]
    assert reprobe and not reprobe[0].disabled
    sandbox.faults.clear()
    sandbox.clear_log()
    reprobe[0].click().run()
    assert not at.exception
    assert at.success and "HEALTHY" in at.success[0].value
    probed = {r.path for r in sandbox.requests}
    assert probed and all(p.startswith("/v1/charges") for p in probed), probed  # only the unknown rows
    assert [h["status"] for h in store.at(real_env).tenant_history("Flaky Co")] == ["healthy", "incomplete"]


def test_key_never_in_url_logs_or_result(real_env, caplog):
    key = DEMO_KEYS["missing"].key
    with caplog.at_level(logging.DEBUG):
        at = check(fresh_app(), key, "Secret Co")
    assert key not in json.dumps(at.query_params)
    assert key not in caplog.text
    result = at.session_state["kh_result"]
    assert key not in json.dumps(result.to_json())
    assert key not in repr(at.session_state["kh_key"])
    for h in store.at(real_env).tenant_history("Secret Co"):
        assert key not in json.dumps(h, default=str)


def test_tenant_preselected_from_url(real_env):
    store.at(real_env).upgrade()
    store.at(real_env).get_or_create_tenant("Harbor & Pine Bakery")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["tenant"] = "harbor-pine-bakery"
    at.run()
    assert at.selectbox(key="kh_tenant_pick").value == "Harbor & Pine Bakery"


def test_database_down_is_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("KEYHEALTH_DEMO", "0")
    monkeypatch.setenv("DATABASE_URL", "postgresql://kh:secretpw@127.0.0.1:1/nowhere")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    assert at.error and "refused the connection" in at.error[0].value and "start PostgreSQL" in at.error[0].value
    assert "secretpw" not in at.error[0].value


@pytest.mark.parametrize("name", ["[Log in again](https://evil.example/login)", "<b>bold</b> **x**", "Harbor & Pine"])
def test_tenant_names_are_shown_as_text_not_markdown(real_env, name):
    from core.ui.text import md_escape

    at = check(fresh_app(), DEMO_KEYS["healthy"].key, name)
    banner = at.success[0].value
    assert md_escape(name) in banner and name not in banner.replace(md_escape(name), "")
    at.switch_page("app_pages/tenant.py")
    at.query_params["tenant"] = store.slugify(name)
    at.run()
    assert at.title[0].value == md_escape(name)
    at.switch_page("app_pages/triage.py").run()
    labels = [link.proto.label for link in at.get("page_link")]
    assert any(md_escape(name) in label for label in labels)


def test_markdown_escape():
    from core.ui.text import md_escape

    assert md_escape("[x](javascript:alert(1))") == "\\[x\\]\\(javascript\\:\u2060alert\\(1\\)\\)"
    assert md_escape("<img src=x>") == r"\<img src\=x\>"
    assert md_escape("plain name") == "plain name"
    assert md_escape("$5 & *bold*") == r"\$5 \& \*bold\*"


def test_guide_traps_and_implied_rows_on_the_page(real_env, sandbox):
    """Issue 11: an all-permissions key names the likely cause on the page and in the message; implied rows
    are painted and worded apart from plain ok."""
    key = "rk_test_51KeyHealthAppAllPermissions" + "Qw3Er4" * 12
    sandbox.add_key(key, {"*"})
    try:
        at = check(fresh_app(), key, "Everything Co")
    finally:
        sandbox.remove_key(key)
    infos = " ".join(i.value for i in at.info)
    assert "Customize permissions" in infos and "unticked" in infos
    assert "restricts nothing" in infos
    assert "Customize permissions" in at.code[0].value  # the tenant message says it too
    frame = at.dataframe[0].value
    assert "Note" in frame.columns

    sandbox.implied_permissions = True
    try:
        at = check(fresh_app(), DEMO_KEYS["healthy"].key, "Implied Co")
    finally:
        sandbox.implied_permissions = False
    frame = at.dataframe[0].value
    colours = row_background(at)
    implied = [(w, c) for v, w, c in zip(frame["Verdict"], frame["What to do"], colours,
        strict=True) if v == "allowed (implied)"]
    assert implied and all(w.startswith("allowed: implied by ") for w, _ in implied)
    assert {c for _, c in implied} == {BG["implied"]}
    assert at.success and "HEALTHY" in at.success[0].value
