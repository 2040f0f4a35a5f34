"""Write the generated reference pages in docs/: configuration.md (from core/config.py's SETTINGS) and cli.md's
reference section, between its `<!-- cli:start -->` / `<!-- cli:end -->` markers (from the CLI's argparse parser;
the rest of cli.md is written by hand). `make docs` runs it; `--check` only says whether they are current (exit 1 when
not), which tests/service/test_config.py runs.

    python scripts/gen_docs.py            # rewrite both
    python scripts/gen_docs.py --check    # exit 1 and name the stale files
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WIDTH = "100"  # argparse wraps its help at $COLUMNS: fixed, so the page does not depend on the terminal


def configuration_md() -> str:
    from core.config import markdown

    return markdown()


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:  # argparse keeps its subparsers here; there is no public accessor
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices.items())
    return []


def cli_md() -> str:
    """Every command's --help, as argparse prints it (docs/cli.md's reference, between its markers)."""
    os.environ["COLUMNS"] = WIDTH
    from core.cli import build_parser

    parser = build_parser()
    parser.prog = "keyhealth"  # the console script's name (`python -m core` is the same program)
    out = ["```text", parser.format_help().rstrip(), "```"]
    for name, sub in _subcommands(parser):
        sub.prog = f"keyhealth {name}"
        out += ["", f"### keyhealth {name}", "", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(out)


# page -> (its builder, the markers it is written between; None: the whole page)
PAGES = {
    "docs/configuration.md": (configuration_md, None),
    "docs/cli.md": (cli_md, ("<!-- cli:start -->", "<!-- cli:end -->")),
}


def rendered(rel: str) -> str:
    """The page as it should be: the generated text, or the page with the generated text between its markers."""
    build, markers = PAGES[rel]
    if markers is None:
        return build()
    start, end = markers
    current = (ROOT / rel).read_text()
    head, rest = current.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{build()}\n{end}{tail}"


def main(argv: list[str] | None = None) -> int:
    check = (argv if argv is not None else sys.argv[1:]) == ["--check"]
    stale = []
    for rel in PAGES:
        path = ROOT / rel
        text = rendered(rel)
        if path.exists() and path.read_text() == text:
            continue
        stale.append(rel)
        if not check:
            path.write_text(text)
    if check and stale:
        print(f"{', '.join(stale)} not current: run `python scripts/gen_docs.py`.", file=sys.stderr)
        return 1
    for rel in stale:
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
