"""`keyhealth …` / `python -m core …`: the command-line way in (see core/cli/commands.py)."""
from core.cli.commands import ProgressBar, build_parser, line_ranges, main, run

__all__ = ["ProgressBar", "build_parser", "line_ranges", "main", "run"]
