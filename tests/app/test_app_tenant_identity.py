"""On the check page, distinct names stay distinct tenants (issue 9, item 4): a new tenant whose name is too close
to an existing one's is refused before the key is sent anywhere, naming the tenant it matches; a name that
differs only in non-ASCII letters is a new tenant with its own history."""
from __future__ import annotations

from pathlib import Path

from apptest import AppTest

from core import store
from sandbox import DEMO_KEYS

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def _check(url: str, tenant: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    pick = at.selectbox(key="kh_tenant_pick")
    pick.set_value(pick.options[0]).run()  # "New tenant…"
    at.text_input(key="kh_tenant_new").input(tenant).run()
    at.text_input(key="kh_key_input").input(DEMO_KEYS["healthy"].key)
    next(b for b in at.button if b.label == "Check and record").click().run()
    assert not at.exception, at.exception
    return at


def test_new_tenant_too_close_to_an_existing_one_is_refused_before_any_request(app_env, sandbox):
    url = app_env
    store.at(url).upgrade()
    store.at(url).get_or_create_tenant("Acme Inc.")
    sandbox.reset()
    at = _check(url, "ACME, INC")
    errors = [e.value.replace("\\", "") for e in at.error]
    assert any("'Acme Inc.'" in e and "too close" in e for e in errors), errors
    assert sandbox.requests == [] and len(store.at(url).list_tenants()) == 1


def test_names_differing_in_non_ascii_letters_get_their_own_history(app_env, sandbox, make_result):
    url = app_env
    store.at(url).upgrade()
    store.at(url).record_check(make_result(), "Foods", source="cli", checked_by=None)
    at = _check(url, "北京 Foods")
    assert not at.error, [e.value for e in at.error]
    beijing = store.at(url).get_tenant("北京 Foods")
    assert beijing["slug"] == "北京-foods" and len(store.at(url).tenant_history(beijing["id"])) == 1
    assert len(store.at(url).tenant_history("Foods")) == 1
