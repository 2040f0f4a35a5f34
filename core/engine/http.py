"""A lean HTTP client for the official Stripe SDK: kept-alive connections shared by every thread (core.engine.wire),
instead of `requests` (which re-reads the proxy environment and builds a session per thread on every request)
or urllib3 (whose request building and `email.parser` header parsing cost more CPU than the rest of a probe).
It plugs into the SDK as its `http_client`, so the SDK still builds every request and interprets every answer:
its errors (AuthenticationError, PermissionError, RateLimitError, APIConnectionError, …) are exactly those of the
SDK over `requests`. See docs/benchmarks.md, "The fleet's client".

Every answer's body passes the one redaction step (core.engine.redact) with the request's own key before the SDK
sees it: some Stripe answers quote the request, key included, and the SDK would otherwise put that text in its
exceptions and its own debug log (STRIPE_LOG=debug prints every response body on stderr).
"""
from __future__ import annotations

import json
import logging
import ssl
import textwrap
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Literal, NoReturn

import stripe

from core.engine import wire
from core.engine.redact import Known, redact


def _request_key(headers: Mapping[str, str] | None) -> str | None:
    """The key a request was sent with (its Authorization header: Bearer, as the SDK sends it)."""
    auth = next((v for k, v in (headers or {}).items() if k.lower() == "authorization"), None)
    if not auth:
        return None
    scheme, _, value = str(auth).strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _redacted(body: bytes, headers: Mapping[str, str] | None, known: Known | None = None) -> bytes:
    """`body` with every run of 8+ characters of the request's key (and any secret-shaped text) masked. `known`:
    that key, made ready by the caller (it must be the key of the request's Authorization header)."""
    key: Known | str | None = known if known is not None else _request_key(headers)
    if not body or not key:
        return body
    text = body.decode("utf-8", "surrogateescape")
    clean = redact(text, key)
    if clean == text:
        return body
    try:  # JSON (Stripe's answers): redact each string, so an escape sequence is never cut in two
        return json.dumps(_redact_json(json.loads(text), key)).encode()
    except ValueError:
        return clean.encode("utf-8", "surrogateescape")


def _redact_json(obj: Any, key: Known | str) -> Any:
    if isinstance(obj, str):
        return redact(obj, key)
    if isinstance(obj, list):
        return [_redact_json(v, key) for v in obj]
    if isinstance(obj, dict):
        return {redact(k, key): _redact_json(v, key) for k, v in obj.items()}
    return obj


class PooledClient(stripe.HTTPClient):
    """stripe.HTTPClient over kept-alive connections, one set per host, shared by every thread (core.engine.wire):
    no retries, no redirects."""

    name = "keyhealth-wire"

    def __init__(self, timeout: float = 80.0, maxsize: int = 64, verify_ssl_certs: bool = True):
        super().__init__(verify_ssl_certs=verify_ssl_certs)
        self._timeout, self._maxsize = timeout, maxsize
        self._verify = verify_ssl_certs
        self._context: Any = None  # made on the first https request
        # One set of keep-alive connections per host (scheme://host:port), found without a lock: hundreds of probe
        # threads queued on one lock cost more CPU than the lookup.
        self._hosts: dict[str, wire.Host] = {}
        self._hosts_lock = threading.Lock()

    def _host(self, origin: str) -> wire.Host:
        with self._hosts_lock:
            host = self._hosts.get(origin)
            if host is None:
                if self._context is None and origin.startswith("https:"):
                    self._context = wire.tls_context(self._verify, stripe.ca_bundle_path)
                host = self._hosts[origin] = wire.Host(origin, self._timeout, self._maxsize, self._context)
            return host

    def request(self, method: str, url: str, headers: Mapping[str, str] | None,  # type: ignore[override]
                post_data: Any = None, *, _usage: list[str] | None = None,
                known: Known | None = None) -> tuple[bytes, int, Mapping[str, str]]:
        """The SDK's HTTPClient.request. `known` (lean_request's): the request's key, ready to redact with."""
        parts = url.split("/", 3)  # scheme:, "", host[:port], path?query
        origin = "/".join(parts[:3])
        host = self._hosts.get(origin) or self._host(origin)
        body = post_data.encode() if isinstance(post_data, str) else post_data
        try:
            data, status, rheaders = host.request(method.upper(), "/" + (parts[3] if len(parts) > 3 else ""),
                                                  dict(headers or {}), body)
        except ssl.SSLError as e:
            self._raise(e, "Could not verify Stripe's SSL certificate.", retry=False)
        except OSError as e:  # (WireError, TimeoutError, ConnectionError, socket.gaierror are OSErrors)
            self._raise(e, "Unexpected error communicating with Stripe.", retry=True)
        if known is not None and headers is not None and headers.get("Authorization") != f"Bearer {known.key}":
            known = None  # not this request's key: the header's is used
        return _redacted(data, headers, known), status, rheaders

    def request_stream(self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None,
                       *, _usage: list[str] | None = None) -> tuple[Any, int, Mapping[str, str]]:
        raise NotImplementedError("Key Health never streams a response.")

    @staticmethod
    def _raise(e: Exception, msg: str, *, retry: bool) -> NoReturn:
        err = f"{type(e).__name__}: {e}"
        raise stripe.APIConnectionError(textwrap.fill(msg) + f"\n\n(Network error: {err})", should_retry=retry) from e

    def close(self) -> None:
        with self._hosts_lock:
            hosts, self._hosts = list(self._hosts.values()), {}
        for host in hosts:
            host.close()


