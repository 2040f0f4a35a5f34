"""The fleet's daily rollup (0008) equals the raw aggregation of the checks it stands for.

Every history here is written through record_check / update_tenant (the incremental path), or inserted at
revision 0007 and backfilled by the migration; the three fleet readers are then compared with their raw
versions (tests/store/store_oracle.py) over several date ranges, with and without archived tenants.
"""
from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa
import store_oracle
from store_oracle import raw_checks_per_day

from core import store
from core.engine.result import STATUSES
from core.store import Store, rollup
from core.store.checks import _check_values
from core.store.db import Database, get_engine
from core.store.models import checks_t, rollup_days_t, rollup_status_t, tenants_t

READERS = ("status_mix_per_day", "checks_per_day", "unreachable_share")
D0 = datetime(2025, 3, 1, tzinfo=UTC)
WEIGHTS = [1, 2, 1, 2, 4, 2]  # invalid, failing, incomplete, attention, healthy, unreachable


def mismatches(url: str) -> list[tuple]:
    """Every (reader, start, end, include_archived) where the rollup and the raw aggregation disagree."""
    db = Database(url)
    days = [d["day"] for d in raw_checks_per_day(db, include_archived=True)]
    assert days, "no history to compare"
    first, last = days[0], days[-1]
    mid = days[len(days) // 2]
    ranges = [(None, None), (mid, None), (None, mid), (mid, mid), (first, last),
              (first + timedelta(days=1), last - timedelta(days=1)), (last + timedelta(days=1), None),
              (first - timedelta(days=30), first - timedelta(days=1))]
    out = []
    for include_archived in (False, True):
        for lo, hi in ranges:
            for name in READERS:
                got = getattr(Store(db), name)(lo, hi, include_archived=include_archived)
                want = getattr(store_oracle, "raw_" + name)(db, lo, hi, include_archived=include_archived)
                if got != want:
                    out.append((name, lo, hi, include_archived, got, want))
    return out


# the fewest rows that give each status (the rollup counts checks, not rows: keep the writes small)
FEWEST_ROWS: dict[str, list] = {"healthy": [], "attention": [("charge_read", "read", "excess")],
                                "failing": [("charge_read", "none", "missing")],
                                "incomplete": [("charge_read", "unknown", "unknown")], "invalid": [], "unreachable": []}


def rec(url, make_result, tenant: str, status: str, at: datetime, fp: str = "fp_a") -> int:
    return store.at(url).record_check(make_result(status, at=at, rows=FEWEST_ROWS[status], fingerprint=fp), tenant,
                                      source="cli",
                                      checked_by=None)


def random_moment(rnd: random.Random, days: int) -> datetime:
    day = D0 + timedelta(days=rnd.randrange(days))
    edge = rnd.random()
    if edge < 0.1:
        return day  # midnight belongs to this day
    if edge < 0.2:
        return day + timedelta(days=1, microseconds=-1)  # the day's last microsecond
    return day + timedelta(seconds=rnd.randrange(86400), microseconds=rnd.randrange(10**6))


def test_incremental_rollup_equals_raw_after_a_random_history(store_url, make_result):
    rnd = random.Random(13)
    names = [f"Tenant {i:02d}" for i in range(24)]
    events: list[tuple[str, datetime, str]] = []
    for _ in range(320):
        if events and rnd.random() < 0.12:  # same tenant, same instant: the id breaks the tie
            tenant, at, _s = rnd.choice(events)
        else:
            tenant, at = rnd.choice(names), random_moment(rnd, 6)
        events.append((tenant, at, rnd.choices(STATUSES, WEIGHTS)[0]))
    rnd.shuffle(events)  # recorded out of time order
    seen: list[str] = []
    for i, (tenant, at, status) in enumerate(events, start=1):
        rec(store_url, make_result, tenant, status, at, fp=f"fp_{tenant}")
        seen.append(tenant)
        if i % 25 == 0:  # archive or bring back a tenant in between
            who = rnd.choice(seen)
            now_archived = store.at(store_url).get_tenant(who)["archived"]
            store.at(store_url).update_tenant(who, archived=not now_archived)
        if i % 80 == 0:
            assert mismatches(store_url) == [], f"after {i} checks"
    assert sum(t["archived"] for t in store.at(store_url).list_tenants(include_archived=True)) > 0
    assert mismatches(store_url) == []
    per_day = store.at(store_url).checks_per_day(include_archived=True)
    assert sum(d["checks"] for d in per_day) == len(events) and sum(d["unreachable"] for d in per_day) > 0

    # the set-based backfill (migration 0008, bench seeding) gives the same figures as the incremental path
    before = {name: getattr(store.at(store_url), name)(include_archived=True) for name in READERS}
    rollup.rebuild(Database(store_url))
    assert {name: getattr(store.at(store_url), name)(include_archived=True) for name in READERS} == before
    assert mismatches(store_url) == []


def test_the_comparison_notices_a_wrong_rollup_row(store_url, make_result):
    rec(store_url, make_result, "Acme", "healthy", D0 + timedelta(hours=3))
    rec(store_url, make_result, "Globex", "failing", D0 + timedelta(days=1, hours=3))
    assert mismatches(store_url) == []
    with get_engine(store_url).begin() as conn:
        conn.execute(rollup_status_t.update().where(rollup_status_t.c.status == "failing")
                     .values(tenants=rollup_status_t.c.tenants + 1))
    wrong = mismatches(store_url)
    assert wrong and {w[0] for w in wrong} == {"status_mix_per_day"}
    rollup.rebuild(Database(store_url))
    assert mismatches(store_url) == []
    with get_engine(store_url).begin() as conn:
        conn.execute(rollup_days_t.update().where(rollup_days_t.c.day == D0.date()).values(unreachable=1))
    assert {w[0] for w in mismatches(store_url)} == {"checks_per_day", "unreachable_share"}


def test_last_check_of_the_day_whatever_the_order_they_arrive_in(store_url, make_result):
    day = D0.date()
    rec(store_url, make_result, "Acme", "failing", D0 + timedelta(hours=20))
    rec(store_url, make_result, "Acme", "healthy", D0 + timedelta(hours=8))  # older, recorded later: not the end
    rec(store_url, make_result, "Acme", "unreachable", D0 + timedelta(hours=23))  # says nothing about the key
    mix = store.at(store_url).status_mix_per_day()
    assert [(d["day"], d["failing"], d["healthy"], d["total"]) for d in mix] == [(day, 1, 0, 1)]
    at = D0 + timedelta(hours=21)
    rec(store_url, make_result, "Acme", "attention", at)
    rec(store_url, make_result, "Acme", "incomplete", at)  # same instant, larger id: the day's end
    (d,) = store.at(store_url).status_mix_per_day()
    assert (d["incomplete"], d["attention"], d["failing"], d["total"]) == (1, 0, 0, 1)
    assert store.at(store_url).checks_per_day() == [{"day": day, "checks": 5, "tenants": 1, "unreachable": 1}]
    # a day with only unreachable checks has checks but no status mix
    rec(store_url, make_result, "Globex", "unreachable", D0 + timedelta(days=1))
    assert [x["day"] for x in store.at(store_url).status_mix_per_day()] == [day]
    assert store.at(store_url).checks_per_day(start=day + timedelta(days=1)) == [
        {"day": day + timedelta(days=1), "checks": 1, "tenants": 1, "unreachable": 1}]
    assert store.at(store_url).unreachable_share() == {"checks": 6, "unreachable": 2, "share": 2 / 6}
    assert mismatches(store_url) == []


def test_archiving_moves_a_tenant_out_of_the_fleet_figures_and_back(store_url, make_result):
    for h in range(3):
        rec(store_url, make_result, "Acme", ("failing", "unreachable", "healthy")[h], D0 + timedelta(hours=h))
        rec(store_url, make_result, "Acme", "invalid", D0 + timedelta(days=2, hours=h))
    rec(store_url, make_result, "Globex", "attention", D0 + timedelta(hours=5))
    both = store.at(store_url).checks_per_day()
    store.at(store_url).update_tenant("Acme", archived=True)
    assert store.at(store_url).checks_per_day() == [{"day": D0.date(), "checks": 1, "tenants": 1, "unreachable": 0}]
    assert store.at(store_url).checks_per_day(include_archived=True) == both
    assert [d["total"] for d in store.at(store_url).status_mix_per_day()] == [1]
    store.at(store_url).update_tenant("Acme", archived=True)  # no change: nothing moves twice
    store.at(store_url).update_tenant("Acme", notes="still archived")
    assert mismatches(store_url) == []
    rec(store_url, make_result, "Acme", "attention", D0 + timedelta(days=2, hours=9))  # checked while archived
    store.at(store_url).update_tenant("Acme", archived=False)
    assert store.at(store_url).checks_per_day()[0] == both[0]
    assert store.at(store_url).status_mix_per_day()[-1]["attention"] == 1
    assert mismatches(store_url) == []


def test_datetime_bounds_stand_for_their_utc_days(store_url, make_result):
    rec(store_url, make_result, "Acme", "healthy", D0 + timedelta(hours=2))
    rec(store_url, make_result, "Acme", "failing", D0 + timedelta(days=1, hours=2))
    s = store.at(store_url)
    late = D0 + timedelta(hours=23)  # same UTC day as D0, after its check
    assert s.status_mix_per_day(late, late) == s.status_mix_per_day(D0.date(), D0.date())
    assert len(s.status_mix_per_day(late, late)) == 1
    tokyo = timezone(timedelta(hours=9))
    # 08:00 in Tokyo on the 2nd is 23:00 UTC on the 1st: the UTC day counts
    assert s.checks_per_day(datetime(2025, 3, 2, 8, tzinfo=tokyo), datetime(2025, 3, 2, 8, tzinfo=tokyo)) == [
        {"day": D0.date(), "checks": 1, "tenants": 1, "unreachable": 0}]
    assert s.unreachable_share(late)["checks"] == 2


def _insert_history_at_0007(url: str, make_result, rnd: random.Random, n: int) -> None:
    """Tenants and checks inserted as a 0007 database holds them (rows built by record_check's own code)."""
    names = [f"Old {i:02d}" for i in range(15)]
    engine = get_engine(url)
    with engine.begin() as conn:
        ids = {}
        for i, name in enumerate(names):
            ids[name] = conn.execute(tenants_t.insert().values(
                name=name, slug=store.slugify(name), archived=i % 4 == 0, created_at=D0 - timedelta(days=1),
            )).inserted_primary_key[0]
        batch = []
        for _ in range(n):
            name = rnd.choice(names)
            status = rnd.choices(STATUSES, WEIGHTS)[0]
            at = random_moment(rnd, 8)
            values, _rows = _check_values(make_result(status, at=at, rows=FEWEST_ROWS[status]), "batch", None)
            batch.append({"tenant_id": ids[name], **values})
            if rnd.random() < 0.1:  # a twin at the same instant
                batch.append({"tenant_id": ids[name], **values, "status": rnd.choice(STATUSES)})
        conn.execute(checks_t.insert(), batch)


def test_migration_0008_backfills_the_rollup_from_history(db_url, make_result):
    store.at(db_url).upgrade("0007")
    _insert_history_at_0007(db_url, make_result, random.Random(8), 400)
    store.dispose_engine(db_url)
    store.at(db_url).upgrade()
    assert store.at(db_url).current_revision() == store.db.newest_revision()
    with get_engine(db_url).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(rollup_status_t)).scalar() > 0
    assert mismatches(db_url) == []
    # the incremental path carries on from the backfilled rows
    rec(db_url, make_result, "Old 01", "invalid", D0 + timedelta(days=3, hours=23, minutes=59))
    rec(db_url, make_result, "Old 00", "healthy", D0 + timedelta(days=3))  # archived since the seed
    store.at(db_url).update_tenant("Old 02", archived=True)
    assert mismatches(db_url) == []

    # down to 0007 drops the tables; up again backfills them from the same history
    store.db.downgrade(db_url, "0007")
    assert not sa.inspect(get_engine(db_url)).has_table("rollup_days")
    store.dispose_engine(db_url)
    store.at(db_url).upgrade()
    assert mismatches(db_url) == []


