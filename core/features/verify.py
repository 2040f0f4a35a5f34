"""Verify an integration in one action: the check, the sample data and (test keys only) the sample transaction,
run through the service (so each is recorded and audited as on its own page), summed up twice:

- `summary`: for the ticket (support's words, third person, UTC);
- `tenant_message`: for the tenant (second person, what Pointai can do with the key, and the one thing to change
  when something is wrong), or None when there is nothing to tell them (Stripe could not be reached: our side).

    v = verify_integration(svc, SecretKey.parse(raw), TenantName.parse("Acme Coffee Roasters"))
    v.summary, v.tenant_message

A live key gets the check and the sample data only: the sample transaction would be a real charge, so it is
never attempted (no request), and both texts say why. A key Stripe refuses, or a check Stripe never answered,
stops after the check (nothing else could work).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.engine.check import Progress
from core.engine.keys import Pasted, as_intake
from core.engine.result import KeyInfo
from core.features.sample import SampleData
from core.features.transaction import TransactionResult

if TYPE_CHECKING:
    from core.service import Checked, Service
    from core.store import TenantName

LIVE_NO_TRANSACTION = (
    "no sample transaction: the key is a live-mode key, and a charge made with it would be a real charge"
)
SOURCE = "dashboard"  # the check's source in the history (the verify page is part of the dashboard)


def _when(at: datetime) -> str:
    """'6 December 2026' (UTC), the tenant's words for a day."""
    at = at.astimezone(UTC)
    return f"{at.day} {at:%B %Y}"


