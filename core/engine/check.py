"""The one way in: check a pasted key. The dashboard, the CLI and the tests all call `check_key`."""
from __future__ import annotations

import time
from typing import Callable

import stripe

from core.config import ProbeSettings
from core.engine.catalogue import Catalogue, Profile, load_catalogue, load_profile
from core.engine.keys import intake
from core.engine.probe import Prober, ScopeOutcome
from core.engine.remediation import create_link, fix_for, tenant_message
from core.engine.result import CheckResult, Row
from core.engine.verdict import build_rows, judge, overall_status, score

Progress = Callable[[Row, int, int], None]  # (row just settled, rows done, rows total)


def _first_probe_order(catalogue: Catalogue, profile: Profile, scopes: list) -> list:
    """Probe a scope Pointai requires None first: most keys lack it, so the one request answers 403,
    which names the account; a refused key costs this single request."""
    for i, s in enumerate(scopes):
        if s.read is not None and profile.required(s)[0] == "none":
            return [s] + scopes[:i] + scopes[i + 1 :]
    return scopes


def check_key(
    raw: str | None,
    *,
    settings: ProbeSettings | None = None,
    client: stripe.StripeClient | None = None,
    catalogue: Catalogue | None = None,
    profile: Profile | None = None,
    on_progress: Progress | None = None,
    only: set[str] | None = None,
    previous: CheckResult | None = None,
) -> CheckResult:
    """Classify the key locally; if it is a restricted key, probe every scope and judge the result.

    `only` with `previous`: probe just those scopes (e.g. the unknown rows) and keep the previous
    answers for the rest. Malformed or non-restricted input makes no network request.
    """
    catalogue = catalogue or load_catalogue()
    profile = profile or load_profile()
    started = time.monotonic()
    taken = intake(raw)
    info = taken.info
    if not info.accepted or taken.key is None:
        result = CheckResult(key=info, status="invalid", score=0, problem=info.problem)
        result.message = tenant_message(result, profile, catalogue)
        result.create_link = create_link(profile, catalogue, info.mode)
        return result

    outcomes: dict[str, ScopeOutcome] = {}
    if previous is not None and only is not None:
        for r in previous.rows:
            if r.scope and r.scope not in only and r.granted is not None:
                outcomes[r.scope] = ScopeOutcome(r.scope, r.granted, r.reason)
    to_probe = [s for s in catalogue.scopes if only is None or s.scope in only]
    to_probe = _first_probe_order(catalogue, profile, to_probe)

    prober = Prober(str(taken.key), info.mode, settings=settings, client=client)
    total = len(to_probe)
    for done, out in enumerate(prober.sweep(to_probe), start=1):
        outcomes[out.scope] = out
        if on_progress is not None:
            s = catalogue.get(out.scope)
            required, _ = profile.required(s)
            verdict = judge(required, out.granted, profile.allowed(s)[0])
            on_progress(
                Row(s.category, s.label, s.scope, required, out.granted, verdict, reason=out.reason),  # type: ignore[arg-type]
                done,
                total,
            )

    stats = prober.stats
    rows = build_rows(catalogue, profile, outcomes)
    account = stats.account or (previous.account if previous else None)
    if stats.auth_problem:
        # Stripe refused the key itself: no grid, the problem says why.
        result = CheckResult(
            key=info, status="invalid", score=0, problem=stats.auth_problem, account=account, refused=stats.auth_kind
        )
    else:
        status = overall_status(rows)
        result = CheckResult(key=info, status=status, score=score(rows, status), account=account, rows=rows)  # type: ignore[arg-type]
    for r in result.rows:
        r.fix = fix_for(r, profile)
    result.requests = stats.requests
    result.elapsed_s = time.monotonic() - started
    result.incidents = list(stats.incidents)
    result.message = tenant_message(result, profile, catalogue)
    result.create_link = create_link(profile, catalogue, info.mode)
    return result


def unknown_scopes(result: CheckResult) -> set[str]:
    """The scopes a re-probe should try again."""
    return {r.scope for r in result.rows if r.verdict == "unknown" and r.scope}


def explain_refusal_from_history(result: CheckResult, url: str | None = None) -> None:
    """Stripe answers a revoked key exactly like a mistyped one (401 "Invalid API Key"). History can tell
    them apart: if Stripe accepted this very key (same fingerprint) before, it has since been revoked or
    deleted. Rewrites the problem sentence in place; leaves every other result alone."""
    if result.refused != "invalid" or not result.key.fingerprint:
        return
    from core import store

    earlier = store.last_accepted_check(result.key.fingerprint, url=url)
    if earlier is None:
        return
    when = earlier["checked_at"].strftime("%Y-%m-%d %H:%M UTC")
    result.problem = (
        f"Stripe accepted this key on {when} but refuses it now, so it has been revoked or deleted in the "
        "Stripe Dashboard; ask the tenant to create a new restricted key and paste it."
    )
    result.message = None
    result.refused = "revoked"


def record(result: CheckResult, tenant: str, *, source: str, who: str | None, url: str | None = None) -> int:
    """Keep a check in the tenant's history and in the audit trail: the dashboard, the CLI and a recheck
    all record through here (a key Stripe accepted before and refuses now is named revoked first).
    Returns the check's id."""
    from core import store

    explain_refusal_from_history(result, url=url)
    if result.message is None:
        result.message = tenant_message(result, load_profile(), load_catalogue())
    check_id = store.record_check(result, tenant, source=source, checked_by=who, url=url)
    store.record_audit(
        "check", who=who, tenant=tenant, outcome=result.status,
        detail=f"{result.key.masked} score {result.score} ({source})", url=url,
    )
    return check_id
