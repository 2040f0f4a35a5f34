"""The tenant page's tables, built without Streamlit: why the tenant fails (from the stored rows of its latest
check, without the key), drift, changes with a new key, the key timeline, the history."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from core.engine.catalogue import Catalogue, Profile
from core.engine.remediation import fix_for, tenant_message
from core.engine.result import CheckResult, KeyInfo, KeyLifecycle, Row, is_granted, is_level, is_mode
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
            # who and where first: what the agent asks of a history ("since when, from where"), before the counts
            "Source": [h["source"] for h in history],
            "By": [h["checked_by"] or "" for h in history],
            "Key": [h["key_masked"] for h in history],
            # 0012: the key's Dashboard id (mk_…) when Stripe's refusal gave it: tells keys apart better than a tail
            "Key id": [h.get("key_dashboard_id") or "" for h in history],
            "Mode": [h["key_mode"] or "" for h in history],
            "Missing": [h["n_missing"] for h in history],
            "Excess": [h["n_excess"] for h in history],
            "Unknown": [h["n_unknown"] for h in history],
            "Fingerprint": [(h["key_fingerprint"] or "")[:11] for h in history],
            "Problem": [h["problem"] or "" for h in history],
        }
    )


# --- why, without the key ---------------------------------------------------------------------------------------
def result_from_stored(check: Mapping[str, Any], tenant: Mapping[str, Any], *, age_days: int | None = None,
                       rotation_days: int | None = None) -> CheckResult:
    """The CheckResult a stored check (store.get_check: its columns and its rows) stands for, with what the tenant
    row says about the key (its expected mode; the key's age when known), so the engine's own remediation can
    speak about it again. Nothing here needs or holds the key: only its masked form and fingerprint."""
    mode = check.get("key_mode")
    key = KeyInfo(kind=check.get("key_kind") or "restricted", mode=mode if is_mode(mode) else None,
                  masked=check.get("key_masked") or "", fingerprint=check.get("key_fingerprint"))
    rows = []
    for r in check.get("rows") or []:
        required, granted = r.get("required"), r.get("granted")
        rows.append(Row(category=r["category"], resource=r["resource"], scope=r.get("scope"),
                        required=required if is_level(required) else "none",
                        granted=granted if is_granted(granted) else None, verdict=r["verdict"],
                        reason=r.get("reason")))
    expected = tenant.get("expected_mode")
    lifecycle = KeyLifecycle(expected_mode=expected, age_days=age_days, rotation_days=rotation_days)
    lifecycle.mode_mismatch = bool(expected and key.mode and expected != key.mode)
    lifecycle.rotation_due = bool(age_days is not None and rotation_days is not None and age_days >= rotation_days
                                  and check.get("status") not in ("invalid", "unreachable"))
    at = check.get("checked_at")
    return CheckResult(key=key, status=check["status"], score=int(check.get("score") or 0),
                       problem=check.get("problem"), account=check.get("account"), rows=rows,
                       refused=check.get("refused"), lifecycle=lifecycle,
                       checked_at=at if isinstance(at, datetime) else datetime.now(UTC))


def why_frame(result: CheckResult, profile: Profile) -> pd.DataFrame:
    """The latest check's rows that are not ok, by their Stripe Dashboard label, with what to change (the engine's
    fix_for sentence). Missing first, then excess, then unknown; not-applicable rows only when they say something."""
    order = {"missing": 0, "excess": 1, "unknown": 2, "not_applicable": 3}
    rows = sorted((r for r in result.rows if r.verdict != "ok"), key=lambda r: order.get(r.verdict, 9))
    fixes = [fix_for(r, profile) for r in rows]
    kept = [(r, f) for r, f in zip(rows, fixes, strict=True) if r.verdict != "not_applicable" or f]
    return pd.DataFrame(
        {
            "Permission": [f"{r.category} → {r.resource}" for r, _ in kept],
            "Needs": [LEVEL_LABEL.get(r.required, r.required) for r, _ in kept],
            "Has": [LEVEL_LABEL.get(r.granted or "", r.granted or "") for r, _ in kept],
            "Verdict": [r.verdict.replace("_", " ") for r, _ in kept],
            "What to change": [f or "" for _, f in kept],
        },
        columns=["Permission", "Needs", "Has", "Verdict", "What to change"],
    )


def message_for(result: CheckResult, profile: Profile, catalogue: Catalogue) -> str | None:
    """The message for the tenant, from the engine (None when there is nothing to tell them yet)."""
    return tenant_message(result, profile, catalogue)


def streak_line(tenant: Mapping[str, Any], status: str) -> str | None:
    """ "Broken since … · last healthy …" (UTC) from the tenant row's streak (0015); None when healthy."""
    broken, healthy = tenant.get("broken_since"), tenant.get("last_healthy_at")
    if status == "healthy" or broken is None:
        return None
    parts = [f"Broken since {broken:%Y-%m-%d %H:%M} UTC (the first check of this run that was not healthy)"]
    parts.append(f"last healthy {healthy:%Y-%m-%d %H:%M} UTC" if healthy else "never healthy in Key Health's history")
    return " · ".join(parts)
