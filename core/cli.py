"""`python -m core …`: the command-line way in. A public interface: keep it stable.

Keys are read from STRIPE_KEY, or from standard input when it is unset; never from an argument
(arguments end up in shell history and process lists).
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

EXIT_OK, EXIT_VERDICT, EXIT_USAGE = 0, 1, 2

COLOURS = {
    "ok": "32",
    "missing": "31",
    "excess": "33",
    "unknown": "90",
    "not_applicable": "36",
    "healthy": "32",
    "attention": "33",
    "failing": "31",
    "incomplete": "90",
    "invalid": "31",
}


class UsageError(Exception):
    """Bad invocation: one sentence, exit 2."""


def read_key(stdin=None) -> str:
    """The key from STRIPE_KEY, else standard input (a prompt without echo on a terminal)."""
    env = os.environ.get("STRIPE_KEY")
    if env is not None:
        return env
    stdin = stdin or sys.stdin
    if stdin is None:
        raise UsageError("No key given: set STRIPE_KEY or pipe the key on standard input.")
    if stdin.isatty():
        return getpass.getpass("Paste the restricted key (not shown): ")
    text = stdin.read()
    if not text.strip():
        raise UsageError("No key given: set STRIPE_KEY or pipe the key on standard input.")
    return text


def _paint(text: str, what: str, colour: bool) -> str:
    code = COLOURS.get(what)
    return f"\033[{code}m{text}\033[0m" if colour and code else text


def _use_colour(stream) -> bool:
    return "NO_COLOR" not in os.environ and (bool(os.environ.get("FORCE_COLOR")) or stream.isatty())


def print_check_table(result, stream=None) -> None:
    stream = stream or sys.stdout
    c = _use_colour(stream)
    k = result.key
    head = f"{k.masked}  {k.kind}  {k.mode or '-'}  account {result.account or 'unknown'}"
    print(head, file=stream)
    print(
        f"status {_paint(result.status.upper(), result.status, c)}  score {result.score}/100  "
        f"{result.requests} requests in {result.elapsed_s:.2f} s",
        file=stream,
    )
    if result.problem:
        print(f"problem: {result.problem}", file=stream)
    if result.rows:
        w_cat = max(len(r.category) for r in result.rows)
        w_res = max(len(r.resource) for r in result.rows)
        print(f"\n{'category':<{w_cat}}  {'permission':<{w_res}}  {'required':<8}  {'granted':<8}  verdict", file=stream)
        for r in result.rows:
            verdict = _paint(r.verdict, r.verdict, c)
            print(
                f"{r.category:<{w_cat}}  {r.resource:<{w_res}}  {r.required:<8}  {(r.granted or '-'):<8}  {verdict}",
                file=stream,
            )
    fixes = [r for r in result.rows if r.verdict not in ("ok", "not_applicable") and r.fix]
    if fixes:
        print("\nwhat to change:", file=stream)
        for r in fixes:
            print(f"  - {r.fix}", file=stream)
    for i in result.incidents:
        print(_paint(i, "failing", c), file=stream)


# --- commands ------------------------------------------------------------------------------
def cmd_check(args) -> int:
    from .check import check_key

    raw = read_key()
    result = check_key(raw)
    if args.tenant:
        from .store import record_check

        record_check(result, args.tenant, source="cli", checked_by=os.environ.get("USER"))
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print_check_table(result)
    return EXIT_OK if result.status == "healthy" else EXIT_VERDICT


def cmd_catalogue(args) -> int:
    from .catalogue import load_catalogue

    cat = load_catalogue()
    if args.json:
        print(json.dumps([p for s in cat.to_json() for p in s["probes"]]))
    else:
        for s in cat.to_json():
            probes = "; ".join(f"{p['level']}: {p['method']} {p['path']}" for p in s["probes"])
            print(f"{s['category']:<14} {s['label']:<36} rak_{s['scope']:<34} {probes}")
    return EXIT_OK


def cmd_sandbox(args) -> int:
    from .sandbox import serve

    serve(args.host, args.port, latency_s=args.latency)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core", description="Key Health: check Stripe restricted keys.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="check one key (from STRIPE_KEY or standard input)")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("--tenant", help="record the check in this tenant's history (created if new)")
    c.set_defaults(func=cmd_check)

    c = sub.add_parser("catalogue", help="print the permission catalogue and its probes")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_catalogue)

    c = sub.add_parser("sandbox", help="run the local Stripe sandbox and print its demo keys")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, default=12111)
    c.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    c.set_defaults(func=cmd_sandbox)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed its usage line
        return EXIT_USAGE if e.code else EXIT_OK
    try:
        return args.func(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_USAGE
