"""`python -m bench` (or `make bench`): run every benchmark and write their tables into docs/benchmarks.md.

`python -m bench store pages` runs only those (a module's name without `bench_`, or the last word of its title)
and leaves the page alone. Each bench module has `report() -> str` returning a markdown section. The page keeps
them between the `<!-- bench:start -->` and `<!-- bench:end -->` markers (`write`).

Every table is followed by the load average before and after its run (bench.machine). Before each bench the
machine is given time to settle (bench.machine.settle), and the page is written only when it was quiet as every
bench began (1-minute load average at or below the core count): otherwise the tables are still printed, with one
sentence saying why the page was left alone.
"""
from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.machine import RUNS, SETTLE_S, LoadSource, LoadWindow, cores, refusal, settle

BENCHES = [
    ("Check sweep", "bench.bench_sweep"),
    ("Fleet recheck", "bench.bench_fleet"),
    ("Store queries", "bench.bench_store"),
    ("Dashboard pages", "bench.bench_pages"),
    ("Dashboard memory", "bench.bench_memory"),
    ("CLI start-up", "bench.bench_cli"),
]
PAGE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def write(stamp: str, sections: list[str], page: Path = PAGE) -> bool:
    """Replace what is between the page's markers with the stamp and the sections; False when it has none."""
    text = page.read_text()
    if START not in text or END not in text:
        return False
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    page.write_text(f"{head}{START}\n{stamp}\n\n" + "\n\n".join(sections) + f"\n{END}{tail}")
    return True


def _report(module: str) -> Callable[[], str] | None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError:
        return None
    return getattr(mod, "report", None) or mod.run


def main(
    argv: list[str],
    *,
    benches: Sequence[tuple[str, str | Callable[[], str]]] = BENCHES,
    page: Path = PAGE,
    load: LoadSource = os.getloadavg,
    ncores: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run the benches (`argv` picks some; none: all, and write `page` if the machine was quiet as each began).

    `benches` pairs a title with a module name (or a report function); `load` and `ncores` say how busy the
    machine is (os.getloadavg and this process's cores unless given); `sleep` waits between load readings while
    the machine settles before a bench."""
    only = set(argv)
    n = ncores or cores()
    sections, windows = [], []
    for title, module in benches:
        short = module.split(".")[-1] if isinstance(module, str) else title.split()[-1].lower()
        if only and not only & {title.split()[-1].lower(), short, short.removeprefix("bench_")}:
            continue
        run = _report(module) if isinstance(module, str) else module
        if run is None:
            continue
        before = settle(load, n, within_s=SETTLE_S, sleep=sleep)
        t0 = time.perf_counter()
        body = run()
        took = time.perf_counter() - t0
        window = LoadWindow(before, load(), n)
        windows.append(window)
        print(f"## {title}\n\n{body}\n\n{window.line()}\n", flush=True)
        sections.append(f"### {title}\n\n{body}\n\n{window.line()}\n\n_(bench took {took:.0f} s)_")
    stamp = (
        f"Measured on {time.strftime('%Y-%m-%d')}, {platform.machine()}, Python {platform.python_version()}, {n} "
        f"cores; figures are medians of {RUNS} runs unless a table says otherwise."
    )
    if only:
        return 0
    why = refusal(windows)
    if why is not None:
        print(why, flush=True)
        return 0
    if write(stamp, sections, page):
        print(f"{page.name} updated ({len(sections)} benchmarks).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
