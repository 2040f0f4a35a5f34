"""Issue 19.1: the message for the tenant, table-driven over every status × key mode × in-production, and every
kind of refused key. Each message is second person, never names "the tenant", speaks of one mode only (the
create-key link's mode and the rk_ prefix agree), and carries no internal word. The builder is pure: these tests
build results with core.engine.check.assemble (the one way a CheckResult is built), no network needed.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from assemble_cases import outcomes

from core.engine.catalogue import load_catalogue, load_profile
from core.engine.check import assemble
from core.engine.history import History
from core.engine.keys import intake
from core.engine.remediation import message_mode, tenant_message
from core.engine.result import CheckResult, KeyInfo, KeyLifecycle

CAT, PROF = load_catalogue(), load_profile()
NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
LINK_RE = re.compile(r"https://dashboard\.stripe\.com/(test/)?apikeys/create\?\S+")
INTERNAL = ("not_applicable", "not applicable", "rak_", "the tenant", "tenant's", "ask the", "unreachable", "excess",
            "score", "verdict")
SECOND_PERSON = re.compile(r"\b(you|your)\b", re.I)


def _key(mode: str) -> KeyInfo:
    return KeyInfo("restricted", mode, f"rk_{mode}_…ab12", f"fp-{mode}")  # type: ignore[arg-type]


def _lifecycle(expected: str | None, mode: str | None, *, rotation: bool = False) -> KeyLifecycle:
    lc = KeyLifecycle(expected_mode=expected, rotation_days=180)
    lc.mode_mismatch = bool(expected and mode and expected != mode)
    if rotation:
        lc.age_days, lc.rotation_due = 200, True
    return lc


def _judged(status: str, mode: str, expected: str | None, *, rotation: bool = False) -> CheckResult:
    info = _key(mode)
    if status == "unreachable":
        return assemble(info, catalogue=CAT, profile=PROF, unreachable="This server cannot reach api.stripe.com.",
                        answered=False, checked_at=NOW, lifecycle=_lifecycle(expected, mode, rotation=rotation))
    return assemble(info, outcomes(status), catalogue=CAT, profile=PROF, checked_at=NOW,
                    lifecycle=_lifecycle(expected, mode, rotation=rotation))


def _refused(kind: str, mode: str | None, expected: str | None,
             accepted_before: datetime = datetime(2026, 12, 3, 23, 30, tzinfo=UTC)) -> CheckResult:
    """A key refused by Stripe (kind = how) or by intake (kind = the pasted text's kind)."""
    stripe_refusals = {
        "expired": "Stripe says this key has expired (it was rolled); ask the tenant to create a new restricted key.",
        "invalid": "Stripe does not accept this key: it is mistyped, incomplete, deleted or revoked; ask the tenant.",
        "ip_not_allowed": "Stripe refused the request because the key only allows certain IP addresses.",
        "no_key": "No key reached Stripe; paste the tenant's restricted key and check again.",
    }
    if kind in stripe_refusals or kind == "revoked":
        refused = "invalid" if kind == "revoked" else kind
        info = _key(mode or "live")
        # a revoked key: Stripe refuses it as invalid, and the history read before says it accepted it before
        return assemble(info, catalogue=CAT, profile=PROF, problem=stripe_refusals[refused],
                        refused=refused, checked_at=NOW, lifecycle=_lifecycle(expected, info.mode),
                        history=History(accepted_before=accepted_before) if kind == "revoked" else None)
    info = intake(PASTED[kind]).info
    return assemble(info, catalogue=CAT, profile=PROF, problem=info.problem, checked_at=NOW,
                    lifecycle=_lifecycle(expected, info.mode))


BODY = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V2w3X4y5Z6a7B8c9D0e1F2g3H4i5J6k7L8m9"
PASTED = {
    "secret_live": "sk_live_" + BODY,
    "secret_test": "sk_test_" + BODY,
    "publishable_live": "pk_live_" + BODY,
    "publishable_test": "pk_test_" + BODY,
    "organization": "sk_org_live_" + BODY,
    "webhook_secret": "whsec_" + BODY,
    "sandbox_claim": "rkcs_test_" + BODY,
    "other_secret": "ghp_" + "a" * 36,
    "empty": "",
    "not_a_key": "hello there",
    "truncated": "rk_live_a1B2",
    "masked": "rk_live_…ab12",
    "placeholder": "rk_test_xxxxxxxxxxxxxxxxxxxxxxxx",
    "bad_character": "rk_live_" + BODY[:30] + "!" + BODY[30:60],
}
STRIPE_REFUSALS = ("expired", "revoked", "invalid", "ip_not_allowed", "no_key")
STATUSES = ("healthy", "attention", "failing", "incomplete", "unreachable", "nothing_settled")
MODES = ("live", "test")
EXPECTED = ("live", None, "test")  # in production, not said, test tenant


def _assert_tenant_message(msg: str, want_mode: str, *, link_required: bool) -> None:
    assert msg.startswith("Hello,") and msg.rstrip().endswith("Thank you!")
    assert SECOND_PERSON.search(msg), f"not second person:\n{msg}"
    low = msg.lower()
    outside_links = LINK_RE.sub("", msg)
    for word in INTERNAL:
        assert word not in outside_links.lower(), f"internal or third-person word {word!r} in:\n{msg}"
    links = LINK_RE.findall(msg)
    if link_required:
        assert links, f"no create-key link in:\n{msg}"
    full_links = [m.group(0) for m in LINK_RE.finditer(msg)]
    other = "test" if want_mode == "live" else "live"
    for link in full_links:
        assert ("/test/apikeys/" in link) == (want_mode == "test"), f"link in the wrong mode: {link}"
    assert f"rk_{other}_" not in msg, f"{want_mode} message mentions rk_{other}_:\n{msg}"
    assert f"{other} mode" not in low, f"{want_mode} message speaks of {other} mode:\n{msg}"
    if full_links:
        assert f"rk_{want_mode}_" in msg


def _want_mode(key_mode: str | None, expected: str | None) -> str:
    if expected == "live" or key_mode == "live":
        return "live"
    if key_mode == "test" or expected == "test":
        return "test"
    return "live"


@pytest.mark.parametrize("expected", EXPECTED, ids=lambda e: f"expected-{e}")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("rotation", [False, True], ids=["fresh", "rotation-due"])
def test_every_status_mode_and_production_gives_one_mode_second_person(status, mode, expected, rotation):
    r = _judged(status, mode, expected, rotation=rotation)
    msg = tenant_message(r, PROF, CAT)
    assert msg == r.message, "the result's message is the one builder's"
    want = _want_mode(mode, expected)
    assert message_mode(r) == want
    if status == "unreachable":
        assert msg is None and r.create_link is None, "Stripe never answered: nothing to offer the tenant"
        return
    assert r.create_link == LINK_RE.search(r.create_link).group(0)
    assert ("/test/" in r.create_link) == (want == "test")
    wants_live = expected == "live" and mode == "test"
    if status == "unreachable" or (status == "nothing_settled" and not wants_live):
        assert msg is None, "nothing is known (only a test key on a live tenant is known locally): nothing to say"
        return
    assert msg is not None
    _assert_tenant_message(msg, want, link_required=wants_live or status in ("failing", "attention"))
    if wants_live:
        assert "test-mode key; Pointai needs your live key" in msg
        assert "Edit key" not in msg, "no instructions to edit the test key when the live one is wanted"
        assert msg.count("https://") == 1
    elif status == "healthy":
        assert "exactly the permissions Pointai needs" in msg
    elif status in ("failing", "attention"):
        assert "⋯ → Edit key" in msg and f"({want} mode)" in msg
    if rotation and not wants_live:
        assert "in use for 200 days" in msg
    if not rotation:
        assert "rotating" not in msg


REFUSED_KINDS = STRIPE_REFUSALS + tuple(PASTED)


@pytest.mark.parametrize("expected", EXPECTED, ids=lambda e: f"expected-{e}")
@pytest.mark.parametrize("kind", REFUSED_KINDS)
def test_every_refused_key_says_what_happened_in_the_tenants_terms(kind, expected):
    mode = "test" if kind.endswith("_test") or kind in ("placeholder", "sandbox_claim") else "live"
    if kind in STRIPE_REFUSALS:
        mode = "live"
    r = _refused(kind, mode, expected)
    assert r.status == "invalid"
    assert r.problem, "support still gets its problem sentence"
    msg = r.message
    assert msg is not None
    key_mode = r.key.mode
    want = _want_mode(key_mode, expected)
    _assert_tenant_message(msg, want, link_required=True)
    assert msg != r.problem and (r.problem not in msg)
    if not (expected == "live" and key_mode == "test" and r.key.kind == "restricted"):
        assert "Create a new restricted key with this link" in msg
        assert "paste it into Pointai" in msg


def test_refused_test_keys_on_a_test_tenant_get_the_test_link():
    for kind in ("expired", "invalid", "revoked"):
        r = _refused(kind, "test", None)
        r = assemble(_key("test"), catalogue=CAT, profile=PROF, problem="x", refused="expired", checked_at=NOW,
                     lifecycle=_lifecycle("test", "test"))
        assert "/test/apikeys/create" in r.message and "rk_test_" in r.message and "rk_live_" not in r.message


def test_the_issue_examples_word_for_word():
    expired = _refused("expired", "live", None).message
    assert "Your Stripe key has expired (it was rolled in Stripe)" in expired
    assert "Create a new restricted key with this link" in expired and "paste it into Pointai" in expired
    revoked = _refused("revoked", "live", None)
    assert revoked.refused == "revoked"
    assert "it last worked on 3 December)" in revoked.message, revoked.message
    assert "2026-12-03" in revoked.problem, "support's problem keeps the exact time"
    mismatch = _judged("healthy", "test", "live").message
    assert "The key you gave Pointai is a test-mode key; Pointai needs your live key" in mismatch
    assert "rk_test_" not in mismatch and "/test/apikeys" not in mismatch and "rk_live_" in mismatch


def test_revoked_date_is_in_utc_and_names_the_year_only_when_it_differs():
    r = _refused("revoked", "live", None, accepted_before=datetime(2025, 12, 31, 23, 30, tzinfo=UTC))
    assert "it last worked on 31 December 2025)" in r.message


def test_a_secret_key_is_also_told_to_roll_it():
    msg = _refused("secret_live", "live", None).message
    assert "standard secret key (it starts with sk_)" in msg and "Roll key" in msg


def test_the_message_follows_the_history_given_to_assemble():
    """One builder, run once inside assemble: the lifecycle (read from history by the service before assembling)
    is an input, so the same sweep on a tenant in production gets the live-key message and link."""
    r = _judged("failing", "test", None)
    assert "rk_test_" in r.message and "/test/apikeys" in r.message
    r = _judged("failing", "test", "live")
    assert "Pointai needs your live key" in r.message and "/test/apikeys" not in r.message
    assert "/test/" not in r.create_link


def test_no_demo_message_addresses_the_tenant_in_the_third_person():
    """Every message the demo's history holds (each story, refused keys included) is written to the tenant."""
    from core.demo import generate

    seen = 0
    for c in generate(now=NOW):
        msg = c.result.message
        if msg is None:
            continue
        seen += 1
        assert "the tenant" not in msg.lower() and "ask the" not in msg.lower(), msg
        assert SECOND_PERSON.search(msg), msg
    assert seen > 100
