"""The demo's history: tens of tenants checked over several weeks, with breakages and fixes.

Every check is a real `CheckResult` built from the real catalogue and requirement profile and judged by
core.engine.verdict (so statuses, scores and fixes are exactly what a real check would give), generated with a
seeded RNG and written through the store's `record_check` with an explicit `checked_at`.

The demo database lives apart from the real one (<KEYHEALTH_DATA_DIR>/demo/keyhealth-demo.db) and is
seeded once: `seed_demo` does nothing when the database already has tenants.
"""
from __future__ import annotations

import contextlib
import random
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from core.engine.catalogue import Catalogue, Profile, Scope, load_catalogue, load_profile
from core.engine.check import assemble
from core.engine.keys import SecretKey
from core.engine.probe import EditLink, ScopeOutcome
from core.engine.result import CheckResult, Granted, KeyInfo, Level, Mode, level_rank
from core.store import Store

DEMO_SEED = 4242
DEMO_TENANTS = 40
DEMO_DAYS = 42

# Realistic small businesses that would onboard with Pointai.
TENANT_NAMES: tuple[str, ...] = (
    "Acme Coffee Roasters", "Bluefern Yoga Studio", "Northwind Bikes", "Harbor & Pine Bakery",
    "Lumen Dental Care", "Oakridge Veterinary", "Pixel Forge Games", "Saltmarsh Seafood Co.",
    "Cedar Lane Books", "Brightwave Swim School", "Copperleaf Florist", "Summit Climbing Gym",
    "Tidewater Kayak Tours", "Golden Crust Pizzeria", "Maple & Main Hardware", "Riverbend Pottery",
    "Starling Music Academy", "Urban Sprout Grocers", "Velvet Thread Tailors", "Willowbrook Farm CSA",
    "Zephyr Cycling Club", "Ironclad Fitness", "Juniper Skin Clinic", "Kestrel Photography",
    "Lighthouse Language School", "Moonlit Candle Co.", "Nimbus Cloud Consulting", "Orchard Street Cafe",
    "Peak Physio", "Quartz Coworking", "Redwood Dog Grooming", "Silver Spoon Catering",
    "Thistle Tea House", "Umbra Escape Rooms", "Vista Eye Care", "Wildflower Wedding Studio",
    "Yellowbird Daycare", "Alder Street Barbers", "Beacon Hill Tutors", "Cobalt Print Shop",
    "Driftwood Surf Rentals", "Evergreen Landscaping", "Foxglove Apothecary", "Granite Gym & Spa",
    "Hollow Oak Winery", "Indigo Dance Company", "Jasper Auto Detailing", "Kindred Pet Supplies",
)
CHECKERS: tuple[str, ...] = ("ana@pointai.example", "ben@pointai.example", "chloe@pointai.example")
_B62 = string.ascii_letters + string.digits
RATE_LIMITED = "read probe inconclusive: rate limited (429) after 4 tries"

# How a tenant's key evolves over the demo window (weights: how many tenants tell each story).
STORIES: tuple[tuple[str, int], ...] = (
    ("steady", 6),  # healthy from the start
    ("accounts_read", 1),  # Connect Accounts at Read only: Connect onboarding fails until it is set to Write
    ("fixed_missing", 7),  # onboarded with permissions missing, fixed after a reminder
    ("over_permissioned", 6),  # everything on Write: excess until (sometimes) cut back
    ("broke_recently", 4),  # healthy, then someone edited the key: failing now
    ("revoked", 3),  # healthy, then the key was deleted: invalid now
    ("rolled", 2),  # key rolled (expired), a new key pasted: healthy again, new fingerprint
    ("read_only", 2),  # every permission at Read: failing throughout
    ("flaky", 2),  # Stripe rate-limited some probes: incomplete now and then
    ("truncated_first", 2),  # first paste was truncated, then the complete key
    # key lifecycle (issue 12)
    ("live_to_test", 1),  # a live tenant's key replaced this week by a test key of another account
    ("other_account", 1),  # key replaced this week by one from another Stripe account (same mode)
    ("long_lived", 2),  # the same key for more than 180 days: rotation due
    ("wrong_tenant", 1),  # another tenant's key pasted into this one: one key on two tenants
)
OUTAGE_DAYS_AGO = 11  # the day a batch run could not reach Stripe: unreachable checks in the fleet view
OUTAGE_TENANTS = 9
UNREACHABLE_PROBLEM = (
    "This server cannot reach api.stripe.com: its name does not resolve (DNS). Nothing is known about the key; "
    "this is our side's network (firewall, proxy, DNS or an outage), not the tenant's key: fix the connection "
    "and check again."
)


