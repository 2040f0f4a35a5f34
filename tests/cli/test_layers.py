"""The import graph has no circle, and no module imports one from a layer above it (issue #18, "Done when").

Read from the source with `ast` (every import, module-level or inside a function; `if TYPE_CHECKING:` blocks are
types, not imports, and are left out). A package's `__init__` is not counted as imported by its own submodules'
`from pkg import sub` (that names the submodule).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("core", "dashboard", "sandbox", "app_pages")

# Lowest first. A module may import its own layer or any layer below, never one above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # The settings table sits with the engine: the engine reads one setting (the fingerprint secret), and the
    # table reads the engine's pacing defaults; core.text, the one set of rules for free text, imports nothing of
    # ours. `core` itself is only the package (its version).
    ("engine and settings", ("core.engine", "core.config", "core.text")),
    ("sandbox", ("sandbox",)),
    ("store", ("core.store",)),
    ("features", ("core.features",)),
    ("ui", ("core.ui",)),
    ("runtime", ("core.demo", "core.runtime", "core.access")),
    ("service", ("core.service",)),
    ("use cases above the service", ("core.features.fleet", "core.features.held_key", "core.features.verify",
                                     "core.features.recheck", "core.features.keysource")),
    ("cli and dashboard glue", ("core.cli", "core.__main__", "dashboard")),
    ("pages", ("app_pages",)),
    ("router", ("app",)),
]


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    paths = [p for s in SOURCES for p in (ROOT / s).rglob("*.py")] + [ROOT / "app.py", ROOT / "core" / "__init__.py"]
    for p in paths:
        rel = p.relative_to(ROOT)
        if "migrations" in rel.parts:
            continue
        name = ".".join(rel.with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    return mods


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append(child)
            walk(child)

    walk(tree)
    return found


def _targets(name: str, path: Path, node: ast.Import | ast.ImportFrom, mods: dict[str, Path]) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in mods}
    if node.level:
        base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        module = ".".join([*base, *([node.module] if node.module else [])])
    else:
        module = node.module or ""
    subs = {f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in mods}
    named_other = [a for a in node.names if f"{module}.{a.name}" not in mods]
    return subs | ({module} if named_other and module in mods else set())


def graph() -> dict[str, set[str]]:
    mods = _modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        for node in _imports(ast.parse(path.read_text(), str(path))):
            edges[name] |= _targets(name, path, node, mods) - {name}
    return edges


def layer(module: str) -> int:
    if module == "core":
        return 0
    best, rank = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank >= 0, f"{module} is in no layer: add it to LAYERS"
    return rank


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        x = stack.pop()
                        on.discard(x)
                        comp.append(x)
                        if x == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
            elif w not in index:
                index[w] = low[w] = len(index)
                stack.append(w)
                on.add(w)
                work.append((w, iter(sorted(edges.get(w, ())))))
            elif w in on:
                low[v] = min(low[v], index[w])
    return found


def test_the_import_graph_has_no_circle() -> None:
    assert cycles(graph()) == []


def test_no_module_imports_one_from_a_layer_above_it() -> None:
    upward = sorted(f"{m} ({LAYERS[layer(m)][0]}) imports {t} ({LAYERS[layer(t)][0]})"
                    for m, ts in graph().items() for t in ts if layer(t) > layer(m))
    assert upward == []


def test_the_engine_imports_nothing_of_the_store_service_features_or_ui() -> None:
    bad = sorted(f"{m} imports {t}" for m, ts in graph().items() if m.startswith("core.engine")
                 for t in ts if t.startswith(("core.store", "core.service", "core.features", "core.ui", "core.cli")))
    assert bad == []


@pytest.mark.parametrize("source, expect", [
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_circle_finder_can_fail(source: dict[str, set[str]], expect: list[list[str]]) -> None:
    assert cycles(source) == expect


def test_the_layer_rule_can_fail() -> None:
    assert layer("core.engine.probe") < layer("core.store.db") < layer("core.service") < layer("app_pages.check")
    assert layer("core.features.fleet") > layer("core.service") > layer("core.features.sample")
