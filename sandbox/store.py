"""Objects the sandbox holds, per (account, mode), with deterministic sample data.

Sample data is seeded from the account id and mode, with timestamps relative to an anchor (the
sandbox's start time floored to the day), so two sandboxes started the same day hold the same
objects. The personal data (names, emails, phones, addresses) is fake but shaped like the real thing,
so masking can be tested on it.
"""
from __future__ import annotations

import copy
import random
import string
import time

from sandbox.routes import ApiModel, Resource

BASE62 = string.digits + string.ascii_letters
DAY = 86400

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis",
         "Radia", "Tim", "Katherine", "John", "Sophie", "Linus", "Hedy", "Claude", "Annie", "Niklaus"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton",
        "Ritchie", "Perlman", "Berners-Lee", "Johnson", "McCarthy", "Wilson", "Torvalds", "Lamarr", "Shannon",
        "Easley", "Wirth"]
CITIES = [("Berlin", "DE", "10115"), ("Paris", "FR", "75001"), ("Austin", "US", "73301"),
          ("Lisbon", "PT", "1100-148"), ("Toronto", "CA", "M5H 2N2"), ("Dublin", "IE", "D02 X285"),
          ("Madrid", "ES", "28001"), ("Seattle", "US", "98101")]
STREETS = ["Main Street", "Harbour Road", "Linden Allee", "Rue de la Paix", "Elm Avenue", "Calle Mayor"]
BRANDS = [("visa", 0.55), ("mastercard", 0.3), ("amex", 0.15)]
PRODUCTS = [("Pointai Starter", 1900), ("Pointai Pro", 4900), ("Pointai Team", 14900), ("Onboarding call", 9900)]


