"""The data files: the permission catalogue (data/catalogue.toml) and Pointai's profile (data/requirements.toml).

Loads the real files through core.engine.catalogue, checks them against the onboarding guide itself (parsed from its
markdown), against the REST paths in the installed stripe-python, and checks that the loader refuses bad
entries with one clear sentence.
"""
from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path

import pytest

from core.config import ROOT
from core.engine.catalogue import (
    CATALOGUE_PATH,
    PROBE_ID,
    PROBE_PARAM,
    REQUIREMENTS_PATH,
    Catalogue,
    CatalogueError,
    parse_catalogue,
    parse_profile,
)
from core.engine.result import LEVELS

GUIDE_NAME = "creating-a-stripe-api-key.md"


def _checkout_roots() -> list[Path]:
    """This checkout's root, and for a `git worktree` also the main checkout's (where shared/ sits beside it)."""
    roots = [ROOT]
    try:
        git = ROOT / ".git"
        if git.is_file():  # a worktree: "gitdir: <main>/.git/worktrees/<name>"
            gitdir = Path(git.read_text().split("gitdir:", 1)[1].strip())
            roots.append((gitdir / (gitdir / "commondir").read_text().strip()).resolve().parent)
    except (OSError, IndexError):
        pass
    return roots


GUIDE_CANDIDATES = [
    Path(os.environ["KEYHEALTH_GUIDE"]) if os.environ.get("KEYHEALTH_GUIDE") else None,
    ROOT / "docs" / GUIDE_NAME,
    ROOT / "data" / GUIDE_NAME,
    # the project's shared/ folder lies beside the repository: ../shared/seed/
    *(root.parent / "shared" / "seed" / GUIDE_NAME for root in _checkout_roots()),
]
DASHBOARD_CATEGORIES = [
    "Core", "Checkout", "Billing", "Connect", "Orders", "Issuing", "Terminal", "Tax", "Identity",
    "Reporting", "Radar", "Webhooks", "Payment Links", "Climate", "Stripe CLI",
]
# Guide items that are no Stripe permission: kept, with a note.
NOT_PERMISSIONS = ["Confirmation token intents", "Discounts", "Order items"]
# Guide items asking for a level Stripe does not offer: mapped, capped by the loader, and explained.
CAPPED = {"Balance": "read", "Balance transaction sources": "read"}
# A POST without an id must never reach these collections: an empty or plausible create makes an object.
CREATING_COLLECTIONS = {
    "/v1/customers", "/v1/accounts", "/v1/setup_intents", "/v1/payment_intents", "/v1/charges",
    "/v1/terminal/configurations", "/v1/payment_method_configurations", "/v1/tax/settings", "/v1/payouts",
    "/v1/transfers", "/v1/refunds", "/v1/climate/orders", "/v1/invoices", "/v1/subscriptions",
}
# ...except where the issue that added it showed the unknown parameter alone is safe and the only probe:
# POST /v1/accounts with only keyhealth_probe answers 403 (no Write) or 400 parameter_unknown (Write).
UNKNOWN_PARAM_ONLY = {"/v1/accounts"}


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def raw_catalogue() -> dict:
    with open(CATALOGUE_PATH, "rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def raw_profile() -> dict:
    with open(REQUIREMENTS_PATH, "rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def catalogue(raw_catalogue) -> Catalogue:
    return parse_catalogue(raw_catalogue)


@pytest.fixture(scope="module")
def profile(raw_profile, catalogue):
    return parse_profile(raw_profile, catalogue)


def _guide_path() -> Path:
    for p in GUIDE_CANDIDATES:
        if p is not None and p.is_file():
            return p
    pytest.skip(f"the onboarding guide {GUIDE_NAME} is not on this machine (set KEYHEALTH_GUIDE to its path)")


def parse_guide_step4(text: str) -> list[tuple[str, str, str]]:
    """(accordion title, level asked, bullet) for every bullet under '## Step 4', in the guide's order."""
    start = text.index("## Step 4")
    end = text.index("## Step 5", start)
    out: list[tuple[str, str, str]] = []
    section = level = None
    for line in text[start:end].splitlines():
        m = re.search(r'<Accordion title="([^"]+)"', line)
        if m:
            section, level = m.group(1), None
            continue
        m = re.search(r"Set permission to \*\*(\w+)\*\*", line)
        if m:
            level = m.group(1).lower()
            continue
        m = re.match(r"\s*[*-]\s+(.+?)\s*$", line)
        if m and section:
            out.append((section, level, m.group(1)))
    return out


def _stripe_paths() -> list[re.Pattern]:
    """Every REST path template in the installed stripe-python, as a regex ({anything} -> one segment)."""
    import stripe

    pkg = Path(stripe.__file__).parent
    templates = set()
    for f in pkg.rglob("*.py"):
        templates.update(re.findall(r'"(/v[12]/[a-z0-9_/{}]+)"', f.read_text(encoding="utf-8")))
    return [re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(t)) + "$") for t in templates]


