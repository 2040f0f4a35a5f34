"""core.engine.http.lean_request: StripeClient.raw_request's requests, answers and exceptions (the SDK's classes,
messages, codes, bodies), with the error object built lazily, no SDK log lines unless its logging is on, and
every answer redacted before anything reads it. Real HTTP against the sandbox, the real SDK."""
from __future__ import annotations

import logging

import pytest
import stripe

from core.engine.catalogue import load_catalogue
from core.engine.http import PooledClient, error_code, lean_request
from sandbox import DEMO_KEYS

HEALTHY = DEMO_KEYS["healthy"].key


def _client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient("sk_unused", base_addresses={"api": url, "files": url}, max_network_retries=0,
                               http_client=PooledClient(timeout=2.0))


def _classes(e: BaseException) -> set[type]:
    """The SDK's public error classes `e` is an instance of."""
    return {c for c in type(e).__mro__ if getattr(stripe, c.__name__, None) is c}


def test_every_probe_answers_exactly_as_through_the_sdk(sandbox):
    """On every probe of the catalogue, for keys with some, no and revoked permissions: a success is the SDK's
    StripeResponse, and an error is exactly what the SDK raises for that very answer (its class, status,
    message, body, code, param and error object). The sandbox varies its wording between requests, so each
    answer is compared with the SDK's reading of the same bytes; raw_request is asked too for the class."""
    sandbox.reset()
    client = _client(sandbox.url)
    cat = load_catalogue()
    probes = [p for s in cat.scopes for p in (s.read, s.write) if p is not None]
    assert len(probes) > 60
    seen = set()
    for key in (HEALTHY, DEMO_KEYS["missing"].key, DEMO_KEYS["revoked"].key):
        for p in probes:
            sdk_err = lean_err = None
            try:
                sdk = client.raw_request(p.method.lower(), p.concrete_path(), api_key=key, **p.options())
            except stripe.StripeError as e:
                sdk_err = e
            try:
                lean = lean_request(client, p.method.lower(), p.concrete_path(), key, p.options())
            except stripe.StripeError as e:
                lean_err = e
            if sdk_err is None:
                assert lean_err is None, (p.path, lean_err)
                assert (lean.code, lean.data) == (sdk.code, sdk.data)
                seen.add(200)
                continue
            assert lean_err is not None, p.path
            assert _classes(lean_err) == _classes(sdk_err), p.path
            assert lean_err.http_status == sdk_err.http_status
            try:  # what the SDK raises for these very bytes
                client._requestor._interpret_response(
                    lean_err.http_body.encode(), lean_err.http_status, lean_err.headers, "V1")
            except stripe.StripeError as e:
                same = e
            assert _classes(same) == _classes(lean_err) and type(lean_err).__name__ == type(same).__name__
            for attr in ("http_status", "user_message", "json_body", "http_body", "code", "param", "request_id"):
                assert getattr(lean_err, attr, None) == getattr(same, attr, None), (p.path, attr)
            assert str(lean_err) == str(same) and repr(lean_err) == repr(same)
            assert error_code(lean_err) == (same.error.code if same.error is not None else None)
            assert lean_err.error is not None and same.error is not None  # built when read: the SDK's
            assert lean_err.error.to_dict() == same.error.to_dict()
            seen.add(sdk_err.http_status)
    assert {200, 401, 403, 404}.issubset(seen), seen


def test_rate_limit_server_error_and_no_answer_are_the_sdks(sandbox):
    sandbox.reset()
    client = _client(sandbox.url)
    sandbox.faults.fail("/v1/balance", status=429, times=1)
    with pytest.raises(stripe.RateLimitError) as e:
        lean_request(client, "get", "/v1/balance", HEALTHY)
    assert e.value.http_status == 429
    sandbox.faults.fail("/v1/balance", status=500, times=1)
    with pytest.raises(stripe.APIError) as e5:
        lean_request(client, "get", "/v1/balance", HEALTHY)
    assert e5.value.http_status == 500
    sandbox.faults.fail("/v1/balance", status=500, times=1, body="html")
    with pytest.raises(stripe.APIError) as eh:  # not JSON: the SDK's own handler decides, as always
        lean_request(client, "get", "/v1/balance", HEALTHY)
    assert "Invalid response body from API" in str(eh.value)
    sandbox.faults.drop("/v1/balance", times=1)
    with pytest.raises(stripe.APIConnectionError):
        lean_request(client, "get", "/v1/balance", HEALTHY)
    assert lean_request(client, "get", "/v1/balance", HEALTHY).code == 200
    sandbox.reset()


def test_an_answer_echoing_the_key_is_redacted_before_the_exception_holds_it(sandbox):
    sandbox.reset()
    client = _client(sandbox.url)
    sandbox.faults.echo("/v1/charges")
    try:
        with pytest.raises(stripe.InvalidRequestError) as e:
            lean_request(client, "get", "/v1/charges/ch_missing", HEALTHY)
    finally:
        sandbox.reset()
    err = e.value
    for text in (str(err), err.http_body or "", repr(err.json_body), str(err.error)):
        assert HEALTHY[12:30] not in text


