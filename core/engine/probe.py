"""Probing a restricted key's permissions from outside, with no side effects.

Stripe has no API that lists a key's permissions, so each scope is probed with a request that
Stripe refuses (403) without the permission and answers 404/400 with it, before it would ever
look an object up or create one (see data/catalogue.toml for the probes).

- Read first: a read 403 settles the scope at None in one request; only a granted read needs the write probe.
- Paced by a GCRA token bucket shared by every worker (default: evenly spaced starts, no burst).
- 429, 5xx, timeouts and network errors say nothing about the permission: bounded retries with
  backoff, and then the scope is "unknown", never guessed.
- A 401 stops the sweep: the key is refused (invalid or revoked, expired, or outside its IP allowlist).
- No HTTP answer at all (refused connection, DNS, TLS, proxy, timeouts) is Stripe unreachable, our side's
  problem: if the first probe gets none after its retries the sweep stops at once; if Stripe stops answering
  later, the sweep stops after `max_network_failures` consecutive network failures (settled rows stand).
- A storm of errors (429 or 5xx) is Stripe's trouble, not the key's: after `max_error_answers` inconclusive HTTP
  answers in a row (every try counts; any conclusive answer resets the count) the sweep stops (settled rows
  stand). Both stops make the check "unreachable" (core.engine.check.assemble): it says nothing about the key.
- Outcomes are yielded one by one in the caller's thread, so a UI can show progress.
"""
from __future__ import annotations

import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from core.engine.catalogue import Probe, Scope
from core.engine.redact import Known, redact
from core.engine.result import Granted, Mode
from core.engine.settings import STRIPE_DEFAULT_API_BASE, ProbeSettings

if TYPE_CHECKING:  # imported where a request is made or an error read: a key refused locally loads no SDK
    import stripe

_ACCOUNT_RE = re.compile(r"account '(acct_[A-Za-z0-9]+)'")
# A permission named in a refusal, in either wording: "Having the 'rak_charge_read' permission…" or
# 'Enabling "Prices Read" (\'plan_read\') permissions…'. Group 1 is the name without rak_.
_NAMED_RE = re.compile(r"'(?:rak_)?([a-z][a-z0-9_]*_(?:read|write))'")
# The Dashboard's words in the newer wordings: 'Enabling "Prices Read" (\'plan_read\') permissions…'.
_LABEL_RE = re.compile(r'Enabling "([^"\x00-\x1f]{1,80})" \(')
# The newest wording ends "You can edit permissions at https://dashboard.stripe.com/b/acct_…?destination=%2Fapikeys%2Fmk_…%2Fedit".
_EDIT_AT_RE = re.compile(r"You can edit permissions at (\S+)")
EDIT_HOST = "dashboard.stripe.com"
_EDIT_PATH_RE = re.compile(r"^/b/(acct_[A-Za-z0-9]{1,64})$")
_EDIT_DEST_RE = re.compile(r"^/apikeys/(mk_[A-Za-z0-9]{1,64})/edit$")
_REFUSAL_WORDS = ("does not have the required permissions", "having more permissions", "permissions would allow")
_PLACEHOLDER_KEY = "sk_keyhealth_no_key_given"  # the shared client's default; every call passes its own key
STRIPE_FILES_BASE = "https://files.stripe.com"
PACE_SAFETY = 0.02  # 2% slower than the configured rate, for jitter between here and Stripe
PACE_WINDOW_S = 1.05  # no trailing 1.05 s holds more than floor(rate) sends: 50 ms of slack for the way there


@lru_cache(maxsize=4)
def client_for(api_base: str, timeout_s: float) -> stripe.StripeClient:
    import stripe

    from core.engine.http import PooledClient

    return stripe.StripeClient(
        _PLACEHOLDER_KEY,
        # Stripe takes file uploads on its own host; a sandbox serves both on one address.
        base_addresses={
            "api": api_base, "files": STRIPE_FILES_BASE if api_base == STRIPE_DEFAULT_API_BASE else api_base,
        },
        max_network_retries=0,
        http_client=PooledClient(timeout=timeout_s, maxsize=256),
    )


def shared_client(settings: ProbeSettings, api_base: str = STRIPE_DEFAULT_API_BASE) -> stripe.StripeClient:
    """The process's one StripeClient for a base URL and timeout; keys are passed per call."""
    return client_for(api_base, settings.timeout_s)