# --- synthetic checks -----------------------------------------------------------------------------------
@dataclass
class DemoKey:
    """A tenant's (made-up) key as the store would see it: masked form and fingerprint only."""

    mode: Mode
    masked: str
    fingerprint: str

    @classmethod
    def new(cls, rng: random.Random, mode: Mode) -> DemoKey:
        tail = "".join(rng.choice(_B62) for _ in range(4))
        return cls(mode, f"rk_{mode}_…{tail}", "fp_" + "".join(rng.choice("0123456789abcdef") for _ in range(32)))

    def info(self) -> KeyInfo:
        return KeyInfo(kind="restricted", mode=self.mode, masked=self.masked, fingerprint=self.fingerprint)


def ideal_grants(catalogue: Catalogue, profile: Profile) -> dict[str, Level]:
    return {s.scope: profile.required(s)[0] for s in catalogue.scopes}


def _required_scopes(catalogue: Catalogue, profile: Profile) -> list[Scope]:
    return [s for s in catalogue.scopes if profile.required(s)[0] != "none"]


def _unrequired_scopes(catalogue: Catalogue, profile: Profile) -> list[Scope]:
    return [s for s in catalogue.scopes if profile.required(s)[0] == "none"]


def with_missing(
    grants: dict[str, Level], catalogue: Catalogue, profile: Profile, n: int, rng: random.Random
) -> dict[str, Level]:
    out = dict(grants)
    for s in rng.sample(_required_scopes(catalogue, profile), min(n, len(_required_scopes(catalogue, profile)))):
        req = profile.required(s)[0]
        below: tuple[Level, ...] = ("none", "read")
        lower = [lv for lv in below if level_rank(lv) < level_rank(req) and (lv == "none" or lv in s.levels)]
        out[s.scope] = rng.choice(lower)
    return out


def with_excess(
    grants: dict[str, Level], catalogue: Catalogue, profile: Profile, n: int, rng: random.Random
) -> dict[str, Level]:
    out = dict(grants)
    pool = _unrequired_scopes(catalogue, profile)
    for s in rng.sample(pool, min(n, len(pool))):
        seen: tuple[Level, ...] = tuple(lv for lv in s.levels if lv in s.checked_levels) or s.levels
        out[s.scope] = rng.choice(list(seen))  # a probe never sees a level no request can check
    return out


def everything_write(catalogue: Catalogue) -> dict[str, Level]:
    """Every permission at the highest level a probe can see (Mandates Write, say, is offered but not checkable)."""
    return {s.scope: max(tuple(lv for lv in s.levels if lv in s.checked_levels) or s.levels, key=level_rank)
            for s in catalogue.scopes}


def demo_dashboard_id(key: KeyInfo) -> str:
    """A made-up Dashboard id (mk_…) for a demo key, stable per fingerprint, as Stripe's newest refusals show it."""
    tail = "".join(c for c in (key.fingerprint or key.masked) if c.isalnum())[:20] or "demo"
    return f"mk_1Demo{tail}"


def read_only(grants: dict[str, Level], catalogue: Catalogue) -> dict[str, Level]:
    out = dict(grants)
    for s in catalogue.scopes:
        if out.get(s.scope) == "write" and "read" in s.levels:
            out[s.scope] = "read"
    return out


def synthetic_result(
    grants: Mapping[str, Granted],
    *,
    key: KeyInfo,
    account: str | None,
    checked_at: datetime,
    rng: random.Random,
    unknown: int = 0,
    catalogue: Catalogue | None = None,
    profile: Profile | None = None,
) -> CheckResult:
    """The CheckResult a real sweep would give for a key with `grants` (scope -> none/read/write)."""
    catalogue = catalogue or load_catalogue()
    profile = profile or load_profile()
    outcomes = {s: ScopeOutcome(s, g) for s, g in grants.items()}
    for s in rng.sample(sorted(outcomes), min(unknown, len(outcomes))):
        outcomes[s] = ScopeOutcome(s, "unknown", RATE_LIMITED)
    granted_reads = sum(1 for g in grants.values() if g in ("read", "write"))
    requests = sum(1 for s in catalogue.scopes if s.probed) + granted_reads + 3 * unknown
    # Stripe's newest refusal wording links to the key's own edit page: a demo key refused anything carries it.
    refused_any = account is not None and any(o.granted == "none" for o in outcomes.values())
    return assemble(
        key, outcomes, catalogue=catalogue, profile=profile, account=account, requests=requests,
        elapsed_s=round(requests / 20 * rng.uniform(1.0, 1.3), 3), checked_at=checked_at,
        edit=EditLink(account, demo_dashboard_id(key)) if refused_any and account else None,
    )


