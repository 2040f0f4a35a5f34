"""`keyhealth …` / `python -m core …`: the command-line way in (a public interface: keep it stable).

    commands.py  the commands, `main` and `run` (the console script's entry point: core.cli:run)
    parser.py    the arguments and every command's --help (what it reads, prints, and its exit codes)
    render.py    the tables, in the palette's terminal colours (core.ui.palette.TERMINAL_SGR)
    errors.py    ExitStatus and CliError, the one error base class carrying its exit status

Importing this package is light: pandas, plotly, SQLAlchemy/SQLModel, Alembic and the stripe SDK are imported
only inside the commands that need them, and the rendering only by the commands that print
(tests/cli/test_cli_startup.py; the figures: bench/bench_cli.py).
"""
from __future__ import annotations

from typing import Any

from core.cli.commands import build_parser, main, read_key, read_stdin, run
from core.cli.errors import CliError, ExitStatus, UsageError

_RENDER = ("ProgressBar", "line_ranges", "print_check_table")  # from core.cli.render, loaded on first use

__all__ = ["CliError", "ExitStatus", "UsageError", "build_parser", "main", "read_key", "read_stdin", "run",
           *_RENDER]


def __getattr__(name: str) -> Any:  # PEP 562: `from core.cli import ProgressBar` loads the rendering then
    if name in _RENDER:
        from core.cli import render

        return getattr(render, name)
    raise AttributeError(f"module 'core.cli' has no attribute {name!r}")
