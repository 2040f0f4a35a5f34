"""Plain result types shared by the check engine, the store, the CLI and the dashboard.

Nothing here holds the key itself: a `KeyInfo` is what may be shown, stored and logged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

if TYPE_CHECKING:
    from core.engine.catalogue import Catalogue, Profile

Level = Literal["none", "read", "write"]
Granted = Literal["none", "read", "write", "unknown"]
Verdict = Literal["ok", "missing", "excess", "unknown", "not_applicable"]
Status = Literal["healthy", "attention", "failing", "incomplete", "invalid", "unreachable"]
Mode = Literal["live", "test"]

LEVELS: tuple[Level, ...] = ("none", "read", "write")
VERDICTS: tuple[Verdict, ...] = ("ok", "missing", "excess", "unknown", "not_applicable")
# What a check says about the key, worst first: the order triage sorts by.
KEY_STATUSES: tuple[Status, ...] = ("invalid", "failing", "incomplete", "attention", "healthy")
# Every status a check may have. "unreachable" (Stripe gave no HTTP answer, or stopped answering partway, or
# answered only with a storm of 429/5xx errors: our network or Stripe's trouble, not the key) says nothing about
# the key: no score, no tenant message, not a tenant's latest status, no alert, out of the status mix and score
# charts. Rows settled before the sweep stopped are kept with it.
STATUSES: tuple[Status, ...] = (*KEY_STATUSES, "unreachable")


def is_level(value: object) -> TypeGuard[Level]:
    """True for "none", "read" or "write": text from a data file or the database becomes a Level here."""
    return value in LEVELS


def is_granted(value: object) -> TypeGuard[Granted]:
    return value in LEVELS or value == "unknown"


def is_mode(value: object) -> TypeGuard[Mode]:
    return value in ("live", "test")


def level_rank(level: str) -> int:
    return LEVELS.index(level)


@dataclass(frozen=True)
class KeyInfo:
    """What Key Health knows about a pasted key without the key itself."""

    # restricted | secret | organization | publishable | webhook_secret | sandbox_claim | other_secret | unknown | empty
    kind: str
    mode: Mode | None
    masked: str  # e.g. "rk_test_…a1b2"; never the whole key
    fingerprint: str | None  # keyed hash, stable across checks of the same key
    problem: str | None = None  # one sentence for support when the key is not accepted locally
    reason: str | None = None  # intake's machine-readable cause ("publishable", "truncated", "masked", ...)

    @property
    def accepted(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "mode": self.mode, "masked": self.masked, "fingerprint": self.fingerprint}


@dataclass
class Row:
    """One line of the grid: a Stripe permission (or a guide item that is not one)."""

    category: str
    resource: str  # the Stripe Dashboard's label
    scope: str | None  # as Stripe spells it after "rak_"; None for guide items with no real permission
    required: Level
    granted: Granted | None  # None for not_applicable rows
    verdict: Verdict
    fix: str | None = None  # Stripe Dashboard words; None when verdict is ok
    note: str | None = None  # why a guide item is not_applicable or adjusted
    reason: str | None = None  # why a row is unknown (e.g. "429 rate limited after 4 tries")
    guide_item: str | None = None  # the onboarding guide's wording, when the guide names it
    # The permission Stripe's refusal named when it differs from the probed scope (e.g. "rak_topup_read"),
    # with the catalogue's label when known; the verdict stays on the probed endpoint.
    named: str | None = None
    implied_by: str | None = None  # labels of the required permissions that imply this one, when that allows it
    provenance: str | None = None  # docs | error | calibrated | inferred (data/catalogue.toml)
    # The implication that allows it has no public source yet (the catalogue's implies_unverified): shown as
    # "implied (unverified)".
    implied_unverified: bool = False

    @property
    def implied(self) -> bool:
        """Granted above the requirement, allowed only because a required permission implies it."""
        return (
            self.verdict == "ok"
            and self.implied_by is not None
            and self.granted not in (None, "unknown")
            and level_rank(self.granted) > level_rank(self.required)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "resource": self.resource,
            "scope": self.scope,
            "required": self.required,
            "granted": self.granted,
            "verdict": self.verdict,
            "fix": self.fix,
            "note": self.note,
            "reason": self.reason,
            "named": self.named,
            "implied_by": self.implied_by,
            "implied_unverified": self.implied_unverified,
            "provenance": self.provenance,
        }


@dataclass
class KeyLifecycle:
    """What a tenant's history says about the key just checked (core.features.lifecycle fills it in)."""

    first_seen_at: datetime | None = None  # when Key Health first saw this key (any tenant)
    age_days: int | None = None  # whole days since first_seen_at
    rotation_days: int | None = None  # the configured age after which rotation is due
    rotation_due: bool = False
    replaced: str | None = None  # masked form of the tenant's previous key, when this check brings a new one
    previous_mode: str | None = None
    previous_account: str | None = None
    mode_changed: bool = False  # live <-> test compared with the tenant's previous key
    account_changed: bool = False  # another Stripe account than the tenant's previous checks
    expected_mode: str | None = None  # the tenant's expected mode (live once it is in production)
    mode_mismatch: bool = False  # a test key on a live tenant (or the other way round)
    shared_with: list[str] = field(default_factory=list)  # other tenants this very key was recorded for

    def problems(self) -> list[str]:
        """One sentence per thing support must act on, most important first."""
        out = []
        if self.mode_mismatch:
            if self.expected_mode == "live":
                out.append(
                    "This tenant is live (in production) but this is a test-mode key: Pointai cannot take real "
                    "payments with it; ask the tenant for their live restricted key (rk_live_…)."
                )
            else:
                out.append(
                    f"This tenant is expected to use {self.expected_mode} mode but this is a "
                    f"{'live' if self.expected_mode == 'test' else 'test'}-mode key; check which key the tenant meant."
                )
        if self.account_changed:
            out.append(
                "This key belongs to another Stripe account than the tenant's previous checks (they saw "
                f"{_or_unknown(self.previous_account)}): the most likely cause of \"it worked yesterday\"; "
                "confirm with the tenant which account Pointai should use."
            )
        if self.mode_changed:
            out.append(
                f"The key went from {self.previous_mode} mode to the other mode with this replacement; "
                "check that the tenant meant to switch."
            )
        if self.shared_with:
            out.append(
                "This very key is also recorded for " + ", ".join(self.shared_with)
                + ": a key pasted into the wrong tenant, or tenants sharing one Stripe account."
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "first_seen_at": self.first_seen_at.isoformat() if self.first_seen_at else None,
            "age_days": self.age_days,
            "rotation_days": self.rotation_days,
            "rotation_due": self.rotation_due,
            "replaced": self.replaced,
            "previous_mode": self.previous_mode,
            "previous_account": self.previous_account,
            "mode_changed": self.mode_changed,
            "account_changed": self.account_changed,
            "expected_mode": self.expected_mode,
            "mode_mismatch": self.mode_mismatch,
            "shared_with": list(self.shared_with),
        }