# ------------------------------------------------------------------------------------------- catalogue
def test_catalogue_is_big_enough_and_unique(raw_catalogue, catalogue):
    names = [e["scope"] for e in raw_catalogue["scope"]]
    assert len(names) >= 60, f"only {len(names)} scopes"
    assert len(names) == len(set(names)), [n for n in names if names.count(n) > 1]
    assert len(catalogue.scopes) == len(names)
    # A scope is the name after rak_, without the level.
    for n in names:
        assert re.fullmatch(r"[a-z][a-z0-9_]*[a-z0-9]", n), n
        assert not n.startswith("rak_") and not n.endswith(("_read", "_write")), n


def test_categories_are_the_dashboards(catalogue):
    cats = catalogue.categories()
    for c in DASHBOARD_CATEGORIES:
        assert c in cats, f"category {c!r} missing; have {cats}"
    assert cats[0] == "Core"
    # Each category is one contiguous block, so the grid can group by it in file order.
    seq = [s.category for s in catalogue.scopes]
    blocks = [c for i, c in enumerate(seq) if i == 0 or seq[i - 1] != c]
    assert len(blocks) == len(set(blocks)), blocks
    # Labels are unique within a category (Disputes and Tokens exist both in Core and in Issuing).
    pairs = [(s.category, s.label) for s in catalogue.scopes]
    assert len(pairs) == len(set(pairs))


def test_every_probe_is_side_effect_free(catalogue):
    for s in catalogue.scopes:
        for level, p in (("read", s.read), ("write", s.write)):
            if p is None:
                continue
            where = f"{s.scope} {level}: {p.method} {p.path}"
            assert p.method in ("GET", "POST"), f"{where}: no DELETE probes"
            # {id} is the only placeholder; the probe fills it with a made-up id (never a made-up account:
            # Stripe answers /v1/accounts/acct_<made-up> with 403 account_invalid whatever the key may do).
            assert re.sub(r"\{id\}", "", p.path).count("{") == 0, where
            assert not p.path.startswith("/v1/accounts/"), where
            assert PROBE_ID not in p.path
            assert p.base in ("api", "files"), where
            if level == "read":
                assert p.method == "GET", where
                assert set(p.params) <= {"limit"}, where
            else:
                assert p.method == "POST", where
                assert "{id}" in p.path or PROBE_PARAM in p.params, where
                if "{id}" not in p.path:
                    # A collection POST carries the unknown parameter and nothing that could create.
                    assert set(p.params) == {PROBE_PARAM}, where
                    assert p.path not in CREATING_COLLECTIONS or p.path in UNKNOWN_PARAM_ONLY, where
                else:
                    assert not p.params, where
            assert p.concrete_path().count(PROBE_ID) == p.path.count("{id}")


