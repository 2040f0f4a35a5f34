"""The store's input rules: the tenant name as a value type, and free text that is kept.

    name = TenantName.parse("  Acme Coffee ")   # TenantName('Acme Coffee'), or StoreInputError (one sentence)
    TenantName.parse(name) is name               # parsing a TenantName again costs nothing and checks nothing
    store_text(value, "contact", 200)            # core.text.clean_text with the store's error and the key rule

A tenant name is parsed once, where it comes in (the dashboard's field, the CLI's --tenant, a recheck line, a key
source), and travels as a `TenantName`: a `str` whose only constructor applies the one rule set (core.text's
clean_text: non-empty after strip, at most NAME_MAX characters, no control, invisible or text-direction character,
valid UTF-8; and, the store's own rule, nothing shaped like a Stripe key). The store's functions still take a plain
`str` from scripts and tests, and parse it there (the edge for that caller); a `TenantName` passes through.
"""
from __future__ import annotations

import re
from typing import ClassVar

from core.store.models import NAME_MAX
from core.text import clean_text

__all__ = ["SECRET_RE", "StoreInputError", "TenantName", "UnknownTenantError", "store_text"]


class StoreInputError(ValueError):
    """Input the store refuses; the message is one sentence naming the problem and the fix."""


class UnknownTenantError(StoreInputError):
    """The named tenant does not exist."""


# Anything shaped like a whole Stripe secret: prefix, mode, then a long random tail.
SECRET_RE = re.compile(
    r"\b(?:(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{12,}|whsec_[A-Za-z0-9+/=]{16,}|"
    r"(?:sk|rk)_(?:org|live|test)_[A-Za-z0-9_]{20,})"
)


def store_text(value: object, what: str, limit: int, *, required: bool = False) -> str | None:
    """Free text the store keeps (a contact, a user name, ...): core.text.clean_text, raising StoreInputError, and
    refused when it holds something shaped like a Stripe key (keys are never stored)."""
    clean = clean_text(value, what=what, limit=limit, required=required, error=StoreInputError)
    if clean is not None and SECRET_RE.search(clean):
        raise StoreInputError(f"The {what} contains what looks like a Stripe key; remove it (keys are never stored).")
    return clean


class TenantName(str):
    """A tenant's name as the store keeps it: stripped and checked. Made only by `TenantName.parse`."""

    __slots__ = ()
    parses: ClassVar[int] = 0  # how many texts were checked (tests count them: a name is parsed once per edge)

    @classmethod
    def parse(cls, text: object) -> TenantName:
        """`text` as a TenantName, or StoreInputError (one sentence naming the problem and the fix). A TenantName
        is handed back as it is: it was checked when it was made."""
        if type(text) is cls:
            return text
        TenantName.parses += 1
        clean = clean_text(text, what="tenant name", limit=NAME_MAX, required=True, error=StoreInputError)
        assert clean is not None  # required: empty text was refused
        if SECRET_RE.search(clean):  # a key pasted into the tenant box must not become a stored name
            raise StoreInputError(
                "The tenant name contains what looks like a Stripe key; type the tenant's name and paste the key "
                "only where the key goes."
            )
        return str.__new__(cls, clean)

    @classmethod
    def optional(cls, text: object) -> TenantName | None:
        """None for None, else `parse(text)` (an empty name is refused, not taken as no tenant)."""
        return None if text is None else cls.parse(text)
