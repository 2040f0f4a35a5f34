"""Seed a fleet-sized history fast, exactly as `record_check` would have left it.

    plan = Plan(tenants=20_000, checks=1_000_000)        # deterministic for (sizes, days, seed, now)
    info = seed(url, plan)                                 # SQLite: sqlite3 executemany; PostgreSQL: COPY

`Plan.stream()` yields the checks in time order (ids are given in that order, as a live system would give
them). Every table record_check writes is filled from that one stream: tenants (with their latest-check
pointer, the last account seen, and the 0015 summary: the latest check's short problem, the bad streak and the
account-change signal), checks, check_rows, stripe_keys (one row per fingerprint Stripe accepted, first seen at
its first accepted check) and key_events (one per replacement of a tenant's key, with the old key, mode and
account).
Each tenant has 1–3 keys over time; a few replacements change mode or Stripe account, about 1 % of tenants
end on a key shared with another tenant, and about 0.5 % of checks are unreachable (Stripe never answered:
no rows, never a tenant's latest). tests/store/test_bench_seed.py replays a tiny plan through record_check and
compares every table.

After the bulk load `_after_seed(url)` runs: the hook for derived tables (the daily rollup's backfill).
"""
from __future__ import annotations

import json
import random
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core import store
from core.engine.result import KEY_STATUSES, LEVELS, Level
from core.store import latest
from core.store.checks import ACCEPTED_STATUSES
from core.store.db import connect, dispose_engine, get_engine
from core.store.models import checks_t

SCOPES: list[tuple[str, str, str, Level]] = [
    (cat, f"{res.lower().replace(' ', '_')}_{lvl}", res, lvl)
    for cat, res in [
        ("Core", "Charges"), ("Core", "Customers"), ("Core", "Disputes"), ("Core", "Events"),
        ("Core", "Payment Intents"), ("Core", "Payouts"), ("Core", "Refunds"), ("Core", "Balance"),
        ("Billing", "Invoices"), ("Billing", "Subscriptions"), ("Billing", "Prices"), ("Billing", "Products"),
        ("Connect", "Accounts"), ("Connect", "Transfers"), ("Webhooks", "Webhook Endpoints"),
    ]
    for lvl in LEVELS[1:]
]
STATUS_WEIGHTS = [1, 3, 1, 4, 11]  # invalid, failing, incomplete, attention, healthy
UNREACHABLE_SHARE = 0.005
REFUSED = ("revoked", "expired", "invalid")
CHECK_COLS = (
    "id", "tenant_id", "checked_at", "checked_by", "source", "key_masked", "key_fingerprint", "key_kind", "key_mode",
    "account", "status", "score", "n_ok", "n_missing", "n_excess", "n_unknown", "n_not_applicable", "requests",
    "elapsed_s", "problem", "refused",
)
ROW_COLS = ("id", "check_id", "scope", "resource", "category", "required", "granted", "verdict", "reason")
TENANT_COLS = ("id", "name", "slug", "account", "contact", "notes", "archived", "created_at", "last_check_id",
               "last_checked_at", "expected_mode", "last_summary", "broken_since", "last_healthy_at", "worse_at",
               "last_account_changed")
KEY_COLS = ("id", "fingerprint", "key_masked", "key_mode", "first_seen_at")
EVENT_COLS = ("id", "tenant_id", "check_id", "at", "kind", "old_fingerprint", "new_fingerprint", "old_masked",
              "new_masked", "old_mode", "new_mode", "old_account", "new_account")
_RANK = {"none": 0, "read": 1, "write": 2}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def verdict(required: str, granted: str) -> str:
    if granted == "unknown":
        return "unknown"
    if _RANK[granted] < _RANK[required]:
        return "missing"
    return "excess" if _RANK[granted] > _RANK[required] else "ok"


def tenant_name(i: int) -> str:
    return f"Bench Tenant {i:05d}"


@dataclass
class Key:
    fingerprint: str
    masked: str
    mode: str
    account: str


