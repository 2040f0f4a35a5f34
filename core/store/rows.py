"""What the store's queries return: one TypedDict per query shape, so callers index known keys.

The rows are plain dicts at run time (the CLI prints them as JSON, the pages build DataFrames from them); the
types only name their keys. Text the database constrains (status, levels, verdicts, mode) comes back typed
with the engine's Literals.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import NotRequired, TypedDict

from core.engine.result import Granted, Level, Mode, Status, Verdict


class TenantRow(TypedDict):
    """A tenant (get_tenant, list_tenants, get_or_create_tenant, update_tenant)."""

    id: int
    name: str
    slug: str
    account: str | None
    contact: str | None
    notes: str | None
    archived: bool
    created_at: datetime
    last_check_id: int | None
    last_checked_at: datetime | None
    expected_mode: str | None
    last_summary: str | None  # 0015: the latest check's short problem (None when healthy or never checked)
    broken_since: datetime | None  # 0015: the first check of the current run of checks that were not healthy
    last_healthy_at: datetime | None  # 0015: the newest healthy check


class TenantListRow(TenantRow):
    """A tenant with its latest check's status and score, None if never checked (list_tenants)."""

    last_status: Status | None
    last_score: int | None


class TenantNameRow(TypedDict):
    """A tenant as a picker lists it (tenant_names)."""

    name: str
    slug: str


class _TenantColumns(TypedDict):
    tenant_id: int
    tenant: str
    slug: str
    contact: str | None
    archived: bool
    expected_mode: str | None  # "live" | "test": the mode the tenant's key should have, when known


class HistoryRow(_TenantColumns):
    """One check with its tenant's columns (tenant_history, get_check)."""

    check_id: int
    checked_at: datetime
    checked_by: str | None
    source: str
    key_masked: str
    key_fingerprint: str | None
    key_kind: str
    key_mode: Mode | None
    account: str | None
    status: Status
    score: int | None  # None for an unreachable check: it says nothing about the key
    n_ok: int
    n_missing: int
    n_excess: int
    n_unknown: int
    n_not_applicable: int
    requests: int
    elapsed_s: float
    problem: str | None
    refused: str | None
    key_dashboard_id: str | None  # 0012: the key's Dashboard id (mk_…) when Stripe's refusal gave it


class LatestCheck(HistoryRow):
    """A tenant's latest check (latest_checks): HistoryRow plus its age, the key's lifecycle and its flags."""

    age_days: float
    key_first_seen_at: datetime | None
    key_age_days: int | None
    replaced_at: datetime | None
    replaced_from: str | None
    key_replaced: bool
    mode_changed: bool
    account_changed: bool
    mode_mismatch: bool
    rotation_due: bool
    shared_key: bool
    # 0015 (core/store/latest.py): the short problem, the current bad streak, the account-change signal
    summary: str | None
    broken_since: datetime | None
    last_healthy_at: datetime | None
    worse_at: datetime | None
    last_account_changed: bool


class LatestPage(TypedDict):
    """One page of latest_checks (latest_page): its rows, the total with the same filters, and where it sits."""

    rows: list[LatestCheck]
    total: int
    page: int  # 1-based, clamped to 1..pages
    pages: int  # at least 1
    page_size: int
    first: int  # 1-based row numbers shown; 0, 0 when nothing matches
    last: int


class StoredRow(TypedDict):
    """One grid row of a stored check."""

    category: str
    resource: str
    scope: str | None
    required: Level
    granted: Granted | None
    verdict: Verdict
    reason: str | None


class CheckDetail(HistoryRow):
    """One check, its tenant and its grid rows (get_check)."""

    rows: list[StoredRow]


class DriftRow(TypedDict):
    """A scope whose granted level or verdict changed between consecutive probed checks (drift)."""

    at: datetime
    scope: str
    resource: str
    category: str
    from_granted: Granted | None
    to_granted: Granted | None
    from_verdict: Verdict
    to_verdict: Verdict
    check_id: int
    from_check_id: int
    from_key: str  # the masked keys of the two checks
    to_key: str


class ChecksPerDay(TypedDict):
    day: date
    checks: int
    tenants: int


# "from" is a keyword: the functional form.
# statuses: the bucket's tenants by latest status (score_distribution always sets it)
ScoreBucket = TypedDict("ScoreBucket", {"from": int, "to": int, "tenants": int,
                                        "statuses": NotRequired[dict[str, int]]})
# One UTC day of status_mix_per_day: tenants per status that day, and their total.
class StatusMixDay(TypedDict):
    day: date
    invalid: int
    failing: int
    incomplete: int
    attention: int
    healthy: int
    total: int


class ProblemScope(TypedDict):
    scope: str
    resource: str
    category: str
    tenants: int
    share: float


class StaleTenant(_TenantColumns):
    last_checked_at: datetime | None
    status: Status | None
    score: int | None
    age_days: float | None


class AcceptedCheck(TypedDict):
    id: int
    checked_at: datetime
    status: Status


class AuditRow(TypedDict):
    """One audit entry (list_audit); `tenant` is the tenant's current name, else the text recorded."""

    id: int
    at: datetime
    who: str | None
    action: str
    tenant_id: int | None
    tenant: str | None
    outcome: str
    detail: str | None
