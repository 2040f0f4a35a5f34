"""`python -m bench` (or `make bench`): run every benchmark and write their tables into README.md.

`python -m bench store pages` runs only those (a module's name without `bench_`, or the last word of its title)
and leaves the README alone. Each bench module has `report() -> str` returning a markdown section. The README
keeps them between the `<!-- bench:start -->` and `<!-- bench:end -->` markers.
"""
from __future__ import annotations

import importlib
import platform
import sys
import time
from pathlib import Path

BENCHES = [
    ("Check sweep", "bench.bench_sweep"),
    ("Fleet recheck", "bench.bench_fleet"),
    ("Store queries", "bench.bench_store"),
    ("Dashboard pages", "bench.bench_pages"),
    ("Dashboard memory", "bench.bench_memory"),
]
README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def main(argv: list[str]) -> int:
    only = set(argv)
    sections = []
    for title, module in BENCHES:
        short = module.split(".")[-1]
        if only and not only & {title.split()[-1].lower(), short, short.removeprefix("bench_")}:
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError:
            continue
        t0 = time.perf_counter()
        body = (getattr(mod, "report", None) or mod.run)()
        took = time.perf_counter() - t0
        print(f"## {title}\n\n{body}\n", flush=True)
        sections.append(f"### {title}\n\n{body}\n\n_(bench took {took:.0f} s)_")
    stamp = (
        f"Measured on {time.strftime('%Y-%m-%d')}, {platform.machine()}, Python {platform.python_version()}, 2 "
        "cores."
    )
    text = README.read_text()
    if START in text and END in text and not only:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        README.write_text(f"{head}{START}\n{stamp}\n\n" + "\n\n".join(sections) + f"\n{END}{tail}")
        print(f"README.md updated ({len(sections)} benchmarks).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
