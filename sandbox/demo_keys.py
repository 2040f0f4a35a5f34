"""Demo keys: realistic-looking restricted keys whose permissions come from the requirement profile.

The permission sets are computed from data/catalogue.toml and data/requirements.toml (through
core.engine.catalogue), so "healthy" is exactly what the profile requires and the others differ from it in
known ways. They are demo keys for the local sandbox only: printing them in full is fine.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass
from pathlib import Path

DEMO_TEST_ACCOUNT = "acct_1KeyHealthDemoTest"
DEMO_LIVE_ACCOUNT = "acct_1KeyHealthDemoLive"
KEY_LENGTH = 107  # the length of today's restricted keys; Stripe publishes no fixed length
_BASE62 = string.digits + string.ascii_letters


@dataclass(frozen=True)
class DemoKey:
    name: str
    key: str
    mode: str  # test | live
    state: str  # active | expired | revoked
    permissions: frozenset[str]
    account: str
    description: str
    story: str | None = None  # the demo tenant story (core.demo.STORIES) whose tenant this key belongs to
    tenant_mode: str | None = None  # that tenant's mode, when it is not the key's (a test key on a live tenant)


# Which demo tenant story each key tells (core.demo gives the key to the first tenant of that story in the key's
# mode): the tenant's seeded history holds the key itself, so pasting it there tells the story.
STORY: dict[str, str] = {
    "healthy": "steady",
    "live_healthy": "steady",
    "missing": "broke_recently",
    "live_missing": "broke_recently",
    "revoked": "revoked",
    "live_revoked": "revoked",
    "expired": "rolled",
    "live_expired": "rolled",
    "over": "over_permissioned",
    "live_over": "over_permissioned",
    "readonly": "read_only",
    "test_on_live": "live_to_test",
}
TENANT_MODE: dict[str, str] = {"test_on_live": "live"}  # keys whose tenant is in the other mode


def demo_key_string(name: str, mode: str, kind: str = "rk") -> str:
    """rk_test_51KeyHealthDemoHealthy… padded with seeded base62 to KEY_LENGTH (stable across runs)."""
    camel = "".join(p.capitalize() for p in name.split("_"))
    head = f"{kind}_{mode}_51KeyHealthDemo{camel}"
    rng = random.Random(f"keyhealth-demo-key:{name}:{mode}:{kind}")
    return head + "".join(rng.choice(_BASE62) for _ in range(KEY_LENGTH - len(head)))


def required_permissions(catalogue, profile) -> dict[str, str]:
    """scope -> required level (read|write) for every catalogue scope the profile requires."""
    out = {}
    for scope in catalogue.scopes:
        level, _item = profile.required(scope)
        if level != "none":
            out[scope.scope] = level
    return out


def build_demo_keys(catalogue=None, profile=None, catalogue_path: Path | None = None,
                    requirements_path: Path | None = None) -> dict[str, DemoKey]:
    """The demo keys for a catalogue and profile (default: the project's data files)."""
    from core.engine import catalogue as cat
    if catalogue is None:
        catalogue = cat.load_catalogue(catalogue_path) if catalogue_path else cat.load_catalogue()
    if profile is None:
        if requirements_path:
            profile = cat.load_profile(requirements_path, catalogue_path or cat.CATALOGUE_PATH)
        else:
            profile = cat.load_profile()
    req = required_permissions(catalogue, profile)
    healthy = {f"rak_{s}_{lv}" for s, lv in req.items()}

    missing = {p for p in healthy if p.rsplit("_", 1)[0] not in ("rak_subscription", "rak_invoice")}
    if "rak_charge_write" in missing:
        missing = (missing - {"rak_charge_write"}) | {"rak_charge_read"}
    over = healthy | {"rak_customer_write", "rak_payment_method_read", "rak_webhook_write"}
    readonly = {f"rak_{s}_read" for s in req if "read" in catalogue.get(s).levels}
    # Connect onboarding needs Accounts Write; a key with Accounts Read only fails on that row.
    accounts_read = (healthy - {"rak_connected_account_write"}) | {"rak_connected_account_read"}

    specs = [
        ("healthy", "test", "active", healthy, DEMO_TEST_ACCOUNT,
         "Exactly the permissions the profile requires (Connect Accounts at Write, as the guide asks)."),
        ("accounts_read", "test", "active", accounts_read, DEMO_TEST_ACCOUNT,
         "Everything required, but Connect Accounts at Read only: Connect onboarding would fail."),
        ("missing", "test", "active", missing, DEMO_TEST_ACCOUNT,
         "Charges at Read instead of Write; no Subscriptions and no Invoices."),
        ("over", "test", "active", over, DEMO_TEST_ACCOUNT,
         "Everything required, plus Customers Write, PaymentMethods Read and Webhook Endpoints Write."),
        ("readonly", "test", "active", readonly, DEMO_TEST_ACCOUNT, "Every required resource at Read only."),
        ("expired", "test", "expired", healthy, DEMO_TEST_ACCOUNT,
         "Right permissions, but the key was rolled and has expired."),
        ("revoked", "test", "revoked", healthy, DEMO_TEST_ACCOUNT, "Right permissions, but the key was deleted."),
        ("live_healthy", "live", "active", healthy, DEMO_LIVE_ACCOUNT, "Exactly the required permissions, live mode."),
        # Live keys for the live demo tenants whose stories they tell (core.demo gives each to one tenant, whose
        # history then holds this very key: the revoked key worked before for the tenant that shows it).
        ("live_revoked", "live", "revoked", healthy, DEMO_LIVE_ACCOUNT,
         "Right permissions, live mode, but the key was deleted: it worked before, now Stripe refuses it."),
        ("live_expired", "live", "expired", healthy, DEMO_LIVE_ACCOUNT,
         "Right permissions, live mode, but the key was rolled and has expired."),
        ("live_missing", "live", "active", missing, DEMO_LIVE_ACCOUNT,
         "Live mode; someone edited it: Charges at Read instead of Write, no Subscriptions and no Invoices."),
        ("live_over", "live", "active", over, DEMO_LIVE_ACCOUNT,
         "Live mode; everything required, plus Customers Write, PaymentMethods Read and Webhook Endpoints Write."),
        ("test_on_live", "test", "active", missing, DEMO_TEST_ACCOUNT,
         "A test-mode key of another account that replaced a live tenant's live key (and lacks Subscriptions, "
         "Invoices and Charges Write): checkout cannot take real payments."),
    ]
    keys = {
        name: DemoKey(name, demo_key_string(name, mode), mode, state, frozenset(perms), acct, desc, STORY.get(name),
                      TENANT_MODE.get(name))
        for name, mode, state, perms, acct, desc in specs
    }
    keys["standard"] = standard_demo_key()
    return keys


def standard_demo_key() -> DemoKey:
    return DemoKey("standard", demo_key_string("standard", "test", "sk"), "test", "active", frozenset({"*"}),
                   DEMO_TEST_ACCOUNT, "A standard secret key (full access): onboarding should refuse it.")


class _LazyDemoKeys(dict):
    """A dict that reads the data files on first use, so importing sandbox never fails."""

    _loaded = False

    def _load(self):
        if not self._loaded:
            super().update(build_demo_keys())
            self._loaded = True

    def __getitem__(self, k):
        self._load()
        return super().__getitem__(k)

    def __iter__(self):
        self._load()
        return super().__iter__()

    def __len__(self):
        self._load()
        return super().__len__()

    def __contains__(self, k):
        self._load()
        return super().__contains__(k)

    def __repr__(self):
        self._load()
        return super().__repr__()

    def __eq__(self, other):
        self._load()
        return super().__eq__(other)

    __hash__ = None

    def keys(self):
        self._load()
        return super().keys()

    def values(self):
        self._load()
        return super().values()

    def items(self):
        self._load()
        return super().items()

    def get(self, k, default=None):
        self._load()
        return super().get(k, default)

    def copy(self):
        self._load()
        return dict(super().items())


DEMO_KEYS: dict[str, DemoKey] = _LazyDemoKeys()