@dataclass
class Plan:
    """What to seed: `tenants` tenants and `checks` checks over the last `days` days (deterministic)."""

    tenants: int
    checks: int
    days: int = 180
    seed: int = 1
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc).replace(microsecond=0))
    rows_per_check: int = 10
    unreachable: float = UNREACHABLE_SHARE  # share of checks Stripe never answered

    def describe(self) -> dict[str, Any]:
        return {"tenants": self.tenants, "checks": self.checks, "days": self.days, "seed": self.seed,
                "rows_per_check": self.rows_per_check, "unreachable": self.unreachable}

    def tenant_rows(self) -> list[dict[str, Any]]:
        """The tenants as created and then edited by support (contact, archived, expected mode)."""
        return [
            {"name": tenant_name(i), "contact": f"ops{i}@tenant{i}.test", "archived": i % 97 == 0,
             "expected_mode": "live" if i % 5 == 0 else None}
            for i in range(self.tenants)
        ]

    def stream(self) -> Iterator[tuple[int, dict[str, Any], list[tuple]]]:
        """(tenant index, check values, rows) in time order; rows are (scope, resource, category, required,
        granted, verdict) tuples. Check values have the checks table's columns but id and tenant_id."""
        rnd = random.Random(self.seed)
        n_t = self.tenants
        span = self.days * 86400
        # when and for whom: every tenant at least once, then at random; sorted by time (ids follow time)
        when = sorted(
            (rnd.randrange(span), i % n_t if i < n_t else rnd.randrange(n_t)) for i in range(self.checks)
        )
        per_tenant = [0] * n_t
        for _, ti in when:
            per_tenant[ti] += 1
        # each tenant: its scopes with a baseline grant, and 1-3 keys over time
        profiles: list[list[tuple]] = []
        keys: list[list[Key]] = []
        cuts: list[list[int]] = []
        for ti in range(n_t):
            picked = rnd.sample(SCOPES, min(self.rows_per_check, len(SCOPES)))
            while len(picked) < self.rows_per_check:
                picked.append(rnd.choice(SCOPES))
            profiles.append([(scope, res, cat, lvl, rnd.choice(LEVELS)) for cat, scope, res, lvl in picked])
            mode = "live" if ti % 3 else "test"
            nk = min(rnd.choices((1, 2, 3), (55, 35, 10))[0], max(1, per_tenant[ti]))
            mine = []
            for j in range(nk):
                m = mode if j == 0 or rnd.random() > 0.05 else ("test" if mode == "live" else "live")
                acct = f"acct_bench{ti:06d}" if j == 0 or rnd.random() > 0.03 else f"acct_bench{ti:06d}x{j}"
                fp = f"{ti:056x}{j:08x}"
                mine.append(Key(fp, f"rk_{m}_…{(ti * 7 + j) % 10000:04d}", m, acct))
            keys.append(mine)
            # the check number (within the tenant) at which each later key takes over
            cuts.append(sorted(rnd.sample(range(1, per_tenant[ti]), nk - 1)) if nk > 1 else [])
        for ti in range(1, n_t, 100):  # ~1 %: the tenant ends on the key of the tenant before it
            keys[ti][-1] = keys[ti - 1][-1]
        seen = [0] * n_t
        for off, ti in when:
            n = seen[ti]
            seen[ti] += 1
            key = keys[ti][sum(1 for c in cuts[ti] if c <= n)]
            at = self.now - timedelta(seconds=span - off)
            r = rnd.random()
            rows: list[tuple] = []
            counts = dict.fromkeys(("ok", "missing", "excess", "unknown", "not_applicable"), 0)
            if r < self.unreachable:
                status, score, account, refused, problem = "unreachable", 0, None, None, "Stripe did not answer."
            else:
                status = rnd.choices(KEY_STATUSES, STATUS_WEIGHTS)[0]
                if status == "invalid":
                    score, account, refused = 0, None, REFUSED[n % 3]
                    problem = "Stripe refused the key."
                else:
                    score, account, refused, problem = rnd.randrange(40, 101), key.account, None, None
                    for scope, res, cat, req, base in profiles[ti]:
                        granted = base if rnd.random() > 0.08 else rnd.choice(("none", "read", "write", "unknown"))
                        v = verdict(req, granted)
                        counts[v] += 1
                        rows.append((scope, res, cat, req, granted, v))
            check = {
                "checked_at": at, "checked_by": "bench", "source": "batch", "key_masked": key.masked,
                "key_fingerprint": key.fingerprint, "key_kind": "restricted", "key_mode": key.mode,
                "account": account, "status": status, "score": score,
                **{f"n_{k}": v for k, v in counts.items()},
                "requests": 40, "elapsed_s": 2.5, "problem": problem, "refused": refused,
            }
            yield ti, check, rows


