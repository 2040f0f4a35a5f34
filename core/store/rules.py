"""Input rules of the store: the one sentence a refusal gives (StoreInputError), tenant names and their slugs,
and free text.

Tenant names are user input: `validate_tenant_name` is the one gate (non-empty after strip, at most 100
characters, no control, invisible or text-direction characters). The tenant's slug is derived from its
name (`slugify`: Unicode letters and digits kept, NFKC and case-folded, everything else a dash), so
"北京 Foods", "上海 Foods" and "Foods" are three tenants, and "Acme Inc." and "ACME  inc." (the same name in
another case or spacing) are one. Two names that differ in more than that but still share a slug ("Acme Inc."
and "ACME, INC") are never merged: creating the second is refused with a sentence naming the first (`same_name`,
core.store.tenants.name_clash); a look-up by name or slug still finds the tenant. Free text that reaches the
database (problem, notes, audit detail) passes through `redact`, which masks anything shaped like a Stripe secret,
and a masked key that still looks like a whole key is refused.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

from core.store.models import (
    NAME_MAX,
)
from core.store.types import utcnow


class StoreInputError(ValueError):
    """Input the store refuses; the message is one sentence naming the problem and the fix."""


class UnknownTenantError(StoreInputError):
    """The named tenant does not exist."""


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

# Anything shaped like a whole Stripe secret: prefix, mode, then a long random tail.
_SECRET_RE = re.compile(
    r"\b(?:(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{12,}|whsec_[A-Za-z0-9+/=]{16,}|"
    r"(?:sk|rk)_(?:org|live|test)_[A-Za-z0-9_]{20,})"
)
_DASHBOARD_ID_RE = re.compile(r"mk_[A-Za-z0-9]{1,61}")  # a key's Dashboard id: fits checks.key_dashboard_id
_ACTION_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_OUTCOME_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")


def _has_control(s: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in s)


# Invisible characters and text-direction controls: a name holding them looks like another name (U+202E
# turns "Acme\u202etxt.exe" around on screen; "Acme\u200b" shows as "Acme"). ZWJ/ZWNJ (U+200C/D) stay allowed:
# emoji sequences and several scripts need them.
_INVISIBLE = frozenset(
    "\u00ad\u061c\u180e\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
)


def _not_utf8(s: str) -> bool:
    """Lone surrogates: what Python makes of bytes that are not UTF-8 (argv, stdin); no database stores them."""
    return any("\ud800" <= c <= "\udfff" for c in s)


def _invisible(s: str) -> str | None:
    """The first invisible or text-direction character in `s`, as U+XXXX, or None."""
    ch = next((c for c in s if c in _INVISIBLE), None)
    return None if ch is None else f"U+{ord(ch):04X}"


def validate_tenant_name(name: object) -> str:
    """The tenant name stripped of surrounding spaces, or StoreInputError."""
    if not isinstance(name, str):
        raise StoreInputError("The tenant name must be text; type the tenant's name.")
    clean = name.strip()
    if not clean:
        raise StoreInputError("The tenant name is empty; type the tenant's name.")
    if len(clean) > NAME_MAX:
        raise StoreInputError(
            f"The tenant name is {len(clean)} characters long; shorten it to at most {NAME_MAX}."
        )
    if _has_control(clean):
        raise StoreInputError(
            "The tenant name contains a control character (such as a newline or tab); remove it."
        )
    if _not_utf8(clean):
        raise StoreInputError("The tenant name holds bytes that are not valid UTF-8 text; retype it.")
    bad = _invisible(clean)
    if bad:
        raise StoreInputError(f"The tenant name contains an invisible or text-direction character ({bad}); remove it.")
    if _SECRET_RE.search(clean):  # a key pasted into the tenant box must not become a stored name
        raise StoreInputError(
            "The tenant name contains what looks like a Stripe key; type the tenant's name and paste the key "
            "only where the key goes."
        )
    return clean


def _slug_char(ch: str) -> bool:
    """Letters, marks (a Devanagari vowel sign is part of its word) and digits stay in a slug."""
    return unicodedata.category(ch)[0] in "LMN"


SLUG_MAX = 100


def _full_slug(clean: str) -> str:
    """The slug before any shortening (may be longer than SLUG_MAX: case-folding 'ß' gives 'ss')."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", clean).casefold())
    return re.sub(r"-+", "-", "".join(ch if _slug_char(ch) else "-" for ch in folded)).strip("-")


def _legacy_slug(clean: str) -> str:
    """The slug a name longer than SLUG_MAX once folded got before 17.7: cut at 100 (still found by it)."""
    return _full_slug(clean)[:SLUG_MAX].strip("-")


def slugify(name: str) -> str:
    """URL-safe identity of a tenant name: 'Acme Café, Inc.' -> 'acme-café-inc', '北京 Foods' -> '北京-foods'.

    NFKC (full-width and compatibility forms become their plain letters), case-folded ('Straße' -> 'strasse'),
    every run of other characters one dash, at most 100 characters: a longer one keeps its first 89 and ends in
    a dash and 10 hex digits of a hash of the whole, so two names that differ in letters past the cut (even
    only because 'ß' became 'ss') never share a slug. slugify(slug) == slug, so a slug names its tenant too. A
    name with no letter or digit at all (e.g. '🔑') gets 'tenant-' plus a short hash.
    """
    clean = validate_tenant_name(name)
    slug = _full_slug(clean)
    if len(slug) > SLUG_MAX:
        slug = slug[:SLUG_MAX - 11].rstrip("-") + "-" + hashlib.sha256(slug.encode()).hexdigest()[:10]
    if not slug:
        slug = "tenant-" + hashlib.sha256(clean.casefold().encode()).hexdigest()[:10]
    return slug


def same_name(a: str, b: str) -> bool:
    """Two spellings of one name: equal once NFKC-normalised, case-folded and with spaces collapsed."""

    def norm(s: str) -> str:
        return " ".join(unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", s).casefold()).split())

    return norm(a) == norm(b)


def _look_alike_clash(existing_name: str, name: str) -> StoreInputError:
    return StoreInputError(
        f"The name {name!r} looks the same on screen as the existing tenant {existing_name!r} (some letters are "
        f"look-alikes, such as Cyrillic or Greek letters that look Latin); use {existing_name!r} for that tenant, "
        "or a name that reads differently for a new one."
    )


def _clash(existing_name: str, name: str) -> StoreInputError:
    return StoreInputError(
        f"The name {name!r} is too close to the existing tenant {existing_name!r} (they differ only in "
        f"punctuation or symbols); use {existing_name!r} for that tenant, or a name that differs in letters or "
        "digits for a new one."
    )


def _optional_text(value: object, what: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise StoreInputError(f"The {what} must be text; give it as text or leave it empty.")
    clean = value.strip()
    if not clean:
        return None
    if len(clean) > limit:
        raise StoreInputError(f"The {what} is {len(clean)} characters long; shorten it to at most {limit}.")
    if _has_control(clean):
        raise StoreInputError(f"The {what} contains a control character (such as a newline); remove it.")
    if _not_utf8(clean):
        raise StoreInputError(f"The {what} holds bytes that are not valid UTF-8 text; retype it.")
    bad = _invisible(clean)
    if bad:
        raise StoreInputError(f"The {what} contains an invisible or text-direction character ({bad}); remove it.")
    if _SECRET_RE.search(clean):
        raise StoreInputError(f"The {what} contains what looks like a Stripe key; remove it (keys are never stored).")
    return clean


def _aware(at: datetime | None) -> datetime:
    if at is None:
        return utcnow()
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)