class TokenBucket:
    """Paces request starts: a token bucket of `burst` tokens refilled at `rate` per second, with the
    token taken at the moment a request is really sent (so a late send never lets the next ones catch
    up in a burst), plus a guard that no trailing `window` seconds ever hold more than floor(rate) sends.

    `safety` slows both a little, so that jitter between here and Stripe cannot squeeze one more
    request into a one-second window at the server. Thread-safe.
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        safety: float = 0.0,
        window: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate / (1.0 + safety)
        self.capacity = float(max(1, burst))
        self.limit = max(1, int(rate))
        self.window = window  # the window is already the slack for the way there; safety slows the rate
        self._clock, self._sleep = clock, sleep
        self._tokens = self.capacity
        self._updated = clock()
        self._sends: deque[float] = deque()
        self._lock = threading.Lock()
        self._turn = threading.Lock()  # held by the one waiter sleeping until the next token

    def try_take(self) -> float:
        """Take a token now and return 0, or return how long to wait before trying again."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            while self._sends and self._sends[0] <= now - self.window:
                self._sends.popleft()
            wait = (1.0 - self._tokens) / self.rate if self._tokens < 1.0 else 0.0
            if len(self._sends) >= self.limit:
                wait = max(wait, self._sends[0] + self.window - now)
            if wait > 1e-6:  # below a microsecond is float noise: waiting it could spin forever
                return wait
            self._tokens = max(0.0, self._tokens - 1.0)
            self._sends.append(now)
            return 0.0

    def charge(self) -> None:
        """Count a request that was sent without this bucket (e.g. a key's first request, before its account
        was known): the bucket's next tokens come that much later."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate) - 1.0
            self._updated = now
            self._sends.append(now)

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Wait for a token; False if `stop` was set meanwhile (nothing taken then).

        One waiter at a time sleeps until the next token; the others queue on a lock instead of all waking
        for the same token (with many threads on one bucket, that herd cost more CPU than the requests)."""
        wait = self.try_take()
        if wait <= 0:
            return True
        with self._turn:
            while True:
                if stop is not None and stop.is_set():
                    return False
                wait = self.try_take()
                if wait <= 0:
                    return True
                if stop is not None:
                    if stop.wait(wait):
                        return False
                else:
                    self._sleep(wait)