def test_concurrent_writers_lose_no_increment(store_url, make_result):
    """Several writers record checks on the same day at once (different tenants, and four sharing one tenant):
    every increment lands, and the shared tenant is counted once per day with its last status; a tenant archived and
    brought back meanwhile moves its counts whole."""
    n_threads, shared, per_thread = 8, 4, 15
    barrier = threading.Barrier(n_threads + 1)
    errors: list[BaseException] = []
    rec(store_url, make_result, "Worker 7", "healthy", D0)  # a tenant to archive and bring back meanwhile

    def toggle() -> None:
        try:
            barrier.wait(timeout=30)
            for k in range(10):
                store.at(store_url).update_tenant("Worker 7", archived=k % 2 == 0)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def work(i: int) -> None:
        rnd = random.Random(i)
        tenant = f"Worker {i}" if i >= shared else "Shared"
        try:
            barrier.wait(timeout=30)
            for _ in range(per_thread):
                at = D0 + timedelta(seconds=rnd.randrange(86400))
                rec(store_url, make_result, tenant, rnd.choices(STATUSES, WEIGHTS)[0], at, fp=f"fp_{i}")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    threads.append(threading.Thread(target=toggle))
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors
    (day,) = store.at(store_url).checks_per_day(include_archived=True)
    assert (day["checks"], day["tenants"]) == (n_threads * per_thread + 1, n_threads - shared + 1)
    assert mismatches(store_url) == []


def test_an_empty_history_has_no_rollup_rows(store_url):
    db = Database(store_url)
    s = Store(db)
    assert s.status_mix_per_day() == [] and s.checks_per_day() == []
    assert s.unreachable_share() == {"checks": 0, "unreachable": 0, "share": 0.0}
    rollup.rebuild(db)
    assert s.checks_per_day() == []
