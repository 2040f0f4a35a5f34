"""The permission catalogue and Pointai's requirement profile, loaded from data/.

Adding a Stripe permission, or changing what Pointai requires, is an entry in
data/catalogue.toml or data/requirements.toml, never code here.
"""
from __future__ import annotations

import re
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeGuard

from core.engine.result import LEVELS, Level, is_level, level_rank

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
CATALOGUE_PATH = DATA_DIR / "catalogue.toml"
REQUIREMENTS_PATH = DATA_DIR / "requirements.toml"

# A made-up object id: Stripe checks the permission before it looks the object up,
# so a probe on this id answers 403 (no permission) or 404 (permission, no such object).
PROBE_ID = "keyhealth_probe_missing"
# A parameter Stripe cannot know: a POST with it answers 403 or 400 parameter_unknown, never creates.
PROBE_PARAM = "keyhealth_probe"
# Where a scope's name, levels and probes come from: Stripe's docs (the permission reference), a real Stripe
# error text (a 403 naming it), the calibration run against a real account, or inferred (no public trace).
PROVENANCES: tuple[str, ...] = ("docs", "error", "calibrated", "inferred")
# A Stripe API version as the Stripe-Version header spells it, e.g. 2025-02-24.acacia.
_API_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}\.[a-z]+$")
# A permission name as a refusal spells it after rak_: <name>_read or <name>_write.
_PERMISSION_RE = re.compile(r"^[a-z][a-z0-9_]*_(read|write)$")
# Where Stripe's endpoint-to-permission map is published; the catalogue's header must cite it.
PERMISSION_REFERENCE = "docs.stripe.com/keys/permissions-reference"


class CatalogueError(ValueError):
    """The data files are malformed; the message says which entry and what to fix."""


@dataclass(frozen=True)
class Probe:
    method: str  # GET | POST | DELETE
    path: str  # Stripe's path template, e.g. /v1/charges/{id}
    params: dict[str, Any] = field(default_factory=dict)
    base: str = "api"  # "api" or "files" (files.stripe.com)
    # The Stripe-Version this probe must be sent with (an endpoint a later version removed, e.g. usage records
    # before 2025-03-31.basil); None: the SDK's own pinned version. Sent with this probe only.
    api_version: str | None = None
    # Where this probe's endpoint-to-permission link comes from, when it differs from the scope's (e.g. an
    # endpoint no public trace ties to the permission: "inferred"). None: the scope's provenance.
    provenance: str | None = None

    def concrete_path(self) -> str:
        return self.path.replace("{id}", PROBE_ID)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"method": self.method, "path": self.path}
        if self.params:
            d["params"] = dict(self.params)
        if self.base != "api":
            d["base"] = self.base
        if self.api_version:
            d["api_version"] = self.api_version
        if self.provenance:
            d["provenance"] = self.provenance
        return d

    def options(self) -> dict[str, Any]:
        """The request's parameters plus the SDK options it needs (base address, Stripe-Version) for
        StripeClient.raw_request: the version goes with this one request only."""
        out: dict[str, Any] = dict(self.params)
        if self.base != "api":
            out["base"] = self.base
        if self.api_version:
            out["stripe_version"] = self.api_version
        return out