def refused_result(kind: str, *, key: KeyInfo, account: str | None, checked_at: datetime,
                   rng: random.Random | None = None) -> CheckResult:
    """Stripe refused the key (revoked or expired), or it was refused locally (a truncated paste), worded
    exactly as a real check words it: the truncated paste goes through the real intake, Stripe's refusal
    through the real answer reading."""
    from core.engine.probe import Answer, auth_sentence

    catalogue, profile = load_catalogue(), load_profile()
    if kind == "truncated":
        rng = rng or random.Random(0)
        info = SecretKey.parse(f"rk_{key.mode or 'live'}_" + "".join(rng.choice(_B62) for _ in range(6))).info
        return assemble(info, catalogue=catalogue, profile=profile, problem=info.problem, checked_at=checked_at)
    answer = (
        Answer("auth", 401, "Expired API Key provided: rk_***", "api_key_expired")
        if kind == "expired"
        else Answer("auth", 401, "Invalid API Key provided: rk_***")
    )
    refused, problem = auth_sentence(answer, key.mode)
    if kind == "revoked":  # how the service's judge() (core.engine.check.explain_refusal) names a key accepted before
        refused, problem = "revoked", (
            "Stripe accepted this key before but refuses it now, so it has been revoked or deleted in the "
            "Stripe Dashboard; ask the tenant to create a new restricted key and paste it."
        )
    return assemble(key, catalogue=catalogue, profile=profile, account=account, problem=problem, refused=refused,
                    requests=1, elapsed_s=0.08, checked_at=checked_at)


@dataclass
class DemoCheck:
    tenant: str
    result: CheckResult
    source: str
    checked_by: str | None
    story: str = ""


def unreachable_result(*, key: KeyInfo, checked_at: datetime) -> CheckResult:
    """An attempt Stripe never answered (the first probe and its 3 retries): no rows, no score, no message."""
    return assemble(key, catalogue=load_catalogue(), profile=load_profile(), unreachable=UNREACHABLE_PROBLEM,
                    answered=False, requests=4, elapsed_s=1.9, checked_at=checked_at)


@dataclass
class _Tenant:
    name: str
    story: str
    mode: Mode
    account: str
    key: DemoKey
    checks: list[DemoCheck] = field(default_factory=list)
    expected_mode: str | None = None  # "live": the tenant is in production
    donor: _Tenant | None = None  # wrong_tenant: whose key was pasted here
    owns: str | None = None  # the sandbox demo key (sandbox.demo_keys) this tenant's history holds
    grants: dict[str, Level] | None = None  # that key's permissions, which its story's checks show
    swap: tuple[DemoKey, str] | None = None  # live_to_test: the demo key (and account) that replaces the tenant's

    def checks_sorted(self) -> list[DemoCheck]:
        return sorted(self.checks, key=lambda c: c.result.checked_at)


def _times(rng: random.Random, start: datetime, end: datetime, gap_days: tuple[float, float]) -> list[datetime]:
    out = []
    t = start
    while t < end:
        out.append(t)
        t += timedelta(days=rng.uniform(*gap_days), minutes=rng.randint(0, 600))
    return out


def _when(rng: random.Random, day0: datetime, day: float) -> datetime:
    """A working-hours time on day `day` after day0."""
    t = day0 + timedelta(days=int(day))
    return t.replace(hour=rng.randint(8, 18), minute=rng.randint(0, 59), second=rng.randint(0, 59))


def generate(
    *,
    now: datetime | None = None,
    tenants: int = DEMO_TENANTS,
    days: int = DEMO_DAYS,
    seed: int = DEMO_SEED,
) -> list[DemoCheck]:
    """The demo's checks, oldest first. Deterministic for a given `now` and seed."""
    people = generate_tenants(now=now, tenants=tenants, days=days, seed=seed)
    return sorted((c for t in people for c in t.checks), key=lambda c: c.result.checked_at)


