"""What went wrong with the database, in one sentence: the cause and the fix.

Every exception the store can raise on its way to SQLite or PostgreSQL (SQLAlchemy's, the drivers', Alembic's,
the OS's when the data folder cannot be made) is classified here into a kind and one sentence, so that the
dashboard and the CLI say the same thing and never show a traceback:

    problem = classify(exc, db)         # DatabaseProblem(kind="corrupt", cause=..., fix=...); db: Database or URL
    problem.sentence                    # "The SQLite file /srv/kh.db is damaged ...; restore it ... ."
    problem.because("The audit trail could not be read")   # the same, after what the caller was doing

    with guard(db):                     # any database exception inside becomes DatabaseFailure(problem)
        Store(db).list_tenants()

Kinds: read_only, corrupt, cannot_create, locked, disk_full (SQLite); unreachable, timed_out, auth,
missing_database (PostgreSQL); schema, misconfigured, other (either). The sentence names where the database is
(the file, or PostgreSQL's host, port and database name; never a password) and never quotes the driver's own
message, which could carry input. StoreInputError (bad input, not a broken database) is not handled here.
"""
from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from core.config import DatabaseSettings, settings
from core.store.db import Database, DatabaseDirError, DatabaseUrlError, mask_url, normalize_url

KINDS = (
    "read_only", "corrupt", "cannot_create", "locked", "disk_full",
    "unreachable", "timed_out", "auth", "missing_database",
    "schema", "misconfigured", "other",
)


@dataclass(frozen=True)
class DatabaseProblem:
    kind: str
    cause: str  # starts lower case unless it starts with a name ("PostgreSQL at …")
    fix: str

    @property
    def sentence(self) -> str:
        return f"{self.cause[:1].upper()}{self.cause[1:]}; {self.fix}."

    def because(self, doing: str) -> str:
        """One sentence: what could not be done, then why and the fix."""
        return f"{doing} because {self.cause}; {self.fix}."

    def __str__(self) -> str:
        return self.sentence


class DatabaseFailure(Exception):
    """A database could not be used; str() is the one sentence (cause and fix)."""

    def __init__(self, problem: DatabaseProblem):
        super().__init__(problem.sentence)
        self.problem = problem

    @property
    def kind(self) -> str:
        return self.problem.kind


# What a page catches around its store calls (`except DATABASE_ERRORS as e`); anything else is a bug for app.py's
# catch-all. guard() and is_database_error() look further (driver and Alembic errors, wrapped or not).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, sqlite3.Error, DatabaseDirError, DatabaseFailure)


def _chain(exc: BaseException) -> list[BaseException]:
    """exc, the DBAPI error SQLAlchemy wrapped, and every cause/context below them (no repeats)."""
    out: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or any(e is seen for seen in out):
            continue
        out.append(e)
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]
    return out


def _is_db_exception(e: BaseException) -> bool:
    if isinstance(e, DATABASE_ERRORS):
        return True
    mod = type(e).__module__ or ""
    if mod.startswith(("sqlalchemy", "psycopg")):
        return True
    return mod.startswith("alembic") and type(e).__name__ == "CommandError"


def is_database_error(exc: BaseException) -> bool:
    """True when `exc` (or what it wraps) came from the database layer rather than from input or a bug."""
    from core.store.rules import StoreInputError

    if isinstance(exc, StoreInputError):
        return False
    return any(_is_db_exception(e) for e in _chain(exc))


# --- where the database is -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Where:
    backend: str  # sqlite | postgresql | other
    label: str  # "the SQLite file /x/k.db", "PostgreSQL at db.internal:5432 (database keyhealth)"
    path: Path | None = None  # SQLite only
    database: str | None = None


def _url(db: Database | str | None) -> str:
    if isinstance(db, Database):
        return db.url
    return normalize_url(db or settings().database_url)


def _where(url: str) -> _Where:
    from sqlalchemy.engine import make_url

    raw = url
    try:
        u = make_url(raw)
        backend = u.get_backend_name()
    except Exception:  # noqa: BLE001  (not a URL SQLAlchemy understands)
        return _Where("other", f"the database at {mask_url(raw)}")
    if backend == "sqlite":
        db = u.database or ":memory:"
        if db.startswith("file:"):
            db = db[5:].split("?", 1)[0]
        if db in ("", ":memory:"):
            return _Where("sqlite", "the in-memory SQLite database")
        path = Path(db).expanduser()
        return _Where("sqlite", f"the SQLite file {path}", path=path)
    if backend == "postgresql":
        host = u.host or "the local socket"
        at = f"{host}:{u.port or 5432}" if u.host else host
        name = u.database or ""
        return _Where("postgresql", f"PostgreSQL at {at}" + (f" (database {name})" if name else ""), database=name)
    return _Where(backend, f"the database at {mask_url(raw)}")


