"""Many combinations of a sweep's outcome and a tenant's history, each assembled into a CheckResult the way the
service does it. test_assemble_once compares them with tests/engine/data/assemble_golden.json, written by the code that
built the message after assembly (before "one result, built once"): the refactor kept every message and problem.
Regenerate (only for a deliberate change of wording):
    PYTHONPATH=. python tests/engine/assemble_cases.py > tests/engine/data/assemble_golden.json
"""
from __future__ import annotations

import hashlib
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from core.engine.catalogue import load_catalogue, load_profile
from core.engine.keys import intake
from core.engine.probe import ScopeOutcome
from core.engine.result import KeyInfo

CAT, PROF = load_catalogue(), load_profile()
NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
TENANT = "Acme Coffee"
ROTATION_DAYS = 180
BODY = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V2w3X4y5Z6a7B8c9D0e1F2g3H4i5J6k7L8m9"
PASTED = {
    "secret_live": "sk_live_" + BODY, "publishable_test": "pk_test_" + BODY, "organization": "sk_org_live_" + BODY,
    "webhook_secret": "whsec_" + BODY, "empty": "", "truncated": "rk_live_a1B2", "masked": "rk_live_…ab12",
}
REFUSALS = {
    "expired": "Stripe says this key has expired (it was rolled); ask the tenant to create a new restricted key.",
    "invalid": "Stripe does not accept this key: it is mistyped, incomplete, deleted or revoked; ask the tenant.",
    "ip_not_allowed": "Stripe refused the request because the key only allows certain IP addresses.",
    "no_key": "No key reached Stripe; paste the tenant's restricted key and check again.",
}


def outcomes(status: str) -> dict[str, ScopeOutcome]:
    out: dict[str, ScopeOutcome] = {}
    first_required = first_none = None
    for s in CAT.scopes:
        if not s.probed:
            continue
        required, _ = PROF.required(s)
        out[s.scope] = ScopeOutcome(s.scope, required)
        if required != "none" and first_required is None:
            first_required = s.scope
        if required == "none" and first_none is None and s.read is not None:
            first_none = s.scope
    assert first_required and first_none
    if status == "failing":
        out[first_required] = ScopeOutcome(first_required, "none")
    elif status == "attention":
        out[first_none] = ScopeOutcome(first_none, "read")
    elif status == "incomplete":
        out[first_required] = ScopeOutcome(first_required, "unknown", "429 rate limited after 4 tries")
    elif status == "nothing_settled":
        out = {k: ScopeOutcome(k, "unknown", "no answer") for k in out}
    return out


class FakeHistory:
    """What Store.key_history and Store.last_accepted_check answer, for one combination (no database)."""

    def __init__(self, expected: str | None, previous: dict | None, first_seen: datetime | None,
                 shared: list[str], accepted_before: datetime | None, known_tenant: bool = True):
        self.expected, self.previous, self.first_seen = expected, previous, first_seen
        self.shared, self.accepted_before, self.known_tenant = shared, accepted_before, known_tenant

    def key_history(self, tenant: str | None, fingerprint: str | None) -> dict:
        t = {"name": TENANT, "expected_mode": self.expected} if tenant is not None and self.known_tenant else None
        with_key = [{"tenant": n, "slug": n.lower().replace(" ", "-")} for n in [TENANT, *self.shared]]
        return {"tenant": t, "previous_key": self.previous if t is not None else None,
                "first_seen": self.first_seen if fingerprint else None,
                "tenants_with_key": with_key if fingerprint and tenant is not None else []}

    def last_accepted_check(self, fingerprint: str) -> dict | None:
        return {"checked_at": self.accepted_before} if self.accepted_before else None


def previous_keys(mode: str, fp: str) -> dict[str, dict | None]:
    other = "test" if mode == "live" else "live"
    return {
        "none": None,
        "same": {"key_fingerprint": fp, "key_masked": f"rk_{mode}_…ab12", "key_mode": mode, "account": "acct_1A"},
        "replaced": {"key_fingerprint": "fp-old", "key_masked": f"rk_{mode}_…OLD1", "key_mode": mode,
                     "account": "acct_1A"},
        "other_mode": {"key_fingerprint": "fp-old", "key_masked": f"rk_{other}_…OLD2", "key_mode": other,
                       "account": "acct_1A"},
        "other_account": {"key_fingerprint": "fp-old", "key_masked": f"rk_{mode}_…OLD3", "key_mode": mode,
                          "account": "acct_1Other"},
    }