def test_probe_paths_are_stripes_real_paths(catalogue):
    """Every probe path is a route stripe-python knows, except APIs gone for most accounts (`absent_api`: legacy
    Orders, SKUs and usage records, private-preview balance transfers), whose 404 the engine reads as not applicable."""
    patterns = _stripe_paths()
    assert len(patterns) > 300  # the scan found stripe-python's services
    unknown = []
    for s in catalogue.scopes:
        for p in (s.read, s.write):
            if p is None:
                continue
            concrete = p.concrete_path()
            if not any(rx.match(concrete) for rx in patterns) and not s.absent_api:
                unknown.append(f"{s.scope}: {p.method} {p.path}")
    assert unknown == [], unknown
    assert {s.scope for s in catalogue.scopes if s.absent_api} == {"order", "sku", "balance_transfer", "usage_record"}


def test_spot_checks_of_scope_names(catalogue):
    plan = catalogue.get("plan")
    assert (plan.label, plan.category, plan.levels) == ("Prices", "Billing", ("read", "write"))
    assert plan.read.path == "/v1/prices/{id}" and plan.permission("write") == "rak_plan_write"
    assert "price" not in catalogue and "payment_link" not in catalogue
    pl = catalogue.get("payment_links")
    assert (pl.category, pl.permission("read")) == ("Payment Links", "rak_payment_links_read")
    cs = catalogue.get("checkout_session")
    assert (cs.category, cs.read.path) == ("Checkout", "/v1/checkout/sessions/{id}")
    assert catalogue.get("billing_clock").label == "Test clocks"
    # Read-only and write-only scopes.
    assert catalogue.get("balance").levels == ("read",)
    assert catalogue.get("balance").write is None
    bts = catalogue.get("balance_transaction_source")
    assert bts.levels == ("read",) and bts.read.path.startswith("/v1/balance_transactions")
    assert catalogue.get("account_link").levels == ("write",) and catalogue.get("account_link").read is None
    assert catalogue.get("confirmation_token").levels == ("read",)
    # Confirmation tokens (client) offers Read too (issue 20), with no endpoint of its own: not checkable
    ctc = catalogue.get("confirmation_token_client")
    assert ctc.levels == ("read", "write") and ctc.unchecked_levels == ("read",) and ctc.read is None
    assert catalogue.get("connected_account").levels == ("read", "write")
    assert catalogue.get("connected_account").read.path == "/v1/accounts"
    assert catalogue.get("connected_account").read.params == {"limit": 1}
    assert catalogue.get("connected_account").write.params == {PROBE_PARAM: "1"}
    # SKUs: only Write can be checked; Read is offered but listed as unchecked, with the reason.
    sku = catalogue.get("sku")
    assert sku.levels == ("read", "write") and sku.unchecked_levels == ("read",) and sku.read is None
    # Files are uploaded to files.stripe.com.
    f = catalogue.get("file")
    assert (f.write.base, f.write.path, f.read.base) == ("files", "/v1/files", "api")
    assert catalogue.get("top_up").read.path == "/v1/topups/{id}"


def test_implied_permissions_are_offered(catalogue):
    t = catalogue.get("transfer")
    assert set(t.implies) == {"payout_read"}  # Stripe's reference: Transfers implies Payouts *Read* only
    assert "payment_intent_read" in catalogue.get("checkout_session").implies
    for s in catalogue.scopes:
        for perm in s.implies:
            scope, level = perm.rsplit("_", 1)
            assert level in catalogue.get(scope).levels, f"{s.scope} implies {perm}"


