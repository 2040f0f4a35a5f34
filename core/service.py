"""The one way in: every use case the dashboard and the CLI offer, bound to one runtime.

    svc = Service(runtime.real(settings(), who="ana@pointai.example"))
    key, tenant = SecretKey.parse(raw), TenantName.parse("Acme Coffee")   # parsed once, at the edge
    checked = svc.check(key, tenant, source="dashboard")   # check, judge against history, record, audit
    svc.store.latest_checks(status="failing")                      # reads, bound to the runtime's database
    svc.sample(key, tenant)  /  svc.transact(key, tenant, ...)
    FleetRun(svc, lines, FleetOptions()).run()   # a recheck of many keys (core.features.fleet), each through check()

All recording and auditing happens here, in one place, against the runtime's database (the demo's when the
runtime is the demo's): nothing below this layer picks a database on its own.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from core.engine.catalogue import Catalogue
from core.engine.check import Progress, check_key
from core.engine.history import History as Facts
from core.engine.keys import Pasted, as_intake
from core.engine.paced import Paced
from core.engine.result import CheckResult, KeyInfo
from core.features import sample as _sample
from core.features import transaction as _transaction
from core.features.lifecycle import read_history
from core.features.sample import SampleData, fetch_sample_data
from core.features.transaction import TransactionResult, run_test_transaction
from core.runtime import Runtime
from core.store import (
    AlertRule,
    AuditOfCheck,
    History,
    Store,
    StoreInputError,
    TenantName,
    is_database_error,
)
from core.store.errors import DatabaseProblem, classify
from core.store.rows import TenantRow

log = logging.getLogger("keyhealth")


@dataclass
class Checked:
    """A check as the service hands it back: the result (already judged against history), and whether it
    was saved (`check_id`: with its audit entry and its alert, in one transaction), or why not (`save_problem`,
    one sentence; then none of them was)."""

    result: CheckResult
    check_id: int | None = None
    save_problem: str | None = None
    database_problem: DatabaseProblem | None = None  # when the database was why (core.store.errors)
    alert_id: int | None = None  # the alert this check raised (handed to this process's webhook sender)
    history: History | None = None  # the one read of history the check started with (record(..., history=) uses it)

    @property
    def saved(self) -> bool:
        return self.check_id is not None


class Service:
    """Key Health's use cases, bound to a runtime (database, Stripe client, who is acting)."""

    def __init__(self, rt: Runtime):
        self.rt = rt

    @property
    def store(self) -> Store:
        """Reads and writes, bound to the runtime's database (migrated on first use)."""
        return self.rt.store

    @property
    def who(self) -> str | None:
        return self.rt.who

    # --- checking --------------------------------------------------------------------------------
    def history(self, info: KeyInfo, tenant: str | None, refused: str | None = None, *,
                read: History | None = None) -> Facts:
        """The history facts a check of the key `info` for `tenant` is assembled with (read once, before the
        result is built): the key's lifecycle, and for a key Stripe `refused` as invalid whether it accepted it
        before (then the result names it revoked). A history that cannot be read leaves those out. `read`: the
        tenant's history as the check read it before any request (Store.check_history); its key facts are used
        when they are this key's, so nothing is read again."""
        known = read.known if read is not None and read.fingerprint == info.fingerprint else None
        return read_history(lambda: self.store, info, tenant, refused=refused, rotation_days=self.rt.rotation_days,
                            known=known)

    def check(
        self,
        key: Pasted,
        tenant: TenantName | None = None,
        *,
        source: str = "dashboard",
        on_progress: Progress | None = None,
        only: set[str] | None = None,
        previous: CheckResult | None = None,
        record: bool | Literal["later"] = True,
        pacing: Paced | None = None,
    ) -> Checked:
        """Check a parsed paste (a SecretKey, or the Intake of a refused paste: core.engine.keys) against history,
        and (with a tenant) record it and audit it. Nothing here parses the key or the name again. The result is
        assembled once, with the history facts (`history`).
        `record=False`: judged against the tenant's history (key replaced, account changed, ...) but not saved,
        so the caller can ask before recording (then `record(result, tenant, ...)`), or not record at all.
        `record="later"`: refused and judged as for recording, but handed back unsaved: the caller records it with
        `record(result, tenant, source=...)` (the fleet, from its one writer thread).
        `pacing`: the fleet's shared per-account pacing (Paced); `source` says who checked ("batch": the fleet).
        A bad tenant name is refused (StoreInputError) before any request; so is, when the check is to be
        recorded, a name too close to another tenant's (`name_clash`: the sentence the dashboard gives).
        The tenant's history is read ONCE, before any request (`Store.check_history`: the clash question, the
        lifecycle's facts and the state the write starts from), and written in one transaction: docs/store.md."""
        tenant = TenantName.optional(tenant)  # a TenantName passes as it is (a script's plain text is parsed here)
        key = as_intake(key)  # likewise the key: a parsed paste as it is, a script's raw text parsed here, once
        history = None
        if tenant is not None:
            history = self._history(key, tenant, clash=bool(record))
        paced = pacing or Paced()
        probe = self.rt.probe if paced.concurrency is None else replace(self.rt.probe, concurrency=paced.concurrency)
        result = check_key(
            key, settings=probe, client=self.rt.client(),
            on_progress=on_progress, only=only, previous=previous,
            pacing=paced.pacing, pool=paced.pool, account_hint=paced.account_hint,
            history=lambda info, refused: self.history(info, tenant, refused, read=history),
        )
        if tenant is None or record is not True:
            return Checked(result, history=history)
        return self.record(result, tenant, source=source, history=history)

    def _history(self, key: Pasted, tenant: TenantName, *, clash: bool) -> History | None:
        """The one read of the tenant's history a check starts with, before any request. StoreInputError (one
        sentence) when `clash` and `tenant` would be a new tenant too close to an existing one. A database that
        cannot say leaves the check to run (None): saving it then says what is wrong."""
        fingerprint = key.info.fingerprint
        try:
            history = self.store.check_history(tenant, fingerprint, clash=clash)
        except Exception as e:  # re-raised unless it is the database's (driver, Alembic, ...)
            if not is_database_error(e):
                raise
            log.error("reading the tenant's history failed: %s", type(e).__name__)
            return None
        if clash and history.clash:
            raise StoreInputError(history.clash)
        return history

    def record(self, result: CheckResult, tenant: TenantName, *, source: str, history: History | None = None,
               run_item: int | None = None) -> Checked:
        """Keep a judged check in the tenant's history, with its audit entry and, if the tenant got worse, its
        alert (see core.features.alerts), all in one transaction (Store.record_checked): either all of them are
        stored or none is. The alert is then handed to this process's webhook sender (it stays pending in the
        database for the next sender if this process ends first). A store that cannot take it leaves the result
        intact and says why in `save_problem`. `history`: the read the check started with (Checked.history), so the
        write reads nothing more unless the tenant changed since. `run_item`: the fleet run's item this check
        finishes (marked done in the same transaction)."""
        audit = AuditOfCheck(who=self.who, detail=f"{result.key.masked} score {result.score} ({source})")
        try:
            done = self.store.record_checked(result, tenant, source=source, checked_by=self.who, audit=audit,
                                             alert=self._alert_rule(result), history=history,
                                             run_item=run_item)
        except StoreInputError as e:
            return Checked(result, save_problem=f"The check ran but was not saved: {e}")
        except Exception as e:  # noqa: BLE001  (the database failed: the result stands, and says why it was not saved)
            problem = classify(e, self.rt.db)
            log.error("recording a check failed: %s (%s)", problem.kind, type(e).__name__)
            return Checked(result, save_problem=problem.because(f"The check ran ({result.status}) but was not saved"),
                           database_problem=problem)
        if done.alert_id is not None and self.rt.alert_webhook:
            try:
                self.alerts().submit(done.alert_id)
            except Exception as e:  # noqa: BLE001 - stored as pending: the next sender delivers it
                log.error("handing an alert to the sender failed: %s", type(e).__name__)
        return Checked(result, check_id=done.check_id, alert_id=done.alert_id)

    # --- alerts -------------------------------------------------------------------------------------
    @staticmethod
    def _alert_rule(result: CheckResult) -> AlertRule:
        """The alert a check raises against the tenant's previous check (read by the store, under the tenant's
        lock): (kinds, text), or None when the tenant did not get worse. A rule that fails raises no alert and
        never fails the check."""
        from core.features import alerts

        def rule(previous: Mapping[str, Any] | None, name: str) -> tuple[list[str], str] | None:
            try:
                kinds, lines = alerts.what_changed(previous, result)
                return (kinds, alerts.alert_text(name, result.key.masked, lines)) if kinds else None
            except Exception as e:  # noqa: BLE001 - the check is recorded; only its alert is missing
                log.error("deciding on an alert failed: %s", type(e).__name__)
                return None

        return rule

    def alerts(self):
        """The background webhook worker for this runtime's database (None without a webhook)."""
        from core.features import alerts

        if not self.rt.alert_webhook:
            return None
        return alerts.dispatcher_for(self.store, self.rt.alert_webhook, self.rt.alert_timeout_s)

    def flush_alerts(self, timeout_s: float = 30.0, stop: Any = None) -> bool:
        """Wait (bounded; `stop`, anything with is_set(), ends it at once) for the alerts raised so far to be
        delivered or given up on (end of a CLI command). False when some are still pending: they stay stored
        as pending and the next process with a webhook delivers them."""
        d = self.alerts()
        return True if d is None else d.flush(timeout_s, stop)

    def ack_alert(self, alert_id: int) -> dict | None:
        """Acknowledge an alert, audited."""
        alert = self.store.ack_alert(alert_id, who=self.who)
        if alert is not None:
            self.audit("alert_ack", tenant=alert["tenant"], outcome="ok",
                       detail=f"alert {alert_id} ({alert['kinds']})")
        return alert

    def set_expected_mode(self, tenant: str | int, mode: str | None) -> TenantRow:
        """Mark a tenant live (in production: a test key is then a problem) or clear it, and audit who did.
        Returns the tenant after the change (StoreInputError for a mode that is not live/test/None)."""
        updated = self.store.update_tenant(tenant, expected_mode=mode)
        self.audit("tenant_expected_mode", tenant=updated["name"], outcome="ok", detail=mode or "not said")
        return updated

    # --- sample data and the sample transaction ---------------------------------------------------
    def sample(self, key: Pasted, tenant: TenantName | None = None, *, window_days: int = _sample.DEFAULT_WINDOW_DAYS,
               max_rows: int = _sample.DEFAULT_MAX_ROWS, datasets: Sequence[str] | None = None,
               page_size: int = _sample.PAGE_SIZE, now: datetime | None = None,
               on_progress: _sample.Progress | None = None, catalogue: Catalogue | None = None) -> SampleData:
        """Read the sample datasets with `key`, and audit who looked at them (options: fetch_sample_data's)."""
        data = fetch_sample_data(
            key, settings=self.rt.probe, client=self.rt.client(), window_days=window_days, max_rows=max_rows,
            datasets=None if datasets is None else tuple(datasets), page_size=page_size, now=now,
            on_progress=on_progress, catalogue=catalogue,
        )
        outcome = "failed" if data.problem or any(d.state == "failed" for d in data.datasets) else "ok"
        data.audit_problem = self._audit_or_say(
            "sample_data", tenant=tenant, outcome=outcome,
            detail=json.dumps({"key": data.key.to_dict(), "states": data.states()}),
        )
        return data

    def transact(self, key: Pasted, tenant: TenantName | None = None, *, source: str = "dashboard",
                 amount: int = _transaction.DEFAULT_AMOUNT, currency: str = _transaction.DEFAULT_CURRENCY,
                 idempotency_key: str | None = None, now: datetime | None = None,
                 catalogue: Catalogue | None = None) -> TransactionResult:
        """Run the sample transaction (test keys only, idempotent) and audit it: always when it reached Stripe
        or names a tenant (a refusal then lands in the tenant's history too)."""
        tenant = TenantName.optional(tenant)
        result = run_test_transaction(key, settings=self.rt.probe, client=self.rt.client(), amount=amount,
                                      currency=currency, idempotency_key=idempotency_key, now=now,
                                      catalogue=catalogue)
        if tenant is None and result.requests == 0:
            return result  # refused before any request, for nobody in particular: nothing happened to audit
        detail = {
            "source": source,
            "key": result.key.to_dict(),
            "problem": result.problem,
            "charge": result.charge,
            "balance_transaction": result.balance_transaction,
            "steps": [s.to_json() for s in result.steps],
            "replayed": result.replayed,
        }
        result.audit_problem = self._audit_or_say(
            "sample_transaction", tenant=tenant, outcome=result.status, detail=json.dumps(detail)
        )
        return result

    # --- the audit trail ----------------------------------------------------------------------------
    def _audit_or_say(self, action: str, **entry: Any) -> str | None:
        """Audit what already happened in Stripe; if the store cannot take it, say so instead of losing the
        result that is already in hand (it is shown, with this sentence)."""
        try:
            self.audit(action, **entry)
        except StoreInputError as e:
            return f"It ran, but the audit trail could not record it: {e}"
        except Exception as e:  # noqa: BLE001  (the result stands; only the audit entry is missing)
            problem = classify(e, self.rt.db)
            log.error("audit %s failed: %s (%s)", action, problem.kind, type(e).__name__)
            return problem.because("It ran, but the audit trail could not record it")
        return None

    def audit(self, action: str, *, tenant: str | None = None, outcome: str = "ok",
              detail: str | None = None, at: datetime | None = None) -> int:
        """One audit entry, by whoever this runtime acts for."""
        return self.store.record_audit(action, who=self.who, tenant=tenant, outcome=outcome, detail=detail, at=at)
