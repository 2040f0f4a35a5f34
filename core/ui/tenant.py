"""The tenant page's tables, built without Streamlit: drift, changes with a new key, the key timeline, the history."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from core.ui.palette import LEVEL_LABEL

REFUSED = {"expired": "key expired (rolled)", "revoked": "key revoked", "ip_not_allowed": "IP not allowed",
           "invalid": "key refused by Stripe", "no_key": "no key"}


def _level(v: Any) -> Any:
    return LEVEL_LABEL.get(v, v)


def drift_frame(changes: Sequence[Mapping[str, Any]], *, keys: bool = False) -> pd.DataFrame:
    """One row per changed permission (store.drift): when, the permission, then its scope (drift of one key) or the
    two masked keys (`keys`: changes across a key replacement), the level and the verdict, each "from → to"."""
    cols: dict[str, list] = {"When": [d["at"] for d in changes]}
    if keys:
        cols["Keys"] = [f"{d['from_key']} → {d['to_key']}" for d in changes]
    cols["Permission"] = [f"{d['category']} → {d['resource']}" for d in changes]
    if not keys:
        cols["Scope"] = [f"rak_{d['scope']}" for d in changes]
    cols["Granted"] = [f"{_level(d['from_granted'])} → {_level(d['to_granted'])}" for d in changes]
    cols["Verdict"] = [f"{d['from_verdict']} → {d['to_verdict']}" for d in changes]
    return pd.DataFrame(cols)


def key_timeline_frame(events: Sequence[Mapping[str, Any]], history: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """What happened to the tenant's key, newest first: replacements (with a mode or account change), refusals that
    name the key's state (expired, revoked, IP not allowed) and checks Stripe never answered. Empty when none."""
    rows: list[tuple[Any, str, str]] = []
    refused_checks = {h["check_id"] for h in history if h["status"] == "invalid" and h.get("check_id") is not None}
    for ev in events:
        flags = [w for w, on in (("mode changed", ev["mode_changed"]), ("account changed", ev["account_changed"]))
                 if on]
        by_refused = ev.get("check_id") is not None and ev.get("check_id") in refused_checks
        what = "replaced by a key Stripe refuses" if by_refused else "key replaced"
        rows.append((ev["at"], what, f"{ev['old_masked'] or '?'} → {ev['new_masked']}"
                     + (f" ({', '.join(flags)})" if flags else "")))
    for h in history:
        if h["status"] == "unreachable":
            rows.append((h["checked_at"], "Stripe unreachable (our side)",
                         "an attempt that says nothing about the key"))
        elif h["status"] == "invalid" and (refused := h.get("refused")) in ("expired", "revoked", "ip_not_allowed"):
            rows.append((h["checked_at"], REFUSED[str(refused)], h["key_masked"]))
    rows.sort(key=lambda x: x[0], reverse=True)
    return pd.DataFrame({"When": [x[0] for x in rows], "Event": [x[1] for x in rows], "Detail": [x[2] for x in rows]})


def history_frame(history: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Every check of the tenant as the History table shows it (an expired or revoked key says so as its status)."""
    return pd.DataFrame(
        {
            "Checked": [h["checked_at"] for h in history],
            "Status": [REFUSED.get(h.get("refused") or "", h["status"]) if h["status"] == "invalid" and
                       h.get("refused") in ("expired", "revoked") else h["status"] for h in history],
            "Score": [h["score"] for h in history],
            "Missing": [h["n_missing"] for h in history],
            "Excess": [h["n_excess"] for h in history],
            "Unknown": [h["n_unknown"] for h in history],
            "Key": [h["key_masked"] for h in history],
            # 0012: the key's Dashboard id (mk_…) when Stripe's refusal gave it: tells keys apart better than a tail
            "Key id": [h.get("key_dashboard_id") or "" for h in history],
            "Fingerprint": [(h["key_fingerprint"] or "")[:11] for h in history],
            "Mode": [h["key_mode"] or "" for h in history],
            "Source": [h["source"] for h in history],
            "By": [h["checked_by"] or "" for h in history],
            "Problem": [h["problem"] or "" for h in history],
        }
    )
