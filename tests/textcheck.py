"""Helpers for the tests of issue 9's "user text is only ever text": what Streamlit would interpret in markdown
source, and which fields of a page are markdown. Not a test module (imported by test_text_safety.py and
test_hostile_pages.py; pytest puts tests/ on sys.path)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What Streamlit 1.67 reads as something other than text in markdown SOURCE (tests/e2e/test_text_render.py shows
# each in Chromium): GFM autolinks (found after escapes are resolved, so only a broken pattern stops them), links
# and images, HTML and <autolinks>, directives (:red[…], :blue-badge[…], :material/…:), emoji shortcodes, maths.
DANGER = {
    "autolink": re.compile(r"(?i)\b(?:https?|ftp)://|\bwww\.|[\w.+-]+@[\w-]+\.[\w.-]+"),
    "link or image": re.compile(r"(?<!\\)\]\s*\("),
    "html or angle autolink": re.compile(r"(?<!\\)<[A-Za-z/!?]"),
    "directive": re.compile(r"(?<!\\):[A-Za-z][\w-]*(?:\[|/)"),
    "emoji shortcode": re.compile(r"(?<![\\\d]):[a-z_][a-z0-9_+-]*(?<!\\):"),
    "maths": re.compile(r"(?<!\\)\$"),
    "emphasis": re.compile(r"(?<!\\)(?:\*\*|__|~~)"),
}
# Text that Streamlit would render as something else if it reached a markdown sink as it is; the first 16
# are each interpreted (link, directive, maths, HTML...), which tests/e2e/test_text_render.py shows in Chromium.
HOSTILE = [
    "Session expired. Sign in again at https://1572395042/sso",  # the dotless host
    "Sign in at http://localhost:8501/login",
    "HTTPS://EVIL.EXAMPLE/x",
    "[Log in again](https://evil.example/login)",
    "<https://evil.example>",
    "![pixel](https://evil.example/p.png)",
    "visit www.evil.example today",
    "mail ops@evil.example now",
    "x <ops@evil.example>",
    ":red[Urgent] note",
    "a:blue-badge[Admin]",
    ":material/lock_open: Open",
    ":smile: face",
    ":rainbow[colours] and :gray-background[grey]",
    "price $x^2$ and $5",
    "$$E=mc^2$$",
    "<b>x</b><img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "**bold** _it_ `code` # h1",
    "~~struck~~ H~2~O",
    "# heading",
    "1. list",
    "> quote",
    "a|b|c",
    "=HYPERLINK(\"http://evil.example\",\"Refund\")",
    "line one\nline two\r\n# heading two",
    "back\\slash \\[not a link\\](https://evil.example)",
    "javascript:alert(1)",
    "Harbor & Pine &amp; Co",
    "\U0001F511 Keys & Co",
    "東京ストア",
]
MARKDOWN_FIELDS = ("body", "label", "help", "text", "delta", "placeholder")
PLAIN_TYPES = ("text", "code")  # st.text and st.code never interpret markdown


def dangers(markdown: str, skip: tuple[str, ...] = ()) -> list[str]:
    """Names of the DANGER patterns found in markdown source outside `code spans`."""
    outside = re.sub(r"(`+)(.+?)\1", "", markdown, flags=re.DOTALL)
    return [name for name, rx in DANGER.items() if name not in skip and rx.search(outside)]


def markdown_fields(at) -> list[tuple[str, str, str]]:
    """(element type, field, source) of every field of an AppTest page that Streamlit renders as markdown."""
    out = []

    def walk(node):
        yield node
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            for child in children.values():
                yield from walk(child)

    for node in walk(at._tree):
        proto = getattr(node, "proto", None)
        if proto is None or not hasattr(proto, "ListFields") or node.type in PLAIN_TYPES:
            continue
        for field, value in proto.ListFields():
            if field.name in MARKDOWN_FIELDS and isinstance(value, str) and value:
                out.append((node.type, field.name, value))
    return out


def app_pages() -> list[Path]:
    """The pages app.py's router runs (app_pages/ may also hold shared modules)."""
    found = re.findall(r"[\"'](app_pages/[A-Za-z0-9_]+\.py)[\"']", (ROOT / "app.py").read_text(encoding="utf-8"))
    return [ROOT / p for p in dict.fromkeys(found) if (ROOT / p).exists()]
