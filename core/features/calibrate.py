"""Calibration: prove the permission catalogue against a real Stripe account (`python -m core calibrate`).

Nobody can probe real Stripe from the test machines, so Pointai runs this on its own account, with no side
effects (GET and unknown-parameter probes only, exactly the catalogue's), and records the result:

- `full`: a standard TEST secret key (sk_test_, every permission). Every probe must come back granted at every
  level the catalogue claims; one that does not is a mismatch (its endpoint, status, code and message). An API
  the catalogue says may be gone for an account (`absent_api`) answering 404 is reported as absent, not wrong.
- `none`: a restricted test key with no permissions. Every probe must come back None (a permission refusal);
  the permissions the refusals name are collected and compared with the catalogue's names (the drift report):
  a name that is neither the scope's own nor one of its `refusal_names` is a mismatch.
- `guide` (optional): a restricted test key created from the pre-filled create-key link: it must come back healthy.
- Stripe's own map (with the `full` key): the Stripe CLI's hidden `POST /v1/stripecli/key_permissions`
  (`endpoints[0]="GET /v1/customers"`) names the permissions an endpoint needs. Asked once per probe endpoint, its
  answer is set beside the catalogue's scope and level: agree, disagree or unresolved (`stripe_map` in the JSON).
  Undocumented and liable to change, so best effort: an error or an unknown answer shape is reported there, never
  fatal, and changes nothing else in the run (the `ok` verdict does not depend on it).

This is the only place a standard `sk_` key is accepted. Keys come from standard input lines `<run>,<key>`.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import stripe

from core.engine.catalogue import Catalogue, Probe, Profile, Scope, load_catalogue, load_profile
from core.engine.keys import mask
from core.engine.probe import Answer, KeyRequests, shared_client
from core.engine.settings import ProbeSettings

RUNS = ("full", "none", "guide")
EXPECTED = {"full": "granted", "none": "none"}
KEY_PREFIX = {"full": "sk_test_", "none": "rk_test_", "guide": "rk_test_"}
KEY_KIND = {
    "full": "a standard test secret key (sk_test_…, every permission)",
    "none": "a restricted test key with no permissions (rk_test_…)",
    "guide": "a restricted test key created from the pre-filled create-key link (rk_test_…)",
}


class CalibrationInputError(ValueError):
    """The keys on standard input are not usable; one sentence naming the line and the fix."""


@dataclass
class Observation:
    """One probe of one run: what the catalogue expects and what Stripe answered."""

    run: str
    scope: str
    level: str
    method: str
    path: str
    expected: str  # granted | none | healthy
    seen: str  # granted | none | absent | unknown | forbidden | broken | incident | …
    verdict: str  # match | absent (an API gone for the account: reported, not wrong) | mismatch
    status: int | None = None
    code: str | None = None
    named: tuple[str, ...] = ()
    message: str | None = None

    def mismatch(self) -> dict:
        return {
            "run": self.run, "scope": self.scope, "level": self.level, "expected": self.expected,
            "seen": self.seen, "status": self.status, "code": self.code, "named": list(self.named),
            "method": self.method, "path": self.path, "message": self.message,
        }


@dataclass
class Calibration:
    observations: list[Observation] = field(default_factory=list)
    named_permissions: dict[str, list[str]] = field(default_factory=dict)  # "<scope>_<level>" -> names (none run)
    drift: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # a run that could not go on (e.g. Stripe refused the key)
    guide: dict | None = None
    requests: int = 0
    runs: tuple[str, ...] = ()
    stripe_map: dict | None = None  # Stripe's own endpoint-to-permission map beside the catalogue (full key only)

    @property
    def mismatches(self) -> list[Observation]:
        return [o for o in self.observations if o.verdict == "mismatch"]

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.problems

    def summary(self) -> str:
        """One line for the audit trail (no key in it)."""
        probes = sum(1 for o in self.observations if o.run != "guide")
        guide = f", guide key {self.guide['status']}" if self.guide else ""
        m = self.stripe_map
        smap = "" if m is None else (
            f", Stripe's map {m['agree']} agree / {m['disagree']} disagree / {m['unresolved']} unresolved"
            if m["available"] else ", Stripe's map unavailable")
        return (f"runs {'+'.join(self.runs)}: {probes} probes, {len(self.mismatches)} mismatches, "
                f"{len(self.drift)} drifted names, {len(self.problems)} problems{guide}{smap}, "
                f"{self.requests} requests")

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "runs": list(self.runs),
            "mismatches": [o.mismatch() for o in self.mismatches],
            "named_permissions": self.named_permissions,
            "drift": self.drift,
            "absent": [{"run": o.run, "scope": o.scope, "level": o.level, "path": o.path}
                       for o in self.observations if o.verdict == "absent"],
            "problems": list(self.problems),
            "guide": self.guide,
            "probes": sum(1 for o in self.observations if o.run != "guide"),
            "requests": self.requests,
            "stripe_map": self.stripe_map,
        }


def parse_keys(text: str) -> dict[str, str]:
    """`full,<sk_test_…>`, `none,<rk_test_…>` and optionally `guide,<rk_test_…>`, one per line."""
    keys: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        run, sep, key = line.partition(",")
        run, key = run.strip().lower(), key.strip().strip("'\"")
        if not sep or run not in RUNS:
            raise CalibrationInputError(
                f"Line {n} is not '<run>,<key>' with run full, none or guide; write e.g. 'none,rk_test_…'."
            )
        if run in keys:
            raise CalibrationInputError(f"Line {n} gives a second '{run}' key; give each run one key.")
        if not key.startswith(KEY_PREFIX[run]) or any(c.isspace() for c in key) or len(key) < 20:
            shown = mask(key) if key else "nothing"
            raise CalibrationInputError(
                f"Line {n}: the '{run}' key must be {KEY_KIND[run]}, not {shown}; calibrate in test mode only."
            )
        keys[run] = key
    for run in ("full", "none"):
        if run not in keys:
            raise CalibrationInputError(
                f"No '{run}' key given: add a line '{run},{KEY_PREFIX[run]}…' ({KEY_KIND[run]})."
            )
    return keys


def _probes(catalogue: Catalogue) -> list[tuple[Scope, str, Probe]]:
    out = []
    for s in catalogue.scopes:
        for level, p in (("read", s.read), ("write", s.write)):
            if p is not None:
                out.append((s, level, p))
    return out


def _send(http: KeyRequests, probe: Probe) -> Answer:
    _, answer, _tries = http.request(probe.method, probe.concrete_path(), probe.options())
    if answer is None:
        if probe.method != "GET":
            return Answer("incident", 200, f"INCIDENT: {probe.method} {probe.path} answered 2xx")
        return Answer("granted", 200, "answered 2xx")
    return answer


def _seen(a: Answer) -> str:
    return {"denied": "none", "retry": "unknown", "stopped": "unknown", "auth": "refused"}.get(a.kind, a.kind)


def _run_probes(run: str, key: str, catalogue: Catalogue, settings: ProbeSettings, client: stripe.StripeClient,
                cal: Calibration) -> None:
    http = KeyRequests(key, "test", settings, client)
    expected = EXPECTED[run]
    # A refusal may also name a permission that implies the probed one (a PaymentIntents refusal may name
    # payment_intent_read and checkout_session_read, each with Stripe's rak_ prefix): that is no drift.
    implying: dict[str, set[str]] = {}
    for s in catalogue.scopes:
        for perm in (*s.implies, *s.implies_unverified):
            implying.setdefault(perm.rsplit("_", 1)[0], set()).update(f"{s.scope}_{lv}" for lv in s.levels)
    try:
        for scope, level, probe in _probes(catalogue):
            a = _send(http, probe)
            if a.kind == "auth":
                cal.problems.append(f"Stripe refused the '{run}' key ({mask(key)}): {a.detail[:160]}")
                return
            seen = _seen(a)
            verdict = "match" if seen == expected else "mismatch"
            if a.kind == "absent" and scope.absent_api:
                verdict = "absent"  # the API is gone for this account: reported, not wrong
            obs = Observation(run, scope.scope, level, probe.method, probe.path, expected, seen, verdict,
                              a.status, a.code, a.named, None if verdict == "match" else a.detail[:300])
            if run == "none" and a.kind == "denied":
                cal.named_permissions[f"{scope.scope}_{level}"] = list(a.named)
                foreign = [n for n in a.named if n not in scope.own_names() and n not in implying.get(scope.scope, ())]
                if foreign:
                    cal.drift.append({"scope": scope.scope, "level": level, "named": foreign})
                    obs.seen, obs.verdict = "none, naming another permission", "mismatch"
                    obs.message = (
                        f"the refusal names {', '.join('rak_' + n for n in foreign)}, which the catalogue "
                        f"does not list for rak_{scope.scope}"
                    )
            cal.observations.append(obs)
    finally:
        cal.requests += http.requests


def _run_guide(key: str, catalogue: Catalogue, profile: Profile, settings: ProbeSettings,
               client: stripe.StripeClient, cal: Calibration) -> None:
    from core.engine.check import check_key

    result = check_key(key, settings=settings, client=client, catalogue=catalogue, profile=profile)
    cal.requests += result.requests
    cal.guide = {"status": result.status, "score": result.score, "problem": result.problem}
    if result.status == "invalid":
        cal.problems.append(f"The 'guide' key was refused: {result.problem}")
        return
    for r in result.rows:
        if not r.scope or r.verdict in ("ok", "not_applicable"):
            continue
        cal.observations.append(Observation(
            "guide", r.scope, r.required, "", "", r.required, r.granted or "-", "mismatch",
            named=tuple(n.split(" ")[0].removeprefix("rak_") for n in (r.named or "").split(", ") if n),
            message=r.fix or r.reason,
        ))


KEY_PERMISSIONS_PATH = "/v1/stripecli/key_permissions"


def map_endpoint(probe: Probe) -> str:
    """The probe's endpoint as the Stripe CLI names it: "GET /v1/charges/:id"."""
    return f"{probe.method} {probe.path.replace('{id}', ':id')}"


