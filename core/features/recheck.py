"""Recheck many tenants' keys from `tenant,key` lines: each checked in turn, each result recorded.

Keys pass through memory only: a bad line is reported by its number and a masked form, never its text.

A run always knows exactly which lines it saved. Every line ends as one of: recorded (in `results`), failed
(in `failed_lines`, with one sentence saying why; a database problem is named by core.store.errors), or not
reached (the run stopped first: interrupted, or the database became unusable). SIGINT and SIGTERM are held
while a line is being saved (`SignalGate`), so an interrupt never leaves a line saved but unreported.
"""
from __future__ import annotations

import csv
import io
import re
import signal
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Protocol

from core.engine.result import CheckResult
from core.store import StoreInputError, validate_tenant_name
from core.store.errors import DatabaseProblem

MAX_LINES = 10_000  # standard input (a file someone pipes by hand)
MAX_SOURCE_LINES = 1_000_000  # a key-source command (the whole fleet: 20,000 tenants and more)
MAX_LINE_CHARS = 11_000  # a tenant name (100) and the longest paste intake reads (10,000), with room to spare


@dataclass
class BatchLine:
    line: int
    tenant: str
    raw_key: str = field(repr=False)


@dataclass
class BatchReport:
    recorded: int = 0
    failed_lines: list[dict] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)
    not_reached: list[int] = field(default_factory=list)  # lines the run stopped before saving
    interrupted: str | None = None  # "SIGINT" | "SIGTERM" when a signal stopped the run
    database_problem: DatabaseProblem | None = None  # set when the database stopped the run (or failed a line)
    unreachable: str | None = None  # why the batch stopped: Stripe never answered (our side)

    def to_json(self) -> dict:
        return {
            "recorded": self.recorded,
            "failed_lines": self.failed_lines,
            "results": self.results,
            "not_reached": self.not_reached,
            "interrupted": self.interrupted,
            "database_problem": self.database_problem.sentence if self.database_problem else None,
            "unreachable": self.unreachable,
        }

    @property
    def all_healthy(self) -> bool:
        return (not self.failed_lines and not self.not_reached and self.interrupted is None
                and all(r["status"] == "healthy" for r in self.results))


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException, so no `except Exception` on the way swallows it)."""

    def __init__(self, signame: str):
        super().__init__(signame)
        self.signame = signame


class SignalGate:
    """SIGINT and SIGTERM raise Interrupted in the main thread, except while `held()`: then the signal waits
    until the block is done (a line being saved is saved and reported, or neither)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._held = 0
        self._pending: str | None = None

    def _handler(self, signum, _frame) -> None:
        name = signal.Signals(signum).name
        if self._held:
            self._pending = self._pending or name
            return
        raise Interrupted(name)

    @contextmanager
    def installed(self) -> Iterator[SignalGate]:
        previous = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    @contextmanager
    def held(self) -> Iterator[None]:
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
        if not self._held and self._pending:
            name, self._pending = self._pending, None
            raise Interrupted(name)


# The database failures a run carries on after (the next line may well save): another process held the lock.
# Anything else (unreachable, read-only, corrupt, timed out, ...) stops the run: the remaining keys are not swept
# for nothing, and their lines are reported as not reached.
CARRY_ON = frozenset({"locked"})
_KEYISH_FIELD = re.compile(r"^\s*(?:rk|sk|pk|rkcs)_(?:test|live)_\S+\s*$")
SWAPPED = ("The columns look swapped (a key first, then a tenant name); write each line as tenant,key, "
           "with the tenant first.")


