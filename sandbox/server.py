"""The sandbox HTTP server: Stripe's auth, rate limit, permission gate and faults in front of api.py.

Standard library only (ThreadingHTTPServer, daemon threads). One request, in order:
control path? -> faults (latency, hang, fail, drop) -> auth (401) -> rate limit (429)
-> route (404 Unrecognized) -> permission gate (403) -> api.py (200/400/402/404).
"""
from __future__ import annotations

import hashlib
import http.client
import json
import random
import re
import socket
import string
import sys
import threading
import time
from dataclasses import asdict, dataclass
from email.message import Message
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast
from urllib.parse import parse_qsl, urlsplit

from sandbox.api import ApiError, Caller, StripeApi
from sandbox.faults import Faults, RateLimiter
from sandbox.routes import (
    DENY_CODE,
    DENY_STYLES,
    TEST_MODE_ONLY,
    ApiModel,
    account_invalid_message,
    deny_message,
    load_model,
    mask_key,
)

SANDBOX_ACCOUNT = "acct_1KeyHealthSandbox"
# The Stripe CLI's hidden endpoint mapping endpoints to the permissions they need (stripe keys permissions).
KEY_PERMISSIONS_PATH = "/v1/stripecli/key_permissions"
STRIPE_RATE_LIMITS = {"test": 25, "live": 100}
API_VERSION = "2025-09-30.clover"
_DROP = object()

NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer "
    "auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for "
    "details, or we can help at https://support.stripe.com/."
)
RATE_LIMITED = (
    "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."
)
HTML_ERROR = "<html><head><title>{code} {reason}</title></head><body><center><h1>{code} {reason}</h1></center>" \
             "<hr><center>nginx</center></body></html>"
REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Time-out"}


@dataclass(frozen=True)
class RequestRecord:
    t: float  # time.monotonic() when the request arrived
    method: str
    path: str  # without the query string
    status: int  # 0 when the connection was dropped
    account: str | None
    key_id: str | None  # short non-secret id of the key (never the key)


@dataclass
class _Key:
    key: str
    permissions: frozenset[str]
    mode: str
    state: str
    account: str
    ip_allowed: bool
    key_id: str