# --- classification ------------------------------------------------------------------------------------
def _text(chain: list[BaseException]) -> str:
    """The drivers' messages, lower-cased, for matching only (never shown). SQLAlchemy's wrapper is left out
    when it wraps a driver error: its text repeats the SQL and the parameters, which hold input."""
    parts = [
        str(e) for e in chain
        if not ((type(e).__module__ or "").startswith("sqlalchemy") and getattr(e, "orig", None) is not None)
    ]
    return " | ".join(parts).lower()


def _has(text: str, *needles: str) -> bool:
    return any(n in text for n in needles)


def _dir_problem(where: _Where, e: OSError) -> DatabaseProblem:
    folder = e.filename or (str(where.path.parent) if where.path else "?")
    why = {
        errno.ENOTDIR: "a file is in the way",
        errno.EEXIST: "a file is in the way",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "the file system is read-only",
        errno.ENOSPC: "the disk is full",
        errno.ENOENT: "that place does not exist",
    }.get(e.errno or 0, os.strerror(e.errno) if e.errno else type(e).__name__)
    return DatabaseProblem(
        "cannot_create",
        f"the folder {folder} for {where.label} cannot be created ({why})",
        "create it, or point KEYHEALTH_DATA_DIR or DATABASE_URL at a folder Key Health can write",
    )


def _writable(p: Path) -> bool:
    return os.access(p, os.W_OK)


def _sqlite_cannot_open(where: _Where) -> DatabaseProblem | None:
    """SQLite says only "unable to open database file": look at the file system to say why."""
    p = where.path
    if p is None:
        return None
    if p.is_dir():
        return DatabaseProblem("cannot_create", f"the path {p} is a folder, not a SQLite file",
                               "point DATABASE_URL at a file inside it (for example keyhealth.db)")
    if not p.parent.is_dir():
        return DatabaseProblem("cannot_create", f"the folder {p.parent} for {where.label} does not exist",
                               "create it, or point KEYHEALTH_DATA_DIR or DATABASE_URL at an existing folder")
    if (p.exists() and not _writable(p)) or not _writable(p.parent):
        return _read_only(where)
    return None


def _read_only(where: _Where) -> DatabaseProblem:
    return DatabaseProblem(
        "read_only",
        f"{where.label} is read-only (the file or its folder cannot be written)",
        "make both writable for the user running Key Health, or point DATABASE_URL at a writable database",
    )


@dataclass(frozen=True)
class _Clues:
    """What a failure shows: the drivers' text (lower-cased), the exception classes' names, where the database is,
    and the configured limits."""

    text: str
    names: frozenset[str]
    where: _Where
    limits: DatabaseSettings

    def has(self, *needles: str) -> bool:
        return _has(self.text, *needles)

    def fields(self) -> dict[str, object]:
        """The values a rule's sentence may name ({label}, {url}, {database}, and the limits in seconds)."""
        label, limits = self.where.label, self.limits
        return {
            "label": label, "url": label.removeprefix("the database at "), "database": self.where.database,
            "busy": limits.busy_timeout_s, "connect": limits.connect_timeout_s,
            "statement": limits.statement_timeout_s, "deadline": limits.statement_timeout_s + 2.0,
        }


@dataclass(frozen=True)
class _Rule:
    """When `when` holds, the problem is `kind` with `cause` (a template over _Clues.fields) and `fix`; or, with
    `make`, whatever it finds for that place (None: no answer there, the next rule decides)."""

    when: Callable[[_Clues], bool]
    kind: str = ""
    cause: str = ""
    fix: str = ""
    make: Callable[[_Where], DatabaseProblem | None] | None = None

    def problem(self, c: _Clues) -> DatabaseProblem | None:
        if not self.when(c):
            return None
        if self.make is not None:
            return self.make(c.where)
        return DatabaseProblem(self.kind, self.cause.format(**c.fields()), self.fix)


_URL_FIX = "use sqlite:///path/to/keyhealth.db or postgresql://user:password@host:5432/name"

