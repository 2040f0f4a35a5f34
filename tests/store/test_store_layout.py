"""The store's shape (issue #18, item 5): one module per concern behind `Store`, plain typed methods, private helpers
shared only through core/store/sql.py, and the raw oracle queries in tests/ only (docs/store.md)."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import store_oracle

from core.store import Store

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "core" / "store"
# The write path (record.py, rollup.py, latest.py) is being rewritten apart (issue #18 item 4); what it still reaches
# across is listed here and may only shrink.
WRITE_PATH_KNOWN: set[str] = set()
PRODUCT = [ROOT / "core", ROOT / "app_pages", ROOT / "dashboard", ROOT / "bench", ROOT / "sandbox", ROOT / "app.py"]


def _python_files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out += sorted(p.rglob("*.py"))
    return out


def test_store_modules_take_each_others_private_helpers_only_through_sql_py():
    bad = []
    for path in sorted(STORE.glob("*.py")):
        if path.name == "sql.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        store_modules: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("core.store"):
                for alias in node.names:
                    if alias.name.startswith("_"):
                        bad.append(f"{path.name}: from {node.module} import {alias.name}")
                    if node.module == "core.store":
                        store_modules.add(alias.asname or alias.name)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in store_modules and node.attr.startswith("_")):
                bad.append(f"{path.name}: {node.value.id}.{node.attr}")
    assert set(bad) <= WRITE_PATH_KNOWN, sorted(set(bad) - WRITE_PATH_KNOWN)


def test_store_has_plain_typed_methods_and_no_descriptor_registry():
    names = [n for n in dir(Store) if not n.startswith("__")]
    assert len(names) > 60
    untyped = []
    for name in names:
        attr = inspect.getattr_static(Store, name)
        assert inspect.isfunction(attr) or isinstance(attr, property), f"Store.{name} is a {type(attr).__name__}"
        if name.startswith("_") or not inspect.isfunction(attr):
            continue
        params = [p for p in inspect.signature(attr).parameters.values() if p.name != "self"]
        if "return" not in attr.__annotations__ or any(p.annotation is inspect.Parameter.empty for p in params):
            untyped.append(name)
    assert untyped == []


def test_the_raw_oracles_live_in_tests_and_product_code_never_calls_them():
    for path in _python_files(PRODUCT):
        text = path.read_text(encoding="utf-8")
        assert "import store_oracle" not in text and "from store_oracle" not in text, path
        assert "def _raw_" not in text and "._raw_" not in text, path
    for path in STORE.glob("*.py"):
        assert "raw=" not in path.read_text(encoding="utf-8"), f"{path.name} still has a raw= branch"
    # each oracle stands for a Store method with the same arguments after the Database
    oracles = {n[4:]: f for n, f in inspect.getmembers(store_oracle, inspect.isfunction) if n.startswith("raw_")}
    assert set(oracles) == {"status_mix_per_day", "checks_per_day", "unreachable_share", "status_counts",
                            "score_distribution", "top_problem_scopes"}
    for name, fn in oracles.items():
        want = [p.name for p in inspect.signature(getattr(Store, name)).parameters.values()][1:]
        got = [p.name for p in inspect.signature(fn).parameters.values()][1:]
        assert got == want, name
