"""The CLI reads the demo database (`--demo`, with the embedded sandbox for checks), and a recheck CSV with
its columns swapped gets a sentence that says so (issue 9, item 7)."""
from __future__ import annotations

import json
import os
import socket
import sqlite3
from pathlib import Path

import pytest
from cli_process import run_core

from core.demo import TENANT_NAMES
from core.features.recheck import SWAPPED, parse_lines
from sandbox import DEMO_KEYS

ROOT = Path(__file__).resolve().parents[2]
HEALTHY = DEMO_KEYS["healthy"].key


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, tmp_path: Path, stdin: str = "", **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("STRIPE_KEY", "DATABASE_URL")}
    env.update(
        KEYHEALTH_DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'real.db'}",
        # the real Stripe side points nowhere: a --demo command that used it would fail
        STRIPE_API_BASE=f"http://127.0.0.1:{_closed_port()}",
        KEYHEALTH_RATE_TEST="200",
        KEYHEALTH_BACKOFF_S="0.01",
        KEYHEALTH_FINGERPRINT_SECRET="demo-cli-secret",
        NO_COLOR="1",
    )
    env.update(extra)
    return run_core(args, cwd=ROOT, env=env, input=stdin, text=True, timeout=180, check=False)


def _tenants(db: Path) -> set[str]:
    if not db.exists():
        return set()
    with sqlite3.connect(db) as c:
        try:
            return {r[0] for r in c.execute("SELECT name FROM tenants")}
        except sqlite3.OperationalError:
            return set()


def test_demo_history_check_and_recheck_use_the_demo_database_and_sandbox(tmp_path):
    demo_db = tmp_path / "data" / "demo" / "keyhealth-demo.db"
    p = run(["history", "--demo", "--tenant", "Nobody Here", "--json"], tmp_path)  # seeds the demo database
    assert p.returncode == 2 and "No tenant named" in p.stderr
    seeded = sorted(_tenants(demo_db) & set(TENANT_NAMES))
    assert seeded
    p = run(["history", "--demo", "--tenant", seeded[0], "--json"], tmp_path)
    assert p.returncode == 0, p.stderr
    hist = json.loads(p.stdout)
    assert hist["tenant"]["name"] == seeded[0] and hist["checks"]

    p = run(["check", "--demo", "--tenant", "Demo CLI Co", "--json"], tmp_path, STRIPE_KEY=HEALTHY)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == "healthy" and out["saved"] is True  # the embedded sandbox answered
    p = run(["recheck", "--demo", "--csv", "-", "--json"], tmp_path, stdin=f"Demo Batch Co,{HEALTHY}\n")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["recorded"] == 1
    assert {"Demo CLI Co", "Demo Batch Co", seeded[0]} <= _tenants(demo_db)
    assert _tenants(tmp_path / "real.db") == set()  # the real database never saw any of it

    p = run(["history", "--demo", "--tenant", "Demo CLI Co"], tmp_path)
    assert p.returncode == 0 and p.stdout.startswith("Demo CLI Co (demo-cli-co)"), p.stderr
    # without --demo the same tenant is not there
    p = run(["history", "--tenant", "Demo CLI Co"], tmp_path)
    assert p.returncode == 2 and "No tenant named" in p.stderr


def test_parse_lines_says_the_columns_look_swapped():
    k = HEALTHY
    entries, failed = parse_lines(f"key,tenant\n{k},Acme\n{k},Beta Ltd\nGamma,{k}\n{k},{k}\n")
    assert [e.line for e in entries] == [4]
    assert [f["line"] for f in failed] == [1, 2, 3, 5]
    assert "key,tenant" in failed[0]["problem"] and "swapped" in failed[0]["problem"]
    assert failed[1]["problem"] == failed[2]["problem"] == SWAPPED
    assert "swapped" not in failed[3]["problem"]  # two keys: not a swap, the tenant is a key
    assert k not in json.dumps(failed)


@pytest.mark.parametrize("text", [
    pytest.param(f"key,tenant\n{HEALTHY},Acme\n", id="header"),
    pytest.param(f"{HEALTHY},Acme\n", id="no-header"),
])
def test_recheck_with_swapped_columns_is_told_so_and_records_nothing(text, tmp_path):
    p = run(["recheck", "--csv", "-", "--json"], tmp_path, stdin=text)
    assert p.returncode == 1, p.stderr
    rep = json.loads(p.stdout)
    assert rep["recorded"] == 0 and rep["failed_lines"]
    assert all("swapped" in f["problem"] and "tenant,key" in f["problem"] for f in rep["failed_lines"])
    assert HEALTHY not in p.stdout + p.stderr
    assert _tenants(tmp_path / "real.db") == set()
