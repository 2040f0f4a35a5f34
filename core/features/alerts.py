"""Alerts: after a recorded check, say so when a tenant got worse, and deliver it to a webhook.

An alert is raised when, compared with the tenant's previous check:
- the status got worse (healthy → attention → incomplete → failing → invalid);
- a permission drifted (a scope's granted level changed; "unknown" on either side is not a change);
- Stripe refused the key (invalid, expired, revoked, IP not allowed), unless the previous check was refused too.

The alert is stored first (alerts table: delivery pending → delivered | failed, attempts, last error), then
handed to a background worker that POSTs Slack-compatible JSON `{"text": …}` to KEYHEALTH_ALERT_WEBHOOK with
retries and exponential backoff; the check never waits for it. A delivery that failed is kept and shown on
Triage. The key never appears in an alert: only its masked form. Tenant names are escaped for Slack (&, <, >),
so they stay text.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from core.engine.result import STATUSES, CheckResult

log = logging.getLogger("keyhealth")
RANK = {s: i for i, s in enumerate(STATUSES)}  # 0 = worst (invalid)
ATTEMPTS = 4
BACKOFF_S = 0.5


def slack_escape(text: str) -> str:
    """Slack's three control characters, so a tenant name or a message is shown as typed, never as a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def what_changed(previous: Mapping[str, Any] | None, result: CheckResult) -> tuple[list[str], list[str]]:
    """(kinds, sentences) of what got worse since `previous` (a stored check with its rows), or ([], [])."""
    if not result.says_something:  # our outage or Stripe's storm of errors: nothing about the key, never an alert
        return [], []
    kinds: list[str] = []
    lines: list[str] = []
    prev_status = previous["status"] if previous else None
    if prev_status is not None and RANK.get(result.status, 99) < RANK.get(prev_status, 99):
        kinds.append("worse")
        lines.append(f"status {prev_status} → {result.status} (score {previous['score']} → {result.score})")  # type: ignore[index]
    if previous and result.rows:
        before = {r["scope"]: r for r in previous.get("rows", []) if r.get("scope")}
        changed = []
        for r in result.rows:
            b = before.get(r.scope) if r.scope else None
            if b is None or r.granted in (None, "unknown") or b["granted"] in (None, "unknown"):
                continue
            if b["granted"] != r.granted:
                changed.append(f"{r.resource}: {b['granted']} → {r.granted}")
        if changed:
            kinds.append("drift")
            shown = "; ".join(changed[:10]) + (f"; and {len(changed) - 10} more" if len(changed) > 10 else "")
            lines.append(f"permissions changed: {shown}")
    if result.refused is not None and prev_status != "invalid":
        kinds.append("refused")
        lines.append(f"Stripe refuses the key ({result.refused}): {result.problem or ''}".rstrip(": "))
    return kinds, lines


def alert_text(tenant: str, masked: str, lines: list[str]) -> str:
    """The alert as plain text (escaped for Slack only when posted)."""
    return f"Key Health: {tenant} (key {masked}): " + "; ".join(lines)


def post(url: str, text: str, timeout_s: float) -> str | None:
    """POST {"text": text} (Slack-escaped); None when the receiver took it (2xx), else what went wrong (one line)."""
    body = json.dumps({"text": slack_escape(text)}).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            if 200 <= resp.status < 300:
                return None
            return f"the webhook answered {resp.status}"
    except urllib.error.HTTPError as e:
        return f"the webhook answered {e.code}"
    except (TimeoutError, OSError) as e:  # URLError is an OSError; a hang ends in a timeout
        reason = getattr(e, "reason", e)
        return f"the webhook did not answer ({type(reason).__name__}: {str(reason)[:120]})"
    except ValueError as e:  # not a URL urllib can open
        return f"the webhook address is not usable ({e})"


class Dispatcher:
    """Delivers stored alerts from one background thread, with retries and backoff; never raises."""

    def __init__(self, store: Any, url: str, *, timeout_s: float = 5.0, attempts: int = ATTEMPTS,
                 backoff_s: float = BACKOFF_S):
        self.store, self.url = store, url
        self.timeout_s, self.attempts, self.backoff_s = timeout_s, attempts, backoff_s
        self._q: queue.Queue[int] = queue.Queue()
        self._idle = threading.Condition()
        self._busy = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
        self._thread.start()
        try:  # what an earlier process left pending is delivered too
            for a in store.pending_alerts():
                self.submit(a["id"])
        except Exception as e:  # noqa: BLE001 - a store that cannot list them: the next process delivers them
            log.error("reading pending alerts failed: %s", type(e).__name__)

    def submit(self, alert_id: int) -> None:
        with self._idle:
            self._busy += 1
        self._q.put(alert_id)

    def flush(self, timeout_s: float) -> bool:
        """Wait (at most `timeout_s`) until every submitted alert was delivered or given up on."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout=timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            alert_id = self._q.get()
            try:
                self._deliver(alert_id)
            except Exception as e:  # noqa: BLE001 - the store failed: the alert stays pending for the next process
                log.error("delivering alert %s failed: %s", alert_id, type(e).__name__)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _deliver(self, alert_id: int) -> None:
        alert = self.store.get_alert(alert_id)
        if alert is None or alert["delivery"] != "pending":
            return
        tries = alert["attempts"]
        while True:
            error = post(self.url, alert["text"], self.timeout_s)
            tries += 1
            if error is None:
                self.store.mark_alert_delivery(alert_id, delivery="delivered", attempts=tries, error=None)
                return
            final = tries >= self.attempts
            self.store.mark_alert_delivery(alert_id, delivery="failed" if final else "pending", attempts=tries,
                                           error=error)
            if final:
                log.warning("alert %s not delivered after %s attempts: %s", alert_id, tries, error)
                return
            if self._stop.wait(self.backoff_s * 2 ** (tries - 1)):
                return


_lock = threading.Lock()
_dispatchers: dict[tuple, Dispatcher] = {}


def dispatcher_for(store: Any, url: str, timeout_s: float) -> Dispatcher:
    """The process's dispatcher for one database and webhook (started on first use)."""
    key = (store.db, url, timeout_s)
    with _lock:
        d = _dispatchers.get(key)
        if d is None:
            d = _dispatchers[key] = Dispatcher(store, url, timeout_s=timeout_s)
        return d
