"""The audit trail's Detail column as readable sentences. No Streamlit here.

The store keeps what the callers of `store.record_audit` wrote (unchanged, so older entries and other readers
keep working): a check writes "rk_test_…a1b2 score 80 (dashboard)", a sample-data view and a sample transaction
write JSON. `detail_sentence` turns each into one sentence; text it does not recognise is shown as it is.

    detail_sentence("sample_data", "ok", '{"key": {...}, "states": {"charges": "loaded", ...}}')
    # "Read sample data with key rk_test_…a1b2 (test mode); datasets: 7 loaded, 1 empty, 1 not permitted (Invoices)."
"""
from __future__ import annotations

import json
import re
from typing import Any

from core.ui.money import money

SOURCES = {
    "dashboard": "on the dashboard",
    "cli": "from the command line",
    "batch": "in a batch recheck",
    "recheck": "in a batch recheck",
    "demo": "in the demo",
    "key source": "with the key Pointai holds (key source)",
}
STATE_WORDS = {"loaded": "loaded", "empty": "empty", "not_permitted": "not permitted", "failed": "failed"}
_CHECK = re.compile(r"^(?P<key>\S+) score (?P<score>-?\d+)(?: \((?P<source>[^()]*)\))?$")


def _source(source: Any) -> str:
    if not source:
        return ""
    return " " + SOURCES.get(str(source), f"({source})")


def _key(key: Any) -> str:
    if not isinstance(key, dict):
        return "a key"
    masked = key.get("masked") or "a key"
    mode = f" ({key['mode']} mode)" if key.get("mode") else ""
    return f"key {masked}{mode}"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text.endswith((".", "!", "?")) else text + "."


def _dataset_label(name: str) -> str:
    try:
        from core.features.sample import spec

        return spec(name).label
    except (ImportError, KeyError):
        return name.replace("_", " ").capitalize()


def _sample_data(d: dict) -> str:
    raw = d.get("states")
    states: dict = raw if isinstance(raw, dict) else {}
    counts: dict[str, list[str]] = {}
    for name, state in states.items():
        counts.setdefault(str(state), []).append(_dataset_label(str(name)))
    parts = []
    for state in ("loaded", "empty", "not_permitted", "failed"):
        names = counts.pop(state, [])
        if names:
            listed = f" ({', '.join(names)})" if state in ("not_permitted", "failed") else ""
            parts.append(f"{len(names)} {STATE_WORDS[state]}{listed}")
    parts += [f"{len(names)} {state}" for state, names in counts.items()]
    what = f"; datasets: {', '.join(parts)}" if parts else ""
    return _sentence(f"Read sample data with {_key(d.get('key'))}{what}")


def _transaction(d: dict, outcome: str) -> str:
    key = _key(d.get("key"))
    where = _source(d.get("source"))
    raw = d.get("charge")
    charge: dict | None = raw if isinstance(raw, dict) else None
    problem = d.get("problem")
    if outcome == "refused":
        return _sentence(f"Refused before any request with {key}{where}: {problem or 'no reason given'}")
    if charge and charge.get("id"):
        amount = money(charge.get("amount"), charge.get("currency"))
        status = charge.get("status") or "unknown"
        again = " (the same charge again: same idempotency key)" if d.get("replayed") else ""
        text = f"Test charge {charge['id']} of {amount} ({status}) with {key}{where}{again}"
        if d.get("balance_transaction"):
            text += f"; balance transaction {d['balance_transaction']}"
        if outcome != "passed" and problem:
            text += f"; failed: {problem}"
        return _sentence(text)
    if problem:
        return _sentence(f"No test charge with {key}{where}: {problem}")
    return _sentence(f"Sample transaction {outcome} with {key}{where}")


def detail_sentence(action: str, outcome: str, detail: str | None) -> str:
    """One readable sentence for an audit entry's detail ('' when there is none)."""
    if not detail:
        return ""
    text = str(detail).strip()
    if action == "check":
        m = _CHECK.match(text)
        if m:
            return _sentence(f"Checked key {m['key']}: score {m['score']}/100{_source(m['source'])}")
        return text
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:  # cut at 5,000 characters by the store, say: no JSON shown either way
            return _sentence(f"{action.replace('_', ' ').capitalize()} {outcome} (the stored detail is incomplete)")
        if isinstance(data, dict):
            if action == "sample_data":
                return _sample_data(data)
            if action == "sample_transaction":
                return _transaction(data, outcome)
            parts = (f"{k.replace('_', ' ')}: {v}" for k, v in data.items() if v not in (None, "", [], {}))
            return _sentence("; ".join(parts))
    return text


__all__ = ["detail_sentence"]
