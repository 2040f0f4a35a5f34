"""The demo tells its stories right (issue 19.9): each story's key is the one the demo tenant's history holds, in
the tenant's mode (live tenants get live keys), so the revoked key is one that worked before for the tenant that
shows it; the demo's key source gives "Check the key Pointai holds" something to check; `make demo-reset`
(core.runtime.reset_demo) puts the seeded demo back. Checks go to the project's Stripe sandbox over real HTTP."""
from __future__ import annotations

import dataclasses

import pytest

from core import runtime, store
from core.demo import demo_key_owners, generate_tenants
from core.features.held_key import check_held_key
from sandbox import DEMO_KEYS
from sandbox.demo_keys import STORY


def test_each_story_key_belongs_to_a_tenant_of_that_story_and_mode():
    owners = demo_key_owners()
    people = {t.name: t for t in generate_tenants()}
    assert {"live_revoked", "live_expired", "live_healthy", "live_missing", "test_on_live"} <= set(owners)
    for key_name, tenant in owners.items():
        t, dk = people[tenant], DEMO_KEYS[key_name]
        assert t.story == STORY[key_name] and t.mode == (dk.tenant_mode or dk.mode), (key_name, tenant)
        assert t.owns == key_name
        # the tenant's history holds that very key (the fingerprint intake gives it on this server)
        from core.engine.keys import intake

        fp = intake(dk.key).info.fingerprint
        assert any(c.result.key.fingerprint == fp for c in t.checks), key_name
    assert len(set(owners.values())) == len(owners)  # one key per tenant: no demo key is shared
    # live tenants in production get live keys: the revoked story's key is live, as its tenant is
    revoked = people[owners["live_revoked"]]
    assert revoked.mode == "live" and revoked.expected_mode == "live"


@pytest.fixture
def demo_svc(make_service, tmp_path, sandbox, monkeypatch, demo_db):
    """The seeded demo (a copy of the one conftest seeds once per process with this fingerprint secret) with the
    project's sandbox and the demo's key source."""
    monkeypatch.setenv("KEYHEALTH_FINGERPRINT_SECRET", "test-secret-for-app-tests")
    sandbox.reset()
    url = f"sqlite:///{demo_db(tmp_path, 'test-secret-for-app-tests')}"
    assert store.at(url).list_tenants(), "seeded"
    svc = make_service(url, who="ana@pointai.example")
    yield dataclasses.replace(svc.rt, keys_from=runtime.demo_key_source(), keys_from_timeout_s=60.0), svc
    store.dispose_engine(url)


def test_the_revoked_key_worked_before_for_its_tenant_and_the_key_source_checks_it(demo_svc):
    from core.service import Service

    rt, svc = demo_svc
    tenant = demo_key_owners()["live_revoked"]
    # pasted on its tenant: Stripe refuses it, history knows it worked, so it is named revoked with the date
    checked = svc.check(DEMO_KEYS["live_revoked"].key, tenant, source="dashboard")
    r = checked.result
    assert r.status == "invalid" and r.refused == "revoked", r.problem
    assert "accepted this key on" in (r.problem or "")
    assert r.lifecycle is None or not (r.lifecycle.replaced or r.lifecycle.mode_changed or r.lifecycle.account_changed)
    # the key Pointai holds, from the demo's key source: the same story, without anyone pasting
    held = check_held_key(Service(rt), tenant)
    assert held.problem is None and held.checked is not None
    assert held.checked.result.refused == "revoked"
    assert svc.store.tenant_history(tenant)[0]["source"] == "key source"


def test_a_healthy_live_story_key_checks_healthy_on_its_tenant_without_key_signals(demo_svc):
    rt, svc = demo_svc
    tenant = demo_key_owners()["live_healthy"]
    r = svc.check(DEMO_KEYS["live_healthy"].key, tenant, source="dashboard").result
    assert r.status == "healthy"
    lc = r.lifecycle
    assert lc is not None and not (lc.replaced or lc.mode_changed or lc.account_changed or lc.mode_mismatch)


def test_reset_demo_restores_the_seeded_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("KEYHEALTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KEYHEALTH_FINGERPRINT_SECRET", "demo-reset-secret")
    from core.config import settings
    from core.demo import DEMO_TENANTS

    conf = settings()
    first = runtime.reset_demo(conf)
    s = store.at(conf.demo_database_url)
    s.record_audit("check", who="mallory", tenant="Scratch Tenant", outcome="healthy", detail="x")
    s.get_or_create_tenant("Scratch Tenant")
    assert len(s.list_tenants(include_archived=True)) == DEMO_TENANTS + 1
    again = runtime.reset_demo(conf)
    assert again == first > 0
    s = store.at(conf.demo_database_url)
    assert len(s.list_tenants(include_archived=True)) == DEMO_TENANTS
    assert not [a for a in s.list_audit(limit=5000) if a["who"] == "mallory"]
    store.dispose_engine(conf.demo_database_url)


def test_the_test_key_that_replaced_a_live_tenants_key_is_in_the_key_source(demo_svc):
    """"Checkout fails": the live tenant whose live key was replaced by a test key of another account; the key
    Pointai holds is that test key, and its check says so (mode mismatch, in the message too)."""
    from core.service import Service

    rt, svc = demo_svc
    tenant = demo_key_owners()["test_on_live"]
    held = check_held_key(Service(rt), tenant)
    assert held.checked is not None, held.problem
    r = held.checked.result
    assert r.key.mode == "test" and r.lifecycle is not None and r.lifecycle.mode_mismatch
    assert not r.lifecycle.replaced  # the same key as the tenant's latest check: nothing new
    assert "live" in (r.message or "")


def test_sidebar_lists_each_story_key_with_its_tenant_and_resets_the_demo(tmp_path, monkeypatch):
    from apptest import AppTest

    from core.config import settings
    from core.ui.text import plain

    monkeypatch.setenv("KEYHEALTH_DEMO", "1")
    monkeypatch.setenv("KEYHEALTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KEYHEALTH_FINGERPRINT_SECRET", "demo-sidebar-secret")
    at = AppTest.from_file("../../app.py", default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    said = " ".join(plain(m.value) for m in at.sidebar.markdown)
    owners = demo_key_owners()
    for key_name, tenant in owners.items():
        assert f"{tenant} ({DEMO_KEYS[key_name].mode})" in said.replace("*", ""), key_name
    codes = [c.value for c in at.sidebar.code]
    assert DEMO_KEYS["live_revoked"].key in codes
    url = settings().demo_database_url
    s = store.at(url)
    s.get_or_create_tenant("Scratch Tenant")
    store.dispose_engine(url)
    [reset] = [b for b in at.sidebar.button if b.label == "Reset the demo"]
    reset.click().run()
    assert not at.exception, at.exception
    names = [t["name"] for t in store.at(url).list_tenants(include_archived=True)]
    assert "Scratch Tenant" not in names and set(owners.values()) <= set(names)
    store.dispose_engine(url)
