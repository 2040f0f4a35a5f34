"""The latest check's copies on the tenant row and the latest_problems counters (0010) equal what the latest
checks themselves say.

Histories are written through record_check / update_tenant (the incremental path: checks out of time order, ties
at the same instant, unreachable checks that never become latest, invalid checks with no rows, shared keys,
archive toggles), or inserted at revision 0009 and backfilled by migration 0010. The readers are then compared
with raw computations: the copies with a join to the checks, top_problem_scopes / status_counts /
score_distribution with their raw versions in tests/store/store_oracle.py (which read the latest checks and their rows),
latest_page with latest_checks' unsliced list (which orders and filters by the checks' own columns),
lifecycle_counts with that list's flags, and the latest pointer itself with a Python pass over every check.
"""
from __future__ import annotations

import functools
import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import store_oracle

from core import store
from core.engine.result import STATUSES, Row
from core.store import Store, latest
from core.store.checks import _check_values
from core.store.db import Database, get_engine
from core.store.latest import LATEST_COLUMNS
from core.store.models import check_rows_t, checks_t, key_tenants_t, latest_problems_t, tenants_t
from core.store.triage import FLAGS

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
WEIGHTS = [1, 2, 1, 2, 3, 2]  # invalid, failing, incomplete, attention, healthy, unreachable
SCOPES = ["charge_read", "charge_write", "customer_read", "customer_write", "refund_write", "webhook_read",
          "payout_read"]
FILTERS: list[dict] = [
    {}, {"status": "failing"}, {"status": ["invalid", "attention"]}, {"mode": "live"}, {"stale_days": 3},
    {"search": "tenant 0"}, {"search": "…k2"}, {"flag": "shared_key"}, {"flag": "mode_changed"},
    {"flag": ["rotation_due", "shared_key"]}, {"status": "healthy", "mode": "test", "stale_days": 1},
    {"worse_since": NOW - timedelta(days=1)}, {"missing": "charge_read"}, {"excess": "customer_read", "mode": "live"},
    {"order": "status"}, {"worse_since": NOW - timedelta(days=3), "flag": "shared_key"},
]


def summary_mismatches(conn) -> list[tuple]:
    """0015: each tenant's summary, streak and account signal against the history walked here in time order."""
    out: list[tuple] = []
    history: dict[int, list[tuple]] = {}
    for cid, tid, at, status in conn.execute(sa.select(checks_t.c.id, checks_t.c.tenant_id, checks_t.c.checked_at,
                                                       checks_t.c.status)):
        history.setdefault(tid, []).append((at, cid, status))
    t = tenants_t.c
    for tid, last, summary, broken, healthy, worse in conn.execute(
            sa.select(t.id, t.last_check_id, t.last_summary, t.broken_since, t.last_healthy_at, t.worse_at)):
        want_broken = want_healthy = want_worse = prev = None
        for at, _, status in sorted(history.get(tid, [])):
            if status == "unreachable":
                continue
            if status == "healthy":
                want_broken, want_healthy, want_worse = None, at, None
            else:
                want_broken = want_broken or at
                if prev is None or STATUSES.index(status) < STATUSES.index(prev):
                    want_worse = at
            prev = status
        if (broken, healthy, worse) != (want_broken, want_healthy, want_worse):
            out.append(("streak", tid, (broken, healthy, worse), (want_broken, want_healthy, want_worse)))
        if last is not None:
            check = conn.execute(sa.select(checks_t.c.status, checks_t.c.refused, checks_t.c.key_kind)
                                 .where(checks_t.c.id == last)).one()
            rows = [dict(r._mapping) for r in conn.execute(
                sa.select(check_rows_t.c.verdict, check_rows_t.c.resource).where(check_rows_t.c.check_id == last)
                .order_by(check_rows_t.c.id))]
            if summary != latest.summary_of(check.status, check.refused, check.key_kind, rows):
                out.append(("summary", tid, summary))
    return out


