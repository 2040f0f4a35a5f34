"""The raw key never reaches the database: not in its files, and no column could hold one."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from core import store
from core.engine.result import Row
from core.store.db import get_engine

# Distinctive, key-shaped, never handed to the store as a key.
FULL_KEY = "rk_test_51KeyHealthZZtopSecretQ9w8e7r6t5y4u3i2o1pAsDfGhJkLzXcVbNm0987654321qwertyuiopLKJH"
MASKED = "rk_test_…LKJH"
KEY_COLUMNS = {"key_masked", "key_fingerprint", "key_kind", "key_mode"}
# 0010: the tenant row's copies of its latest check's key columns (same limits)
LATEST_KEY_COLUMNS = {"last_key_masked", "last_key_fingerprint", "last_key_mode"}


def db_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))  # .db, -wal, -shm


def test_full_key_is_nowhere_in_the_sqlite_files(tmp_path, make_result):
    path = tmp_path / "secret.db"
    url = f"sqlite:///{path}"
    store.at(url).upgrade()
    # The key only reaches the store inside free text a careless caller might pass on: redacted on the way in.
    # (a sweep that stopped on Stripe's trouble: its problem sentence and the rows settled before both stand)
    res = make_result("unreachable", masked=MASKED, problem=f"Stripe rejected {FULL_KEY} (expired).",
                      rows=[Row("Core", "Charges", "charge_read", "read", "unknown", "unknown",
                                reason=f"timeout for {FULL_KEY}")])
    cid = store.at(url).record_check(res, "Acme", source="dashboard", checked_by="ann")
    store.at(url).record_audit("check", who="ann", tenant="Acme", detail=f"checked {FULL_KEY}")
    store.at(url).update_tenant("Acme", notes=f"their key was {FULL_KEY}")
    raw = db_bytes(path)
    assert MASKED.encode() in raw  # the scan does see what was written (WAL included)
    assert FULL_KEY.encode() not in raw
    assert FULL_KEY[8:40].encode() not in raw  # nor a long piece of its secret part
    got = store.at(url).get_check(cid)
    assert got["problem"] == "Stripe rejected rk_test_…LKJH (expired)."
    assert got["rows"][0]["reason"] == "timeout for rk_test_…LKJH"
    store.dispose_engine(url)


def test_schema_has_no_column_that_could_hold_a_full_key(store_url):
    insp = sa.inspect(get_engine(store_url))
    key_like = []
    for table in insp.get_table_names():
        for col in insp.get_columns(table):
            name = col["name"].lower()
            if any(w in name for w in ("key", "secret", "token", "password", "credential", "raw")):
                key_like.append(col["name"])
    # the only key columns: what may be shown (masked), a keyed hash, and two labels
    # (0012: checks.key_dashboard_id, the key's Dashboard id mk_…, not a secret; the database refuses anything else)
    assert set(key_like) == KEY_COLUMNS | LATEST_KEY_COLUMNS | {"key_dashboard_id"}
    tenants = {c["name"]: c for c in insp.get_columns("tenants")}
    assert tenants["last_key_masked"]["type"].length == 40 and tenants["last_key_fingerprint"]["type"].length == 128
    checks = {c["name"]: c for c in insp.get_columns("checks")}
    assert checks["key_masked"]["type"].length == 40 and checks["key_fingerprint"]["type"].length == 128
    assert checks["key_kind"]["type"].length <= 32 and checks["key_mode"]["type"].length <= 8
    # …and the database itself refuses a whole key there, even from plain SQL (SQLite ignores VARCHAR(n): a CHECK)
    with store.connect(store_url, write=True) as conn:
        conn.execute(sa.text("INSERT INTO tenants (name, slug, archived, created_at) "
                             "VALUES ('A', 'a', false, CURRENT_TIMESTAMP)"))
    for column in ("key_masked", "key_fingerprint"):
        values = {"key_masked": MASKED, "key_fingerprint": None, column: FULL_KEY + FULL_KEY}
        with pytest.raises(sa.exc.DBAPIError):
            with store.connect(store_url, write=True) as conn:
                conn.execute(sa.text(
                    "INSERT INTO checks (tenant_id, checked_at, source, key_masked, key_fingerprint, key_kind, "
                    "status, score, n_ok, n_missing, n_excess, n_unknown, n_not_applicable, requests, elapsed_s) "
                    "VALUES (1, CURRENT_TIMESTAMP, 'cli', :key_masked, :key_fingerprint, 'restricted', 'healthy', "
                    "100, 0, 0, 0, 0, 0, 0, 0)"), values)
    for bad in (FULL_KEY, "mk_" + "a" * 62):  # a key, or an id too long
        with pytest.raises(sa.exc.DBAPIError):
            with store.connect(store_url, write=True) as conn:
                conn.execute(sa.text(
                    "INSERT INTO checks (tenant_id, checked_at, source, key_masked, key_kind, status, score, n_ok, "
                    "n_missing, n_excess, n_unknown, n_not_applicable, requests, elapsed_s, key_dashboard_id) "
                    "VALUES (1, CURRENT_TIMESTAMP, 'cli', :m, 'restricted', 'healthy', 100, 0, 0, 0, 0, 0, 0, 0, :v)"),
                    {"m": MASKED, "v": bad})
    for column in ("last_key_masked", "last_key_fingerprint"):
        with pytest.raises(sa.exc.DBAPIError):
            with store.connect(store_url, write=True) as conn:
                conn.execute(sa.text(f"UPDATE tenants SET {column} = :v"), {"v": FULL_KEY + FULL_KEY})


@pytest.mark.parametrize("masked", [FULL_KEY, "sk_live_" + "a" * 24, "x" * 41])
def test_record_check_refuses_a_key_that_is_not_masked(store_url, make_result, masked):
    with pytest.raises(store.StoreInputError, match="never the key"):
        store.at(store_url).record_check(make_result(masked=masked), "Acme", source="cli", checked_by=None)
    with pytest.raises(store.StoreInputError, match="never the key"):
        store.at(store_url).record_check(make_result(fingerprint=FULL_KEY), "Acme", source="cli", checked_by=None)
    assert store.at(store_url).list_tenants() == []


def test_redact():
    assert store.redact(f"a {FULL_KEY} b") == "a rk_test_…LKJH b"
    assert store.redact("sk_live_" + "Ab1" * 10) == "sk_live_…1Ab1"
    assert store.redact("whsec_" + "x" * 32) == "whsec_…xxxx"
    assert store.redact("rk_test_…a1b2 is masked already") == "rk_test_…a1b2 is masked already"
    # a key cut short is still (part of) a key: only its prefix stays (core.engine.redact, issue 17 item 2)
    assert store.redact("acct_1234567890abcdef and sk_test_short") == "acct_1234567890abcdef and sk_test_…"
    assert store.redact(None) is None and store.redact("") == ""
