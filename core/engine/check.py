"""The one way in: check a pasted key. The dashboard, the CLI and the tests all call `check_key`."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from core.engine.catalogue import Catalogue, Profile, Scope, load_catalogue, load_profile
from core.engine.history import History, lifecycle_of, revoked_problem
from core.engine.keys import Pasted, as_intake
from core.engine.probe import EditLink, Pacing, Prober, ScopeOutcome
from core.engine.remediation import create_link, fix_for, guide_notes, message_mode, tenant_message
from core.engine.result import CheckResult, KeyInfo, KeyLifecycle, Row, Status
from core.engine.settings import ProbeSettings
from core.engine.verdict import build_rows, overall_status, scope_row, score

if TYPE_CHECKING:  # the stripe SDK is imported by the first probe (core.engine.probe), not by a key refused locally
    import stripe

# (the grid row just settled, probes done, probes in this sweep). The grid has more rows than probes (rows no
# request can check, guide items, rows kept from a previous check): `grid_plan` says how many are settled upfront.
Progress = Callable[[Row, int, int], None]
# Reads the history facts of a key (its KeyInfo; how Stripe refused it, None when it did not) before its result is
# assembled: the service's (core.features.lifecycle.read_history), bound to its store and the tenant.
HistoryReader = Callable[[KeyInfo, str | None], History]


def _first_probe_order(catalogue: Catalogue, profile: Profile, scopes: list[Scope]) -> list[Scope]:
    """Probe a scope Pointai requires None first: most keys lack it, so the one request answers 403,
    which names the account; a refused key costs this single request."""
    for i, s in enumerate(scopes):
        if s.read is not None and profile.required(s)[0] == "none":
            return [s] + scopes[:i] + scopes[i + 1 :]
    return scopes


def check_key(
    key: Pasted | str | None,
    *,
    settings: ProbeSettings | None = None,
    client: stripe.StripeClient | None = None,
    catalogue: Catalogue | None = None,
    profile: Profile | None = None,
    on_progress: Progress | None = None,
    only: set[str] | None = None,
    previous: CheckResult | None = None,
    pacing: Pacing | None = None,
    account_hint: str | None = None,
    pool: ThreadPoolExecutor | None = None,
    history: HistoryReader | None = None,
) -> CheckResult:
    """Judge the parsed paste `key` (a SecretKey, or the Intake of a paste: see core.engine.keys; raw text from a
    script or a test is parsed here, which is then its edge); if it is an accepted restricted key, probe every
    scope and judge the result.

    `only` with `previous`: probe just those scopes (e.g. the unknown rows) and keep the previous
    answers for the rest. Malformed or non-restricted input makes no network request.
    `pacing`, `account_hint` and `pool`: shared by many sweeps in a fleet recheck (see core.features.fleet).
    `history`: reads the history facts once the sweep is over and before the result is assembled (once), so
    the lifecycle and a revoked key are in the result and its tenant message from the start.
    """
    catalogue = catalogue or load_catalogue()
    profile = profile or load_profile()
    started = time.monotonic()
    taken = as_intake(key)
    info = taken.info
    if not info.accepted or taken.key is None:
        return assemble(info, catalogue=catalogue, profile=profile, problem=info.problem,
                        history=history(info, None) if history is not None else None)

    outcomes: dict[str, ScopeOutcome] = {}
    if previous is not None and only is not None:
        for r in previous.rows:
            if r.scope and r.scope not in only and r.granted is not None:
                outcomes[r.scope] = ScopeOutcome(r.scope, r.granted, r.reason)
            elif r.scope and r.scope not in only and r.verdict == "not_applicable":
                outcomes[r.scope] = ScopeOutcome(r.scope, "none", not_applicable=r.note)
    # Rows no request can check are shown as such, never probed.
    to_probe = [s for s in catalogue.scopes if s.probed and (only is None or s.scope in only)]
    to_probe = _first_probe_order(catalogue, profile, to_probe)

    prober = Prober(str(taken.key), info.mode, settings=settings, client=client, pacing=pacing,
                    account_hint=account_hint, pool=pool)
    total = len(to_probe)
    for done, out in enumerate(prober.sweep(to_probe), start=1):
        outcomes[out.scope] = out
        if on_progress is not None:  # the very row the grid will show (one row builder: verdict.scope_row)
            on_progress(scope_row(catalogue, profile, catalogue.get(out.scope), out), done, total)

    stats = prober.stats
    return assemble(
        info, outcomes, catalogue=catalogue, profile=profile,
        account=stats.account or (previous.account if previous else None),
        problem=stats.auth_problem, refused=stats.auth_kind,
        unreachable=stats.unreachable, answered=stats.answered,
        requests=stats.requests, elapsed_s=time.monotonic() - started, incidents=stats.incidents,
        no_answer=stats.network_failures,
        edit=stats.edit or _previous_edit(previous, stats.account),
        history=history(info, stats.auth_kind if stats.auth_problem is not None else None)
        if history is not None else None,
    )


def _previous_edit(previous: CheckResult | None, account: str | None) -> EditLink | None:
    """A re-probe of some rows keeps the edit link the full check had, when the account is still the same."""
    if previous is None or not previous.key_dashboard_id or not previous.account:
        return None
    if account is not None and account != previous.account:
        return None
    return EditLink(previous.account, previous.key_dashboard_id)


def assemble(
    info: KeyInfo,
    outcomes: Mapping[str, ScopeOutcome] | None = None,
    *,
    catalogue: Catalogue,
    profile: Profile,
    account: str | None = None,
    problem: str | None = None,
    refused: str | None = None,
    unreachable: str | None = None,
    answered: bool = True,
    requests: int = 0,
    elapsed_s: float = 0.0,
    incidents: Iterable[str] = (),
    no_answer: int = 0,
    checked_at: datetime | None = None,
    edit: EditLink | None = None,
    history: History | None = None,
    lifecycle: KeyLifecycle | None = None,
) -> CheckResult:
    """The one way a CheckResult is built, for a real sweep and for the demo's synthetic history alike: once,
    frozen, with the message for the tenant built here (core.engine.remediation.tenant_message, called once).

    `problem` set: the key was refused (locally by intake, or by Stripe with `refused` saying how), so there
    is no grid. `unreachable` set (one sentence): the sweep stopped on our side's or Stripe's trouble (no HTTP
    answer, or a storm of 429/5xx answers), so the status is "unreachable" (not the key): no score, no tenant
    message, no create-key link, no guide notes, never the tenant's latest status and no alert (core.store.checks,
    core.features.alerts). Not `answered` (not one HTTP answer): no grid either. `answered` (it stopped partway):
    the rows settled before stand, the rest are unknown. Otherwise every row is judged from `outcomes` (scope ->
    what the probes saw), and the status, score and fixes follow from the rows.
    `history`: the history facts read before (core.engine.history): they become the result's lifecycle (key
    replaced, mode or account changed, live tenant, age and rotation, shared key), and a key Stripe refuses as
    invalid that it accepted before (`history.accepted_before`) is named revoked. `lifecycle`: a lifecycle
    already worked out (a stored check shown again, a key of no tenant); it wins over `history`'s.
    `edit`: the key's own edit link from a refusal (kept only for the result's account); the tenant message then
    points to it.
    """
    rows: list[Row] = []
    last_accepted_at = None
    if problem is not None:
        status: Status = "invalid"
        if refused == "invalid" and info.fingerprint and history is not None and history.accepted_before:
            problem, refused = revoked_problem(history.accepted_before), "revoked"
            last_accepted_at = history.accepted_before
    elif unreachable is not None:  # our network or a storm of Stripe's errors: says nothing about the key
        rows = build_rows(catalogue, profile, outcomes or {}) if answered else []  # settled rows stand
        status, problem, refused = "unreachable", unreachable, None
    else:
        rows = build_rows(catalogue, profile, outcomes or {})
        status, refused = overall_status(rows), None
    for r in rows:
        r.fix = fix_for(r, profile)
    at = checked_at if checked_at is not None else datetime.now(UTC)
    if lifecycle is None and history is not None and history.key is not None:
        lifecycle = lifecycle_of(history.key, info, account=account, status=status, checked_at=at)
    key_id = link = None
    if edit is not None and (account is None or edit.account == account):
        key_id, link = edit.key_id, edit.url
    draft = CheckResult(
        key=info, status=status, score=score(rows, status) if status not in ("invalid", "unreachable") else 0,
        problem=problem, account=account, rows=rows, requests=requests, no_answer=no_answer, elapsed_s=elapsed_s,
        incidents=list(incidents), refused=refused, lifecycle=lifecycle, key_dashboard_id=key_id, edit_link=link,
        checked_at=at, last_accepted_at=last_accepted_at, profile=profile, catalogue=catalogue,
    )
    notes = guide_notes(draft, profile) if draft.says_something else []
    draft = replace(draft, guide_notes=notes)
    # The one call of the message builder for this result: everything it reads is settled above. The create-key
    # link is in the message's mode, and only when the check says something about the key (unreachable: nothing
    # to offer the tenant).
    create = create_link(profile, catalogue, message_mode(draft)) if draft.says_something else None
    return replace(draft, message=tenant_message(draft, profile, catalogue), create_link=create)


def grid_plan(catalogue: Catalogue | None = None, profile: Profile | None = None, *,
              previous: CheckResult | None = None, only: set[str] | None = None) -> list[Row]:
    """The grid rows a sweep settles without a request (not checkable, guide items, or with `previous` and
    `only` the rows kept), as the grid will show them. With the sweep's probes they add up to the grid's rows, so
    a progress bar counts in the grid's totals: len(grid_plan(...)) + probes total == len(result.rows)."""
    catalogue = catalogue or load_catalogue()
    profile = profile or load_profile()
    if previous is not None and only is not None:
        return [r for r in previous.rows if r.scope not in only]
    return [r for r in build_rows(catalogue, profile, {}) if r.verdict == "not_applicable"]


def unknown_scopes(result: CheckResult) -> set[str]:
    """The scopes a re-probe should try again."""
    return {r.scope for r in result.rows if r.verdict == "unknown" and r.scope}
