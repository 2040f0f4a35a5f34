"""The permission catalogue and Pointai's requirement profile, loaded from data/.

Adding a Stripe permission, or changing what Pointai requires, is an entry in
data/catalogue.toml or data/requirements.toml, never code here.
"""
from __future__ import annotations

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


class CatalogueError(ValueError):
    """The data files are malformed; the message says which entry and what to fix."""


@dataclass(frozen=True)
class Probe:
    method: str  # GET | POST | DELETE
    path: str  # Stripe's path template, e.g. /v1/charges/{id}
    params: dict[str, Any] = field(default_factory=dict)
    base: str = "api"  # "api" or "files" (files.stripe.com)

    def concrete_path(self) -> str:
        return self.path.replace("{id}", PROBE_ID)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"method": self.method, "path": self.path}
        if self.params:
            d["params"] = dict(self.params)
        if self.base != "api":
            d["base"] = self.base
        return d


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
                    "provenance": s.provenance,
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

    def __post_init__(self) -> None:  # still constructing: a plain dict given is copied into a read-only view
        if not isinstance(self.implied, MappingProxyType):
            object.__setattr__(self, "implied", MappingProxyType(dict(self.implied)))

    def allowed(self, scope: Scope) -> tuple[Level, str | None]:
        """The highest level a key may have without it being excess, and why (None: just the requirement)."""
        required, _ = self.required(scope)
        level, by = self.implied.get(scope.scope, ("none", ()))
        if level_rank(level) > level_rank(required):
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
    return Probe(method=method, path=path, params=params, base=base)


def parse_catalogue(data: dict[str, Any]) -> Catalogue:
    scopes = []
    seen = set()
    for i, e in enumerate(data.get("scope", [])):
        where = f"catalogue entry {i + 1} ({e.get('scope', '?')})"
        for k in ("scope", "label", "category", "levels"):
            if k not in e:
                raise CatalogueError(f"{where}: missing {k!r}.")
        levels: tuple[ProbeLevel, ...] = tuple(lv for lv in e["levels"] if _is_probe_level(lv))
        if not levels or len(levels) != len(e["levels"]):
            raise CatalogueError(f"{where}: levels must be a non-empty list of 'read'/'write'.")
        read, write = _probe(e.get("read"), where + " read"), _probe(e.get("write"), where + " write")
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
        provenance = str(e.get("provenance", "inferred"))
        if provenance not in PROVENANCES:
            raise CatalogueError(f"{where}: provenance {provenance!r} must be one of {', '.join(PROVENANCES)}.")
        if e["scope"] in seen:
            raise CatalogueError(f"{where}: scope listed twice.")
        seen.add(e["scope"])
        scopes.append(
            Scope(
                scope=e["scope"],
                label=e["label"],
                category=e["category"],
                levels=levels,
                read=read,
                write=write,
                note=e.get("note"),
                implies=tuple(e.get("implies", ())),
                provenance=provenance,
                absent_api=e.get("absent_api"),
                test_only=e.get("test_only"),
                unchecked_levels=unchecked_levels,
                unchecked=unchecked,
                refusal_names=tuple(e.get("refusal_names", ())),
            )
        )
    if not scopes:
        raise CatalogueError("The catalogue lists no scopes.")
    offered = {f"{s.scope}_{lv}" for s in scopes for lv in s.levels}
    for s in scopes:
        for perm in s.implies:
            if perm not in offered:
                raise CatalogueError(
                    f"catalogue entry {s.scope}: implies {perm!r}, which is no '<scope>_<level>' the catalogue offers."
                )
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
    for s in catalogue.scopes:
        if base.required(s)[0] == "none":
            continue
        for perm in s.implies:
            scope, level = perm.rsplit("_", 1)
            if not is_level(level):  # parse_catalogue has checked every `implies` already
                raise CatalogueError(f"catalogue entry {s.scope}: implies {perm!r}, which names no level.")
            have, by = implied.get(scope, ("none", ()))
            implied[scope] = (max(have, level, key=level_rank), by if s.label in by else (*by, s.label))
    # The profile with everything in it, built once: `base` (which only answered `required`) is never changed.
    return replace(base, implied=MappingProxyType(implied))


@lru_cache(maxsize=8)
def load_catalogue(path: Path = CATALOGUE_PATH) -> Catalogue:
    with open(path, "rb") as f:
        return parse_catalogue(tomllib.load(f))


@lru_cache(maxsize=8)
def load_profile(path: Path = REQUIREMENTS_PATH, catalogue_path: Path = CATALOGUE_PATH) -> Profile:
    with open(path, "rb") as f:
        return parse_profile(tomllib.load(f), load_catalogue(catalogue_path))