def generate_tenants(
    *,
    now: datetime | None = None,
    tenants: int = DEMO_TENANTS,
    days: int = DEMO_DAYS,
    seed: int = DEMO_SEED,
) -> list[_Tenant]:
    """The demo tenants with their checks and expected mode (live tenants are marked in production)."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    rng = random.Random(seed)
    catalogue, profile = load_catalogue(), load_profile()
    ideal = ideal_grants(catalogue, profile)
    day0 = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    out = _cast(rng, tenants)
    for t in out:
        if t.owns:
            _give_demo_key(t, catalogue)
    for t in out:
        _story(t, rng, catalogue, profile, ideal, day0, now, days)
    _outage(out, rng, now)
    return out


def _cast(rng: random.Random, tenants: int) -> list[_Tenant]:
    """The tenants (name, story, mode, account, first key), their donors, and which demo key each owns (the first
    tenant of a key's story in the key's mode; sandbox.demo_keys.STORY). Draws from `rng` exactly as the
    generation always has, so a tenant's story stays the same."""
    stories: list[str] = [s for s, w in STORIES for _ in range(w)]
    while len(stories) < tenants:
        stories.append(rng.choice([s for s, _ in STORIES]))
    rng.shuffle(stories)
    names = rng.sample(TENANT_NAMES, min(tenants, len(TENANT_NAMES)))
    while len(names) < tenants:
        names.append(f"Demo Tenant {len(names) + 1}")

    out: list[_Tenant] = []
    for i, name in enumerate(names):
        story = stories[i]
        mode: Mode = "test" if rng.random() < 0.2 else "live"
        if story in ("live_to_test", "other_account", "wrong_tenant", "long_lived"):
            mode = "live"
        acct = "acct_1" + "".join(rng.choice(_B62) for _ in range(15))
        t = _Tenant(name, story, mode, acct, DemoKey.new(rng, mode))
        t.expected_mode = "live" if mode == "live" and story != "flaky" else None
        out.append(t)
    donors = [t for t in out if t.story == "steady"]
    for t in out:
        if t.story == "wrong_tenant" and donors:
            t.donor = donors[0]
    try:
        from sandbox.demo_keys import DEMO_KEYS

        demo_keys = [(name, dk.story, dk.tenant_mode or dk.mode) for name, dk in DEMO_KEYS.items() if dk.story]
    except Exception:  # noqa: BLE001 - without the demo keys (data files unreadable) the tenants own none
        demo_keys = []
    for key_name, story, key_mode in demo_keys:
        for t in out:  # a donor's key is also on another tenant: never give it a demo key (it would be shared)
            if t.story == story and t.mode == key_mode and t.owns is None and not any(o.donor is t for o in out):
                t.owns = key_name
                break
    return out


def demo_key_owners(tenants: int = DEMO_TENANTS, seed: int = DEMO_SEED) -> dict[str, str]:
    """Demo key name -> the demo tenant whose story it tells (no history generated; cheap)."""
    return {t.owns: t.name for t in _cast(random.Random(seed), tenants) if t.owns}


def grants_of(permissions: frozenset[str] | set[str], catalogue: Catalogue) -> dict[str, Level]:
    """scope -> level a key with these permissions (rak_<scope>_<level>) has."""
    out: dict[str, Level] = {}
    for s in catalogue.scopes:
        out[s.scope] = ("write" if f"rak_{s.scope}_write" in permissions
                        else "read" if f"rak_{s.scope}_read" in permissions else "none")
    return out


def _give_demo_key(t: _Tenant, catalogue: Catalogue) -> None:
    """The tenant's history holds the real demo key (its masked form and fingerprint, as intake makes them with
    this server's fingerprint secret), its account and its permissions."""
    from sandbox.demo_keys import DEMO_KEYS

    dk = DEMO_KEYS[t.owns or ""]
    info = SecretKey.parse(dk.key).info
    t.grants = grants_of(dk.permissions, catalogue)
    if dk.tenant_mode:  # the key that replaced the tenant's own (live_to_test): its story swaps it in
        t.swap = (DemoKey(dk.mode, info.masked, info.fingerprint or ""), dk.account)  # type: ignore[arg-type]
        return
    t.key = DemoKey(t.mode, info.masked, info.fingerprint or "")  # the same mode: owners are chosen by it
    t.account = dk.account