class Store:
    """All objects of one account in one mode. Not thread-safe by itself: the server holds a lock."""

    def __init__(self, model: ApiModel, account: str, mode: str, anchor: int, seed: bool = True):
        self.model = model
        self.account = account
        self.mode = mode
        self.live = mode == "live"
        self.anchor = anchor
        self.rng = random.Random(f"keyhealth-sandbox:{account}:{mode}")
        self.objects: dict[str, dict[str, dict]] = {r.path: {} for r in model.resources}
        self.children: dict[tuple[str, str, str], list[dict]] = {}
        self.singletons: dict[str, dict] = {}
        self._seq = 0
        if seed:
            seed_sample_data(self)

    # ------------------------------------------------------------ ids and basic access
    def new_id(self, prefix: str) -> str:
        if prefix == "cs":
            prefix = "cs_live" if self.live else "cs_test"
        return f"{prefix}_" + "".join(self.rng.choice(BASE62) for _ in range(24))

    def base(self, obj_name: str, prefix: str, created: int | None = None) -> dict:
        self._seq += 1
        return {
            "id": self.new_id(prefix),
            "object": obj_name,
            "created": int(created if created is not None else time.time()),
            "livemode": self.live,
            "metadata": {},
            "_seq": self._seq,
        }

    def put(self, path: str, obj: dict) -> dict:
        obj.setdefault("_seq", self._bump())
        self.objects[path][obj["id"]] = obj
        return obj

    def _bump(self) -> int:
        self._seq += 1
        return self._seq

    def get(self, path: str, oid: str) -> dict | None:
        return self.objects.get(path, {}).get(oid)

    def ordered(self, path: str) -> list[dict]:
        """Newest first, as Stripe lists."""
        return sorted(self.objects.get(path, {}).values(), key=lambda o: (o.get("created", 0), o["_seq"]), reverse=True)

    def add_child(self, path: str, oid: str, name: str, obj: dict) -> None:
        self.children.setdefault((path, oid, name), []).append(obj)

    def singleton(self, res: Resource) -> dict:
        if res.path not in self.singletons:
            self.singletons[res.path] = self._make_singleton(res)
        if res.path == "/v1/balance":
            self.singletons[res.path] = self._balance()
        return self.singletons[res.path]

    def _make_singleton(self, res: Resource) -> dict:
        if res.path == "/v1/account":
            return {
                "id": self.account, "object": "account", "type": "standard", "country": "US",
                "default_currency": "usd", "email": "owner@keyhealth-demo.example", "charges_enabled": True,
                "payouts_enabled": True, "details_submitted": True,
                "business_profile": {"name": "Key Health Demo Shop", "url": "https://keyhealth-demo.example"},
                "settings": {"dashboard": {"display_name": "Key Health Demo"}},
            }
        if res.path == "/v1/tax/settings":
            return {"object": "tax.settings", "livemode": self.live, "status": "pending",
                    "defaults": {"tax_behavior": None, "tax_code": "txcd_10000000"}, "head_office": None,
                    "status_details": {"pending": {"missing_fields": ["head_office"]}}}
        return {"object": res.object, "livemode": self.live}

    def _balance(self) -> dict:
        avail: dict[str, int] = {"usd": 0, "eur": 0}
        pend: dict[str, int] = {"usd": 0, "eur": 0}
        for t in self.objects.get("/v1/balance_transactions", {}).values():
            (avail if t["status"] == "available" else pend)[t["currency"]] = (
                (avail if t["status"] == "available" else pend).get(t["currency"], 0) + t["net"]
            )

        def entries(d):
            return [{"amount": v, "currency": c, "source_types": {"card": v}} for c, v in sorted(d.items())]

        return {"object": "balance", "livemode": self.live, "available": entries(avail), "pending": entries(pend),
                "connect_reserved": [], "instant_available": []}

    # ------------------------------------------------------------ charges (the one real create)
    def charge(self, amount: int, currency: str, params: dict, created: int | None = None,
               status: str = "succeeded", customer: dict | None = None, refunded: bool = False,
               brand: str = "visa", last4: str = "4242") -> tuple[dict, list[dict]]:
        """A charge and what it brings (balance transaction, refund). Returns (charge, all created objects)."""
        made: list[dict] = []
        ch = self.base("charge", "ch", created)
        billing = (customer or {}).get("_billing") or {
            "name": None, "email": params.get("receipt_email"), "phone": None,
            "address": {
                "city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None,
            },
        }
        ch.update({
            "amount": amount, "amount_captured": amount if status == "succeeded" else 0,
            "amount_refunded": amount if refunded else 0, "currency": currency,
            "status": status, "paid": status == "succeeded", "captured": status == "succeeded",
            "refunded": refunded, "customer": (customer or {}).get("id") or params.get("customer"),
            "description": params.get("description"),
            "receipt_email": params.get("receipt_email") or billing.get("email"),
            "billing_details": billing, "balance_transaction": None, "payment_intent": None,
            "failure_code": None if status == "succeeded" else "card_declined",
            "failure_message": None if status == "succeeded" else "Your card was declined.",
            "outcome": {"network_status": "approved_by_network" if status == "succeeded" else "declined_by_network",
                        "type": "authorized" if status == "succeeded" else "issuer_declined",
                        "risk_level": "normal", "seller_message": "Payment complete." if status == "succeeded"
                        else "The bank did not return any further details with this decline."},
            "payment_method_details": {"type": "card", "card": {
                "brand": brand, "last4": last4, "exp_month": 1 + self.rng.randrange(12),
                "exp_year": 2027 + self.rng.randrange(4), "country": billing["address"].get("country") or "US",
                "funding": "credit", "network": brand, "checks": {"cvc_check": "pass"}}},
            "receipt_url": None, "refunds": None, "disputed": False,
            "metadata": dict(params.get("metadata") or {}),
        })
        self.put("/v1/charges", ch)
        made.append(ch)
        if status == "succeeded":
            fee = round(amount * 0.029) + 30
            txn = self.base("balance_transaction", "txn", ch["created"])
            age = self.anchor - ch["created"] if created is not None else 0
            txn.update({
                "amount": amount, "currency": currency, "fee": fee, "net": amount - fee, "type": "charge",
                "reporting_category": "charge", "source": ch["id"], "description": ch["description"],
                "status": "available" if age > 7 * DAY else "pending",
                "available_on": ch["created"] + 7 * DAY, "exchange_rate": None,
                "fee_details": [{"amount": fee, "currency": currency, "description": "Stripe processing fees",
                                 "type": "stripe_fee", "application": None}],
            })
            txn.pop("metadata")
            self.put("/v1/balance_transactions", txn)
            ch["balance_transaction"] = txn["id"]
            made.append(txn)
        if refunded:
            re_ = self.base("refund", "re", ch["created"] + 3600)
            re_.update({"amount": amount, "currency": currency, "charge": ch["id"], "status": "succeeded",
                        "reason": "requested_by_customer", "payment_intent": None, "balance_transaction": None})
            self.put("/v1/refunds", re_)
            self.add_child("/v1/charges", ch["id"], "refunds", re_)
            made.append(re_)
        return ch, made


def public(obj: dict) -> dict:
    """The object as Stripe would send it: no internal keys."""
    out = {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}
    return out


