"""The check engine against the project's Stripe sandbox: real SDK, real HTTP, no monkeypatching."""
from __future__ import annotations

import threading
import time

import pytest
import stripe
from support import fast_probe

from core.engine.catalogue import load_catalogue, load_profile
from core.engine.check import check_key, unknown_scopes
from core.engine.http import PooledClient
from core.engine.probe import PACE_SAFETY
from core.engine.result import level_rank
from core.engine.settings import ProbeSettings
from sandbox import DEMO_KEYS
from sandbox.server import SANDBOX_ACCOUNT

FAST = fast_probe(retries=3, timeout_s=2.0)


@pytest.fixture
def client(sandbox_client):
    return sandbox_client


@pytest.fixture(autouse=True)
def _clean(sandbox):
    sandbox.reset()
    yield
    sandbox.faults.clear()


def expected_granted(permissions: set[str], scope: str) -> str:
    """What the sandbox key really has for a scope: the highest rak_<scope>_<level> in its set."""
    best = "none"
    for level in ("read", "write"):
        if f"rak_{scope}_{level}" in permissions or "*" in permissions:
            best = level if level_rank(level) > level_rank(best) else best
    return best


def assert_grid_exact(result, demo, legacy_accounts=(SANDBOX_ACCOUNT,)):
    cat = load_catalogue()
    for row in result.rows:
        if row.scope is None:
            assert row.verdict == "not_applicable"
            continue
        s = cat.get(row.scope)
        if row.verdict == "not_applicable":
            # not checkable from outside, an API this account lacks, or a test-mode endpoint with a live key
            assert row.granted is None and row.note, row.scope
            assert (not s.probed or (s.absent_api and demo.account not in legacy_accounts)
                    or (demo.mode == "live" and s.test_only)), row.scope
            continue
        want = expected_granted(demo.permissions, row.scope)
        if want == "write" and "write" not in s.levels:
            want = "read"
        if want == "read" and "read" not in s.checked_levels:
            want = "none"  # e.g. SKUs Read: not checkable, only Write is probed
        assert row.granted == want, f"{row.scope}: probed {row.granted}, key has {want}"


def no_writes_answered_2xx(sandbox):
    return [r for r in sandbox.requests if r.method != "GET" and 200 <= r.status < 300 and r.path.startswith("/v1/")]


@pytest.mark.parametrize("name", ["healthy", "accounts_read", "missing", "over", "readonly", "live_healthy"])
def test_every_demo_profile_grid_is_exact(sandbox, client, name):
    demo = DEMO_KEYS[name]
    result = check_key(demo.key, client=client, settings=FAST)
    assert result.key.kind == "restricted" and result.key.mode == demo.mode
    assert_grid_exact(result, demo)
    assert result.account == demo.account
    assert sandbox.created == [], "a check must create nothing"
    assert no_writes_answered_2xx(sandbox) == []
    assert result.incidents == []
    # every row answered: nothing unknown against a healthy sandbox
    assert not unknown_scopes(result)
    assert len([r for r in result.rows if r.scope]) == len(load_catalogue().scopes)
    # what is not checkable from outside is never probed
    unprobed = {s.scope for s in load_catalogue().scopes if not s.probed}
    assert unprobed and all(r.verdict == "not_applicable" for r in result.rows if r.scope in unprobed)


def test_healthy_and_live_are_healthy(sandbox, client):
    for name in ("healthy", "live_healthy"):
        r = check_key(DEMO_KEYS[name].key, client=client, settings=FAST)
        assert r.status == "healthy" and r.score == 100, [x.to_dict() for x in r.rows if x.verdict != "ok"]


def test_missing_profile_names_what_is_missing(sandbox, client):
    r = check_key(DEMO_KEYS["missing"].key, client=client, settings=FAST)
    assert r.status == "failing"
    missing = {x.scope: x.granted for x in r.rows if x.verdict == "missing"}
    assert missing == {"charge": "read", "subscription": "none", "invoice": "none"}
    charges = next(x for x in r.rows if x.scope == "charge")
    assert "Charges and Refunds to Write" in charges.fix and "it is Read" in charges.fix
    assert "Charges and Refunds: Write (now Read)" in r.message
    assert "permissions%5B%5D=rak_charge_write" in r.message