@dataclass(frozen=True)
class Scope:
    scope: str  # as Stripe spells it after "rak_", without _read/_write
    label: str  # the Stripe Dashboard's label
    category: str  # the Dashboard's group
    levels: tuple[ProbeLevel, ...]  # levels Stripe offers besides None: ("read",), ("write",) or ("read", "write")
    read: Probe | None
    write: Probe | None
    note: str | None = None
    # Permissions Stripe grants along with this one ("also implies"), as "<scope>_<level>":
    # a probe sees them as granted although the tenant never ticked them.
    implies: tuple[str, ...] = ()
    provenance: str = "inferred"  # docs | error | calibrated | inferred
    # One sentence: the API may be gone for an account (404 "Unrecognized request URL"): then the row is not
    # applicable for that key, with this sentence. None: such a 404 means the probe is broken (unknown).
    absent_api: str | None = None
    # One sentence: the probed endpoints exist in test mode only. With a live key only a 403 naming the
    # permission is a verdict; any other answer makes the row not applicable for live mode, with this sentence.
    test_only: str | None = None
    # Levels Stripe offers that no side-effect-free request can check, and why (`unchecked`).
    unchecked_levels: tuple[str, ...] = ()
    unchecked: str | None = None
    # Other names Stripe's refusals use for this scope's endpoints ("<name>_<level>", without rak_).
    refusal_names: tuple[str, ...] = ()
    # Permissions Stripe is said to grant along with this one, with no public source yet ("<scope>_<level>"):
    # allowed like `implies`, but shown as "implied (unverified)" until a calibration confirms them.
    implies_unverified: tuple[str, ...] = ()
    # True: the probed endpoint serves more than one permission, so a refusal is a verdict for this row only
    # when it names one of this scope's own names (or no name at all); one naming another permission leaves the
    # row unknown, with that name.
    verdict_by_name: bool = False
    # True: the row's name or place rests on one weak third-party source (shown as low confidence).
    low_confidence: bool = False

    @property
    def max_level(self) -> ProbeLevel:
        return max(self.levels, key=level_rank)

    @property
    def probed(self) -> bool:
        """False when no level can be checked from outside: the row is shown as not checkable."""
        return self.read is not None or self.write is not None

    @property
    def checked_levels(self) -> tuple[str, ...]:
        return tuple(lv for lv in self.levels if lv not in self.unchecked_levels)

    def own_names(self) -> set[str]:
        """The permission names (without rak_) a refusal of this scope's probes may name without drift."""
        return {f"{self.scope}_{lv}" for lv in ("read", "write")} | set(self.refusal_names)

    def permission(self, level: str) -> str:
        return f"rak_{self.scope}_{level}"

    def grant(self, level: ProbeLevel) -> Permission:
        """This scope at `level`, as a feature names it; CatalogueError when Stripe does not offer that level."""
        if level not in self.levels:
            raise CatalogueError(
                f"catalogue entry {self.scope}: a feature needs {self.label} {level.capitalize()}, "
                f"but the entry offers only {', '.join(self.levels)}."
            )
        return Permission(self.scope, level, self.label)


ProbeLevel = Literal["read", "write"]


def _is_probe_level(value: object) -> TypeGuard[ProbeLevel]:
    return value in ("read", "write")


@dataclass(frozen=True)
class Permission:
    """One catalogue scope at one level, as a feature needs it (e.g. the sample transaction's create needs
    Charges Write): Stripe's name for it and the Dashboard's words, both from the catalogue entry."""

    scope: str  # the catalogue's scope id, e.g. "charge"
    level: ProbeLevel
    label: str  # the Dashboard's label of the scope, e.g. "Charges"

    @property
    def name(self) -> str:
        """Stripe's name: rak_<scope>_<level>."""
        return f"rak_{self.scope}_{self.level}"

    @property
    def words(self) -> str:
        """The Dashboard's words: "<label> Read" or "<label> Write"."""
        return f"{self.label} {self.level.capitalize()}"


def _collection(path: str) -> str:
    """A request path template without a trailing object id: /v1/charges/{id} -> /v1/charges."""
    return path.removesuffix("/{id}")