def seed_sample_data(s: Store) -> None:
    rng = s.rng
    a = s.anchor

    def ago(max_days: float) -> int:
        return int(a - rng.uniform(0.05, max_days) * DAY)

    products, prices = [], []
    for name, amount in PRODUCTS:
        p = s.base("product", "prod", ago(90))
        p.update({"name": name, "active": True, "description": f"{name} plan", "default_price": None,
                  "type": "service", "url": None, "images": []})
        s.put("/v1/products", p)
        products.append(p)
        recurring = name != "Onboarding call"
        intervals = ("month", "year") if recurring and name != "Pointai Team" else ("month",) if recurring else (None,)
        for interval in intervals:
            pr = s.base("price", "price", p["created"])
            pr.update({"product": p["id"], "currency": "usd", "active": True, "nickname": None,
                       "unit_amount": amount * (10 if interval == "year" else 1), "billing_scheme": "per_unit",
                       "type": "recurring" if interval else "one_time", "lookup_key": None,
                       "tax_behavior": "unspecified",
                       "recurring": (
                           {"interval": interval, "interval_count": 1, "usage_type": "licensed"} if interval else None
                       )})
            s.put("/v1/prices", pr)
            prices.append(pr)
            p["default_price"] = p["default_price"] or pr["id"]

    customers = []
    for i in range(15):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        city, country, postal = rng.choice(CITIES)
        email = f"{first.lower()}.{last.lower().replace('-', '')}{i}@example.com"
        phone = f"+1 555 01{rng.randrange(100):02d}"
        address = {"line1": f"{rng.randrange(1, 200)} {rng.choice(STREETS)}", "line2": None, "city": city,
                   "postal_code": postal, "state": None, "country": country}
        c = s.base("customer", "cus", ago(60))
        c.update({"name": f"{first} {last}", "email": email, "phone": phone, "address": address,
                  "description": None, "currency": "usd", "balance": 0, "delinquent": False,
                  "invoice_prefix": "".join(rng.choice(string.ascii_uppercase) for _ in range(8)),
                  "preferred_locales": [], "shipping": None, "tax_exempt": "none",
                  "_billing": {"name": f"{first} {last}", "email": email, "phone": phone, "address": address}})
        s.put("/v1/customers", c)
        customers.append(c)

    for i in range(60):
        r = rng.random()
        status, refunded = ("failed", False) if r < 0.15 else ("succeeded", True) if r < 0.25 else ("succeeded", False)
        brand = rng.choices([b for b, _ in BRANDS], [w for _, w in BRANDS])[0]
        last4 = "".join(rng.choice(string.digits) for _ in range(4))
        cust = rng.choice(customers)
        currency = "eur" if rng.random() < 0.25 else "usd"
        amount = rng.choice([1900, 4900, 14900, 9900, 2500, 7500, 12000, 500])
        s.charge(amount, currency, {"description": f"Order #{1000 + i}"}, created=ago(30), status=status,
                 customer=cust, refunded=refunded, brand=brand, last4=last4)

    recurring_prices = [p for p in prices if p["type"] == "recurring"]
    subs = []
    for i in range(8):
        cust = customers[i]
        price = rng.choice(recurring_prices)
        start = ago(120)
        period = 30 * DAY if price["recurring"]["interval"] == "month" else 365 * DAY
        status = rng.choice(["active", "active", "active", "trialing", "past_due", "canceled"])
        sub = s.base("subscription", "sub", start)
        item = {"id": s.new_id("si"), "object": "subscription_item", "price": public(price), "quantity": 1,
                "subscription": sub["id"], "created": start, "metadata": {}}
        cur_start = a - (a - start) % period
        sub.update({"customer": cust["id"], "status": status, "currency": "usd",
                    "collection_method": "charge_automatically", "start_date": start, "cancel_at_period_end": False,
                    "canceled_at": a - DAY if status == "canceled" else None,
                    "items": {"object": "list", "data": [item], "has_more": False,
                              "url": f"/v1/subscription_items?subscription={sub['id']}"},
                    "latest_invoice": None, "default_payment_method": None, "description": None})
        s.put("/v1/subscriptions", sub)
        s.put("/v1/subscription_items", {**item, "_seq": s._bump()})
        subs.append((sub, price, cur_start))

    for i in range(12):
        sub, price, cur_start = subs[i % len(subs)]
        invoiced = s.get("/v1/customers", sub["customer"])
        assert invoiced is not None  # every subscription above was made for a seeded customer
        cust = invoiced
        created = ago(60)
        paid = rng.random() < 0.75
        status = "paid" if paid else rng.choice(["open", "draft", "uncollectible", "void"])
        amount = price["unit_amount"]
        inv = s.base("invoice", "in", created)
        line = {"id": s.new_id("il"), "object": "line_item", "amount": amount, "currency": "usd",
                "description": f"1 x {price['product']} (at ${amount / 100:.2f} / {price['recurring']['interval']})",
                "quantity": 1, "period": {"start": created, "end": created + 30 * DAY}}
        inv.update({"customer": cust["id"], "customer_email": cust["email"], "customer_name": cust["name"],
                    "customer_phone": cust["phone"], "customer_address": cust["address"],
                    "subscription": sub["id"], "status": status, "currency": "usd", "amount_due": amount,
                    "amount_paid": amount if paid else 0, "amount_remaining": 0 if paid else amount,
                    "total": amount, "subtotal": amount, "number": f"{cust['invoice_prefix']}-{i + 1:04d}",
                    "collection_method": "charge_automatically", "hosted_invoice_url": None,
                    "period_start": created, "period_end": created + 30 * DAY,
                    "lines": {"object": "list", "data": [line], "has_more": False,
                              "url": f"/v1/invoices/{inv['id']}/lines"}})
        s.put("/v1/invoices", inv)
        s.add_child("/v1/invoices", inv["id"], "lines", line)
        sub["latest_invoice"] = inv["id"]

    links = []
    for i, price in enumerate(prices[:3]):
        pl = s.base("payment_link", "plink", ago(60))
        pl.update({"active": True, "url": f"https://buy.stripe.com/test_demo{i}", "currency": "usd",
                   "allow_promotion_codes": False, "billing_address_collection": "auto"})
        s.put("/v1/payment_links", pl)
        s.add_child("/v1/payment_links", pl["id"], "line_items", _line_item(s, price))
        links.append((pl, price))

    for _ in range(10):
        cust = rng.choice(customers)
        pl, price = rng.choice(links)
        status = rng.choice(["complete", "complete", "complete", "expired", "open"])
        cs = s.base("checkout.session", "cs", ago(30))
        cs.update({"mode": "subscription" if price["type"] == "recurring" else "payment", "status": status,
                   "payment_status": "paid" if status == "complete" else "unpaid", "currency": "usd",
                   "amount_total": price["unit_amount"], "amount_subtotal": price["unit_amount"],
                   "customer": cust["id"] if status == "complete" else None, "customer_email": None,
                   "customer_details": {"email": cust["email"], "name": cust["name"], "phone": cust["phone"],
                                        "address": cust["address"], "tax_exempt": "none", "tax_ids": []}
                   if status != "open" else None,
                   "payment_link": pl["id"], "client_reference_id": None, "url": None,
                   "success_url": "https://keyhealth-demo.example/thanks", "cancel_url": None,
                   "expires_at": cs["created"] + DAY})
        s.put("/v1/checkout/sessions", cs)
        s.add_child("/v1/checkout/sessions", cs["id"], "line_items", _line_item(s, price))


