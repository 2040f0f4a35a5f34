"""The sample transaction: one small test charge made with the pasted key, read back, and its balance transaction.

    result = run_test_transaction(key, amount=100, currency="usd")
    result.status        # passed | failed | refused
    result.steps         # create_charge, read_charge, balance_transaction: passed/failed, elapsed_s, detail

- Test keys only: a live key (or anything that is not an accepted restricted key, or a bad amount or
  currency) is refused before any request, with the reason. Stripe's terms forbid testing with live keys.
- The charge is `POST /v1/charges` with `source=tok_visa`, a description and metadata marking it as a Key
  Health check, and an Idempotency-Key: by default derived from the key's fingerprint, the amount, the
  currency and the current UTC hour, so a retry, a double click or a repeated CLI call within the hour returns
  the same charge instead of making a second one. An explicit `idempotency_key` overrides it (the dashboard
  keeps one per intent in its session). Inconclusive answers (429, 5xx, timeouts) are retried with the same
  Idempotency-Key, so a retry can never charge twice.
- Which permission each step's request needs comes from the catalogue (`needs()`: the create needs the Write of
  the scope whose write probe targets /v1/charges). When Stripe refuses a step for lack of it (the answer's kind
  is "denied"), the result names it in `missing_permission` and says so in the catalogue's words.
"""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import stripe

from core.engine.catalogue import Catalogue, Permission, load_catalogue
from core.engine.keys import Pasted, as_intake
from core.engine.probe import Answer, KeyRequests, auth_sentence, shared_client
from core.engine.result import KeyInfo
from core.engine.settings import ProbeSettings

TxStatus = Literal["passed", "failed", "refused"]
StepResult = Literal["passed", "failed"]

DEFAULT_AMOUNT = 100  # in the currency's smallest unit: 1.00 USD
DEFAULT_CURRENCY = "usd"
MAX_AMOUNT = 10_000  # a "small" test charge: at most 100.00 in a two-decimal currency
TEST_SOURCE = "tok_visa"
DESCRIPTION = "Key Health sample transaction (test mode check; safe to ignore)"
METADATA = {"keyhealth_check": "sample_transaction", "created_by": "Key Health"}
IDEMPOTENCY_PREFIX = "keyhealth-"

STEP_LABELS = {
    "create_charge": "Create a test charge",
    "read_charge": "Read the charge back",
    "balance_transaction": "Find its balance transaction",
}

LIVE_REFUSAL = (
    "This is a live-mode key: Key Health creates sample transactions only with test keys (rk_test_…), "
    "because a live key would move real money; paste the tenant's test-mode restricted key to run it."
)
# The request each step makes, as a path template: the catalogue says which permission it needs (`needs`).
# Finding the balance transaction may list /v1/balance_transactions instead: the same permission.
STEP_REQUESTS: dict[str, tuple[str, str]] = {
    "create_charge": ("POST", "/v1/charges"),
    "read_charge": ("GET", "/v1/charges/{id}"),
    "balance_transaction": ("GET", "/v1/balance_transactions/{id}"),
}


def needs(catalogue: Catalogue | None = None) -> dict[str, Permission]:
    """The permission each step needs, from the catalogue: {step name: Permission}."""
    cat = catalogue or load_catalogue()
    return {step: cat.permission_for(method, path) for step, (method, path) in STEP_REQUESTS.items()}


@dataclass
class Step:
    name: str  # create_charge | read_charge | balance_transaction
    result: StepResult
    elapsed_s: float
    detail: str

    @property
    def label(self) -> str:
        return STEP_LABELS.get(self.name, self.name)

    def to_json(self) -> dict:
        return {"name": self.name, "result": self.result, "elapsed_s": round(self.elapsed_s, 3), "detail": self.detail}


@dataclass
class TransactionResult:
    key: KeyInfo
    status: TxStatus
    problem: str | None = None
    # The permission (rak_…) whose lack made Stripe refuse the failed step (the last one); None when no step
    # was refused for lack of a permission. From the catalogue, decided on the answer's kind.
    missing_permission: str | None = None
    steps: list[Step] = field(default_factory=list)
    charge: dict | None = None  # {"id", "amount", "currency", "status"}
    balance_transaction: str | None = None  # txn_…
    balance_transaction_detail: dict | None = None  # {"id", "amount", "fee", "net", "currency", "status", "type"}
    amount: int | None = None
    currency: str | None = None
    idempotency_key: str | None = None
    replayed: bool = False  # Stripe answered the create from its idempotency cache (an earlier identical request)
    requests: int = 0
    elapsed_s: float = 0.0
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    audit_problem: str | None = None  # it ran but could not be written to the audit trail

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_json(self) -> dict:
        return {
            "status": self.status,
            "problem": self.problem,
            "missing_permission": self.missing_permission,
            "steps": [s.to_json() for s in self.steps],
            "charge": dict(self.charge) if self.charge else None,
            "balance_transaction": self.balance_transaction,
            "balance_transaction_detail": (
                dict(self.balance_transaction_detail) if self.balance_transaction_detail else None
            ),
            "key": self.key.to_dict(),
            "amount": self.amount,
            "currency": self.currency,
            "idempotency_key": self.idempotency_key,
            "replayed": self.replayed,
            "requests": self.requests,
            "elapsed_s": round(self.elapsed_s, 3),
            "at": self.at.isoformat(),
        }