def key_source_lines(tenant: str | None = None) -> list[tuple[str, str]]:
    """The demo's key source: (tenant, key) for every demo tenant that holds a demo key (only `tenant`'s, when
    given, matched by name or slug, as KEYHEALTH_TENANT asks)."""
    from core.store import slugify
    from sandbox.demo_keys import DEMO_KEYS

    out = []
    for key_name, name in demo_key_owners().items():
        if tenant is None or tenant == name or slugify(tenant) == slugify(name):
            out.append((name, DEMO_KEYS[key_name].key))
    return out


def _outage(tenants: list[_Tenant], rng: random.Random, now: datetime) -> None:
    """One morning Stripe was unreachable from the server: the batch run's checks that day got no answer.
    Only tenants checked again later take part, so no tenant's last attempt is the outage."""
    at = (now - timedelta(days=OUTAGE_DAYS_AGO)).replace(hour=6, minute=0, second=0, microsecond=0)
    later = [t for t in tenants if t.checks and max(c.result.checked_at for c in t.checks) > at + timedelta(days=1)]
    for i, t in enumerate(rng.sample(later, min(OUTAGE_TENANTS, len(later)))):
        before = [c for c in t.checks if c.result.checked_at <= at and c.result.key.fingerprint]
        key = (before[-1] if before else t.checks[0]).result.key
        when = at + timedelta(minutes=3 * i)
        t.checks.append(DemoCheck(t.name, unreachable_result(key=key, checked_at=when), "batch", "scheduler", t.story))


@dataclass
class _Teller:
    """One tenant's story being told: the shared draws (first check, regular checks, the dashboard user) and `add`,
    which appends a check unless it would be in the future."""

    t: _Tenant
    rng: random.Random
    catalogue: Catalogue
    profile: Profile
    ideal: dict[str, Level]
    now: datetime
    first: datetime
    regular: list[datetime]
    dashboard: tuple[str, str | None]

    def _source(self) -> tuple[str, str | None]:
        r = self.rng.random()
        if r < 0.5:
            return "dashboard", self.rng.choice(CHECKERS)
        if r < 0.85:
            return "batch", "scheduler"
        return "cli", "ops"

    def add(self, at: datetime, grants: dict | None = None, refused: str | None = None, unknown: int = 0,
            src: tuple[str, str | None] | None = None) -> None:
        if at > self.now:
            return
        t, rng = self.t, self.rng
        s, who = src or self._source()
        if refused:
            res = refused_result(refused, key=t.key.info(), account=t.account, checked_at=at, rng=rng)
        else:
            res = synthetic_result(
                grants or self.ideal, key=t.key.info(), account=t.account, checked_at=at, rng=rng,
                unknown=unknown, catalogue=self.catalogue, profile=self.profile,
            )
        t.checks.append(DemoCheck(t.name, res, s, who, t.story))

    def missing(self, n: int) -> dict[str, Level]:
        return with_missing(self.ideal, self.catalogue, self.profile, n, self.rng)

    def excess(self, n: int, grants: dict[str, Level] | None = None) -> dict[str, Level]:
        return with_excess(self.ideal if grants is None else grants, self.catalogue, self.profile, n, self.rng)


def _steady(s: _Teller) -> None:
    for at in s.regular:
        s.add(at, s.t.grants or s.ideal)


def _fixed_missing(s: _Teller) -> None:
    rng = s.rng
    broken = s.missing(rng.randint(1, 4))
    if rng.random() < 0.5:
        broken = s.excess(rng.randint(1, 3), broken)
    fixed_at = s.first + timedelta(days=rng.uniform(2, 10))
    s.add(s.first, broken, src=s.dashboard)
    for at in s.regular[1:]:
        if at < fixed_at:
            s.add(at, broken)
    # the tenant fixes part of it first, then the rest the same afternoon
    partial = s.excess(1)
    s.add(fixed_at, partial, src=s.dashboard)
    s.add(fixed_at + timedelta(hours=rng.uniform(1, 5)), s.ideal, src=s.dashboard)
    for at in s.regular[1:]:
        if at > fixed_at + timedelta(hours=6):
            s.add(at, s.ideal)


