"""Sample data: what a pasted key may read, masked, bounded and paced.

    data = fetch_sample_data(key, window_days=30, max_rows=100)
    for ds in data.datasets:            # balance, charges, balance_transactions, invoices, subscriptions,
        ds.state, ds.frame             # checkout_sessions, payment_links, products, prices
                                       # state: loaded | empty | not_permitted (ds.permission) | failed (ds.reason)

- Only GET requests, through the shared StripeClient with the key passed per call; lists are paged with
  `starting_after`, bounded by a time window (activity datasets) and a row cap (every dataset).
- Sent like the probes, through one `core.engine.probe.KeyRequests` (token bucket at the ProbeSettings rate for the
  key's mode, shared by every worker); 429, 5xx, timeouts and network errors are retried with backoff
  `settings.retries` times and then the dataset is `failed` with a sentence. A refusal for lack of permission (a 403) is
  `not_permitted` with the permission that would allow it, as the catalogue names it (`DatasetSpec.needs`: the
  scope whose read probe targets the dataset's endpoint); a 401 stops everything (the key itself is refused).
- Personal data is masked before anything reaches a DataFrame (see `Masker`): by field name (emails, names,
  phone numbers, addresses, tax ids) and by value pattern (emails and phone numbers inside any text),
  recursively through nested objects and lists; values learned from personal fields are also masked wherever
  else they appear (a name repeated in a description). Card brand and last 4 stay.
"""
from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import stripe

from core.engine.catalogue import Catalogue, Permission, load_catalogue
from core.engine.keys import Pasted, as_intake
from core.engine.probe import Answer, KeyRequests, shared_client
from core.engine.result import KeyInfo, Mode
from core.engine.settings import ProbeSettings

if TYPE_CHECKING:  # pandas is imported where a frame is built: `check`, `recheck` and `history` never load it
    import pandas as pd

State = Literal["loaded", "empty", "not_permitted", "failed"]
STATES: tuple[str, ...] = ("loaded", "empty", "not_permitted", "failed")

DEFAULT_WINDOW_DAYS = 30
DEFAULT_MAX_ROWS = 100
MAX_WINDOW_DAYS = 365
MAX_ROWS_CAP = 1000
PAGE_SIZE = 100  # Stripe's largest page

# --------------------------------------------------------------------------------------------------
# Masking

MASK_EMAIL = "[email]"
MASK_NAME = "[name]"
MASK_PHONE = "[phone]"
MASK_ADDRESS = "[address]"
MASK_TAX_ID = "[tax id]"
_MARKERS = {"email": MASK_EMAIL, "name": MASK_NAME, "phone": MASK_PHONE, "address": MASK_ADDRESS, "tax_id": MASK_TAX_ID}

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
PHONE_RE = re.compile(
    r"(?<![\w+])(?:\+\d[\d\s().\-]{6,}\d"  # international: +1 555 010 0199, +44 (20) 7946-0958
    r"|\(\d{3}\)\s?\d{3}[\s.\-]\d{4}"  # (555) 010-0199
    r"|\d{3}[\s.\-]\d{3}[\s.\-]\d{4})(?!\w)"  # 555-010-0199
)
# Objects whose `name` is a catalogue or configuration name, not a person's.
NON_PERSONAL_OBJECTS = frozenset(
    {
        "product", "price", "plan", "coupon", "promotion_code", "tax_rate", "tax_code", "shipping_rate",
        "payment_link", "product_feature", "entitlements.feature", "billing.meter", "webhook_endpoint",
        "terminal.location", "climate.product", "climate.supplier", "test_helpers.test_clock", "file",
    }
)
_NOT_PERSONAL_NAME_KEYS = frozenset({"display_name", "product_name", "plan_name", "price_name", "feature_name"})
_MIN_LEARNED = 4  # shorter values (e.g. "US", "Bo") are not searched for in other text


def _personal_kind(key: str, parent_object: str | None) -> str | None:
    """What kind of personal data a field holds, judged by its name (None: not personal by name)."""
    k = key.lower()
    if k.endswith(("_collection", "_verified")):  # checkout configuration, flags
        return None
    if "email" in k:
        return "email"
    if "phone" in k:
        return "phone"
    if k == "address" or k.endswith("_address"):
        return "address"
    if k in ("tax_ids", "customer_tax_ids"):
        return "tax_id"
    if k == "name":
        return None if parent_object in NON_PERSONAL_OBJECTS else "name"
    if k.endswith("_name") and k not in _NOT_PERSONAL_NAME_KEYS:
        return "name"
    return None


