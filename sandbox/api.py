"""What happens after the permission gate: Stripe's answers for lists, lookups, creates and updates.

Everything runs under one lock (the sandbox is small; correctness over throughput).
"""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from sandbox.routes import ApiModel, Resource, Route
from sandbox.store import Store, public

LIST_PARAMS = {"limit", "starting_after", "ending_before", "created", "expand"}
ALWAYS_PARAMS = {"expand", "metadata"}
INT_KEYS = {"amount", "unit_amount", "quantity", "amount_off", "frozen_time", "timestamp", "days_until_due",
            "trial_period_days", "interval_count", "max_redemptions", "redeem_by", "expires_at", "duration_in_months",
            "trial_end", "cancel_at", "application_fee_amount"}
ACTION_STATUS = {"cancel": "canceled", "void": "void", "expire": "expired", "finalize": "open", "pay": "paid",
                 "close": "lost", "approve": "approved", "decline": "declined", "mark_uncollectible": "uncollectible",
                 "deactivate": "inactive", "reactivate": "active", "release": "released", "accept": "accepted",
                 "capture": "succeeded", "confirm": "succeeded", "submit": "submitted", "resume": "active",
                 "reject": "rejected", "redact": "redacted"}
TEST_CARDS = {"tok_visa": ("visa", "4242"), "tok_visa_debit": ("visa", "5556"),
              "tok_mastercard": ("mastercard", "4444"), "tok_amex": ("amex", "8431"),
              "tok_discover": ("discover", "1117"), "pm_card_visa": ("visa", "4242"),
              "pm_card_mastercard": ("mastercard", "4444")}