def _series(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


@dataclass
class Verification:
    """What one "Verify integration" found. Holds no key (only its KeyInfo: masked form, mode, fingerprint)."""

    key: KeyInfo
    tenant: str | None
    checked: Checked | None = None
    sample: SampleData | None = None
    transaction: TransactionResult | None = None
    no_transaction: str | None = None  # why the sample transaction was not run (a live key, a refused key)
    stopped: str | None = None  # why it stopped after the check (key refused, Stripe unreachable)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    # --- what happened -----------------------------------------------------------------------------------
    @property
    def status(self) -> str | None:
        return self.checked.result.status if self.checked else None

    @property
    def readable(self) -> list[str]:
        """The datasets the key could read (loaded, or empty but permitted), by label, in lower case."""
        if self.sample is None:
            return []
        return [d.label.lower() for d in self.sample.datasets if d.state in ("loaded", "empty")]

    @property
    def unreadable(self) -> list[str]:
        if self.sample is None:
            return []
        return [d.label.lower() for d in self.sample.datasets if d.state in ("not_permitted", "failed")]

    @property
    def passed(self) -> bool:
        """Everything that was run worked: a healthy (or attention) check, every dataset read, and the sample
        transaction passed (or, for a live key, was rightly not run)."""
        if self.checked is None or self.stopped or self.status not in ("healthy", "attention"):
            return False
        if self.sample is None or self.sample.problem or self.unreadable:
            return False
        if self.transaction is not None:
            return self.transaction.passed
        return self.key.mode == "live"

    @property
    def charge_id(self) -> str | None:
        if self.transaction is not None and self.transaction.charge:
            return str(self.transaction.charge.get("id") or "") or None
        return None

    # --- the two texts ------------------------------------------------------------------------------------
    @property
    def summary(self) -> str:
        """For the ticket: support's words, UTC."""
        who = f"{self.tenant}'s" if self.tenant else "The"
        lines = [f"{who} Stripe key {self.key.masked} ({self.key.mode or '?'} mode) verified on "
                 f"{self.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC: {'all good' if self.passed else 'problems found'}."]
        if self.checked is not None:
            r = self.checked.result
            if r.status == "unreachable":
                lines.append(f"Check: Stripe could not be reached (our side; nothing is known about the key). "
                             f"{r.problem or ''}".strip())
            else:
                lines.append(f"Check: {r.status}, score {r.score}/100" + (f"; {r.problem}" if r.problem else "."))
            if self.tenant is not None:
                lines.append("Recorded in the tenant's history." if self.checked.saved else
                             f"Not recorded: {self.checked.save_problem or 'the database did not take it'}.")
        if self.stopped:
            lines.append(f"Stopped after the check: {self.stopped}.")
        if self.sample is not None:
            if self.sample.problem:
                lines.append(f"Sample data: {self.sample.problem}")
            else:
                n = len(self.sample.datasets)
                lines.append(f"Sample data: {len(self.readable)} of {n} datasets readable"
                             + (f"; not readable: {', '.join(self.unreadable)}." if self.unreadable else "."))
        t = self.transaction
        if t is not None:
            if t.passed and t.charge:
                from core.ui.money import money

                lines.append(f"Sample transaction: passed, test charge {self.charge_id} of "
                             f"{money(t.charge.get('amount'), t.charge.get('currency'))}"
                             + (f", balance transaction {t.balance_transaction}." if t.balance_transaction else "."))
            else:
                lines.append(f"Sample transaction: {t.status}" + (f": {t.problem}" if t.problem else "."))
        elif self.no_transaction:
            lines.append(f"Sample transaction: {self.no_transaction}.")
        return "\n".join(lines)

    @property
    def tenant_message(self) -> str | None:
        """For the tenant: second person, what Pointai can do with the key, and what to change. None when Stripe
        could not be reached (our side: the tenant has nothing to do)."""
        if self.checked is None:
            return None
        r = self.checked.result
        if r.status == "unreachable":
            return None
        day = _when(self.at)
        if self.stopped:  # Stripe refused the key: its own message says what happened and what to do
            return r.message or "Stripe does not accept the key you gave Pointai; please create a new restricted key."
        parts: list[str] = []
        can = self.readable
        did = f"Pointai can read your {_series(can)}" if can else "Pointai could not read any of your Stripe data"
        if self.charge_id:
            did += f" and created a test charge {self.charge_id} on {day}"
        parts.append(f"We verified your Stripe integration on {day} (UTC). {did}.")
        if self.key.mode == "live":
            parts.append("With a live key we made no test charge (it would be a real payment).")
        elif self.transaction is not None and not self.transaction.passed:
            parts.append("The test charge did not go through.")
        if self.unreadable:
            parts.append(f"Pointai cannot read your {_series(self.unreadable)} yet.")
        if r.status in ("healthy", "attention") and not self.unreadable and (
            self.transaction is None or self.transaction.passed
        ):
            parts.append("Everything Pointai needs works; you don't need to do anything.")
        elif r.message:
            parts.append(r.message)
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key.to_dict(),
            "tenant": self.tenant,
            "passed": self.passed,
            "check": self.checked.result.to_json() if self.checked else None,
            "saved": self.checked.saved if self.checked else False,
            "sample": {d.name: d.state for d in self.sample.datasets} if self.sample else None,
            "sample_problem": self.sample.problem if self.sample else None,
            "transaction": self.transaction.to_json() if self.transaction else None,
            "no_transaction": self.no_transaction,
            "stopped": self.stopped,
            "summary": self.summary,
            "tenant_message": self.tenant_message,
            "at": self.at.isoformat(),
        }


def verify_integration(svc: Service, key: Pasted, tenant: TenantName | None = None, *, source: str = SOURCE,
                       on_progress: Progress | None = None) -> Verification:
    """Check the key (recorded for `tenant` when given), read the sample data, and with a test key run the
    sample transaction; each through the service, so each is audited. A bad tenant name is refused
    (StoreInputError) before any request. `key` is parsed once, by the caller (core.engine.keys)."""
    key = as_intake(key)  # (a script's raw text is parsed here, once)
    info = key.info
    v = Verification(key=info, tenant=tenant)
    v.checked = svc.check(key, tenant, source=source, on_progress=on_progress)
    result = v.checked.result
    v.key = result.key
    if result.status == "unreachable":
        v.stopped = "Stripe could not be reached (our side), so nothing else was tried"
        return v
    if result.refused or result.status == "invalid":
        v.stopped = "Stripe does not accept the key, so neither sample data nor a test charge can work"
        v.no_transaction = "not run (the key was refused)"
        return v
    v.sample = svc.sample(key, tenant)
    if info.mode == "live":
        v.no_transaction = LIVE_NO_TRANSACTION
    else:
        v.transaction = svc.transact(key, tenant, source=source)
    return v
