"""The fault suite: whatever the sandbox throws, a check finishes, says which rows are unknown and why,
records itself as incomplete, and a re-probe of only the unknown rows settles them."""
from __future__ import annotations

import threading
import time

import pytest
import stripe
from support import fast_probe

from core import store
from core.engine.check import check_key, unknown_scopes
from core.engine.settings import ProbeSettings
from sandbox import DEMO_KEYS, Sandbox

# timeout_s: ample for a local answer on a loaded 2-core machine (the probes share the GIL with the sandbox)
SETTINGS = fast_probe(retries=2, timeout_s=1.0)


def _client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_unused", base_addresses={"api": url, "files": url}, max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=SETTINGS.timeout_s),
    )


@pytest.fixture
def db(tmp_path, sqlite_at_head):
    return sqlite_at_head(tmp_path / "faults.db")


@pytest.fixture(autouse=True)
def _clean(sandbox):
    sandbox.reset()
    yield
    sandbox.faults.clear()


FAULTS = {
    "429 storm": (lambda f: f.fail("/v1/charges", status=429), "charge", "429"),
    "500 on invoices": (lambda f: f.fail("/v1/invoices", status=500), "invoice", "500"),
    "502 html body": (lambda f: f.fail("/v1/subscriptions", status=502, body="html"), "subscription", "502"),
    "503 non-JSON": (lambda f: f.fail("/v1/coupons", status=503, body="html"), "coupon", "503"),
    "slow past the timeout": (lambda f: f.hang("/v1/products", seconds=3.0), "product", "no answer"),
    "dropped connection": (lambda f: f.drop("/v1/transfers"), "transfer", "no answer"),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_gives_unknown_with_reason_and_records_incomplete(sandbox, db, name):
    inject, scope, words = FAULTS[name]
    inject(sandbox.faults)
    r = check_key(DEMO_KEYS["healthy"].key, client=_client(sandbox.url), settings=SETTINGS)
    rows = {x.scope: x for x in r.rows}
    assert rows[scope].verdict == "unknown" and rows[scope].granted == "unknown"
    assert words in rows[scope].reason, rows[scope].reason
    assert unknown_scopes(r) == {scope}
    assert r.status == "incomplete"
    assert "check again" in rows[scope].fix
    store.at(db).record_check(r, "Faulty Ltd", source="cli", checked_by="test")
    [latest] = store.at(db).latest_checks()
    assert latest["status"] == "incomplete"

    sandbox.faults.clear()
    again = check_key(DEMO_KEYS["healthy"].key, client=_client(sandbox.url), settings=SETTINGS,
                      only=unknown_scopes(r), previous=r)
    assert again.status == "healthy" and again.requests <= 2


def test_non_json_404_is_unknown_not_granted(sandbox):
    """A 404 whose body is not JSON arrives as APIError: it says nothing about the permission."""
    key = "rk_test_" + "NoJsonFakeTestKey" + "y" * 60
    sandbox.add_key(key, permissions=set(DEMO_KEYS["healthy"].permissions), mode="test")
    # an endpoint Stripe does not know answers "Unrecognized request URL": unknown, never "granted"
    from core.engine.catalogue import Catalogue, Probe, Scope

    cat = Catalogue((Scope("nowhere", "Nowhere", "Core", ("read",), Probe("GET", "/v1/no_such_resource/{id}"), None),))
    from core.engine.catalogue import Profile

    r = check_key(key, client=_client(sandbox.url), settings=SETTINGS, catalogue=cat, profile=Profile("p", "k", ()))
    assert r.rows[0].verdict == "unknown" and "does not know" in r.rows[0].reason


def test_connection_refused_mid_sweep(db):
    """The server goes away half-way: the rest of the rows are unknown, the check still finishes."""
    sb = Sandbox(port=0)
    url = sb.start()
    settings = ProbeSettings(rate_test=40, concurrency=4, retries=1, backoff_s=0.01, timeout_s=1.0)
    seen = []
    stopped = threading.Event()

    def progress(row, done, total):
        seen.append(row)
        if done == 10 and not stopped.is_set():
            stopped.set()
            sb.stop()

    try:
        r = check_key(DEMO_KEYS["healthy"].key, client=_client(url), settings=settings, on_progress=progress)
    finally:
        if not stopped.is_set():
            sb.stop()
    assert stopped.is_set()
    unknown = [x for x in r.rows if x.verdict == "unknown"]
    assert len(unknown) > 20
    assert all("no answer" in x.reason or "Stripe did not answer" in x.reason for x in unknown)
    # our network, not the key: unreachable (never incomplete), with the rows it settled kept
    assert r.status == "unreachable" and r.message is None and r.create_link is None
    settled = [x for x in r.rows if x.scope and x.verdict != "unknown"]
    assert len(settled) >= 10 and all(x.verdict in ("ok", "not_applicable") for x in settled)
    s = store.at(db)
    s.record_check(r, "Gone Away", source="cli", checked_by="test")
    assert s.latest_checks() == []  # an unreachable check is never the tenant's latest
    assert [c["status"] for c in s.tenant_history("Gone Away")] == ["unreachable"]


# --- a storm of 5xx / 429 answers is Stripe's trouble: bounded, and never the tenant's fault (issue 17.3) ---------
STORMS = {"500": (500, "json"), "503 html": (503, "html"), "429": (429, "json")}


@pytest.fixture(scope="module")
def healthy_sweep(sandbox):
    """A healthy key's sweep with the real default settings: the yardstick for a storm's bound."""
    sandbox.reset()
    settings = ProbeSettings()
    client = _client_with(sandbox.url, settings.timeout_s)
    r = check_key(DEMO_KEYS["healthy"].key, client=client, settings=settings)
    assert r.status == "healthy"
    return r.requests, r.elapsed_s


def _client_with(url: str, timeout_s: float) -> stripe.StripeClient:
    return stripe.StripeClient("sk_unused", base_addresses={"api": url, "files": url}, max_network_retries=0,
                               http_client=stripe.RequestsClient(timeout=timeout_s))


@pytest.mark.parametrize("name", list(STORMS))
def test_a_storm_stops_the_check_within_twice_a_sweep(sandbox, healthy_sweep, name):
    """Every answer a 5xx or a 429: the check stops after a bounded run of errors, within 2x a healthy sweep's
    requests and 2x its time (before: 268 requests, ~20 s, "incomplete" with a tenant message and a create-key
    link). The problem says Stripe answered with errors; there is no message for the tenant."""
    status, body = STORMS[name]
    sweep_requests, sweep_s = healthy_sweep
    settings = ProbeSettings()  # the real defaults: 3 retries, 0.25 s first backoff
    sandbox.faults.fail(None, status=status, body=body)
    started = time.monotonic()
    r = check_key(DEMO_KEYS["healthy"].key, client=_client_with(sandbox.url, settings.timeout_s), settings=settings)
    took = time.monotonic() - started
    assert r.requests <= 2 * sweep_requests, (r.requests, sweep_requests)
    assert took <= 2 * sweep_s, (took, sweep_s)
    assert r.status == "unreachable" and r.to_json()["score"] is None
    assert r.problem.startswith("Stripe answered with errors") and "not the tenant's key" in r.problem
    assert r.message is None and r.create_link is None and r.guide_notes == []
    assert all(x.verdict in ("unknown", "not_applicable") for x in r.rows if x.scope)  # nothing settled


def test_a_storm_partway_keeps_the_settled_rows_and_moves_no_status(sandbox, make_service, tmp_path):
    """Stripe starts answering 500 to everything partway: the rows settled before stand, the check is recorded
    as unreachable, the tenant's latest status stays healthy, and no alert is raised."""
    svc = make_service(f"sqlite:///{tmp_path / 'storm.db'}")
    first = svc.check(DEMO_KEYS["healthy"].key, "Stormy Ltd", source="cli")
    assert first.result.status == "healthy" and first.check_id is not None
    settings = fast_probe(concurrency=4)

    def progress(row, done, total):
        if done == 10:
            sandbox.faults.fail(None, status=500)

    from core.engine.check import check_key as ck
    r = ck(DEMO_KEYS["healthy"].key, client=_client_with(sandbox.url, 5.0), settings=settings, on_progress=progress,
           history=lambda info, refused: svc.history(info, "Stormy Ltd", refused))
    assert r.status == "unreachable" and r.problem.startswith("Stripe answered with errors")
    settled = [x for x in r.rows if x.scope and x.verdict != "unknown"]
    assert len(settled) >= 10 and all(x.verdict in ("ok", "not_applicable") for x in settled)
    assert any("Stripe answered with errors" in (x.reason or "") for x in r.rows if x.verdict == "unknown")
    checked = svc.record(r, "Stormy Ltd", source="batch")
    assert checked.check_id is not None
    assert svc.store.get_tenant("Stormy Ltd")["last_check_id"] == first.check_id
    [t] = [x for x in svc.store.list_tenants() if x["name"] == "Stormy Ltd"]
    assert t["last_status"] == "healthy"
    assert svc.store.open_alerts() == []
