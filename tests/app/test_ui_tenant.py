"""The tenant page's tables (core/ui/tenant.py), without Streamlit."""
from __future__ import annotations

from datetime import UTC, datetime

from core.ui.tenant import drift_frame, history_frame, key_timeline_frame

T1, T2, T3 = (datetime(2026, 11, d, tzinfo=UTC) for d in (1, 2, 3))
CHANGE = {"at": T1, "category": "Core", "resource": "Charges", "scope": "charge", "from_granted": "read",
          "to_granted": "write", "from_verdict": "ok", "to_verdict": "excess", "from_key": "rk_test_…aaaa",
          "to_key": "rk_test_…bbbb"}


def test_drift_of_one_key_names_the_scope_and_across_keys_names_the_keys():
    one = drift_frame([CHANGE])
    assert list(one.columns) == ["When", "Permission", "Scope", "Granted", "Verdict"]
    assert one.iloc[0].to_dict() == {"When": T1, "Permission": "Core → Charges", "Scope": "rak_charge",
                                     "Granted": "Read → Write", "Verdict": "ok → excess"}
    across = drift_frame([CHANGE], keys=True)
    assert list(across.columns) == ["When", "Keys", "Permission", "Granted", "Verdict"]
    assert across.iloc[0]["Keys"] == "rk_test_…aaaa → rk_test_…bbbb"


def test_key_timeline_newest_first_with_replacements_refusals_and_outages_only():
    events = [{"at": T1, "old_masked": None, "new_masked": "rk_live_…bbbb", "mode_changed": True,
               "account_changed": False}]
    base = {"key_masked": "rk_live_…bbbb", "refused": None}
    history = [{**base, "checked_at": T2, "status": "unreachable"},
               {**base, "checked_at": T3, "status": "invalid", "refused": "revoked"},
               {**base, "checked_at": T3, "status": "healthy"}]
    frame = key_timeline_frame(events, history)
    assert frame.to_dict("list") == {
        "When": [T3, T2, T1],
        "Event": ["key revoked", "Stripe unreachable (our side)", "key replaced"],
        "Detail": ["rk_live_…bbbb", "an attempt that says nothing about the key", "? → rk_live_…bbbb (mode changed)"],
    }
    assert key_timeline_frame([], [history[2]]).empty


def test_history_shows_expired_and_revoked_keys_as_their_status():
    row = {"checked_at": T1, "score": 0, "n_missing": 0, "n_excess": 0, "n_unknown": 0, "key_masked": "rk_live_…x",
           "key_fingerprint": "0123456789abcdef", "key_mode": "live", "source": "cli", "checked_by": None,
           "problem": None}
    frame = history_frame([{**row, "status": "invalid", "refused": "expired"},
                           {**row, "status": "invalid", "refused": "invalid"}, {**row, "status": "healthy"}])
    assert list(frame["Status"]) == ["key expired (rolled)", "invalid", "healthy"]
    assert frame["Fingerprint"][0] == "0123456789a"
