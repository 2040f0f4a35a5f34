"""Input rules of the store: the one sentence a refusal gives (StoreInputError), tenant names and their slugs,
and free text.

Tenant names are user input: `TenantName.parse` (core.store.names) is the one gate (non-empty after strip, at most 100
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

from core.store.names import StoreInputError as StoreInputError
from core.store.names import TenantName, store_text
from core.store.names import UnknownTenantError as UnknownTenantError
from core.store.types import utcnow


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

DASHBOARD_ID_RE = re.compile(r"mk_[A-Za-z0-9]{1,61}")  # a key's Dashboard id: fits checks.key_dashboard_id
ACTION_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
OUTCOME_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")


validate_tenant_name = TenantName.parse  # the old name of the one gate (core.store.names.TenantName.parse)


def _slug_char(ch: str) -> bool:
    """Letters, marks (a Devanagari vowel sign is part of its word) and digits stay in a slug."""
    return unicodedata.category(ch)[0] in "LMN"


SLUG_MAX = 100


def full_slug(clean: str) -> str:
    """The slug before any shortening (may be longer than SLUG_MAX: case-folding 'ß' gives 'ss')."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", clean).casefold())
    return re.sub(r"-+", "-", "".join(ch if _slug_char(ch) else "-" for ch in folded)).strip("-")


def legacy_slug(clean: str) -> str:
    """The slug a name longer than SLUG_MAX once folded got before 17.7: cut at 100 (still found by it)."""
    return full_slug(clean)[:SLUG_MAX].strip("-")


def slugify(name: str) -> str:
    """URL-safe identity of a tenant name: 'Acme Café, Inc.' -> 'acme-café-inc', '北京 Foods' -> '北京-foods'.

    NFKC (full-width and compatibility forms become their plain letters), case-folded ('Straße' -> 'strasse'),
    every run of other characters one dash, at most 100 characters: a longer one keeps its first 89 and ends in
    a dash and 10 hex digits of a hash of the whole, so two names that differ in letters past the cut (even
    only because 'ß' became 'ss') never share a slug. slugify(slug) == slug, so a slug names its tenant too. A
    name with no letter or digit at all (e.g. '🔑') gets 'tenant-' plus a short hash.
    """
    clean = TenantName.parse(name)
    slug = full_slug(clean)
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


def look_alike_error(existing_name: str, name: str) -> StoreInputError:
    return StoreInputError(
        f"The name {name!r} looks the same on screen as the existing tenant {existing_name!r} (some letters are "
        f"look-alikes, such as Cyrillic or Greek letters that look Latin); use {existing_name!r} for that tenant, "
        "or a name that reads differently for a new one."
    )


def clash_error(existing_name: str, name: str) -> StoreInputError:
    return StoreInputError(
        f"The name {name!r} is too close to the existing tenant {existing_name!r} (they differ only in "
        f"punctuation or symbols); use {existing_name!r} for that tenant, or a name that differs in letters or "
        "digits for a new one."
    )


def optional_text(value: object, what: str, limit: int) -> str | None:
    return store_text(value, what, limit)


def aware(at: datetime | None) -> datetime:
    if at is None:
        return utcnow()
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)