def test_over_privileged_is_attention_with_excess_rows(sandbox, client):
    r = check_key(DEMO_KEYS["over"].key, client=client, settings=FAST)
    assert r.status == "attention"
    excess = {x.scope: x.granted for x in r.rows if x.verdict == "excess"}
    assert excess == {"customer": "write", "payment_method": "read", "webhook": "write"}
    assert 0 < r.score < 100


def test_readonly_profile_is_failing_on_every_write(sandbox, client):
    r = check_key(DEMO_KEYS["readonly"].key, client=client, settings=FAST)
    assert r.status == "failing"
    profile, cat = load_profile(), load_catalogue()
    for x in r.rows:
        if x.scope and x.required == "write" and x.verdict != "not_applicable":
            assert x.verdict == "missing", x.scope
            assert x.granted == ("read" if "read" in cat.get(x.scope).checked_levels else "none")
    assert profile.name


@pytest.mark.parametrize("name,word", [("expired", "expired"), ("revoked", "revoked")])
def test_refused_keys_stop_after_one_request(sandbox, client, name, word):
    r = check_key(DEMO_KEYS[name].key, client=client, settings=FAST)
    assert r.status == "invalid" and r.score == 0
    assert word in r.problem
    assert r.requests == 1 and len(sandbox.requests) == 1
    assert r.rows == []


def test_expired_and_revoked_are_told_apart(sandbox, client):
    a = check_key(DEMO_KEYS["expired"].key, client=client, settings=FAST)
    b = check_key(DEMO_KEYS["revoked"].key, client=client, settings=FAST)
    assert a.problem != b.problem


def test_ip_allowlist_refusal_is_explained(sandbox, client):
    key = "rk_test_" + "IpLockedFakeTestKey" + "x" * 60
    sandbox.add_key(key, permissions=set(DEMO_KEYS["healthy"].permissions), mode="test", ip_allowed=False)
    r = check_key(key, client=client, settings=FAST)
    assert r.status == "invalid" and "IP" in r.problem and r.requests == 1


def test_standard_key_is_refused_without_a_request(sandbox, client):
    r = check_key(DEMO_KEYS["standard"].key, client=client, settings=FAST)
    assert r.status == "invalid" and r.requests == 0 and sandbox.requests == []
    assert "restricted" in r.problem


def test_read_first_costs_one_request_per_none_scope(sandbox, client):
    r = check_key(DEMO_KEYS["healthy"].key, client=client, settings=FAST)
    cat = load_catalogue()
    per_scope = {}
    for rec in sandbox.requests:
        per_scope[rec.path] = per_scope.get(rec.path, 0) + 1
    none_rows = [x for x in r.rows if x.scope and x.granted == "none"]
    assert none_rows
    # requests = one per None or not-applicable scope + (1 or 2) per granted scope, none for a scope that is
    # not checkable from outside; nothing more
    expected = sum(
        0 if not cat.get(x.scope).probed
        else 1 if x.granted in ("none", None)
        else (2 if cat.get(x.scope).read and cat.get(x.scope).write else 1)
        for x in r.rows
        if x.scope
    )
    assert r.requests == expected == len(sandbox.requests)


