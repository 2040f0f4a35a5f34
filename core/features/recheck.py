"""Recheck many tenants' keys from `tenant,key` lines: each checked in turn, each result recorded.

Keys pass through memory only: a bad line is reported by its number and a masked form, never its text.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

from core.engine.result import CheckResult
from core.store import StoreInputError, validate_tenant_name

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
    unreachable: str | None = None  # why the batch stopped: Stripe never answered (our side)

    def to_json(self) -> dict:
        return {"recorded": self.recorded, "failed_lines": self.failed_lines, "results": self.results,
                "unreachable": self.unreachable}

    @property
    def all_healthy(self) -> bool:
        return not self.failed_lines and all(r["status"] == "healthy" for r in self.results)


def parse_lines(text: str, max_lines: int = MAX_LINES) -> tuple[list[BatchLine], list[dict]]:
    """`tenant,key` per line (a `tenant,key` header and blank lines are skipped).

    Lines end at "\n" only (a stray \v, \f or U+2028 inside a line does not start a new one, so a line is
    never split into a bogus second record); a leading byte-order mark is dropped; a line with an unclosed
    quote (a quoted field cannot span lines here) is refused whole.
    """
    entries: list[BatchLine] = []
    failed: list[dict] = []
    if text.startswith("\ufeff"):
        text = text[1:]
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
        if len(fields) != 2:
            failed.append(
                {
                    "line": n,
                    "problem": f"The line has {len(fields)} field{'s' if len(fields) != 1 else ''}, not 2; "
                    "write it as tenant,key (quote a tenant name that contains a comma).",
                }
            )
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
    """What checking and recording one line gives back (core.service.Checked)."""

    result: CheckResult
    save_problem: str | None

    @property
    def saved(self) -> bool: ...


def recheck(
    entries: Iterable[BatchLine],
    check_and_record: Callable[[BatchLine], Recorded],
    *,
    on_result: Callable[[BatchLine, CheckResult], None] | None = None,
) -> BatchReport:
    """Check each line in turn (each sweep paced by its own token bucket) and record every result.

    When Stripe does not answer at all (unreachable), that attempt is recorded and the batch stops: the lines
    left are reported as not checked instead of each waiting out its own retries."""
    report = BatchReport()
    todo = list(entries)
    for i, entry in enumerate(todo):
        if report.unreachable is not None:
            report.failed_lines.extend(
                {"line": e.line, "problem": "Not checked: Stripe did not answer this server (see the line before); "
                                            "run the recheck again once it does."}
                for e in todo[i:]
            )
            break
        try:
            done = check_and_record(entry)
        except StoreInputError as e:
            report.failed_lines.append({"line": entry.line, "problem": str(e)})
            continue
        if not done.saved:
            report.failed_lines.append({"line": entry.line, "problem": done.save_problem or "The check was not saved."})
            continue
        result = done.result
        report.recorded += 1
        report.results.append(
            {"line": entry.line, "tenant": entry.tenant, "status": result.status,
             "score": result.score if result.says_something else None,
             "masked": result.key.masked}
        )
        if on_result is not None:
            on_result(entry, result)
        if result.status == "unreachable":
            report.unreachable = result.problem
    return report