# --- the probe's request path: StripeClient.raw_request's requests and errors, without what a probe does not use --
_UNBUILT: Any = object()


class LazyErrorObject:
    """Mixin for the SDK's error classes: `e.error` (the SDK's ErrorObject, a StripeObject built key by key) is
    built on first access instead of for every answer. A probe reads only the status, the code and the message,
    which are plain attributes (http_status, json_body, user_message). Raised only by lean_request, for an answer
    whose body PooledClient redacted with the request's own key before it was parsed: its texts are clean."""

    def _construct_error_object(self) -> Any:
        return _UNBUILT

    @property
    def error(self) -> Any:
        built = self.__dict__.get("_lazy_error", _UNBUILT)
        if built is _UNBUILT:
            built = self.__dict__["_lazy_error"] = stripe.StripeError._construct_error_object(self)  # type: ignore[arg-type]
        return built

    @error.setter
    def error(self, value: Any) -> None:
        self.__dict__["_lazy_error"] = value


def _lazy(cls: type[stripe.StripeError]) -> Any:
    # same name as the SDK's class; isinstance(e, stripe.PermissionError) etc. hold
    return type(cls.__name__, (LazyErrorObject, cls), {"__module__": cls.__module__})


_InvalidRequestError = _lazy(stripe.InvalidRequestError)
_AuthenticationError = _lazy(stripe.AuthenticationError)
_PermissionError = _lazy(stripe.PermissionError)
_RateLimitError = _lazy(stripe.RateLimitError)
_APIError = _lazy(stripe.APIError)


def error_code(err: BaseException) -> str | None:
    """The `code` of a Stripe error answer (error.code in its JSON), read without building the SDK's error object."""
    body = getattr(err, "json_body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        return code if isinstance(code, str) else None
    error = getattr(err, "error", None)
    return getattr(error, "code", None) if error is not None else None


def _v1_error(body: bytes, status: int, headers: Mapping[str, str]) -> Any:
    """The SDK's exception for a V1 error answer (the class and arguments of _APIRequestor.specific_v1_api_error),
    or None when the answer is anything unusual (not a JSON error object, a card or idempotency error): the SDK's
    own handler then decides."""
    try:
        text = body.decode("utf-8")
        data = json.loads(text)
    except ValueError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict) or err.get("type") == "idempotency_error":
        return None
    msg, code = err.get("message"), err.get("code")
    h = dict(headers)
    if status == 429 or (status == 400 and code == "rate_limit"):
        return _RateLimitError(msg, text, status, data, h)
    if status in (400, 404):
        return _InvalidRequestError(msg, err.get("param"), code, text, status, data, h)
    if status == 401:
        return _AuthenticationError(msg, text, status, data, h)
    if status == 403:
        return _PermissionError(msg, text, status, data, h)
    if status == 402:
        return None
    return _APIError(msg, text, status, data, h)


def _sdk_logging_on() -> bool:
    from stripe import _util

    return _util._console_log_level() is not None or _util.logger.isEnabledFor(logging.INFO)


_TEMPLATE_KEY = "sk_test_keyhealthtemplateNOTAKEY"  # the key a reusable request is built with, then replaced
_TEMPLATES_MAX = 512  # requests kept per client (a probe's few dozen; other paths churn, bounded)
Built = tuple[str, str, dict[str, str], Any]  # (verb, url, headers, body): a request as the SDK builds it
_templates: weakref.WeakKeyDictionary[Any, dict[tuple[str, str, str], Built]] = weakref.WeakKeyDictionary()


