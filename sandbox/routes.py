"""The sandbox's model of Stripe's API (stripe_api.toml): routes, scopes and the permission gate.

A route is (method, path pattern) -> (resource, kind, permission level). Stripe checks the permission
before it validates the body or looks anything up, and only for URLs it recognises: an unknown URL
is a 404 whatever the key may do.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

API_TOML = Path(__file__).with_name("stripe_api.toml")

READ_OPS = {"list", "retrieve", "search", "get"}
WRITE_OPS = {"create", "update", "delete", "set"}
_FIELDS = {
    "scope", "label", "category", "path", "object", "prefix", "ops", "actions", "sublists", "subcreates",
    "params", "required", "required_any", "filters", "aliases", "implies", "deny_read", "deny_write",
    "parent", "levels", "note", "legacy", "removed_in",
}


@dataclass(frozen=True)
class Resource:
    scope: str
    label: str
    category: str
    path: str
    object: str
    prefix: str = ""
    ops: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    sublists: tuple[str, ...] = ()
    subcreates: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    required_any: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    implies: tuple[str, ...] = ()
    deny_read: tuple[str, ...] = ()
    deny_write: tuple[str, ...] = ()
    parent: str | None = None
    levels: tuple[str, ...] = ()
    note: str | None = None
    legacy: bool = False  # gone for most accounts: 404 Unrecognized request URL unless the account has it
    # The API version that removed it (e.g. "2025-03-31.basil"): a request sent with that Stripe-Version or a
    # later one gets 404 Unrecognized request URL; an older version still reaches it.
    removed_in: str | None = None

    def gone_at(self, stripe_version: str) -> bool:
        """True when a request with this Stripe-Version no longer reaches the resource."""
        return self.removed_in is not None and stripe_version[:10] >= self.removed_in[:10]

    @property
    def singleton(self) -> bool:
        return bool({"get", "set"} & set(self.ops))

    @property
    def creates_on_empty(self) -> bool:
        return "create" in self.ops and not self.required and not self.required_any


@dataclass(frozen=True)
class Scope:
    name: str
    label: str
    category: str
    levels: tuple[str, ...]  # what Stripe offers besides None
    aliases: tuple[str, ...] = ()
    implies: tuple[str, ...] = ()

    def level_for(self, writes: bool) -> str:
        """The level a route needs: write for writes (even where Stripe offers no Write: then no restricted
        key passes), read for reads (write where the scope is write only)."""
        if writes:
            return "write"
        return "read" if "read" in self.levels else "write"


@dataclass(frozen=True)
class Route:
    method: str
    kind: str  # list create retrieve update delete search get set action sublist subcreate
    resource: Resource
    template: str
    regex: re.Pattern
    literal_segments: int
    sub: str | None = None  # the verb of an action, the name of a sublist/subcreate

    @property
    def writes(self) -> bool:
        return self.method != "GET"


_MISS: Any = object()


@dataclass
class ApiModel:
    resources: list[Resource]
    scopes: dict[str, Scope]
    routes: list[Route] = field(default_factory=list)
    by_path: dict[str, Resource] = field(default_factory=dict)
    # what match() and effective() found, by their arguments: every key asks the same few hundred of each
    _matched: dict[tuple[str, str], tuple[Route, dict[str, str]] | None] = field(default_factory=dict, repr=False)
    _effective: dict[tuple[frozenset[str], bool], frozenset[str]] = field(default_factory=dict, repr=False)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        k = (method, path)
        hit = self._matched.get(k, _MISS)  # (one lookup: another thread may clear the dict meanwhile)
        if hit is not _MISS:
            return None if hit is None else (hit[0], dict(hit[1]))
        found = None
        for r in self.routes:
            if r.method != method:
                continue
            m = r.regex.match(path)
            if m:
                found = (r, m.groupdict())
                break
        if len(self._matched) > 4096:  # object ids make paths without end: bounded
            self._matched.clear()
        self._matched[k] = found
        return None if found is None else (found[0], dict(found[1]))

    def scope_of(self, route: Route) -> Scope:
        return self.scopes[route.resource.scope]

    def needed(self, route: Route) -> str:
        """The permission a route needs, e.g. rak_charge_read."""
        scope = self.scope_of(route)
        return f"rak_{scope.name}_{scope.level_for(route.writes)}"

    def alternatives(self, permission: str) -> list[str]:
        """Other permissions that would unlock the same request (scopes documented as implying it)."""
        return [f"rak_{s.name}_read" if "read" in s.levels else f"rak_{s.name}_write"
                for s in self.scopes.values() if permission in s.implies]

    def effective(self, permissions: set[str], implied: bool = False) -> set[str]:
        """A key's permissions with aliases folded to canonical names (and implied ones when asked)."""
        k = (frozenset(permissions), implied)
        got = self._effective.get(k)
        if got is None:
            if len(self._effective) > 1024:
                self._effective.clear()
            got = self._effective[k] = frozenset(self._effective_of(permissions, implied))
        return set(got)

    def _effective_of(self, permissions: set[str], implied: bool) -> set[str]:
        out = set(permissions)
        alias_to = {a: s.name for s in self.scopes.values() for a in s.aliases}
        for p in permissions:
            m = re.fullmatch(r"rak_(.+)_(read|write)", p)
            if m and m.group(1) in alias_to:
                out.add(f"rak_{alias_to[m.group(1)]}_{m.group(2)}")
        if implied:
            for s in self.scopes.values():
                if any(f"rak_{s.name}_{lv}" in out for lv in s.levels):
                    out.update(s.implies)
        return out

    def allows(self, permissions: set[str], route: Route, implied: bool = False) -> bool:
        if "*" in permissions:
            return True
        perms = self.effective(permissions, implied)
        scope = self.scope_of(route)
        level = scope.level_for(route.writes)
        ok = {f"rak_{scope.name}_write"} if level == "write" else {f"rak_{scope.name}_read", f"rak_{scope.name}_write"}
        return bool(ok & perms)


