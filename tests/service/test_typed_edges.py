"""Typed edges: the key and the tenant name are parsed once, where they come in, and travel typed after that.

Counted without touching the stripe SDK: SecretKey.parses and TenantName.parses are counters on the classes (each
real parse adds one; a TenantName handed to TenantName.parse again passes through and adds nothing).
"""
from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import pytest
from apptest import AppTest

from core import store
from core.engine.keys import Intake, SecretKey, as_intake
from core.store import TenantName
from sandbox import DEMO_KEYS

ROOT = Path(__file__).resolve().parents[2]
HEALTHY = DEMO_KEYS["healthy"].key


def test_a_secret_key_carries_its_info_and_keeps_its_guarantees():
    taken = SecretKey.parse(f"  '{HEALTHY}'\n")
    key = taken.key
    assert key is not None and key.info is taken.info and key.info.fingerprint and key.masked == key.info.masked
    assert key.mode == key.info.mode == DEMO_KEYS["healthy"].mode
    assert HEALTHY[8:] not in repr(key) and HEALTHY[8:] not in f"{key}" and HEALTHY[8:] not in repr(taken)
    import copy
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(key)
    assert copy.deepcopy(key) is key
    with pytest.raises(AttributeError):
        key._info = None  # type: ignore[misc]
    with pytest.raises(TypeError):  # no key without its parse: SecretKey(text) alone is refused
        SecretKey(HEALTHY)  # type: ignore[call-arg]
    with pytest.raises(TypeError):  # nor with the KeyInfo of a refused paste
        SecretKey(HEALTHY, SecretKey.parse("pk_test_" + "a" * 30).info)


def test_a_parsed_key_is_never_parsed_again():
    taken = SecretKey.parse(HEALTHY)
    before = SecretKey.parses
    assert as_intake(taken) is taken
    assert as_intake(taken.key).key is taken.key and as_intake(taken.key).info is taken.info
    refused = SecretKey.parse("pk_test_" + "a" * 30)
    assert SecretKey.parses == before + 1
    assert as_intake(refused) is refused and SecretKey.parses == before + 1


def test_one_check_on_the_dashboard_parses_the_key_once_and_the_name_once(app_env, sandbox):
    at = AppTest.from_file("../../app.py", default_timeout=60)
    at.run()
    assert not at.exception
    pick = at.selectbox(key="kh_tenant_pick")
    pick.set_value(pick.options[0]).run()  # "New tenant…"
    at.text_input(key="kh_tenant_new").input("Acme Coffee Roasters").run()
    at.text_input(key="kh_key_input").input(HEALTHY)
    keys, names = SecretKey.parses, TenantName.parses
    [b for b in at.button if b.label == "Check and record"][0].click().run()
    keys, names = SecretKey.parses - keys, TenantName.parses - names
    assert not at.exception, at.exception
    assert at.success and "HEALTHY" in at.success[0].value
    assert keys == 1  # the form's key, parsed in start(); the sweep, judge, record and the page after it: none
    assert names == 1  # the tenant box, parsed in start(); clash, check, record, audit and the page after: none
    hist = store.at(app_env).tenant_history("Acme Coffee Roasters")
    assert len(hist) == 1 and hist[0]["source"] == "dashboard"
    assert type(at.session_state["kh_tenant"]) is TenantName


def test_one_check_from_the_cli_parses_the_key_once_and_the_name_once(sandbox, tmp_path, monkeypatch, capsys):
    from core.cli import main

    for k, v in {"STRIPE_API_BASE": sandbox.url, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
                 "KEYHEALTH_DATA_DIR": str(tmp_path), "KEYHEALTH_FINGERPRINT_SECRET": "cli-test-secret",
                 "KEYHEALTH_RATE_TEST": "400", "KEYHEALTH_BACKOFF_S": "0.01", "NO_COLOR": "1",
                 "STRIPE_KEY": HEALTHY, "KEYHEALTH_DEMO": "0"}.items():
        monkeypatch.setenv(k, v)
    keys, names = SecretKey.parses, TenantName.parses
    assert main(["check", "--tenant", "Acme Coffee Roasters", "--json"]) == 0, capsys.readouterr().err
    assert SecretKey.parses - keys == 1  # standard input (STRIPE_KEY), parsed in cmd_check
    assert TenantName.parses - names == 1  # --tenant, parsed in cmd_check; clash, check, record, audit: none
    assert store.at(f"sqlite:///{tmp_path / 'cli.db'}").tenant_history("Acme Coffee Roasters")[0]["source"] == "cli"