def _sdk_build(requestor: Any, method: str, path: str, api_key: str, params: Mapping[str, Any] | None) -> Built:
    """The SDK's own request for `client.raw_request(method, path, api_key=api_key, **params)`: (verb, url,
    headers, body), built by _APIRequestor._args_for_request_with_retries."""
    from stripe._request_options import extract_options_from_dict
    from stripe._util import get_api_mode

    options, rest = extract_options_from_dict({**(params or {}), "api_key": api_key})
    base = rest.pop("base", "api")
    verb, url, headers, post_data, *_ = requestor._args_for_request_with_retries(
        method, path, rest, options, base_address=base, api_mode=get_api_mode(path), usage=["raw_request"])
    return verb, url, headers, post_data


def _built(requestor: Any, method: str, path: str, api_key: str, params: Mapping[str, Any] | None) -> Built:
    """`_sdk_build`'s request, built once per client, method, path and parameters with a stand-in key and then
    given this call's key (its Authorization header) and, for a POST, a new Idempotency-Key, as the SDK gives each
    request. The SDK's headers are the same for every key of a process otherwise (its user agent, the client's
    version and options), and building them was a fifth of a probe's CPU. A request whose URL or body would hold
    the key, or with an idempotency key of the caller's, is built by the SDK every time."""
    try:
        spec = (method, path, repr(sorted(params.items())) if params else "")
    except TypeError:  # parameters that cannot be ordered: no reuse
        return _sdk_build(requestor, method, path, api_key, params)
    kept = _templates.get(requestor)
    if kept is None:
        kept = _templates.setdefault(requestor, {})
    t = kept.get(spec)
    if t is None:
        if params and "idempotency_key" in params:
            return _sdk_build(requestor, method, path, api_key, params)
        t = _sdk_build(requestor, method, path, _TEMPLATE_KEY, params)
        verb, url, headers, post_data = t
        if _TEMPLATE_KEY in url or (post_data and _TEMPLATE_KEY in str(post_data)) or \
                headers.get("Authorization") != f"Bearer {_TEMPLATE_KEY}":
            return _sdk_build(requestor, method, path, api_key, params)
        if len(kept) >= _TEMPLATES_MAX:
            kept.clear()
        kept[spec] = t
    verb, url, headers, post_data = t
    headers = {**headers, "Authorization": f"Bearer {api_key}"}
    if "Idempotency-Key" in headers:
        from stripe._api_requestor import _generate_idempotency_key

        headers["Idempotency-Key"] = _generate_idempotency_key()
    return verb, url, headers, post_data


def lean_request(client: stripe.StripeClient, method: str, path: str, api_key: str,
                 params: Mapping[str, Any] | None = None,
                 turn: Callable[[], bool] | None = None, known: Known | None = None) -> stripe.StripeResponse | None:
    """`client.raw_request(method, path, api_key=api_key, **params)`, the same request (the SDK builds its URL,
    headers and body) and the same answers and exceptions (the SDK's classes, same messages, codes and bodies),
    without what a probe does not use: the SDK's log lines are not formatted unless its logging is on (STRIPE_LOG
    or the "stripe" logger at INFO: then the SDK's own path runs), the error answer's ErrorObject is built only
    if someone reads `e.error`, and no telemetry header. Only for a client whose http_client is a PooledClient
    (which redacts every answer's body before anything reads it); any other client takes the SDK's own path.

    `turn` (the sweep's pacing) is called as late as the path allows: on the lean path once the request is
    built, right before it is handed to the connection, so the CPU of building it never stands between the
    pacer's token and the send; on the SDK's path, before the SDK builds it. None is returned, and nothing is
    sent, when `turn` says no. `known`: `api_key` made ready for redaction (core.engine.redact.Known), by a caller
    that sends many requests with it."""
    requestor = client._requestor
    http = requestor._get_http_client()
    if not isinstance(http, PooledClient) or _sdk_logging_on():
        if turn is not None and not turn():
            return None
        sdk: stripe.StripeResponse = client.raw_request(method, path, api_key=api_key, **(params or {}))
        return sdk
    verb, url, headers, post_data = _built(requestor, method, path, api_key, params)
    if turn is not None and not turn():
        return None
    body, status, rheaders = http.request(verb, url, headers, post_data, known=known)
    api_mode: Literal["V1", "V2"] = "V2" if path.startswith("/v2") else "V1"  # (the SDK's get_api_mode)
    err = _v1_error(body, status, rheaders) if status >= 300 and api_mode == "V1" else None
    if err is not None:
        raise err
    resp: stripe.StripeResponse = requestor._interpret_response(body, status, rheaders, api_mode)
    return resp