# Text a tenant may put in its own Stripe account that a spreadsheet would run as a formula, or a markdown
# renderer as a link/directive/maths (tests/security/test_text_safety.py adds it to a store with add_hostile_samples).
HOSTILE_TEXT = (
    '=HYPERLINK("http://evil.example","Refund")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "Session expired. Sign in again at https://1572395042/sso",
    ":red[Urgent] :material/warning: $x^2$ [Log in](https://evil.example/login)",
)


def add_hostile_samples(s: Store) -> list[dict]:
    """One product and one charge per HOSTILE_TEXT (name/description), created an hour before the anchor.
    Deterministic; `Sandbox.reset()` removes them again with the rest of what tests added."""
    made = []
    for i, text in enumerate(HOSTILE_TEXT):
        p = s.base("product", "prod", s.anchor - 3600 - i)
        p.update({"name": text, "active": True, "description": text, "default_price": None, "type": "service",
                  "url": None, "images": []})
        s.put("/v1/products", p)
        ch, _ = s.charge(1234, "usd", {"description": text}, created=s.anchor - 3600 - i)
        made += [p, ch]
    return made


def _line_item(s: Store, price: dict) -> dict:
    return {"id": s.new_id("li"), "object": "item", "amount_total": price["unit_amount"],
            "amount_subtotal": price["unit_amount"], "currency": price["currency"], "quantity": 1,
            "description": next(
                (p["name"] for p in s.objects["/v1/products"].values() if p["id"] == price["product"]), ""
            ),
            "price": public(price)}
