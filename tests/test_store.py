"""The history store: recording, validation and every query, on SQLite and on a real PostgreSQL."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from core import store
from core.engine.result import STATUSES, Row
from core.store.db import get_engine, normalize_url

D0 = datetime(2025, 3, 10, 9, 0, tzinfo=timezone.utc)


def count(url, table):
    with store.connect(url) as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()


def test_upgrade_reaches_head_and_is_idempotent(db_url):
    assert store.current_revision(db_url) is None
    store.upgrade(db_url)
    store.upgrade(db_url)
    assert store.current_revision(db_url) == "0002"
    names = set(sa.inspect(get_engine(db_url)).get_table_names())
    assert {"tenants", "checks", "check_rows", "audit", "alembic_version"} <= names


def test_record_check_round_trip(store_url, make_result):
    res = make_result(
        "attention",
        75,
        [
            Row("Core", "Charges", "charge_read", "read", "read", "ok"),
            Row("Core", "Customers", "customer_write", "write", "read", "missing"),
            Row("Billing", "Invoices", "invoice_write", "none", "write", "excess"),
            Row("Billing", "Plans", "plan_read", "read", "unknown", "unknown",
                reason="429 rate limited after 4 tries"),
            Row("Guide", "Webhooks", None, "none", None, "not_applicable", note="set up elsewhere"),
        ],
        at=datetime(2025, 3, 10, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
        problem="Two permissions are missing.",
    )
    cid = store.record_check(res, "  Acme Café, Inc. ", source="cli", checked_by="ops@pointai", url=store_url)
    got = store.get_check(cid, url=store_url)
    assert got["tenant"] == "Acme Café, Inc." and got["slug"] == "acme-cafe-inc"
    assert got["checked_at"] == datetime(2025, 3, 10, 7, 30, 15, 123456, tzinfo=timezone.utc)
    assert got["checked_at"].tzinfo is not None
    assert (got["source"], got["checked_by"], got["status"], got["score"]) == ("cli", "ops@pointai", "attention", 75)
    assert (got["key_masked"], got["key_kind"], got["key_mode"]) == ("rk_test_…a1b2", "restricted", "test")
    assert got["key_fingerprint"] == "fp_" + "0" * 61
    assert [got[f"n_{v}"] for v in ("ok", "missing", "excess", "unknown", "not_applicable")] == [1, 1, 1, 1, 1]
    assert (got["requests"], got["elapsed_s"], got["account"]) == (12, 1.5, "acct_1TestAccount")
    assert got["problem"] == "Two permissions are missing."
    assert [(r["scope"], r["granted"], r["verdict"]) for r in got["rows"]] == [
        ("charge_read", "read", "ok"),
        ("customer_write", "read", "missing"),
        ("invoice_write", "write", "excess"),
        ("plan_read", "unknown", "unknown"),
        (None, None, "not_applicable"),
    ]
    assert got["rows"][3]["reason"] == "429 rate limited after 4 tries"
    assert got["rows"][0]["resource"] == "Charges" and got["rows"][0]["category"] == "Core"
    t = store.get_tenant("Acme Café, Inc.", url=store_url)
    assert t["account"] == "acct_1TestAccount" and t["last_check_id"] == cid
    assert store.get_check(cid + 1000, url=store_url) is None


@pytest.mark.parametrize(
    "bad, words",
    [
        ("", "empty"),
        ("   \t ", "empty"),
        ("x" * 101, "at most 100"),
        ("Acme\nInc", "control character"),
        ("Acme\x00", "control character"),
        ("Acme\u2028Inc", "control character"),
        (None, "must be text"),
    ],
)
def test_bad_tenant_names_are_refused_with_one_sentence(store_url, make_result, bad, words):
    with pytest.raises(store.StoreInputError) as ei:
        store.record_check(make_result(), bad, source="cli", checked_by=None, url=store_url)
    msg = str(ei.value)
    assert words in msg and msg.endswith(".") and "\n" not in msg
    with pytest.raises(store.StoreInputError):
        store.get_or_create_tenant(bad, url=store_url)
    assert count(store_url, "tenants") == 0 and count(store_url, "checks") == 0


def test_tenant_names_same_slug_are_one_tenant(store_url, make_result):
    a = store.get_or_create_tenant("Acme Inc.", url=store_url)
    b = store.get_or_create_tenant("  acme   INC ", url=store_url)
    assert a["id"] == b["id"] and a["name"] == "Acme Inc."
    c = store.get_or_create_tenant("x" * 100, url=store_url)
    d = store.get_or_create_tenant("東京", url=store_url)
    assert c["slug"] == "x" * 100
    assert d["slug"].startswith("tenant-") and d["name"] == "東京"
    assert store.get_or_create_tenant("東京", url=store_url)["id"] == d["id"]
    assert store.get_tenant(d["slug"], url=store_url)["id"] == d["id"]
    assert [t["name"] for t in store.list_tenants(url=store_url)] == ["Acme Inc.", "x" * 100, "東京"]


def test_source_and_checker_are_validated(store_url, make_result):
    with pytest.raises(store.StoreInputError, match="source 'web'"):
        store.record_check(make_result(), "Acme", source="web", checked_by=None, url=store_url)
    with pytest.raises(store.StoreInputError, match="checker"):
        store.record_check(make_result(), "Acme", source="cli", checked_by="a\nb", url=store_url)
    with pytest.raises(store.StoreInputError, match="status"):
        store.record_check(make_result(status="great"), "Acme", source="cli", checked_by=None, url=store_url)
    assert count(store_url, "tenants") == 0
    for source in store.SOURCES:
        store.record_check(make_result(), "Acme", source=source, checked_by=None, url=store_url)
    assert count(store_url, "checks") == 3


def test_check_and_rows_are_one_transaction(store_url, make_result):
    good = Row("Core", "Charges", "charge_read", "read", "read", "ok")
    broken = Row("Core", "Customers", "customer_read", None, "read", "ok")  # required NOT NULL: the insert fails
    with pytest.raises(sa.exc.IntegrityError):
        store.record_check(make_result(rows=[good, broken]), "Acme", source="cli", checked_by=None, url=store_url)
    assert (count(store_url, "tenants"), count(store_url, "checks"), count(store_url, "check_rows")) == (0, 0, 0)
    cid = store.record_check(make_result(rows=[good]), "Acme", source="cli", checked_by=None, url=store_url)
    with pytest.raises(sa.exc.IntegrityError):
        store.record_check(make_result(rows=[good, broken]), "Acme", source="cli", checked_by=None, url=store_url)
    assert (count(store_url, "checks"), count(store_url, "check_rows")) == (1, 1)
    assert store.get_tenant("Acme", url=store_url)["last_check_id"] == cid


def test_latest_pointer_follows_checked_at_and_account_once_known(store_url, make_result):
    c1 = store.record_check(make_result(at=D0, account=None), "Acme", source="cli", checked_by=None, url=store_url)
    assert store.get_tenant("Acme", url=store_url)["account"] is None
    c2 = store.record_check(make_result(at=D0 + timedelta(days=2), account="acct_NEW"), "Acme", source="cli",
                            checked_by=None, url=store_url)
    # recorded later but checked earlier (e.g. a batch import): not the latest, does not change the account
    c3 = store.record_check(make_result(at=D0 + timedelta(days=1), account="acct_OLD", status="failing"), "Acme",
                            source="batch", checked_by=None, url=store_url)
    t = store.get_tenant("Acme", url=store_url)
    assert (t["last_check_id"], t["last_checked_at"], t["account"]) == (c2, D0 + timedelta(days=2), "acct_NEW")
    assert [h["check_id"] for h in store.tenant_history("Acme", url=store_url)] == [c2, c3, c1]
    assert store.latest_checks(url=store_url)[0]["check_id"] == c2


def seed_triage(url, make_result):
    now = D0 + timedelta(days=30)
    plan = [  # tenant, status, days ago, mode
        ("Healthy Old", "healthy", 20, "live"),
        ("Healthy New", "healthy", 1, "live"),
        ("Failing New", "failing", 2, "test"),
        ("Failing Old", "failing", 9, "live"),
        ("Invalid 100% Co", "invalid", 3, None),
        ("Attention", "attention", 5, "test"),
        ("Incomplete", "incomplete", 4, "live"),
    ]
    for name, status, ago, mode in plan:
        # an older check with another status must not count
        store.record_check(make_result("healthy", 100, at=now - timedelta(days=ago + 1), mode=mode), name,
                           source="batch", checked_by=None, url=url)
        store.record_check(make_result(status, 50, at=now - timedelta(days=ago), mode=mode,
                                       masked=f"rk_{mode or 'x'}_…{ago:04d}"), name, source="dashboard",
                           checked_by="me", url=url)
    store.get_or_create_tenant("Never Checked", url=url)
    store.record_check(make_result("invalid", 0, at=now - timedelta(days=40)), "Archived Co", source="cli",
                       checked_by=None, url=url)
    store.update_tenant("Archived Co", archived=True, url=url)
    return now


def test_latest_checks_triage_order_and_filters(store_url, make_result):
    now = seed_triage(store_url, make_result)
    got = store.latest_checks(now=now, url=store_url)
    assert [(d["tenant"], d["status"]) for d in got] == [
        ("Invalid 100% Co", "invalid"),
        ("Failing Old", "failing"),
        ("Failing New", "failing"),
        ("Incomplete", "incomplete"),
        ("Attention", "attention"),
        ("Healthy Old", "healthy"),
        ("Healthy New", "healthy"),
    ]
    assert got[1]["age_days"] == pytest.approx(9)
    assert [d["tenant"] for d in store.latest_checks("failing", url=store_url)] == ["Failing Old", "Failing New"]
    assert [d["tenant"] for d in store.latest_checks(["healthy", "invalid"], url=store_url)] == [
        "Invalid 100% Co", "Healthy Old", "Healthy New"]
    assert [d["tenant"] for d in store.latest_checks(mode="test", url=store_url)] == ["Failing New", "Attention"]
    assert [d["tenant"] for d in store.latest_checks(stale_days=4.5, now=now, url=store_url)] == [
        "Failing Old", "Attention", "Healthy Old"]
    assert [d["tenant"] for d in store.latest_checks(search="HEALTHY", url=store_url)] == ["Healthy Old", "Healthy New"]
    assert [d["tenant"] for d in store.latest_checks(search="100%", url=store_url)] == ["Invalid 100% Co"]
    assert store.latest_checks(search="1%0", url=store_url) == []  # % is literal, not a wildcard
    assert [d["tenant"] for d in store.latest_checks(search="…0009", url=store_url)] == ["Failing Old"]
    everything = store.latest_checks(include_archived=True, url=store_url)
    assert [d["tenant"] for d in everything][:2] == ["Archived Co", "Invalid 100% Co"]
    assert store.latest_checks(limit=2, url=store_url)[1]["tenant"] == "Failing Old"
    with pytest.raises(store.StoreInputError, match="Unknown status 'bad'"):
        store.latest_checks("bad", url=store_url)


def test_stale_tenants_and_status_counts(store_url, make_result):
    now = seed_triage(store_url, make_result)
    stale = store.stale_tenants(4.5, now=now, url=store_url)
    assert [(d["tenant"], d["status"]) for d in stale] == [
        ("Never Checked", None), ("Healthy Old", "healthy"), ("Failing Old", "failing"), ("Attention", "attention")]
    assert stale[0]["age_days"] is None and stale[1]["age_days"] == pytest.approx(20)
    assert [d["tenant"] for d in store.stale_tenants(30, include_archived=True, now=now, url=store_url)] == [
        "Never Checked", "Archived Co"]
    assert store.status_counts(url=store_url) == {
        "invalid": 1, "failing": 2, "incomplete": 1, "attention": 1, "healthy": 2}
    assert list(store.status_counts(url=store_url)) == list(STATUSES)
    with pytest.raises(store.StoreInputError):
        store.stale_tenants(-1, url=store_url)


def test_tenant_history_newest_first(store_url, make_result):
    ids = [store.record_check(make_result(score=s, at=D0 + timedelta(hours=s)), "Acme", source="cli",
                              checked_by=None, url=store_url) for s in (3, 1, 2)]
    store.record_check(make_result(at=D0), "Other", source="cli", checked_by=None, url=store_url)
    hist = store.tenant_history("acme", url=store_url)
    assert [h["score"] for h in hist] == [3, 2, 1]
    assert [h["check_id"] for h in hist] == [ids[0], ids[2], ids[1]]
    assert store.tenant_history("acme", limit=1, url=store_url)[0]["score"] == 3
    tid = hist[0]["tenant_id"]
    assert len(store.tenant_history(tid, url=store_url)) == 3
    assert store.tenant_history("Nobody", url=store_url) == []


def test_drift_between_consecutive_probing_checks(store_url, make_result):
    def rec(at, rows, status="attention"):
        return store.record_check(make_result(status, at=at, rows=rows), "Acme", source="cli", checked_by=None,
                                  url=store_url)

    a = rec(D0, [("charge_read", "read", "ok"), ("customer_write", "read", "missing"), ("plan_read", "none", "missing"),
                 (None, None, "not_applicable")])
    b = rec(D0 + timedelta(days=1), [("charge_read", "read", "ok"), ("customer_write", "write", "ok"),
                                     ("plan_read", "none", "missing"), ("invoice_read", "read", "ok")])
    rec(D0 + timedelta(days=2), [], status="invalid")  # probed nothing: skipped when pairing
    c = rec(D0 + timedelta(days=3), [("charge_read", "write", "excess"), ("customer_write", "write", "ok"),
                                     ("plan_read", "unknown", "unknown"), ("invoice_read", "read", "ok")])
    store.record_check(make_result(at=D0 + timedelta(days=4), rows=[("charge_read", "none", "missing")]), "Other",
                       source="cli", checked_by=None, url=store_url)
    got = store.drift("Acme", url=store_url)
    assert [
        (d["at"], d["scope"], d["from_granted"], d["to_granted"], d["from_verdict"], d["to_verdict"],
         d["from_check_id"], d["check_id"])
        for d in got
    ] == [
        (D0 + timedelta(days=3), "charge_read", "read", "write", "ok", "excess", b, c),
        (D0 + timedelta(days=3), "plan_read", "none", "unknown", "missing", "unknown", b, c),
        (D0 + timedelta(days=1), "customer_write", "read", "write", "missing", "ok", a, b),
    ]
    assert got[0]["resource"] == "Resource charge_read" and got[0]["at"].tzinfo is not None
    assert len(store.drift("Acme", limit=1, url=store_url)) == 1
    assert store.drift("Other", url=store_url) == [] and store.drift("Nobody", url=store_url) == []


def test_status_mix_and_checks_per_day(store_url, make_result):
    def rec(name, status, at):
        store.record_check(make_result(status, at=at), name, source="cli", checked_by=None, url=store_url)

    day1, day2 = datetime(2025, 3, 1, tzinfo=timezone.utc), datetime(2025, 3, 2, tzinfo=timezone.utc)
    rec("A", "failing", day1 + timedelta(hours=1))
    rec("A", "healthy", day1 + timedelta(hours=23, minutes=59))  # A's last check of day 1: healthy
    rec("B", "failing", day1 + timedelta(hours=12))
    rec("A", "invalid", day2)  # midnight UTC belongs to day 2
    rec("C", "attention", day2 + timedelta(hours=5))
    rec("D", "failing", day2 + timedelta(hours=6))
    store.update_tenant("D", archived=True, url=store_url)
    mix = store.status_mix_per_day(url=store_url)
    z = {s: 0 for s in STATUSES}
    assert mix == [
        {"day": date(2025, 3, 1), **z, "healthy": 1, "failing": 1, "total": 2},
        {"day": date(2025, 3, 2), **z, "invalid": 1, "attention": 1, "total": 2},
    ]
    assert store.status_mix_per_day(start=date(2025, 3, 2), url=store_url) == mix[1:]
    assert store.status_mix_per_day(end=date(2025, 3, 1), url=store_url) == mix[:1]
    assert store.status_mix_per_day(include_archived=True, url=store_url)[1]["failing"] == 1
    assert store.checks_per_day(url=store_url) == [
        {"day": date(2025, 3, 1), "checks": 3, "tenants": 2},
        {"day": date(2025, 3, 2), "checks": 2, "tenants": 2},
    ]
    assert store.checks_per_day(start=date(2025, 3, 2), end=date(2025, 3, 2), include_archived=True,
                                url=store_url) == [{"day": date(2025, 3, 2), "checks": 3, "tenants": 3}]


def test_top_problem_scopes_over_latest_checks(store_url, make_result):
    def rec(name, rows, at):
        store.record_check(make_result(rows=rows, at=at), name, source="cli", checked_by=None, url=store_url)

    # an older check's problems do not count
    rec("A", [("x_write", "none", "missing"), ("y_read", "none", "missing")], D0)
    rec("A", [("x_write", "none", "missing"), ("z_read", "write", "excess")], D0 + timedelta(days=1))
    rec("B", [("x_write", "read", "missing"), ("y_read", "none", "missing"), ("z_read", "write", "excess")], D0)
    rec("C", [("y_read", "none", "missing"), ("q_read", "read", "ok")], D0)
    rec("D", [("w_read", "none", "missing")], D0)
    rec("E", [("x_write", "none", "ok")], D0)
    store.update_tenant("D", archived=True, url=store_url)
    top = store.top_problem_scopes("missing", url=store_url)
    assert [(d["scope"], d["tenants"]) for d in top] == [("x_write", 2), ("y_read", 2)]
    assert top[0]["share"] == pytest.approx(2 / 4) and top[0]["resource"] == "Resource x_write"
    assert [(d["scope"], d["tenants"]) for d in store.top_problem_scopes("excess", url=store_url)] == [("z_read", 2)]
    assert len(store.top_problem_scopes("missing", limit=1, url=store_url)) == 1
    assert ("w_read", 1) in [(d["scope"], d["tenants"]) for d in
                             store.top_problem_scopes("missing", include_archived=True, url=store_url)]
    with pytest.raises(store.StoreInputError, match="missing' or 'excess"):
        store.top_problem_scopes("ok", url=store_url)


def test_score_distribution_of_latest_scores(store_url, make_result):
    for i, score in enumerate([0, 9, 10, 55, 99, 100, 100]):
        store.record_check(make_result(score=score, at=D0), f"T{i}", source="cli", checked_by=None, url=store_url)
    store.record_check(make_result(score=5, at=D0 - timedelta(days=1)), "T6", source="cli", checked_by=None,
                       url=store_url)  # older: T6 still counts as 100
    dist = store.score_distribution(url=store_url)
    assert [(d["from"], d["to"]) for d in dist][:2] == [(0, 9), (10, 19)] and dist[-1]["to"] == 100
    assert [d["tenants"] for d in dist] == [2, 1, 0, 0, 0, 1, 0, 0, 0, 3]
    quarters = store.score_distribution(25, url=store_url)
    assert [(d["from"], d["to"], d["tenants"]) for d in quarters] == [
        (0, 24, 3), (25, 49, 0), (50, 74, 1), (75, 100, 3)]
    with pytest.raises(store.StoreInputError):
        store.score_distribution(0, url=store_url)


def test_update_tenant(store_url, make_result):
    store.get_or_create_tenant("Acme", url=store_url)
    store.get_or_create_tenant("Globex", url=store_url)
    t = store.update_tenant("acme", name="Acme Corp", contact=" ops@acme.test ", notes="VIP",
                            account="acct_1AbC", url=store_url)
    assert (t["name"], t["slug"], t["contact"], t["notes"], t["account"]) == (
        "Acme Corp", "acme-corp", "ops@acme.test", "VIP", "acct_1AbC")
    assert store.get_tenant("Acme", url=store_url) is None
    t = store.update_tenant(t["id"], contact="", notes=None, archived=True, url=store_url)
    assert (t["contact"], t["notes"], t["archived"]) == (None, None, True)
    assert [x["name"] for x in store.list_tenants(url=store_url)] == ["Globex"]
    assert [x["name"] for x in store.list_tenants(include_archived=True, search="CORP", url=store_url)] == ["Acme Corp"]
    with pytest.raises(store.StoreInputError, match="Globex"):
        store.update_tenant("Acme Corp", name="globex!", url=store_url)
    with pytest.raises(store.StoreInputError, match="acct_"):
        store.update_tenant("Acme Corp", account="12345", url=store_url)
    with pytest.raises(store.UnknownTenantError, match="no tenant named 'Nobody'"):
        store.update_tenant("Nobody", notes="x", url=store_url)
    with pytest.raises(store.StoreInputError, match="control character"):
        store.update_tenant("Globex", name="Glo\tbex", url=store_url)
    assert store.update_tenant("Globex", url=store_url)["name"] == "Globex"  # no change is fine


def test_audit_trail(store_url, make_result):
    store.get_or_create_tenant("Acme", url=store_url)
    a1 = store.record_audit("check", who="ann", tenant="Acme", outcome="ok", detail="status healthy", at=D0,
                            url=store_url)
    store.record_audit("view", who="bob", tenant="acme", at=D0 + timedelta(hours=1), url=store_url)
    store.record_audit("sample_data", who="ann", tenant="Not Yet A Tenant", outcome="error",
                       detail="Stripe said 403", at=D0 + timedelta(hours=2), url=store_url)
    store.record_audit("sample_transaction", who=None, at=D0 + timedelta(hours=3), url=store_url)
    assert [e["action"] for e in store.list_audit(url=store_url)] == [
        "sample_transaction", "sample_data", "view", "check"]
    assert [e["action"] for e in store.list_audit(tenant="ACME", url=store_url)] == ["view", "check"]
    assert store.list_audit(tenant="Not Yet A Tenant", url=store_url)[0]["tenant_id"] is None
    assert store.list_audit(tenant="Not Yet A Tenant", url=store_url)[0]["tenant"] == "Not Yet A Tenant"
    assert [e["who"] for e in store.list_audit(who="ann", url=store_url)] == ["ann", "ann"]
    assert [e["action"] for e in store.list_audit(action=["check", "view"], url=store_url)] == ["view", "check"]
    assert [e["action"] for e in store.list_audit(outcome="error", url=store_url)] == ["sample_data"]
    assert [e["action"] for e in store.list_audit(since=D0 + timedelta(hours=1), until=D0 + timedelta(hours=3),
                                                  url=store_url)] == ["sample_data", "view"]
    assert len(store.list_audit(limit=1, url=store_url)) == 1
    first = store.list_audit(action="check", url=store_url)[0]
    assert (first["id"], first["at"], first["tenant"], first["detail"]) == (a1, D0, "Acme", "status healthy")
    with pytest.raises(store.StoreInputError, match="audit action"):
        store.record_audit("Drop Table", url=store_url)
    with pytest.raises(store.StoreInputError, match="tenant name"):
        store.record_audit("view", tenant="", url=store_url)


def test_foreign_keys_cascade(store_url, make_result):
    cid = store.record_check(make_result(), "Acme", source="cli", checked_by=None, url=store_url)
    store.record_audit("check", tenant="Acme", url=store_url)
    with store.connect(store_url, write=True) as conn:
        with pytest.raises(sa.exc.IntegrityError):
            with conn.begin_nested():
                conn.execute(sa.text("INSERT INTO check_rows (check_id, resource, category, required, verdict) "
                                     "VALUES (:c, 'r', 'c', 'read', 'ok')"), {"c": cid + 99})
        conn.execute(sa.text("DELETE FROM tenants"))
    assert (count(store_url, "checks"), count(store_url, "check_rows"), count(store_url, "audit")) == (0, 0, 1)
    assert store.list_audit(url=store_url)[0]["tenant"] == "Acme"  # the audit keeps the name


def test_engine_is_one_per_url_and_postgres_urls_get_psycopg3(tmp_path):
    u = f"sqlite:///{tmp_path / 'x.db'}"
    assert get_engine(u) is get_engine(u)
    assert get_engine(u) is not get_engine(f"sqlite:///{tmp_path / 'y.db'}")
    assert normalize_url("postgresql://u@h:5/db") == "postgresql+psycopg://u@h:5/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_default_url_comes_from_config(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    store.upgrade()
    store.get_or_create_tenant("Acme")
    assert (tmp_path / "env.db").exists()
    assert store.list_tenants()[0]["name"] == "Acme"
    store.dispose_engine()


def test_sqlite_pragmas_and_begin_immediate_for_writes(tmp_path, make_result):
    url = f"sqlite:///{tmp_path / 's.db'}"
    store.upgrade(url)
    engine = get_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    seen: list[str] = []

    def spy(conn, cursor, statement, *a):
        if statement.startswith("BEGIN"):
            seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", spy)
    try:
        store.record_check(make_result(), "Acme", source="cli", checked_by=None, url=url)
        assert seen == ["BEGIN IMMEDIATE"]
        store.latest_checks(url=url)
        assert seen == ["BEGIN IMMEDIATE", "BEGIN"]
    finally:
        sa.event.remove(engine, "before_cursor_execute", spy)
    # WAL: a reader holding a transaction open does not block a writer (nor the reverse).
    with store.connect(url) as reader:
        assert reader.execute(sa.text("SELECT count(*) FROM checks")).scalar() == 1
        store.record_check(make_result(), "Acme", source="cli", checked_by=None, url=url)
        assert reader.execute(sa.text("SELECT count(*) FROM checks")).scalar() == 1  # its snapshot
    assert count(url, "checks") == 2
    store.dispose_engine(url)


def test_orm_session_helper(store_url, make_result):
    from sqlmodel import select

    from core.store import Check, Tenant

    with store.session(store_url, write=True) as s:
        s.add(Tenant(name="Orm Co", slug="orm-co"))
    store.record_check(make_result(at=D0), "Orm Co", source="cli", checked_by=None, url=store_url)
    with store.session(store_url) as s:
        t = s.exec(select(Tenant).where(Tenant.slug == "orm-co")).one()
        c = s.exec(select(Check).where(Check.tenant_id == t.id)).one()
    assert (t.name, t.archived, t.last_check_id) == ("Orm Co", False, c.id)
    assert c.checked_at == D0 and c.checked_at.tzinfo is not None
    with pytest.raises(sa.exc.IntegrityError):  # rolled back as a whole
        with store.session(store_url, write=True) as s:
            s.add(Tenant(name="Other", slug="other"))
            s.flush()
            s.add(Tenant(name="Dup", slug="orm-co"))
    assert [x["slug"] for x in store.list_tenants(url=store_url)] == ["orm-co"]
