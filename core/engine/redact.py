"""The one redaction step: every text that came from Stripe or from a key source passes through `redact`
before it is printed, logged, stored, alerted or put in an exception message.

    redact(text)              # anything shaped like a Stripe secret, whole, glued or cut
    redact(text, key, ...)    # ... and any run of 8 or more characters of the given keys, wherever it is

Two passes, in this order:
- The shape of a secret, wherever it starts (glued after `%3D`, `=` or another word included): a known prefix
  (`rk_live_`, `sk_test_`, `whsec_`, …) followed by at least 4 characters of a secret's tail. A whole-looking
  secret keeps its prefix and last 4 characters (`rk_test_…LKJH`, what a masked key shows); a shorter one (a key
  cut short) keeps only its prefix (`rk_test_…`). A masked key (`rk_test_…LKJH`) is left as it is.
- The keys in hand: any run of at least `RUN` (8) consecutive characters of a given key, except its public
  prefix alone (`rk_test_` is in every masked key), is replaced by `[redacted]`: a key cut at either end, a
  piece from its middle, a key glued to other text all go. A run that holds the whole key becomes its masked
  form. Account ids (`acct_…`) are left whole: a key embeds its account's id, which is public and named in
  Stripe's answers.
"""
from __future__ import annotations

import re
from typing import overload

RUN = 8  # a run of this many characters of a key is a leak
REDACTED = "[redacted]"

# Anything shaped like a Stripe secret: a prefix, then a tail of secret characters. No word boundary in front:
# a key glued after "%3D", "key=" or a word is still a key.
_PREFIX = r"(?:(?:sk|rk|pk|rkcs)_(?:live|test)_|(?:sk|rk)_org_|whsec_)"
_SECRET_RE = re.compile(rf"({_PREFIX})([A-Za-z0-9_+/=]{{4,}})")
_PUBLIC_PREFIX_RE = re.compile(rf"^{_PREFIX}")
_PREFIX_HINTS = ("_live_", "_test_", "_org_", "whsec_")  # in every prefix above
_ACCOUNT = re.compile(r"(acct_[A-Za-z0-9]+)")
WHOLE = 12  # a tail this long looks like a whole secret: its last 4 stay visible, as in a masked key


def _shape(m: re.Match[str]) -> str:
    prefix, tail = m.group(1), m.group(2)
    return f"{prefix}…{tail[-4:]}" if len(tail) >= WHOLE else f"{prefix}…"


def _public_len(key: str) -> int:
    """How many leading characters of `key` are its public prefix (rk_test_), shown in every masked key."""
    m = _PUBLIC_PREFIX_RE.match(key)
    return m.end() if m else 0


def _mask(key: str) -> str:
    pub = _public_len(key)
    return f"{key[:pub]}…{key[-4:]}" if pub and len(key) - pub >= WHOLE else REDACTED


class Known:
    """One key in hand, ready to be looked for: the runs of it that are a leak, and the few pieces a text must hold
    to hold any run (made once per key: a sweep redacts every answer with its key). Plain lists, searched with
    `in`: no pattern is compiled from a key (the `re` module would keep it in its cache)."""

    __slots__ = ("key", "first", "runs", "_hints")

    def __init__(self, key: str):
        self.key = key
        pub = _public_len(key)
        self.first = max(0, pub - RUN + 1)  # windows from here on hold at least one character beyond the prefix
        self.runs = [key[i:i + RUN] for i in range(self.first, len(key) - RUN + 1)]
        # Any run holds one of the key's 4-character pieces at an offset divisible by 4, or starts inside the
        # public prefix (looked for as it is): none of these in a text, no run is.
        straddling = [key[i:i + RUN] for i in range(self.first, min(pub, len(key) - RUN + 1))]
        pieces = [key[j:j + 4] for j in range(pub + (-pub % 4), len(key) - 3, 4)]
        self._hints = list(dict.fromkeys(straddling + pieces)) if len(key) >= RUN else []

    def __str__(self) -> str:  # (never printed: redact() takes a Known where it takes a key)
        return REDACTED

    __repr__ = __str__

    def find(self, text: str) -> str:
        """`text` with every run of >= RUN characters of the key (its public prefix alone excepted) replaced."""
        if len(text) < RUN or not any(map(text.__contains__, self._hints)):
            return text
        # A piece is there (4 characters can match by chance): is any whole run? (Each test is one C-level search.)
        if not any(map(text.__contains__, self.runs)):
            return text
        return _replace_runs(text, self.key, self.runs, self.first)


def _replace_runs(text: str, key: str, runs: list[str], first: int) -> str:
    windows: dict[str, int] = {}
    for i, w in enumerate(runs, first):
        windows.setdefault(w, i)
    spans: list[list[int]] = []
    for i in range(len(text) - RUN + 1):
        at = windows.get(text[i:i + RUN])
        if at is None:
            continue
        start, end = i, i + RUN
        # a key cut short at its end: take its prefix in front too (only all of it, back to the key's start,
        # never a few characters that merely look alike)
        if 0 < at <= start and text[start - at:start] == key[:at]:
            start = start - at
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    if not spans:
        return text
    out, last = [], 0
    for start, end in spans:
        out.append(text[last:start])
        out.append(_mask(key) if key in text[start:end] else REDACTED)
        last = end
    out.append(text[last:])
    return "".join(out)


@overload
def redact(text: str, *keys: object) -> str: ...
@overload
def redact(text: None, *keys: object) -> None: ...
def redact(text: str | None, *keys: object) -> str | None:
    """`text` with every secret in it masked: any run of >= 8 characters of `keys` (strings, SecretKeys or a
    `Known`; None and empty ones ignored), and anything shaped like a Stripe secret. None and "" come back as
    they are."""
    if not text:
        return text
    # the shape first: a whole key glued to others is masked whole, before a run it shares with another key
    # (the same head, say) could cut it in two and leave a tail that no longer looks like a key
    if any(p in text for p in _PREFIX_HINTS):  # no prefix, no secret's shape (the regex is the slow part)
        text = _SECRET_RE.sub(_shape, text)
    secrets = [k if isinstance(k, Known) else Known(s) for k in keys if k is not None
               for s in [k.key if isinstance(k, Known) else str(k)] if s]
    if not secrets:
        return text
    # Account ids stay: a Stripe key embeds its account's id (sk_test_51H8x… for acct_1H8x…), which is public and
    # which answers name ("on account 'acct_1H8x…'"); only the rest of the text is searched for runs of the key.
    parts = _ACCOUNT.split(text)
    for n in range(0, len(parts), 2):
        for s in secrets:
            parts[n] = s.find(parts[n])
    return "".join(parts)
