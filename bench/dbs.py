"""The benchmark databases: two sizes, on SQLite and on PostgreSQL, seeded once and reused.

    with databases(reuse=True) as dbs:          # starts the bench's own PostgreSQL cluster, stops it after
        for db in dbs: ...                      # BenchDb(size, engine, url | None, problem, seeded)

SQLite files live in bench/out/bench-<size>.db. PostgreSQL is a throwaway cluster in bench/out/pg started with
scripts/pg.sh (its data stays there, so a rerun reuses the seeded databases); it is stopped at the end, even on
error. Without PostgreSQL server binaries each PostgreSQL entry carries the reason instead of a URL.
"""
from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.seed import Plan, ensure_seeded, log

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PG_DIR = OUT / "pg"
PG_SCRIPT = ROOT / "scripts" / "pg.sh"
SIZES: dict[str, tuple[int, int]] = {"2k": (2_000, 100_000), "20k": (20_000, 1_000_000)}
ENGINES = ("sqlite", "postgresql")


@dataclass
class BenchDb:
    size: str
    engine: str
    url: str | None
    problem: str | None = None
    seeded: dict[str, Any] | None = None  # the seeding info when seeded in this run (None: reused)

    @property
    def tenants(self) -> int:
        return SIZES[self.size][0]

    @property
    def checks(self) -> int:
        return SIZES[self.size][1]

    @property
    def title(self) -> str:
        name = "SQLite" if self.engine == "sqlite" else "PostgreSQL"
        return f"{name}, {self.tenants:,} tenants, {self.checks:,} checks"


def plan(size: str) -> Plan:
    tenants, checks = SIZES[size]
    return Plan(tenants=tenants, checks=checks)


def sqlite_url(size: str) -> str:
    return f"sqlite:///{OUT / f'bench-{size}.db'}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def pg_cluster() -> Iterator[tuple[str | None, str | None]]:
    """(base URL without the database name, None) of the bench's PostgreSQL cluster, or (None, why not)."""
    PG_DIR.parent.mkdir(parents=True, exist_ok=True)
    port = int(os.environ.get("KEYHEALTH_BENCH_PG_PORT") or _free_port())
    log(f"starting PostgreSQL in {PG_DIR} on port {port}")
    proc = subprocess.run(["bash", str(PG_SCRIPT), "start", str(PG_DIR), str(port)], capture_output=True, text=True,
                          timeout=180)
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["pg.sh failed"])[-1]
        log(f"no PostgreSQL: {why}")
        subprocess.run(["bash", str(PG_SCRIPT), "stop", str(PG_DIR)], capture_output=True, timeout=180)
        yield None, why
        return
    try:
        yield proc.stdout.strip().rsplit("/", 1)[0], None
    finally:
        from core.store.db import _engines, dispose_engine

        for url in list(_engines):
            if url.startswith("postgresql"):
                dispose_engine(url)
        log("stopping PostgreSQL")
        subprocess.run(["bash", str(PG_SCRIPT), "stop", str(PG_DIR)], capture_output=True, timeout=180)


@contextmanager
def databases(*, reuse: bool = True, sizes: tuple[str, ...] = ("2k", "20k"),
              engines: tuple[str, ...] = ENGINES) -> Iterator[list[BenchDb]]:
    """Every (size, engine) bench database, seeded (or reused); PostgreSQL runs until the block ends."""
    OUT.mkdir(parents=True, exist_ok=True)
    with pg_cluster() if "postgresql" in engines else _no_pg() as (pg_base, pg_problem):
        out = []
        for size in sizes:
            for engine in engines:
                if engine == "sqlite":
                    url = sqlite_url(size)
                elif pg_base is None:
                    out.append(BenchDb(size, engine, None, pg_problem))
                    continue
                else:
                    url = f"{pg_base}/kh_bench_{size}"
                info = ensure_seeded(url, plan(size), reuse=reuse, out_dir=OUT)
                out.append(BenchDb(size, engine, url, None, info))
        yield out


@contextmanager
def _no_pg() -> Iterator[tuple[None, str]]:
    yield None, "not asked for"