@dataclass(frozen=True)
class Catalogue:
    scopes: tuple[Scope, ...]
    order: tuple[str, ...] = ()  # the grid's category order; categories not named follow in file order

    _by_name: Mapping[str, Scope] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:  # the index is part of building it; nothing changes it afterwards
        object.__setattr__(self, "_by_name", MappingProxyType({s.scope: s for s in self.scopes}))

    def get(self, scope: str) -> Scope:
        return self._by_name[scope]

    def __contains__(self, scope: str) -> bool:
        return scope in self._by_name

    def permission_for(self, method: str, path: str) -> Permission:
        """The permission a request needs, found from the catalogue's probes: a GET needs the Read of the scope
        whose read probe targets the same resource (the collection or one of its objects, e.g. GET /v1/charges
        and GET /v1/charges/{id}), a POST or DELETE the Write of the scope whose write probe does. `path` is a
        template (`{id}` for an object id). CatalogueError when no scope, or more than one, guards it."""
        level: ProbeLevel = "read" if method.upper() == "GET" else "write"
        want = _collection(path)
        found = [
            s for s in self.scopes
            if (p := s.read if level == "read" else s.write) is not None and _collection(p.path) == want
        ]
        if len(found) != 1:
            names = ", ".join(s.scope for s in found)
            which = f"{len(found)} catalogue scopes ({names})" if found else "no catalogue scope"
            raise CatalogueError(
                f"{method.upper()} {path}: {which} with a {level} probe on {want} or {want}/{{id}}; "
                "the catalogue must name exactly one scope for each request a feature makes."
            )
        return found[0].grant(level)

    def categories(self) -> list[str]:
        seen: list[str] = list(self.order)
        for s in self.scopes:
            if s.category not in seen:
                seen.append(s.category)
        return seen

    def provenance_counts(self) -> dict[str, int]:
        """How many scopes come from each source (docs, error, calibrated, inferred), in that order."""
        out = {p: 0 for p in PROVENANCES}
        for s in self.scopes:
            out[s.provenance] += 1
        return out

    def to_json(self) -> list[dict[str, Any]]:
        """The `python -m core catalogue --json` shape: per scope its probes."""
        out = []
        for s in self.scopes:
            probes = []
            for level, p in (("read", s.read), ("write", s.write)):
                if p is not None:
                    probes.append({"scope": s.scope, "level": level, **p.to_dict()})
            out.append(
                {
                    "scope": s.scope,
                    "label": s.label,
                    "category": s.category,
                    "levels": list(s.levels),
                    "note": s.note,
                    "implies": list(s.implies),
                    "implies_unverified": list(s.implies_unverified),
                    "provenance": s.provenance,
                    "low_confidence": s.low_confidence,
                    "probes": probes,
                }
            )
        return out


@dataclass(frozen=True)
class Requirement:
    guide: str  # the onboarding guide's wording
    section: str  # the guide's accordion title
    level: Level  # what the guide asks
    scopes: tuple[str, ...]  # Stripe scopes it maps to; empty when it is not a Stripe permission
    note: str | None = None  # why it is not a permission, or why the level is adjusted
    category: str | None = None  # where a not-a-permission item sits in the grid (default: its section)


@dataclass(frozen=True)
class Profile:
    name: str
    key_name: str  # the name the guide tells tenants to give the key
    items: tuple[Requirement, ...]
    # scope -> (level, labels of the required scopes that imply it): Stripe grants these along with a
    # required permission, so having them up to that level is not excess (and not required either).
    # Read-only (a MappingProxyType): the profile is built once, in full, then frozen.
    implied: Mapping[str, tuple[Level, tuple[str, ...]]] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, hash=False
    )
    # Scopes in `implied` whose allowance rests only on implications no public source confirms (the catalogue's
    # `implies_unverified`): shown as "implied (unverified)".
    unverified: frozenset[str] = field(default_factory=frozenset, compare=False, hash=False)

    def __post_init__(self) -> None:  # still constructing: a plain dict given is copied into a read-only view
        if not isinstance(self.implied, MappingProxyType):
            object.__setattr__(self, "implied", MappingProxyType(dict(self.implied)))

    def allowed(self, scope: Scope) -> tuple[Level, str | None]:
        """The highest level a key may have without it being excess, and why (None: just the requirement)."""
        required, _ = self.required(scope)
        level, by = self.implied.get(scope.scope, ("none", ()))
        if level_rank(level) > level_rank(required):
            if scope.scope in self.unverified:
                return level, (f"Stripe is said to grant {scope.label} {level.capitalize()} along with "
                               f"{', '.join(by)} (unverified: no public source; calibration will confirm it).")
            return level, f"Stripe grants {scope.label} {level.capitalize()} along with {', '.join(by)}."
        return required, None

    def required(self, scope: Scope) -> tuple[Level, Requirement | None]:
        """The level Pointai requires of a scope, capped at what Stripe offers, and the guide item."""
        for item in self.items:
            if scope.scope in item.scopes:
                level: Level = item.level
                if level != "none" and level_rank(level) > level_rank(scope.max_level):
                    level = scope.max_level
                if level != "none" and level not in scope.levels:
                    # e.g. a write-only scope asked for Read: the nearest level Stripe offers
                    level = scope.max_level
                return level, item
        return "none", None

    def unmapped(self) -> list[Requirement]:
        """Guide items that are not a Stripe permission (kept and explained, never dropped)."""
        return [i for i in self.items if not i.scopes]