def test_to_json_shape(catalogue):
    data = catalogue.to_json()
    json.dumps(data)  # serialisable as-is
    assert [d["scope"] for d in data] == [s.scope for s in catalogue.scopes]
    n_probes = 0
    for d, s in zip(data, catalogue.scopes, strict=True):
        assert {"scope", "label", "category", "levels", "note", "probes", "provenance"} <= set(d)
        assert [p["level"] for p in d["probes"]] == [lv for lv in ("read", "write") if lv in s.checked_levels]
        for p in d["probes"]:
            n_probes += 1
            assert {"scope", "level", "method", "path"} <= set(p) <= {"scope", "level", "method", "path", "params",
                "base", "api_version", "provenance"}
            assert p["scope"] == s.scope
            if p.get("base") is not None:
                assert p["base"] == "files"
    assert n_probes == sum(len(s.checked_levels) for s in catalogue.scopes)
    upload = next(p for d in data if d["scope"] == "file" for p in d["probes"] if p["level"] == "write")
    assert upload == {"scope": "file", "level": "write", "method": "POST", "path": "/v1/files",
                      "params": {PROBE_PARAM: "1"}, "base": "files"}


# --------------------------------------------------------------------------------------------- profile
def test_profile_header(raw_profile, profile):
    assert profile.name == "Pointai onboarding"
    assert profile.key_name == "API key for Pointai"
    assert raw_profile["source"] == GUIDE_NAME


def test_every_guide_item_is_in_the_profile_in_order(profile):
    bullets = parse_guide_step4(_guide_path().read_text(encoding="utf-8"))
    assert len(bullets) >= 30, bullets  # the parser found the accordions
    expected = []
    for section, level, guide in bullets:
        if guide.lower().startswith("and any other"):
            continue  # the catch-all: every scope no item names is required None
        assert level in ("write", "read", "none"), (section, guide)
        expected.append((section, guide, level))
    got = [(i.section, i.guide, i.level) for i in profile.items]
    assert got == expected


def test_not_a_permission_items_are_kept_and_explained(profile, catalogue):
    by_guide = {i.guide: i for i in profile.items}
    for g in NOT_PERMISSIONS:
        item = by_guide[g]
        assert item.scopes == (), g
        assert item.note and len(item.note) > 30, g
        assert item.category in catalogue.categories(), g
    assert [i.guide for i in profile.unmapped()] == NOT_PERMISSIONS
    assert "promotion" in by_guide["Discounts"].note.lower() and "Customers Write" in by_guide["Discounts"].note
    # Orders, SKUs and Balance Transfers are real Dashboard rows, checked as the guide asks.
    for g, scope in (("Orders", "order"), ("SKUs", "sku"), ("Balance Transfers", "balance_transfer")):
        assert by_guide[g].scopes == (scope,) and profile.required(catalogue.get(scope))[0] == "write", g


def test_levels_stripe_does_not_offer_are_capped_and_explained(profile, catalogue):
    by_guide = {i.guide: i for i in profile.items}
    for g, level in CAPPED.items():
        item = by_guide[g]
        assert item.level == "write" and item.note, g
        (scope,) = item.scopes
        assert profile.required(catalogue.get(scope)) == (level, item)
    assert profile.required(catalogue.get("account_link"))[0] == "write"
    # The guide's "Accounts: Write" is checked as Write: Stripe offers it.
    assert profile.required(catalogue.get("connected_account")) == ("write", by_guide["Accounts"])
    ct = by_guide["Confirmation tokens"]
    assert ct.scopes == ("confirmation_token", "confirmation_token_client") and ct.note
    assert profile.required(catalogue.get("confirmation_token"))[0] == "read"
    assert profile.required(catalogue.get("confirmation_token_client"))[0] == "write"


