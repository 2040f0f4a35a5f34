"""Engines, sessions and migrations.

One engine per database URL per process (`get_engine`). SQLite (the default, data/keyhealth.db) runs in
WAL mode with a bounded busy timeout (KEYHEALTH_DB_BUSY_TIMEOUT_S) and foreign keys on; pysqlite's own
transaction handling is switched off so SQLAlchemy emits the BEGIN itself: `BEGIN IMMEDIATE` for writes (the
write lock is taken up front, so two writers queue on busy_timeout instead of failing with "database is locked"
on lock upgrade) and a plain deferred `BEGIN` for reads (readers never block each other or the writer under WAL).
DATABASE_URL=postgresql://… (psycopg 3) works with no code change; sessions there run in UTC, with a
connect timeout and a statement timeout (KEYHEALTH_DB_CONNECT_TIMEOUT_S, KEYHEALTH_DB_STATEMENT_TIMEOUT_S), so
a server that accepts connections but never answers costs seconds, not forever: one bounded connection attempt
plus one retry, after which the failure is remembered for DOWN_MEMORY_S and every further connection in this
process fails at once with the same error (`_ConnectGate`), so a command that needs the database several
times (name check, upgrade, save, audit) does not wait for it again each time. Those timeouts are kept by the
server; a server that is frozen (SIGSTOP, a hung VM) or cut off never sends them, so the client keeps its own deadlines
too: TCP keepalives and libpq's tcp_user_timeout (a dead network), and a per-statement client deadline
(`Deadlines`: a statement, commit or connection ping with no answer within the statement timeout plus 2 s has its
socket shut down, and raises ClientDeadline, which core.store.errors calls "timed_out"). core.store.errors turns
whatever a database throws into one sentence.
"""
from __future__ import annotations

import heapq
import itertools
import math
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import Session

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
UPGRADE_BUSY_S = 30.0  # SQLite: how long an upgrade waits for another process's upgrade (they queue, by design)
_WRITE = "keyhealth_write"

DOWN_MEMORY_S = 60.0  # PostgreSQL: how long a failed connection (attempt + retry) answers every later one at once

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
connect_gates: dict[str, _ConnectGate] = {}  # PostgreSQL engines' connection gates, by URL (tests look at them)
_engines_pid = os.getpid()


def normalize_url(url: str) -> str:
    """Bare postgres URLs get the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


# What Key Health can open: SQLite (the standard library's driver) and PostgreSQL through psycopg 3.
SUPPORTED_DRIVERS = {"sqlite": ("pysqlite",), "postgresql": ("psycopg",)}


class DatabaseUrlError(sa.exc.ArgumentError):
    """DATABASE_URL is malformed or names a database Key Health does not support; `reason` ends the sentence
    (core.store.errors), and never quotes the URL (it may hold a password)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def check_url(url: str) -> None:
    """Refuse, before any driver is imported or any connection tried, a URL that is not a SQLite or PostgreSQL
    (psycopg 3) URL: DatabaseUrlError naming what is wrong."""
    try:
        u = make_url(url)
    except ValueError as e:  # make_url's int() on the port
        raise DatabaseUrlError("is malformed (its port is not a number)" if "int()" in str(e)
                               else "is malformed") from None
    except sa.exc.ArgumentError:
        raise DatabaseUrlError("is not a URL (it should start with sqlite:/// or postgresql://)") from None
    backend, driver = u.get_backend_name(), u.get_driver_name()
    if backend not in SUPPORTED_DRIVERS:
        raise DatabaseUrlError(f"names {backend}, a database Key Health does not support")
    if driver not in SUPPORTED_DRIVERS[backend]:
        raise DatabaseUrlError(f"asks for the {driver} driver, which Key Health does not use "
                               f"(write {backend}:// without a driver name)")


class DatabaseDirError(OSError):
    """The folder for a SQLite file does not exist and could not be created (core.store.errors names why)."""


def _sqlite_on_connect(busy_ms: int):
    def on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" hook issue BEGIN [IMMEDIATE]
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoint; safe with WAL
        finally:
            cur.close()

    return on_connect


class ClientDeadline(sa.exc.OperationalError):
    """A PostgreSQL statement (or commit, or ping) got no answer within the client's own deadline: its connection
    was shut down. The server may be frozen or unreachable; it never sent its own statement timeout."""


