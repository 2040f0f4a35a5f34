"""The history store: recording, validation and every query, on SQLite and on a real PostgreSQL."""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from core import store
from core.engine.result import KEY_STATUSES, Row
from core.store.db import get_engine, normalize_url

D0 = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)


def count(url, table):
    with store.connect(url) as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()


def test_upgrade_reaches_head_and_is_idempotent(db_url):
    assert store.at(db_url).current_revision() is None
    store.at(db_url).upgrade()
    store.at(db_url).upgrade()
    assert store.at(db_url).current_revision() == store.db.newest_revision()
    names = set(sa.inspect(get_engine(db_url)).get_table_names())
    assert {"tenants", "checks", "check_rows", "audit", "alembic_version"} <= names


def test_record_check_round_trip(store_url, make_result):
    res = make_result(
        "failing",
        15,
        [
            Row("Core", "Charges", "charge_read", "read", "read", "ok"),
            Row("Core", "Customers", "customer_write", "write", "read", "missing"),
            Row("Billing", "Invoices", "invoice_write", "none", "write", "excess"),
            Row("Billing", "Plans", "plan_read", "read", "unknown", "unknown",
                reason="429 rate limited after 4 tries"),
            Row("Guide", "Webhooks", None, "none", None, "not_applicable", note="set up elsewhere"),
        ],
        at=datetime(2025, 3, 10, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
    )
    cid = store.at(store_url).record_check(res, "  Acme Café, Inc. ", source="cli", checked_by="ops@pointai")
    got = store.at(store_url).get_check(cid)
    assert got["tenant"] == "Acme Café, Inc." and got["slug"] == "acme-café-inc"
    assert got["checked_at"] == datetime(2025, 3, 10, 7, 30, 15, 123456, tzinfo=UTC)
    assert got["checked_at"].tzinfo is not None
    assert (got["source"], got["checked_by"], got["status"], got["score"]) == ("cli", "ops@pointai", "failing", 15)
    assert (got["key_masked"], got["key_kind"], got["key_mode"]) == ("rk_test_…a1b2", "restricted", "test")
    assert got["key_fingerprint"] == "fp_" + "0" * 61
    assert [got[f"n_{v}"] for v in ("ok", "missing", "excess", "unknown", "not_applicable")] == [1, 1, 1, 1, 1]
    assert (got["requests"], got["elapsed_s"], got["account"]) == (12, 1.5, "acct_1TestAccount")
    assert got["problem"] is None  # a check Stripe answered has no problem sentence: its rows say it
    assert [(r["scope"], r["granted"], r["verdict"]) for r in got["rows"]] == [
        ("charge_read", "read", "ok"),
        ("customer_write", "read", "missing"),
        ("invoice_write", "write", "excess"),
        ("plan_read", "unknown", "unknown"),
        (None, None, "not_applicable"),
    ]
    assert got["rows"][3]["reason"] == "429 rate limited after 4 tries"
    assert got["rows"][0]["resource"] == "Charges" and got["rows"][0]["category"] == "Core"
    t = store.at(store_url).get_tenant("Acme Café, Inc.")
    assert t["account"] == "acct_1TestAccount" and t["last_check_id"] == cid
    assert store.at(store_url).get_check(cid + 1000) is None


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
        store.at(store_url).record_check(make_result(), bad, source="cli", checked_by=None)
    msg = str(ei.value)
    assert words in msg and msg.endswith(".") and "\n" not in msg
    with pytest.raises(store.StoreInputError):
        store.at(store_url).get_or_create_tenant(bad)
    assert count(store_url, "tenants") == 0 and count(store_url, "checks") == 0


def test_tenant_names_same_slug_are_one_tenant(store_url, make_result):
    a = store.at(store_url).get_or_create_tenant("Acme Inc.")
    b = store.at(store_url).get_or_create_tenant("  acme   INC. ")  # the same name in another case and spacing
    assert a["id"] == b["id"] and a["name"] == "Acme Inc."
    c = store.at(store_url).get_or_create_tenant("x" * 100)
    d = store.at(store_url).get_or_create_tenant("東京")
    e = store.at(store_url).get_or_create_tenant("\U0001F511")  # no letter at all: a hashed slug
    assert c["slug"] == "x" * 100
    assert d["slug"] == "東京" and d["name"] == "東京" and e["slug"].startswith("tenant-")
    assert store.at(store_url).get_or_create_tenant("東京")["id"] == d["id"]
    assert store.at(store_url).get_tenant(d["slug"])["id"] == d["id"]
    assert [t["name"] for t in store.at(store_url).list_tenants()] == ["Acme Inc.", "x" * 100, "東京", "\U0001F511"]


def test_names_differing_in_non_ascii_letters_are_distinct_tenants(store_url, make_result):
    """Issue 9: "北京 Foods", "上海 Foods" and "Foods" were one tenant (one history, one drift)."""
    ids = {}
    for name in ("北京 Foods", "上海 Foods", "Foods", "Café", "Cafe", "Ｆｏｏｄｓ ２", "Straße", "Åre", "Are"):
        store.at(store_url).record_check(make_result(), name, source="cli", checked_by=None)
        ids[name] = store.at(store_url).get_tenant(name)["id"]
    assert len(set(ids.values())) == len(ids)
    for name, tid in ids.items():
        assert len(store.at(store_url).tenant_history(name)) == 1, name
        assert store.at(store_url).get_tenant(store.slugify(name))["id"] == tid, name
    assert store.slugify("北京 Foods") == "北京-foods" and store.slugify("Ｆｏｏｄｓ ２") == "foods-2"
    assert store.slugify("Straße") == "strasse" and store.slugify("STRASSE") == "strasse"


def test_a_name_too_close_to_an_existing_tenant_is_refused_naming_it(store_url, make_result):
    first = store.at(store_url).get_or_create_tenant("Acme Inc.")
    store.at(store_url).record_check(make_result(), "Acme Inc.", source="cli", checked_by=None)
    before = (count(store_url, "tenants"), count(store_url, "checks"))
    for close in ("ACME, INC", "acme-inc", "Acme (Inc)"):
        assert store.at(store_url).name_clash(close) is not None
        with pytest.raises(store.StoreInputError) as ei:
            store.at(store_url).record_check(make_result(), close, source="cli", checked_by=None)
        msg = str(ei.value)
        assert "'Acme Inc.'" in msg and repr(close) in msg and msg.endswith(".") and "\n" not in msg
        with pytest.raises(store.StoreInputError):
            store.at(store_url).get_or_create_tenant(close)
    assert (count(store_url, "tenants"), count(store_url, "checks")) == before
    # the same name in another case or spacing is that tenant; a look-up by the close name still finds it
    assert store.at(store_url).name_clash("ACME   inc.") is None
    assert store.at(store_url).get_or_create_tenant("ACME   inc.")["id"] == first["id"]
    assert store.at(store_url).get_tenant("acme-inc")["id"] == first["id"]
    assert store.at(store_url).name_clash("Brand New") is None


def test_slugify_is_idempotent_for_every_character():
    """A slug names its tenant (URLs carry slugs): slugify(slugify(x)) == slugify(x) for every code point."""
    for cp in range(0x21, 0x30000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        try:
            s = store.slugify(f"a{chr(cp)}b")
        except store.StoreInputError:
            continue
        assert store.slugify(s) == s, hex(cp)


def test_source_and_checker_are_validated(store_url, make_result):
    with pytest.raises(store.StoreInputError, match="source 'web'"):
        store.at(store_url).record_check(make_result(), "Acme", source="web", checked_by=None)
    with pytest.raises(store.StoreInputError, match="checker"):
        store.at(store_url).record_check(make_result(), "Acme", source="cli", checked_by="a\nb")
    with pytest.raises(store.StoreInputError, match="status"):
        # a status no check has (forged: the store refuses it anyway)
        store.at(store_url).record_check(replace(make_result(), status="great"), "Acme", source="cli",
                                         checked_by=None)
    assert count(store_url, "tenants") == 0
    for source in store.SOURCES:
        store.at(store_url).record_check(make_result(), "Acme", source=source, checked_by=None)
    assert count(store_url, "checks") == len(store.SOURCES) == 4  # 0016: "key source"


def test_check_and_rows_are_one_transaction(store_url, make_result):
    good = Row("Core", "Charges", "charge_read", "read", "read", "ok")
    broken = Row("Core", "Customers", "customer_read", None, "read", "ok")  # required NOT NULL: the insert fails
    forged = replace(make_result(rows=[good]), rows=[good, broken])  # no check has it: forged for the database
    with pytest.raises(sa.exc.IntegrityError):
        store.at(store_url).record_check(forged, "Acme", source="cli", checked_by=None)
    assert (count(store_url, "tenants"), count(store_url, "checks"), count(store_url, "check_rows")) == (0, 0, 0)
    cid = store.at(store_url).record_check(make_result(rows=[good]), "Acme", source="cli", checked_by=None)
    with pytest.raises(sa.exc.IntegrityError):
        store.at(store_url).record_check(forged, "Acme", source="cli", checked_by=None)
    assert (count(store_url, "checks"), count(store_url, "check_rows")) == (1, 1)
    assert store.at(store_url).get_tenant("Acme")["last_check_id"] == cid


def test_latest_pointer_follows_checked_at_and_account_once_known(store_url, make_result):
    c1 = store.at(store_url).record_check(make_result(at=D0, account=None), "Acme", source="cli", checked_by=None)
    assert store.at(store_url).get_tenant("Acme")["account"] is None
    c2 = store.at(store_url).record_check(make_result(at=D0 + timedelta(days=2), account="acct_NEW"), "Acme",
        source="cli",
                            checked_by=None)
    # recorded later but checked earlier (e.g. a batch import): not the latest, does not change the account
    c3 = store.at(store_url).record_check(make_result(at=D0 + timedelta(days=1), account="acct_OLD",
        status="failing"), "Acme",
                            source="batch", checked_by=None)
    t = store.at(store_url).get_tenant("Acme")
    assert (t["last_check_id"], t["last_checked_at"], t["account"]) == (c2, D0 + timedelta(days=2), "acct_NEW")
    assert [h["check_id"] for h in store.at(store_url).tenant_history("Acme")] == [c2, c3, c1]
    assert store.at(store_url).latest_checks()[0]["check_id"] == c2


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
        store.at(url).record_check(make_result("healthy", 100, at=now - timedelta(days=ago + 1), mode=mode), name,
                           source="batch", checked_by=None)
        store.at(url).record_check(make_result(status, at=now - timedelta(days=ago), mode=mode,
                                       masked=f"rk_{mode or 'x'}_…{ago:04d}"), name, source="dashboard",
                           checked_by="me")
    store.at(url).get_or_create_tenant("Never Checked")
    store.at(url).record_check(make_result("invalid", 0, at=now - timedelta(days=40)), "Archived Co", source="cli",
                       checked_by=None)
    store.at(url).update_tenant("Archived Co", archived=True)
    return now


def test_latest_checks_triage_order_and_filters(store_url, make_result):
    # order="status": the order before impact (tests/app/test_triage_impact.py holds the default one)
    now = seed_triage(store_url, make_result)
    got = store.at(store_url).latest_checks(now=now, order="status")
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
    assert [d["tenant"] for d in store.at(store_url).latest_checks("failing", order="status")] == [
        "Failing Old", "Failing New"]
    assert [d["tenant"] for d in store.at(store_url).latest_checks(["healthy", "invalid"], order="status")] == [
        "Invalid 100% Co", "Healthy Old", "Healthy New"]
    assert [d["tenant"] for d in store.at(store_url).latest_checks(mode="test", order="status")] == [
        "Failing New", "Attention"]
    assert [d["tenant"] for d in store.at(store_url).latest_checks(stale_days=4.5, now=now, order="status")] == [
        "Failing Old", "Attention", "Healthy Old"]
    assert [d["tenant"] for d in store.at(store_url).latest_checks(search="HEALTHY", order="status")] == [
        "Healthy Old", "Healthy New"]
    assert [d["tenant"] for d in store.at(store_url).latest_checks(search="100%")] == ["Invalid 100% Co"]
    assert store.at(store_url).latest_checks(search="1%0") == []  # % is literal, not a wildcard
    assert [d["tenant"] for d in store.at(store_url).latest_checks(search="…0009")] == ["Failing Old"]
    everything = store.at(store_url).latest_checks(include_archived=True, order="status")
    assert [d["tenant"] for d in everything][:2] == ["Archived Co", "Invalid 100% Co"]
    assert store.at(store_url).latest_checks(limit=2, order="status")[1]["tenant"] == "Failing Old"
    with pytest.raises(store.StoreInputError, match="Unknown status 'bad'"):
        store.at(store_url).latest_checks("bad")


def test_stale_tenants_and_status_counts(store_url, make_result):
    now = seed_triage(store_url, make_result)
    stale = store.at(store_url).stale_tenants(4.5, now=now)
    assert [(d["tenant"], d["status"]) for d in stale] == [
        ("Never Checked", None), ("Healthy Old", "healthy"), ("Failing Old", "failing"), ("Attention", "attention")]
    assert stale[0]["age_days"] is None and stale[1]["age_days"] == pytest.approx(20)
    assert [d["tenant"] for d in store.at(store_url).stale_tenants(30, include_archived=True, now=now)] == [
        "Never Checked", "Archived Co"]
    assert store.at(store_url).status_counts() == {
        "invalid": 1, "failing": 2, "incomplete": 1, "attention": 1, "healthy": 2}
    assert list(store.at(store_url).status_counts()) == list(KEY_STATUSES)
    with pytest.raises(store.StoreInputError):
        store.at(store_url).stale_tenants(-1)


def test_tenant_history_newest_first(store_url, make_result):
    ids = [store.at(store_url).record_check(make_result(score=s, at=D0 + timedelta(hours=s)), "Acme", source="cli",
                              checked_by=None) for s in (3, 1, 2)]
    store.at(store_url).record_check(make_result(at=D0), "Other", source="cli", checked_by=None)
    hist = store.at(store_url).tenant_history("acme")
    assert [h["score"] for h in hist] == [3, 2, 1]
    assert [h["check_id"] for h in hist] == [ids[0], ids[2], ids[1]]
    assert store.at(store_url).tenant_history("acme", limit=1)[0]["score"] == 3
    tid = hist[0]["tenant_id"]
    assert len(store.at(store_url).tenant_history(tid)) == 3
    assert store.at(store_url).tenant_history("Nobody") == []


def test_drift_between_consecutive_probing_checks(store_url, make_result):
    def rec(at, rows, status=None):
        return store.at(store_url).record_check(make_result(status, at=at, rows=rows), "Acme", source="cli",
            checked_by=None)

    a = rec(D0, [("charge_read", "read", "ok"), ("customer_write", "read", "missing"), ("plan_read", "none", "missing"),
                 (None, None, "not_applicable")])
    b = rec(D0 + timedelta(days=1), [("charge_read", "read", "ok"), ("customer_write", "write", "ok"),
                                     ("plan_read", "none", "missing"), ("invoice_read", "read", "ok")])
    rec(D0 + timedelta(days=2), [], status="invalid")  # probed nothing: skipped when pairing
    c = rec(D0 + timedelta(days=3), [("charge_read", "write", "excess"), ("customer_write", "write", "ok"),
                                     ("plan_read", "unknown", "unknown"), ("invoice_read", "read", "ok")])
    store.at(store_url).record_check(make_result(at=D0 + timedelta(days=4), rows=[("charge_read", "none",
        "missing")]), "Other",
                       source="cli", checked_by=None)
    got = store.at(store_url).drift("Acme")
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
    assert len(store.at(store_url).drift("Acme", limit=1)) == 1
    assert store.at(store_url).drift("Other") == [] and store.at(store_url).drift("Nobody") == []


def test_status_mix_and_checks_per_day(store_url, make_result):
    def rec(name, status, at):
        store.at(store_url).record_check(make_result(status, at=at), name, source="cli", checked_by=None)

    day1, day2 = datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC)
    rec("A", "failing", day1 + timedelta(hours=1))
    rec("A", "healthy", day1 + timedelta(hours=23, minutes=59))  # A's last check of day 1: healthy
    rec("B", "failing", day1 + timedelta(hours=12))
    rec("A", "invalid", day2)  # midnight UTC belongs to day 2
    rec("C", "attention", day2 + timedelta(hours=5))
    rec("D", "failing", day2 + timedelta(hours=6))
    store.at(store_url).update_tenant("D", archived=True)
    mix = store.at(store_url).status_mix_per_day()
    z = {s: 0 for s in KEY_STATUSES}
    assert mix == [
        {"day": date(2025, 3, 1), **z, "healthy": 1, "failing": 1, "total": 2},
        {"day": date(2025, 3, 2), **z, "invalid": 1, "attention": 1, "total": 2},
    ]
    assert store.at(store_url).status_mix_per_day(start=date(2025, 3, 2)) == mix[1:]
    assert store.at(store_url).status_mix_per_day(end=date(2025, 3, 1)) == mix[:1]
    assert store.at(store_url).status_mix_per_day(include_archived=True)[1]["failing"] == 1
    assert store.at(store_url).checks_per_day() == [
        {"day": date(2025, 3, 1), "checks": 3, "tenants": 2, "unreachable": 0},
        {"day": date(2025, 3, 2), "checks": 2, "tenants": 2, "unreachable": 0},
    ]
    assert store.at(store_url).checks_per_day(start=date(2025, 3, 2), end=date(2025, 3, 2), include_archived=True) == [
        {"day": date(2025, 3, 2), "checks": 3, "tenants": 3, "unreachable": 0}]


def test_top_problem_scopes_over_latest_checks(store_url, make_result):
    def rec(name, rows, at):
        store.at(store_url).record_check(make_result(rows=rows, at=at), name, source="cli", checked_by=None)

    # an older check's problems do not count
    rec("A", [("x_write", "none", "missing"), ("y_read", "none", "missing")], D0)
    rec("A", [("x_write", "none", "missing"), ("z_read", "write", "excess")], D0 + timedelta(days=1))
    rec("B", [("x_write", "read", "missing"), ("y_read", "none", "missing"), ("z_read", "write", "excess")], D0)
    rec("C", [("y_read", "none", "missing"), ("q_read", "read", "ok")], D0)
    rec("D", [("w_read", "none", "missing")], D0)
    rec("E", [("x_write", "none", "ok")], D0)
    store.at(store_url).update_tenant("D", archived=True)
    top = store.at(store_url).top_problem_scopes("missing")
    assert [(d["scope"], d["tenants"]) for d in top] == [("x_write", 2), ("y_read", 2)]
    assert top[0]["share"] == pytest.approx(2 / 4) and top[0]["resource"] == "Resource x_write"
    assert [(d["scope"], d["tenants"]) for d in store.at(store_url).top_problem_scopes("excess")] == [("z_read", 2)]
    assert len(store.at(store_url).top_problem_scopes("missing", limit=1)) == 1
    assert ("w_read", 1) in [(d["scope"], d["tenants"]) for d in
                             store.at(store_url).top_problem_scopes("missing", include_archived=True)]
    with pytest.raises(store.StoreInputError, match="missing' or 'excess"):
        store.at(store_url).top_problem_scopes("ok")


def test_score_distribution_of_latest_scores(store_url, make_result):
    for i, score in enumerate([0, 9, 10, 55, 99, 100, 100]):
        store.at(store_url).record_check(make_result(score=score, at=D0), f"T{i}", source="cli", checked_by=None)
    store.at(store_url).record_check(make_result(score=5, at=D0 - timedelta(days=1)), "T6", source="cli",
        checked_by=None)  # older: T6 still counts as 100
    dist = store.at(store_url).score_distribution()
    assert [(d["from"], d["to"]) for d in dist][:2] == [(0, 9), (10, 19)] and dist[-1]["to"] == 100
    assert [d["tenants"] for d in dist] == [2, 1, 0, 0, 0, 1, 0, 0, 0, 3]
    quarters = store.at(store_url).score_distribution(25)
    assert [(d["from"], d["to"], d["tenants"]) for d in quarters] == [
        (0, 24, 3), (25, 49, 0), (50, 74, 1), (75, 100, 3)]
    with pytest.raises(store.StoreInputError):
        store.at(store_url).score_distribution(0)


def test_update_tenant(store_url, make_result):
    store.at(store_url).get_or_create_tenant("Acme")
    store.at(store_url).get_or_create_tenant("Globex")
    t = store.at(store_url).update_tenant("acme", name="Acme Corp", contact=" ops@acme.test ", notes="VIP",
                            account="acct_1AbC")
    assert (t["name"], t["slug"], t["contact"], t["notes"], t["account"]) == (
        "Acme Corp", "acme-corp", "ops@acme.test", "VIP", "acct_1AbC")
    assert store.at(store_url).get_tenant("Acme") is None
    t = store.at(store_url).update_tenant(t["id"], contact="", notes=None, archived=True)
    assert (t["contact"], t["notes"], t["archived"]) == (None, None, True)
    assert [x["name"] for x in store.at(store_url).list_tenants()] == ["Globex"]
    assert [x["name"] for x in store.at(store_url).list_tenants(include_archived=True, search="CORP")] == ["Acme Corp"]
    with pytest.raises(store.StoreInputError, match="Globex"):
        store.at(store_url).update_tenant("Acme Corp", name="globex!")
    with pytest.raises(store.StoreInputError, match="acct_"):
        store.at(store_url).update_tenant("Acme Corp", account="12345")
    with pytest.raises(store.UnknownTenantError, match="no tenant named 'Nobody'"):
        store.at(store_url).update_tenant("Nobody", notes="x")
    with pytest.raises(store.StoreInputError, match="control character"):
        store.at(store_url).update_tenant("Globex", name="Glo\tbex")
    assert store.at(store_url).update_tenant("Globex")["name"] == "Globex"  # no change is fine


def test_audit_trail(store_url, make_result):
    store.at(store_url).get_or_create_tenant("Acme")
    a1 = store.at(store_url).record_audit("check", who="ann", tenant="Acme", outcome="ok", detail="status healthy",
        at=D0)
    store.at(store_url).record_audit("view", who="bob", tenant="acme", at=D0 + timedelta(hours=1))
    store.at(store_url).record_audit("sample_data", who="ann", tenant="Not Yet A Tenant", outcome="error",
                       detail="Stripe said 403", at=D0 + timedelta(hours=2))
    store.at(store_url).record_audit("sample_transaction", who=None, at=D0 + timedelta(hours=3))
    assert [e["action"] for e in store.at(store_url).list_audit()] == [
        "sample_transaction", "sample_data", "view", "check"]
    assert [e["action"] for e in store.at(store_url).list_audit(tenant="ACME")] == ["view", "check"]
    assert store.at(store_url).list_audit(tenant="Not Yet A Tenant")[0]["tenant_id"] is None
    assert store.at(store_url).list_audit(tenant="Not Yet A Tenant")[0]["tenant"] == "Not Yet A Tenant"
    assert [e["who"] for e in store.at(store_url).list_audit(who="ann")] == ["ann", "ann"]
    assert [e["action"] for e in store.at(store_url).list_audit(action=["check", "view"])] == ["view", "check"]
    assert [e["action"] for e in store.at(store_url).list_audit(outcome="error")] == ["sample_data"]
    assert [e["action"] for e in store.at(store_url).list_audit(since=D0 + timedelta(hours=1),
        until=D0 + timedelta(hours=3))] == ["sample_data", "view"]
    assert len(store.at(store_url).list_audit(limit=1)) == 1
    first = store.at(store_url).list_audit(action="check")[0]
    assert (first["id"], first["at"], first["tenant"], first["detail"]) == (a1, D0, "Acme", "status healthy")
    with pytest.raises(store.StoreInputError, match="audit action"):
        store.at(store_url).record_audit("Drop Table")
    with pytest.raises(store.StoreInputError, match="tenant name"):
        store.at(store_url).record_audit("view", tenant="")


def test_foreign_keys_cascade(store_url, make_result):
    cid = store.at(store_url).record_check(make_result(), "Acme", source="cli", checked_by=None)
    store.at(store_url).record_audit("check", tenant="Acme")
    with store.connect(store_url, write=True) as conn:
        with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
            conn.execute(sa.text("INSERT INTO check_rows (check_id, resource, category, required, verdict) "
                                 "VALUES (:c, 'r', 'c', 'read', 'ok')"), {"c": cid + 99})
        conn.execute(sa.text("DELETE FROM tenants"))
    assert (count(store_url, "checks"), count(store_url, "check_rows"), count(store_url, "audit")) == (0, 0, 1)
    assert store.at(store_url).list_audit()[0]["tenant"] == "Acme"  # the audit keeps the name


def test_engine_is_one_per_url_and_postgres_urls_get_psycopg3(tmp_path):
    u = f"sqlite:///{tmp_path / 'x.db'}"
    assert get_engine(u) is get_engine(u)
    assert get_engine(u) is not get_engine(f"sqlite:///{tmp_path / 'y.db'}")
    assert normalize_url("postgresql://u@h:5/db") == "postgresql+psycopg://u@h:5/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_the_real_database_comes_from_the_settings_and_nothing_defaults_to_it(tmp_path, monkeypatch):
    import inspect

    from core import runtime
    from core.config import settings
    from core.store import Store, audit, checks, rules, tenants

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    s = runtime.real(settings()).store
    s.get_or_create_tenant("Acme")
    assert (tmp_path / "env.db").exists()
    assert s.list_tenants()[0]["name"] == "Acme"
    s.db.dispose()
    # no store function picks a database by itself: each takes the Database first, and none a URL; a Store's
    # queries use the Store's own Database and take neither
    for module in (tenants, checks, audit, rules):
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            params = inspect.signature(fn).parameters
            assert "url" not in params, f"{module.__name__}.{name} takes a URL"
            if "db" in params:
                assert list(params)[0] == "db" and params["db"].default is inspect.Parameter.empty, name
    methods = [(n, f) for n, f in inspect.getmembers(Store, inspect.isfunction) if n != "__init__"]
    assert len(methods) > 60
    for name, fn in methods:
        params = inspect.signature(fn).parameters
        assert "url" not in params and "db" not in params, f"Store.{name} takes a database"


def test_sqlite_pragmas_and_begin_immediate_for_writes(tmp_path, make_result):
    url = f"sqlite:///{tmp_path / 's.db'}"
    store.at(url).upgrade()
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
        store.at(url).record_check(make_result(), "Acme", source="cli", checked_by=None)
        # the tenant's history is read first, outside the write lock (docs/store.md, "A check's statements")
        assert seen == ["BEGIN", "BEGIN IMMEDIATE"]
        store.at(url).latest_checks()
        assert seen == ["BEGIN", "BEGIN IMMEDIATE", "BEGIN"]
    finally:
        sa.event.remove(engine, "before_cursor_execute", spy)
    # WAL: a reader holding a transaction open does not block a writer (nor the reverse).
    with store.connect(url) as reader:
        assert reader.execute(sa.text("SELECT count(*) FROM checks")).scalar() == 1
        store.at(url).record_check(make_result(), "Acme", source="cli", checked_by=None)
        assert reader.execute(sa.text("SELECT count(*) FROM checks")).scalar() == 1  # its snapshot
    assert count(url, "checks") == 2
    store.dispose_engine(url)


def test_orm_session_helper(store_url, make_result):
    from sqlmodel import select

    from core.store import Check, Tenant

    with store.at(store_url).db.session(write=True) as s:
        s.add(Tenant(name="Orm Co", slug="orm-co"))
    store.at(store_url).record_check(make_result(at=D0), "Orm Co", source="cli", checked_by=None)
    with store.at(store_url).db.session() as s:
        t = s.exec(select(Tenant).where(Tenant.slug == "orm-co")).one()
        c = s.exec(select(Check).where(Check.tenant_id == t.id)).one()
    assert (t.name, t.archived, t.last_check_id) == ("Orm Co", False, c.id)
    assert c.checked_at == D0 and c.checked_at.tzinfo is not None
    with pytest.raises(sa.exc.IntegrityError):  # rolled back as a whole
        with store.at(store_url).db.session(write=True) as s:
            s.add(Tenant(name="Other", slug="other"))
            s.flush()
            s.add(Tenant(name="Dup", slug="orm-co"))
    assert [x["slug"] for x in store.at(store_url).list_tenants()] == ["orm-co"]


def test_tenant_names_lists_name_and_slug_by_name_without_archived(store_url, make_result):
    s = store.at(store_url)
    for name in ("beta Foods", "Alpha Ltd", "Zed"):
        s.get_or_create_tenant(name)
    s.record_check(make_result(), "Zed", source="cli", checked_by=None)
    s.update_tenant("Zed", archived=True)
    assert s.tenant_names() == [{"name": "Alpha Ltd", "slug": "alpha-ltd"},
                                {"name": "beta Foods", "slug": "beta-foods"}]
    assert [t["name"] for t in s.tenant_names(include_archived=True)] == ["Alpha Ltd", "beta Foods", "Zed"]
    assert [t["name"] for t in s.tenant_names(include_archived=True)] == [
        t["name"] for t in s.list_tenants(include_archived=True)]
