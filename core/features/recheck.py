"""Reading `tenant,key` lines for a recheck (the run itself is core.features.fleet.run_fleet).

Keys pass through memory only: a bad line is reported by its number and a masked form, never its text.
`BatchReport` is what a run says: every line ends as one of recorded (in `results`), failed (in
`failed_lines`, with one sentence saying why; a database problem is named by core.store.errors), or not
reached (the run stopped first: interrupted by SIGINT/SIGTERM, or the database became unusable).
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from core.engine.keys import Intake, SecretKey, as_intake
from core.store import StoreInputError, TenantName
from core.store.errors import DatabaseProblem

MAX_LINES = 10_000  # standard input (a file someone pipes by hand)
MAX_SOURCE_LINES = 1_000_000  # a key-source command (the whole fleet: 20,000 tenants and more)
MAX_LINE_CHARS = 11_000  # a tenant name (100) and the longest paste intake reads (10,000), with room to spare


@dataclass
class BatchLine:
    """One `tenant,key` line, parsed once where it was read (parse_lines): the tenant's name and the key (its
    Intake: a refused paste is checked, and recorded as refused, like any other). A raw key given here (a
    script's, a test's) is parsed here, once; a plain-text tenant name is parsed by the service."""

    line: int
    tenant: TenantName
    key: Intake = field(repr=False)

    def __post_init__(self) -> None:
        self.key = as_intake(self.key)

    @property
    def identity(self) -> SecretKey | tuple[str, str | None]:
        """What tells two lines' keys apart without the key's text: the key itself, or a refused paste's masked
        form and fingerprint."""
        return self.key.key if self.key.key is not None else (self.key.info.masked, self.key.info.fingerprint)


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
        name, key = fields
        try:
            tenant = TenantName.parse(name)
        except StoreInputError as e:
            failed.append({"line": n, "problem": str(e)})
            continue
        if not key.strip():
            failed.append({"line": n, "problem": "The key is empty; put the tenant's restricted key after the comma."})
            continue
        entries.append(BatchLine(n, tenant, SecretKey.parse(key)))
    return entries, failed