def _probe(entry: dict[str, Any] | None, where: str) -> Probe | None:
    if entry is None:
        return None
    try:
        method = str(entry["method"]).upper()
        path = str(entry["path"])
    except KeyError as e:
        raise CatalogueError(f"{where}: a probe needs 'method' and 'path' (missing {e}).") from None
    params = dict(entry.get("params", {}))
    if method not in ("GET", "POST", "DELETE"):
        raise CatalogueError(f"{where}: probe method {method!r} is not GET, POST or DELETE.")
    if not path.startswith("/v1/") and not path.startswith("/v2/"):
        raise CatalogueError(f"{where}: probe path {path!r} must start with /v1/ or /v2/.")
    if method != "GET" and "{id}" not in path and PROBE_PARAM not in params:
        raise CatalogueError(
            f"{where}: a {method} probe must target a made-up id ({{id}} in the path) or carry the "
            f"unknown parameter {PROBE_PARAM!r}, so that it can never create anything."
        )
    base = str(entry.get("base", "api"))
    if base not in ("api", "files"):
        raise CatalogueError(f"{where}: probe base {base!r} must be 'api' or 'files' (files.stripe.com).")
    api_version = entry.get("api_version")
    if api_version is not None and not _API_VERSION_RE.match(str(api_version)):
        raise CatalogueError(
            f"{where}: api_version {api_version!r} is not a Stripe API version such as '2025-02-24.acacia'."
        )
    provenance = entry.get("provenance")
    if provenance is not None and provenance not in PROVENANCES:
        raise CatalogueError(f"{where}: probe provenance {provenance!r} must be one of {', '.join(PROVENANCES)}.")
    return Probe(method=method, path=path, params=params, base=base,
                 api_version=str(api_version) if api_version else None, provenance=provenance)


def _entry_levels(e: dict[str, Any], where: str) -> tuple[ProbeLevel, ...]:
    levels: tuple[ProbeLevel, ...] = tuple(lv for lv in e["levels"] if _is_probe_level(lv))
    if not levels or len(levels) != len(e["levels"]):
        raise CatalogueError(f"{where}: levels must be a non-empty list of 'read'/'write'.")
    return levels


def _entry_unchecked(
    e: dict[str, Any], where: str, levels: tuple[ProbeLevel, ...], read: Probe | None, write: Probe | None
) -> tuple[Any, tuple[ProbeLevel, ...]]:
    """The entry's `unchecked` sentence and unchecked levels; a probe exactly for each checkable level offered."""
    unchecked = e.get("unchecked")
    unchecked_levels = tuple(e.get("unchecked_levels", ()))
    if unchecked and not unchecked_levels and read is None and write is None:
        unchecked_levels = levels  # the whole row is not checkable from outside
    if unchecked_levels and not unchecked:
        raise CatalogueError(f"{where}: unchecked_levels need an 'unchecked' sentence saying why.")
    if set(unchecked_levels) - set(levels):
        raise CatalogueError(f"{where}: unchecked_levels must be levels the scope offers.")
    for lv, probe in (("read", read), ("write", write)):
        wanted = lv in levels and lv not in unchecked_levels
        if wanted != (probe is not None):
            raise CatalogueError(
                f"{where}: a {lv} probe is needed exactly when {lv.capitalize()} is offered "
                "(a level no request can check goes in unchecked_levels, with the reason in 'unchecked')."
            )
    return unchecked, unchecked_levels