# In order: the first rule that holds names the problem.
_RULES: tuple[_Rule, ...] = (
    _Rule(lambda c: bool(c.names & {"ArgumentError", "NoSuchModuleError"}), "misconfigured",
          "DATABASE_URL ({url}) is not a database URL Key Health can use", _URL_FIX),
    _Rule(lambda c: "CommandError" in c.names and c.has("can't locate revision", "no such revision"), "schema",
          "{label} was written by a newer version of Key Health (its schema is unknown to this one)",
          "run the newer Key Health with it, or point DATABASE_URL at another database"),
    # SQLite
    _Rule(lambda c: c.has("file is not a database", "malformed", "file is encrypted", "disk i/o error",
                          "sqlite_corrupt"), "corrupt",
          "{label} is damaged or is not a SQLite database (corrupt)",
          "restore it from a backup, or move it aside so that Key Health starts a new, empty one"),
    _Rule(lambda c: c.has("readonly database", "read-only database", "read-only file system", "readonly file system"),
          make=_read_only),
    _Rule(lambda c: c.has("database or disk is full", "no space left on device"), "disk_full",
          "the disk holding {label} is full", "free space there and try again"),
    _Rule(lambda c: c.has("database is locked", "database table is locked", "database schema is locked"), "locked",
          "{label} stayed locked by another process for more than {busy:g} s",
          "try again, and if it repeats close whatever holds it (another Key Health, a sqlite3 shell) or raise "
          "KEYHEALTH_DB_BUSY_TIMEOUT_S"),
    _Rule(lambda c: c.has("unable to open database file"), make=_sqlite_cannot_open),
    # PostgreSQL (and pools)
    # core.store.db: no answer within the client's own deadline (frozen, cut off)
    _Rule(lambda c: "ClientDeadline" in c.names, "timed_out",
          "{label} did not answer a query within {deadline:g} s (client deadline: the server is frozen, overloaded "
          "or cut off)",
          "check the server and the network to it, and try again (KEYHEALTH_DB_STATEMENT_TIMEOUT_S sets the limit)"),
    _Rule(lambda c: "ConnectionTimeout" in c.names or c.has("connection timeout expired", "timeout expired"),
          "timed_out", "{label} did not answer within {connect:g} s (connect timeout)",
          "check that the server is up and not overloaded and that DATABASE_URL names a PostgreSQL server, or "
          "raise KEYHEALTH_DB_CONNECT_TIMEOUT_S"),
    _Rule(lambda c: c.has("statement timeout", "lock timeout", "canceling statement"), "timed_out",
          "a query to {label} ran longer than {statement:g} s and was cancelled (statement timeout)",
          "try again, and if it repeats check the server's load or raise KEYHEALTH_DB_STATEMENT_TIMEOUT_S"),
    _Rule(lambda c: "TimeoutError" in c.names and c.has("queuepool", "connection timed out", "pool"), "timed_out",
          "every connection to {label} stayed busy too long", "try again in a moment"),
    _Rule(lambda c: c.has("password authentication failed", "no password supplied", "pg_hba.conf",
                          "authentication failed") or (c.has("role") and c.has("does not exist")), "auth",
          "{label} refused the user name or password in DATABASE_URL",
          "fix the credentials there, or let that user in on the server (pg_hba.conf)"),
    _Rule(lambda c: c.where.backend == "postgresql" and c.has("database") and c.has("does not exist"),
          "missing_database", "{label} has no database named {database}",
          "create it (createdb) or fix the database name in DATABASE_URL"),
    _Rule(lambda c: c.has("server closed the connection", "terminating connection", "connection is closed",
                          "consuming input failed", "connection already closed",
                          "the database system is shutting down", "the database system is starting up",
                          "eof detected", "ssl syscall error", "connection reset", "broken pipe", "is lost"),
          "unreachable", "the connection to {label} was lost (the server stopped or restarted)",
          "try again once it is back up"),
    _Rule(lambda c: c.has("connection refused", "could not connect", "connection failed", "failed to resolve host",
                          "name or service not known", "could not translate host name", "no route to host",
                          "network is unreachable", "nodename nor servname"),
          "unreachable", "{label} refused the connection or could not be found (it is down, or the host or port is "
          "wrong)", "start PostgreSQL, or fix the host and port in DATABASE_URL"),
    _Rule(lambda c: c.has("no such table", "undefinedtable", "relation") and c.has("no such table", "does not exist"),
          "schema", "{label} has no Key Health tables (it was never set up)",
          "restart Key Health so that it creates them, or run `alembic upgrade head`"),
)


def classify(exc: BaseException, db: Database | str | None = None) -> DatabaseProblem:
    """The kind of database problem behind `exc` and one sentence naming the cause and the fix. `db`: the
    Database (or URL) that failed; default the configured one."""
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, DatabaseFailure):
            return e.problem
    where = _where(_url(db))
    limits: DatabaseSettings = settings().db

    for e in chain:
        if isinstance(e, DatabaseDirError):
            return _dir_problem(where, e)
        if isinstance(e, DatabaseUrlError):
            return DatabaseProblem("misconfigured", f"DATABASE_URL ({mask_url(_url(db))}) {e.reason}", _URL_FIX)

    clues = _Clues(_text(chain), frozenset(type(e).__name__ for e in chain), where, limits)
    for rule in _RULES:
        found = rule.problem(clues)
        if found is not None:
            return found

    kind = type(exc).__name__
    return DatabaseProblem("other", f"{where.label} failed ({kind})",
                           "try again, and if it repeats see the About page for which database Key Health uses")


@contextmanager
def guard(db: Database | str | None = None) -> Iterator[None]:
    """Run a block of store calls; a database exception inside leaves as DatabaseFailure (one sentence).

    Bad input (StoreInputError) and anything not from the database pass through unchanged."""
    try:
        yield
    except DatabaseFailure:
        raise
    except Exception as e:
        if not is_database_error(e):
            raise
        raise DatabaseFailure(classify(e, db)) from e