def _names(value: Any) -> list[str] | None:
    """The permission names in a map answer's `permissions` (strings, with or without rak_); None: not that shape."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return [v.removeprefix("rak_") for v in value]


def _map_verdict(scope: Scope, level: str, names: list[str], implying: set[str]) -> str:
    """agree: Stripe names the catalogue's permission (or a refusal name of the scope, or one that implies it);
    disagree: it names others only."""
    own = {f"{scope.scope}_{level}"} | {n for n in scope.refusal_names if n.endswith(f"_{level}")}
    if level == "read":
        own.add(f"{scope.scope}_write")  # write implies read: a map naming Write for a GET still agrees
    return "agree" if set(names) & (own | implying) else "disagree"


def stripe_map(key: str, catalogue: Catalogue, settings: ProbeSettings, client: stripe.StripeClient) -> dict:
    """Ask Stripe's hidden permission map for every probe's endpoint, one endpoint per request (its answer is the
    union for all endpoints asked). Best effort: never raises; the first answer that shows the map is not there for
    this key (401/403/404) stops the asking, any other odd answer is reported on its endpoint."""
    out: dict[str, Any] = {"available": True, "error": None, "agree": 0, "disagree": 0, "unresolved": 0,
                           "entries": [], "requests": 0}
    implying: dict[str, set[str]] = {}
    for s in catalogue.scopes:
        for perm in (*s.implies, *s.implies_unverified):
            implying.setdefault(perm, set()).update(f"{s.scope}_{lv}" for lv in s.levels)
    http = KeyRequests(key, "test", settings, client)
    try:
        for scope, level, probe in _probes(catalogue):
            endpoint = map_endpoint(probe)
            entry: dict[str, Any] = {"scope": scope.scope, "level": level, "endpoint": endpoint,
                                     "catalogue": f"{scope.scope}_{level}", "stripe": None, "verdict": "unresolved",
                                     "reason": None}
            try:
                resp, a, _tries = http.request("POST", KEY_PERMISSIONS_PATH, {"endpoints": [endpoint]})
            except Exception as e:  # noqa: BLE001 - best effort: a map that breaks must not break calibration
                resp, a = None, Answer("broken", None, f"{type(e).__name__}: {str(e)[:160]}")
            if a is not None:
                if a.kind in ("auth", "denied", "forbidden", "absent") or a.status in (401, 403, 404):
                    out["available"] = False
                    out["error"] = f"Stripe's permission map is not available for this key ({a.status}): " \
                                   f"{a.detail[:200]}"
                    break
                entry["reason"] = f"no usable answer: {a.detail[:200]}"
                out["unresolved"] += 1
                out["entries"].append(entry)
                continue
            data = getattr(resp, "data", None)
            names = _names(data.get("permissions")) if isinstance(data, dict) else None
            unresolved = data.get("unresolved_endpoints") if isinstance(data, dict) else None
            if names is None or (unresolved is not None and not isinstance(unresolved, list)):
                entry["reason"] = "unknown answer shape: " + str(data)[:160]
                out["unresolved"] += 1
            elif not names:
                reasons = [str(u.get("reason", "")) for u in unresolved or [] if isinstance(u, dict)]
                entry["reason"] = "Stripe resolved no permission" + (f": {'; '.join(reasons)[:160]}" if reasons else "")
                out["unresolved"] += 1
            else:
                entry["stripe"] = names
                entry["verdict"] = _map_verdict(scope, level, names, implying.get(f"{scope.scope}_{level}", set()))
                out[entry["verdict"]] += 1
            out["entries"].append(entry)
    finally:
        out["requests"] = http.requests
    return out


def calibrate(
    keys: dict[str, str],
    *,
    settings: ProbeSettings | None = None,
    client: stripe.StripeClient | None = None,
    catalogue: Catalogue | None = None,
    profile: Profile | None = None,
) -> Calibration:
    """Run every probe with the `full` and `none` keys (and check the `guide` key), and compare with the catalogue."""
    settings = settings or ProbeSettings()
    client = client or shared_client(settings)
    catalogue = catalogue or load_catalogue()
    profile = profile or load_profile()
    cal = Calibration(runs=tuple(r for r in RUNS if r in keys))
    for run in ("full", "none"):
        _run_probes(run, keys[run], catalogue, settings, client, cal)
    if not any(p.startswith("Stripe refused the 'full' key") for p in cal.problems):
        cal.stripe_map = stripe_map(keys["full"], catalogue, settings, client)
        cal.requests += cal.stripe_map["requests"]
    if "guide" in keys:
        _run_guide(keys["guide"], catalogue, profile, settings, client, cal)
    return cal


def print_table(cal: Calibration, stream=None) -> None:
    stream = stream or sys.stdout
    head = ("run", "scope", "level", "expected", "seen", "named permission", "verdict")
    rows = [(o.run, o.scope, o.level, o.expected, o.seen, ", ".join("rak_" + n for n in o.named) or "-",
             o.verdict.upper() if o.verdict == "mismatch" else o.verdict) for o in cal.observations]
    widths = [max(len(str(x[i])) for x in [head, *rows]) for i in range(len(head))]
    for line in [head, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip(), file=stream)
    for o in cal.mismatches:
        where = f"{o.method} {o.path}: " if o.path else ""
        print(f"mismatch: {o.run} {o.scope} {o.level}: {where}status {o.status} code {o.code}: "
            f"{o.message}", file=stream)
    for p in cal.problems:
        print(f"problem: {p}", file=stream)
    if cal.guide:
        print(f"guide key: {cal.guide['status']}, score {cal.guide['score']}", file=stream)
    m = cal.stripe_map
    if m is not None and not m["available"]:
        print(f"stripe map: {m['error']}", file=stream)
    elif m is not None:
        for e in m["entries"]:
            if e["verdict"] != "agree":
                seen = ", ".join("rak_" + n for n in e["stripe"] or []) or "-"
                print(f"stripe map: {e['verdict']}: {e['endpoint']}: catalogue rak_{e['catalogue']}, Stripe {seen}"
                      + (f" ({e['reason']})" if e["reason"] else ""), file=stream)
        print(f"stripe map: {m['agree']} agree, {m['disagree']} disagree, {m['unresolved']} unresolved "
              "(Stripe's undocumented map; informational)", file=stream)
    verdict = "OK: the catalogue matches this account" if cal.ok else f"NOT OK: {len(cal.mismatches)} mismatches"
    print(f"{verdict} ({len(cal.observations)} observations, {len(cal.drift)} drifted names, "
          f"{cal.requests} requests)", file=stream)