def test_mapping_spot_checks(profile, catalogue):
    by_guide = {i.guide: i for i in profile.items}
    assert by_guide["Plans"].scopes == by_guide["Prices"].scopes == ("plan",)
    assert by_guide["Sessions"].scopes == by_guide["Line items"].scopes == ("checkout_session",)
    assert by_guide["Payment links"].scopes == ("payment_links",)
    assert by_guide["Test clocks"].scopes == ("billing_clock",)
    assert by_guide["Accounts"].scopes == ("connected_account",)
    for g in ("Payment Methods", "Customers", "Disputes", "Files", "Webhooks"):
        assert by_guide[g].level == "none" and by_guide[g].section == "All Other Resources"
    assert profile.required(catalogue.get("webhook"))[0] == "none"
    # Not named by the guide: required None implicitly.
    assert profile.required(catalogue.get("payment_intent")) == ("none", None)
    assert profile.required(catalogue.get("promotion_code")) == ("none", None)
    # What the guide requires above None, per scope.
    needed = {s.scope: profile.required(s)[0] for s in catalogue.scopes if profile.required(s)[0] != "none"}
    assert needed == {
        "apple_pay_domain": "write", "balance": "read", "balance_transaction_source": "read",
        "billing_clock": "write", "charge": "write", "confirmation_token": "read",
        "confirmation_token_client": "write", "product": "write", "checkout_session": "write",
        "coupon": "write", "invoice": "write", "plan": "write", "subscription": "write",
        "connected_account": "write", "account_link": "write", "application_fee": "write",
        "transfer": "write", "payment_links": "write", "order": "write", "sku": "write", "balance_transfer": "write",
    }
    for item in profile.items:
        assert item.level in LEVELS


# ------------------------------------------------------------------------------------- loader refusals
def _one(**entry) -> dict:
    base = {"scope": "charge", "label": "Charges", "category": "Core", "levels": ["read", "write"],
            "read": {"method": "GET", "path": "/v1/charges/{id}"},
            "write": {"method": "POST", "path": "/v1/charges/{id}"}}
    base.update(entry)
    return {"scope": [{k: v for k, v in base.items() if v is not None}]}


def _refused(parse, data, *args) -> str:
    with pytest.raises(CatalogueError) as e:
        parse(data, *args)
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg and msg.endswith(".")
    return msg


def test_the_good_snippet_loads():
    cat = parse_catalogue(_one())
    assert cat.get("charge").permission("read") == "rak_charge_read"


@pytest.mark.parametrize(
    "snippet, words",
    [
        # A create-capable POST: no made-up id and no unknown parameter.
        (('[[scope]]\nscope = "customer"\nlabel = "Customers"\ncategory = "Core"\nlevels = ["read", "write"]\n'
         'read = { method = "GET", path = "/v1/customers/{id}" }\n'
         'write = { method = "POST", path = "/v1/customers" }\n'),
         ["customer", "made-up id", PROBE_PARAM, "never create"]),
        (('[[scope]]\nscope = "account_link"\nlabel = "Account links"\ncategory = "Connect"\nlevels = ["write"]\n'
         'write = { method = "POST", path = "/v1/account_links", params = { type = "account_onboarding" } }\n'),
         ["account_link", "made-up id"]),
        # Read offered but no read probe.
        (('[[scope]]\nscope = "balance"\nlabel = "Balance"\ncategory = "Core"\nlevels = ["read", "write"]\n'
         'read = { method = "GET", path = "/v1/balance" }\n'),
         ["balance", "write probe is needed"]),
        # A level Stripe has not got.
        ('[[scope]]\nscope = "event"\nlabel = "Events"\ncategory = "Core"\nlevels = ["admin"]\n',
         ["event", "levels"]),
        # Missing label.
        (('[[scope]]\nscope = "event"\ncategory = "Core"\nlevels = ["read"]\n'
         'read = { method = "GET", path = "/v1/events/{id}" }\n'),
         ["event", "'label'"]),
        # A path that is no Stripe API path.
        (('[[scope]]\nscope = "event"\nlabel = "Events"\ncategory = "Core"\nlevels = ["read"]\n'
         'read = { method = "GET", path = "https://api.stripe.com/v1/events" }\n'),
         ["event", "/v1/"]),
        # Unknown base.
        (('[[scope]]\nscope = "file"\nlabel = "Files"\ncategory = "Core"\nlevels = ["write"]\n'
         'write = { method = "POST", path = "/v1/files", base = "uploads", params = { keyhealth_probe = "1" } }\n'),
         ["file", "base", "files"]),
        # Implies a permission the catalogue does not offer.
        (('[[scope]]\nscope = "transfer"\nlabel = "Transfers"\ncategory = "Connect"\nlevels = ["read"]\n'
         'read = { method = "GET", path = "/v1/transfers/{id}" }\nimplies = ["payout_write"]\n'),
         ["transfer", "payout_write"]),
        # Listed twice.
        (('[[scope]]\nscope = "event"\nlabel = "Events"\ncategory = "Core"\nlevels = ["read"]\n'
         'read = { method = "GET", path = "/v1/events/{id}" }\n'
         '[[scope]]\nscope = "event"\nlabel = "Events"\ncategory = "Core"\nlevels = ["read"]\n'
         'read = { method = "GET", path = "/v1/events/{id}" }\n'),
         ["event", "twice"]),
        # A level with no probe and no reason why.
        (('[[scope]]\nscope = "sku"\nlabel = "SKUs"\ncategory = "Orders"\nlevels = ["read", "write"]\n'
         'write = { method = "POST", path = "/v1/skus", params = { keyhealth_probe = "1" } }\n'
         'unchecked_levels = ["read"]\n'),
         ["sku", "unchecked"]),
        # A provenance that is none of the four.
        (('[[scope]]\nscope = "event"\nlabel = "Events"\ncategory = "Core"\nlevels = ["read"]\n'
         'read = { method = "GET", path = "/v1/events/{id}" }\nprovenance = "blog"\n'),
         ["event", "provenance", "inferred"]),
        ("", ["no scopes"]),
    ],
)
def test_the_loader_refuses_bad_catalogue_entries(snippet, words):
    msg = _refused(parse_catalogue, tomllib.loads(snippet))
    for w in words:
        assert w in msg, (w, msg)


