"""0017: tenants.triage_rank, the generated column Triage's first page walks (core/store/rank.py).

The migration froze the rule as SQL text; the live rule is core/store/rank.py's expression. Over every combination
of what the rule reads (status, key mode, expected mode, account changed, a bad streak or none), the database's
column must equal the live expression, on SQLite and PostgreSQL: a rule changed in one place but not the other
fails here. And Triage's page, read through the column and its index, gives the order the raw path (the same rule
over the checks themselves) gives.
"""
from __future__ import annotations

import itertools
from datetime import UTC, datetime

import sqlalchemy as sa

from core import store
from core.engine.result import KEY_STATUSES
from core.store.db import get_engine
from core.store.models import tenants_t
from core.store.rank import impact_rank

T = tenants_t
GRID = list(itertools.product([*KEY_STATUSES, None], ["live", "test", None], ["live", "test", None], [False, True],
                              [None, datetime(2026, 11, 1, tzinfo=UTC)]))


def _fill(url: str) -> None:
    with get_engine(url).begin() as conn:
        for i, (status, mode, expected, changed, broken) in enumerate(GRID, start=1):
            conn.execute(T.insert().values(
                id=i, name=f"T{i}", slug=f"t{i}", created_at=datetime(2026, 1, 1, tzinfo=UTC), archived=False,
                last_check_id=None if status is None else i, last_checked_at=datetime(2026, 11, 1 + i % 28, tzinfo=UTC),
                last_status=status, last_key_mode=mode, expected_mode=expected, last_account_changed=changed,
                broken_since=broken))


def test_the_generated_column_is_the_live_rule_for_every_combination(store_url):
    store.at(store_url).upgrade()
    _fill(store_url)
    live = impact_rank(T.c.last_status, T.c.last_key_mode, T.c.expected_mode, T.c.last_account_changed,
                       T.c.broken_since)
    with get_engine(store_url).connect() as conn:
        rows = conn.execute(sa.select(T.c.id, T.c.triage_rank, live).order_by(T.c.id)).all()
    assert len(rows) == len(GRID) == (len(KEY_STATUSES) + 1) * 3 * 3 * 2 * 2
    assert [(i, got) for i, got, _ in rows] == [(i, want) for i, _, want in rows]
    assert len({got for _, got, _ in rows}) > 20  # the grid reaches many ranks, not one


def test_triage_pages_walk_the_column_in_the_raw_rule_order(store_url):
    s = store.at(store_url)
    s.upgrade()
    _fill(store_url)
    with get_engine(store_url).begin() as conn:  # every tenant with a check gets one, so the raw path can join it
        for i, (status, mode, *_rest) in enumerate(GRID, start=1):
            if status is not None:
                conn.execute(sa.text(
                    "INSERT INTO checks (id, tenant_id, checked_at, source, key_masked, key_kind, key_mode, status, "
                    "score, n_ok, n_missing, n_excess, n_unknown, n_not_applicable, requests, elapsed_s) VALUES (:i, "
                    ":i, :at, 'cli', 'rk_test_…0001', 'restricted', :mode, :status, 50, 0, 0, 0, 0, 0, 1, 0.1)"),
                    {"i": i, "at": datetime(2026, 11, 1 + i % 28, tzinfo=UTC), "mode": mode, "status": status})
    now = datetime(2026, 12, 1, tzinfo=UTC)
    whole = [d["tenant_id"] for d in s.latest_checks(now=now)]  # no slice: the rule over the checks' columns
    paged = []
    for page in (1, 2, 3, 4):  # 180 tenants with a check: four pages of 50
        paged += [d["tenant_id"] for d in s.latest_page(page=page, page_size=50, now=now)["rows"]]
    assert len(whole) == len(GRID) - len(GRID) // (len(KEY_STATUSES) + 1)
    assert paged == whole