class SendTimes(PooledClient):
    """The engine's own HTTP client (the one every check uses), noting the moment each request is handed to it
    (once the engine has taken its pacing token). Not a patch: StripeClient takes any http_client."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sent: list[float] = []
        self._lock = threading.Lock()

    def request(self, *args, **kwargs):
        with self._lock:
            self.sent.append(time.monotonic())
        return super().request(*args, **kwargs)


def most_in_one_second(times: list[float], window: float = 1.0) -> int:
    return max(sum(1 for x in times if t <= x < t + window) for t in times)


def test_pacing_never_exceeds_the_rate_in_any_second(sandbox):
    rate = 20.0
    settings = ProbeSettings(rate_test=rate, concurrency=8, retries=1, backoff_s=0.01, timeout_s=5)
    http = SendTimes(timeout=5.0)
    client = stripe.StripeClient("sk_unused", base_addresses={"api": sandbox.url}, max_network_retries=0,
                                 http_client=http)
    r = check_key(DEMO_KEYS["healthy"].key, client=client, settings=settings)
    sent, arrived = sorted(http.sent), sorted(rec.t for rec in sandbox.requests)
    assert len(sent) == len(arrived) == r.requests > 40
    # The engine's promise, where it keeps it: no second in which more than `rate` requests are sent (the
    # pacer keeps 2% in hand, about 70 ms over 21 sends, so this holds on a loaded machine too).
    worst = most_in_one_second(sent)
    assert worst <= rate, f"{worst} requests sent in one second"
    # What the server saw: paced as well. Arrival adds the server's own scheduling delay: a stamp taken late
    # squeezes the next ones together. On a busy 2-core machine (three test processes) that has been seen to reach
    # about 100 ms (22 arrivals in one second at rate 20), so no 0.9 s may hold more than rate + 1 arrivals;
    # an unpaced sweep puts all of its requests in one second.
    assert most_in_one_second(arrived, window=0.9) <= rate + 1
    # and it is not slower than it need be: the sweep takes about requests / rate
    assert r.elapsed_s < (r.requests / rate) * (1 + PACE_SAFETY) * 1.5


def test_one_429_on_every_endpoint_is_retried_away(sandbox, client):
    cat = load_catalogue()
    paths = {p.concrete_path() for s in cat.scopes for p in (s.read, s.write) if p is not None}
    for path in paths:
        sandbox.faults.fail(path, status=429, times=1)
    r = check_key(DEMO_KEYS["over"].key, client=client, settings=FAST)
    assert_grid_exact(r, DEMO_KEYS["over"])
    assert r.status == "attention"
    # every endpoint the sweep reached answered one 429 first, and the retry settled it
    reached = {rec.path for rec in sandbox.requests}
    assert reached <= paths and len(reached) > 50
    hit = {rec.path for rec in sandbox.requests if rec.status == 429}
    # (a fault matches by prefix: /v1/balance's may be taken by /v1/balance_transactions/…)
    assert all(any(o != p and o.startswith(p) for o in paths) for p in reached - hit), reached - hit


def test_429_storm_and_persistent_5xx_give_unknown_never_a_guess(sandbox, client):
    sandbox.faults.fail("/v1/charges", status=429)  # a storm: every request, forever
    sandbox.faults.fail("/v1/invoices", status=500)
    sandbox.faults.fail("/v1/customers", status=503)
    r = check_key(DEMO_KEYS["healthy"].key, client=client, settings=FAST)
    rows = {x.scope: x for x in r.rows}
    for scope in ("charge", "invoice", "customer"):
        assert rows[scope].verdict == "unknown" and rows[scope].granted == "unknown"
        assert rows[scope].reason
    assert "429" in rows["charge"].reason and "500" in rows["invoice"].reason
    assert r.status == "incomplete"
    others = [x for x in r.rows if x.scope not in ("charge", "invoice", "customer") and x.scope]
    assert all(x.verdict in ("ok", "not_applicable") for x in others)
    # bounded: 1 + retries tries per inconclusive probe
    assert sum(1 for rec in sandbox.requests if rec.path.startswith("/v1/charges")) == 1 + FAST.retries


def test_timeouts_and_dropped_connections_are_unknown(sandbox, client):
    settings = fast_probe(timeout_s=1.0)
    slow_client = stripe.StripeClient(
        "sk_unused", base_addresses={"api": sandbox.url, "files": sandbox.url}, max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=1.0),
    )
    sandbox.faults.hang("/v1/subscriptions", seconds=2.5)
    sandbox.faults.drop("/v1/products")
    r = check_key(DEMO_KEYS["healthy"].key, client=slow_client, settings=settings)
    rows = {x.scope: x for x in r.rows}
    assert rows["subscription"].verdict == "unknown" and "no answer" in rows["subscription"].reason
    assert rows["product"].verdict == "unknown"
    assert r.status == "incomplete"


def test_reprobe_only_unknown_rows_settles_them(sandbox, client):
    sandbox.faults.fail("/v1/invoices", status=500)
    first = check_key(DEMO_KEYS["healthy"].key, client=client, settings=FAST)
    assert unknown_scopes(first) == {"invoice"}
    sandbox.faults.clear()
    sandbox.clear_log()
    second = check_key(DEMO_KEYS["healthy"].key, client=client, settings=FAST, only={"invoice"}, previous=first)
    assert second.status == "healthy"
    assert all(rec.path.startswith("/v1/invoices") for rec in sandbox.requests)
    assert second.requests == len(sandbox.requests) <= 2


def test_progress_streams_every_row(sandbox, client):
    seen = []
    rows = {}

    def progress(row, d, t):
        seen.append((row.scope, d, t))
        rows[row.scope] = row

    r = check_key(DEMO_KEYS["over"].key, client=client, settings=FAST, on_progress=progress)
    # issue 19.7: progress counts in the grid's totals and words: the streamed rows are the grid's very rows
    from core.engine.check import grid_plan

    plan = grid_plan()
    assert len(plan) + seen[-1][2] == len(r.rows)
    final = {x.scope: x for x in r.rows if x.scope}
    assert any(x.implied for x in r.rows) or any(x.verdict == "excess" for x in r.rows)
    for scope, row in rows.items():
        assert row == final[scope], f"progress row for {scope} differs from the grid's"
    assert {x.scope for x in plan} | set(rows) == {x.scope for x in r.rows}
    total = len([s for s in load_catalogue().scopes if s.probed])
    assert [d for _, d, _ in seen] == list(range(1, total + 1))
    assert {s for s, _, _ in seen} == {s.scope for s in load_catalogue().scopes if s.probed}
    unprobed = {x.scope for x in r.rows if x.scope and not load_catalogue().get(x.scope).probed}
    assert unprobed and {s for s, _, _ in seen} | unprobed == {x.scope for x in r.rows if x.scope}


def test_a_key_stripe_accepted_before_is_named_revoked(sandbox, client, make_service, tmp_path):
    """Stripe answers a revoked key like a mistyped one; the history of the same fingerprint tells them apart,
    and the service says so before the result is shown (the same verdict with or without saving it)."""
    from core import store

    url = f"sqlite:///{tmp_path / 'h.db'}"
    svc = make_service(url, probe=FAST)
    key = "rk_test_" + "RevokeMeFakeTestKey" + "z" * 60
    sandbox.add_key(key, permissions=set(DEMO_KEYS["healthy"].permissions), mode="test")
    first = svc.check(key, "Acme Ltd", source="cli").result
    assert first.status == "healthy"

    sandbox.add_key(key, permissions=set(DEMO_KEYS["healthy"].permissions), mode="test", state="revoked")
    raw = check_key(key, client=client, settings=FAST)
    assert raw.status == "invalid" and raw.refused == "invalid" and "mistyped" in raw.problem
    unsaved = svc.check(key).result  # judged against history without being recorded
    assert unsaved.refused == "revoked"
    checked = svc.check(key, "Acme Ltd", source="cli")
    later = checked.result
    assert checked.saved and later.refused == "revoked" and later.problem == unsaved.problem
    assert "accepted this key on" in later.problem and "revoked" in later.problem
    assert later.problem not in later.message, "support's problem is not the tenant's message"
    assert "Your Stripe key no longer works" in later.message and "it last worked on" in later.message
    assert store.at(url).tenant_history("Acme Ltd")[0]["problem"] == later.problem

    # a key never seen working keeps the plain sentence
    stranger = svc.check("rk_test_" + "NeverSeenFakeTestKey" + "q" * 60, "Acme Ltd", source="cli").result
    assert stranger.refused == "invalid" and "mistyped" in stranger.problem


def test_a_key_revoked_midway_stops_a_one_by_one_sweep_at_its_401(sandbox, client):
    """At a concurrency of 1 (a fleet recheck's way: the probes one after another in the sweep's own thread), a
    401 partway stops the sweep as in the pooled sweep: the 401 is the last request sent, and the key is
    judged refused."""
    key = "rk_test_" + "RevokedMidwayOneByOne" + "x" * 60
    sandbox.add_key(key, permissions=set(DEMO_KEYS["healthy"].permissions), mode="test")
    sent_before: list[int] = []

    def revoke_after_ten(row, done, total):
        if done == 10 and not sent_before:
            sent_before.append(len(sandbox.requests))
            sandbox.add_key(key, permissions=set(DEMO_KEYS["healthy"].permissions), mode="test", state="revoked")

    r = check_key(key, client=client, settings=fast_probe(retries=1, timeout_s=2.0, concurrency=1),
                  on_progress=revoke_after_ten)
    assert sent_before, "the key was never revoked"
    assert len(sandbox.requests) == sent_before[0] + 1  # the one request that met the 401, none after it
    assert sandbox.requests[-1].status == 401
    assert r.status == "invalid" and "revoked" in r.problem, (r.status, r.problem)