def _entry_provenance(e: dict[str, Any], where: str) -> str:
    provenance = str(e.get("provenance", "inferred"))
    if provenance not in PROVENANCES:
        raise CatalogueError(f"{where}: provenance {provenance!r} must be one of {', '.join(PROVENANCES)}.")
    return provenance


def _check_refusal_names(e: dict[str, Any], where: str) -> None:
    for name in e.get("refusal_names", ()):
        if not _PERMISSION_RE.match(str(name)) or str(name).startswith("rak_"):
            raise CatalogueError(
                f"{where}: refusal name {name!r} must be '<name>_read' or '<name>_write', without rak_."
            )


def _parse_scope(i: int, e: dict[str, Any], seen: set[str], connect_category: str, connect_note: Any) -> Scope:
    """Catalogue entry number `i` (0-based) as a Scope, checked on its own; `seen` collects the scopes so far."""
    where = f"catalogue entry {i + 1} ({e.get('scope', '?')})"
    for k in ("scope", "label", "category", "levels"):
        if k not in e:
            raise CatalogueError(f"{where}: missing {k!r}.")
    levels = _entry_levels(e, where)
    read, write = _probe(e.get("read"), where + " read"), _probe(e.get("write"), where + " write")
    unchecked, unchecked_levels = _entry_unchecked(e, where, levels, read, write)
    provenance = _entry_provenance(e, where)
    if e["scope"] in seen:
        raise CatalogueError(f"{where}: scope listed twice.")
    seen.add(e["scope"])
    _check_refusal_names(e, where)
    note = e.get("note")
    if e["category"] == connect_category and connect_note:
        note = f"{note} {connect_note}" if note else connect_note
    return Scope(
        scope=e["scope"],
        label=e["label"],
        category=e["category"],
        levels=levels,
        read=read,
        write=write,
        note=note,
        implies=tuple(e.get("implies", ())),
        implies_unverified=tuple(e.get("implies_unverified", ())),
        verdict_by_name=bool(e.get("verdict_by_name", False)),
        low_confidence=bool(e.get("low_confidence", False)),
        provenance=provenance,
        absent_api=e.get("absent_api"),
        test_only=e.get("test_only"),
        unchecked_levels=unchecked_levels,
        unchecked=unchecked,
        refusal_names=tuple(e.get("refusal_names", ())),
    )


def _check_across(scopes: list[Scope]) -> None:
    """The rules between entries (what a row implies must be offered) and the ones on a parsed row's flags."""
    offered = {f"{s.scope}_{lv}" for s in scopes for lv in s.levels}
    for s in scopes:
        for perm in (*s.implies, *s.implies_unverified):
            if perm not in offered:
                raise CatalogueError(
                    f"catalogue entry {s.scope}: implies {perm!r}, which is no '<scope>_<level>' the catalogue offers."
                )
        if set(s.implies) & set(s.implies_unverified):
            raise CatalogueError(
                f"catalogue entry {s.scope}: {', '.join(sorted(set(s.implies) & set(s.implies_unverified)))} is "
                "listed both in implies and in implies_unverified; keep it in one."
            )
        if s.verdict_by_name and not (s.note and "refusal" in s.note):
            raise CatalogueError(
                f"catalogue entry {s.scope}: verdict_by_name needs a note saying which refusal names decide the row."
            )
        if s.low_confidence and s.provenance not in ("error", "inferred"):
            raise CatalogueError(
                f"catalogue entry {s.scope}: a low-confidence row cannot claim provenance {s.provenance!r}; "
                "use 'error' or 'inferred'."
            )


