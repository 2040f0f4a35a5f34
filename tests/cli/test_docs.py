"""The documentation (issue 18.8): a short README with a true layout map and links that resolve, the rest in docs/,
the two walks in five files or fewer each, and `make bench` writing docs/benchmarks.md (not the README)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(p.name for p in DOCS.glob("*.md"))  # every page in docs/: each is linked and its links resolve


def _links(path: Path) -> list[str]:
    """Relative link targets of a Markdown file (images included), without anchors."""
    text = path.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t.split("#", 1)[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def test_the_readme_is_short_and_says_how_to_start():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    for must in ("## Prerequisites", "make run", "make test", "make demo", "PORT=", "## Layout", "Python 3.11"):
        assert must in text, must
    assert "<!-- bench:start -->" not in text  # the figures live in docs/benchmarks.md


@pytest.mark.parametrize("page", ["README.md", *(f"docs/{p}" for p in PAGES)])
def test_every_relative_link_resolves(page):
    path = ROOT / page
    assert path.exists(), page
    for target in _links(path):
        assert target and (path.parent / target).exists(), f"{page} links to {target}, which does not exist"


def test_the_readme_links_every_docs_page():
    linked = {Path(t).name for t in _links(README)}
    assert set(PAGES) <= linked, set(PAGES) - linked


def test_the_layout_map_names_every_top_level_entry_and_nothing_that_is_gone():
    text = README.read_text(encoding="utf-8")
    layout = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    tops = {line.split("/", 1)[0] + ("/" if "/" in line else "") for line in tracked.splitlines()}
    skip = {".gitignore", "README.md", "Makefile", "pyproject.toml", "requirements.txt", "requirements-dev.txt",
            "alembic.ini", ".ci/"}
    for entry in sorted(tops - skip):
        assert re.search(rf"(^|\s){re.escape(entry)}", layout, re.M), f"the layout map does not name {entry}"
    # every path the map names at its left margin exists (app_pages/ is named as the move to come)
    for name in re.findall(r"^([A-Za-z_.][\w.]*/?)\s", layout.split("```text", 1)[1].split("```", 1)[0], re.M):
        assert (ROOT / name).exists(), f"the layout map names {name}, which does not exist"


def _walk(text: str, title: str) -> list[str]:
    section = text.split(title, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\d+\. `([^`]+)`", section, re.M)


def test_each_walk_is_five_files_or_fewer_and_the_files_exist():
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    for title in ("## Walk 1: a check", "## Walk 2: the fleet recheck"):
        files = _walk(text, title)
        assert 1 <= len(files) <= 5, (title, files)
        for f in files:
            assert (ROOT / f).exists(), f


def test_make_bench_writes_docs_benchmarks_between_the_markers(tmp_path):
    from bench.__main__ import END, PAGE, START, write

    assert PAGE == DOCS / "benchmarks.md"
    page = tmp_path / "benchmarks.md"
    page.write_text(PAGE.read_text(encoding="utf-8"))
    head = page.read_text().split(START, 1)[0]
    assert write("Measured now.", ["### One\n\nfigure"], page)
    text = page.read_text()
    assert text.startswith(head) and f"{START}\nMeasured now.\n\n### One\n\nfigure\n{END}" in text
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    assert not write("x", ["y"], readme) and readme.read_text() == "no markers\n"


def test_top_level_sections_that_other_work_appends_to():
    """security.md and operations.md are appended to by other work: each has top-level (##) sections."""
    for page in ("security.md", "operations.md"):
        heads = re.findall(r"^## .+", (DOCS / page).read_text(encoding="utf-8"), re.M)
        assert len(heads) >= 4, page
