"""Key lifecycle in the store (issue 12): replacements, same-key drift, key age, shared keys, expected mode,
unreachable checks kept out of every figure about keys, and migration 0006's backfill of a populated database."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from core import store
from core.store.db import get_engine

NOW = datetime.now(UTC).replace(microsecond=0)
LIVE = {"masked": "rk_live_…TEva", "fingerprint": "fp_live_A", "mode": "live", "account": "acct_1LiveA"}
TEST = {"masked": "rk_test_…CPM9", "fingerprint": "fp_test_B", "mode": "test", "account": "acct_1TestB"}


def rec(make_result, url, tenant, days_ago, key, rows, status="healthy", score=100, **kw):
    """Record a made-up result the way the service records a check: assembled with the history read first."""
    from core.runtime import Runtime
    from core.service import Service

    svc = Service(Runtime(demo=False, api_base="http://127.0.0.1:9", db=store.Database(url), who="t"))
    r = make_result(status, score, rows, at=NOW - timedelta(days=days_ago), **key, **kw,
                    history=lambda info, refused: svc.history(info, tenant, refused))
    assert svc.record(r, tenant, source="cli").saved
    return r


def test_replacement_is_an_event_not_drift(store_url, make_result):
    rec(make_result, store_url, "Acme", 10, LIVE, [("charge_write", "write", "ok"), ("invoice_write", "write", "ok")])
    rec(make_result, store_url, "Acme", 5, LIVE, [("charge_write", "read", "missing"), ("invoice_write", "write",
        "ok")],
        "failing", None)
    store.at(store_url).update_tenant("Acme", expected_mode="live")
    new = rec(make_result, store_url, "Acme", 1, TEST, [("charge_write", "write", "ok"), ("invoice_write", "none",
        "missing")],
              "failing", None)
    events = store.at(store_url).key_events("Acme")
    assert len(events) == 1
    ev = events[0]
    assert (ev["old_masked"], ev["new_masked"]) == ("rk_live_…TEva", "rk_test_…CPM9")
    assert ev["mode_changed"] and ev["account_changed"]
    # drift compares the same key only; across the replacement it is "changes with the new key"
    assert [(d["scope"], d["to_key"]) for d in store.at(store_url).drift("Acme")] == [("charge_write", "rk_live_…TEva")]
    across = store.at(store_url).drift("Acme", new_key=True)
    assert {d["scope"] for d in across} == {"charge_write", "invoice_write"}
    assert all(d["from_key"] == "rk_live_…TEva" and d["to_key"] == "rk_test_…CPM9" for d in across)
    # the check result carries the flags too
    lc = new.lifecycle
    assert lc.replaced == "rk_live_…TEva" and lc.mode_changed and lc.account_changed and lc.mode_mismatch
    assert "test-mode key" in " ".join(lc.problems()) and "rk_live_" in new.message
    # triage: columns and filters
    (row,) = store.at(store_url).latest_checks()
    assert row["key_replaced"] and row["mode_changed"] and row["account_changed"] and row["mode_mismatch"]
    assert row["replaced_from"] == "rk_live_…TEva"
    for f in ("key_replaced", "mode_changed", "account_changed", "mode_mismatch"):
        assert [r["tenant"] for r in store.at(store_url).latest_checks(flag=f)] == ["Acme"]
    assert store.at(store_url).latest_checks(flag="shared_key") == []
    counts = store.at(store_url).lifecycle_counts()
    assert counts["key_replaced"] == counts["mode_or_account_changed"] == counts["mode_mismatch"] == 1
    assert store.at(store_url).replaced_tenants(NOW - timedelta(days=7)) == 1
    with pytest.raises(store.StoreInputError):
        store.at(store_url).latest_checks(flag="nonsense")
    with pytest.raises(store.StoreInputError):
        store.at(store_url).update_tenant("Acme", expected_mode="production")


def test_same_key_keeps_no_event_and_account_learnt_later(store_url, make_result):
    rows = [("charge_write", "write", "ok")]
    rec(make_result, store_url, "Acme", 9, LIVE, rows)
    rec(make_result, store_url, "Acme", 8, LIVE, rows)
    # the new key was refused at first (no account seen), then accepted: the event learns its account
    rec(make_result, store_url, "Acme", 7, {**TEST, "account": None}, [], "invalid", 0)
    assert store.at(store_url).key_events("Acme")[0]["new_account"] is None
    rec(make_result, store_url, "Acme", 6, TEST, rows)
    (ev,) = store.at(store_url).key_events("Acme")
    assert ev["new_account"] == "acct_1TestB" and ev["account_changed"]


def test_key_age_and_rotation_due(store_url, make_result):
    rows = [("charge_write", "write", "ok")]
    rec(make_result, store_url, "Old", 200, LIVE, rows)
    latest = rec(make_result, store_url, "Old", 1, LIVE, rows)
    rec(make_result, store_url, "Young", 2, TEST, rows)
    assert latest.lifecycle.age_days == 199 and latest.lifecycle.rotation_due
    assert "in use for 199 days" in latest.message and "nothing is broken" in latest.message
    assert latest.status == "healthy", "rotation due never fails the key"
    assert store.at(store_url).key_first_seen("fp_live_A") == NOW - timedelta(days=200)
    rows_ = {r["tenant"]: r for r in store.at(store_url).latest_checks()}
    assert rows_["Old"]["rotation_due"] and rows_["Old"]["key_age_days"] == 200
    assert not rows_["Young"]["rotation_due"]
    assert [r["tenant"] for r in store.at(store_url).latest_checks(flag="rotation_due")] == ["Old"]
    assert store.at(store_url).latest_checks(flag="rotation_due", rotation_days=365) == []
    assert store.at(store_url).lifecycle_counts()["rotation_due"] == 1


def test_one_key_on_two_tenants_is_flagged_on_both(store_url, make_result):
    rows = [("charge_write", "write", "ok")]
    rec(make_result, store_url, "Acme", 3, LIVE, rows)
    r = rec(make_result, store_url, "Globex", 1, LIVE, rows)
    assert r.lifecycle.shared_with == ["Acme"]
    assert {x["tenant"] for x in store.at(store_url).latest_checks(flag="shared_key")} == {"Acme", "Globex"}
    assert store.at(store_url).shared_keys("Acme")[0]["others"] == ["Globex"]
    assert store.at(store_url).shared_keys("Globex")[0]["others"] == ["Acme"]


def test_unreachable_is_an_attempt_that_says_nothing(store_url, make_result):
    rows = [("charge_write", "write", "ok")]
    rec(make_result, store_url, "Acme", 2, LIVE, rows)
    u = rec(make_result, store_url, "Acme", 1, {**LIVE, "account": None}, [], "unreachable", 0,
            problem="This server cannot reach api.stripe.com: connection refused.")
    assert u.message is None
    hist = store.at(store_url).tenant_history("Acme")
    assert [h["status"] for h in hist] == ["unreachable", "healthy"] and hist[0]["score"] is None
    (latest,) = store.at(store_url).latest_checks()
    assert latest["status"] == "healthy", "an unreachable check is never the tenant's latest"
    assert store.at(store_url).status_counts() == {"invalid": 0, "failing": 0, "incomplete": 0, "attention": 0,
                                                 "healthy": 1}
    mix = store.at(store_url).status_mix_per_day()
    assert sum(d["total"] for d in mix) == 1 and all("unreachable" not in d for d in mix)
    assert store.at(store_url).unreachable_share() == {"checks": 2, "unreachable": 1, "share": 0.5}
    assert sum(d["unreachable"] for d in store.at(store_url).checks_per_day()) == 1
    assert store.at(store_url).last_accepted_check("fp_live_A")["status"] == "healthy"
    assert store.at(store_url).key_events("Acme") == []


def _ts(s: str, dialect: str) -> str:
    return s + ".000000" if dialect == "sqlite" else s + "+00"


def test_migration_0006_backfills_first_seen_and_replacements(db_url, make_result):
    store.at(db_url).upgrade("0002")
    engine = get_engine(db_url)
    T = lambda s: _ts(s, engine.dialect.name)  # noqa: E731
    checks = [  # id, tenant, at, fingerprint, masked, mode, account, status, problem
        (1, 1, "2025-01-01 10:00:00", "fpA", "rk_live_…AAAA", "live", "acct_1", "healthy", None),
        (2, 1, "2025-01-05 10:00:00", "fpA", "rk_live_…AAAA", "live", "acct_1", "failing", None),
        (3, 1, "2025-01-09 10:00:00", "fpB", "rk_test_…BBBB", "test", None, "invalid",
         "Stripe says this key has expired (it was rolled); ask the tenant to create a new restricted key."),
        (4, 1, "2025-01-10 10:00:00", "fpB", "rk_test_…BBBB", "test", "acct_2", "healthy", None),
        (5, 2, "2025-01-03 10:00:00", "fpA", "rk_live_…AAAA", "live", "acct_1", "healthy", None),
        (6, 2, "2025-01-04 10:00:00", None, "rk_live_…", "live", None, "invalid", "This key looks truncated."),
    ]
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO tenants (id, name, slug, archived, created_at, last_check_id, last_checked_at) VALUES "
            f"(1, 'Acme', 'acme', false, '{T('2025-01-01 00:00:00')}', 4, '{T('2025-01-10 10:00:00')}'),"
            f"(2, 'Globex', 'globex', false, '{T('2025-01-01 00:00:00')}', 6, '{T('2025-01-04 10:00:00')}')"))
        for cid, tid, at, fp, masked, mode, acct, status, problem in checks:
            conn.execute(sa.text(
                "INSERT INTO checks (id, tenant_id, checked_at, source, key_masked, key_fingerprint, key_kind, "
                "key_mode, account, status, score, n_ok, n_missing, n_excess, n_unknown, n_not_applicable, requests, "
                "elapsed_s, problem) VALUES "
                f"(:id, :tid, '{T(at)}', 'cli', :masked, :fp, 'restricted', :mode, :acct, :status, 50, 1, 0, 0, 0, 0, "
                "3, 1.0, :problem)"),
                {"id": cid, "tid": tid, "masked": masked, "fp": fp, "mode": mode, "acct": acct, "status": status,
                 "problem": problem})
        if engine.dialect.name == "postgresql":
            for table in ("tenants", "checks"):
                conn.execute(sa.text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))"))
    store.dispose_engine(db_url)
    store.at(db_url).upgrade()
    assert store.at(db_url).current_revision() == store.db.newest_revision()
    assert store.at(db_url).key_first_seen("fpA") == datetime(2025, 1, 1, 10, tzinfo=UTC)
    # 0013: first seen is the first check Stripe accepted the key in (check 3 refused it as expired)
    assert store.at(db_url).key_first_seen("fpB") == datetime(2025, 1, 10, 10, tzinfo=UTC)
    (ev,) = store.at(db_url).key_events("Acme")
    assert (ev["old_masked"], ev["new_masked"], ev["check_id"]) == ("rk_live_…AAAA", "rk_test_…BBBB", 3)
    assert ev["mode_changed"] and ev["account_changed"] and ev["new_account"] == "acct_2"
    assert store.at(db_url).key_events("Globex") == []
    hist = {h["check_id"]: h for h in store.at(db_url).tenant_history("Acme")}
    assert hist[3]["refused"] == "expired" and hist[4]["refused"] is None
    assert store.at(db_url).shared_keys("Acme")[0]["others"] == ["Globex"]  # fpA, Acme's earlier key
    # and the store carries on from the backfilled state
    r = make_result("healthy", 100, [("charge_read", "read", "ok")],
                    masked="rk_live_…CCCC", fingerprint="fpC", mode="live", account="acct_1",
                    at=datetime(2025, 1, 12, tzinfo=UTC))
    store.at(db_url).record_check(r, "Acme", source="cli", checked_by=None)
    assert [e["new_masked"] for e in store.at(db_url).key_events("Acme")] == ["rk_live_…CCCC", "rk_test_…BBBB"]


def test_a_key_stripe_never_accepted_has_no_first_seen_date_nor_age(store_url, make_result):
    """Issue 19.4: a refused key pasted on a tenant gets no first-seen date and no age, and replacing the tenant's
    key with it is shown as "replaced by a key Stripe refuses"."""
    from core.ui.tenant import key_timeline_frame

    rec(make_result, store_url, "Acme", 10, LIVE, [("charge_write", "write", "ok")])
    bad = {"masked": "rk_live_…BADx", "fingerprint": "fp_refused", "mode": "live", "account": None}
    r = rec(make_result, store_url, "Acme", 1, bad, [], "invalid", 0, problem="Stripe does not accept this key.")
    assert r.lifecycle.first_seen_at is None and r.lifecycle.age_days is None and not r.lifecycle.rotation_due
    assert r.lifecycle.replaced == "rk_live_…TEva"
    assert store.at(store_url).key_first_seen("fp_refused") is None
    assert store.at(store_url).key_first_seen("fp_live_A") is not None
    events = store.at(store_url).key_events("Acme")
    frame = key_timeline_frame(events, store.at(store_url).tenant_history("Acme"))
    assert frame["Event"].tolist()[0] == "replaced by a key Stripe refuses"
    # once Stripe accepts it, its age starts at that check
    ok = rec(make_result, store_url, "Acme", 0, bad, [("charge_write", "write", "ok")])
    assert ok.lifecycle.first_seen_at == NOW and ok.lifecycle.age_days == 0
    assert store.at(store_url).key_first_seen("fp_refused") == NOW


def test_migration_0013_keeps_first_seen_for_accepted_checks_only(db_url):
    store.at(db_url).upgrade("0010")
    engine = get_engine(db_url)
    T = lambda s: _ts(s, engine.dialect.name)  # noqa: E731
    checks = [  # id, at, fingerprint, status
        (1, "2025-01-01 10:00:00", "fpNever", "invalid"),
        (2, "2025-01-02 10:00:00", "fpLate", "invalid"),
        (3, "2025-01-03 10:00:00", "fpLate", "unreachable"),
        (4, "2025-01-04 10:00:00", "fpLate", "failing"),
    ]
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO tenants (id, name, slug, archived, created_at) VALUES "
            f"(1, 'Acme', 'acme', false, '{T('2025-01-01 00:00:00')}')"))
        for cid, at, fp, status in checks:
            conn.execute(sa.text(
                "INSERT INTO checks (id, tenant_id, checked_at, source, key_masked, key_fingerprint, key_kind, "
                "key_mode, status, score, n_ok, n_missing, n_excess, n_unknown, n_not_applicable, requests, "
                f"elapsed_s) VALUES (:id, 1, '{T(at)}', 'cli', 'rk_live_…AAAA', :fp, 'restricted', 'live', :status, "
                "0, 0, 0, 0, 0, 0, 1, 1.0)"), {"id": cid, "fp": fp, "status": status})
        for fp, at in (("fpNever", "2025-01-01 10:00:00"), ("fpLate", "2025-01-02 10:00:00")):
            conn.execute(sa.text(
                "INSERT INTO stripe_keys (fingerprint, key_masked, key_mode, first_seen_at) VALUES "
                f"(:fp, 'rk_live_…AAAA', 'live', '{T(at)}')"), {"fp": fp})
    store.dispose_engine(db_url)
    store.at(db_url).upgrade()
    assert store.at(db_url).current_revision() == store.db.newest_revision()
    assert store.at(db_url).key_first_seen("fpNever") is None
    assert store.at(db_url).key_first_seen("fpLate") == datetime(2025, 1, 4, 10, tzinfo=UTC)
