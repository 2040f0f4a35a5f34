"""What Streamlit really renders for user text, in Chromium (issue 9, item 2).

A small page (written to a temp dir, run with a real `streamlit run`) puts every text of tests/textcheck.HOSTILE
into each kind of markdown sink the dashboard uses (st.markdown, an alert, a caption, a header, a metric value, a
button label, an expander label), once through core.ui.text.md_escape and once as it is. In the browser:
- escaped, no sink holds a link, image, maths, emphasis, strikethrough, list, heading, quote, coloured or badge
  span or icon, and each shows the text itself (line breaks as spaces; the invisible word joiners aside);
- as it is, the first 16 texts ARE interpreted (so this test can fail, and documents why escaping is needed:
  the GFM autolinks, for one, survive backslash escapes).
"""
from __future__ import annotations

import json
import os
import re
import sys

import pytest
from e2e_support import HAVE_CHROMIUM, NO_CHROMIUM, ROOT, streamlit_server

sys.path.insert(0, str(ROOT / "tests"))  # tests/textcheck.py: the shared hostile table
from textcheck import HOSTILE

SINKS = ("markdown", "warning", "caption", "header", "metric", "button", "expander")
INTERPRETED = 16  # HOSTILE[:16] are each interpreted when shown as they are

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_CHROMIUM, reason=NO_CHROMIUM),
]

PAGE = '''
import json, os, sys
sys.path.insert(0, os.environ["KH_ROOT"])
import streamlit as st
from core.ui.text import md_code, md_escape

cases = json.load(open(os.environ["KH_CASES"], encoding="utf-8"))
for mode, f in (("esc", md_escape), ("raw", str)):
    for i, text in enumerate(cases):
        t = f(text)
        with st.container(key=f"box_{mode}_{i}_markdown"):
            st.markdown(t)
        with st.container(key=f"box_{mode}_{i}_warning"):
            st.warning("W " + t)  # an alert takes a leading emoji as its icon: the pages start alerts with words
        with st.container(key=f"box_{mode}_{i}_caption"):
            st.caption(t)
        with st.container(key=f"box_{mode}_{i}_header"):
            st.header(t, anchor=False)
        with st.container(key=f"box_{mode}_{i}_metric"):
            st.metric("m", t)
        with st.container(key=f"box_{mode}_{i}_button"):
            st.button(t, key=f"b_{mode}_{i}")
        with st.container(key=f"box_{mode}_{i}_expander"):
            with st.expander(t):
                st.write("")
for i, text in enumerate(cases):  # a code span: copy-clean, nothing inside interpreted
    with st.container(key=f"box_code_{i}_markdown"):
        st.markdown("contact " + md_code(text))
    with st.container(key=f"box_code_{i}_caption"):
        st.caption("contact " + md_code(text))
with st.container(key="box_done"):
    st.write("done")
'''

INSPECT = """() => {
  const out = {};
  for (const box of document.querySelectorAll('[class*="st-key-box_"]')) {
    const key = [...box.classList].find(c => c.startsWith('st-key-box_')).slice('st-key-'.length);
    const md = [...box.querySelectorAll('[data-testid=stMarkdownContainer], [data-testid=stCaptionContainer]')];
    const q = (sel) => md.reduce((n, m) => n + m.querySelectorAll(sel).length, 0);
    out[key] = {
      link: q('a'), img: q('img'), maths: q('.katex'), bold: q('strong, b'), em: q('em, i'), del: q('del, s'),
      list: q('li'), heading: q('h1, h2, h3, h4, h5, h6'), quote: q('blockquote'), table: q('table'),
      styled: q('span[style], [class*="badge"]'), icon: q('[data-testid=stIconMaterial], [data-testid=stIconEmoji]'),
      html: q('script, iframe'), code: q('code'),
      text: md.map(m => m.textContent).join(' | '),
    };
  }
  return out;
}"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, browser):
    tmp = tmp_path_factory.mktemp("text-render")
    (tmp / "page.py").write_text(PAGE, encoding="utf-8")
    (tmp / "cases.json").write_text(json.dumps(HOSTILE), encoding="utf-8")
    env = dict(os.environ, KH_ROOT=str(ROOT), KH_CASES=str(tmp / "cases.json"))
    with streamlit_server(tmp / "page.py", cwd=tmp, env=env, log_path=tmp / "streamlit.log") as base:
        page = browser.new_page()
        try:
            page.goto(base + "/")
            page.wait_for_selector(".st-key-box_done", timeout=90_000)
            # maths and icons load lazily: wait until the raw maths case has drawn its KaTeX
            page.wait_for_selector(f".st-key-box_raw_{HOSTILE.index('$$E=mc^2$$')}_markdown .katex", timeout=30_000)
            # lazily loaded elements (metric, button, expander) show a skeleton until their code arrives
            page.wait_for_function("() => !document.querySelector('[data-testid=stSkeleton]')", timeout=60_000)
            yield page.evaluate(INSPECT)
        finally:
            page.close()


def _interpreted(info: dict, sink: str = "markdown") -> dict:
    own = {"heading": 1} if sink == "header" else {"code": 1} if sink.startswith("code") else {}
    return {k: v for k, v in info.items() if k != "text" and v and v != own.get(k)}


@pytest.mark.parametrize("i", range(len(HOSTILE)), ids=[re.sub(r"\s+", " ", t)[:40] for t in HOSTILE])
def test_escaped_text_renders_as_text(rendered, i):
    expected = re.sub(r"[\r\n]+", " ", HOSTILE[i])
    for sink in SINKS:
        info = rendered[f"box_esc_{i}_{sink}"]
        assert not _interpreted(info, sink), f"{sink}: {HOSTILE[i]!r} rendered as {_interpreted(info, sink)}"
        assert expected in info["text"].replace("\u2060", ""), f"{sink}: shows {info['text']!r}"


@pytest.mark.parametrize("i", range(len(HOSTILE)), ids=[re.sub(r"\s+", " ", t)[:40] for t in HOSTILE])
def test_text_in_a_code_span_renders_as_text(rendered, i):
    expected = re.sub(r"[\r\n]+", " ", HOSTILE[i]).replace(":material/", ":material_")  # Streamlit's own rewrite
    for sink in ("markdown", "caption"):
        info = rendered[f"box_code_{i}_{sink}"]
        assert not _interpreted(info, "code"), f"{sink}: {HOSTILE[i]!r} rendered as {_interpreted(info, 'code')}"
        assert info["text"] == "contact " + expected, f"{sink}: shows {info['text']!r}"


@pytest.mark.parametrize("i", range(INTERPRETED), ids=[t[:40] for t in HOSTILE[:INTERPRETED]])
def test_unescaped_text_is_interpreted(rendered, i):
    info = rendered[f"box_raw_{i}_markdown"]
    assert _interpreted(info) or info["text"].strip() != HOSTILE[i], f"{HOSTILE[i]!r} rendered as plain text"