def combinations():
    """(case id, KeyInfo, assemble keyword arguments, FakeHistory, tenant)."""
    first_seens = {"never": None, "10d": NOW - timedelta(days=10), "200d": NOW - timedelta(days=200)}
    for status, mode, expected, prev, seen, shared in itertools.product(
            ("healthy", "attention", "failing", "incomplete", "unreachable", "nothing_settled"), ("live", "test"),
            ("live", None, "test"), ("none", "same", "replaced", "other_mode", "other_account"), first_seens,
            (False, True)):
        fp = f"fp-{mode}"
        info = KeyInfo("restricted", mode, f"rk_{mode}_…ab12", fp)  # type: ignore[arg-type]
        if status == "unreachable":
            kw: dict[str, Any] = {"unreachable": "This server cannot reach api.stripe.com.", "answered": False}
        else:
            kw = {"outcomes": outcomes(status), "account": "acct_1A"}
        hist = FakeHistory(expected, previous_keys(mode, fp)[prev], first_seens[seen],
                           ["Other Co"] if shared else [], None)
        yield f"{status}/{mode}/{expected}/{prev}/{seen}/{shared}", info, kw, hist, TENANT
    for refused, mode, expected, accepted, prev in itertools.product(
            REFUSALS, ("live", "test"), ("live", None, "test"), (False, True), ("none", "replaced")):
        fp = f"fp-{mode}"
        info = KeyInfo("restricted", mode, f"rk_{mode}_…ab12", fp)  # type: ignore[arg-type]
        kw = {"problem": REFUSALS[refused], "refused": refused}
        hist = FakeHistory(expected, previous_keys(mode, fp)[prev], NOW - timedelta(days=30),
                           [], NOW - timedelta(days=3) if accepted else None)
        yield f"refused:{refused}/{mode}/{expected}/{accepted}/{prev}", info, kw, hist, TENANT
    for kind, expected, tenant in itertools.product(PASTED, ("live", None, "test"), (TENANT, None)):
        info = intake(PASTED[kind]).info
        hist = FakeHistory(expected, None, None, [], None)
        yield f"intake:{kind}/{expected}/{tenant}", info, {"problem": info.problem}, hist, tenant


def build(info, kw, hist, tenant):
    """One combination, assembled as Service.check does it: the history facts read first, then assemble once.
    (The golden file was written by the code before, at 78473c6: assemble, then explain_refusal with
    last_accepted_check, then result.lifecycle = lifecycle_for(store, result, tenant), then the message read.)"""
    from core.engine.check import assemble
    from core.features.lifecycle import read_history

    kw = dict(kw)
    outs = kw.pop("outcomes", None)
    history = read_history(lambda: hist, info, tenant, refused=kw.get("refused"),  # type: ignore[arg-type,return-value]
                           rotation_days=ROTATION_DAYS)
    return assemble(info, outs, catalogue=CAT, profile=PROF, checked_at=NOW, history=history, **kw)


def snapshot(r) -> dict:
    out = r.to_json()
    # a keyed hash whose secret is per data dir (tests use a throwaway one): only whether there is one
    out["key"]["fingerprint"] = out["key"]["fingerprint"] is not None
    out["rows"] = hashlib.sha256(json.dumps(out["rows"], sort_keys=True).encode()).hexdigest()[:16]
    out["create_link"] = r.create_link
    out["last_accepted_at"] = r.last_accepted_at.isoformat() if r.last_accepted_at else None
    out["refused"] = r.refused
    return out


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:20]


def all_snapshots() -> dict[str, Any]:
    """{"texts": every distinct message and problem, "cases": {case id: its status, refused, message and problem
    (as indexes into texts), and a digest of everything else the result says (rows, lifecycle, link, ...)}}."""
    texts: list[str | None] = []

    def index(text: str | None) -> int:
        if text not in texts:
            texts.append(text)
        return texts.index(text)

    cases = {}
    for cid, info, kw, hist, tenant in combinations():
        snap = snapshot(build(info, kw, hist, tenant))
        cases[cid] = {"status": snap["status"], "refused": snap["refused"], "message": index(snap["message"]),
                      "problem": index(snap["problem"]), "all": _digest(snap)}
    return {"texts": texts, "cases": cases}


if __name__ == "__main__":
    print(json.dumps(all_snapshots(), indent=1, sort_keys=True, ensure_ascii=False))