def test_sdk_logging_on_takes_the_sdks_own_path_with_its_log_lines(sandbox, caplog):
    """Logging on (the "stripe" logger at INFO): the SDK's own log lines are written, as without the lean path;
    logging off: none are."""
    sandbox.reset()
    client = _client(sandbox.url)
    with caplog.at_level(logging.WARNING, logger="stripe"):
        with pytest.raises(stripe.InvalidRequestError):
            lean_request(client, "get", "/v1/charges/ch_missing", HEALTHY)
    assert not [r for r in caplog.records if r.name == "stripe"]
    with caplog.at_level(logging.INFO, logger="stripe"):
        with pytest.raises(stripe.InvalidRequestError):
            lean_request(client, "get", "/v1/charges/ch_missing", HEALTHY)
    msgs = [r.getMessage() for r in caplog.records if r.name == "stripe"]
    assert any("Request to Stripe api" in m for m in msgs) and any("Stripe v1 API error received" in m for m in msgs)
    assert not any(HEALTHY[12:30] in m for m in msgs)


def test_another_http_client_keeps_the_sdks_path(sandbox):
    sandbox.reset()
    client = stripe.StripeClient("sk_unused", base_addresses={"api": sandbox.url}, max_network_retries=0)
    with pytest.raises(stripe.InvalidRequestError) as e:
        lean_request(client, "get", "/v1/charges/ch_missing", HEALTHY)
    assert type(e.value) is stripe.InvalidRequestError  # the SDK's own exception, not the lazy one


def test_the_catalogue_is_parsed_once_when_many_threads_ask_at_once():
    """A fleet's probe threads all ask for the catalogue on start-up: one parse, not one per thread."""
    import threading

    from core.engine import catalogue

    catalogue._load_catalogue.cache_clear()
    catalogue._load_profile.cache_clear()
    go = threading.Event()
    got: list[object] = []

    def ask() -> None:
        go.wait()
        got.append(catalogue.load_catalogue())
        got.append(catalogue.load_profile())

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join()
    assert catalogue._load_catalogue.cache_info().misses == 1
    assert catalogue._load_profile.cache_info().misses == 1
    assert len({id(x) for x in got}) == 2


class _Handed(PooledClient):
    """The engine's client, noting each request handed to it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.handed: list[str] = []

    def request(self, method, url, headers, post_data=None, **kwargs):
        self.handed.append(url)
        return super().request(method, url, headers, post_data, **kwargs)


def test_the_pacing_turn_is_taken_once_the_request_is_built_right_before_it_is_handed_over(sandbox):
    sandbox.reset()
    http = _Handed(timeout=5.0)
    client = stripe.StripeClient("sk_unused", base_addresses={"api": sandbox.url}, max_network_retries=0,
                                 http_client=http)
    turns: list[int] = []

    def turn(answer: bool):
        def take() -> bool:
            turns.append(len(http.handed))  # how many requests had been handed over when the turn was taken
            return answer
        return take

    assert lean_request(client, "get", "/v1/balance", HEALTHY, turn=turn(True)).code == 200
    assert turns == [0] and len(http.handed) == 1  # the turn, then the request
    # a turn refused: nothing is handed over, nothing reaches Stripe, and the answer is None
    assert lean_request(client, "get", "/v1/balance", HEALTHY, turn=turn(False)) is None
    assert turns == [0, 1] and len(http.handed) == 1 and len(sandbox.requests) == 1
    # a request the SDK refuses to build (a path that is not origin-relative) never takes a turn: the turn comes
    # after the building
    with pytest.raises(ValueError):
        lean_request(client, "get", "@evil.example/v1/balance", HEALTHY, turn=turn(True))
    assert turns == [0, 1] and len(http.handed) == 1 and len(sandbox.requests) == 1


def test_a_reused_request_is_exactly_the_one_the_sdk_builds_for_that_key(sandbox):
    """lean_request builds each probe's request once with a stand-in key and then gives it each call's key: the
    method, URL, headers and body are the SDK's own for that very key, and a POST gets a new Idempotency-Key each
    time, as from the SDK."""
    from core.engine.http import _TEMPLATE_KEY, _built, _sdk_build

    client = _client(sandbox.url)
    requestor = client._requestor
    cat = load_catalogue()
    probes = [p for s in cat.scopes for p in (s.read, s.write) if p is not None]
    posts = 0
    for key in (HEALTHY, DEMO_KEYS["missing"].key, DEMO_KEYS["live_healthy"].key):
        for p in probes:
            args = (p.method.lower(), p.concrete_path(), key, p.options())
            for _ in range(2):  # the first builds the reusable request, the second reuses it
                verb, url, headers, body = _built(requestor, *args)
                sverb, surl, sheaders, sbody = _sdk_build(requestor, *args)
                assert (verb, url, body) == (sverb, surl, sbody)
                assert headers["Authorization"] == f"Bearer {key}" and _TEMPLATE_KEY not in repr(headers)
                if "Idempotency-Key" in sheaders:
                    assert headers["Idempotency-Key"] != sheaders["Idempotency-Key"]
                    headers = {**headers, "Idempotency-Key": sheaders["Idempotency-Key"]}
                    posts += 1
                assert headers == sheaders
    assert posts > 20
