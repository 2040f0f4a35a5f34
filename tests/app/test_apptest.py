"""tests/apptest.py: Streamlit's AppTest with its component scan done once per process, and nothing else changed."""
from __future__ import annotations

import re
from pathlib import Path

import streamlit.testing.v1 as streamlit_testing
from apptest import AppTest, installed_components

ROOT = Path(__file__).resolve().parents[2]


def _page(at) -> list[tuple[str, str]]:
    """What a run drew: each element's type and text, in order."""
    return [(type(e).__name__, str(getattr(e, "value", ""))) for e in at.main]


def test_a_page_draws_the_same_as_under_streamlits_own_apptest():
    ours = AppTest.from_file("../../app_pages/about.py", default_timeout=60)  # relative to this file, as always
    theirs = streamlit_testing.AppTest.from_file(str(ROOT / "app_pages" / "about.py"), default_timeout=60)
    ours.run()
    theirs.run()
    assert not ours.exception and not theirs.exception
    assert _page(ours) == _page(theirs) and len(_page(ours)) > 3
    # the scan is the one of the process, and it found what Streamlit's own AppTest found for itself
    assert ours._bidi_component_manager is installed_components()
    assert theirs._bidi_component_manager is not installed_components()
    assert (sorted(vars(ours._bidi_component_manager._registry).keys())
            == sorted(vars(theirs._bidi_component_manager._registry).keys()))


def test_every_page_test_uses_this_apptest():
    """A test importing Streamlit's AppTest directly would scan the installed packages on every new AppTest."""
    direct = [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "tests").rglob("*.py"))
              if p.name != "apptest.py" and p != Path(__file__).resolve()
              and re.search(r"from streamlit\.testing\.v1 import [^\n]*\bAppTest\b", p.read_text(encoding="utf-8"))]
    assert direct == []