class Pacing:
    """Pacing shared by many sweeps in one process (a fleet recheck): one token bucket per Stripe account
    and mode (Stripe's limit is per account, so two keys of one account share its bucket), plus a global
    ceiling on the requests per second the whole process sends. Thread-safe."""

    def __init__(self, settings: ProbeSettings, ceiling: float | None = None):
        self.settings = settings
        self.ceiling = TokenBucket(ceiling, burst=max(1, int(ceiling // 20)), safety=PACE_SAFETY) if ceiling else None
        self._buckets: dict[tuple[str, str | None], TokenBucket] = {}
        self._lock = threading.Lock()
        self.rate_limited = 0  # 429s seen by every sweep paced here

    def account_bucket(self, account: str, mode: Any) -> TokenBucket:
        with self._lock:
            b = self._buckets.get((account, mode))
            if b is None:
                b = self._buckets[(account, mode)] = TokenBucket(
                    self.settings.rate_for(mode), safety=PACE_SAFETY, window=PACE_WINDOW_S)
            return b

    def count_429(self) -> None:
        with self._lock:
            self.rate_limited += 1


@dataclass(frozen=True)
class EditLink:
    """The link a refusal gives to edit the very key refused: its Stripe account and the key's Dashboard id
    (mk_…, not a secret). `url` is rebuilt from those two checked parts, never copied from Stripe's text."""

    account: str
    key_id: str

    @property
    def url(self) -> str:
        return f"https://{EDIT_HOST}/b/{self.account}?destination={quote(f'/apikeys/{self.key_id}/edit', safe='')}"


def edit_link(message: str) -> EditLink | None:
    """The key's edit link in a refusal's text, or None: only https://dashboard.stripe.com/b/<acct>?destination=
    /apikeys/<mk_…>/edit, for the very account the refusal names; any other host, scheme, port, user, path or
    extra parameter, or another account, is dropped."""
    m = _EDIT_AT_RE.search(message)
    named = _ACCOUNT_RE.search(message)
    if m is None or named is None:
        return None
    raw = m.group(1).rstrip(".,;:)'\"")
    try:
        u = urlsplit(raw)
        port = u.port
    except ValueError:
        return None
    if u.scheme != "https" or u.netloc != EDIT_HOST or port is not None or u.fragment:
        return None
    path = _EDIT_PATH_RE.match(u.path)
    try:
        query = parse_qs(u.query, strict_parsing=True)
    except ValueError:
        return None
    if path is None or set(query) != {"destination"} or len(query["destination"]) != 1:
        return None
    dest = _EDIT_DEST_RE.match(query["destination"][0])
    if dest is None or path.group(1) != named.group(1):
        return None
    return EditLink(path.group(1), dest.group(1))


def refusal_label(message: str) -> str | None:
    """The Dashboard's label a newer refusal names ("Prices Read"), or None."""
    m = _LABEL_RE.search(message)
    return m.group(1).strip() or None if m else None


@dataclass
class Answer:
    """What one request told us."""

    # granted | denied (a permission refusal) | forbidden (a 403 that is no permission refusal, e.g.
    # account_invalid: inconclusive) | absent (404 "Unrecognized request URL") | auth | retry | broken |
    # stopped (not sent: Stripe refused the key)
    kind: str
    status: int | None
    detail: str
    code: str | None = None
    account: str | None = None
    error: Exception | None = field(default=None, repr=False)  # the SDK's exception, when there was one
    named: tuple[str, ...] = ()  # permissions a refusal names, without rak_ (e.g. "charge_read")
    message: str = ""  # Stripe's own message, redacted (core.engine.redact) by the KeyRequests that sent it
    label: str | None = None  # the Dashboard's words a newer refusal names ("Prices Read")
    edit: EditLink | None = None  # the newest wording's link to edit this very key


@dataclass
class ScopeOutcome:
    scope: str
    granted: Granted
    reason: str | None = None  # why unknown
    requests: int = 0
    named: tuple[str, ...] = ()  # what the deciding refusal named (without rak_), when it named anything
    not_applicable: str | None = None  # one sentence: this scope cannot matter for this key (API absent, live mode)
    named_label: str | None = None  # the Dashboard's words the deciding refusal used ("Prices Read"), if any


@dataclass
class SweepStats:
    requests: int = 0
    started: float = field(default_factory=time.monotonic)
    elapsed_s: float = 0.0
    account: str | None = None
    auth_problem: str | None = None  # one sentence when Stripe refused the key itself
    auth_kind: str | None = None  # invalid | expired | ip_not_allowed | no_key
    incidents: list[str] = field(default_factory=list)
    answered: bool = False  # Stripe gave at least one HTTP answer
    network_failures: int = 0  # requests that got no HTTP answer at all
    unreachable: str | None = None  # one sentence when the sweep stopped because Stripe did not answer (or stormed)
    stormed: bool = False  # the sweep stopped on a storm of 429/5xx answers (`unreachable` then says so)
    edit: EditLink | None = None  # the key's own edit link, from the first refusal that gave one for its account


def _stopped(why: str = "Stripe refused the key") -> Answer:
    return Answer("stopped", None, f"not sent: {why}")


def is_permission_refusal(code: str | None, message: str) -> bool:
    """A 403 that refuses for want of a permission: code more_permissions_required (newer answers), or a
    message saying the key "does not have the required permissions" / "Having more permissions…"."""
    low = message.lower()
    return code == "more_permissions_required" or any(w in low for w in _REFUSAL_WORDS)


def named_permissions(message: str) -> tuple[str, ...]:
    """The permissions a refusal names, in order, without rak_ (empty when it names none)."""
    return tuple(dict.fromkeys(_NAMED_RE.findall(message)))


def interpret(err: Exception | None, probe: Probe) -> Answer:
    """Turn the SDK's answer to one probe into granted / denied / forbidden / absent / auth / retry / broken.

    A 403 is read by its body: a permission refusal (code more_permissions_required, or "does not have the
    required permissions") is "denied", with the permissions it names; any other 403 (account_invalid: "does
    not have access to account … (or that account does not exist)") says nothing about the permission and is
    "forbidden" (inconclusive). The account id is only learnt from a permission refusal (an account_invalid
    names the made-up account, not the key's).
    """
    from stripe._error import (  # (loaded already: an error to read came from it)
        APIConnectionError,
        AuthenticationError,
        InvalidRequestError,
        RateLimitError,
    )
    from stripe._error import PermissionError as StripePermissionError  # (not the builtin)

    from core.engine.http import error_code

    if err is None:
        return Answer("granted", 200, "answered 2xx")
    status = getattr(err, "http_status", None)
    code = error_code(err)  # from the answer's JSON: the SDK's error object is not built for it
    message = getattr(err, "user_message", None) or str(err) or ""
    account = None
    m = _ACCOUNT_RE.search(message)
    if m:
        account = m.group(1)
    if "does not allow requests from your IP" in message:
        return Answer("auth", status, message, "ip_not_allowed", account)
    if isinstance(err, AuthenticationError) or status == 401:
        return Answer("auth", status, message, code, account)
    if isinstance(err, StripePermissionError) or status == 403:
        if is_permission_refusal(code, message):
            return Answer("denied", status, message, code, account, named=named_permissions(message),
                          label=refusal_label(message), edit=edit_link(message))
        why = f"403 {code}" if code else "403"
        return Answer("forbidden", status, f"{why} that is no permission refusal: {message[:200]}", code)
    if isinstance(err, RateLimitError) or status == 429:
        return Answer("retry", status, "rate limited (429)", code or "rate_limit")
    if isinstance(err, APIConnectionError):
        return Answer("retry", None, "no answer from Stripe (timeout or network error)")
    if status is not None and status >= 500:
        return Answer("retry", status, f"Stripe server error ({status})")
    if isinstance(err, InvalidRequestError) and status == 404:
        if code == "resource_missing" or "similar object exists in" in message:
            return Answer("granted", status, "404: no such object, so the permission was granted", code)
        if "unrecognized request url" in message.lower():
            return Answer(
                "absent", status,
                f"Stripe does not know the endpoint {probe.method} {probe.path} (404 Unrecognized request URL)",
            )
        return Answer("broken", status, f"Stripe does not know the probe's endpoint {probe.method} {probe.path}")
    if isinstance(err, InvalidRequestError) and status == 400 and (code or "").startswith("parameter_"):
        return Answer("granted", status, f"400 {code}: past the permission check", code)
    if status == 404:
        return Answer("broken", status, f"unexpected non-JSON 404 for {probe.method} {probe.path}")
    return Answer("broken", status, f"unexpected answer {status}: {message[:160]}", code)


def auth_sentence(answer: Answer, mode: str | None) -> tuple[str, str]:
    msg = answer.detail or ""
    if answer.code == "ip_not_allowed":
        return "ip_not_allowed", (
            "Stripe refused the request because the key only allows certain IP addresses; "
            "ask the tenant to remove the IP restriction from the key or add Pointai's addresses."
        )
    if answer.code == "api_key_expired" or msg.startswith("Expired API Key"):
        return "expired", (
            "Stripe says this key has expired (it was rolled); ask the tenant to create a new restricted key "
            "and paste the new one."
        )
    if "did not provide an API key" in msg:
        return "no_key", "No key reached Stripe; paste the tenant's restricted key and check again."
    return "invalid", (
        f"Stripe does not accept this {mode or ''} key: it is mistyped, incomplete, deleted or revoked; "
        "ask the tenant to copy the complete key again, or to create a new restricted key."
    ).replace("this  key", "this key")


def network_cause(err: BaseException) -> str:
    """A few words naming why a request got no HTTP answer, from the SDK's APIConnectionError and the
    requests exception underneath it (its __cause__)."""
    import requests

    cause = err.__cause__ or err.__context__ or err
    text = str(cause)
    if isinstance(cause, requests.exceptions.SSLError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return "the TLS handshake failed (the certificate was not trusted; is a proxy intercepting HTTPS?)"
    if isinstance(cause, requests.exceptions.ProxyError):
        return "the proxy refused or failed the connection"
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return "the connection timed out"
    if isinstance(cause, requests.exceptions.Timeout):
        return "no answer before the timeout"
    low = text.lower()
    if any(w in low for w in ("name or service not known", "nameresolutionerror", "getaddrinfo",
                              "nodename nor servname", "temporary failure in name resolution",
                              "no address associated")):
        return "its name does not resolve (DNS)"
    if "connection refused" in low:
        return "connection refused"
    if any(w in low for w in ("connection reset", "remotedisconnected", "connection aborted", "broken pipe")):
        return "the connection was closed without an answer"
    if "network is unreachable" in low or "no route to host" in low:
        return "the network is unreachable"
    return f"network error ({type(cause).__name__})"


def api_host(client: stripe.StripeClient) -> str:
    """The host (and port, if any) of the client's API base address: api.stripe.com, or a sandbox's."""
    try:
        base = client._requestor._options.base_addresses.get("api") or STRIPE_DEFAULT_API_BASE
    except AttributeError:
        base = STRIPE_DEFAULT_API_BASE
    return urlsplit(base).netloc or base


def storm_sentence(errors: int, last: str) -> str:
    return (
        f"Stripe answered with errors ({errors} in a row, the last one {last}), so the check stopped: this is "
        "Stripe's trouble, not the tenant's key. The permissions settled before stand, the rest are unknown; "
        "check again once Stripe answers normally."
    )


def unreachable_sentence(host: str, cause: str, *, partway: bool = False) -> str:
    if partway:
        return (
            f"Stripe stopped answering partway through the check: this server cannot reach {host}: {cause}. "
            "The permissions settled before stand, the rest are unknown; this is our side's network, not the "
            "tenant's key: check again once Stripe answers."
        )
    return (
        f"This server cannot reach {host}: {cause}. Nothing is known about the key; this is our side's network "
        "(firewall, proxy, DNS or an outage), not the tenant's key: fix the connection and check again."
    )


class KeyRequests:
    """Every request Key Health sends with one key goes through here: the probes, the sample data and the
    sample transaction. Paced by one token bucket; inconclusive answers (429, 5xx, timeouts, network
    errors) retried with exponential backoff and jitter; the account id learnt from the first 403 that
    names it; a 401 stops everything (later requests are not sent). Thread-safe."""

    def __init__(
        self,
        key: str,
        mode: Mode | None,
        settings: ProbeSettings,
        client: stripe.StripeClient,
        rng: random.Random | None = None,
        *,
        pacing: Pacing | None = None,
        account_hint: str | None = None,
    ):
        self._key = key
        self._known = Known(key)  # the key, ready to redact every answer with (made once)
        self.mode = mode
        self.settings = settings
        self.client = client
        self.pacing = pacing
        # Alone, a key has its own bucket. Paced with others: the bucket of its account (the one history knew,
        # until the first answer names it), so keys of one account share that account's pace.
        if pacing is not None and account_hint:
            self.bucket = pacing.account_bucket(account_hint, mode)
        else:
            rate = settings.rate_for(mode)
            self.bucket = TokenBucket(rate, safety=PACE_SAFETY, window=PACE_WINDOW_S)
        self.rate_limited = 0  # 429s this key saw
        self.stop = threading.Event()  # set when Stripe refuses the key (or a caller gives up)
        self._lock = threading.Lock()
        self._lead_taken = False  # the first request has been claimed
        self._lead_answered = threading.Event()  # ... and its answer is in (a 401 has then set `stop`)
        self._rng = rng or random.Random()
        self.requests = 0
        self.account: str | None = None
        self.auth_kind: str | None = None  # invalid | expired | ip_not_allowed | no_key
        self.auth_problem: str | None = None  # one sentence when Stripe refused the key itself
        self.host = api_host(client)
        self.answered = False  # any HTTP answer at all (even a 5xx): Stripe is reachable
        self.network_failures = 0  # requests with no HTTP answer, in all
        self.network_in_a_row = 0  # ... since the last HTTP answer
        self.network_cause: str | None = None  # why the last one got no answer
        self.errors_in_a_row = 0  # inconclusive HTTP answers (429, 5xx) since the last conclusive one
        self.last_error: str | None = None  # the last of them, in a few words
        self.stop_reason: str | None = None  # auth | unreachable | storm | None (or the caller stopped)
        self.edit: EditLink | None = None  # the key's own edit link (newest refusal wording), for its account

    def stop_unreachable(self) -> None:
        with self._lock:
            self.stop_reason = self.stop_reason or "unreachable"
        self.stop.set()

    def stopped_why(self) -> str:
        if self.stop_reason == "unreachable":
            return "Stripe did not answer (our network)"
        if self.stop_reason == "storm":
            return "Stripe answered with errors"
        return "Stripe refused the key"

    def send(self, method: str, path: str, params: dict[str, Any] | None = None) -> tuple[Any, Answer | None]:
        """One paced request: (the SDK's response, None), or (None, what the error answer means).
        `params` may carry SDK options too (idempotency_key, base).

        A 401 stops everything, so a refused key costs exactly one request whatever the callers do: the
        first request is sent alone (every other caller waits for its answer), and the stop is checked
        right before each request leaves, under the lock a 401 takes to set it. A request that gets no HTTP
        answer at all counts as a network failure; after `max_network_failures` in a row (once Stripe had
        answered) the sweep stops as unreachable."""
        import stripe  # a dict lookup: the client that sends the request loaded it

        from core.engine.http import lean_request

        with self._lock:
            lead, self._lead_taken = not self._lead_taken, True
        if not lead:
            self._lead_answered.wait()
        try:
            try:
                resp = lean_request(self.client, method.lower(), path, self._key, params, turn=self._take_turn,
                                    known=self._known)
            except stripe.StripeError as e:
                return None, self._error_answer(e, method, path)
            if resp is None:
                return None, _stopped(self.stopped_why())
            self._heard()
            return resp, None
        finally:
            if lead:
                self._lead_answered.set()

    def _take_turn(self) -> bool:
        """Wait for the ceiling's and the bucket's tokens and count the request; False when the sweep stopped
        meanwhile (checked under the lock a 401 takes to set the stop, right before the request leaves)."""
        ceiling = self.pacing.ceiling if self.pacing is not None else None
        if ceiling is not None and not ceiling.acquire(self.stop):
            return False
        if not self.bucket.acquire(self.stop):
            return False
        with self._lock:
            if self.stop.is_set():
                return False
            self.requests += 1
        return True

    def _error_answer(self, e: stripe.StripeError, method: str, path: str) -> Answer:
        """What an error answer (or no answer) means, redacted, with the sweep's counters and stops updated."""
        import stripe

        from core.engine.http import LazyErrorObject

        a = interpret(e, Probe(method.upper(), path))
        a.error = e
        # Stripe's text may quote the key (some 400/404 answers echo the request): redacted here, the one
        # place every answer to a request made with this key passes, before anyone prints or stores it. An error
        # lean_request raised was parsed from a body already redacted with this very key (PooledClient).
        message = (getattr(e, "user_message", None) or str(e) or "").strip()
        if not isinstance(e, LazyErrorObject):
            a.detail, message = redact(a.detail, self._known), redact(message, self._known)
        a.message = message
        if isinstance(e, stripe.APIConnectionError) and getattr(e, "http_status", None) is None:
            with self._lock:
                self.network_failures += 1
                self.network_in_a_row += 1
                self.network_cause = network_cause(e)
                a.detail = f"no answer from Stripe ({self.network_cause})"
                give_up = self.answered and self.network_in_a_row >= self.settings.max_network_failures
            if give_up:
                self.stop_unreachable()
            return a
        self._heard(inconclusive=a.kind == "retry")
        with self._lock:
            self._note(a)
        return a

    def _note(self, a: Answer) -> None:
        """Take in one HTTP error answer (under self._lock): the account, the edit link, 429s, and the stops
        (a refused key; a storm of inconclusive answers)."""
        storm = False
        if a.kind == "retry":
            self.last_error = "429 rate limited" if a.status == 429 else f"{a.status} server error"
            storm = self.errors_in_a_row >= self.settings.max_error_answers
        if a.account and self.account is None:
            self.account = a.account
            self._join_account(a.account)
        if a.edit is not None and self.edit is None and a.edit.account == self.account:
            self.edit = a.edit
        if a.status == 429:
            self.rate_limited += 1
            if self.pacing is not None:
                self.pacing.count_429()
        if a.kind == "auth":
            if self.auth_problem is None:
                self.auth_kind, self.auth_problem = auth_sentence(a, self.mode)
            self.stop_reason = self.stop_reason or "auth"
            self.stop.set()
        elif storm:
            self.stop_reason = self.stop_reason or "storm"
            self.stop.set()

    def _join_account(self, account: str) -> None:
        """The account is known now: from here on this key is paced by its account's shared bucket, which is
        charged for the requests already sent on the key's own bucket (under self._lock)."""
        if self.pacing is None:
            return
        shared = self.pacing.account_bucket(account, self.mode)
        if shared is not self.bucket:
            for _ in range(self.requests):
                shared.charge()
            self.bucket = shared

    def _heard(self, inconclusive: bool = False) -> None:
        with self._lock:
            self.answered = True
            self.network_in_a_row = 0
            self.errors_in_a_row = self.errors_in_a_row + 1 if inconclusive else 0

    def request(
        self, method: str, path: str, params: dict[str, Any] | None = None, *,
        retry_if: Callable[[Answer], bool] | None = None,
    ) -> tuple[Any, Answer | None, int]:
        """`send`, retrying inconclusive answers (and those `retry_if` picks) up to `settings.retries` times.
        Returns (response or None, the last error answer or None, tries)."""
        tries = 0
        while True:
            resp, a = self.send(method, path, params)
            tries += 1
            again = a is not None and (a.kind == "retry" or (retry_if is not None and retry_if(a)))
            if not again or tries > self.settings.retries or self.stop.is_set():
                return resp, a, tries
            self.stop.wait(self.settings.backoff_s * (2 ** (tries - 1)) * self._rng.uniform(0.5, 1.5))


class Prober:
    """Probes one key's scopes. One instance per sweep; the StripeClient is shared."""

    def __init__(
        self,
        key: str,
        mode: Mode | None,
        settings: ProbeSettings | None = None,
        client: stripe.StripeClient | None = None,
        rng: random.Random | None = None,
        *,
        pacing: Pacing | None = None,
        account_hint: str | None = None,
        pool: ThreadPoolExecutor | None = None,
    ):
        self.mode = mode
        self.settings = settings or ProbeSettings()
        self.http = KeyRequests(key, mode, self.settings, client or shared_client(self.settings), rng,
                                pacing=pacing, account_hint=account_hint)
        self.pool = pool  # shared by many sweeps (a fleet recheck); None: a pool of our own per sweep
        self.stats = SweepStats()
        self._stop = self.http.stop  # set when Stripe refuses the key, or the caller stops early
        self._lock = threading.Lock()

    def _ask(self, probe: Probe, counter: list[int]) -> Answer:
        """Send a probe (retried while inconclusive) and say what its answer means for the permission."""
        # its parameters, plus the base address and the Stripe-Version it must be sent with (this probe only)
        _, answer, tries = self.http.request(probe.method, probe.concrete_path(), probe.options())
        counter[0] += tries
        if answer is None:
            answer = Answer("granted", 200, "answered 2xx")
            if probe.method != "GET":
                with self._lock:
                    self.stats.incidents.append(
                        f"INCIDENT: {probe.method} {probe.path} answered 2xx: a probe may have changed the account."
                    )
        elif answer.kind == "retry" and not self._stop.is_set():
            answer.detail = f"{answer.detail} after {tries} tries"
        return answer

    # --- one scope ---------------------------------------------------------------------
    def probe_scope(self, scope: Scope) -> ScopeOutcome:
        counter = [0]
        outcome = self._probe_scope(scope, counter)
        outcome.requests = counter[0]
        return outcome

    def _settle(self, scope: Scope, a: Answer, level: str) -> tuple[str, str | None]:
        """What one answer says about the scope: ("granted" | "denied" | "na" | "unknown", detail)."""
        if a.kind in ("auth", "stopped", "retry"):
            return "unknown", self._why(a, level)
        if self.mode == "live" and scope.test_only:
            # Only a refusal naming the permission is a verdict for a live key on a test-mode endpoint.
            if a.kind == "denied" and set(a.named) & scope.own_names():
                return "denied", None
            return "na", scope.test_only
        if a.kind == "absent" and scope.absent_api:
            return "na", scope.absent_api
        if a.kind == "denied" and scope.verdict_by_name and a.named and not set(a.named) & scope.own_names():
            # The endpoint serves more than one permission: a refusal naming another one says nothing about this.
            names = ", ".join(f"rak_{n}" for n in a.named)
            return "unknown", (f"{level} probe inconclusive for this permission: Stripe's refusal named {names}, "
                               "which the probed endpoint also needs")
        if a.kind in ("granted", "denied"):
            return a.kind, None
        return "unknown", self._why(a, level)  # forbidden (e.g. account_invalid), broken, absent where it should exist

    def _probe_scope(self, scope: Scope, counter: list[int]) -> ScopeOutcome:
        name = scope.scope
        if self._stop.is_set():
            return ScopeOutcome(name, "unknown", f"not probed: {self.http.stopped_why()}")
        if not scope.probed:
            return ScopeOutcome(name, "unknown", "not checkable from outside")
        if scope.read is not None:
            a = self._ask(scope.read, counter)
            v, why = self._settle(scope, a, "read")
            if v == "unknown":
                return ScopeOutcome(name, "unknown", why)
            if v == "na":
                return ScopeOutcome(name, "none", not_applicable=why)
            if v == "denied":
                # write implies read: settled in one request
                return ScopeOutcome(name, "none", named=a.named, named_label=a.label)
            if scope.write is None:
                return ScopeOutcome(name, "read")
            w = self._ask(scope.write, counter)
            v, why = self._settle(scope, w, "write")
            if v == "granted":
                return ScopeOutcome(name, "write")
            if v == "denied":
                return ScopeOutcome(name, "read", named=w.named, named_label=w.label)
            return ScopeOutcome(name, "unknown", "Read is granted; " + (why or "write probe inconclusive"))
        assert scope.write is not None
        w = self._ask(scope.write, counter)
        v, why = self._settle(scope, w, "write")
        if v == "granted":
            return ScopeOutcome(name, "write")
        if v == "denied":
            return ScopeOutcome(name, "none", named=w.named, named_label=w.label)
        if v == "na":
            return ScopeOutcome(name, "none", not_applicable=why)
        return ScopeOutcome(name, "unknown", why)

    def _why(self, a: Answer, level: str) -> str:
        if a.kind == "auth":
            return "not settled: Stripe refused the key"
        if a.kind == "stopped":
            return f"not settled: {self.http.stopped_why()}"
        return f"{level} probe inconclusive: {a.detail}"

    # --- the sweep ---------------------------------------------------------------------
    def sweep(self, scopes: Iterable[Scope]) -> Iterator[ScopeOutcome]:
        """Probe every scope; yield outcomes as they arrive, in the caller's thread.

        The first scope is probed alone: a refused key then costs one request, and its 403
        usually names the account. The rest run on `concurrency` workers behind one bucket; at a concurrency of
        1 (a fleet recheck's default) they run one after another in the caller's thread.
        """
        scopes = list(scopes)
        self.stats.started = time.monotonic()
        try:
            if not scopes:
                return
            lead = 0  # the first scope that sends a request is probed alone (unprobed ones send nothing)
            while lead < len(scopes) - 1 and not scopes[lead].probed:
                yield self.probe_scope(scopes[lead])
                lead += 1
            first = self.probe_scope(scopes[lead])
            if not self.http.answered and self.http.network_failures:
                self.http.stop_unreachable()  # not one HTTP answer after the first probe's retries: stop at once
            yield first
            rest = scopes[lead + 1:]
            if self._stop.is_set():
                for s in rest:
                    yield ScopeOutcome(s.scope, "unknown", f"not probed: {self.http.stopped_why()}")
                return
            yield from (self._one_by_one(rest) if self.settings.concurrency <= 1 else self._pooled(rest))
        finally:
            self.stats.elapsed_s = time.monotonic() - self.stats.started
            h = self.http
            self.stats.requests, self.stats.account = h.requests, h.account
            self.stats.auth_kind, self.stats.auth_problem = h.auth_kind, h.auth_problem
            self.stats.answered, self.stats.network_failures = h.answered, h.network_failures
            self.stats.edit = h.edit
            if h.stop_reason == "unreachable":
                self.stats.unreachable = unreachable_sentence(
                    h.host, h.network_cause or "no answer", partway=h.answered
                )
            elif h.stop_reason == "storm":
                self.stats.stormed = True
                self.stats.unreachable = storm_sentence(h.errors_in_a_row, h.last_error or "an error")

    def _one_by_one(self, rest: list[Scope]) -> Iterator[ScopeOutcome]:
        """The scopes one after another in this thread: no pool, no hand-off per probe (a fleet recheck's way)."""
        for s in rest:
            yield self.probe_scope(s)  # (once the key is refused: "not probed", without a request)

    def _pooled(self, rest: list[Scope]) -> Iterator[ScopeOutcome]:
        """The scopes on `concurrency` workers of the pool (the sweep's own, or one many sweeps share)."""
        own = self.pool is None
        pool = ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="probe") \
            if self.pool is None else self.pool
        try:
            # at most `concurrency` of this sweep's probes queued at once, so a pool shared by many sweeps
            # is not filled by one sweep's probes all waiting on one bucket
            queue = deque(rest)
            pending: set[Any] = set()
            while queue and len(pending) < self.settings.concurrency:
                pending.add(pool.submit(self.probe_scope, queue.popleft()))
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in done:
                        if queue and not self._stop.is_set():
                            pending.add(pool.submit(self.probe_scope, queue.popleft()))
                        yield f.result()
                for s in queue:  # not sent: the key was refused meanwhile
                    yield ScopeOutcome(s.scope, "unknown", f"not probed: {self.http.stopped_why()}")
            finally:
                if pending:  # the caller stopped iterating: release the workers' waits at once
                    self._stop.set()
        finally:
            if own:
                pool.shutdown(wait=True)