def random_result(make_result, rnd: random.Random, at: datetime):
    status = rnd.choices(STATUSES, WEIGHTS)[0]
    rows: list = []
    if status not in ("invalid", "unreachable"):  # an invalid or unreachable check has no grid
        for scope in rnd.sample(SCOPES, rnd.randrange(1, 6)):
            verdict = rnd.choice(["ok", "missing", "missing", "excess", "unknown"])
            rows.append((scope, "unknown" if verdict == "unknown" else "read", verdict))
        if rnd.random() < 0.3:  # a guide item with no permission: never counted
            rows.append(Row(category="Guide", resource="Webhook endpoint", scope=None, required="read",
                            granted="none", verdict="missing"))
        if rnd.random() < 0.2 and rows:  # the same problem twice in one check counts once
            rows.append(rows[0])
    key = rnd.randrange(12)  # some keys shared by several tenants, some seen for one tenant only
    mode = rnd.choice(["live", "test"])
    fingerprint = None if rnd.random() < 0.08 else f"fp_{key:061d}"  # a key too malformed to fingerprint
    # the status and score are the engine's for these rows (a check Stripe answered), else invalid or unreachable
    return make_result(status if not rows else None, None, rows, at=at, mode=mode, masked=f"rk_{mode}_…k{key}",
                       fingerprint=fingerprint, account=rnd.choice([None, "acct_1", "acct_2"]))


def random_history(url: str, make_result, rnd: random.Random, n: int, *, tenants: int = 14) -> None:
    s = store.at(url)
    names = [f"Tenant {i:02d}" for i in range(tenants)]
    events: list[tuple[str, datetime]] = []
    for i in range(1, n + 1):
        if events and rnd.random() < 0.1:  # same tenant, same instant: the larger id is the latest
            tenant, at = rnd.choice(events)
        else:
            tenant, at = rnd.choice(names), NOW - timedelta(days=rnd.randrange(8), seconds=rnd.randrange(86400))
        events.append((tenant, at))
        s.record_check(random_result(make_result, rnd, at), tenant, source="cli", checked_by=None)
        if i % 17 == 0:  # archive or bring back a tenant in between
            who = rnd.choice(events)[0]
            s.update_tenant(who, archived=not s.get_tenant(who)["archived"])
        if i % 29 == 0:
            s.update_tenant(rnd.choice(events)[0], expected_mode=rnd.choice([None, "live", "test"]))


def expected_latest(conn) -> dict[int, int | None]:
    """Each tenant's latest check computed in Python: the newest (checked_at, id) Stripe answered."""
    out: dict[int, int | None] = {tid: None for (tid,) in conn.execute(sa.select(tenants_t.c.id))}
    best: dict[int, tuple] = {}
    for cid, tid, at, status in conn.execute(
            sa.select(checks_t.c.id, checks_t.c.tenant_id, checks_t.c.checked_at, checks_t.c.status)):
        if status != "unreachable" and (tid not in best or (at, cid) > best[tid]):
            best[tid] = (at, cid)
            out[tid] = cid
    return out


def stored_mismatches(conn, key_tenants: dict[str, set[int]]) -> list[tuple]:
    """Where the stored copies disagree with the checks: the key_tenants counts, the summaries, and each tenant
    row's latest pointer and its copies of the latest check's columns."""
    out: list[tuple] = []
    t, c = tenants_t, checks_t
    copies = [t.c[name] for name in LATEST_COLUMNS]
    originals = [c.c[col] for col in LATEST_COLUMNS.values()]
    want_latest = expected_latest(conn)
    counted = dict(conn.execute(sa.select(key_tenants_t.c.fingerprint, key_tenants_t.c.tenants)
                                .where(key_tenants_t.c.tenants != 0)).all())
    if counted != {fp: len(ts) for fp, ts in key_tenants.items()}:
        out.append(("key_tenants", counted, key_tenants))
    out += summary_mismatches(conn)
    q = sa.select(t.c.id, t.c.last_check_id, t.c.last_checked_at, c.c.checked_at, *copies, *originals).select_from(
        t.outerjoin(c, c.c.id == t.c.last_check_id))
    n = len(copies)
    for row in conn.execute(q):
        tid, last, last_at, at, vals = row[0], row[1], row[2], row[3], tuple(row[4:])
        if last != want_latest[tid]:
            out.append(("latest pointer", tid, last, want_latest[tid]))
        if last_at != at or vals[:n] != vals[n:]:
            out.append(("copies", tid, (last_at, *vals[:n]), (at, *vals[n:])))
    return out