@pytest.mark.parametrize(
    "snippet, words",
    [
        ('[[item]]\nguide = "Prices"\nsection = "Billing"\nlevel = "write"\nscopes = ["price"]\n',
         ["Prices", "'price'", "not in the catalogue"]),
        ('[[item]]\nguide = "Discounts"\nsection = "Billing"\nlevel = "write"\nscopes = []\n',
         ["Discounts", "note"]),
        ('[[item]]\nguide = "Charges"\nsection = "Core Resources"\nlevel = "Write"\nscopes = ["charge"]\n',
         ["Charges", "level"]),
        ('[[item]]\nsection = "Core Resources"\nlevel = "write"\nscopes = ["charge"]\n',
         ["'guide'"]),
    ],
)
def test_the_loader_refuses_bad_requirements(catalogue, snippet, words):
    msg = _refused(parse_profile, tomllib.loads(snippet), catalogue)
    for w in words:
        assert w in msg, (w, msg)


def test_every_scope_says_where_it_comes_from(raw_catalogue, catalogue):
    """Provenance is written out for every scope (not left to the loader's default), and docs/architecture.md
    states the counts the catalogue really has."""
    for e in raw_catalogue["scope"]:
        assert e.get("provenance") in ("docs", "error", "calibrated", "inferred"), e["scope"]
    counts = catalogue.provenance_counts()
    # the README's catalogue section, or its docs/ page (docs/catalogue.md), states them
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(p.read_text(encoding="utf-8") for p in docs)
    line = (f"{len(catalogue.scopes)} scopes: {counts['docs']} from Stripe's docs, {counts['error']} from real "
            f"Stripe error texts, {counts['calibrated']} calibrated, {counts['inferred']} inferred")
    assert line in text, line


def test_a_whole_row_without_probes_is_not_checkable_with_a_reason():
    cat = parse_catalogue(tomllib.loads(
        '[[scope]]\nscope = "cli_debugging_tools"\nlabel = "Debugging tools"\ncategory = "Stripe CLI"\n'
        'levels = ["write"]\nunchecked = "Used only by the session of the Stripe CLI."\n'
    ))
    s = cat.get("cli_debugging_tools")
    assert not s.probed and s.unchecked_levels == ("write",) and s.checked_levels == ()
