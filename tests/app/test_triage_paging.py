"""Issue 13 (pages that stay fast): Triage pages, searches and filters in SQL and renders one page of rows.

Store side (both dialects): latest_checks' limit/offset, count_latest and latest_page (clamped page, row
numbers); the per-tenant queries resolve the tenant first and still pick the exact name when a string names two
tenants. Page side (AppTest, real mode on a seeded SQLite database): page 1 is the worst first and at most a page
of rows, Next/page size/search/filters are applied server side, a page past the end clamps, and selecting a row on
page 2 opens that tenant.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from apptest import AppTest

from core import store
from core.engine.result import KEY_STATUSES, Row
from core.store.db import connect
from core.store.models import tenants_t
from core.ui.text import md_escape

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
STATUS_SCORE = {"invalid": 0, "failing": 25, "incomplete": 64, "attention": 96, "healthy": 100}  # make_result's rows


def seed(url: str, make_result, n: int) -> list[str]:
    """n tenants, one check each: statuses cycle, ages spread, every third a live key; names sort by number."""
    s = store.at(url)
    s.upgrade()
    names = []
    for i in range(n):
        status = KEY_STATUSES[i % len(KEY_STATUSES)]
        mode = "live" if i % 3 == 0 else "test"
        name = f"Paging Tenant {i:03d}"
        s.record_check(make_result(status, STATUS_SCORE[status], at=NOW - timedelta(hours=i * 7 + 1), mode=mode,
                                   masked=f"rk_{mode}_…{i:04d}", fingerprint=f"fp_{i:061d}"),
                       name, source="cli", checked_by=None)
        names.append(name)
    return names


def tenants(rows) -> list[str]:
    return [r["tenant"] for r in rows]


def test_offset_count_and_page(store_url, make_result):
    seed(store_url, make_result, 23)
    s = store.at(store_url)
    everything = s.latest_checks(now=NOW)
    assert len(everything) == 23
    assert tenants(s.latest_checks(limit=5, offset=5, now=NOW)) == tenants(everything[5:10])
    assert tenants(s.latest_checks(limit=5, offset=21, now=NOW)) == tenants(everything[21:])
    assert s.latest_checks(limit=5, offset=40, now=NOW) == []
    assert tenants(s.latest_checks(offset=20, now=NOW)) == tenants(everything[20:])
    filters = [{}, {"status": "failing"}, {"status": ["healthy", "invalid"]}, {"mode": "live"},
               {"stale_days": 3, "now": NOW}, {"search": "tenant 01"}, {"search": "…0007"},
               {"flag": "rotation_due"}, {"flag": "shared_key"}, {"search": "nobody at all"}]
    for f in filters:
        assert s.count_latest(**f) == len(s.latest_checks(**f)), f

    page = s.latest_page(page=3, page_size=10, now=NOW)
    assert tenants(page["rows"]) == tenants(everything[20:23])
    assert (page["total"], page["page"], page["pages"], page["page_size"], page["first"], page["last"]) == (
        23, 3, 3, 10, 21, 23)
    assert tenants(s.latest_page(page=2, page_size=10, now=NOW)["rows"]) == tenants(everything[10:20])
    past = s.latest_page(page=99, page_size=10, now=NOW)  # past the end: the last page
    assert (past["page"], past["first"], tenants(past["rows"])) == (3, 21, tenants(everything[20:]))
    assert s.latest_page(page=0, page_size=10, now=NOW)["page"] == 1
    failing = s.latest_page(status="failing", page=2, page_size=2, now=NOW)
    want = [r for r in everything if r["status"] == "failing"]
    assert failing["total"] == len(want) == 5 and tenants(failing["rows"]) == tenants(want[2:4])
    nothing = s.latest_page(search="nobody at all", page=4)
    assert (nothing["rows"], nothing["total"], nothing["page"], nothing["pages"], nothing["first"],
            nothing["last"]) == ([], 0, 1, 1, 0, 0)
    for bad in (0, 1001):
        with pytest.raises(store.StoreInputError, match="page size"):
            s.latest_page(page_size=bad)
    with pytest.raises(store.StoreInputError, match="Unknown flag"):
        s.count_latest(flag="nonsense")


def test_shared_key_is_seen_from_both_sides_whichever_id_is_smaller(store_url, make_result):
    s = store.at(store_url)
    for name in ("Alpha", "Beta", "Gamma"):
        s.record_check(make_result(fingerprint="fp_" + name.lower()), name, source="cli", checked_by=None)
    s.record_check(make_result(fingerprint="fp_shared"), "Alpha", source="cli", checked_by=None)
    s.record_check(make_result(fingerprint="fp_shared"), "Gamma", source="cli", checked_by=None)
    assert sorted(tenants(s.latest_checks(flag="shared_key"))) == ["Alpha", "Gamma"]
    assert s.count_latest(flag="shared_key") == 2
    assert s.lifecycle_counts()["shared_key"] == 2
    assert [k["others"] for k in s.shared_keys("Alpha")] == [["Gamma"]]
    assert s.shared_keys("Beta") == []


def test_per_tenant_queries_pick_the_exact_name_when_a_string_names_two(store_url, make_result):
    """"Acme" is one tenant's exact name and, slugified, another tenant's slug: the exact name wins."""
    s = store.at(store_url)
    old = [Row("Core", "Charges", "charge_read", "read", "read", "ok")]
    new = [Row("Core", "Charges", "charge_read", "read", "none", "missing")]
    s.record_check(make_result("healthy", 100, old, fingerprint="fp_slug", at=NOW - timedelta(days=3)),
                   "ACME Slug Holder", source="cli", checked_by=None)
    s.record_check(make_result("failing", 1, new, fingerprint="fp_slug", at=NOW - timedelta(days=2)),
                   "ACME Slug Holder", source="cli", checked_by=None)
    with connect(store_url, write=True) as conn:  # as migration 0006 can leave them: another holds the slug "acme"
        conn.execute(tenants_t.update().where(tenants_t.c.name == "ACME Slug Holder").values(slug="acme"))
    s.record_check(make_result("healthy", 100, old, fingerprint="fp_exact", at=NOW - timedelta(days=1)),
                   "Acme-exact", source="cli", checked_by=None)
    with connect(store_url, write=True) as conn:
        conn.execute(tenants_t.update().where(tenants_t.c.name == "Acme-exact").values(name="Acme"))
    with connect(store_url) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tenants_t).where(
            sa.or_(tenants_t.c.name == "Acme", tenants_t.c.slug == "acme"))).scalar() == 2
    history = s.tenant_history("Acme")
    assert [h["tenant"] for h in history] == ["Acme"]
    assert s.drift("Acme") == [] and s.drift("Acme", new_key=True) == []
    assert s.previous_key("Acme")["key_fingerprint"] == "fp_exact"
    assert s.key_events("Acme") == []
    holder = s.get_tenant("ACME Slug Holder")
    assert [d["to_granted"] for d in s.drift(holder["id"])] == ["none"]
    assert len(s.tenant_history(holder["id"])) == 2
    assert s.tenant_history("Nobody Here") == [] and s.drift("Nobody Here") == []
    assert s.previous_key("Nobody Here") is None and s.shared_keys("Nobody Here") == []
    with pytest.raises(store.StoreInputError):
        s.tenant_history(True)  # type: ignore[arg-type]


# --- the page ---------------------------------------------------------------------------------------------
APP = "../../app.py"
N = 130  # three pages of 50


@pytest.fixture
def paged_env(app_env, make_result):
    names = seed(app_env, make_result, N)
    return app_env, names


def open_triage() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.switch_page("app_pages/triage.py").run()
    assert not at.exception, at.exception
    return at


def shown(at: AppTest) -> list[str]:
    return list(at.dataframe[0].value["Tenant"]) if at.dataframe else []


def quick_links(at: AppTest) -> set[str]:
    """The "Open a tenant" links (laid out in three columns, so the tree lists them column by column)."""
    return {lk.proto.label for lk in at.get("page_link") if "Paging Tenant" in lk.proto.label}


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def test_first_page_is_the_worst_and_next_turns_it(paged_env):
    url, _ = paged_env
    s = store.at(url)
    at = open_triage()
    frame = at.dataframe[0].value
    assert len(frame) == 50
    # impact order (tests/app/test_triage_impact.py): live keys first, the worst of them first
    assert frame["Status"][0] == "invalid" and frame["Mode"][0] == "live"
    assert shown(at) == tenants(s.latest_page(page=1, page_size=50)["rows"])
    assert "Rows 1–50 of 130 tenants" in captions(at)
    assert at.number_input(key="tr_page").value == 1
    assert quick_links(at) == {f"{md_escape(r['tenant'])} ({r['status']})" for r in s.latest_page(page=1)["rows"][:12]}
    at.button(key="tr_next").click().run()
    assert not at.exception, at.exception
    assert shown(at) == tenants(s.latest_page(page=2, page_size=50)["rows"])
    assert "Rows 51–100 of 130 tenants" in captions(at)
    assert quick_links(at) == {f"{md_escape(r['tenant'])} ({r['status']})" for r in s.latest_page(page=2)["rows"][:12]}
    at.button(key="tr_next").click().run()
    assert len(shown(at)) == 30 and "Rows 101–130 of 130 tenants" in captions(at)
    assert at.button(key="tr_next").disabled
    at.button(key="tr_prev").click().run()
    assert at.number_input(key="tr_page").value == 2
    at.selectbox(key="tr_size").set_value(25).run()  # another page size: back to page 1
    assert at.number_input(key="tr_page").value == 1 and len(shown(at)) == 25
    assert "Rows 1–25 of 130 tenants" in captions(at)
    at.number_input(key="tr_page").set_value(6).run()
    assert shown(at) == tenants(s.latest_page(page=6, page_size=25)["rows"]) and len(shown(at)) == 5


def test_search_and_filters_are_applied_before_paging(paged_env):
    url, _ = paged_env
    s = store.at(url)
    at = open_triage()
    deep = s.latest_page(page=3)["rows"][7]["tenant"]  # on page 3: only a server-side search finds it
    assert deep not in shown(at)
    at.button(key="tr_next").click().run()
    at.text_input(key="tr_search").input(deep.lower()).run()
    assert shown(at) == [deep]
    assert at.number_input(key="tr_page").value == 1
    assert "1 tenant" in captions(at)
    at.text_input(key="tr_search").input("").run()
    at.multiselect(key="tr_status").set_value(["healthy"]).run()
    healthy = s.latest_checks(status="healthy")
    assert len(healthy) == 26 and shown(at) == tenants(healthy)
    assert set(at.dataframe[0].value["Status"]) == {"healthy"}
    at.multiselect(key="tr_status").set_value([]).run()
    at.selectbox(key="tr_mode").set_value("live").run()
    live = s.latest_checks(mode="live")
    assert len(live) == 44 and shown(at) == tenants(live) and "44 tenants" in captions(at)  # one page: no row numbers
    at.selectbox(key="tr_size").set_value(25).run()
    assert shown(at) == tenants(live[:25]) and "Rows 1–25 of 44 tenants" in captions(at)


def test_a_page_past_the_end_clamps(paged_env):
    url, names = paged_env
    at = open_triage()
    at.number_input(key="tr_page").set_value(3).run()
    assert len(shown(at)) == 30
    for name in names[:40]:  # meanwhile the list shrinks to two pages (archived tenants leave Triage)
        store.at(url).update_tenant(name, archived=True)
    at.run()
    assert not at.exception, at.exception
    assert at.number_input(key="tr_page").value == 2 and len(shown(at)) == 40
    assert "Rows 51–90 of 90 tenants" in captions(at)
    at.multiselect(key="tr_status").set_value(["invalid"]).run()  # a filter change starts at page 1
    assert not at.exception and at.number_input(key="tr_page").value == 1 and len(shown(at)) == 18


def test_selecting_a_row_on_page_two_opens_that_tenant(paged_env):
    url, _ = paged_env
    at = open_triage()
    at.button(key="tr_next").click().run()
    target = store.at(url).latest_page(page=2)["rows"][4]
    assert shown(at)[4] == target["tenant"]
    at.session_state["tr_table_0"] = {"selection": {"rows": [4], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == md_escape(target["tenant"])
    assert at.query_params.get("tenant") in (target["slug"], [target["slug"]])
