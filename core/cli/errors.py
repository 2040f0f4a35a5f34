"""The CLI's exit statuses, and the one error base class that carries them.

A command that cannot go on raises a `CliError` subclass whose one sentence goes to stderr (`error: …`) and whose
`status` is the exit code. Errors raised below the CLI (the store's, the settings', the catalogue's) are turned
into a `CliError` by `as_cli_error`, by their class, in one table. Nothing heavy is imported here: a class from
a module that was never imported cannot have been raised, so `as_cli_error` only looks at loaded modules.
"""
from __future__ import annotations

import sys
from enum import IntEnum
from typing import ClassVar


class ExitStatus(IntEnum):
    """Every exit code of `keyhealth` (`python -m core`)."""

    OK = 0  # healthy / done
    VERDICT = 1  # a key is not healthy, a recheck line failed, a sample dataset failed, a calibration mismatched
    USAGE = 2  # bad invocation or bad input: one sentence naming the problem and the fix
    DATABASE = 3  # the database could not be used (one sentence naming the cause and the fix; core.store.errors)
    UNREACHABLE = 4  # Stripe gave no usable answer (our network, or a storm of 429/5xx answers)
    UNFINISHED = 5  # a recheck's run is unfinished: other workers' claims never finished
    SIGINT = 130  # a recheck stopped by SIGINT (after printing which lines it saved)
    SIGTERM = 143  # … or by SIGTERM


# a recheck stopped by a signal exits with the signal's status
EXIT_SIGNAL = {"SIGINT": ExitStatus.SIGINT, "SIGTERM": ExitStatus.SIGTERM}


class CliError(Exception):
    """One sentence for the person at the terminal; `status` is the exit code it ends the command with."""

    status: ClassVar[ExitStatus] = ExitStatus.USAGE


class UsageError(CliError):
    """Bad invocation or bad input: one sentence, exit 2."""

    status = ExitStatus.USAGE


class DatabaseError(CliError):
    """The database could not be used: one sentence (cause and fix), exit 3."""

    status = ExitStatus.DATABASE


def as_cli_error(e: BaseException) -> CliError | None:
    """`e` as a CliError (itself when it is one), or None when it is no error the CLI explains in one sentence
    (a bug: its traceback is shown). The one table of errors raised below the CLI, by class (subclasses too)."""
    if isinstance(e, CliError):
        return e
    from core.config import SettingError  # light

    if isinstance(e, SettingError):
        return UsageError(str(e))
    if "core.engine.catalogue" in sys.modules:  # not loaded: none of its errors can have been raised
        from core.engine.catalogue import CatalogueError

        if isinstance(e, CatalogueError):
            return UsageError(str(e))
    if "core.store" in sys.modules:  # (SQLAlchemy: imported only by the commands that use the database)
        from core.store import DatabaseFailure, StoreInputError  # StoreInputError: UnknownTenantError too

        if isinstance(e, DatabaseFailure):
            return DatabaseError(str(e))
        if isinstance(e, StoreInputError):
            return UsageError(str(e))
    return None
