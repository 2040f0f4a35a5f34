"""Unit tests of the pacing, verdict and scoring rules (no network)."""
from __future__ import annotations

from itertools import pairwise

import pytest

from core.engine.catalogue import Catalogue, Probe, Profile, Requirement, Scope
from core.engine.probe import PACE_SAFETY, ScopeOutcome, TokenBucket
from core.engine.remediation import create_link, fix_for
from core.engine.result import level_rank
from core.engine.verdict import build_rows, judge, overall_status, score


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t

    def sleep(self, dt):
        self.t += dt


def _starts(bucket, clock, n, late=None):
    """Send n requests through the bucket; `late(i)` adds a delay after acquiring (a slow send)."""
    out = []
    for i in range(n):
        bucket.acquire()
        out.append(clock.t)
        if late:
            clock.t += late(i)
    return out


def test_bucket_spaces_requests_evenly():
    clock = FakeClock()
    b = TokenBucket(20, clock=clock, sleep=clock.sleep)
    starts = _starts(b, clock, 5)
    assert [round(s - starts[0], 6) for s in starts] == pytest.approx([0.0, 0.05, 0.10, 0.15, 0.20])


def test_bucket_burst_then_paces():
    clock = FakeClock()
    b = TokenBucket(10, burst=3, clock=clock, sleep=clock.sleep)
    starts = _starts(b, clock, 5)
    assert [round(s - 100.0, 6) for s in starts] == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2])


def test_bucket_refills_after_idle_but_only_to_its_capacity():
    clock = FakeClock()
    b = TokenBucket(10, clock=clock, sleep=clock.sleep)
    _starts(b, clock, 1)
    clock.t += 5
    starts = _starts(b, clock, 3)
    assert [round(s - starts[0], 6) for s in starts] == pytest.approx([0.0, 0.1, 0.2])


def test_a_late_send_does_not_let_the_next_ones_catch_up():
    clock = FakeClock()
    b = TokenBucket(20, clock=clock, sleep=clock.sleep)
    starts = _starts(b, clock, 10, late=lambda i: 0.04 if i == 3 else 0.0)
    gaps = [round(b2 - a, 6) for a, b2 in pairwise(starts)]
    assert min(gaps) >= 0.05 - 1e-9


@pytest.mark.parametrize("rate", [20, 25, 7.5])
def test_bucket_never_exceeds_rate_in_any_window(rate):
    clock = FakeClock()
    b = TokenBucket(rate, burst=4, clock=clock, sleep=clock.sleep, safety=PACE_SAFETY, window=1.05)
    starts = _starts(b, clock, 300, late=lambda i: 0.03 * (i % 7 == 0))
    for s in starts:
        assert sum(1 for x in starts if s <= x < s + 1.05) <= int(rate)


@pytest.mark.parametrize(
    "required,granted,verdict",
    [
        ("write", "write", "ok"),
        ("write", "read", "missing"),
        ("write", "none", "missing"),
        ("read", "write", "excess"),
        ("none", "read", "excess"),
        ("none", "none", "ok"),
        ("read", "read", "ok"),
        ("write", "unknown", "unknown"),
        ("none", "unknown", "unknown"),
    ],
)
def test_judge(required, granted, verdict):
    assert judge(required, granted) == verdict


def _mini():
    g = Probe("GET", "/v1/x/{id}")
    w = Probe("POST", "/v1/x/{id}")
    cat = Catalogue(
        (
            Scope("charge", "Charges", "Core", ("read", "write"), g, w),
            Scope("balance", "Balance", "Core", ("read",), g, None),
            Scope("customer", "Customers", "Core", ("read", "write"), g, w),
            Scope("account_link", "Account links", "Connect", ("write",), None, w),
        )
    )
    prof = Profile(
        "p",
        "API key for Pointai",
        (
            Requirement("Charges", "Core Resources", "write", ("charge",)),
            Requirement("Balance", "Core Resources", "write", ("balance",), note="Stripe offers Balance as Read only."),
            Requirement("Account links", "Connect", "write", ("account_link",)),
            Requirement("Discounts", "Billing", "write", (), note="Not a Stripe permission.", category="Billing"),
        ),
    )
    return cat, prof


def test_required_is_capped_at_what_stripe_offers():
    cat, prof = _mini()
    assert prof.required(cat.get("balance"))[0] == "read"
    assert prof.required(cat.get("customer"))[0] == "none"
    assert prof.required(cat.get("account_link"))[0] == "write"


def _rows(granted):
    cat, prof = _mini()
    outs = {k: ScopeOutcome(k, v) for k, v in granted.items()}
    return build_rows(cat, prof, outs), cat, prof


