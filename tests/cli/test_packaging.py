"""The project is installable (issue 18.6): pyproject.toml's [project] mirrors the pinned requirements, `pip install
-e .` gives a working `keyhealth` command, and a bare `pytest` from the repository root imports the project."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pins(path: Path) -> dict[str, Requirement]:
    """name -> requirement for every pinned line of a requirements file (comments and `-r` lines skipped)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            out[canonicalize_name(req.name)] = req
    return out


def _ranges(specs: list[str]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, specs)}


def _assert_mirrors(pins: dict[str, Requirement], ranges: dict[str, Requirement]) -> None:
    assert sorted(ranges) == sorted(pins), "pyproject.toml and the requirements file name different packages"
    for name, pin in pins.items():
        (spec,) = pin.specifier
        assert spec.operator == "==", f"{name} is not pinned"
        assert ranges[name].specifier.contains(spec.version), f"{name}: {spec.version} is outside {ranges[name]}"
        assert ranges[name].extras == pin.extras, name


def test_project_dependencies_are_the_ranges_of_the_pins():
    _assert_mirrors(_pins(ROOT / "requirements.txt"), _ranges(PYPROJECT["project"]["dependencies"]))
    _assert_mirrors(_pins(ROOT / "requirements-dev.txt"), _ranges(PYPROJECT["project"]["optional-dependencies"]["dev"]))
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}


def test_editable_install_gives_a_keyhealth_command(tmp_path):
    """`pip install -e . --no-deps` (what `make run` does after requirements.txt) into a throwaway venv that sees
    this interpreter's packages: `keyhealth --help` then works from any directory."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    # the new venv sees this one's packages (pip and the requirements) through a .pth line
    (purelib / "outer.pth").write_text(sysconfig.get_path("purelib") + "\n")
    py = venv / "bin" / "python"
    done = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", str(ROOT),
                           "--no-deps"], capture_output=True, text=True, timeout=300, env=_clean_env())
    assert done.returncode == 0, done.stderr
    script = venv / "bin" / "keyhealth"
    assert script.exists()
    out = subprocess.run([str(script), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env=_clean_env())
    assert out.returncode == 0, out.stderr
    for sub in ("check", "recheck", "history", "catalogue", "sandbox"):
        assert sub in out.stdout
    # the data files the packages need are found from the checkout (the catalogue lives in data/)
    cat = subprocess.run([str(script), "catalogue"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env=_clean_env())
    assert cat.returncode == 0, cat.stderr
    assert "rak_balance" in cat.stdout


def test_python_dash_m_core_still_answers():
    out = subprocess.run([sys.executable, "-m", "core", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env=_clean_env())
    assert out.returncode == 0, out.stderr
    assert "recheck" in out.stdout


def test_bare_pytest_from_the_root_imports_the_project():
    """`pytest` (the console script, which does not put the working directory on sys.path) collects tests that
    import core: pyproject.toml's pythonpath does it."""
    pytest_bin = Path(sys.executable).parent / "pytest"
    out = subprocess.run([str(pytest_bin), "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                          "tests/cli/test_packaging.py"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=_clean_env())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "test_bare_pytest_from_the_root_imports_the_project" in out.stdout


def test_make_run_installs_the_project_after_the_pinned_requirements():
    out = subprocess.run(["make", "-n", "-B", "-C", str(ROOT), "run", "VENV=/nonexistent/venv"], capture_output=True,
                         text=True, timeout=30, check=True).stdout.splitlines()
    pins = next(i for i, line in enumerate(out) if "-r requirements.txt" in line)
    project = next(i for i, line in enumerate(out) if "-e . --no-deps" in line)
    assert pins < project < next(i for i, line in enumerate(out) if "streamlit run app.py" in line)


# --- lint: no function above complexity 15 (issue 18.5) ------------------------------------------------------
# The only functions allowed a `noqa: C901`, each until the rewrite that splits it lands (then RUF100 flags the
# unused noqa and it is removed). Nothing else may opt out of the limit.


def _ruff(tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    """ruff with the project's own configuration (pyproject.toml) on one throwaway file."""
    f = tmp_path / "subject.py"
    f.write_text(source)
    cmd = [sys.executable, "-m", "ruff", "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), str(f)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)


def _branches(n: int) -> str:
    """A function of McCabe complexity n (1 + one `if` per branch)."""
    body = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(n - 1))
    return f"def f(x):\n{body}    return -1\n"


def test_the_complexity_limit_is_configured_at_15():
    lint = PYPROJECT["tool"]["ruff"]["lint"]
    assert "C90" in lint["select"]
    assert lint["mccabe"]["max-complexity"] == 15
    opted_out = [*lint.get("ignore", []), *lint.get("extend-ignore", []),
                 *(c for codes in lint.get("per-file-ignores", {}).values() for c in codes)]
    assert not [c for c in opted_out if c.startswith("C9")], "the complexity limit is switched off somewhere"


def test_make_test_lints_with_the_projects_configuration():
    """`make test` runs `ruff check .` as it stands: no --select, --ignore or --config replacing pyproject.toml's."""
    out = subprocess.run(["make", "-n", "-B", "-C", str(ROOT), "test", "VENV=/nonexistent/venv"], capture_output=True,
                         text=True, timeout=30, check=True).stdout.splitlines()
    assert [line.strip() for line in out if "ruff" in line] == ["/nonexistent/venv/bin/python -m ruff check ."]


def test_ruff_refuses_a_function_of_complexity_16_and_accepts_15(tmp_path):
    refused = _ruff(tmp_path, _branches(16))
    assert refused.returncode == 1 and "C901" in refused.stdout and "(16 > 15)" in refused.stdout, refused.stdout
    accepted = _ruff(tmp_path, _branches(15))
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


def test_no_function_opts_out_of_the_limit():
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, timeout=30,
                             check=True).stdout.split()
    noqa = re.compile(r"#\s*(ruff:\s*)?noqa:[\w, ]*\bC90")  # per line, or for the whole file
    opted = {p for p in tracked if (ROOT / p).is_file() and noqa.search((ROOT / p).read_text())}
    assert not opted, f"a noqa: C901 opts out of the limit in {sorted(opted)}"


def test_the_tests_mirror_the_layout():
    """tests/conftest.py's promise: every test module lives in a folder named for the part of the project it tests
    (none at the top of tests/, which holds only the fixtures and the shared helpers), no folder is a package, and
    a module's base name is unique across tests/ (every folder is on sys.path: tests import helpers by base name)."""
    tests = ROOT / "tests"
    assert sorted(p.name for p in tests.glob("test_*.py")) == [], "a test module at the top of tests/: move it"
    folders = {p.parent.name for p in tests.glob("*/test_*.py")}
    assert folders == {"app", "cli", "e2e", "engine", "recheck", "sandbox", "security", "service", "store"}
    assert list(tests.rglob("__init__.py")) == []
    names = [p.name for p in tests.rglob("*.py") if p.name != "conftest.py"]
    assert sorted({n for n in names if names.count(n) > 1}) == []
