"""Alerts: after a recorded check, say so when a tenant got worse, and deliver it to a webhook.

An alert is raised when, compared with the tenant's previous check:
- the status got worse (healthy → attention → incomplete → failing → invalid);
- a permission drifted (a scope's granted level changed with the same key; "unknown" on either side is not a
  change);
- the key was replaced (the previous check had another key) and the new key's permissions differ: "key replaced
  (old → new)", with the differences as "with the new key: …", never "permissions changed" (drift compares one
  key only);
- Stripe refused the key (invalid, expired, revoked, IP not allowed), unless the previous check was refused too.

The alert is stored first (alerts table: delivery pending → delivered | failed, attempts, last error), then
handed to a background worker that POSTs Slack-compatible JSON `{"text": …}` to KEYHEALTH_ALERT_WEBHOOK with
retries and exponential backoff; the check never waits for it. A delivery that failed is kept and shown on
Triage. The key never appears in an alert: only its masked form, and the text passes the one redaction step
(core.engine.redact). Alerts are delivered from every entry: the process that raised one (recheck, `check
--tenant`, the dashboard) hands it to its own background sender; the CLI waits for it at most `CLI_FLUSH_S`.

What is posted is neutralised for Slack (`slack_escape`): `&`, `<`, `>` escaped (so `<!channel>`, `<@U123>` and
`<http://x|y>` stay text), Slack's formatting characters (`*`, `_`, `~`, backtick) and `@` replaced by look-alikes
that format nothing, and links defanged (`http∶//evil․example`), so a tenant name or a Stripe message is shown
as typed, never as formatting, a mention or a link; masked keys (`rk_test_…abcd`) are posted as they are. The
payload also says `"mrkdwn": false`.
"""
from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from core.engine.redact import redact
from core.engine.result import STATUSES, CheckResult
from core.features.retry import retrying

log = logging.getLogger("keyhealth")
RANK = {s: i for i, s in enumerate(STATUSES)}  # 0 = worst (invalid)
ATTEMPTS = 4
BACKOFF_S = 0.5
CLI_FLUSH_S = 5.0  # the CLI waits at most this long for its alerts before exiting (they stay pending after)

# Slack's formatting characters, and "@" (a bare @channel / @name is a mention in Slack-compatible receivers),
# each replaced by a look-alike that formats nothing.
_SLACK_LOOKALIKE = str.maketrans({"*": "\u2217", "_": "\uff3f", "~": "\u223c", "`": "\u02cb", "@": "\uff20"})
_MASKED_KEY = re.compile(r"((?:sk|rk|pk|rkcs)_(?:live|test)_…[A-Za-z0-9]{0,4})")
_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*):(?=//)|\b(mailto|tel|slack):")
_DOMAIN_DOT = re.compile(r"(?<=[A-Za-z0-9])\.(?=[A-Za-z0-9-]*[A-Za-z][A-Za-z0-9-]*)")


def _neutral(part: str) -> str:
    part = part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    part = part.translate(_SLACK_LOOKALIKE)
    part = _SCHEME.sub(lambda m: f"{m.group(1) or m.group(2)}\u2236", part)  # http://x -> http∶//x
    return _DOMAIN_DOT.sub("\u2024", part)  # evil.example -> evil․example: no bare link


def slack_escape(text: str) -> str:
    """`text` as Slack shows it typed: `&<>` escaped (no `<!channel>`, `<@U…>` or `<url|label>`), formatting
    characters and `@` replaced by look-alikes, schemes and domain dots defanged (no bare link). Masked keys stay."""
    return "".join(p if i % 2 else _neutral(p) for i, p in enumerate(_MASKED_KEY.split(text)))


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
    replaced = _replaced(previous, result)
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
            shown = "; ".join(changed[:10]) + (f"; and {len(changed) - 10} more" if len(changed) > 10 else "")
            if replaced is not None:  # another key: its differences are no drift (drift compares one key only)
                kinds.append("replaced")
                lines.append(f"key replaced ({replaced} → {result.key.masked}); with the new key: {shown}")
            else:
                kinds.append("drift")
                lines.append(f"permissions changed: {shown}")
    if result.refused is not None and prev_status != "invalid":
        kinds.append("refused")
        lines.append(f"Stripe refuses the key ({result.refused}): {result.problem or ''}".rstrip(": "))
    return kinds, lines


def _replaced(previous: Mapping[str, Any] | None, result: CheckResult) -> str | None:
    """The masked previous key when `result` checked another key than `previous` did, else None."""
    lc = result.lifecycle
    if lc is not None and lc.replaced:
        return lc.replaced
    if not previous:
        return None
    before, now = previous.get("key_fingerprint"), result.key.fingerprint
    if before and now and before != now:
        return str(previous.get("key_masked") or "another key")
    return None


def alert_text(tenant: str, masked: str, lines: list[str]) -> str:
    """The alert as plain text (redacted; neutralised for Slack only when posted)."""
    return redact(f"Key Health: {tenant} (key {masked}): " + "; ".join(lines))


def post(url: str, text: str, timeout_s: float) -> str | None:
    """POST {"text": text} (Slack-escaped); None when the receiver took it (2xx), else what went wrong (one line)."""
    body = json.dumps({"text": slack_escape(redact(text)), "mrkdwn": False}).encode()
    try:
        req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            if 200 <= resp.status < 300:
                return None
            return f"the webhook answered {resp.status}"
    except urllib.error.HTTPError as e:
        return f"the webhook answered {e.code}"
    except (TimeoutError, OSError) as e:  # URLError is an OSError; a hang ends in a timeout
        reason = getattr(e, "reason", e)
        return f"the webhook did not answer ({type(reason).__name__}: {str(reason)[:120]})"
    except ValueError:  # not a URL urllib can open (start-up refuses those: the settings table)
        return "the webhook address is not an http(s) URL"


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

    def flush(self, timeout_s: float, stop: Any = None) -> bool:
        """Wait (at most `timeout_s`) until every submitted alert was delivered or given up on. `stop` (anything
        with is_set(), e.g. core.features.fleet.Stop) ends the wait at once (within 0.1 s): False then."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or (stop is not None and stop.is_set()):
                    return False
                self._idle.wait(min(left, 0.1))
            return True

    @property
    def pending(self) -> int:
        """Alerts submitted and not yet delivered or given up on."""
        with self._idle:
            return self._busy

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

        def attempt() -> str | None:
            nonlocal tries
            error = post(self.url, alert["text"], self.timeout_s)
            tries += 1
            delivery = "delivered" if error is None else "failed" if tries >= self.attempts else "pending"
            self.store.mark_alert_delivery(alert_id, delivery=delivery, attempts=tries, error=error)
            return error

        error = retrying(attempt, tries=max(1, self.attempts - tries), delay_s=self.backoff_s, start=tries,
                         again=lambda err: err is not None, wait=self._stop.wait)
        if error is not None and tries >= self.attempts:
            log.warning("alert %s not delivered after %s attempts: %s", alert_id, tries, error)


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