def _object_type(d: dict) -> str | None:
    o = d.get("object")
    return o if isinstance(o, str) else None


class Masker:
    """Masks personal data in Stripe objects (plain dicts and lists from the JSON answer).

    `learn()` every object first, then `mask()` each: values found under personal field names are then also
    masked wherever else they appear, in any object given to the same Masker.
    """

    def __init__(self) -> None:
        self._learned: dict[str, str] = {}  # lower-cased value -> marker
        self._pattern: re.Pattern | None = None

    # -- learning -------------------------------------------------------------------------------
    def learn(self, obj: Any) -> Masker:
        self._learn(obj, None)
        self._pattern = None
        return self

    def _learn(self, obj: Any, kind: str | None) -> None:
        if isinstance(obj, dict):
            po = _object_type(obj)
            for k, v in obj.items():
                if kind is not None:
                    if k != "country":
                        self._learn(v, kind)
                else:
                    self._learn(v, _personal_kind(k, po))
        elif isinstance(obj, list):
            for v in obj:
                self._learn(v, kind)
        elif isinstance(obj, str) and kind is not None:
            value = obj.strip()
            if len(value) >= _MIN_LEARNED:
                self._learned[value.lower()] = _MARKERS[kind]

    def _learned_re(self) -> re.Pattern | None:
        if self._pattern is None and self._learned:
            alts = sorted(self._learned, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(a) for a in alts), re.IGNORECASE)
        return self._pattern

    # -- masking --------------------------------------------------------------------------------
    def mask(self, obj: Any) -> Any:
        """A masked copy; the input is not changed."""
        return self._mask(obj)

    def _mask(self, obj: Any) -> Any:
        if isinstance(obj, dict):
            po = _object_type(obj)
            out = {}
            for k, v in obj.items():
                kind = _personal_kind(k, po)
                out[k] = self._mask(v) if kind is None else self._mask_field(kind, v)
            return out
        if isinstance(obj, (list, tuple)):
            return [self._mask(v) for v in obj]
        if isinstance(obj, str):
            return self.mask_text(obj)
        return obj

    def _mask_field(self, kind: str, v: Any) -> Any:
        if v is None or v == "" or isinstance(v, (bool, int, float)):
            return v  # absence (and flags) stay visible
        marker = _MARKERS[kind]
        if isinstance(v, dict):
            if kind == "address":  # keep the shape and the country; every other part is masked
                return {
                    k: (x if k == "country" or x is None or x == "" else marker) for k, x in v.items()
                }
            return {k: (x if x is None or x == "" else marker) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [marker for _ in v] if v else []
        return marker

    def mask_text(self, s: str) -> str:
        s = EMAIL_RE.sub(MASK_EMAIL, s)
        s = PHONE_RE.sub(MASK_PHONE, s)
        pat = self._learned_re()
        if pat is not None:
            s = pat.sub(lambda m: self._learned.get(m.group(0).lower(), MASK_NAME), s)
        return s


def mask_personal(obj: Any) -> Any:
    """Mask one object (or list of objects) on its own."""
    return Masker().learn(obj).mask(obj)


# --------------------------------------------------------------------------------------------------
# Datasets


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # stable id: the JSON "name" and the CSV file name
    label: str  # what the page shows
    path: str  # the GET endpoint; the catalogue says which permission guards it (`needs`)
    windowed: bool = True  # filter by created >= now - window (activity); catalogue data is only capped
    single: bool = False  # one object (the balance), not a list
    params: tuple[tuple[str, Any], ...] = ()

    def needs(self, catalogue: Catalogue | None = None) -> Permission:
        """The permission reading this dataset needs, from the catalogue (the scope whose read probe targets
        the same resource): its Stripe name and Dashboard label are the catalogue entry's."""
        return (catalogue or load_catalogue()).permission_for("GET", self.path)


DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec("balance", "Balance", "/v1/balance", windowed=False, single=True),
    DatasetSpec("charges", "Charges", "/v1/charges"),
    DatasetSpec("balance_transactions", "Balance transactions", "/v1/balance_transactions"),
    DatasetSpec("invoices", "Invoices", "/v1/invoices"),
    DatasetSpec("subscriptions", "Subscriptions", "/v1/subscriptions", windowed=False),
    DatasetSpec("checkout_sessions", "Checkout sessions", "/v1/checkout/sessions"),
    DatasetSpec("payment_links", "Payment links", "/v1/payment_links", windowed=False),
    DatasetSpec("products", "Products", "/v1/products", windowed=False),
    DatasetSpec("prices", "Prices", "/v1/prices", windowed=False),
)
DATASET_NAMES: tuple[str, ...] = tuple(d.name for d in DATASETS)