def _or_unknown(v: str | None) -> str:
    return v or "unknown"


@dataclass(frozen=True)
class CheckResult:
    """One check, built once by core.engine.check.assemble (history facts included) and never changed after:
    frozen, with the message for the tenant built inside assemble. The problem for support is `problem`."""

    key: KeyInfo
    status: Status
    score: int
    problem: str | None = None
    # The message for the tenant (second person; None when there is nothing to tell them), built once by
    # assemble with the one builder, core.engine.remediation.tenant_message, from the whole result.
    message: str | None = None
    # The pre-filled "create restricted key" link, in the message's mode (built with the message, by assemble);
    # None when the check says nothing about the key (unreachable: nothing to offer the tenant).
    create_link: str | None = None
    account: str | None = None
    rows: list[Row] = field(default_factory=list)
    requests: int = 0
    no_answer: int = 0  # of `requests`, how many got no HTTP answer at all (network failures, timeouts)
    elapsed_s: float = 0.0
    incidents: list[str] = field(default_factory=list)  # a non-GET probe that got a 2xx, etc.
    # why Stripe refused the key itself: invalid | expired | ip_not_allowed | no_key | revoked
    refused: str | None = None
    guide_notes: list[str] = field(default_factory=list)  # the onboarding guide's traps that apply to this key
    lifecycle: KeyLifecycle | None = None  # what the tenant's history says about this key (an input of assemble)
    # The key's Dashboard id (mk_…, not a secret) and the link to its edit page, when a refusal in Stripe's newest
    # wording gave them for this key's account (core.engine.probe.edit_link checks the host and the account).
    key_dashboard_id: str | None = None
    edit_link: str | None = None
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_accepted_at: datetime | None = None  # a revoked key: when Stripe last accepted it (set from history)
    # The requirement the result was judged against (core.engine.check.assemble); the defaults when None.
    profile: Profile | None = field(default=None, repr=False, compare=False)
    catalogue: Catalogue | None = field(default=None, repr=False, compare=False)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {v: 0 for v in VERDICTS}
        for r in self.rows:
            out[r.verdict] += 1
        return out

    @property
    def says_something(self) -> bool:
        """False for an unreachable check: Stripe never answered, so nothing is known about the key."""
        return self.status != "unreachable"

    def to_json(self) -> dict[str, Any]:
        """The CLI's public JSON shape (see README). An unreachable check has no score (null)."""
        out = {
            "key": self.key.to_dict(),
            "account": self.account,
            "status": self.status,
            "score": self.score if self.says_something else None,
            "problem": self.problem,
            "rows": [r.to_dict() for r in self.rows],
            "requests": self.requests,
            "elapsed_s": round(self.elapsed_s, 3),
            "incidents": list(self.incidents),
            "message": self.message,
            "guide_notes": list(self.guide_notes),
            "key_dashboard_id": self.key_dashboard_id,
            "edit_link": self.edit_link,
            "checked_at": self.checked_at.isoformat(),
        }
        if self.lifecycle is not None:
            out["lifecycle"] = self.lifecycle.to_dict()
        return out


__all__ = [
    "KEY_STATUSES",
    "LEVELS",
    "STATUSES",
    "VERDICTS",
    "CheckResult",
    "Granted",
    "KeyInfo",
    "KeyLifecycle",
    "Level",
    "Mode",
    "Row",
    "Status",
    "Verdict",
    "level_rank",
]
