"""One transaction per check (issue #18 item 4): the check (with its rows and the tenant's summary), its audit entry
and its alert (an outbox row, delivered later by the background sender) are written all or none.

The database is killed at every statement of the unit in turn: on SQLite the connection is closed under the
statement, on PostgreSQL the backend is terminated from a second connection (pg_terminate_backend; the shared test
server itself keeps running). After each kill either every row is there or none is.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from core import store
from core.store.db import normalize_url

TENANT = "Acme Coffee"


def healthy(make_result):
    return make_result(status="healthy", score=100, rows=[("charge_read", "read", "ok"),
                                                          ("customer_write", "write", "ok")])


def worse(make_result):
    """A check of the same key that got worse: it raises an alert (status and permissions)."""
    return make_result(status="failing", score=1,
                       rows=[("charge_read", "none", "missing"), ("customer_write", "read", "missing")])


def rows_of(url: str, tenant: str, item: int | None = None) -> dict[str, object]:
    """What a recorded check leaves behind: its row, its audit entry, its alert, the tenant's pointer, the rollup
    (and with `item`, that fleet run item's state and check)."""
    with store.get_engine(url).connect() as conn:
        one = lambda q: conn.execute(sa.text(q)).scalar()  # noqa: E731
        return {
            "item": None if item is None else tuple(conn.execute(
                sa.text("SELECT state, check_id FROM fleet_items WHERE id = :i"), {"i": item}).one()),
            "checks": one("SELECT count(*) FROM checks"),
            "rows": one("SELECT count(*) FROM check_rows"),
            "audit": one("SELECT count(*) FROM audit WHERE action = 'check'"),
            "alerts": one("SELECT count(*) FROM alerts"),
            "tenants": one("SELECT count(*) FROM tenants"),
            "latest": conn.execute(sa.text("SELECT last_check_id FROM tenants WHERE name = :n"),
                                   {"n": tenant}).scalar(),
            "rollup": one("SELECT coalesce(sum(checks), 0) FROM rollup_days"),
            "problems": one("SELECT coalesce(sum(tenants), 0) FROM latest_problems"),
        }


@contextmanager
def killing_at(url: str, n: int, kill: Callable[[sa.engine.Connection], None]) -> Iterator[list[str]]:
    """Kill the database connection (with `kill`) just before the n-th statement the engine sends (1-based);
    yields the statements seen."""
    engine = store.get_engine(url)
    seen: list[str] = []

    def spy(conn, cursor, statement, *a):
        seen.append(statement)
        if len(seen) == n:
            kill(conn)

    sa.event.listen(engine, "before_cursor_execute", spy)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", spy)


def close_sqlite(conn) -> None:
    conn.connection.dbapi_connection.close()  # the statement then runs on a closed database


def _run_item(svc, tenant: str) -> int:
    """A fleet run of its own holding `tenant`, claimed by this test: the item's id."""
    run = svc.store.start_run(name=f"unit {tenant}")
    svc.store.add_run_items(run["id"], [tenant])
    (item,) = svc.store.claim_run_items(run["id"], "test-worker", 1, 60)
    return int(item["id"])


def _all_or_none(url: str, make_service, make_result, kill, *, first: bool, fleet: bool = False) -> int:
    """Record a check with the database killed at statement 1, 2, … until one runs through; after each, every row
    of the unit is there or none is. `first`: the tenant's first check (the tenant row is part of the unit; no
    alert) else a check that got worse (with an alert). `fleet`: the check is its tenant's in a fleet run, and
    the run's item is marked done in the unit too. Returns how many statements the unit took."""
    svc = make_service(url)
    assert svc.store.list_tenants() == []  # the runtime's store is migrated and its engine is up
    earlier = healthy(make_result)  # checked before the check that got worse: that one is the latest
    result = earlier if first else worse(make_result)
    for n in range(1, 200):
        tenant = f"{TENANT} {n}"  # each round its own tenant, in the same state before the kill
        if not first:
            assert svc.record(earlier, tenant, source="cli").saved
        item = _run_item(svc, tenant) if fleet else None
        before = rows_of(url, tenant, item)
        with killing_at(url, n, kill) as seen:
            checked = svc.record(result, tenant, source="cli", run_item=item)
        after = rows_of(url, tenant, item)
        if n <= len(seen) and not checked.saved:  # the kill failed the unit: nothing of it is stored
            assert checked.save_problem
            assert after == before, f"killed before statement {n} ({seen[n - 1][:70]!r}): {before} -> {after}"
            continue
        # saved (the kill came after the last statement, or hit a read the check can do without): all of it
        where = f"killed before statement {n} ({seen[n - 1][:70]!r})" if n <= len(seen) else "not killed"
        grew = {k: after[k] - before[k] for k in ("checks", "audit", "alerts", "tenants")}  # type: ignore[operator]
        assert grew == {"checks": 1, "audit": 1, "alerts": 0 if first else 1, "tenants": 1 if first else 0}, \
            f"{where}: {before} -> {after}"
        assert after["latest"] == checked.check_id, where
        if fleet:
            assert after["item"] == ("recorded", checked.check_id), where
        assert first or checked.alert_id is not None, where
        if n > len(seen):
            return len(seen)
    raise AssertionError("the unit never went through")


@pytest.mark.parametrize("first,fleet", [(False, False), (True, False), (False, True)],
                         ids=["worse-with-alert", "new-tenant", "fleet-run-item"])
def test_sqlite_a_check_its_audit_entry_and_its_alert_are_written_all_or_none(tmp_path, make_service, make_result,
                                                                              first, fleet):
    url = f"sqlite:///{tmp_path / 'unit.db'}"
    store.at(url).upgrade()
    try:
        statements = _all_or_none(url, make_service, make_result, close_sqlite, first=first, fleet=fleet)
        assert statements > 5  # every statement of the unit was killed once
    finally:
        store.dispose_engine(url)


@pytest.mark.postgres
@pytest.mark.parametrize("db_kind", ["postgres"], indirect=True)
@pytest.mark.parametrize("fleet", [False, True], ids=["worse-with-alert", "fleet-run-item"])
def test_postgres_a_check_its_audit_entry_and_its_alert_are_written_all_or_none(store_url, make_service,
                                                                                make_result, fleet):
    admin = sa.create_engine(normalize_url(store_url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)

    def terminate(conn) -> None:
        pid = conn.connection.dbapi_connection.info.backend_pid
        with admin.connect() as other:  # waits (up to 10 s) until the backend has gone
            assert other.execute(sa.text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid}).scalar()

    try:
        assert _all_or_none(store_url, make_service, make_result, terminate, first=False, fleet=fleet) > 5
    finally:
        admin.dispose()


# --- one read of history (issue #21 item 3): the statements one recorded check sends ----------------------------
# Measured for a tenant's second check (same key, healthy), the SDK's requests to the sandbox aside; every statement
# SQLAlchemy hands the driver is counted (before_cursor_execute), BEGIN included: SQLAlchemy sends BEGIN itself on
# SQLite, psycopg opens PostgreSQL's transactions implicitly (no statement); COMMIT is the driver's commit(), not a
# statement, on both. History: 32 on SQLite (7 BEGINs) and 24 on PostgreSQL at first; 20 and 17 with a read
# transaction for the history, one for the clash question and one write transaction. Now (docs/store.md, "A check's
# statements"): ONE read before any request (the clash question, the lifecycle's facts and the tenant's state, one
# SELECT), then one guarded write transaction: 8 on SQLite, 7 on PostgreSQL (its tenant row lock).
MAX_STATEMENTS = {"sqlite": 8, "postgresql": 7}


def test_a_recorded_check_reads_history_once_and_writes_in_one_transaction(store_url, make_service, sandbox):
    from test_fleet import HEALTHY as PERMISSIONS
    from test_fleet import make_key

    key = make_key("UnitCount")
    sandbox.add_key(key, PERMISSIONS.permissions, "test", account="acct_1UnitCount")
    svc = make_service(store_url)
    assert svc.check(key, TENANT, source="cli").saved
    engine = store.get_engine(store_url)
    seen: list[str] = []
    spy = lambda conn, cursor, statement, *a: seen.append(statement)  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", spy)
    try:
        checked = svc.check(key, TENANT, source="cli")
    finally:
        sa.event.remove(engine, "before_cursor_execute", spy)
    assert checked.saved and checked.result.status == "healthy"
    dialect = engine.dialect.name
    print(f"{dialect}: {len(seen)} statements for one recorded check")
    assert len(seen) <= MAX_STATEMENTS[dialect], "\n".join(s[:70] for s in seen)
    writes = [i for i, s in enumerate(seen) if s.split()[0] in ("INSERT", "UPDATE", "DELETE")]
    if dialect == "sqlite":  # SQLAlchemy sends BEGIN itself there: one read transaction, one write transaction
        assert [s for s in seen if s.startswith("BEGIN")] == ["BEGIN", "BEGIN IMMEDIATE"]
        assert seen.index("BEGIN IMMEDIATE") < writes[0]
    # one read of the tenant's history (the clash question with it), and nothing read in the write transaction but
    # PostgreSQL's lock of the tenant's row
    reads = [s for s in seen if s.startswith("SELECT")]
    assert len(reads) == (1 if dialect == "sqlite" else 2), "\n".join(s[:70] for s in seen)
    assert reads[0].startswith("SELECT tenants.id, tenants.name") and seen.index(reads[0]) < writes[0]
    assert all(s.startswith(("INSERT", "UPDATE")) for s in seen[writes[0]:]), "\n".join(s[:70] for s in seen)


def test_a_check_written_from_a_history_read_before_another_check_reads_again(store_url, make_result):
    """record_checked(history=) writes from the state read before the check's requests only while it is still the
    tenant's: a check recorded in between (here an unreachable one, which moves no pointer and no tenant column)
    sends the write down the locked path, so the next day's rollup counts the tenant once, as the history says."""
    from datetime import UTC, datetime, timedelta

    s = store.at(store_url)
    day0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    first = make_result(status="healthy", score=100, at=day0)
    s.record_checked(first, TENANT, source="cli", checked_by=None)
    history = s.check_history(TENANT, first.key.fingerprint)  # read before the next check's requests
    assert history.state is not None and history.clash is None
    s.record_checked(make_result(status="unreachable", score=0, at=day0 + timedelta(days=1)), TENANT, source="cli",
                     checked_by=None)  # recorded meanwhile (another worker, another tab)
    late = make_result(status="failing", at=day0 + timedelta(days=1, minutes=5))
    done = s.record_checked(late, TENANT, source="cli", checked_by=None, history=history)
    with store.get_engine(store_url).connect() as conn:
        day1 = conn.execute(sa.text("SELECT checks, tenants, unreachable FROM rollup_days WHERE archived = :f"),
                            {"f": False}).all()
        latest = conn.execute(sa.text("SELECT last_check_id, last_status FROM tenants")).one()
    assert sorted(day1) == [(1, 1, 0), (2, 1, 1)]  # day 1: two checks of ONE tenant (not counted twice)
    assert tuple(latest) == (done.check_id, "failing")


def test_the_history_read_is_one_statement_and_says_what_the_clash_question_says(store_url, make_result):
    """check_history answers the clash question as name_clash does (one sentence, or None), in one SELECT for a
    name that names a tenant."""
    s = store.at(store_url)
    s.record_checked(make_result(status="healthy", score=100), "Acme Inc.", source="cli", checked_by=None)
    engine = store.get_engine(store_url)
    seen: list[str] = []
    spy = lambda conn, cursor, statement, *a: seen.append(statement)  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", spy)
    try:
        known = s.check_history("ACME  inc.", "fp_" + "0" * 61)
    finally:
        sa.event.remove(engine, "before_cursor_execute", spy)
    assert [x for x in seen if not x.startswith("BEGIN")][0].startswith("SELECT") and len(
        [x for x in seen if not x.startswith("BEGIN")]) == 1
    assert known.clash is None and known.state is not None and known.known["tenant"]["name"] == "Acme Inc."
    assert known.known["tenants_with_key"] == [{"tenant_id": known.state["id"], "tenant": "Acme Inc.",
                                                "slug": "acme-inc"}]
    assert known.known["first_seen"] is not None and known.known["previous_key"]["account"] == "acct_1TestAccount"
    for close in ("ACME, INC", "Acme Inc"):  # punctuation only: refused as name_clash refuses it
        assert s.check_history(close, None).clash == s.name_clash(close) is not None
    assert s.check_history("Brand New", None).clash is None