def spec(name: str) -> DatasetSpec:
    for d in DATASETS:
        if d.name == name:
            return d
    raise KeyError(name)


def _g(obj: Any, *path: str) -> Any:
    """obj[p0][p1]… or None when any step is missing."""
    for p in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(p)
    return obj


def _id(v: Any) -> Any:
    """An id, whether the field holds the id or the expanded object."""
    return v.get("id") if isinstance(v, dict) else v


def _card(c: dict) -> tuple[Any, Any]:
    card = _g(c, "payment_method_details", "card") or {}
    source = c.get("source")
    src = source if isinstance(source, dict) else {}
    return card.get("brand") or src.get("brand"), card.get("last4") or src.get("last4")


def _row_charge(c: dict) -> dict:
    brand, last4 = _card(c)
    return {
        "id": c.get("id"), "created": c.get("created"), "amount": c.get("amount"),
        "amount_refunded": c.get("amount_refunded"), "currency": c.get("currency"), "status": c.get("status"),
        "paid": c.get("paid"), "refunded": c.get("refunded"), "captured": c.get("captured"),
        "description": c.get("description"), "customer": _id(c.get("customer")),
        "billing_name": _g(c, "billing_details", "name"), "billing_email": _g(c, "billing_details", "email"),
        "card_brand": brand, "card_last4": last4, "failure_code": c.get("failure_code"),
        "balance_transaction": _id(c.get("balance_transaction")), "livemode": c.get("livemode"),
    }


def _row_txn(t: dict) -> dict:
    return {
        "id": t.get("id"), "created": t.get("created"), "type": t.get("type"), "amount": t.get("amount"),
        "fee": t.get("fee"), "net": t.get("net"), "currency": t.get("currency"), "status": t.get("status"),
        "source": _id(t.get("source")), "reporting_category": t.get("reporting_category"),
        "description": t.get("description"), "available_on": t.get("available_on"),
    }


def _row_invoice(i: dict) -> dict:
    sub = i.get("subscription") or _g(i, "parent", "subscription_details", "subscription")
    return {
        "id": i.get("id"), "created": i.get("created"), "number": i.get("number"), "status": i.get("status"),
        "customer": _id(i.get("customer")), "customer_name": i.get("customer_name"),
        "customer_email": i.get("customer_email"), "currency": i.get("currency"), "total": i.get("total"),
        "amount_due": i.get("amount_due"), "amount_paid": i.get("amount_paid"), "subscription": _id(sub),
        "collection_method": i.get("collection_method"), "due_date": i.get("due_date"),
    }


def _row_subscription(s: dict) -> dict:
    items = _g(s, "items", "data") or []
    first = items[0] if items and isinstance(items[0], dict) else {}
    first_price = first.get("price")
    price = first_price if isinstance(first_price, dict) else {}
    return {
        "id": s.get("id"), "created": s.get("created"), "status": s.get("status"),
        "customer": _id(s.get("customer")), "currency": s.get("currency") or price.get("currency"),
        "price": price.get("id") or _id(first.get("price")), "product": _id(price.get("product")),
        "unit_amount": price.get("unit_amount"), "quantity": first.get("quantity"),
        "interval": _g(price, "recurring", "interval"), "items": len(items),
        "cancel_at_period_end": s.get("cancel_at_period_end"), "canceled_at": s.get("canceled_at"),
    }


def _row_session(s: dict) -> dict:
    return {
        "id": s.get("id"), "created": s.get("created"), "status": s.get("status"),
        "payment_status": s.get("payment_status"), "mode": s.get("mode"), "amount_total": s.get("amount_total"),
        "currency": s.get("currency"), "customer": _id(s.get("customer")),
        "customer_name": _g(s, "customer_details", "name"),
        "customer_email": s.get("customer_email") or _g(s, "customer_details", "email"),
        "payment_link": _id(s.get("payment_link")), "payment_intent": _id(s.get("payment_intent")),
        "subscription": _id(s.get("subscription")),
    }