def parse_catalogue(data: dict[str, Any]) -> Catalogue:
    seen: set[str] = set()
    # One sentence added to every row of the Connect category: the probes test only the key's own account.
    connect_category = str(data.get("connected_accounts_category", "Connect"))
    connect_note = data.get("connected_accounts_note")
    scopes = [_parse_scope(i, e, seen, connect_category, connect_note) for i, e in enumerate(data.get("scope", []))]
    if not scopes:
        raise CatalogueError("The catalogue lists no scopes.")
    _check_across(scopes)
    return Catalogue(tuple(scopes), tuple(data.get("categories", ())))


def parse_profile(data: dict[str, Any], catalogue: Catalogue) -> Profile:
    items = []
    for i, e in enumerate(data.get("item", [])):
        where = f"requirement {i + 1} ({e.get('guide', '?')})"
        if not e.get("guide"):
            raise CatalogueError(f"{where}: missing 'guide' (the onboarding guide's wording for the item).")
        level = e.get("level")
        if not is_level(level):
            raise CatalogueError(f"{where}: level must be one of {', '.join(LEVELS)}.")
        scopes = tuple(e.get("scopes", []))
        for s in scopes:
            if s not in catalogue:
                raise CatalogueError(f"{where}: scope {s!r} is not in the catalogue.")
        if not scopes and not e.get("note"):
            raise CatalogueError(f"{where}: an item with no Stripe scope needs a note explaining why.")
        items.append(
            Requirement(
                guide=e["guide"],
                section=e.get("section", ""),
                level=level,
                scopes=scopes,
                note=e.get("note"),
                category=e.get("category"),
            )
        )
    base = Profile(name=data.get("name", "requirements"), key_name=data.get("key_name", ""), items=tuple(items))
    implied: dict[str, tuple[Level, tuple[str, ...]]] = {}
    verified: dict[str, Level] = {}  # the level each scope is allowed by implications with a public source
    for s in catalogue.scopes:
        if base.required(s)[0] == "none":
            continue
        for perm, sure in [(p, True) for p in s.implies] + [(p, False) for p in s.implies_unverified]:
            scope, level = perm.rsplit("_", 1)
            if not is_level(level):  # parse_catalogue has checked every `implies` already
                raise CatalogueError(f"catalogue entry {s.scope}: implies {perm!r}, which names no level.")
            have, by = implied.get(scope, ("none", ()))
            implied[scope] = (max(have, level, key=level_rank), by if s.label in by else (*by, s.label))
            if sure:
                verified[scope] = max(verified.get(scope, "none"), level, key=level_rank)
    unverified = frozenset(
        scope for scope, (level, _) in implied.items() if level_rank(verified.get(scope, "none")) < level_rank(level)
    )
    # The profile with everything in it, built once: `base` (which only answered `required`) is never changed.
    return replace(base, implied=MappingProxyType(implied), unverified=unverified)


# One load at a time: a fleet's hundreds of threads ask at once on start-up, and lru_cache alone would let each
# of them parse the TOML (it caches a result only once one is computed).
_load_lock = threading.RLock()


def load_catalogue(path: Path = CATALOGUE_PATH) -> Catalogue:
    with _load_lock:
        return _load_catalogue(path)


@lru_cache(maxsize=8)
def _load_catalogue(path: Path) -> Catalogue:
    with open(path, "rb") as f:
        return parse_catalogue(tomllib.load(f))


def load_profile(path: Path = REQUIREMENTS_PATH, catalogue_path: Path = CATALOGUE_PATH) -> Profile:
    with _load_lock:
        return _load_profile(path, catalogue_path)


@lru_cache(maxsize=8)
def _load_profile(path: Path, catalogue_path: Path) -> Profile:
    with open(path, "rb") as f:
        return parse_profile(tomllib.load(f), load_catalogue(catalogue_path))
