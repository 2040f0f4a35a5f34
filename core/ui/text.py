"""User text in Streamlit's markdown sinks, shown as the text it is. No Streamlit here.

Everything a tenant, a URL or Stripe can put on a page (tenant names, contacts, notes, account ids, query
parameters, product names, problems that quote Stripe) goes through `md_escape` before it reaches an element
that renders markdown: st.markdown/title/header/caption, st.success/info/warning/error, widget labels and
help, page_link and button labels, st.status and progress text. Elements that never interpret markdown
(st.text, st.code, dataframe cells) take the text as it is.

Streamlit's markdown is more than CommonMark, and backslash escapes alone do not make text inert:
- GFM autolink literals (`https://host`, `www.host`, `name@host.tld`) are found in the text *after* escapes are
  resolved, so `https://1572395042/sso` stays a link however it is escaped (and an escaped dot shows its
  backslash inside a link). A WORD JOINER (U+2060, invisible, no line break) after `:` in `://`, after
  `www` and after `@` breaks them.
- Streamlit directives (`:red[…]`, `:blue-badge[…]`), emoji `:smile:` and `$…$` maths are parsed from the source,
  so an escaped `:` or `$` stops them; `:material/icon:` is found in the text, so it gets the joiner too (after
  every `:` that a letter or `/` follows).
- HTML, links, images, emphasis, headings, lists, tables, strikethrough: every ASCII punctuation mark that
  markdown reads is backslash-escaped.
- Line breaks become spaces (one line of text; multi-line text belongs in st.text or st.code).

Verified in Chromium against Streamlit 1.67 (see tests/e2e/test_text_render.py for the cases).
"""
from __future__ import annotations

import html
import re

from core.text import strip_controls

WORD_JOINER = "\u2060"

# Every ASCII punctuation mark markdown, GFM, Streamlit directives or KaTeX may read. CommonMark allows a
# backslash before any ASCII punctuation, so escaping one that needs none is harmless.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!<>|~$&:=^])")
_LINE_BREAKS = re.compile(r"[\r\n\t\v\f\x85\u2028\u2029]+")
# https:// (any scheme://) and :material/icon: (Streamlit turns `:material/` into an icon from the TEXT, after
# escapes are resolved): the joiner goes right after the ':'. Directives (:red[) are stopped by the escape alone.
_COLON = re.compile(r":(?=[A-Za-z/])")
_WWW = re.compile(r"(www)(?=\.)", re.IGNORECASE)
_AT = re.compile(r"@")


def md_escape(text: object) -> str:
    """`text` for a markdown sink, shown exactly as written (up to line breaks, which become spaces):
    no link, autolink, image, HTML, emphasis, heading, list, Streamlit directive, icon, emoji shortcode or
    maths. None becomes the empty string."""
    if text is None:
        return ""
    s = strip_controls(_LINE_BREAKS.sub(" ", str(text)))
    s = _COLON.sub(":" + WORD_JOINER, s)
    s = _WWW.sub(r"\1" + WORD_JOINER, s)
    s = _AT.sub("@" + WORD_JOINER, s)
    return _MD_SPECIAL.sub(r"\\\1", s)


def md_code(text: object) -> str:
    """`text` as an inline code span (monospace, nothing inside interpreted), whatever backticks it holds."""
    s = strip_controls(_LINE_BREAKS.sub(" ", "" if text is None else str(text)))
    if not s:
        return ""
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or (s.startswith(" ") and s.endswith(" ")) else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def plotly_text(text: object) -> str:
    """`text` for a plotly label, legend name, tick or hover template: plotly renders a subset of HTML there
    (<a href>, <b>, <span style>…), and `%{…}` in a hover template is a placeholder."""
    return html.escape("" if text is None else str(text), quote=False).replace("%", "&#37;")


def plain(markdown: str) -> str:
    """What `md_escape` output reads as (for tests and logs): escapes resolved, joiners removed."""
    return re.sub(r"\\([\\`*_{}\[\]()#+\-.!<>|~$&:=^])", r"\1", markdown).replace(WORD_JOINER, "")


__all__ = ["WORD_JOINER", "md_code", "md_escape", "plain", "plotly_text"]