def _compile(template: str) -> tuple[re.Pattern, int]:
    parts = template.strip("/").split("/")
    out, literal = [], 0
    for p in parts:
        if p.startswith("{") and p.endswith("}"):
            out.append(f"(?P<{p[1:-1]}>[^/]+)")
        else:
            out.append(re.escape(p))
            literal += 1
    return re.compile("^/" + "/".join(out) + "$"), literal


def _routes_for(res: Resource) -> list[Route]:
    base = res.path
    specs: list[tuple[str, str, str, str | None]] = []  # method, kind, template, sub
    table = {
        "list": ("GET", base),
        "create": ("POST", base),
        "search": ("GET", base + "/search"),
        "retrieve": ("GET", base + "/{id}"),
        "update": ("POST", base + "/{id}"),
        "delete": ("DELETE", base + "/{id}"),
        "get": ("GET", base),
        "set": ("POST", base),
    }
    for op in res.ops:
        method, template = table[op]
        specs.append((method, op, template, None))
    specs += [("POST", "action", f"{base}/{{id}}/{v}", v) for v in res.actions]
    specs += [("GET", "sublist", f"{base}/{{id}}/{n}", n) for n in res.sublists]
    specs += [("POST", "subcreate", f"{base}/{{id}}/{n}", n) for n in res.subcreates]
    out = []
    for method, kind, template, sub in specs:
        rx, lit = _compile(template)
        out.append(Route(method, kind, res, template, rx, lit, sub))
    return out


