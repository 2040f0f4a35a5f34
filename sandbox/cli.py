"""Run the sandbox in the foreground: `python -m sandbox` (and `python -m core sandbox`)."""
from __future__ import annotations

import argparse
import sys
import threading

from sandbox.demo_keys import DemoKey
from sandbox.routes import mask_key
from sandbox.server import STRIPE_RATE_LIMITS, Sandbox

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 12111


def describe(sb: Sandbox, out=sys.stdout) -> None:
    print(f"Stripe sandbox listening on {sb.url}", file=out)
    print(f"  point the SDK at it: StripeClient(key, base_addresses={{'api': '{sb.url}', 'files': "
        f"'{sb.url}'}})", file=out)
    print(f"  or: STRIPE_API_BASE={sb.url}", file=out)
    if sb.demo_keys_error:
        print(f"  note: {sb.demo_keys_error}", file=out)
    print("Demo keys (demo only, safe to show in full):", file=out)
    demo_keys: list[DemoKey] = list(sb.demo_keys.values())
    for dk in demo_keys:
        print(f"  {dk.name:<13} {dk.mode:<4} {dk.state:<7} {dk.account}  {mask_key(dk.key)}", file=out)
        print(f"      {dk.description}", file=out)
        print(f"      {dk.key}", file=out)
    print(f"Legacy APIs (Orders, SKUs, usage records, balance transfers) exist only for "
          f"{', '.join(sorted(sb.legacy_accounts)) or 'no account'}; every other account gets 404 Unrecognized "
          "request URL for them.", file=out)
    print("Control: GET /_sandbox/health, GET|DELETE /_sandbox/requests, GET|POST|DELETE /_sandbox/faults, "
          "POST /_sandbox/reset", file=out)


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, latency_s: float = 0.0,
          rate_limits: dict[str, int] | None = STRIPE_RATE_LIMITS) -> None:
    """Start the sandbox, print where it is and its demo keys, serve until Ctrl-C.

    A port that cannot be used ends with one sentence on stderr and SystemExit(2), never a traceback.
    """
    sb = Sandbox(host=host, port=port, latency_s=latency_s, rate_limits=rate_limits)
    try:
        sb.start()
    except OSError as e:
        print(f"Cannot listen on {host}:{port} ({e.strerror or e}); pass another --port, or --port 0 for a free one.",
              file=sys.stderr)
        raise SystemExit(2) from None
    try:  # from the first line printed: Ctrl-C may come as soon as a reader sees the banner
        describe(sb)
        print("Press Ctrl-C to stop.", flush=True)
        # Wake often: the kernel may deliver Ctrl-C to a server thread, and Python runs its handler (raising
        # KeyboardInterrupt here) only when the main thread next runs bytecode; a wait with no timeout never does.
        forever = threading.Event()
        while not forever.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sb.stop()
        print("Sandbox stopped.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sandbox", description="Local Stripe-compatible sandbox.")
    ap.add_argument("--host", default=DEFAULT_HOST)
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    ap.add_argument("--no-rate-limit", action="store_true", help="disable Stripe's 25/s test, 100/s live limit")
    args = ap.parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(f"Port {args.port} is not a port number; use 0-65535 (0 picks a free port).", file=sys.stderr)
        return 2
    if args.latency < 0:
        print("--latency must be zero or more seconds.", file=sys.stderr)
        return 2
    try:
        serve(args.host, args.port, args.latency, None if args.no_rate_limit else STRIPE_RATE_LIMITS)
    except SystemExit as e:
        return int(e.code or 0)
    return 0