def _row_link(p: dict) -> dict:
    return {
        "id": p.get("id"), "active": p.get("active"), "currency": p.get("currency"), "url": p.get("url"),
        "billing_address_collection": p.get("billing_address_collection"), "livemode": p.get("livemode"),
    }


def _row_product(p: dict) -> dict:
    return {
        "id": p.get("id"), "created": p.get("created"), "name": p.get("name"), "active": p.get("active"),
        "description": p.get("description"), "default_price": _id(p.get("default_price")),
        "updated": p.get("updated"),
    }


def _row_price(p: dict) -> dict:
    return {
        "id": p.get("id"), "created": p.get("created"), "product": _id(p.get("product")), "active": p.get("active"),
        "currency": p.get("currency"), "unit_amount": p.get("unit_amount"), "type": p.get("type"),
        "interval": _g(p, "recurring", "interval"), "nickname": p.get("nickname"), "lookup_key": p.get("lookup_key"),
    }


_ROWS: dict[str, Callable[[dict], dict]] = {
    "charges": _row_charge,
    "balance_transactions": _row_txn,
    "invoices": _row_invoice,
    "subscriptions": _row_subscription,
    "checkout_sessions": _row_session,
    "payment_links": _row_link,
    "products": _row_product,
    "prices": _row_price,
}
_TIME_COLUMNS = ("created", "available_on", "due_date", "canceled_at", "updated")
BALANCE_COLUMNS = ["currency", "available", "pending"]


def columns(name: str) -> list[str]:
    if name == "balance":
        return list(BALANCE_COLUMNS)
    return list(_ROWS[name]({}).keys())


def _balance_rows(b: dict) -> list[dict]:
    per: dict[str, dict] = {}
    for part in ("available", "pending"):
        for entry in b.get(part) or []:
            cur = entry.get("currency")
            if not cur:
                continue
            row = per.setdefault(cur, {"currency": cur, "available": 0, "pending": 0})
            row[part] += int(entry.get("amount") or 0)
    return [per[c] for c in sorted(per)]


def build_frame(name: str, masked_objects: list[dict]) -> pd.DataFrame:
    """The DataFrame of one dataset from already-masked objects (fixed columns, times in UTC)."""
    import pandas as pd

    if name == "balance":
        rows = [r for b in masked_objects for r in _balance_rows(b)]
        return pd.DataFrame(rows, columns=BALANCE_COLUMNS)
    rows = [_ROWS[name](o) for o in masked_objects]
    df = pd.DataFrame(rows, columns=columns(name))
    for col in _TIME_COLUMNS:
        if col in df.columns:
            df[col] = pd.to_datetime(pd.to_numeric(df[col], errors="coerce"), unit="s", utc=True)
    return df


# --------------------------------------------------------------------------------------------------
# Results


@dataclass
class Dataset:
    name: str
    label: str
    state: State
    frame: pd.DataFrame
    permission: str | None = None  # set when not_permitted: the permission that would allow it
    reason: str | None = None  # a sentence when not_permitted or failed
    requests: int = 0
    truncated: bool = False  # the row cap cut the list short

    @property
    def count(self) -> int:
        return len(self.frame)

    def rows(self) -> list[dict]:
        """JSON-safe records: times as ISO 8601 (UTC), missing values as None."""
        if self.frame.empty:
            return []
        return json.loads(self.frame.to_json(orient="records", date_format="iso", date_unit="s"))

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "state": self.state,
            "permission": self.permission,
            "reason": self.reason,
            "count": self.count,
            "truncated": self.truncated,
            "rows": self.rows(),
        }


@dataclass
class SampleData:
    key: KeyInfo
    datasets: list[Dataset] = field(default_factory=list)
    problem: str | None = None  # the key was refused (locally, or by Stripe with a 401)
    account: str | None = None
    window_days: int = DEFAULT_WINDOW_DAYS
    max_rows: int = DEFAULT_MAX_ROWS
    requests: int = 0
    elapsed_s: float = 0.0
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    audit_problem: str | None = None  # the view was read but could not be written to the audit trail

    def get(self, name: str) -> Dataset | None:
        for d in self.datasets:
            if d.name == name:
                return d
        return None

    def frame(self, name: str) -> pd.DataFrame:
        import pandas as pd

        d = self.get(name)
        return d.frame if d is not None else pd.DataFrame(columns=columns(name))

    def states(self) -> dict[str, str]:
        return {d.name: d.state for d in self.datasets}

    def to_json(self) -> dict:
        return {
            "key": self.key.to_dict(),
            "account": self.account,
            "problem": self.problem,
            "window_days": self.window_days,
            "max_rows": self.max_rows,
            "requests": self.requests,
            "elapsed_s": round(self.elapsed_s, 3),
            "fetched_at": self.fetched_at.isoformat(),
            "datasets": [d.to_json() for d in self.datasets],
        }