# --------------------------------------------------------------------------------------------------
# Local checks (no network)


def refusal(info: KeyInfo) -> str | None:
    """Why this key may not run a sample transaction, decided locally; None when it may."""
    if info.mode == "live":
        return LIVE_REFUSAL
    if not info.accepted:
        return info.problem or "The key was not accepted; paste the tenant's test-mode restricted key (rk_test_…)."
    if info.mode != "test":
        return "Only a test-mode restricted key (rk_test_…) can run the sample transaction."
    return None


def _check_amount(amount: Any) -> str | None:
    if isinstance(amount, bool) or not isinstance(amount, int):
        return (
            "The amount must be a whole number in the currency's smallest unit (e.g. 100 for 1.00 USD); "
            f"got {amount!r}."
        )
    if not 1 <= amount <= MAX_AMOUNT:
        return f"The amount must be between 1 and {MAX_AMOUNT} in the currency's smallest unit; got {amount}."
    return None


def normalise_currency(currency: Any) -> str | None:
    if not isinstance(currency, str):
        return None
    c = currency.strip().lower()
    return c if re.fullmatch(r"[a-z]{3}", c) else None


def default_idempotency_key(fingerprint: str, amount: int, currency: str, now: datetime | None = None) -> str:
    """Deterministic within one UTC hour for one key, amount and currency."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    hour = now.strftime("%Y-%m-%dT%H")
    digest = hashlib.sha256(f"{fingerprint}|{amount}|{currency}|{hour}".encode()).hexdigest()[:40]
    return IDEMPOTENCY_PREFIX + digest


def new_idempotency_key() -> str:
    """A fresh random key, for a new intent in the dashboard."""
    import secrets

    return IDEMPOTENCY_PREFIX + secrets.token_hex(20)


# --------------------------------------------------------------------------------------------------
# Requests


def _failure(a: Answer, tries: int, needs: Permission, mode: str | None,
             auth_problem: str | None) -> tuple[str, Permission | None]:
    """One sentence for a failed step, and the permission it lacked when Stripe refused it for that
    (decided on the answer's kind, never on its words). `needs`: what the step's request needs."""
    if a.kind == "denied":
        return f"the key lacks {needs.words} ({needs.name})", needs
    if a.kind == "auth":
        return auth_sentence(a, mode)[1], None
    if a.kind == "stopped":  # an earlier request of this key was refused with a 401
        return auth_problem or "not sent: Stripe refused the key", None
    if a.kind == "retry":
        return f"Stripe did not answer conclusively ({a.detail}, {tries} tries); try again in a minute", None
    if a.code == "idempotency_error" or isinstance(a.error, stripe.IdempotencyError):
        return (
            "Stripe refused the request: its idempotency key was already used with different values "
            "(start a new test charge)"
        ), None
    message = a.message or a.detail  # redacted by the KeyRequests that sent it: never the SDK's raw text
    return (f"Stripe answered {a.status}: {message[:200]}" if a.status else f"Stripe error: {message[:200]}"), None


def _data(resp: Any) -> dict:
    d = getattr(resp, "data", None)
    return d if isinstance(d, dict) else {}


def _id(v: Any) -> Any:
    return v.get("id") if isinstance(v, dict) else v


def _input_problem(info: KeyInfo, key: Any, amount: Any, cur: str | None, currency: Any) -> str | None:
    """Why the key or the amount and currency refuse the run before any request, or None."""
    why = refusal(info)
    if why is not None or key is None:
        return why or "The key was not accepted."
    bad = _check_amount(amount)
    if bad:
        return bad
    if cur is None:
        return f"The currency must be a three-letter ISO code such as usd or eur; got {currency!r}."
    return None


def _idempotency(given: Any, fingerprint: str, amount: int, cur: str, now: datetime) -> tuple[str | None, str]:
    """(the idempotency key to send, "") or (None, why the given one is refused). None given: the default."""
    if given is None:
        return default_idempotency_key(fingerprint, amount, cur, now), ""
    if not isinstance(given, str) or not 1 <= len(given.strip()) <= 255:
        return None, "The idempotency key must be 1 to 255 characters of text."
    ikey = given.strip()
    if not all(" " <= c <= "~" for c in ikey):  # it travels in an HTTP header: no line breaks, no NUL
        return None, ("The idempotency key may hold only printable ASCII characters (letters, digits, - and _ "
                      "are safest); remove the others.")
    return ikey, ""


@dataclass
class _Run:
    """One sample transaction's requests, step by step. Each step returns the finished result when the run stops
    there, or None to go on."""

    result: TransactionResult
    http: KeyRequests
    step_needs: dict[str, Permission]
    mode: str | None
    started: float
    ch: dict = field(default_factory=dict)  # the charge as created
    back: dict = field(default_factory=dict)  # the charge as read back

    def call(self, step: str, object_id: str | None = None, **params: Any) -> tuple[Any, Answer | None, int]:
        """Send the step's request (STEP_REQUESTS; on `object_id`, or on the collection without one):
        (response or None, what the error answer means or None, tries). A 409 means the same idempotency
        key is in flight in another request: retrying replays that request's result, so it is retried too."""
        method, template = STEP_REQUESTS[step]
        path = template.replace("{id}", object_id) if object_id else template.removesuffix("/{id}")
        return self.http.request(method.lower(), path, params, retry_if=lambda a: a.status == 409)

    def step(self, name: str, outcome: StepResult, t0: float, detail: str) -> None:
        self.result.steps.append(Step(name, outcome, time.monotonic() - t0, detail))

    def failed(self, step: str, t0: float, err: Answer, tries: int) -> tuple[str, Permission | None]:
        """Record the failed step; (its sentence, the permission it lacked or None)."""
        detail, missing = _failure(err, tries, self.step_needs[step], self.mode, self.http.auth_problem)
        self.step(step, "failed", t0, f"failed: {detail}")
        self.result.missing_permission = missing.name if missing is not None else None
        return detail, missing

    def finish(self, status: TxStatus, problem: str | None = None) -> TransactionResult:
        result = self.result
        result.status = status
        result.problem = problem
        result.requests = self.http.requests
        result.elapsed_s = time.monotonic() - self.started
        return result

    def create(self, ikey: str, amount: int, cur: str) -> TransactionResult | None:
        """1. Create the test charge."""
        result = self.result
        t0 = time.monotonic()
        resp, err, tries = self.call(
            "create_charge", idempotency_key=ikey, amount=amount, currency=cur, source=TEST_SOURCE,
            description=DESCRIPTION, metadata=dict(METADATA),
        )
        if err is not None:
            detail, missing = self.failed("create_charge", t0, err, tries)
            if missing is not None:
                problem = (
                    f"The key lacks {missing.words} ({missing.name}), so no test charge was created; "
                    f"set {missing.label} to {missing.level.capitalize()} on the key in the Stripe Dashboard "
                    "to run the sample transaction."
                )
            else:
                problem = f"Creating the test charge failed: {detail}."
            return self.finish("failed", problem)
        ch = self.ch = _data(resp)
        headers = getattr(resp, "headers", None) or {}
        try:
            result.replayed = str(headers.get("Idempotent-Replayed", "")).lower() == "true"
        except Exception:  # noqa: BLE001 -- an odd header only means "not known to be replayed"
            result.replayed = False
        charge_id = ch.get("id")
        result.charge = {
            "id": charge_id, "amount": ch.get("amount"), "currency": ch.get("currency"), "status": ch.get("status"),
        }
        again = " (Stripe returned the charge made earlier with the same idempotency key)" if result.replayed else ""
        if not charge_id or ch.get("status") != "succeeded":
            self.step("create_charge", "failed", t0,
                      f"failed: the charge {charge_id or '(no id)'} is {ch.get('status')!r}, not 'succeeded'{again}")
            return self.finish("failed", f"The test charge did not succeed (status {ch.get('status')!r}).")
        self.step("create_charge", "passed", t0,
                  f"created {charge_id}: {ch.get('amount')} {ch.get('currency')}, {ch.get('status')}{again}")
        return None

    def read_back(self) -> TransactionResult | None:
        """2. Read the charge back: it must be the one created."""
        charge = self.result.charge or {}
        charge_id = charge.get("id")
        t0 = time.monotonic()
        resp, err, tries = self.call("read_charge", charge_id)
        if err is not None:
            detail, _ = self.failed("read_charge", t0, err, tries)
            return self.finish("failed", f"The charge {charge_id} was created but reading it back failed: {detail}.")
        back = self.back = _data(resp)
        mismatch = [k for k in ("id", "amount", "currency", "status") if back.get(k) != charge.get(k)]
        if mismatch:
            self.step("read_charge", "failed", t0, f"failed: the charge read back differs in {', '.join(mismatch)}")
            return self.finish(
                "failed", f"The charge {charge_id} read back differs from the one created ({', '.join(mismatch)})."
            )
        self.step("read_charge", "passed", t0,
                  f"read {charge_id} back: {back.get('amount')} {back.get('currency')}, {back.get('status')}")
        return None

    def find_balance_transaction(self, charge_id: Any) -> tuple[dict, Answer | None, int]:
        """The charge's balance transaction (by its id when the charge names it, else by listing the charge's)."""
        txn_id = _id(self.back.get("balance_transaction")) or _id(self.ch.get("balance_transaction"))
        if txn_id:
            resp, err, tries = self.call("balance_transaction", txn_id)
            return (_data(resp) if err is None else {}), err, tries
        resp, err, tries = self.call("balance_transaction", source=charge_id, limit=1)
        found = (_data(resp).get("data") or []) if err is None else []
        return (found[0] if found and isinstance(found[0], dict) else {}), err, tries

    def balance_transaction(self) -> TransactionResult:
        """3. The charge's balance transaction: it must exist and belong to the charge."""
        result = self.result
        charge_id = (result.charge or {}).get("id")
        t0 = time.monotonic()
        txn, err, tries = self.find_balance_transaction(charge_id)
        if err is not None:
            detail, _ = self.failed("balance_transaction", t0, err, tries)
            return self.finish(
                "failed", f"The charge {charge_id} was created but its balance transaction could not be read: {detail}."
            )
        if not txn.get("id"):
            self.step("balance_transaction", "failed", t0, f"failed: Stripe has no balance transaction for {charge_id}")
            return self.finish("failed", f"The charge {charge_id} has no balance transaction yet.")
        source = _id(txn.get("source"))
        if source and source != charge_id:
            self.step("balance_transaction", "failed", t0, f"failed: {txn['id']} belongs to {source}, not {charge_id}")
            return self.finish("failed", f"The balance transaction {txn['id']} does not belong to the test charge.")
        result.balance_transaction = txn["id"]
        result.balance_transaction_detail = {
            k: txn.get(k) for k in ("id", "amount", "fee", "net", "currency", "status", "type")
        }
        self.step("balance_transaction", "passed", t0,
                  f"found {txn['id']}: {txn.get('type')} {txn.get('amount')} {txn.get('currency')}, "
                  f"fee {txn.get('fee')}, net {txn.get('net')}, {txn.get('status')}")
        return self.finish("passed")


def run_test_transaction(
    key: Pasted | str | None,
    *,
    amount: int = DEFAULT_AMOUNT,
    currency: str = DEFAULT_CURRENCY,
    idempotency_key: str | None = None,
    settings: ProbeSettings | None = None,
    client: stripe.StripeClient | None = None,
    now: datetime | None = None,
    catalogue: Catalogue | None = None,
) -> TransactionResult:
    """Create one small test charge with `key` (a parsed paste: SecretKey or Intake), read it back, find its
    balance transaction. Refused (no request at all) for live keys, non-accepted keys and bad input.
    Which permission each step needs comes from `catalogue` (default: data/catalogue.toml)."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    taken = as_intake(key)
    info = taken.info
    cur = normalise_currency(currency)
    result = TransactionResult(key=info, status="refused", amount=amount if isinstance(amount, int) else None,
                               currency=cur or (currency if isinstance(currency, str) else None), at=now)

    def refuse(why: str) -> TransactionResult:
        result.problem = why
        result.elapsed_s = time.monotonic() - started
        return result

    why = _input_problem(info, taken.key, amount, cur, currency)
    if why is not None:
        return refuse(why)
    assert cur is not None  # _input_problem refuses a currency that is not one
    ikey, why = _idempotency(idempotency_key, info.fingerprint or "", amount, cur, now)
    if ikey is None:
        return refuse(why)
    result.idempotency_key = ikey
    step_needs = needs(catalogue)

    settings = settings or ProbeSettings()
    client = client or shared_client(settings)
    run = _Run(result, KeyRequests(str(taken.key), info.mode, settings, client), step_needs, info.mode, started)
    return run.create(ikey, amount, cur) or run.read_back() or run.balance_transaction()


__all__ = [
    "DEFAULT_AMOUNT",
    "DEFAULT_CURRENCY",
    "LIVE_REFUSAL",
    "MAX_AMOUNT",
    "STEP_LABELS",
    "Step",
    "TransactionResult",
    "default_idempotency_key",
    "needs",
    "new_idempotency_key",
    "refusal",
    "run_test_transaction",
]
