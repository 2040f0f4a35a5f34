"""Check the key Pointai holds (core/features/held_key.py, dashboard/held_key.py, `check --tenant N --from-source`):
the key source runs with KEYHEALTH_TENANT, the tenant's line is checked and recorded with source "key source",
audited, and the key is never shown. A source that is missing, fails or has no line for the tenant gets one
sentence. Against the project's Stripe sandbox over real HTTP."""
from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from pathlib import Path

import pytest
from apptest import AppTest

from core.features.held_key import NOT_CONFIGURED, check_held_key
from core.ui.text import plain
from sandbox import DEMO_KEYS

ROOT = Path(__file__).resolve().parents[2]
TENANT = "Acme Coffee Roasters"
KEY = DEMO_KEYS["missing"].key


def source_script(tmp_path: Path, body: str, name: str = "source") -> str:
    """A key-source command: a shell script (run without a shell by the key-source runner)."""
    p = tmp_path / f"{name}.sh"
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(0o755)
    return str(p)


@pytest.fixture
def only_asked(tmp_path):
    """Prints a line only for the tenant KEYHEALTH_TENANT names (so the test fails unless it is passed)."""
    return source_script(tmp_path, f'[ "$KEYHEALTH_TENANT" = "{TENANT}" ] && echo "$KEYHEALTH_TENANT,{KEY}"\n'
                                   'echo "Someone Else,rk_test_nothing"\nexit 0')


@pytest.fixture
def svc(make_service, tmp_path, sandbox):
    sandbox.reset()
    return make_service(f"sqlite:///{tmp_path / 'held.db'}", who="ana@pointai.example")


def with_source(svc, command: str | None):
    from core.service import Service

    return Service(dataclasses.replace(svc.rt, keys_from=command, keys_from_timeout_s=20.0))


def test_checks_and_records_the_tenants_line_with_source_key_source(svc, only_asked):
    s = with_source(svc, only_asked)
    held = check_held_key(s, TENANT)
    assert held.problem is None and held.checked is not None and held.checked.saved
    assert held.checked.result.status == "failing"
    history = s.store.tenant_history(TENANT)
    assert [h["source"] for h in history] == ["key source"]
    audit = s.store.list_audit(limit=10)
    assert audit[0]["action"] == "check" and audit[0]["who"] == "ana@pointai.example"
    assert "(key source)" in audit[0]["detail"]
    assert KEY not in json.dumps([dict(a) for a in audit], default=str)


@pytest.mark.parametrize("case", ["missing", "fails", "no line", "malformed"])
def test_a_source_that_cannot_give_the_key_gets_one_sentence_and_an_audit_entry(svc, tmp_path, case):
    body = {
        "fails": "echo 'vault sealed' >&2\nexit 3",
        "no line": "echo 'Other Tenant,rk_test_abc'",
        "malformed": f"echo '{TENANT};{KEY}'",
    }.get(case)
    command = None if body is None else source_script(tmp_path, body)
    s = with_source(svc, command)
    held = check_held_key(s, TENANT)
    assert held.checked is None and held.problem
    assert held.problem.count(". ") == 0 and held.problem.endswith(".")  # one sentence
    expected = {"missing": NOT_CONFIGURED, "fails": "exit status 3", "no line": f"no line for {TENANT}",
                "malformed": "malformed line"}[case]
    assert expected in held.problem
    assert KEY not in held.problem
    assert s.store.tenant_history(TENANT) == []
    audit = s.store.list_audit(limit=5)
    assert (audit[0]["action"], audit[0]["outcome"]) == ("key_source", "failed")


