"""Audit trail filters match case-insensitive substrings ("ana" finds "Ana"), on SQLite and PostgreSQL, and the page
uses them (issue 19.9)."""
from __future__ import annotations

from apptest import AppTest

from core import store


def seed(s) -> None:
    s.upgrade()
    s.get_or_create_tenant("Acme Coffee Roasters")
    s.record_audit("check", who="Ana@Pointai.example", tenant="Acme Coffee Roasters", outcome="healthy", detail="x")
    s.record_audit("check", who="ben@pointai.example", tenant="Northwind Bikes", outcome="failing", detail="y")
    s.record_audit("check", who="100%_sure@pointai.example", tenant="Other", outcome="healthy", detail="z")


def test_store_filters_are_case_insensitive_substrings(db_url):
    s = store.at(db_url)
    seed(s)
    assert [a["who"] for a in s.list_audit(who_contains="ana")] == ["Ana@Pointai.example"]
    assert [a["tenant"] for a in s.list_audit(tenant_contains="acme COF")] == ["Acme Coffee Roasters"]
    assert [a["tenant"] for a in s.list_audit(tenant_contains="wind")] == ["Northwind Bikes"]
    assert len(s.list_audit(who_contains="POINTAI")) == 3
    # % and _ are plain characters, not wildcards
    assert [a["who"] for a in s.list_audit(who_contains="%_")] == ["100%_sure@pointai.example"]
    assert s.list_audit(who_contains="a%b") == []
    store.dispose_engine(db_url)


def test_audit_page_finds_ana_by_ana(app_env):
    s = store.at(app_env)
    seed(s)
    store.dispose_engine(app_env)
    at = AppTest.from_file("../../app_pages/audit.py", default_timeout=60)
    at.run()
    at.text_input(key="au_who").input("ana").run()
    assert not at.exception, at.exception
    assert list(at.dataframe[0].value["Who"]) == ["Ana@Pointai.example"]
    at.text_input(key="au_who").input("").run()
    at.text_input(key="au_tenant").input("northWIND").run()
    assert list(at.dataframe[0].value["Tenant"]) == ["Northwind Bikes"]