# --------------------------------------------------------------------------------------------------
# Fetching


@dataclass
class _Fetched:
    spec: DatasetSpec
    needs: Permission  # what reading it takes (from the catalogue)
    state: State | None = None  # None: objects fetched; state settled after masking
    objects: list[dict] = field(default_factory=list)
    permission: str | None = None
    reason: str | None = None
    requests: int = 0
    truncated: bool = False


class _Reader:
    """GET requests for one key through core.engine.probe.KeyRequests (paced, retried, a 401 stops all)."""

    def __init__(self, key: str, mode: Mode | None, settings: ProbeSettings, client: stripe.StripeClient,
                 rng: random.Random | None = None):
        self.http = KeyRequests(key, mode, settings, client, rng)

    @property
    def requests(self) -> int:
        return self.http.requests

    @property
    def account(self) -> str | None:
        return self.http.account

    @property
    def auth_problem(self) -> str | None:
        return self.http.auth_problem

    def get(self, path: str, params: dict) -> tuple[Answer | None, Any, int]:
        """(error answer or None, data, tries)."""
        resp, answer, tries = self.http.request("get", path, params)
        if answer is not None:
            return answer, None, tries
        data = resp.data
        if not isinstance(data, dict):
            return Answer("broken", getattr(resp, "code", None), "the answer was not a JSON object"), None, tries
        return None, data, tries

    def fetch(self, spec: DatasetSpec, needs: Permission, since: int | None, max_rows: int,
              page_size: int = PAGE_SIZE) -> _Fetched:
        out = _Fetched(spec, needs)
        try:
            self._fetch(out, since, max_rows, page_size)
        except Exception as e:  # noqa: BLE001 -- never a traceback for the user: the dataset fails with a sentence
            out.state, out.objects = "failed", []
            out.reason = f"Reading {spec.label.lower()} failed unexpectedly ({type(e).__name__}); try again."
        return out

    def _fetch(self, out: _Fetched, since: int | None, max_rows: int, page_size: int) -> None:
        spec = out.spec
        starting_after = None
        while True:
            params: dict[str, Any] = dict(spec.params)
            if not spec.single:
                params["limit"] = min(page_size, max_rows - len(out.objects))
                if spec.windowed and since is not None:
                    params["created"] = {"gte": since}
                if starting_after:
                    params["starting_after"] = starting_after
            answer, data, tries = self.get(spec.path, params)
            out.requests += tries - (1 if answer is not None and answer.kind == "stopped" else 0)
            if answer is not None:
                self._settle_error(out, answer, tries)
                return
            if spec.single:
                out.objects = [data]
                return
            page = [o for o in (data.get("data") or []) if isinstance(o, dict)]
            out.objects.extend(page)
            if len(out.objects) >= max_rows:
                out.truncated = bool(data.get("has_more")) or len(out.objects) > max_rows
                out.objects = out.objects[:max_rows]
                return
            if not data.get("has_more") or not page or not page[-1].get("id"):
                return
            starting_after = page[-1]["id"]

    def _settle_error(self, out: _Fetched, a: Answer, tries: int) -> None:
        spec = out.spec
        out.objects = []
        if a.kind == "denied":
            out.state = "not_permitted"
            out.permission = out.needs.name
            out.reason = (
                f"The key lacks {out.needs.words} ({out.needs.name}), so Stripe refused to show "
                f"{spec.label.lower()}."
            )
        elif a.kind == "auth":
            out.state = "failed"
            out.reason = self.auth_problem or a.detail
        elif a.kind == "stopped":
            out.state = "failed"
            out.reason = f"Not read: Stripe refused the key before {spec.label.lower()} were read."
        elif a.kind == "retry":
            out.state = "failed"
            out.reason = (
                f"Stripe did not answer conclusively for {spec.label.lower()} ({a.detail}, {tries} tries); "
                "try again in a minute."
            )
        else:
            out.state = "failed"
            out.reason = f"Stripe's answer for {spec.label.lower()} was unexpected ({a.detail})."


