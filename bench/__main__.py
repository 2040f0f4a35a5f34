"""`python -m bench` (or `make bench`): run every benchmark and write their tables into docs/benchmarks.md.

`python -m bench store pages` runs only those (a module's name without `bench_`, or the last word of its title)
and leaves the page alone. Each bench module has `report() -> str` returning a markdown section. The page keeps
them between the `<!-- bench:start -->` and `<!-- bench:end -->` markers (`write`).
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
    if not only and write(stamp, sections):
        print(f"{PAGE.relative_to(PAGE.parent.parent)} updated ({len(sections)} benchmarks).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