def test_a_recheck_line_is_parsed_once_where_it_is_read():
    from core.features.recheck import parse_lines

    keys, names = SecretKey.parses, TenantName.parses
    entries, failed = parse_lines(f"tenant,key\nAcme,{HEALTHY}\nBeta,pk_test_{'a' * 30}\n")
    assert not failed and [e.tenant for e in entries] == ["Acme", "Beta"]
    assert all(type(e.tenant) is TenantName and isinstance(e.key, Intake) for e in entries)
    assert entries[0].key.key is not None and entries[1].key.key is None  # a refused paste is still checked
    assert SecretKey.parses - keys == 2 and TenantName.parses - names == 2


# --- no second parse and no Any on the entry points -------------------------------------------------------
_PRODUCT = ["core", "dashboard", "app_pages", "app.py", "sandbox", "bench"]


def test_nothing_outside_the_key_module_calls_intake_directly():
    """Every parse is SecretKey.parse (counted) at an edge, or as_intake (which parses only raw text from a script
    or a test): no module calls intake() or unwraps a key to parse it again."""
    offenders = []
    for entry in _PRODUCT:
        p = ROOT / entry
        for path in [p] if p.is_file() else sorted(p.rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "core/engine/keys.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    f = node.func
                    name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                    if name == "intake":
                        offenders.append(f"{rel}:{node.lineno} intake()")
                    # intake(str(key)) / SecretKey.parse(str(key)): a parsed key unwrapped to be parsed again
                    if name in ("parse", "as_intake") and node.args and isinstance(node.args[0], ast.Call) and \
                            isinstance(node.args[0].func, ast.Name) and node.args[0].func.id == "str":
                        offenders.append(f"{rel}:{node.lineno} {name}(str(...))")
                if isinstance(node, (ast.Import, ast.ImportFrom)) and any(a.name == "intake" for a in node.names):
                    offenders.append(f"{rel}:{node.lineno} imports intake")
    assert offenders == []


def _hints(fn) -> dict:
    import stripe

    from core.engine.check import Progress
    from core.service import Checked, Service

    names = {"stripe": stripe, "Service": Service, "Checked": Checked, "TenantName": TenantName, "Intake": Intake,
             "Progress": Progress}
    return typing.get_type_hints(fn, localns=names)  # (names the modules import for type checkers only)


def test_entry_points_take_typed_arguments():
    from core.engine.check import check_key
    from core.features.held_key import check_held_key, held_key
    from core.features.recheck import BatchLine
    from core.features.sample import fetch_sample_data
    from core.features.transaction import run_test_transaction
    from core.features.verify import verify_integration
    from core.service import Service

    pasted = SecretKey | Intake
    for fn in (Service.check, Service.sample, Service.transact, verify_integration):
        hints = _hints(fn)
        assert hints["key"] == pasted, fn.__qualname__
        assert hints["tenant"] == TenantName | None, fn.__qualname__
        for name, param in inspect.signature(fn).parameters.items():
            if param.kind is not inspect.Parameter.VAR_KEYWORD:
                assert hints.get(name) is not typing.Any, f"{fn.__qualname__}({name}: Any)"
    assert _hints(Service.record)["tenant"] is TenantName
    assert _hints(check_held_key)["tenant"] is TenantName and _hints(held_key)["tenant"] is TenantName
    assert _hints(BatchLine)["tenant"] is TenantName and _hints(BatchLine)["key"] is Intake
    for fn in (check_key, fetch_sample_data, run_test_transaction):  # also scripts' and tests' way in: raw text too
        assert _hints(fn)["key"] == pasted | str | None, fn.__qualname__