def test_cli_check_from_source(core_cli, tmp_path, only_asked):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    p = core_cli("check", "--tenant", TENANT, "--from-source", "--json", KEYHEALTH_KEYS_FROM=only_asked,
                 DATABASE_URL=url)
    assert p.returncode == 1, p.stderr  # a failing key: exit 1, as any check
    out = json.loads(p.stdout)
    assert out["status"] == "failing" and out["saved"] is True
    assert KEY not in p.stdout + p.stderr
    from core import store

    assert [h["source"] for h in store.at(url).tenant_history(TENANT)] == ["key source"]
    store.dispose_engine(url)
    no_tenant = core_cli("check", "--from-source", KEYHEALTH_KEYS_FROM=only_asked, DATABASE_URL=url)
    assert no_tenant.returncode == 2 and "--tenant" in no_tenant.stderr and "Traceback" not in no_tenant.stderr
    none = core_cli("check", "--tenant", "Nobody Here", "--from-source", KEYHEALTH_KEYS_FROM=only_asked,
                    DATABASE_URL=url)
    assert none.returncode == 2 and "no line for Nobody Here" in none.stderr
    assert len(none.stderr.strip().splitlines()) == 1


def test_the_demo_ships_a_key_source_that_honours_keyhealth_tenant():
    import os
    import subprocess

    from core.demo import demo_key_owners
    from core.runtime import demo_key_source

    owners = demo_key_owners()
    revoked_tenant = owners["live_revoked"]
    argv = shlex.split(demo_key_source())
    assert argv[0] == sys.executable
    everything = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/")
    assert everything.returncode == 0, everything.stderr
    lines = everything.stdout.strip().splitlines()
    assert len(lines) == len(owners) and f"{revoked_tenant},{DEMO_KEYS['live_revoked'].key}" in lines
    one = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/",
                         env={**os.environ, "KEYHEALTH_TENANT": revoked_tenant})
    assert one.stdout.strip().splitlines() == [f"{revoked_tenant},{DEMO_KEYS['live_revoked'].key}"]


# --- the pages ---------------------------------------------------------------------------------------------
def tenant_page(tenant: str) -> AppTest:
    at = AppTest.from_file("../../app_pages/tenant.py", default_timeout=60)
    at.query_params["tenant"] = tenant
    at.run()
    assert not at.exception, at.exception
    return at


def shown(at: AppTest) -> str:
    text = " ".join(plain(str(e.value)) for kind in ("success", "error", "warning", "info", "markdown", "caption")
                    for e in at.get(kind))
    return text.replace("**", "").replace("`", "")


def test_tenant_page_offers_the_action_only_with_a_source_and_never_shows_the_key(app_env, monkeypatch, tmp_path,
                                                                                   only_asked):
    from core import store

    s = store.at(app_env)
    s.upgrade()
    s.get_or_create_tenant(TENANT)
    store.dispose_engine(app_env)
    at = tenant_page(TENANT)
    assert "Check the key Pointai holds" not in [b.label for b in at.button]
    monkeypatch.setenv("KEYHEALTH_KEYS_FROM", only_asked)
    at = tenant_page(TENANT)
    [button] = [b for b in at.button if b.label == "Check the key Pointai holds"]
    button.click().run()
    assert not at.exception, at.exception
    text = shown(at)
    assert "Checked the key Pointai holds for Acme Coffee Roasters" in text and "FAILING" in text.upper()
    assert "Not healthy since" in text and " UTC" in text  # since when
    assert "Message for the tenant" in text and at.code and "Subscriptions" in at.code[0].value  # what to send
    assert KEY not in at.code[0].value
    assert KEY not in text and KEY[-20:] not in text
    assert "kh_key" not in at.session_state  # the key was not left in the session
    assert [h["source"] for h in store.at(app_env).tenant_history(TENANT)] == ["key source"]
    store.dispose_engine(app_env)


def test_bad_streak_gives_broken_since_and_last_healthy():
    from datetime import datetime, timedelta, timezone

    from core.features.held_key import bad_streak

    t0 = datetime(2026, 12, 1, 9, tzinfo=timezone.utc)
    rows = [("healthy", 0), ("failing", 1), ("unreachable", 2), ("invalid", 3), ("invalid", 4)]
    history = [{"status": s, "checked_at": t0 + timedelta(days=d)} for s, d in reversed(rows)]  # newest first
    assert bad_streak(history) == (t0 + timedelta(days=1), t0)
    assert bad_streak(list(reversed(history))[:1]) == (None, None)  # healthy now
    assert bad_streak([{"status": "failing", "checked_at": t0}]) == (t0, None)
    assert bad_streak([]) == (None, None)