class Deadlines:
    """One watchdog thread for every PostgreSQL connection of the process: `arm(dbapi_conn, seconds)` before a
    call that waits on the server, `disarm(dbapi_conn)` after it. A call still waiting at its deadline has its
    socket shut down (the driver then raises at once) and the connection is marked, so the error it raises can be
    named a client timeout (`fired`)."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, int]] = []  # (deadline, token, id(conn)); stale entries skipped
        self._armed: dict[int, tuple[int, Any, float]] = {}  # id(conn) -> (token, conn, deadline)
        self._fired: set[int] = set()
        self._exempt: set[int] = set()  # connections that turned the statement timeout off (long bulk work)
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, conn: Any, seconds: float) -> None:
        with self._cv:
            cid = id(conn)
            self._fired.discard(cid)
            if cid in self._exempt:
                return
            token, at = next(self._tokens), time.monotonic() + seconds
            self._armed[cid] = (token, conn, at)
            if len(self._heap) > 4 * len(self._armed) + 1024:  # mostly stale: rebuild from what is armed
                self._heap = [(d, t, c) for c, (t, _, d) in self._armed.items()]
                heapq.heapify(self._heap)
            else:
                heapq.heappush(self._heap, (at, token, cid))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="db-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][1] == token:  # the new earliest deadline: the watchdog sleeps until it
                self._cv.notify()

    def disarm(self, conn: Any) -> None:
        with self._cv:
            self._armed.pop(id(conn), None)

    def exempt(self, conn: Any, on: bool = True) -> None:
        """No deadline on this connection (it turned the server's statement timeout off) until `on` is False."""
        with self._cv:
            (self._exempt.add if on else self._exempt.discard)(id(conn))
            self._armed.pop(id(conn), None)

    def expire_all(self) -> None:
        """Every call waiting on a server now ends at once (the caller has decided the database is gone)."""
        with self._cv:
            now = time.monotonic()
            for cid, (token, conn, _) in list(self._armed.items()):
                self._armed[cid] = (token, conn, now)
                heapq.heappush(self._heap, (now, token, cid))
            self._cv.notify()

    def fired(self, conn: Any) -> bool:
        with self._cv:
            return id(conn) in self._fired

    def _run(self) -> None:
        while True:
            with self._cv:
                while True:
                    now = time.monotonic()
                    while self._heap and self._armed.get(self._heap[0][2], (None,))[0] != self._heap[0][1]:
                        heapq.heappop(self._heap)  # disarmed or re-armed since
                    if self._heap and self._heap[0][0] <= now:
                        _, _, cid = heapq.heappop(self._heap)
                        _, conn, _ = self._armed.pop(cid)
                        self._fired.add(cid)
                        break
                    self._cv.wait(self._heap[0][0] - now if self._heap else 60.0)
            _shut(conn)


def _shut(conn: Any) -> None:
    """Shut down a psycopg connection's socket under a call that waits on it (the call then fails at once)."""
    try:
        fd = conn.pgconn.socket
        sock = socket.socket(fileno=os.dup(fd))
    except Exception:  # noqa: BLE001 - already closed: nothing waits on it
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


DEADLINES = Deadlines()
_NO_TIMEOUT = re.compile(r"\s*SET\s+(?:LOCAL\s+|SESSION\s+)?statement_timeout\s*(?:=|TO)\s*'?0'?\s*;?\s*$", re.I)


def _guard_postgres(engine: Engine, statement_s: float, connect_s: float) -> None:
    """Client-side deadlines on every statement, commit, rollback and pool ping of a PostgreSQL engine."""
    deadline = statement_s + 2.0  # the server's own statement timeout comes first when the server can send it
    ping = min(deadline, connect_s)

    def arm_cursor(conn, cursor, statement, parameters, context, executemany) -> None:
        raw = conn.connection.dbapi_connection
        if _NO_TIMEOUT.match(statement):  # bulk work that turned the server's limit off (bench seeding): no ours
            DEADLINES.exempt(raw)
        DEADLINES.arm(raw, deadline)

    def disarm_cursor(conn, cursor, statement, parameters, context, executemany) -> None:
        DEADLINES.disarm(conn.connection.dbapi_connection)

    def arm_end(conn) -> None:  # commit / rollback: disarmed when the connection goes back to the pool
        DEADLINES.arm(conn.connection.dbapi_connection, deadline)

    def disarm_conn(dbapi_conn, *_: Any) -> None:
        DEADLINES.exempt(dbapi_conn, on=False)  # back in the pool: the next user gets the deadline again

    def named(ctx) -> Any:
        dbapi_conn = getattr(ctx.connection, "connection", None)
        raw = getattr(dbapi_conn, "dbapi_connection", None) if dbapi_conn is not None else None
        if raw is not None:
            DEADLINES.disarm(raw)
            if DEADLINES.fired(raw) and isinstance(ctx.original_exception, Exception):
                ctx.is_disconnect = True
                return ClientDeadline(ctx.statement, None, ctx.original_exception)
        return None

    sa.event.listen(engine, "before_cursor_execute", arm_cursor)
    sa.event.listen(engine, "after_cursor_execute", disarm_cursor)
    sa.event.listen(engine, "commit", arm_end)
    sa.event.listen(engine, "rollback", arm_end)
    sa.event.listen(engine, "handle_error", named)
    sa.event.listen(engine.pool, "checkin", disarm_conn)
    sa.event.listen(engine.pool, "reset", disarm_conn)
    dialect = engine.dialect
    do_ping = dialect.do_ping

    def guarded_ping(dbapi_conn: Any) -> bool:
        DEADLINES.arm(dbapi_conn, ping)
        try:
            return do_ping(dbapi_conn)
        finally:
            DEADLINES.disarm(dbapi_conn)

    dialect.do_ping = guarded_ping  # type: ignore[method-assign,assignment]  # this engine's dialect only


def _on_sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


class _ConnectGate:
    """PostgreSQL connections for one engine: one bounded attempt (the connect timeout) plus one retry (half of
    it), so a server that never answers costs 5 + 3 s at the default. After both fail, the failure is remembered
    for DOWN_MEMORY_S and every connection asked for meanwhile fails at once with the same error (a fresh
    instance of the driver's error class, with its message), not after another connect timeout each."""

    def __init__(self, memory_s: float | None = None, clock=time.monotonic):
        self.memory_s = DOWN_MEMORY_S if memory_s is None else memory_s
        self.clock = clock
        self._lock = threading.Lock()
        self._down: tuple[float, BaseException] | None = None

    def _remembered(self) -> BaseException | None:
        with self._lock:
            if self._down is None:
                return None
            at, err = self._down
            if self.clock() - at >= self.memory_s:
                self._down = None
                return None
            return err

    def __call__(self, dialect, _conn_rec, cargs, cparams):  # SQLAlchemy's "do_connect" event
        err = self._remembered()
        if err is not None:
            raise _again(err)
        last: BaseException | None = None
        for attempt in range(2):  # one bounded attempt plus one retry, the retry with half the connect timeout
            params = dict(cparams)
            if attempt and isinstance(params.get("connect_timeout"), int | float):
                params["connect_timeout"] = max(1, math.ceil(params["connect_timeout"] / 2))
            try:
                conn = dialect.connect(*cargs, **params)
            except dialect.loaded_dbapi.OperationalError as e:
                last = e
                continue
            with self._lock:
                self._down = None
            return conn
        assert last is not None
        with self._lock:
            self._down = (self.clock(), last)
        raise last


def _again(err: BaseException) -> BaseException:
    """A fresh copy of a remembered driver error (same class, same message): raising one instance twice would
    chain its old traceback into the new one."""
    try:
        return type(err)(*err.args)
    except Exception:  # noqa: BLE001 - a class that cannot be rebuilt from its args: its base with the message
        return RuntimeError(str(err))


def _make_engine(url: str) -> Engine:
    check_url(url)
    u = make_url(url)
    from core.config import settings  # read when an engine is made (once per URL per process)

    limits = settings().db
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            folder = Path(u.database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise DatabaseDirError(e.errno, e.strerror, e.filename or str(folder)) from e
        busy_ms = int(limits.busy_timeout_s * 1000)
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": limits.busy_timeout_s},
        )
        sa.event.listen(engine, "connect", _sqlite_on_connect(busy_ms))
        sa.event.listen(engine, "begin", _on_sqlite_begin)
        return engine
    if u.get_backend_name() == "postgresql":
        statement_ms = int(limits.statement_timeout_s * 1000)
        engine = sa.create_engine(
            url,
            pool_pre_ping=True,
            pool_timeout=limits.statement_timeout_s,  # waiting for a pooled connection is bounded too
            connect_args={
                # libpq semantics: whole seconds, the whole connection set-up (TCP, TLS, start-up, auth)
                "connect_timeout": max(1, math.ceil(limits.connect_timeout_s)),
                # jit=off: the dashboard's queries are short; JIT compiling them cost up to 270 ms each at 1M checks
                "options": f"-c timezone=UTC -c statement_timeout={statement_ms} -c jit=off",
                # a dead peer or network: TCP keepalives, and unacknowledged data given up after the client
                # deadline (libpq tcp_user_timeout, ms). A frozen server still acknowledges (its kernel does):
                # the per-statement client deadline (_guard_postgres) covers that.
                "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
                "tcp_user_timeout": int((limits.statement_timeout_s + 2.0) * 1000),
            },
        )
        gate = connect_gates[url] = _ConnectGate()
        sa.event.listen(engine, "do_connect", gate)
        _guard_postgres(engine, limits.statement_timeout_s, limits.connect_timeout_s)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def get_engine(url: str) -> Engine:
    """The process's engine for `url`, created once and cached.

    After a fork the child gets fresh engines (pooled connections must not cross processes).
    """
    global _engines_pid
    key = normalize_url(url)
    with _lock:
        if _engines_pid != os.getpid():
            for eng in _engines.values():
                eng.dispose(close=False)
            _engines.clear()
            _engines_pid = os.getpid()
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _make_engine(key)
        return engine


def dispose_engine(url: str) -> None:
    """Close and forget the engine for `url` (tests use this before dropping a database)."""
    key = normalize_url(url)
    with _lock:
        engine = _engines.pop(key, None)
    if engine is not None:
        engine.dispose()


def _bind(url: str, write: bool) -> Engine:
    engine = get_engine(url)
    return engine.execution_options(**{_WRITE: True}) if write else engine


@contextmanager
def connect(url: str, *, write: bool = False) -> Iterator[Connection]:
    """A Core connection inside one transaction: committed on success, rolled back on error."""
    with _bind(url, write).begin() as conn:
        yield conn


@contextmanager
def session(url: str, *, write: bool = False) -> Iterator[Session]:
    """An ORM (SQLModel) session inside one transaction: committed on success, rolled back on error.

    Use write=True whenever the session will write (on SQLite it then holds the write lock from the start).
    """
    with Session(_bind(url, write), expire_on_commit=False) as s:
        with s.begin():
            yield s


def alembic_config(url: str):
    """An Alembic Config for this project, built in code (alembic.ini is only for the alembic CLI)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def newest_revision() -> str:
    """The newest migration's revision: migration files are named `NNNN_what.py` with revision "NNNN" (a test
    holds Alembic's own head to this)."""
    return max(p.name[:4] for p in (MIGRATIONS_DIR / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def _at_newest(url: str) -> bool:
    """True when the database already is at the newest revision (one query; no Alembic import). Any trouble
    reading it (no table yet, a damaged file) says False: the full upgrade then runs, and reports it."""
    try:
        with _bind(url, False).connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return False
            found = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    except sa.exc.SQLAlchemyError:
        return False
    return found == [newest_revision()]


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (default head). Safe to call at every start, and from
    several processes at once (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock). A database already at
    the newest revision costs one query: every CLI process and dashboard start calls this."""
    if revision == "head" and _at_newest(url):
        return
    from alembic import command

    cfg = alembic_config(url)
    with _bind(url, True).connect() as conn:
        raw = conn.connection.dbapi_connection if conn.dialect.name == "sqlite" else None
        if raw is not None:  # waiting for another process's upgrade is expected: longer than a write's wait
            from core.config import settings

            raw.execute(f"PRAGMA busy_timeout = {int(max(settings().db.busy_timeout_s, UPGRADE_BUSY_S) * 1000)}")
        try:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            conn.commit()
        finally:
            if raw is not None:
                from core.config import settings

                raw.execute(f"PRAGMA busy_timeout = {int(settings().db.busy_timeout_s * 1000)}")


def downgrade(url: str, revision: str) -> None:
    """Take the database at `url` back to `revision` (each migration's downgrade in turn): for tests and for
    stepping back a release."""
    from alembic import command

    cfg = alembic_config(url)
    with _bind(url, True).connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
        conn.commit()


def current_revision(url: str) -> str | None:
    """The Alembic revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with _bind(url, False).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def mask_url(url: str) -> str:
    """The database URL without its password (for the About page and error messages)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy understands: show only its scheme, never the rest
        return url.split(":", 1)[0] + ":…"


class Database:
    """One database, named once: the only thing in Key Health that holds a database URL.

    Everything that reads or writes the store is handed a Database (or a Store bound to one), never a URL,
    so which database is written is decided where the runtime is built, not by a default argument.
    """

    __slots__ = ("url",)

    def __init__(self, url: str):
        if not url:
            raise ValueError("a Database needs a URL")
        self.url = normalize_url(url)

    def __repr__(self) -> str:
        return f"Database({self.label!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Database) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    @property
    def label(self) -> str:
        """The URL without its password."""
        return mask_url(self.url)

    @property
    def engine(self) -> Engine:
        return get_engine(self.url)

    def connect(self, *, write: bool = False):
        """A Core connection inside one transaction (see `connect`)."""
        return connect(self.url, write=write)

    def session(self, *, write: bool = False):
        """An ORM session inside one transaction (see `session`)."""
        return session(self.url, write=write)

    def upgrade(self, revision: str = "head") -> None:
        upgrade(self.url, revision)

    def downgrade(self, revision: str) -> None:
        downgrade(self.url, revision)

    def current_revision(self) -> str | None:
        return current_revision(self.url)

    def dispose(self) -> None:
        dispose_engine(self.url)
