"""The CLI's arguments: every command, its flags, and its --help (what it reads, what it prints, its exit codes;
docs/cli.md is generated from it by scripts/gen_docs.py). Nothing heavy is imported: `--help` and a usage error
answer before any command module is loaded.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import NoReturn

from core.cli.errors import ExitStatus as S

_KEYISH = re.compile(r"\b(rk|sk|pk|rkcs|whsec)_[A-Za-z0-9_]{8,}")


class _Parser(argparse.ArgumentParser):
    """argparse echoes unrecognised arguments; a key pasted as an argument must not be echoed back."""

    def error(self, message: str) -> NoReturn:
        from core.engine.keys import mask  # light: no network, no store

        message = _KEYISH.sub(lambda m: mask(m.group(0)), message)
        super().error(message + " (keys are read from STRIPE_KEY or standard input, never from arguments)"
                      if _KEYISH.search(message) or "…" in message else message)


DEMO_HELP = "use the demo database and the embedded Stripe sandbox (as the dashboard's demo mode)"
KEY_IN = "Reads the key from STRIPE_KEY, else from standard input (a prompt without echo on a terminal); never " \
         "from an argument."


def _exits(*codes: tuple[S, str]) -> str:
    """The epilog: every exit code the command can end with, and what it means."""
    lines = [f"  {int(s):>3}  {what}" for s, what in ((S.OK, "done"), *codes, (S.USAGE, "bad input or usage: "
             "one sentence on stderr names the problem and the fix"))]
    return "exit codes:\n" + "\n".join(sorted(lines, key=lambda line: int(line.split()[0])))


DB = (S.DATABASE, "the database could not be used: one sentence on stderr names the cause and the fix")

COMMANDS: dict[str, tuple[str, str, str]] = {
    # name -> (one-line help, description: reads / prints, epilog: exit codes)
    "check": (
        "check one key (from STRIPE_KEY or standard input)",
        f"Check one restricted key against Stripe: every permission Pointai needs, read-only probes. {KEY_IN} "
        "With --tenant the check is recorded in that tenant's history (the database: DATABASE_URL); "
        "--from-source checks the key the key source (KEYHEALTH_KEYS_FROM) holds for --tenant. Prints the key "
        "(masked), its status, score and permission table, the problem for support and the message for the "
        "tenant; with --json one JSON object.",
        _exits((S.VERDICT, "the key is not healthy (attention, incomplete, failing, invalid)"), DB,
               (S.UNREACHABLE, "Stripe gave no usable answer (our network or Stripe's; the key's status is "
                               "unknown)")),
    ),
    "recheck": (
        "check many tenants' keys (tenant,key lines) concurrently, as one stored run",
        "Check many tenants' keys, reading tenant,key lines from standard input (--csv -) or from a key source "
        "command (--keys-from, else KEYHEALTH_KEYS_FROM), and record every check in the database (DATABASE_URL) "
        "as one run. Prints one line per tenant (masked key, status, score) and a summary, a progress bar on a "
        "terminal's stderr; with --json one JSON object. Stopped by SIGINT or SIGTERM, it says which lines it "
        "recorded; --resume continues.",
        _exits((S.VERDICT, "some key is not healthy, or some line failed"), DB,
               (S.UNREACHABLE, "some tenant was not settled (Stripe gave no usable answer): left for --resume"),
               (S.UNFINISHED, "the run is unfinished: other workers' claims never finished (one sentence names "
                              "them)"),
               (S.SIGINT, "stopped by SIGINT (after printing which lines it recorded)"),
               (S.SIGTERM, "stopped by SIGTERM (after printing which lines it recorded)")),
    ),
    "history": (
        "a tenant's checks and what changed between them",
        "Read a tenant's history from the database (DATABASE_URL): its checks, key replacements and permission "
        "changes. Prints them as lines (times in UTC); with --json one JSON object. Sends no request to Stripe.",
        _exits(DB),
    ),
    "catalogue": (
        "print the permission catalogue and its probes",
        "Read the permission catalogue (core/engine/catalogue.toml) and print each permission with its probes; "
        "with --json a JSON list of probes. Needs no key, no database and no network.",
        _exits(),
    ),
    "calibrate": (
        "prove the catalogue against a real account (keys as run,key lines on standard input: full,sk_test_…  "
        "none,rk_test_…  [guide,rk_test_…])",
        "Prove the catalogue against a real Stripe account: reads the keys as run,key lines on standard input "
        "only (full,sk_test_…  none,rk_test_…  and optionally guide,rk_test_…), probes with each, and records the "
        "outcome in the audit trail (DATABASE_URL). Prints one line per probe and whether it matched; with --json "
        "one JSON object.",
        _exits((S.VERDICT, "some probe did not answer as the catalogue says"), DB),
    ),
    "sandbox": (
        "run the local Stripe sandbox and print its demo keys",
        "Run the local Stripe sandbox (a Stripe-compatible server for tests and the demo) until stopped, and "
        "print its address and demo keys. Reads no key and no database.",
        _exits(),
    ),
    "sample-data": (
        "read masked sample data with one key (from STRIPE_KEY or standard input)",
        f"Read a little masked sample data (charges, customers, …) with one key. {KEY_IN} Prints one line per "
        "dataset (loaded, empty, not permitted, failed) with its row count; with --json one JSON object. Nothing "
        "is recorded.",
        _exits((S.VERDICT, "the key was refused or a dataset failed")),
    ),
    "test-transaction": (
        "create one small test charge with a test key (never a live key)",
        f"Create one small test charge with a test key (never a live key), as a tenant's integration would. "
        f"{KEY_IN} With --tenant the result is recorded in that tenant's history (DATABASE_URL). Prints each step "
        "and the charge; with --json one JSON object.",
        _exits((S.VERDICT, "the transaction did not pass"),
               (S.DATABASE, "the transaction ran, but its record in the history failed (one sentence on stderr)")),
    ),
}


def build_parser(commands: dict[str, Callable] | None = None) -> argparse.ArgumentParser:
    """The parser; `commands` (name -> function taking the parsed args) becomes each subcommand's `func`."""
    funcs = commands or {}
    p = _Parser(
        prog="python -m core", description="Key Health: check Stripe restricted keys.",
        epilog="Each command's --help says what it reads, what it prints and its exit codes.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str) -> argparse.ArgumentParser:
        help_, description, epilog = COMMANDS[name]
        c = sub.add_parser(name, help=help_, description=description, epilog=epilog,
                           formatter_class=_Formatter)
        c.set_defaults(func=funcs.get(name))
        return c

    c = command("check")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("--tenant", help="record the check in this tenant's history (created if new)")
    c.add_argument("--from-source", action="store_true",
                   help="check the key the key source (KEYHEALTH_KEYS_FROM) holds for --tenant; nothing is pasted")
    c.add_argument("--demo", action="store_true", help=DEMO_HELP)

    c = command("recheck")
    c.add_argument("--csv", help="'-': tenant,key lines on standard input")
    c.add_argument("--keys-from", metavar="COMMAND",
                   help="a command that prints tenant,key lines (default: KEYHEALTH_KEYS_FROM)")
    c.add_argument("--concurrency", type=int, help="keys in flight at once (default: KEYHEALTH_FLEET_CONCURRENCY, "
                                                  "else 32 per core, 8 to 128)")
    c.add_argument("--max-rps", type=float,
                   help="requests/s ceiling for this process (default: KEYHEALTH_FLEET_MAX_RPS, else 600)")
    c.add_argument("--run-name", help="share the run of this name with other workers (PostgreSQL)")
    c.add_argument("--resume", action="store_true", help="continue the last unfinished run, skipping its done tenants")
    c.add_argument("--json", action="store_true")
    c.add_argument("--demo", action="store_true", help=DEMO_HELP)

    c = command("history")
    c.add_argument("--tenant", required=True)
    c.add_argument("--json", action="store_true")
    c.add_argument("--demo", action="store_true", help=DEMO_HELP)

    c = command("catalogue")
    c.add_argument("--json", action="store_true")

    c = command("calibrate")
    c.add_argument("--json", action="store_true", help="print one JSON object")

    c = command("sandbox")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, default=12111)
    c.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")

    c = command("sample-data")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("--days", type=int, default=30, help="time window for activity data, in days (1-365)")
    c.add_argument("--rows", type=int, default=100, help="row cap per dataset (1-1000)")
    c.add_argument("--dataset", action="append", help="only this dataset (repeatable), e.g. charges")

    c = command("test-transaction")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("--amount", type=int, default=100, help="amount in the currency's smallest unit (default 100)")
    c.add_argument("--currency", default="usd", help="three-letter currency code (default usd)")
    c.add_argument("--idempotency-key", help="reuse this idempotency key (default: derived from key, amount, currency, "
        "UTC hour)")
    c.add_argument("--tenant", help="record the result in this tenant's history")
    return p


class _Formatter(argparse.HelpFormatter):
    """The description wrapped as usual; the epilog (the exit codes) kept line by line."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("exit codes:"):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)
