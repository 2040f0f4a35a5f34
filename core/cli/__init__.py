"""`keyhealth …` / `python -m core …`: the command-line way in (a public interface: keep it stable).

    commands.py  the commands, `main` and `run` (the console script's entry point: core.cli:run)
    parser.py    the arguments and every command's --help (what it reads, prints, and its exit codes)
    render.py    the tables, in the palette's terminal colours (core.ui.palette.TERMINAL_SGR)
    errors.py    ExitStatus and CliError, the one error base class carrying its exit status

Importing this package is light: pandas, plotly, SQLAlchemy/SQLModel, Alembic and the stripe SDK are imported
only inside the commands that need them (tests/test_cli_startup.py).
"""
from core.cli.commands import ProgressBar, build_parser, line_ranges, main, print_check_table, read_key, read_stdin, run
from core.cli.errors import CliError, ExitStatus, UsageError

__all__ = [
    "CliError",
    "ExitStatus",
    "ProgressBar",
    "UsageError",
    "build_parser",
    "line_ranges",
    "main",
    "print_check_table",
    "read_key",
    "read_stdin",
    "run",
]