class _Lifecycle:
    """What record_check's bookkeeping leaves, computed while the checks stream past in time order."""

    def __init__(self) -> None:
        self.last: dict[int, tuple[int, datetime]] = {}  # tenant id -> latest check (not unreachable)
        self.account: dict[int, str] = {}  # tenant id -> last account seen
        self.prev: dict[int, tuple[str, str, str | None]] = {}  # tenant id -> (fp, masked, mode) of its last check
        self.keys: dict[str, tuple] = {}  # fingerprint -> stripe_keys row (without id)
        self.fp_account: dict[str, str] = {}  # fingerprint -> an account a check of it saw
        self.events: list[list[Any]] = []
        self.unfilled: dict[tuple[int, str], list[int]] = {}  # (tenant, fp) -> events waiting for new_account
        self.account_before: dict[int, str] = {}  # tenant id -> the account its checks saw last (any check)
        # 0015: the streak, the latest check's summary and the tenant's newest key event (fp, old account)
        self.streak: dict[int, tuple] = {}
        self.summary: dict[int, str | None] = {}
        self.last_event: dict[int, tuple[str, str | None]] = {}

    def add(self, cid: int, tid: int, ch: dict[str, Any], rows: Sequence[tuple] = ()) -> None:
        at, acct, fp = ch["checked_at"], ch["account"], ch["key_fingerprint"]
        if ch["status"] != "unreachable":
            self.last[tid] = (cid, at)
            self.streak[tid] = latest.step(self.streak.get(tid, latest.NO_STREAK), ch["status"], at)
            self.summary[tid] = latest.summary_of(ch["status"], ch["refused"], ch["key_kind"],
                                                  [{"verdict": r[5], "resource": r[1]} for r in rows])
        if acct and (ch["status"] != "unreachable" or tid not in self.account):
            self.account[tid] = acct
        if fp is None:
            return
        if fp not in self.keys and ch["status"] in ACCEPTED_STATUSES:  # 0013: first seen = first accepted
            self.keys[fp] = (fp, ch["key_masked"], ch["key_mode"], at)
        prev = self.prev.get(tid)
        if prev is not None and prev[0] != fp:
            old_account = self.account_before.get(tid)
            new_account = acct or self.fp_account.get(fp)
            self.events.append([tid, cid, at, "replaced", prev[0], fp, prev[1], ch["key_masked"], prev[2],
                                ch["key_mode"], old_account, new_account])
            self.last_event[tid] = (fp, old_account)
            if new_account is None:
                self.unfilled.setdefault((tid, fp), []).append(len(self.events) - 1)
        elif acct:
            for i in self.unfilled.pop((tid, fp), []):
                self.events[i][11] = acct
        self.prev[tid] = (fp, ch["key_masked"], ch["key_mode"])
        if acct:
            self.fp_account.setdefault(fp, acct)
            self.account_before[tid] = acct

    def summary_values(self, tid: int, latest_check: dict[str, Any] | None) -> tuple:
        """The tenant's 0015 columns: summary, broken_since, last_healthy_at, worse_at, last_account_changed."""
        broken, healthy, worse, _ = self.streak.get(tid, latest.NO_STREAK)
        changed = False
        if latest_check is not None:
            fp, acct = latest_check["key_fingerprint"], latest_check["account"]
            ev = self.last_event.get(tid)
            changed = bool(ev and fp and acct and ev[0] == fp and ev[1] and ev[1] != acct)
        return (self.summary.get(tid), broken, healthy, worse, changed)