def _over_permissioned(s: _Teller) -> None:
    rng = s.rng
    over = everything_write(s.catalogue) if rng.random() < 0.5 else s.excess(6)
    cut_back = rng.random() < 0.5
    if s.t.grants is not None:  # the demo key's own permissions, still excess now
        over, cut_back = s.t.grants, False
    cut_at = s.first + timedelta(days=rng.uniform(5, 15))
    for at in s.regular:
        s.add(at, s.ideal if (cut_back and at > cut_at) else over)
    if cut_back:
        s.add(cut_at, s.ideal, src=s.dashboard)


def _broke_recently(s: _Teller) -> None:
    rng = s.rng
    broke_at = s.now - timedelta(days=rng.uniform(1, 8))
    broken = s.missing(rng.randint(1, 3))
    if s.t.grants is not None:  # the demo key's own permissions: what pasting it now shows
        broken = s.t.grants
    for at in s.regular:
        s.add(at, broken if at > broke_at else s.ideal)
    s.add(broke_at + timedelta(hours=rng.uniform(1, 20)), broken)


def _revoked_or_rolled(s: _Teller) -> None:
    t, rng = s.t, s.rng
    gone_at = s.first + timedelta(days=rng.uniform(8, 25))
    kind = "revoked" if t.story == "revoked" else "expired"
    new_key_at = gone_at + timedelta(days=rng.uniform(1, 4)) if t.story == "rolled" else None
    old_key = t.key
    new_key = DemoKey.new(rng, t.mode)
    for at in s.regular:
        if at <= gone_at:
            t.key = old_key
            s.add(at, s.ideal)
        elif new_key_at is None or at < new_key_at:
            t.key = old_key
            s.add(at, refused=kind)
        else:
            t.key = new_key
            s.add(at, s.ideal)
    t.key = old_key
    s.add(gone_at + timedelta(hours=2), refused=kind)
    if new_key_at is not None:
        t.key = new_key
        s.add(new_key_at, s.ideal, src=s.dashboard)


def _accounts_read(s: _Teller) -> None:
    # The tenant ticked Accounts Read where the guide says Write; support sends the message and it is fixed.
    partial = dict(s.ideal, connected_account="read")
    fixed_at = s.first + timedelta(days=s.rng.uniform(3, 12))
    s.add(s.first, partial, src=s.dashboard)
    for at in s.regular[1:]:
        s.add(at, partial if at < fixed_at else s.ideal)
    s.add(fixed_at, s.ideal, src=s.dashboard)


def _read_only(s: _Teller) -> None:
    ro = s.t.grants if s.t.grants is not None else read_only(s.ideal, s.catalogue)
    for at in s.regular:
        s.add(at, ro)


def _flaky(s: _Teller) -> None:
    rng = s.rng
    for j, at in enumerate(s.regular):
        unknown = rng.randint(1, 5) if (rng.random() < 0.4 or j == len(s.regular) - 1) else 0
        s.add(at, s.ideal, unknown=unknown)


def _key_swapped(s: _Teller) -> None:
    """live_to_test (a test key replaced the live one) and other_account (a key of another Stripe account)."""
    t, rng = s.t, s.rng
    to_test = t.story == "live_to_test"
    swap_at = s.now - timedelta(days=rng.uniform(1.5, 5))
    old_key, old_account = t.key, t.account
    new_key = DemoKey.new(rng, "test" if to_test else t.mode)
    new_account = "acct_1" + "".join(rng.choice(_B62) for _ in range(15))
    new_grants = s.missing(2) if to_test else s.excess(2)
    if t.swap is not None:  # the demo key itself (sandbox.demo_keys "test_on_live") replaced the live key
        (new_key, new_account), new_grants = t.swap, t.grants or new_grants
    for at in [a for a in s.regular if a < swap_at]:
        s.add(at, s.ideal)
    t.key, t.account = new_key, new_account
    s.add(swap_at, new_grants, src=s.dashboard)
    for at in [a for a in s.regular if a > swap_at + timedelta(hours=2)]:
        s.add(at, new_grants)
    t.key, t.account = old_key, old_account


def _long_lived(s: _Teller) -> None:
    s.add(s.now - timedelta(days=s.rng.uniform(200, 260)), s.ideal, src=s.dashboard)  # onboarded long ago
    for at in s.regular:
        s.add(at, s.ideal)


