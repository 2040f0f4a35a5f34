r"""Free text from people and from Stripe: the one set of rules, for every layer (engine, store, ui).

    clean_text(value, what="contact", limit=200)                 # "Ana" / None for empty / ValueError (one sentence)
    clean_text(value, what="notes", limit=5000, multiline=True)  # notes keep their line breaks and tabs
    clean_text(value, what="tenant name", limit=100, required=True, error=StoreInputError)
    strip_controls("a\x00b")                                     # "ab": for display, never refuses
    printable(query_param, 200)                                  # a search from a URL: printable characters only

`clean_text` is the one gate for text that is kept (tenant names, notes, contacts, user names, ...): it must be
text, it is stripped of surrounding spaces, and it is refused (with one sentence naming the problem and the fix)
when it is too long, holds a control character (a line break or tab too, unless `multiline`), bytes that are not
UTF-8 (lone surrogates), or an invisible or text-direction character (U+202E turns "Acme\u202etxt.exe" around on
screen; "Acme\u200b" shows as "Acme"; ZWJ/ZWNJ stay allowed: emoji sequences and several scripts need them).
`strip_controls` is its display twin: it removes the control characters a line of shown text must not carry.

Nothing here imports from the store, the service or the ui (tests/security/test_text_rules.py holds that these rules are
written only here).
"""
from __future__ import annotations

import re
import unicodedata

__all__ = ["INVISIBLE", "clean_text", "first_invisible", "has_control", "printable", "strip_controls"]

# Invisible characters and text-direction controls (see the module doc).
INVISIBLE = frozenset(
    "\u00ad\u061c\u180e\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
)
_DISPLAY_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")


def has_control(s: str, *, multiline: bool = False) -> bool:
    """A control character (Cc), or a line or paragraph separator; with `multiline`, tab, CR and LF are allowed."""
    if multiline:
        return any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in s)
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in s)


def first_invisible(s: str) -> str | None:
    """The first invisible or text-direction character in `s`, as U+XXXX, or None."""
    ch = next((c for c in s if c in INVISIBLE), None)
    return None if ch is None else f"U+{ord(ch):04X}"


def _not_utf8(s: str) -> bool:
    """Lone surrogates: what Python makes of bytes that are not UTF-8 (argv, stdin); no database stores them."""
    return any("\ud800" <= c <= "\udfff" for c in s)


def clean_text(
    value: object,
    *,
    what: str,
    limit: int,
    multiline: bool = False,
    required: bool = False,
    plural: bool = False,
    error: type[Exception] = ValueError,
) -> str | None:
    """`value` stripped of surrounding spaces; None when it is None or empty (unless `required`: then refused).
    Refused with `error` (one sentence naming `what`, the problem and the fix) when it is not text, longer than
    `limit`, or holds a control, non-UTF-8, invisible or text-direction character (see the module doc).
    `plural`: `what` is a plural noun ("notes"), so the sentence says "are" and "them"."""
    the = f"The {what}"
    is_, has, it = ("are", "hold", "them") if plural else ("is", "holds", "it")
    if value is None and not required:
        return None
    if not isinstance(value, str):
        fix = f"type the {what}" if required else f"give {it} as text or leave {it} empty"
        raise error(f"{the} must be text; {fix}.")
    clean = value.strip()
    if not clean:
        if required:
            raise error(f"{the} {is_} empty; type the {what}.")
        return None
    if len(clean) > limit:
        raise error(f"{the} {is_} {len(clean)} characters long; shorten {it} to at most {limit}.")
    if has_control(clean, multiline=multiline):
        example = "such as a NUL byte" if multiline else "such as a newline or tab"
        raise error(f"{the} {'contain' if plural else 'contains'} a control character ({example}); remove it.")
    if _not_utf8(clean):
        raise error(f"{the} {has} bytes that are not valid UTF-8 text; retype {it}.")
    bad = first_invisible(clean)
    if bad:
        raise error(f"{the} {'contain' if plural else 'contains'} an invisible or text-direction character "
                    f"({bad}); remove it.")
    return clean


def strip_controls(text: str) -> str:
    """`text` without the control characters a line of shown text must not carry (NUL, ESC, DEL, C1, ...);
    line breaks and tabs are left to the caller (md_escape makes them spaces)."""
    return _DISPLAY_CONTROL.sub("", text)


def printable(text: str, limit: int) -> str:
    """A search box's text from a URL: only printable characters (no control, format or line-break character), at
    most `limit` of them. Never refuses: a URL is not where a person can be told."""
    return "".join(ch for ch in text if ch.isprintable())[:limit]
