"""Plain result types shared by the check engine, the store, the CLI and the dashboard.

Nothing here holds the key itself: a `KeyInfo` is what may be shown, stored and logged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeGuard

Level = Literal["none", "read", "write"]
Granted = Literal["none", "read", "write", "unknown"]
Verdict = Literal["ok", "missing", "excess", "unknown", "not_applicable"]
Status = Literal["healthy", "attention", "failing", "incomplete", "invalid"]
Mode = Literal["live", "test"]

LEVELS: tuple[Level, ...] = ("none", "read", "write")
VERDICTS: tuple[Verdict, ...] = ("ok", "missing", "excess", "unknown", "not_applicable")
# Worst first: the order triage sorts by.
STATUSES: tuple[Status, ...] = ("invalid", "failing", "incomplete", "attention", "healthy")


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
    problem: str | None = None  # one sentence when the key is not accepted locally

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
            "provenance": self.provenance,
        }


@dataclass
class CheckResult:
    key: KeyInfo
    status: Status
    score: int
    problem: str | None = None
    account: str | None = None
    rows: list[Row] = field(default_factory=list)
    requests: int = 0
    elapsed_s: float = 0.0
    incidents: list[str] = field(default_factory=list)  # a non-GET probe that got a 2xx, etc.
    message: str | None = None  # the copyable message for the tenant
    create_link: str | None = None  # pre-filled "create restricted key" link
    refused: str | None = None  # why Stripe refused the key itself: invalid | expired | ip_not_allowed | no_key
    guide_notes: list[str] = field(default_factory=list)  # the onboarding guide's traps that apply to this key
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {v: 0 for v in VERDICTS}
        for r in self.rows:
            out[r.verdict] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        """The CLI's public JSON shape (see README)."""
        return {
            "key": self.key.to_dict(),
            "account": self.account,
            "status": self.status,
            "score": self.score,
            "problem": self.problem,
            "rows": [r.to_dict() for r in self.rows],
            "requests": self.requests,
            "elapsed_s": round(self.elapsed_s, 3),
            "incidents": list(self.incidents),
            "message": self.message,
            "guide_notes": list(self.guide_notes),
            "checked_at": self.checked_at.isoformat(),
        }


__all__ = [
    "LEVELS",
    "STATUSES",
    "VERDICTS",
    "CheckResult",
    "Granted",
    "KeyInfo",
    "Level",
    "Mode",
    "Row",
    "Status",
    "Verdict",
    "level_rank",
]
