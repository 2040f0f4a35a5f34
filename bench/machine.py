"""The machine a benchmark ran on: its load average before and after, and whether it was quiet enough for the
figures to be written down.

Wall-clock figures on a shared machine say as much about the other processes as about ours, so every table
carries the load average (os.getloadavg) taken before and after its run, and `python -m bench` writes
docs/benchmarks.md only when the machine was quiet as each bench began: the 1-minute load average at or below the
number of cores (`quiet`). Before each bench it waits for that (`settle`, at most SETTLE_S): the load a bench
leaves behind (the fleet bench's three processes keep 2 cores at a load of 2-3) takes a minute or two to decay.
The reading after a run includes the bench's own processes, so it is printed, not judged: judging it would
refuse every run of a bench that uses more processes than the machine has cores, however quiet the machine.
CPU figures (getrusage) hold up better under load, but are written on the same terms.
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Load = tuple[float, float, float]
LoadSource = Callable[[], Load]

RUNS = int(os.environ.get("BENCH_RUNS", "3"))  # every figure written down is the median of this many runs
SETTLE_S = float(os.environ.get("BENCH_SETTLE_S", "240"))  # the longest wait for a quiet machine before a bench
SETTLE_POLL_S = 5.0


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
    def quiet(self) -> bool:
        """The machine was quiet as the bench began: the 1-minute load average at or below the core count (the
        reading after includes the bench's own processes: printed, not judged)."""
        return self.before[0] <= self.cores

    def line(self) -> str:
        def fmt(la: Load) -> str:
            return " / ".join(f"{x:.2f}" for x in la)
        flag = "" if self.quiet else (f" (**above {self.cores} cores before the run: busy machine, figures not "
                                      "written**)")
        return (f"Load average (1 / 5 / 15 min) before: {fmt(self.before)}; after (the bench's own processes "
                f"included): {fmt(self.after)}; {self.cores} cores{flag}.")


def settle(load: LoadSource, ncores: int, *, within_s: float = SETTLE_S, poll_s: float = SETTLE_POLL_S,
           sleep: Callable[[float], None] = time.sleep) -> Load:
    """Wait (at most `within_s`) until the 1-minute load average is at or below `ncores`; the last reading."""
    waited = 0.0
    reading = load()
    while reading[0] > ncores and waited < within_s:
        sleep(poll_s)  # the load average is a minute's decay: nothing to poll faster than this
        waited += poll_s
        reading = load()
    return reading


def refusal(windows: Sequence[LoadWindow]) -> str | None:
    """One sentence saying why the figures must not be written (a busy machine), or None when they may be."""
    busy = [w for w in windows if not w.quiet]
    if not busy:
        return None
    worst = max(w.before[0] for w in busy)
    return (f"docs/benchmarks.md not written: the 1-minute load average was {worst:.2f} as a bench began, above "
            f"the {busy[0].cores} cores of this machine, so the wall-clock figures say more about the other "
            "processes than about Key Health; run again on a quiet machine.")