def _sqlite_text(at: datetime) -> str:
    """How the store's UTCDateTime lands in SQLite: naive UTC, ISO text with microseconds."""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def seed(url: str, plan: Plan, *, batch: int = 20_000) -> dict[str, Any]:
    """Migrate the EMPTY database at `url` and fill it with `plan`; returns counts and the seconds taken."""
    t0 = time.perf_counter()
    s = store.at(url)
    s.upgrade()
    with connect(url) as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(checks_t)).scalar():
            raise SystemExit(f"{store.mask_url(url)} already has checks; seed an empty database.")
    dialect = get_engine(url).dialect.name
    dispose_engine(url)
    log(f"seeding {dialect}: {plan.tenants:,} tenants, {plan.checks:,} checks")
    writer = _SqliteWriter(url) if dialect == "sqlite" else _PgWriter(url)
    lc = _Lifecycle()
    checks: list[tuple] = []
    rows: list[tuple] = []
    rid = 0
    n_rows = 0
    try:
        latest_of: dict[int, dict[str, Any]] = {}  # tenant id -> its latest check's key and account
        for cid, (ti, ch, chrows) in enumerate(plan.stream(), start=1):
            tid = ti + 1
            lc.add(cid, tid, ch, chrows)
            if ch["status"] != "unreachable":
                latest_of[tid] = {"key_fingerprint": ch["key_fingerprint"], "account": ch["account"]}
            checks.append((cid, tid, *(ch[k] for k in CHECK_COLS[2:])))
            for row in chrows:
                rid += 1
                rows.append((rid, cid, *row, None))
            if len(checks) >= batch:
                writer.write("checks", CHECK_COLS, checks)
                writer.write("check_rows", ROW_COLS, rows)
                n_rows += len(rows)
                checks.clear()
                rows.clear()
                if cid % 200_000 == 0:
                    log(f"  {cid:,} checks written ({time.perf_counter() - t0:.0f} s)")
        writer.write("checks", CHECK_COLS, checks)
        writer.write("check_rows", ROW_COLS, rows)
        n_rows += len(rows)
        created = plan.now - timedelta(days=plan.days + 1)
        tenants = []
        for i, t in enumerate(plan.tenant_rows()):
            tid = i + 1
            last = lc.last.get(tid)
            tenants.append((tid, t["name"], store.slugify(t["name"]), lc.account.get(tid), t["contact"], None,
                            t["archived"], created, last[0] if last else None, last[1] if last else None,
                            t["expected_mode"], *lc.summary_values(tid, latest_of.get(tid))))
        writer.write("tenants", TENANT_COLS, tenants)
        writer.write("stripe_keys", KEY_COLS, [(i, *k) for i, k in enumerate(lc.keys.values(), start=1)])
        writer.write("key_events", EVENT_COLS, [(i, *ev) for i, ev in enumerate(lc.events, start=1)])
        writer.finish()
    finally:
        writer.close()
    log(f"  bulk load done ({time.perf_counter() - t0:.0f} s); derived tables (rollup) and ANALYZE")
    _after_seed(url)
    with get_engine(url).connect() as conn:
        if dialect == "sqlite":
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
        else:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("SET statement_timeout = 0")
            conn.exec_driver_sql("ANALYZE")
    seconds = time.perf_counter() - t0
    log(f"  seeded in {seconds:.0f} s")
    return {"tenants": plan.tenants, "checks": plan.checks, "rows": n_rows, "keys": len(lc.keys),
            "events": len(lc.events), "seconds": seconds}


def _after_seed(url: str) -> None:
    """Hook run once the bulk load is in: fill derived tables from the seeded history. The daily rollup (0008)
    is empty here (migrated on an empty history), so its backfill fills it; so are the latest checks' copies on the
    tenant rows and the latest_problems counters (0010), filled by the same backfill as that migration. No
    statement timeout for those long statements on PostgreSQL."""
    from core.store import latest, rollup

    with get_engine(url).execution_options(keyhealth_write=True).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        rollup.backfill(conn)
        latest.backfill(conn)