def _validate(window_days: int, max_rows: int, page_size: int = PAGE_SIZE) -> None:
    if not isinstance(window_days, int) or not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise ValueError(f"The time window must be 1 to {MAX_WINDOW_DAYS} days; got {window_days!r}.")
    if not isinstance(max_rows, int) or not 1 <= max_rows <= MAX_ROWS_CAP:
        raise ValueError(f"The row cap must be 1 to {MAX_ROWS_CAP} rows per dataset; got {max_rows!r}.")
    if not isinstance(page_size, int) or not 1 <= page_size <= PAGE_SIZE:
        raise ValueError(f"The page size must be 1 to {PAGE_SIZE} rows; got {page_size!r}.")


Progress = Callable[[str, int, int], object]  # (dataset name just read, datasets done, total); result unused


def fetch_sample_data(
    key: Pasted | str | None,
    *,
    window_days: int = DEFAULT_WINDOW_DAYS,
    max_rows: int = DEFAULT_MAX_ROWS,
    datasets: tuple[str, ...] | list[str] | None = None,
    page_size: int = PAGE_SIZE,
    settings: ProbeSettings | None = None,
    client: stripe.StripeClient | None = None,
    now: datetime | None = None,
    on_progress: Progress | None = None,
    catalogue: Catalogue | None = None,
) -> SampleData:
    """Read every dataset the key may read. `key`: the parsed paste (a SecretKey or an Intake:
    core.engine.keys; raw text from a script or a test is parsed here).

    Which permission each dataset needs comes from `catalogue` (default: data/catalogue.toml).
    A key that is not an accepted restricted key makes no request (`problem` says why). The balance is read
    first, alone: a key Stripe refuses costs that one request. Raises ValueError (one sentence) for a bad
    window or row cap.
    """
    _validate(window_days, max_rows, page_size)
    started = time.monotonic()
    now = now or datetime.now(UTC)
    taken = as_intake(key)
    info = taken.info
    result = SampleData(key=info, window_days=window_days, max_rows=max_rows, fetched_at=now)
    if not info.accepted or taken.key is None:
        result.problem = info.problem or "The key was not accepted."
        return result

    names = list(datasets) if datasets is not None else list(DATASET_NAMES)
    unknown = [n for n in names if n not in DATASET_NAMES]
    if unknown:
        raise ValueError(f"Unknown dataset {unknown[0]!r}; choose from {', '.join(DATASET_NAMES)}.")
    specs = [spec(n) for n in names]
    cat = catalogue or load_catalogue()
    needs = {s.name: s.needs(cat) for s in specs}
    settings = settings or ProbeSettings()
    client = client or shared_client(settings)
    reader = _Reader(str(taken.key), info.mode, settings, client)
    since = int((now - timedelta(days=window_days)).timestamp())

    fetched: dict[str, _Fetched] = {}
    total = len(specs)

    def done(f: _Fetched) -> None:
        fetched[f.spec.name] = f
        if on_progress is not None:
            on_progress(f.spec.name, len(fetched), total)

    if specs:
        done(reader.fetch(specs[0], needs[specs[0].name], since, max_rows, page_size))
        rest = specs[1:]
        if rest:
            workers = max(1, min(settings.concurrency, len(rest)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sample") as pool:
                for f in pool.map(lambda s: reader.fetch(s, needs[s.name], since, max_rows, page_size), rest):
                    done(f)

    # Mask everything together, so a name seen in one dataset is masked in every other one too.
    masker = Masker()
    for f in fetched.values():
        masker.learn(f.objects)
    for s in specs:
        f = fetched[s.name]
        frame = build_frame(s.name, masker.mask(f.objects) if f.state is None else [])
        f.objects = []  # drop the unmasked objects at once
        state = f.state or ("loaded" if len(frame) else "empty")
        result.datasets.append(
            Dataset(
                name=s.name, label=s.label, state=state, frame=frame, permission=f.permission,
                reason=f.reason, requests=f.requests, truncated=f.truncated,
            )
        )
    result.problem = reader.auth_problem
    result.account = reader.account
    result.requests = reader.requests
    result.elapsed_s = time.monotonic() - started
    return result


__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "STATES",
    "Dataset",
    "DatasetSpec",
    "Masker",
    "SampleData",
    "build_frame",
    "columns",
    "fetch_sample_data",
    "mask_personal",
]