def parse_lines(text: str, max_lines: int = MAX_LINES) -> tuple[list[BatchLine], list[dict]]:
    """`tenant,key` per line (a `tenant,key` header and blank lines are skipped).

    Lines end at "\n" only (a stray \v, \f or U+2028 inside a line does not start a new one, so a line is
    never split into a bogus second record); a leading byte-order mark is dropped; a line with an unclosed
    quote (a quoted field cannot span lines here) is refused whole.
    """
    entries: list[BatchLine] = []
    failed: list[dict] = []
    text = text.removeprefix("\ufeff")
    for n, raw_line in enumerate(text.split("\n"), start=1):
        raw_line = raw_line.removesuffix("\r")
        if not raw_line.strip() or raw_line.lstrip().startswith("#"):
            continue
        if n > max_lines:
            failed.append({"line": n, "problem": f"Only the first {max_lines} lines are read; split the file."})
            break
        if len(raw_line) > MAX_LINE_CHARS:
            failed.append({"line": n, "problem": f"The line is {len(raw_line)} characters long, far more than a "
                                                 "tenant name and a key; put one tenant,key pair on each line."})
            continue
        if raw_line.count('"') % 2:
            failed.append({"line": n, "problem": "The line has an unclosed quote (a quoted field cannot span lines); "
                                                 "close the quote or remove the line break inside it."})
            continue
        try:
            fields = next(csv.reader(io.StringIO(raw_line), skipinitialspace=True, strict=True))
        except (csv.Error, StopIteration):
            failed.append({"line": n, "problem": "The line is not valid CSV; write it as tenant,key."})
            continue
        if n == 1 and [f.strip().lower() for f in fields] == ["tenant", "key"]:
            continue
        if n == 1 and [f.strip().lower() for f in fields] == ["key", "tenant"]:
            failed.append({"line": n, "problem": "The header reads key,tenant, so the columns are swapped; put the "
                                                 "tenant first on every line (tenant,key)."})
            continue
        if len(fields) != 2:
            failed.append(
                {
                    "line": n,
                    "problem": f"The line has {len(fields)} field{'s' if len(fields) != 1 else ''}, not 2; "
                    "write it as tenant,key (quote a tenant name that contains a comma).",
                }
            )
            continue
        if _KEYISH_FIELD.match(fields[0]) and not _KEYISH_FIELD.match(fields[1]):
            failed.append({"line": n, "problem": SWAPPED})
            continue
        tenant, key = fields
        try:
            tenant = validate_tenant_name(tenant)
        except StoreInputError as e:
            failed.append({"line": n, "problem": str(e)})
            continue
        if not key.strip():
            failed.append({"line": n, "problem": "The key is empty; put the tenant's restricted key after the comma."})
            continue
        entries.append(BatchLine(n, tenant, key))
    return entries, failed


class Recorded(Protocol):
    """What recording one line gives back (core.service.Checked)."""

    result: CheckResult
    save_problem: str | None
    database_problem: DatabaseProblem | None

    @property
    def saved(self) -> bool: ...


def recheck(
    entries: Iterable[BatchLine],
    check: Callable[[BatchLine], CheckResult],
    record: Callable[[BatchLine, CheckResult], Recorded],
    *,
    on_result: Callable[[BatchLine, CheckResult], None] | None = None,
    on_failed: Callable[[dict], None] | None = None,
    gate: SignalGate | None = None,
) -> BatchReport:
    """Check each line in turn (each sweep paced by its own token bucket) and record every result.

    Never raises for a line: a line whose check or save fails is a failed line with one sentence. The run stops
    early on an interrupt (Interrupted from `gate`) or a database problem outside CARRY_ON; the lines it did
    not save are then in `not_reached`. `record` and `on_result`/`on_failed` run while the gate holds signals,
    so a line is saved and reported, or neither, and what is printed is exactly what was saved."""
    report = BatchReport()
    todo = list(entries)
    hold = gate.held if gate is not None else nullcontext

    def fail(entry: BatchLine, problem: str) -> None:
        item = {"line": entry.line, "problem": problem}
        report.failed_lines.append(item)
        if on_failed is not None:
            on_failed(item)

    i = 0
    try:
        while i < len(todo):
            entry = todo[i]
            try:
                result = check(entry)
            except StoreInputError as e:
                with hold():
                    i += 1
                    fail(entry, str(e))
                continue
            except Exception as e:  # noqa: BLE001  (a bug or an unexpected failure: this line fails, the run goes on)
                with hold():
                    i += 1
                    fail(entry, f"The check could not run ({type(e).__name__}); try this line again.")
                continue
            with hold():
                i += 1
                try:
                    done = record(entry, result)
                except StoreInputError as e:
                    fail(entry, str(e))
                    continue
                if not done.saved:
                    fail(entry, done.save_problem or "The check ran but was not saved.")
                    if done.database_problem is not None:
                        report.database_problem = done.database_problem
                        if done.database_problem.kind not in CARRY_ON:
                            break
                    continue
                report.recorded += 1
                report.results.append(
                    {"line": entry.line, "tenant": entry.tenant, "status": result.status,
                     "score": result.score if result.says_something else None, "masked": result.key.masked}
                )
                if on_result is not None:
                    on_result(entry, result)
                if result.status == "unreachable":  # Stripe does not answer this server: the rest would wait too
                    report.unreachable = result.problem
                    break
    except Interrupted as e:
        report.interrupted = e.signame
    report.not_reached = [e.line for e in todo[i:]]
    return report
