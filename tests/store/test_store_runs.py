"""Stored fleet runs (core/store/runs.py): putting a run's tenants in it."""
from __future__ import annotations

import sqlalchemy as sa

from core import store
from core.store.db import get_engine


def test_a_run_of_many_tenants_is_added_in_a_few_statements_and_keeps_those_already_in_it(store_url):
    """add_run_items sends its tenants in one executemany (a nightly run of 20,000 tenants was 20,000 compiled
    INSERTs, each worker of a shared run waiting on the other's), and a tenant already in the run is left as it
    is: claimed stays claimed, and the run's total counts each tenant once."""
    s = store.at(store_url)
    run = s.start_run(name="many")
    names = [f"Tenant {i:04d}" for i in range(1500)]
    s.add_run_items(run["id"], names[:1000])
    claimed = s.claim_run_items(run["id"], "w:1", 3, 60.0)
    sent: list[str] = []

    def spy(conn, cursor, statement, *a):
        sent.append(statement)

    engine = get_engine(store_url)
    sa.event.listen(engine, "before_cursor_execute", spy)
    try:
        s.add_run_items(run["id"], names + names[:10])  # 1,000 already in, 500 new, 10 twice in the same call
    finally:
        sa.event.remove(engine, "before_cursor_execute", spy)
    assert len(sent) <= 6, sent
    items = s.run_items(run["id"])
    assert len(items) == 1500 and sorted(i["tenant"] for i in items) == sorted(names)
    assert {i["slug"] for i in items if i["state"] == "claimed"} == {c["slug"] for c in claimed}
    assert s.get_run(run["id"])["total"] == 1500