class _SqliteWriter:
    """One sqlite3 connection for the whole load: one transaction, no fsync, foreign keys off (the data is
    consistent by construction), WAL put back at the end."""

    def __init__(self, url: str):
        self.path = url.split("///", 1)[1]
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode = DELETE", "synchronous = OFF", "foreign_keys = OFF", "cache_size = -400000",
                       "temp_store = MEMORY"):
            self.conn.execute(f"PRAGMA {pragma}")
        self.conn.execute("BEGIN")

    def write(self, table: str, cols: tuple[str, ...], data: list[tuple]) -> None:
        if not data:
            return
        conv = [i for i, c in enumerate(cols) if c in ("checked_at", "created_at", "last_checked_at", "first_seen_at",
                                                         "at", "broken_since", "last_healthy_at", "worse_at")]
        if conv:
            data = [tuple(_sqlite_text(v) if i in conv and v is not None else v for i, v in enumerate(row))
                    for row in data]
        marks = ", ".join("?" * len(cols))
        self.conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", data)

    def finish(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.execute("PRAGMA journal_mode = WAL")

    def close(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.conn.close()


class _PgWriter:
    """COPY on one psycopg connection in one transaction; triggers (the foreign-key checks) off for the load
    (session_replication_role = replica, superuser on the bench's own cluster), sequences moved past the ids."""

    def __init__(self, url: str):
        self.engine = get_engine(url)
        self.sa_conn = self.engine.connect()
        driver = self.sa_conn.connection.driver_connection
        assert driver is not None
        self.conn = driver
        self.tables: list[str] = []
        self.sa_conn.exec_driver_sql("SET session_replication_role = replica")
        self.sa_conn.exec_driver_sql("SET statement_timeout = 0")

    def write(self, table: str, cols: tuple[str, ...], data: list[tuple]) -> None:
        if table not in self.tables:
            self.tables.append(table)
        if not data:
            return
        with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
            for row in data:
                cp.write_row(row)

    def finish(self) -> None:
        for table in self.tables:
            self.sa_conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT coalesce(max(id), 1) FROM {table}))"
            )
        self.sa_conn.exec_driver_sql("SET session_replication_role = DEFAULT")
        self.sa_conn.commit()

    def close(self) -> None:
        self.sa_conn.close()
        self.engine.dispose()


# --- reuse between runs ---------------------------------------------------------------------------------
def _marker(url: str, out_dir: Path) -> Path:
    if url.startswith("sqlite:///"):
        return Path(url.split("///", 1)[1] + ".seed.json")
    return out_dir / f"pg-{url.rsplit('/', 1)[-1]}.seed.json"


def ensure_seeded(url: str, plan: Plan, *, reuse: bool, out_dir: Path) -> dict[str, Any] | None:
    """Seed `url` with `plan` unless `reuse` and it already holds that plan (recorded in a marker file next to
    it); returns the seeding info, or None when the database was reused (migrated to head if needed)."""
    marker = _marker(url, out_dir)
    if reuse and marker.exists():
        try:
            done = json.loads(marker.read_text())
        except ValueError:
            done = {}
        if done.get("plan") == plan.describe():
            try:
                if store.at(url).current_revision():
                    store.at(url).upgrade()
                    log(f"reusing {store.mask_url(url)} (seeded {done.get('at')}, {done.get('seconds', 0):.0f} s)")
                    return None
            except Exception as e:  # noqa: BLE001 - a broken/vanished database is simply seeded again
                log(f"cannot reuse {store.mask_url(url)} ({type(e).__name__}); seeding it again")
    marker.unlink(missing_ok=True)
    _wipe(url)
    info = seed(url, plan)
    marker.write_text(json.dumps({"plan": plan.describe(), "at": plan.now.isoformat(), **info}))
    return info


def _wipe(url: str) -> None:
    """An empty database at `url`: the SQLite file removed, or the PostgreSQL database dropped and created."""
    dispose_engine(url)
    if url.startswith("sqlite:///"):
        path = Path(url.split("///", 1)[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        for p in path.parent.glob(path.name + "*"):
            if not p.name.endswith(".seed.json"):
                p.unlink()
        return
    base, name = url.rsplit("/", 1)
    admin = sa.create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
