"""One rule set for free text (core/text.py) and the tenant name as a value type (core/store/names.py).

The old rules are frozen below, exactly as core/store/record.py wrote them three times before they became one
(`_old_name`, `_old_optional`, `_old_notes`): the new gates must refuse exactly what the old ones refused, and
clean what they accepted to the same text.
"""
from __future__ import annotations

import ast
import re
import unicodedata
from pathlib import Path

import pytest

from core.engine.redact import redact
from core.store.names import StoreInputError, TenantName, store_text
from core.store.tenants import _clean_notes
from core.text import clean_text, printable, strip_controls

ROOT = Path(__file__).resolve().parents[2]

# --- the old rules, frozen (core/store/record.py before typed edges) --------------------------------------
_O_SECRET_RE = re.compile(
    r"\b(?:(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{12,}|whsec_[A-Za-z0-9+/=]{16,}|"
    r"(?:sk|rk)_(?:org|live|test)_[A-Za-z0-9_]{20,})"
)
_O_INVISIBLE = frozenset(
    "\u00ad\u061c\u180e\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
)


class _Refused(Exception):
    pass


def _o_control(s):
    return any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in s)


def _o_bad(s):
    return any("\ud800" <= c <= "\udfff" for c in s) or any(c in _O_INVISIBLE for c in s)


def _old_name(name):
    if not isinstance(name, str):
        raise _Refused
    clean = name.strip()
    if not clean or len(clean) > 100 or _o_control(clean) or _o_bad(clean) or _O_SECRET_RE.search(clean):
        raise _Refused
    return clean


def _old_optional(value, limit):
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Refused
    clean = value.strip()
    if not clean:
        return None
    if len(clean) > limit or _o_control(clean) or _o_bad(clean) or _O_SECRET_RE.search(clean):
        raise _Refused
    return clean


def _old_notes(notes):
    if notes is not None and not isinstance(notes, str):
        raise _Refused
    n = (notes or "").strip()
    if len(n) > 5000 or any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in n) or _o_bad(n):
        raise _Refused
    return redact(n) or None  # (the redaction step is core.engine.redact's, unchanged)


CORPUS: list[object] = [
    None, 3, b"Acme", ["Acme"], "", " ", "\t", "Acme", "  Acme Coffee  ", "Acme\nCoffee", "Acme\tCoffee", "Acme\x00",
    "Acme\x7f", "Acme\x85", "Acme\u2028", "Acme\u2029", "Acme\u200b", "Acme\u202etxt.exe", "A\u200dB", "A\u200cB",
    "\ufeffAcme", "Acme\u00ad", "Acme\udcff", "北京 Foods", "Straße", "🔑", "👩‍💻 Team", "x" * 100, "x" * 101,
    " " + "x" * 100 + " ", "x" * 200, "x" * 201, "rk_live_" + "a" * 30, "Acme rk_test_" + "B" * 12,
    "sk_live_short", "whsec_" + "A" * 16, "sk_org_" + "a_" * 12, "Acme\r\nline", "\u3000Acme\u3000", "a" * 5000,
    "a" * 5001, "line one\nline two\ttab", "Ярослав", "ACME, INC", "O'Brien & Sons <b>",
]


@pytest.mark.parametrize("text", CORPUS, ids=range(len(CORPUS)))
def test_tenant_name_refuses_what_the_old_rules_refused(text):
    try:
        old = _old_name(text)
    except _Refused:
        with pytest.raises(StoreInputError):
            TenantName.parse(text)
        return
    new = TenantName.parse(text)
    assert type(new) is TenantName and new == old


@pytest.mark.parametrize("text", CORPUS, ids=range(len(CORPUS)))
def test_store_text_and_notes_refuse_what_the_old_rules_refused(text):
    for limit in (200, 100):
        try:
            old = _old_optional(text, limit)
        except _Refused:
            with pytest.raises(StoreInputError):
                store_text(text, "contact", limit)
        else:
            assert store_text(text, "contact", limit) == old
    try:
        old_n = _old_notes(text)
    except _Refused:
        with pytest.raises(StoreInputError):
            _clean_notes(text)
    else:
        assert _clean_notes(text) == old_n