def parse_model(data: dict) -> ApiModel:
    resources: list[Resource] = []
    for i, e in enumerate(data.get("resource", [])):
        where = f"stripe_api.toml resource {i + 1} ({e.get('path', '?')})"
        unknown = set(e) - _FIELDS
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}.")
        for k in ("scope", "label", "category", "path", "object", "ops"):
            if k not in e:
                raise ValueError(f"{where}: missing {k!r}.")
        bad = set(e["ops"]) - READ_OPS - WRITE_OPS
        if bad:
            raise ValueError(f"{where}: unknown op(s) {', '.join(sorted(bad))}.")
        kw: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in e.items()}
        resources.append(Resource(**kw))
    # Scopes: label/category/aliases/implies from the first resource naming it; levels from all routes.
    scopes: dict[str, Scope] = {}
    for res in resources:
        reads = bool(READ_OPS & set(res.ops)) or bool(res.sublists)
        writes = bool(WRITE_OPS & set(res.ops)) or bool(res.actions) or bool(res.subcreates)
        lv = set(res.levels) if res.levels else {lv for lv, on in (("read", reads), ("write", writes)) if on}
        prev = scopes.get(res.scope) or Scope(res.scope, res.label, res.category, ())
        lv |= set(prev.levels)
        scopes[res.scope] = Scope(
            res.scope, prev.label, prev.category, tuple(x for x in ("read", "write") if x in lv),
            tuple(dict.fromkeys(prev.aliases + res.aliases)), tuple(dict.fromkeys(prev.implies + res.implies)),
        )
    routes = [r for res in resources for r in _routes_for(res)]
    routes.sort(key=lambda r: -r.literal_segments)  # /v1/charges/search before /v1/charges/{id}
    model = ApiModel(resources=resources, scopes=scopes, routes=routes, by_path={r.path: r for r in resources})
    for res in resources:
        if res.parent and res.parent not in model.by_path:
            raise ValueError(f"stripe_api.toml {res.path}: parent {res.parent!r} is not a resource path.")
    return model


@lru_cache(maxsize=2)
def load_model(path: Path = API_TOML) -> ApiModel:
    with open(path, "rb") as f:
        return parse_model(tomllib.load(f))


# ------------------------------------------------------------------ 403 wordings

DENY_STYLES = ("single", "several", "none", "newer", "newest")
# Newer refusals carry this code; older ones (the "single" and "none" wordings here) carry none.
DENY_CODE = {"several": "more_permissions_required", "newer": "more_permissions_required",
             "newest": "more_permissions_required"}
DASHBOARD = "https://dashboard.stripe.com"


def edit_url(account: str, dashboard_key_id: str) -> str:
    """The newest wording's link to the refused key's own edit page (seen in public repositories)."""
    return f"{DASHBOARD}/b/{account}?destination=%2Fapikeys%2F{dashboard_key_id}%2Fedit"
TEST_MODE_ONLY = "This endpoint is only available in test mode: use a test mode key (sk_test_ or rk_test_)."


def account_invalid_message(masked: str, account: str) -> str:
    return (
        f"The provided key '{masked}' does not have access to account '{account}' (or that account does not "
        "exist). Application access may have been revoked."
    )


def mask_key(key: str) -> str:
    """rk_test_***abcd: Stripe's own masking (prefix, three stars, last four)."""
    m = re.match(r"^([a-z]+_(?:test|live)_)", key)
    prefix = m.group(1) if m else ""
    return f"{prefix}***{key[-4:]}" if len(key) > 4 else "***"


def deny_message(style: str, masked: str, account: str, model: ApiModel, route: Route,
                 dashboard_key_id: str = "mk_keyhealthsandbox") -> str:
    scope = model.scope_of(route)
    level = scope.level_for(route.writes)
    needed = f"rak_{scope.name}_{level}"
    quirk = route.resource.deny_write if route.writes else route.resource.deny_read
    names = list(quirk) if quirk else [needed] + model.alternatives(needed)
    if style == "several" and len(names) == 1 and not route.writes and "write" in scope.levels and not quirk:
        names.append(f"rak_{scope.name}_write")  # either would do
    head = (
        f"The provided key '{masked}' does not have the required permissions for this endpoint "
        f"on account '{account}'."
    )
    tail = "would allow this request to continue."
    if style == "none":
        return f"{head} Having more permissions {tail}"
    if style in ("newer", "newest"):
        name = names[0][len("rak_"):]
        lvl = name.rsplit("_", 1)[1].capitalize()
        label = scope.label if not quirk else name.rsplit("_", 1)[0].replace("_", " ").title()
        text = f'Permission denied. {head} Enabling "{label} {lvl}" (\'{name}\') permissions on this key {tail}'
        if style == "newest":
            text += f" You can edit permissions at {edit_url(account, dashboard_key_id)}"
        return text
    if style == "several" and len(names) > 1:
        return f"{head} Having the {', '.join(repr(n) for n in names)} permissions {tail}"
    return f"{head} Having the '{names[0]}' permission {tail}"