def counter_mismatches(db: Database, ia: bool) -> list[tuple]:
    """The counter-backed queries against their raw twins in tests/store/store_oracle.py (computed from the checks)."""
    checks = [
        ("status_counts", lambda ia, f: f(include_archived=ia), "status_counts"),
        ("score_distribution/10", lambda ia, f: f(10, include_archived=ia), "score_distribution"),
        ("score_distribution/7", lambda ia, f: f(7, include_archived=ia), "score_distribution"),
    ]
    for kind in latest.KINDS:
        for limit in (2, 100):
            checks.append((f"top_problem_scopes/{kind}/{limit}",
                           lambda ia, f, kind=kind, limit=limit: f(kind, limit, include_archived=ia),
                           "top_problem_scopes"))
    out: list[tuple] = []
    for label, call, name in checks:
        raw = functools.partial(getattr(store_oracle, "raw_" + name), db)
        got, want = call(ia, getattr(Store(db), name)), call(ia, raw)
        if got != want:
            out.append((label, ia, got, want))
    return out


def latest_row_mismatches(db: Database, ia: bool, key_tenants: dict[str, set[int]]) -> list[tuple]:
    """The latest checks' flags (account changed, shared key) and the lifecycle counts that sum them."""
    out: list[tuple] = []
    everything = Store(db).latest_checks(include_archived=ia, now=NOW)
    for row in everything:  # "shared key": the latest check's key has a check for another tenant
        if row["last_account_changed"] != row["account_changed"]:  # 0015: kept on write = the query's flag
            out.append(("last_account_changed", ia, row["tenant_id"]))
        fp = row["key_fingerprint"]
        if row["shared_key"] != (fp is not None and len(key_tenants.get(fp, set()) - {row["tenant_id"]}) > 0):
            out.append(("shared_key", ia, row["tenant_id"]))
    counts = Store(db).lifecycle_counts(include_archived=ia, now=NOW)
    want_counts = {f: sum(r[f] for r in everything) for f in FLAGS}
    want_counts["mode_or_account_changed"] = sum(r["mode_changed"] or r["account_changed"] for r in everything)
    if counts != want_counts:
        out.append(("lifecycle_counts", ia, counts, want_counts))
    return out