def _wrong_tenant(s: _Teller) -> None:
    t = s.t
    pasted_at = s.now - timedelta(days=s.rng.uniform(0.5, 3))
    for at in [a for a in s.regular if a < pasted_at]:
        s.add(at, s.ideal)
    if t.donor is not None:  # support pasted the other tenant's key here by mistake
        own_key, own_account = t.key, t.account
        t.key, t.account = t.donor.key, t.donor.account
        s.add(pasted_at, s.ideal, src=s.dashboard)
        t.key, t.account = own_key, own_account


def _truncated_first(s: _Teller) -> None:
    s.add(s.first, refused="truncated", src=s.dashboard)
    s.add(s.first + timedelta(minutes=s.rng.randint(5, 40)), s.ideal, src=s.dashboard)
    for at in s.regular[1:]:
        s.add(at, s.ideal)


# Each story (STORIES) and the checks that tell it.
_TELL: dict[str, Callable[[_Teller], None]] = {
    "steady": _steady,
    "fixed_missing": _fixed_missing,
    "over_permissioned": _over_permissioned,
    "broke_recently": _broke_recently,
    "revoked": _revoked_or_rolled,
    "rolled": _revoked_or_rolled,
    "accounts_read": _accounts_read,
    "read_only": _read_only,
    "flaky": _flaky,
    "live_to_test": _key_swapped,
    "other_account": _key_swapped,
    "long_lived": _long_lived,
    "wrong_tenant": _wrong_tenant,
    "truncated_first": _truncated_first,
}


def _story(t: _Tenant, rng, catalogue, profile, ideal, day0: datetime, now: datetime, days: int) -> None:
    onboard = rng.uniform(0, days * 0.35)
    stale = rng.random() < 0.15  # some tenants have not been checked for weeks
    last_day = days - rng.uniform(18, 30) if stale else days
    end = min(now, day0 + timedelta(days=last_day))
    first = _when(rng, day0, onboard)
    regular = _times(rng, first, end, (2, 7))
    dashboard = ("dashboard", rng.choice(CHECKERS))
    tell = _TELL.get(t.story)
    if tell is None:  # pragma: no cover - every story has its teller
        raise ValueError(t.story)
    tell(_Teller(t, rng, catalogue, profile, ideal, now, first, regular, dashboard))
    t.checks.sort(key=lambda c: c.result.checked_at)


# --- seeding ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _file_lock(path: Path):
    """A cross-process lock (POSIX flock), so two servers starting at once seed only once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - no flock on this platform: the in-process lock must do
            pass
        yield


def seed_demo(store: Store, *, now: datetime | None = None, tenants: int = DEMO_TENANTS) -> int:
    """Fill the demo database with the generated history, once. Returns the number of checks written
    (0 when it already had tenants). The schema must exist (Store.upgrade)."""
    url = store.db.url
    lock = Path(url.removeprefix("sqlite:///") + ".seed.lock") if url.startswith("sqlite:///") else None
    with _file_lock(lock) if lock else contextlib.nullcontext():
        if store.list_tenants(include_archived=True):
            return 0
        people = generate_tenants(now=now, tenants=tenants)
        checks = sorted((c for t in people for c in t.checks), key=lambda c: c.result.checked_at)
        for c in checks:
            store.record_check(c.result, c.tenant, source=c.source, checked_by=c.checked_by)
            if c.source == "dashboard":
                store.record_audit(
                    "check", who=c.checked_by, tenant=c.tenant, outcome=c.result.status,
                    detail=f"{c.result.key.masked} score {c.result.score}", at=c.result.checked_at,
                )
        for t in people:
            if t.expected_mode and t.checks:
                store.update_tenant(t.name, expected_mode=t.expected_mode)
        return len(checks)


# --- the demo's key source ----------------------------------------------------------------------------------
def main(tenant: str | None = None) -> int:
    """The demo's key source (KEYHEALTH_KEYS_FROM in demo mode; scripts/demo_key_source.py passes it the
    KEYHEALTH_TENANT a key source is given). Prints `tenant,key` for every demo tenant holding a demo key, or only
    `tenant`'s line. Demo keys only."""
    import csv
    import sys

    out = csv.writer(sys.stdout, lineterminator="\n")
    for name, key in key_source_lines(tenant or None):
        out.writerow([name, key])
    return 0