def test_rows_status_and_score_healthy():
    rows, _, _ = _rows({"charge": "write", "balance": "read", "customer": "none", "account_link": "write"})
    assert [r.verdict for r in rows if r.scope] == ["ok"] * 4
    na = [r for r in rows if r.verdict == "not_applicable"]
    assert len(na) == 1 and na[0].resource == "Discounts" and na[0].note
    assert overall_status(rows) == "healthy"
    assert score(rows, "healthy") == 100


def test_missing_beats_unknown_and_excess():
    rows, _, _ = _rows({"charge": "read", "balance": "unknown", "customer": "write", "account_link": "write"})
    assert overall_status(rows) == "failing"
    # weights: charge 3 (missing), balance 3 (unknown), account_link 3 (ok), customer 1 (excess)
    assert score(rows, "failing") == 1 + round(48 * 3 / 10)


def test_unknown_gives_incomplete_and_excess_gives_attention():
    rows, _, _ = _rows({"charge": "write", "balance": "unknown", "customer": "none", "account_link": "write"})
    assert overall_status(rows) == "incomplete"
    rows, _, _ = _rows({"charge": "write", "balance": "read", "customer": "read", "account_link": "write"})
    assert overall_status(rows) == "attention"
    assert score(rows, "attention") == 80 + round(19 * 9 / 10)
    assert score(rows, "invalid") == 0


def test_scores_sort_like_statuses():
    from core.engine.verdict import SCORE_BANDS

    order = ["invalid", "failing", "incomplete", "attention", "healthy"]
    for worse, better in pairwise(order):
        assert SCORE_BANDS[worse][1] < SCORE_BANDS[better][0]


def test_fixes_speak_dashboard_words():
    rows, _cat, prof = _rows({"charge": "read", "balance": "read", "customer": "write", "account_link": "write"})
    by = {r.resource: r for r in rows}
    fix = fix_for(by["Charges"], prof)
    assert "Developers → API keys" in fix and "Core → Charges to Write" in fix and "it is Read" in fix
    fix = fix_for(by["Customers"], prof)
    assert "Customers to None" in fix and "does not use it" in fix
    assert fix_for(by["Balance"], prof) is None


def test_create_link_lists_only_required_real_scopes():
    cat, prof = _mini()
    link = create_link(prof, cat, "test")
    assert link.startswith("https://dashboard.stripe.com/test/apikeys/create?name=API%20key%20for%20Pointai")
    assert "permissions%5B%5D=rak_charge_write" in link
    assert "permissions%5B%5D=rak_balance_read" in link
    assert "rak_balance_write" not in link and "customer" not in link
    assert "/test/" not in create_link(prof, cat, "live")


def test_implied_permission_is_allowed_not_required():
    assert judge("none", "read", allowed="read") == "ok"
    assert judge("none", "write", allowed="read") == "excess"
    assert judge("write", "read", allowed="write") == "missing"


def test_profile_allows_what_required_scopes_imply():
    from core.engine.catalogue import load_catalogue, load_profile

    cat, prof = load_catalogue(), load_profile()
    for s in cat.scopes:
        for perm in s.implies:
            if prof.required(s)[0] == "none":
                continue
            scope, level = perm.rsplit("_", 1)
            allowed, why = prof.allowed(cat.get(scope))
            assert level_rank(allowed) >= level_rank(level)
            assert prof.required(cat.get(scope))[0] != "none" or s.label in why


def test_profile_is_frozen_all_the_way_down():
    """Built once, in full: neither its fields nor its implied allowances can change afterwards."""
    import dataclasses
    import tomllib

    from core.engine.catalogue import REQUIREMENTS_PATH, load_catalogue, load_profile, parse_profile

    prof = load_profile()
    assert prof.implied, "the real profile has implied allowances"
    scope = next(iter(prof.implied))
    with pytest.raises(dataclasses.FrozenInstanceError):
        prof.implied = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        prof.implied[scope] = ("write", ("Someone",))  # type: ignore[index]
    with pytest.raises(TypeError):
        del prof.implied[scope]  # type: ignore[attr-defined]
    # Parsing twice gives equal, independent profiles (nothing is shared and updated in place).
    with open(REQUIREMENTS_PATH, "rb") as f:
        data = tomllib.load(f)
    again = parse_profile(data, load_catalogue())
    assert dict(again.implied) == dict(prof.implied) and again.implied is not prof.implied
    # A dict handed to the constructor is copied: changing it later does not change the profile.
    given = {"charge": ("read", ("Test",))}
    p = Profile("p", "k", (), implied=given)
    given["charge"] = ("write", ("Changed",))
    assert p.implied["charge"] == ("read", ("Test",))


def test_a_charged_request_pushes_the_next_slots_back():
    clock = FakeClock()
    b = TokenBucket(10, clock=clock, sleep=clock.sleep)
    b.charge()
    starts = _starts(b, clock, 2)
    assert [round(s - 100.0, 6) for s in starts] == pytest.approx([0.1, 0.2])