def page_mismatches(db: Database, ia: bool, filters: dict, want_rows: list) -> list[tuple]:
    """Pages of `filters`' rows (3 and 50 a page) are their slices of the whole list, counted or given the total:
    every page of a short list; of a long one the first two, one in the middle, the last two and one past the end
    (which shows the last)."""
    out: list[tuple] = []
    for size in (3, 50):
        pages = max(1, -(-len(want_rows) // size))
        asked = sorted({1, 2, pages // 2, pages - 1, pages, pages + 1}) if pages > 5 else range(1, pages + 1)
        for page in asked:
            got_page = Store(db).latest_page(include_archived=ia, now=NOW, page=page, page_size=size, **filters)
            shown = min(page, pages)
            want = want_rows[(shown - 1) * size: shown * size]
            if got_page["rows"] != want or got_page["total"] != len(want_rows) or got_page["page"] != shown:
                out.append(("latest_page", ia, filters, size, page))
            known = Store(db).latest_page(include_archived=ia, now=NOW, page=page, page_size=size,
                                          total=len(want_rows), **filters)  # a total the caller counted
            if known != got_page:
                out.append(("latest_page(total=)", ia, filters, size, page))
    return out


def filter_mismatches(db: Database, ia: bool) -> list[tuple]:
    """For each of FILTERS: the count, Triage's status figures and the pages against the filtered latest checks."""
    out: list[tuple] = []
    for filters in FILTERS:
        want_rows = Store(db).latest_checks(include_archived=ia, now=NOW, **filters)
        counting = {k: v for k, v in filters.items() if k != "order"}
        if Store(db).count_latest(include_archived=ia, now=NOW, **counting) != len(want_rows):
            out.append(("count_latest", ia, filters))
        if "status" not in filters:  # Triage's figures follow every filter but the status
            got_counts = Store(db).latest_status_counts(include_archived=ia, now=NOW, **counting)
            if got_counts != {st: sum(r["status"] == st for r in want_rows) for st in got_counts}:
                out.append(("latest_status_counts", ia, filters, got_counts))
        out += page_mismatches(db, ia, filters, want_rows)
    return out


def mismatches(url: str, *, pages: bool = True) -> list[tuple]:
    """Every place where the tenant rows' copies or the counters disagree with the latest checks. pages=False leaves
    out the filtered counts and pages (most of the queries), for a test that only asks whether a wrong copy or
    counter shows among the rest."""
    db = Database(url)
    with get_engine(url).connect() as conn:
        key_tenants: dict[str, set[int]] = {}
        for fp, tid in conn.execute(sa.select(checks_t.c.key_fingerprint, checks_t.c.tenant_id)
                                    .where(checks_t.c.key_fingerprint.is_not(None))):
            key_tenants.setdefault(fp, set()).add(tid)
        out = stored_mismatches(conn, key_tenants)
    for ia in (False, True):
        out += counter_mismatches(db, ia)
        out += latest_row_mismatches(db, ia, key_tenants)
        if pages:
            out += filter_mismatches(db, ia)
    return out


def test_copies_and_counters_equal_the_latest_checks_after_a_random_history(store_url, make_result):
    rnd = random.Random(10)
    random_history(store_url, make_result, rnd, 90)
    assert mismatches(store_url) == []
    random_history(store_url, make_result, rnd, 90)
    assert mismatches(store_url) == []
    s = store.at(store_url)
    tenants = s.list_tenants(include_archived=True)
    assert any(t["archived"] for t in tenants) and any(not t["archived"] for t in tenants)
    assert s.top_problem_scopes("missing") and s.top_problem_scopes("excess", include_archived=True)
    assert sum(s.status_counts(include_archived=True).values()) == sum(t["last_check_id"] is not None
                                                                        for t in tenants)
    # the set-based backfill (migration 0010, bench seeding) gives the same figures as the incremental path
    before = [s.top_problem_scopes(k, 100, include_archived=True) for k in latest.KINDS]
    latest.rebuild(Database(store_url))
    assert [s.top_problem_scopes(k, 100, include_archived=True) for k in latest.KINDS] == before
    assert mismatches(store_url) == []


def test_the_pointer_moves_its_counts_whatever_the_order(store_url, make_result):
    s = store.at(store_url)

    def rec(status, at, rows):
        return s.record_check(make_result(status, None, rows, at=at), "Acme", source="cli", checked_by=None)

    rec("failing", NOW - timedelta(hours=1), [("charge_write", "none", "missing"), ("refund_write", "write", "excess")])
    rec("failing", NOW - timedelta(hours=5), [("customer_write", "none", "missing")])  # older: not the latest
    assert [p["scope"] for p in s.top_problem_scopes("missing")] == ["charge_write"]
    rec("unreachable", NOW, [])  # never the latest
    assert [p["scope"] for p in s.top_problem_scopes("excess")] == ["refund_write"]
    rec("invalid", NOW - timedelta(minutes=30), [])  # the newest: no rows, so no problems
    assert s.top_problem_scopes("missing") == [] and s.top_problem_scopes("excess") == []
    assert s.status_counts()["invalid"] == 1
    rec("failing", NOW - timedelta(minutes=30), [("webhook_read", "none", "missing")])  # same instant, larger id
    assert s.top_problem_scopes("missing") == [
        {"scope": "webhook_read", "resource": "Resource webhook_read", "category": "Core", "tenants": 1, "share": 1.0}]
    s.update_tenant("Acme", archived=True)
    assert s.top_problem_scopes("missing") == [] and s.status_counts()["failing"] == 0
    assert s.top_problem_scopes("missing", include_archived=True)[0]["tenants"] == 1
    s.update_tenant("Acme", archived=True)  # no change: nothing moves twice
    s.update_tenant("Acme", archived=False)
    assert s.top_problem_scopes("missing")[0]["tenants"] == 1
    assert mismatches(store_url) == []


# The comparison's own test: whether a planted error is noticed is a matter of the Python comparisons above, the
# same on either database (every other test here runs on both).
@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_the_comparison_notices_a_wrong_copy_or_counter(store_url, make_result):
    random_history(store_url, make_result, random.Random(3), 40, tenants=6)
    assert mismatches(store_url) == []
    engine = get_engine(store_url)
    with engine.begin() as conn:
        conn.execute(latest_problems_t.update().where(latest_problems_t.c.tenants > 0)
                     .values(tenants=latest_problems_t.c.tenants + 1))
    assert {w[0].split("/")[0] for w in mismatches(store_url)} == {"top_problem_scopes"}
    latest.rebuild(Database(store_url))
    assert mismatches(store_url) == []
    with engine.begin() as conn:
        tid, score = conn.execute(sa.select(tenants_t.c.id, tenants_t.c.last_score)
                                  .where(tenants_t.c.last_check_id.is_not(None), tenants_t.c.last_status != "invalid")
                                  .order_by(tenants_t.c.id).limit(1)).one()
        conn.execute(tenants_t.update().where(tenants_t.c.id == tid)
                     .values(last_status="invalid", last_score=99 if score < 50 else 0))
    wrong = {w[0].split("/")[0] for w in mismatches(store_url, pages=False)}
    assert {"copies", "status_counts", "score_distribution"} <= wrong
    latest.rebuild(Database(store_url))
    assert mismatches(store_url) == []
    store.at(store_url).record_check(make_result("healthy", at=NOW, fingerprint="fp_solo"), "Solo", source="cli",
                                     checked_by=None)
    assert mismatches(store_url) == []
    with engine.begin() as conn:  # a key counted for one tenant too many: it looks shared
        conn.execute(key_tenants_t.update().where(key_tenants_t.c.fingerprint == "fp_solo").values(tenants=2))
    assert {"key_tenants", "shared_key"} <= {w[0] for w in mismatches(store_url, pages=False)}
    latest.rebuild(Database(store_url))
    with engine.begin() as conn:  # 0015: a wrong streak or summary is noticed
        conn.execute(tenants_t.update().where(tenants_t.c.name == "Solo")
                     .values(last_healthy_at=NOW - timedelta(days=1), last_summary="missing: Charges"))
    assert {"streak", "summary"} <= {w[0] for w in mismatches(store_url, pages=False)}
    latest.rebuild(Database(store_url))
    assert mismatches(store_url) == []


def _insert_history_at_0009(url: str, make_result, rnd: random.Random, n: int) -> None:
    """Tenants, checks, rows and latest pointers as a 0009 database holds them (values built by record_check's own
    code; the pointer is each tenant's newest answered check, as 0009's record_check kept it)."""
    tenants = sa.table("tenants", sa.column("id"), sa.column("name"), sa.column("slug"), sa.column("archived"),
                       sa.column("created_at"), sa.column("last_check_id"), sa.column("last_checked_at"))
    with get_engine(url).begin() as conn:
        ids = []
        for i in range(10):
            name = f"Old {i:02d}"
            conn.execute(tenants.insert().values(name=name, slug=store.slugify(name), archived=i % 4 == 0,
                                                 created_at=NOW - timedelta(days=30)))
            ids.append(conn.execute(sa.select(tenants.c.id).where(tenants.c.name == name)).scalar_one())
        for _ in range(n):
            tid = rnd.choice(ids)
            at = NOW - timedelta(days=rnd.randrange(8), seconds=rnd.randrange(86400))
            values, rows = _check_values(random_result(make_result, rnd, at), "batch", None)
            cid = conn.execute(checks_t.insert().values(tenant_id=tid, **values)).inserted_primary_key[0]
            if rows:
                conn.execute(check_rows_t.insert(), [{"check_id": cid, **r} for r in rows])
        for tid, cid in expected_latest(conn).items():
            if cid is not None:
                at = conn.execute(sa.select(checks_t.c.checked_at).where(checks_t.c.id == cid)).scalar_one()
                conn.execute(tenants.update().where(tenants.c.id == tid).values(last_check_id=cid, last_checked_at=at))


def test_migration_0010_backfills_the_copies_and_counters(db_url, make_result):
    store.at(db_url).upgrade("0009")
    _insert_history_at_0009(db_url, make_result, random.Random(9), 120)
    store.dispose_engine(db_url)
    store.at(db_url).upgrade()
    assert store.at(db_url).current_revision() == store.db.newest_revision()
    with get_engine(db_url).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(latest_problems_t)).scalar() > 0
        assert conn.execute(sa.select(sa.func.count()).select_from(tenants_t)
                            .where(tenants_t.c.last_status.is_not(None))).scalar() == 10
    assert mismatches(db_url) == []
    # the incremental path carries on from the backfilled rows
    random_history(db_url, make_result, random.Random(4), 30, tenants=4)
    store.at(db_url).update_tenant("Old 01", archived=True)
    store.at(db_url).update_tenant("Old 00", archived=False)
    assert mismatches(db_url) == []

    # down to 0009 drops them; up again backfills them from the same history
    store.db.downgrade(db_url, "0009")
    assert not sa.inspect(get_engine(db_url)).has_table("latest_problems")
    assert "last_status" not in {col["name"] for col in sa.inspect(get_engine(db_url)).get_columns("tenants")}
    store.dispose_engine(db_url)
    store.at(db_url).upgrade()
    assert mismatches(db_url) == []


def test_concurrent_writers_keep_the_counters_exact(store_url, make_result):
    """Writers record checks at once (three sharing one tenant, out of time order) while another archives and brings
    back a tenant: every counter move lands, and the counters still equal the latest checks."""
    n_threads = 6
    barrier = threading.Barrier(n_threads + 2)  # the writers, the toggler and this thread
    errors: list[BaseException] = []
    store.at(store_url).record_check(make_result("failing", at=NOW), "Toggled", source="cli", checked_by=None)

    def toggle() -> None:
        try:
            barrier.wait(timeout=30)
            for k in range(8):
                store.at(store_url).update_tenant("Toggled", archived=k % 2 == 0)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def work(i: int) -> None:
        rnd = random.Random(i)
        tenant = "Shared" if i < 3 else f"Worker {i}"
        try:
            barrier.wait(timeout=30)
            for _ in range(10):
                at = NOW - timedelta(hours=rnd.randrange(48))
                store.at(store_url).record_check(random_result(make_result, rnd, at), tenant, source="batch",
                                                 checked_by=None)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    threads.append(threading.Thread(target=toggle))
    for th in threads:
        th.start()
    barrier.wait(timeout=30)
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors
    assert mismatches(store_url) == []


def test_bench_seeding_fills_the_copies_and_counters(db_url):
    """bench/seed.py bulk-loads tenants and checks without record_check; its hook fills 0010's copies and counters
    with the migration's backfill, so they equal the latest checks there too."""
    from bench import seed as bench_seed

    bench_seed.seed(db_url, bench_seed.Plan(tenants=25, checks=300, days=20, seed=5, unreachable=0.05))
    with get_engine(db_url).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tenants_t)
                            .where(tenants_t.c.last_status.is_not(None))).scalar() == 25
        assert conn.execute(sa.select(sa.func.sum(latest_problems_t.c.tenants))).scalar() > 0
    assert mismatches(db_url) == []
