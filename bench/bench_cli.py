"""CLI start-up benchmark: wall time of `keyhealth --help` and `keyhealth check --json <malformed key>` next to
`python -c pass` (the interpreter alone), each a fresh process.

    .venv/bin/python -m bench cli                   # part of `make bench` (median of 15 runs each)
    .venv/bin/python bench/bench_cli.py --runs 21   # more runs on a busy machine

The commands run as the console script does (`from core.cli import run; run()`, this checkout's code), in turns
(pass, --help, check, pass, ...) so a change in the machine's load hits all three alike; one untimed round first
writes the bytecode caches (PYTHONDONTWRITEBYTECODE dropped: an installed CLI runs from bytecode). The malformed
key comes on standard input and sends no request. The load average before and after is printed with the figures:
on a shared machine a median is only as good as the load it was taken at.
Goals (issue #21): check with a malformed key <= 250 ms, --help <= 200 ms.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 15  # a fresh process each: 5 gave medians 17-20% apart on a quiet machine, 15 within 10%
MALFORMED = "rk_bad\n"  # refused before any request: no fingerprint, no history, no network
ENTRY = "import sys; from core.cli import run; sys.argv[0] = 'keyhealth'; run()"  # [project.scripts] keyhealth

# (label, arguments after the interpreter, standard input, goal in ms or None)
COMMANDS: list[tuple[str, list[str], str, float | None]] = [
    ("python -c pass", ["-c", "pass"], "", None),
    ("keyhealth --help", ["-c", ENTRY, "--help"], "", 200.0),
    ("keyhealth check --json (malformed key)", ["-c", ENTRY, "check", "--json"], MALFORMED, 250.0),
]


def _env(data_dir: str) -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE dropped: an installed CLI runs from bytecode (pip compiles it), so the warm-up round
    # writes the checkout's __pycache__ (git-ignored) and the timed rounds read it, as a user's runs do.
    drop = ("STRIPE_KEY", "DATABASE_URL", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(NO_COLOR="1", KEYHEALTH_DATA_DIR=data_dir, DATABASE_URL=f"sqlite:///{data_dir}/bench-cli.db")
    return env


def _cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _once(args: list[str], stdin: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms) of one fresh process."""
    c0, t0 = _cpu_s(), time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, input=stdin, text=True, capture_output=True,
                   check=False, timeout=60)
    return (time.perf_counter() - t0) * 1000, (_cpu_s() - c0) * 1000


def measure(runs: int = RUNS) -> dict[str, list[tuple[float, float]]]:
    """(wall ms, CPU ms) of each command, `runs` times, in turns (after one untimed round)."""
    times: dict[str, list[tuple[float, float]]] = {label: [] for label, *_ in COMMANDS}
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as data_dir:
        env = _env(data_dir)
        for _label, args, stdin, _goal in COMMANDS:  # warm-up: bytecode caches
            _once(args, stdin, env)
        for _ in range(runs):
            for label, args, stdin, _goal in COMMANDS:
                times[label].append(_once(args, stdin, env))
    return times


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(runs: int = RUNS) -> str:
    before = _load()
    times = measure(runs)
    after = _load()
    base = statistics.median(w for w, _ in times[COMMANDS[0][0]])
    lines = [
        f"A fresh process each, median of {runs} runs (in turns), on {os.cpu_count()} cores; load average (1, 5, "
        f"15 min) {before} before, {after} after. CPU is the process's user + system time: what the load does not "
        "inflate as much as the wall time.",
        "",
        "| command | wall ms (median) | wall ms (min) | over `python -c pass` | CPU ms (median) | goal (wall) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for label, _args, _stdin, goal in COMMANDS:
        wall = [w for w, _ in times[label]]
        med = statistics.median(wall)
        verdict = "" if goal is None else f"≤ {goal:.0f} ms {'✓' if med <= goal else '✗'}"
        over = "" if label == COMMANDS[0][0] else f"+{med - base:.0f} ms"
        cpu = statistics.median(c for _, c in times[label])
        lines.append(f"| `{label}` | {med:.0f} | {min(wall):.0f} | {over} | {cpu:.0f} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=RUNS, help=f"timed runs of each command (default {RUNS})")
    print(report(ap.parse_args(argv).runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