def test_a_refusal_is_one_sentence_naming_the_problem_and_the_fix():
    for bad, words in [("", "empty"), ("x" * 101, "101 characters"), ("A\nB", "control character"),
                       ("A\u202eB", "U+202E"), (7, "must be text"), ("rk_live_" + "a" * 30, "Stripe key")]:
        with pytest.raises(StoreInputError) as e:
            TenantName.parse(bad)
        msg = str(e.value)
        assert msg.startswith("The tenant name ") and words in msg and msg.endswith(".") and msg.count(". ") == 0
        assert "\n" not in msg and "Traceback" not in msg


def test_tenant_name_is_parsed_once():
    name = TenantName.parse("  Acme Coffee ")
    before = TenantName.parses
    assert TenantName.parse(name) is name  # a TenantName passes through: no second check
    assert TenantName.optional(name) is name and TenantName.optional(None) is None
    assert TenantName.parses == before
    assert isinstance(name, str) and name == "Acme Coffee" and f"{name!r}" == "'Acme Coffee'"
    with pytest.raises(StoreInputError):
        TenantName.optional("")  # an empty name is refused, not taken as "no tenant"


def test_clean_text_raises_the_error_it_is_given():
    with pytest.raises(KeyError):
        clean_text("a\x00", what="x", limit=10, error=KeyError)
    with pytest.raises(ValueError, match="The notes are 6 characters long; shorten them to at most 5."):
        clean_text("abcdef", what="notes", limit=5, plural=True)
    assert clean_text("  a\nb ", what="notes", limit=5, multiline=True) == "a\nb"
    assert strip_controls("a\x00b\x1b[31mc\x7f") == "ab[31mc"
    assert printable("a\nb\u202ec d", 4) == "abc "


# --- one implementation: the rules are written only in core/text.py --------------------------------------
_PRODUCT = ["core", "dashboard", "app_pages", "app.py", "sandbox"]
# Where unicodedata may still be used: core/text.py (the rules), the key intake (its own normalisation of a
# paste: core/engine/keys.py), and the name folding that compares names (slug, same_name, look-alikes, the
# check page's similar names), which cleans nothing. Migrations freeze their own copies on purpose.
_UNICODEDATA_OK = {"core/text.py", "core/engine/keys.py", "core/store/rules.py", "core/store/confusable.py",
                   "core/ui/check_view.py"}


def _product_files():
    for entry in _PRODUCT:
        p = ROOT / entry
        yield from ([p] if p.is_file() else sorted(p.rglob("*.py")))


def test_clean_text_is_the_only_implementation():
    offenders = []
    for path in _product_files():
        rel = path.relative_to(ROOT).as_posix()
        if "/migrations/" in rel:
            continue
        src = path.read_text(encoding="utf-8")
        tree = ast.parse(src)
        for node in ast.walk(tree):
            # control-character tests and the invisible-character set: only core/text.py
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    isinstance(node.func.value, ast.Name) and node.func.value.id == "unicodedata":
                if rel not in _UNICODEDATA_OK:
                    offenders.append(f"{rel}:{node.lineno} unicodedata.{node.func.attr}")
            if isinstance(node, ast.Attribute) and node.attr == "isprintable" and rel != "core/text.py":
                offenders.append(f"{rel}:{node.lineno} isprintable")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and rel != "core/text.py" and (
                    "\u202e" in node.value and "\u200b" in node.value or r"\x00-\x08" in node.value):
                offenders.append(f"{rel}:{node.lineno} a copy of the control or invisible character set")
        if rel != "core/text.py" and re.search(r"\bdef (?:_has_control|_invisible|_not_utf8)\b", src):
            offenders.append(f"{rel}: a private copy of a text rule")
    assert offenders == []


def _code_strings(path: Path) -> str:
    """Every string literal of a module but its docstrings: the sentences its code can raise."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return "\n".join(n.value for n in ast.walk(tree)
                     if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs)


def test_the_store_writes_its_text_rules_once():
    """core/store/record.py had the same rules three times (name, optional text, notes): now none; its names
    module applies core.text's one set."""
    for module in sorted(str(p.relative_to(ROOT)) for p in (ROOT / "core" / "store").glob("*.py")):
        code = _code_strings(ROOT / module)
        assert "control character" not in code and "invisible or text-direction" not in code, module
        assert "not valid UTF-8" not in code, module
