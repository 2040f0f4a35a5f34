"""The machine a benchmark ran on: its load average before and after, and whether it was quiet enough for the
figures to be written down.

Wall-clock figures on a shared machine say as much about the other processes as about ours, so every table
carries the load average (os.getloadavg) taken before and after its run, and `python -m bench` writes
docs/benchmarks.md only when the 1-minute load average stayed at or below the number of cores throughout
(`quiet`). CPU figures (getrusage) hold up better under load, but are written on the same terms.
"""
from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Load = tuple[float, float, float]
LoadSource = Callable[[], Load]

RUNS = int(os.environ.get("BENCH_RUNS", "3"))  # every figure written down is the median of this many runs


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@dataclass(frozen=True)
class LoadWindow:
    """The load average before and after one benchmark's run."""

    before: Load
    after: Load
    cores: int

    @property
    def worst(self) -> float:
        """The higher 1-minute load average of the two readings."""
        return max(self.before[0], self.after[0])

    @property
    def quiet(self) -> bool:
        """The 1-minute load average stayed at or below the core count."""
        return self.worst <= self.cores

    def line(self) -> str:
        def fmt(la: Load) -> str:
            return " / ".join(f"{x:.2f}" for x in la)
        flag = "" if self.quiet else f" (**above {self.cores} cores: busy machine, figures not written**)"
        return (f"Load average (1 / 5 / 15 min) before: {fmt(self.before)}; after: {fmt(self.after)}; "
                f"{self.cores} cores{flag}.")


def refusal(windows: Sequence[LoadWindow]) -> str | None:
    """One sentence saying why the figures must not be written (a busy machine), or None when they may be."""
    busy = [w for w in windows if not w.quiet]
    if not busy:
        return None
    worst = max(w.worst for w in busy)
    return (f"docs/benchmarks.md not written: the 1-minute load average reached {worst:.2f}, above the "
            f"{busy[0].cores} cores of this machine, so the wall-clock figures say more about the other processes "
            "than about Key Health; run again on a quiet machine.")