DECLINE_CARDS = {"tok_chargeDeclined": "generic_decline", "tok_chargeDeclinedInsufficientFunds": "insufficient_funds",
                 "tok_chargeDeclinedFraudulent": "fraudulent", "pm_card_chargeDeclined": "generic_decline"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, **extra):
        super().__init__(message)
        self.status = status
        err = {"message": message, "type": type}
        if code:
            err["code"] = code
            err["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param:
            err["param"] = param
        err.update(extra)
        self.body = {"error": err}


def unknown_param(name: str) -> ApiError:
    return ApiError(400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name)


def coerce(key: str, v):
    if isinstance(v, dict):
        return {k: coerce(k, x) for k, x in v.items()}
    if isinstance(v, list):
        return [coerce(key, x) for x in v]
    if v in ("true", "false"):
        return v == "true"
    if key in INT_KEYS and isinstance(v, str) and re.fullmatch(r"-?\d+", v):
        return int(v)
    return v


@dataclass
class Caller:
    """The authenticated key, as the API layer needs it (never the key itself)."""

    account: str
    mode: str
    key_id: str


class StripeApi:
    def __init__(self, model: ApiModel, anchor: int):
        self.model = model
        self.anchor = anchor
        self.lock = threading.RLock()
        self.stores: dict[tuple[str, str], Store] = {}
        self.created: list[dict] = []
        self.writes: list[dict] = []
        self.idem: dict[tuple[str, str, str], tuple[str, int, dict]] = {}

    def reset(self) -> None:
        with self.lock:
            self.stores.clear()
            self.created.clear()
            self.writes.clear()
            self.idem.clear()

    def store(self, account: str, mode: str) -> Store:
        k = (account, mode)
        if k not in self.stores:
            self.stores[k] = Store(self.model, account, mode, self.anchor)
        return self.stores[k]

    # ------------------------------------------------------------------ entry
    def call(self, caller: Caller, route: Route, ids: dict, params: dict, idem_key: str | None,
             path: str) -> tuple[int, dict, dict]:
        """Answer one request that passed the gate: (status, body, extra headers)."""
        with self.lock:
            store = self.store(caller.account, caller.mode)
            if route.method != "GET" and idem_key:
                fp = json.dumps([route.method, path, params], sort_keys=True, default=str)
                k = (caller.account, caller.mode, idem_key)
                if k in self.idem:
                    old_fp, status, body = self.idem[k]
                    if old_fp != fp:
                        raise ApiError(
                            400,
                            "Keys for idempotent requests can only be used with the same parameters they were first "
                            f"used with. Try using a key other than '{idem_key}' if you meant to execute a different "
                            "request.",
                            type="idempotency_error",
                        )
                    return status, body, {"Idempotent-Replayed": "true"}
                try:
                    status, body = self._dispatch(caller, store, route, ids, params, path)
                except ApiError as e:
                    if e.status == 402:  # the endpoint ran: Stripe saves the result
                        self.idem[k] = (fp, e.status, e.body)
                    raise
                self.idem[k] = (fp, status, body)
                return status, body, {"Original-Request": idem_key}
            status, body = self._dispatch(caller, store, route, ids, params, path)
            return status, body, {}

    def _dispatch(self, caller, store, route, ids, params, path):
        res = route.resource
        parent_id = ids.get("parent")
        if parent_id is not None:
            self._find(caller, self.model.by_path[res.parent], parent_id)
        handler = getattr(self, f"_{route.kind}")
        return handler(caller, store, route, res, ids, params, path)

    # ------------------------------------------------------------------ helpers
    def _find(self, caller: Caller, res: Resource, oid: str, param: str = "id") -> dict:
        obj = self.store(caller.account, caller.mode).get(res.path, oid)
        if obj is not None:
            return obj
        other = "test" if caller.mode == "live" else "live"
        msg = f"No such {res.object}: '{oid}'"
        if self.store(caller.account, other).get(res.path, oid) is not None:
            msg += (f"; a similar object exists in {other} mode, but a {caller.mode} mode key was used to make "
                    "this request.")
        raise ApiError(404, msg, code="resource_missing", param=param)

    def _check_params(self, params: dict, allowed: set[str]) -> None:
        for name in params:
            if name not in allowed:
                raise unknown_param(name)

    def _record_write(self, caller: Caller, kind: str, method: str, path: str, obj: dict | None) -> None:
        self.writes.append({"kind": kind, "method": method, "path": path, "account": caller.account,
                            "mode": caller.mode, "id": (obj or {}).get("id"), "t": time.time()})

    def _record_created(self, caller: Caller, path: str, objs: list[dict]) -> None:
        for o in objs:
            self.created.append(public(o))
            self._record_write(caller, "create", "POST", path, o)

    def _page(self, objs: list[dict], params: dict, res: Resource, url: str, caller: Caller) -> dict:
        limit = params.get("limit", "10")
        if isinstance(limit, str) and not re.fullmatch(r"-?\d+", limit):
            raise ApiError(400, f"Invalid integer: {limit}", code="parameter_invalid_integer", param="limit")
        limit = int(limit)
        if limit < 1:
            raise ApiError(
                400, "This value must be greater than or equal to 1.", code="parameter_invalid_integer", param="limit"
            )
        if limit > 100:
            raise ApiError(
                400, "This value must be less than or equal to 100.", code="parameter_invalid_integer", param="limit"
            )
        created = params.get("created")
        if created is not None:
            objs = [o for o in objs if _created_ok(o.get("created", 0), created)]
        ids = [o["id"] for o in objs]
        if params.get("starting_after"):
            sa = params["starting_after"]
            if sa not in ids:
                self._find(caller, res, sa, param="starting_after")
                raise ApiError(400, f"Invalid starting_after: '{sa}' is not in this list.", param="starting_after")
            start = ids.index(sa) + 1
            page = objs[start:start + limit]
            has_more = len(objs) > start + limit
        elif params.get("ending_before"):
            eb = params["ending_before"]
            if eb not in ids:
                self._find(caller, res, eb, param="ending_before")
                raise ApiError(400, f"Invalid ending_before: '{eb}' is not in this list.", param="ending_before")
            end = ids.index(eb)
            page = objs[max(0, end - limit):end]
            has_more = end - limit > 0
        else:
            page, has_more = objs[:limit], len(objs) > limit
        return {"object": "list", "data": [public(o) for o in page], "has_more": has_more, "url": url}

    # ------------------------------------------------------------------ kinds
    def _list(self, caller, store, route, res, ids, params, path):
        self._check_params(params, LIST_PARAMS | set(res.filters))
        objs = store.ordered(res.path)
        if ids.get("parent"):
            objs = [o for o in objs if o.get("_parent") == ids["parent"]]
        for f in res.filters:
            v = params.get(f)
            if isinstance(v, str) and v != "all":
                objs = [o for o in objs if _norm(o.get(f)) == v]
        return 200, self._page(objs, params, res, path, caller)

    def _search(self, caller, store, route, res, ids, params, path):
        self._check_params(params, {"query", "limit", "page", "expand"})
        q = params.get("query")
        if not q:
            raise ApiError(400, "Missing required param: query.", code="parameter_missing", param="query")
        objs = store.ordered(res.path)
        for field, value in re.findall(r"([\w.]+)\s*:\s*['\"]([^'\"]*)['\"]", q):
            objs = [o for o in objs if _norm(_dig(o, field)) == value]
        limit = min(100, max(1, int(params.get("limit", 10)))) if str(params.get("limit", "10")).isdigit() else 10
        return 200, {"object": "search_result", "data": [public(o) for o in objs[:limit]],
                     "has_more": len(objs) > limit, "next_page": None, "url": path}

    def _retrieve(self, caller, store, route, res, ids, params, path):
        self._check_params(params, {"expand"})
        return 200, public(self._find(caller, res, ids["id"]))

    def _get(self, caller, store, route, res, ids, params, path):
        self._check_params(params, {"expand"})
        obj = store.singleton(res)
        return 200, public(obj)

    def _set(self, caller, store, route, res, ids, params, path):
        self._check_params(params, set(res.params) | ALWAYS_PARAMS)
        obj = store.singleton(res)
        _merge(obj, params)
        self._record_write(caller, "update", "POST", path, obj)
        return 200, public(obj)

    def _create(self, caller, store, route, res, ids, params, path):
        self._check_params(params, set(res.params) | ALWAYS_PARAMS)
        for p in res.required:
            if p not in params or params[p] in ("", None):
                raise ApiError(400, f"Missing required param: {p}.", code="parameter_missing", param=p)
        if res.required_any and not any(p in params for p in res.required_any):
            names = ", ".join(res.required_any)
            raise ApiError(
                400, f"You must provide one of: {names}.", code="parameter_missing", param=res.required_any[0]
            )
        if res.path == "/v1/charges":
            return self._create_charge(caller, store, params, path)
        obj = store.base(res.object, res.prefix or "obj")
        if ids.get("parent"):
            obj["_parent"] = ids["parent"]
        _merge(obj, params)
        store.put(res.path, obj)
        self._record_created(caller, path, [obj])
        return 200, public(obj)

    def _update(self, caller, store, route, res, ids, params, path):
        self._check_params(params, set(res.params) | ALWAYS_PARAMS)
        obj = self._find(caller, res, ids["id"])
        _merge(obj, params)
        self._record_write(caller, "update", "POST", path, obj)
        return 200, public(obj)

    def _delete(self, caller, store, route, res, ids, params, path):
        obj = self._find(caller, res, ids["id"])
        del store.objects[res.path][obj["id"]]
        self._record_write(caller, "delete", "DELETE", path, obj)
        return 200, {"id": obj["id"], "object": res.object, "deleted": True}

    def _action(self, caller, store, route, res, ids, params, path):
        obj = self._find(caller, res, ids["id"])
        self._check_params(params, set(res.params) | ALWAYS_PARAMS | {"amount", "reason", "cancellation_reason"})
        if route.sub in ACTION_STATUS and "status" in obj:
            obj["status"] = ACTION_STATUS[route.sub]
        if route.sub == "capture" and res.object == "charge":
            obj["captured"] = True
        self._record_write(caller, "action", "POST", path, obj)
        return 200, public(obj)

    def _sublist(self, caller, store, route, res, ids, params, path):
        self._check_params(params, LIST_PARAMS)
        self._find(caller, res, ids["id"])
        kids = list(store.children.get((res.path, ids["id"], route.sub), []))
        kids.sort(key=lambda o: o.get("created", 0), reverse=True)
        return 200, self._page(kids, params, res, path, caller)

    def _subcreate(self, caller, store, route, res, ids, params, path):
        parent = self._find(caller, res, ids["id"])
        self._check_params(params, ALWAYS_PARAMS | {"amount", "description", "refund_application_fee"})
        prefix = {"refunds": "fr", "reversals": "trr"}.get(route.sub, route.sub[:3])
        kind = {"refunds": "fee_refund", "reversals": "transfer_reversal"}.get(route.sub, route.sub.rstrip("s"))
        obj = store.base(kind, prefix)
        link = {"refunds": "fee", "reversals": "transfer"}.get(route.sub, "parent")
        obj.update({"amount": coerce("amount", params.get("amount", parent.get("amount", 0))),
                    "currency": parent.get("currency"), link: parent["id"]})
        _merge(obj, {k: v for k, v in params.items() if k != "amount"})
        store.add_child(res.path, parent["id"], route.sub, obj)
        self._record_created(caller, path, [obj])
        return 200, public(obj)

    # ------------------------------------------------------------------ charges
    def _create_charge(self, caller: Caller, store: Store, params: dict, path: str):
        amount_s = params["amount"]
        if not re.fullmatch(r"\d+", str(amount_s)):
            raise ApiError(400, f"Invalid integer: {amount_s}", code="parameter_invalid_integer", param="amount")
        amount = int(amount_s)
        currency = str(params["currency"]).lower()
        if amount < 50:
            raise ApiError(400, f"Amount must be at least $0.50 {currency}", code="amount_too_small", param="amount")
        source, customer_id = params.get("source"), params.get("customer")
        if not source and not customer_id:
            raise ApiError(400, "Must provide source or customer.", code="parameter_missing", param="source")
        customer = None
        if customer_id:
            customer = store.get("/v1/customers", customer_id)
            if customer is None:
                raise ApiError(400, f"No such customer: '{customer_id}'", code="resource_missing", param="customer")
        if caller.mode == "live":
            if source in TEST_CARDS or source in DECLINE_CARDS or str(source).startswith("tok_"):
                raise ApiError(402,
                               "Your card was declined. Your request was in live mode, but used a known test card.",
                               type="card_error", code="card_declined", decline_code="live_mode_test_card")
            # The sandbox never makes a live charge.
            raise ApiError(402, "Your card was declined.", type="card_error", code="card_declined",
                           decline_code="generic_decline")
        if source in DECLINE_CARDS:
            ch, made = store.charge(amount, currency, params, status="failed", customer=customer)
            self._record_created(caller, path, made)
            raise ApiError(402, "Your card was declined.", type="card_error", code="card_declined",
                           decline_code=DECLINE_CARDS[source], charge=ch["id"])
        if source and source not in TEST_CARDS:
            raise ApiError(400, f"No such token: '{source}'", code="resource_missing", param="source")
        brand, last4 = TEST_CARDS.get(source or "", ("visa", "4242"))
        ch, made = store.charge(amount, currency, params, customer=customer, brand=brand, last4=last4)
        self._record_created(caller, path, made)
        return 200, public(ch)


def _norm(v) -> str | None:
    if isinstance(v, bool):
        return "true" if v else "false"
    return None if v is None else str(v)


def _dig(obj: dict, dotted: str) -> Any:
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _merge(obj: dict, params: dict) -> None:
    for k, v in params.items():
        if k == "expand":
            continue
        v = coerce(k, v)
        if k == "metadata" and isinstance(v, dict):
            md = dict(obj.get("metadata") or {})
            md.update(v)
            obj["metadata"] = {a: b for a, b in md.items() if b != ""}
        else:
            obj[k] = v


def _created_ok(ts: int, cond) -> bool:
    if isinstance(cond, dict):
        ops = {"gt": ts.__gt__, "gte": ts.__ge__, "lt": ts.__lt__, "lte": ts.__le__}
        for op, v in cond.items():
            if op not in ops:
                raise unknown_param(f"created[{op}]")
            if not re.fullmatch(r"-?\d+", str(v)):
                raise ApiError(400, f"Invalid integer: {v}", code="parameter_invalid_integer", param=f"created[{op}]")
            if not ops[op](int(v)):
                return False
        return True
    if not re.fullmatch(r"-?\d+", str(cond)):
        raise ApiError(400, f"Invalid integer: {cond}", code="parameter_invalid_integer", param="created")
    return ts == int(cond)