def key_id(key: str) -> str:
    return "key_" + hashlib.sha256(key.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------- form decoding
def dashboard_key_id(key: str) -> str:
    """The key's Dashboard id (mk_…): not a secret, stable per key, as the newest 403 wording shows it."""
    return "mk_1" + hashlib.sha256(b"dashboard:" + key.encode()).hexdigest()[:23]


def nest(pairs: list[tuple[str, str]]) -> dict:
    """Stripe's form encoding (a[b][0]=x) into nested dicts and lists."""
    root: dict = {}
    for k, v in pairs:
        m = re.match(r"^([^\[\]]+)((?:\[[^\]]*\])*)$", k)
        if not m:
            root[k] = v
            continue
        parts = [m.group(1)] + re.findall(r"\[([^\]]*)\]", m.group(2))
        cur = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":
                part = str(len(cur))
            if last:
                cur[part] = v
            else:
                nxt = cur.get(part)
                if not isinstance(nxt, dict):
                    nxt = cur[part] = {}
                cur = nxt
    return _listify(root)


def _listify(d):
    if isinstance(d, dict):
        d = {k: _listify(v) for k, v in d.items()}
        if d and all(k.isdigit() for k in d):
            return [d[k] for k in sorted(d, key=int)]
    return d


def parse_body(body: bytes, content_type: str) -> dict:
    if not body:
        return {}
    if content_type.startswith("multipart/form-data"):
        msg = BytesParser().parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
        pairs = []
        parts = cast(list[Message], msg.get_payload()) if msg.is_multipart() else []
        for part in parts:
            name = part.get_param("name", header="content-disposition")
            if isinstance(name, tuple):  # an RFC 2231 encoded name
                name = collapse_rfc2231_value(name)
            if name:
                payload = cast(bytes, part.get_payload(decode=True))
                value = "<file>" if part.get_filename() else payload.decode("utf-8", "replace")
                pairs.append((name, value))
        return nest(pairs)
    if content_type.startswith("application/json"):
        data = json.loads(body or b"{}")
        return data if isinstance(data, dict) else {}
    return nest(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


# ---------------------------------------------------------------------- the sandbox
class Sandbox:
    """A local Stripe-compatible server that answers the way Stripe answers restricted keys.

    sb = Sandbox(); url = sb.start(); ...; sb.stop()   (or `with Sandbox() as sb:`)
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency_s: float = 0.0,
                 rate_limits: dict[str, int] | None = None, *, demo_keys: bool = True,
                 implied_permissions: bool = False, deny_style: str = "rotate", model: ApiModel | None = None,
                 anchor: int | None = None, legacy_accounts=(SANDBOX_ACCOUNT,)):
        if deny_style != "rotate" and deny_style not in DENY_STYLES:
            raise ValueError(f"deny_style {deny_style!r} must be 'rotate' or one of {', '.join(DENY_STYLES)}.")
        self.host, self.port = host, port
        self.latency_s = float(latency_s)
        self.implied_permissions = implied_permissions
        self.deny_style = deny_style
        # Accounts that still have the legacy APIs (Orders, SKUs, usage records, balance transfers); every
        # other account gets 404 Unrecognized request URL for them, as most real accounts do.
        self.legacy_accounts: set[str] = set(legacy_accounts)
        self.model = model or load_model()
        self.anchor = int(anchor if anchor is not None else time.time() // 86400 * 86400)
        self.faults = Faults()
        self._limiter = RateLimiter(rate_limits)
        self._api = StripeApi(self.model, self.anchor)
        self._keys: dict[str, _Key] = {}
        self._log: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._deny_count = 0
        self._stopping = threading.Event()  # set by stop(), which also sets the wake event: wakes every hanging request
        self._in_flight = 0
        self._epoch = 0  # bumped by reset()/clear_log(): requests from before never reach the new log
        self._wake = threading.Event()  # set (and replaced) by reset() and stop(): wakes hanging requests
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.demo_keys: dict = {}
        self.demo_keys_error: str | None = None
        if demo_keys:
            self._add_demo_keys()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> str:
        if self._httpd is not None:
            return self.url
        self._stopping.clear()
        httpd = _Server((self.host, self.port), _Handler)
        httpd.sandbox = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="stripe-sandbox", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:  # wakes hanging requests (each waits on the wake event it started with)
            self._wake.set()
            self._wake = threading.Event()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_connections()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("The sandbox is not running: call start() first.")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # ------------------------------------------------------------ keys
    def add_key(self, key: str, permissions, mode: str | None = None, state: str = "active",
                account: str = SANDBOX_ACCOUNT, ip_allowed: bool = True) -> str:
        """Register a key. Returns its non-secret key id (as in RequestRecord.key_id)."""
        mode = mode or ("live" if "_live_" in key else "test")
        if mode not in ("test", "live"):
            raise ValueError(f"mode {mode!r} must be 'test' or 'live'.")
        if state not in ("active", "expired", "revoked"):
            raise ValueError(f"state {state!r} must be 'active', 'expired' or 'revoked'.")
        if isinstance(permissions, str):
            raise ValueError("permissions must be a set of names like {'rak_charge_read'}, not a single string.")
        kid = key_id(key)
        with self._lock:
            self._keys[key] = _Key(key, frozenset(permissions), mode, state, account, ip_allowed, kid)
        return kid

    def remove_key(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def _add_demo_keys(self) -> None:
        from sandbox.demo_keys import DEMO_KEYS, standard_demo_key

        try:
            keys = dict(DEMO_KEYS.items())
        except (OSError, ValueError) as e:  # data files missing or malformed
            self.demo_keys_error = (
                f"Demo keys need data/catalogue.toml and data/requirements.toml ({e}); only the standard key is loaded."
            )
            keys = {"standard": standard_demo_key()}
        self.load_demo_keys(keys)

    def load_demo_keys(self, keys: dict) -> None:
        """Register DemoKey objects (e.g. built from other data files with build_demo_keys)."""
        for dk in keys.values():
            self.add_key(dk.key, dk.permissions, dk.mode, dk.state, dk.account)
        self.demo_keys.update(keys)

    # ------------------------------------------------------------ observation
    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()
            self._epoch += 1

    @property
    def in_flight(self) -> int:
        """API requests being answered right now (e.g. hanging on a fault)."""
        with self._lock:
            return self._in_flight

    @property
    def created(self) -> list[dict]:
        """Every object any POST created (charges, their balance transactions, customers, ...)."""
        with self._api.lock:
            return list(self._api.created)

    @property
    def writes(self) -> list[dict]:
        """Every successful non-GET: creates, updates, deletes, actions."""
        with self._api.lock:
            return list(self._api.writes)

    @property
    def rate_limits(self) -> dict[str, int] | None:
        return self._limiter.limits

    @rate_limits.setter
    def rate_limits(self, limits: dict[str, int] | None) -> None:
        self._limiter.limits = dict(limits) if limits else None
        self._limiter.clear()

    def reset(self) -> None:
        """Forget created objects (sample data comes back), the log, faults and rate windows. Keys stay."""
        self._api.reset()
        self.faults.clear()
        self._limiter.clear()
        with self._lock:
            self._wake.set()  # requests hanging from an earlier test end now (as dropped connections)
            self._wake = threading.Event()
        self.clear_log()

    def store(self, account: str = SANDBOX_ACCOUNT, mode: str = "test"):
        """The object store of one account and mode (sample data included), for tests and fixtures."""
        with self._api.lock:
            return self._api.store(account, mode)

    # ------------------------------------------------------------ one request
    def _record(self, epoch, t, method, path, status, k: _Key | None) -> None:
        rec = RequestRecord(t, method, path, status, k.account if k else None, k.key_id if k else None)
        with self._lock:
            if epoch == self._epoch:
                self._log.append(rec)

    def _dispatch(self, method: str, raw_path: str, headers, body: bytes, client_ip: str):
        t = time.monotonic()  # arrival, not answer: pacing checks look at when requests came in
        url = urlsplit(raw_path)
        path = url.path
        if path.startswith("/_sandbox"):
            return self._control(method, path, body)
        with self._lock:
            epoch, wake = self._epoch, self._wake
            self._in_flight += 1
        status, k = 0, None
        try:
            status, payload, extra, k = self._api_request(method, path, url.query, headers, body, client_ip, wake)
            if payload is _DROP:
                return _DROP
            return status, payload, extra
        finally:
            self._record(epoch, t, method, path, status, k)
            with self._lock:
                self._in_flight -= 1

    def _api_request(self, method, path, query, headers, body, client_ip, wake):
        status, payload, extra, k = self._answer(method, path, query, headers, body, client_ip, wake)
        if status >= 400 and payload is not _DROP and self.faults.echoes(path):
            payload = _echo_key(payload, _key_from_header(headers.get("Authorization")))
        return status, payload, extra, k

    def _answer(self, method, path, query, headers, body, client_ip, wake):
        delay, fault = self.faults.take(path)
        delay += self.latency_s
        # One wait per request (a thread woken every 50 ms to look at a second event cost the sandbox CPU that a
        # fleet bench's 128 requests in flight felt): stop() and reset() both set the wake event it started with.
        if delay > 0 and (self._stopping.is_set() or wake.wait(delay)):
            return 0, _DROP, {}, None
        if fault is not None and fault.kind == "drop":
            return 0, _DROP, {}, None
        if fault is not None:
            return (fault.status, *_fault_body(fault.status, fault.body), None)
        k = None
        try:
            k = self._authenticate(headers.get("Authorization"), client_ip)
            if not self._limiter.allow(k.account, k.mode):
                raise ApiError(429, RATE_LIMITED, code="rate_limit")
            params = nest(parse_qsl(query, keep_blank_values=True))
            if method in ("POST", "DELETE"):
                params.update(parse_body(body, headers.get("Content-Type", "")))
            if path == KEY_PERMISSIONS_PATH and method == "POST":
                return 200, _json(self._key_permissions(k, params)), {}, k
            found = self.model.match(method, path)
            if found is None:
                raise ApiError(404, f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
                                    "or we can help at https://support.stripe.com/.")
            route, ids = found
            gone = route.resource.legacy and k.account not in self.legacy_accounts
            if gone or route.resource.gone_at(headers.get("Stripe-Version") or API_VERSION):
                raise ApiError(404, f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
                                    "or we can help at https://support.stripe.com/.")
            acct = self._connected_account_id(route, ids)
            if acct is not None and not self._has_account(k, acct):
                # Stripe answers this before the permission check: whether or not the key may read accounts.
                raise ApiError(403, account_invalid_message(mask_key(k.key), acct), code="account_invalid")
            if not self.model.allows(set(k.permissions), route, self.implied_permissions):
                message, code = self._deny(k, route)
                raise ApiError(403, message, code=code)
            if k.mode == "live" and path.startswith("/v1/test_helpers/"):
                raise ApiError(400, TEST_MODE_ONLY)
            caller = Caller(k.account, k.mode, k.key_id)
            status, obj, extra = self._api.call(caller, route, ids, params, headers.get("Idempotency-Key"), path)
            return status, _json(obj), extra, k
        except ApiError as e:
            extra = {"Stripe-Rate-Limited-Reason": "global-rate"} if e.status == 429 else {}
            if e.status == 401:
                extra["WWW-Authenticate"] = 'Basic realm="Stripe"'
            return e.status, _json(e.body), extra, k
        except (ValueError, UnicodeDecodeError):
            return 400, _json(ApiError(400, "Invalid request body: could not decode it.").body), {}, k

    def _authenticate(self, header: str | None, client_ip: str) -> _Key:
        key = _key_from_header(header)
        if not key:
            raise ApiError(401, NO_KEY)
        with self._lock:
            k = self._keys.get(key)
        if k is None or k.state == "revoked":
            raise ApiError(401, f"Invalid API Key provided: {mask_key(key)}")
        if k.state == "expired":
            raise ApiError(401, f"Expired API Key provided: {mask_key(key)}", code="api_key_expired")
        if not k.ip_allowed:
            raise ApiError(401, f"The API key provided does not allow requests from your IP address ({client_ip}).")
        return k

    def _key_permissions(self, k: _Key, params: dict) -> dict:
        """The Stripe CLI's hidden permission map: the permissions the given endpoints ("GET /v1/customers",
        "GET /v1/charges/:id") need, answered from this sandbox's own model; restricted keys are refused."""
        if k.key.startswith("rk_") or "*" not in k.permissions:
            raise ApiError(403, "This endpoint requires a secret key (sk_…); restricted keys cannot use it.",
                           code="secret_key_required")
        raw = params.get("endpoints", [])
        endpoints = list(raw.values()) if isinstance(raw, dict) else raw if isinstance(raw, list) else [raw]
        if not endpoints:
            raise ApiError(400, "Missing required param: endpoints.", code="parameter_missing", param="endpoints")
        perms: list[str] = []
        unresolved = []
        for ep in endpoints:
            method, _, path = str(ep).strip().partition(" ")
            concrete = re.sub(r"/:[A-Za-z_]+|/\{[A-Za-z_]+\}", "/keyhealth_map_id", path.strip())
            found = self.model.match(method.upper(), concrete)
            if found is None:
                unresolved.append({"endpoint": str(ep), "reason": "Unrecognized endpoint"})
                continue
            need = self.model.needed(found[0])
            if need not in perms:
                perms.append(need)
        return {"permissions": perms, "unresolved_endpoints": unresolved}

    def _deny(self, k: _Key, route) -> tuple[str, str | None]:
        with self._lock:
            style = self.deny_style
            if style == "rotate":
                style = DENY_STYLES[self._deny_count % len(DENY_STYLES)]
            self._deny_count += 1
        return (deny_message(style, mask_key(k.key), k.account, self.model, route, dashboard_key_id(k.key)),
                DENY_CODE.get(style))

    def _has_account(self, k: _Key, acct: str) -> bool:
        with self._api.lock:
            return self._api.store(k.account, k.mode).get("/v1/accounts", acct) is not None

    @staticmethod
    def _connected_account_id(route, ids: dict) -> str | None:
        """The connected account a request names in its path (/v1/accounts/{id}…, /v1/accounts/{parent}/…)."""
        if route.resource.path == "/v1/accounts" and "id" in ids:
            return ids["id"]
        if route.resource.parent == "/v1/accounts":
            return ids.get("parent")
        return None

    # ------------------------------------------------------------ control API (no key needed)
    def _control(self, method: str, path: str, body: bytes):
        try:
            if path == "/_sandbox/health" and method == "GET":
                return 200, _json({"ok": True}), {}
            if path == "/_sandbox/requests" and method == "GET":
                return 200, _json({"requests": [asdict(r) for r in self.requests]}), {}
            if path == "/_sandbox/requests" and method == "DELETE":
                self.clear_log()
                return 200, _json({"ok": True}), {}
            if path == "/_sandbox/created" and method == "GET":
                return 200, _json({"created": self.created, "writes": self.writes}), {}
            if path == "/_sandbox/faults" and method == "GET":
                return 200, _json({"faults": self.faults.list()}), {}
            if path == "/_sandbox/faults" and method == "POST":
                data = json.loads(body or b"{}")
                specs = (
                    data if isinstance(data, list) else data.get("faults", [data]) if isinstance(data, dict) else None
                )
                if specs is None:
                    raise ValueError("send a fault object, a list of them, or {\"faults\": [...]}.")
                for spec in specs:
                    self.faults.add(spec)
                return 200, _json({"ok": True, "faults": self.faults.list()}), {}
            if path == "/_sandbox/faults" and method == "DELETE":
                self.faults.clear()
                return 200, _json({"ok": True}), {}
            if path == "/_sandbox/reset" and method == "POST":
                self.reset()
                return 200, _json({"ok": True}), {}
        except (ValueError, TypeError) as e:
            return 400, _json({"error": {"message": str(e)}}), {}
        return 404, _json({"error": {"message": f"No sandbox control endpoint {method} {path}."}}), {}


def _key_from_header(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        import base64
        import binascii

        try:
            user = base64.b64decode(value).decode("utf-8", "replace").split(":", 1)[0]
        except (binascii.Error, ValueError):
            return None
        return user or None
    return None


def _json(obj) -> bytes:
    """The answer's body as Stripe writes it: JSON indented by 2 (json.dumps(obj, indent=2), byte for byte).
    The standard library indents only in its pure-Python encoder (a tenth of the sandbox's CPU per request), so
    the shapes answers are made of (dicts with text keys, lists, text, whole numbers, booleans, None) are written
    here, with the C encoder's escaping of text; anything else goes to json.dumps whole."""
    try:
        return _indented(obj, "\n").encode()
    except _Unusual:
        return json.dumps(obj, indent=2).encode()


class _Unusual(Exception):
    """A value _indented leaves to json.dumps (a float, a key that is not text, a subclass, ...)."""


_text = json.encoder.encode_basestring_ascii  # json.dumps's own (C) escaping


def _indented(o, indent: str) -> str:
    t = type(o)
    if t is str:
        return _text(o)
    if t is dict:
        if not o:
            return "{}"
        inner = indent + "  "
        parts = []
        for k, v in o.items():
            if type(k) is not str:
                raise _Unusual
            parts.append(inner + _text(k) + ": " + _indented(v, inner))
        return "{" + ",".join(parts) + indent + "}"
    if t is list or t is tuple:
        if not o:
            return "[]"
        inner = indent + "  "
        return "[" + ",".join([inner + _indented(v, inner) for v in o]) + indent + "]"
    if o is None:
        return "null"
    if o is True:
        return "true"
    if o is False:
        return "false"
    if t is int:
        return int.__repr__(o)
    raise _Unusual


def echoed(key: str) -> str:
    """What an echo fault appends to an error message: the key whole, glued after %3D and after a word, cut
    short at both ends, and a piece of its middle."""
    mid = len(key) // 2
    return (f" (request: GET /v1/x?api_key%3D{key}&expand=x; Authorization: Bearer {key}; token{key}; "
            f"cut: {key[:15]}… …{key[-12:]}; part: {key[mid - 5:mid + 5]})")


def _echo_key(payload: bytes, key: str | None) -> bytes:
    """An error body with the request's key quoted in its message (JSON) or its text (anything else)."""
    if not key:
        return payload
    try:
        obj = json.loads(payload)
    except ValueError:
        return payload + echoed(key).encode()
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict):
        err["message"] = str(err.get("message") or "") + echoed(key)
        return _json(obj)
    return payload + echoed(key).encode()


def _fault_body(status: int, kind: str) -> tuple[bytes, dict]:
    reason = REASONS.get(status, "Error")
    if kind == "html":
        return HTML_ERROR.format(code=status, reason=reason).encode(), {"Content-Type": "text/html"}
    if status == 429:
        err = ApiError(429, RATE_LIMITED, code="rate_limit").body
        return _json(err), {"Stripe-Rate-Limited-Reason": "global-rate"}
    err = {"error": {"type": "api_error", "message": "An unknown error occurred (injected by the sandbox)."}}
    return _json(err), {}


_ID_CHARS = string.ascii_letters + string.digits


def _request_id() -> str:
    return "req_" + "".join(random.choices(_ID_CHARS, k=14))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # listen backlog: a fleet run opens 64+ connections at once (the default is 5)

    def __init__(self, *args, **kwargs):
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut every keep-alive connection: a stopped sandbox must look gone (connection refused/reset)."""
        with self._open_lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client that went away is not the sandbox's problem
        super().handle_error(request, client_address)


class _Headers(dict):
    """A request's headers by lower-cased name, the first of a repeated one kept (as HTTPMessage.get answers):
    the sandbox only looks headers up, and HTTPMessage's lookups went through email's header policy (a tenth of
    the sandbox's CPU per request)."""

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name):
        return dict.get(self, name.lower())  # None when absent, as HTTPMessage

    def __contains__(self, name):
        return dict.__contains__(self, name.lower())


class _Handler(BaseHTTPRequestHandler):
    _headers_buffer: list[bytes]  # BaseHTTPRequestHandler's own buffer (not in its type stubs)
    raw_requestline: bytes  # set by handle_one_request (not in its type stubs)
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""

    def setup(self):
        super().setup()
        # One write per answer and no Nagle: otherwise delayed ACKs add ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # quiet: the sandbox keeps its own log
        pass

    _date: tuple[int, str] = (0, "")

    def date_time_string(self, timestamp=None):
        """The Date header, formatted once per second (email.utils.formatdate was 3% of the sandbox's CPU)."""
        if timestamp is not None:
            return super().date_time_string(timestamp)
        now = int(time.time())
        cached = _Handler._date
        if cached[0] != now:
            cached = _Handler._date = (now, super().date_time_string(now))
        return cached[1]

    def parse_request(self) -> bool:
        """BaseHTTPRequestHandler.parse_request for a well-formed HTTP/1.0 or 1.1 request line, with the headers read
        into the same HTTPMessage without email's feed parser (which was a fifth of a probe's CPU, client and sandbox
        together); anything else goes to the standard library's own parse."""
        words = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n").split()
        if len(words) != 3 or words[2] not in ("HTTP/1.1", "HTTP/1.0"):
            return super().parse_request()
        self.requestline = " ".join(words)
        self.command, path, self.request_version = words
        self.path = "/" + path.lstrip("/") if path.startswith("//") else path
        self.close_connection = self.request_version < "HTTP/1.1"
        try:
            lines = http.client._read_headers(self.rfile)  # type: ignore[attr-defined]
        except http.client.HTTPException as err:
            self.send_error(431, "Request header fields too large", str(err))
            return False
        headers = _Headers()
        for raw in lines:
            line = raw.decode("iso-8859-1")
            name, colon, value = line.partition(":")
            if colon and name and name[0] not in " \t":  # as email's compat32 policy reads "Name: value"
                headers.setdefault(name.lower(), value.lstrip(" \t").rstrip("\r\n"))
        self.headers = headers  # type: ignore[assignment]
        conntype = headers.get("Connection", "").lower()
        if conntype == "close":
            self.close_connection = True
        elif conntype == "keep-alive":
            self.close_connection = False
        if headers.get("Expect", "").lower() == "100-continue" and self.request_version == "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        sb: Sandbox = self.server.sandbox  # type: ignore[attr-defined]
        result = sb._dispatch(self.command, self.path, self.headers, body, self.client_address[0])
        if result is _DROP:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        status, payload, extra = result
        try:
            self.send_response(status)
            self.send_header("Content-Type", extra.pop("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Request-Id", _request_id())
            self.send_header("Stripe-Version", self.headers.get("Stripe-Version") or API_VERSION)
            for h, v in extra.items():
                self.send_header(h, v)
            self._headers_buffer.append(b"\r\n" + payload)  # headers and body in one write
            self.flush_headers()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout during a hang)
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve
