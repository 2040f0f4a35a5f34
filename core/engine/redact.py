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


def _known(text: str, key: str) -> str:
    """`text` with every run of >= RUN characters of `key` (its public prefix alone excepted) replaced."""
    if len(key) < RUN or len(text) < RUN:
        return text
    pub = _public_len(key)
    first = max(0, pub - RUN + 1)  # windows from here on hold at least one character beyond the public prefix
    # The usual case, cheaply: a run starting inside the public prefix is looked for as it is (a few); any later
    # run holds one of the key's 4-character pieces at an offset divisible by 4. None in the text: no run is.
    straddling = [key[i:i + RUN] for i in range(first, min(pub, len(key) - RUN + 1))]
    pieces = [key[j:j + 4] for j in range(pub + (-pub % 4), len(key) - 3, 4)]
    if not any(w in text for w in straddling) and not any(p in text for p in pieces):
        return text
    # A piece is there (4 characters can match by chance): is any whole run? (Each test is one C-level search.)
    runs = [key[i:i + RUN] for i in range(first, len(key) - RUN + 1)]
    if not any(w in text for w in runs):
        return text
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
    """`text` with every secret in it masked: any run of >= 8 characters of `keys` (strings or SecretKeys;
    None and empty ones ignored), and anything shaped like a Stripe secret. None and "" come back as they are."""
    if not text:
        return text
    # the shape first: a whole key glued to others is masked whole, before a run it shares with another key
    # (the same head, say) could cut it in two and leave a tail that no longer looks like a key
    if any(p in text for p in _PREFIX_HINTS):  # no prefix, no secret's shape (the regex is the slow part)
        text = _SECRET_RE.sub(_shape, text)
    secrets = [s for s in (str(k) for k in keys if k is not None) if s]
    if not secrets:
        return text
    # Account ids stay: a Stripe key embeds its account's id (sk_test_51H8x… for acct_1H8x…), which is public and
    # which answers name ("on account 'acct_1H8x…'"); only the rest of the text is searched for runs of the key.
    parts = _ACCOUNT.split(text)
    for n in range(0, len(parts), 2):
        for s in secrets:
            parts[n] = _known(parts[n], s)
    return "".join(parts)
