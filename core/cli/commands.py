"""`python -m core …` / `keyhealth …`: the commands. A public interface: keep it stable.

Keys are read from STRIPE_KEY, or from standard input when it is unset; never from an argument
(arguments end up in shell history and process lists).

Exit codes (core.cli.errors.ExitStatus):
0 healthy / done, 1 a key is not healthy (or a recheck line failed), 2 usage error, 3 the database
could not be used (one sentence on stderr naming the cause and the fix; core.store.errors), 4 Stripe gave no
usable answer (our network, or a storm of 429/5xx answers; a recheck: some tenant unreachable, left for --resume),
5 a recheck's run is unfinished (other workers' claims never finished; one sentence names them), 130 / 143 a
recheck stopped by SIGINT / SIGTERM (after printing which lines it saved).
"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from core.cli.errors import EXIT_SIGNAL, ExitStatus, UsageError, as_cli_error
from core.cli.parser import build_parser as _build_parser

if TYPE_CHECKING:
    from core.engine.keys import Intake

# Nothing heavy at the top: pandas, plotly, SQLAlchemy/SQLModel, Alembic and the stripe SDK are imported inside
# the commands that need them, so `--help`, a usage error and a malformed key answer at once
# (tests/cli/test_cli_startup.py).
# Even the CLI's own rendering (core.cli.render) and json are imported by the commands that print, not by --help.
__all__ = ["build_parser", "main", "run"]
EXIT_OK, EXIT_VERDICT, EXIT_USAGE = ExitStatus.OK, ExitStatus.VERDICT, ExitStatus.USAGE
EXIT_DATABASE, EXIT_UNREACHABLE, EXIT_UNFINISHED = ExitStatus.DATABASE, ExitStatus.UNREACHABLE, ExitStatus.UNFINISHED


def read_stdin(stdin=None) -> str:
    """All of standard input as text, whatever its bytes: UTF-8 (a UTF-16 file by its byte-order mark), bytes
    that are not UTF-8 kept as lone surrogates (which intake and the store refuse with one sentence) instead of
    a UnicodeDecodeError, and line ends made "\n" as text mode does."""
    stdin = stdin or sys.stdin
    buf = getattr(stdin, "buffer", None)
    if buf is None:  # a StringIO in tests
        return stdin.read()
    data = buf.read()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", "replace")
    else:
        text = data.decode("utf-8", "surrogateescape")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_key(stdin=None) -> str:
    """The key from STRIPE_KEY, else standard input (a prompt without echo on a terminal)."""
    from core.config import env_key

    env = env_key()
    if env is not None and env.strip():  # an empty STRIPE_KEY counts as unset
        return env
    stdin = stdin or sys.stdin
    if stdin is None:
        raise UsageError("No key given: set STRIPE_KEY or pipe the key on standard input.")
    if stdin.isatty():
        import getpass

        return getpass.getpass("Paste the restricted key (not shown): ")
    text = read_stdin(stdin)
    if not text.strip():
        raise UsageError("No key given: set STRIPE_KEY or pipe the key on standard input.")
    return text


# --- commands ------------------------------------------------------------------------------
def _service(args: argparse.Namespace | None = None):
    """The CLI's service: the real runtime from the settings, acting as KEYHEALTH_USER (else USER)."""
    from core import runtime
    from core.config import settings
    from core.service import Service

    conf = settings()
    return Service(runtime.build(conf, demo_mode=bool(getattr(args, "demo", False)), who=conf.user))


def _say(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def print_json(obj: Any, flush: bool = False) -> None:
    """One JSON object (or list) on one line: what --json prints."""
    import json

    print(json.dumps(obj), flush=flush)


def refused_here(key: Intake):
    """The result of a key refused before any request (intake's no: malformed, publishable, ...) that has no
    fingerprint, or None for any other key. Such a key has no history to be judged by (no fingerprint) and,
    without --tenant, nothing to record: the service would answer the same (tests/cli/test_cli_startup.py holds it),
    so it answers without the database, the Stripe client or their imports."""
    from core.config import settings

    info = key.info
    if info.accepted or info.fingerprint:
        return None
    from core.engine.check import check_key
    from core.engine.history import History, KeyFacts

    conf = settings()
    # No request: intake refused it. The history of no tenant and no key id: only the rotation setting.
    return check_key(key, settings=conf.probe,
                     history=lambda _info, _refused: History(key=KeyFacts(rotation_days=conf.rotation_days)))


def cmd_check(args: argparse.Namespace) -> int:
    from core.cli.render import print_check_table

    if args.from_source and args.tenant is None:
        raise UsageError("--from-source checks the key a tenant's key source holds; name the tenant with --tenant.")
    from core.engine.keys import SecretKey

    key = None if args.from_source else SecretKey.parse(read_key())  # the key, parsed once here
    if key is not None and args.tenant is None:
        result = refused_here(key)
        if result is not None:
            if args.json:
                print_json(result.to_json())
            else:
                print_check_table(result)
            return EXIT_OK if result.status == "healthy" else EXIT_VERDICT  # (refused: never healthy)
    from core.store import DatabaseFailure, guard

    svc = _service(args)
    refused = None  # a name too close to another tenant's: refused before any request
    tenant = None
    if args.tenant is not None:  # --tenant "" is a bad name, not "no tenant"
        from core.store import TenantName

        tenant = TenantName.parse(args.tenant)  # parsed once here: a bad name is refused before any request
        try:
            with guard(svc.rt.db):
                refused = svc.store.name_clash(tenant)
        except DatabaseFailure:  # the check still runs and prints; saving it then says what is wrong
            pass
        if refused:
            raise UsageError(refused)
    if args.from_source:
        from core.features.held_key import check_held_key

        assert tenant is not None  # --from-source without --tenant is refused above
        held = check_held_key(svc, tenant)
        if held.checked is None:
            raise UsageError(held.problem or "The key source gave no key.")
        checked = held.checked
    else:
        assert key is not None  # read above unless --from-source
        checked = svc.check(key, tenant, source="cli")
    result = checked.result
    if args.json:
        out = result.to_json()
        if args.tenant is not None:
            out["saved"] = checked.saved
            out["save_problem"] = checked.database_problem.sentence if checked.database_problem and \
                not checked.saved else checked.save_problem
        print_json(out)
    else:
        print_check_table(result)
    _flush_alerts(svc, checked.alert_id is not None)
    problem = checked.save_problem
    if problem:
        _say(problem)
        return EXIT_DATABASE if checked.database_problem is not None else EXIT_USAGE
    if result.status == "unreachable":
        return EXIT_UNREACHABLE
    return EXIT_OK if result.status == "healthy" else EXIT_VERDICT


def _flush_alerts(svc, raised: bool, stop=None) -> bool:
    """Wait at most alerts.CLI_FLUSH_S for the alerts this process raised to be delivered (its background
    sender, with its retries); say so on stderr when some are left pending. False when `stop` cut it short."""
    from core.features.alerts import CLI_FLUSH_S

    if not raised or not svc.rt.alert_webhook:
        return True
    if svc.flush_alerts(CLI_FLUSH_S, stop=stop):
        return True
    if stop is not None and stop.is_set():
        return False
    print(f"warning: an alert is still being delivered after {CLI_FLUSH_S:g} s; it stays pending and the next run "
          "with a webhook delivers it.", file=sys.stderr)
    return True


def cmd_recheck(args: argparse.Namespace) -> int:
    from core.features.fleet import Stop

    stop = Stop()
    with stop.on_signals():  # SIGINT / SIGTERM from here on: the run stops cleanly and says what it saved
        return _recheck(args, stop)


def _recheck(args: argparse.Namespace, stop) -> int:
    from core.cli.render import ProgressBar
    from core.config import settings
    from core.features.fleet import FleetOptions, FleetReport, SourceError, SourceStopped, read_source, run_fleet
    from core.features.recheck import parse_lines

    conf = settings()
    keys_from = args.keys_from if args.keys_from is not None else (None if args.csv else conf.keys_from)
    if args.csv is not None and args.keys_from is not None:
        raise UsageError("Give either --csv - or --keys-from, not both.")
    if args.csv is not None and args.csv != "-":
        raise UsageError(
            "The CSV must come on standard input (python -m core recheck --csv - < file.csv), not as a path."
        )
    if args.csv is None and keys_from is None:
        raise UsageError("No keys: pipe tenant,key lines with --csv -, or give a key source with --keys-from "
                         "(or KEYHEALTH_KEYS_FROM).")
    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1.")
    failed: list[dict] = []
    try:
        if keys_from is not None:
            try:
                entries = read_source(keys_from, conf.keys_from_timeout_s, stop=stop)
            except SourceStopped:  # our SIGTERM/SIGINT while the source ran: it was killed, nothing checked
                return _report_and_exit(args, FleetReport(interrupted=stop.signal or "SIGTERM"), [], stop)
            command = "recheck --keys-from"
        else:
            text = read_stdin() if sys.stdin else ""
            entries, failed = parse_lines(text)
            if not entries and not failed:
                raise UsageError("No tenant,key lines on standard input; pipe a CSV file of tenant,key lines.")
            command = "recheck --csv -"
        opts = FleetOptions(
            concurrency=args.concurrency or conf.fleet_concurrency, key_concurrency=conf.fleet_key_concurrency,
            max_rps=args.max_rps or conf.fleet_max_rps,
            run_name=args.run_name, resume=args.resume, claim_ttl_s=conf.claim_ttl_s, wait_s=conf.fleet_wait_s,
            command=command,
        )
        progress = ProgressBar() if not args.json and sys.stderr is not None and sys.stderr.isatty() else None
        svc = _service(args)
        report = run_fleet(svc, entries, opts, progress=progress, stop=stop)
    except SourceError as e:
        raise UsageError(str(e)) from None
    if not _flush_alerts(svc, True, stop) and report.interrupted is None:  # SIGTERM/SIGINT during the flush
        report.interrupted = stop.signal
    return _report_and_exit(args, report, failed, stop)


def _report_and_exit(args, report, failed: list[dict], stop) -> int:
    """Print a recheck's summary (JSON with --json) and return its exit code."""
    from core.cli.render import line_ranges, print_recheck_table

    report.failed_lines = sorted(failed + report.failed_lines, key=lambda f: f["line"])
    stopped = report.interrupted is not None or report.database_problem is not None and stop.is_set()
    run_id = report.run.get("id")
    if args.json:
        print_json(report.to_json(), flush=True)
    else:
        print_recheck_table(report, stopped)
    if report.interrupted is not None:
        saved = [r["line"] for r in report.results]
        what = f"lines {line_ranges(saved)} recorded" if saved else "no line recorded"
        more = f"; python -m core recheck --resume continues run {run_id}" if run_id is not None else ""
        _say(f"Stopped by {report.interrupted}: {what}, the rest not{more}.")
        return EXIT_SIGNAL[report.interrupted]
    if stopped and report.database_problem is not None:  # the database stopped the run: its one sentence
        _say(report.database_problem.sentence)
        return EXIT_DATABASE
    if report.unreachable is not None:  # our outage or Stripe's storm: the tenants are left for --resume
        _say(f"{report.unreachable_tenants} tenant{'s' if report.unreachable_tenants != 1 else ''} not settled: "
             f"{report.unreachable} Run python -m core recheck --resume once Stripe answers.")
        return EXIT_UNREACHABLE
    if report.unfinished is not None:
        _say(report.unfinished)
        return EXIT_UNFINISHED
    return EXIT_OK if report.all_healthy else EXIT_VERDICT


def cmd_history(args: argparse.Namespace) -> int:
    from core.cli.render import print_history
    from core.store import guard

    svc = _service(args)
    with guard(svc.rt.db):
        store = svc.store
        tenant = store.get_tenant(args.tenant)
        if tenant is None:
            raise UsageError(f"No tenant named {args.tenant!r}; check the name (python -m core check --tenant NAME "
                             "creates one).")
        checks = store.tenant_history(tenant["id"])
        changes = store.drift(tenant["id"])
        new_key = store.drift(tenant["id"], new_key=True)
        events = store.key_events(tenant["id"])
    fields = ("at", "scope", "resource", "from_granted", "to_granted", "from_verdict", "to_verdict")
    out: dict[str, Any] = {
        "tenant": {"name": tenant["name"], "slug": tenant["slug"], "account": tenant["account"],
                   "expected_mode": tenant.get("expected_mode")},
        "checks": [_check_json(c) for c in checks],
        "drift": [{k: (d[k].isoformat() if k == "at" else d[k]) for k in fields} for d in changes],
        "new_key_changes": [
            {k: (d[k].isoformat() if k == "at" else d[k]) for k in (*fields, "from_key", "to_key")} for d in new_key
        ],
        "key_events": [
            {"at": ev["at"].isoformat(), "kind": ev["kind"], "old_masked": ev["old_masked"],
             "new_masked": ev["new_masked"], "old_mode": ev["old_mode"], "new_mode": ev["new_mode"],
             "mode_changed": ev["mode_changed"], "account_changed": ev["account_changed"]}
            for ev in events
        ],
    }
    if args.json:
        print_json(out)
        return EXIT_OK
    print_history(tenant, out)
    return EXIT_OK


def _check_json(c: dict) -> dict:
    return {
        "checked_at": c["checked_at"].isoformat(),
        "status": c["status"],
        "score": c["score"],
        "masked": c["key_masked"],
        "mode": c["key_mode"],
        "account": c["account"],
        "source": c["source"],
        "checked_by": c.get("checked_by"),
        "problem": c.get("problem"),
        "refused": c.get("refused"),
        "requests": c.get("requests"),
        "elapsed_s": c.get("elapsed_s"),
    }


def cmd_catalogue(args: argparse.Namespace) -> int:
    from core.cli.render import print_catalogue
    from core.engine.catalogue import load_catalogue

    cat = load_catalogue()
    if args.json:
        print_json([p for s in cat.to_json() for p in s["probes"]])
    else:
        print_catalogue(cat.to_json())
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Prove the catalogue against a real account: keys as '<run>,<key>' lines on standard input only."""
    from core.features.calibrate import CalibrationInputError, calibrate, parse_keys, print_table

    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("Pipe the keys on standard input as lines full,sk_test_…, none,rk_test_… and optionally "
                         "guide,rk_test_… (never as arguments).")
    try:
        keys = parse_keys(read_stdin())
    except CalibrationInputError as e:
        raise UsageError(str(e)) from None
    svc = _service(args)
    cal = calibrate(keys, settings=svc.rt.probe, client=svc.rt.client())
    # Recorded in the audit trail: when the catalogue was last proved against a real account, and how it went.
    svc.audit("calibrate", outcome="ok" if cal.ok else "mismatch", detail=cal.summary())
    if args.json:
        print_json(cal.to_json())
    else:
        print_table(cal)
    return EXIT_OK if cal.ok else EXIT_VERDICT


def cmd_sandbox(args: argparse.Namespace) -> int:
    from sandbox import serve

    serve(args.host, args.port, latency_s=args.latency)
    return EXIT_OK


def cmd_sample_data(args: argparse.Namespace) -> int:
    """Print the sample data (JSON with --json); exit 0 when every dataset was read or settled
    (loaded, empty, not_permitted), 1 when the key was refused or a dataset failed."""
    from core.cli.render import print_sample
    from core.engine.keys import SecretKey

    key = SecretKey.parse(read_key())  # the key, parsed once here
    try:
        data = _service(args).sample(
            key, window_days=args.days, max_rows=args.rows, datasets=tuple(args.dataset) if args.dataset else None
        )
    except ValueError as e:
        if type(e) is not ValueError:  # the sample's own bad input (days, rows, dataset), not a subclass
            raise
        raise UsageError(str(e)) from None
    if args.json:
        print_json(data.to_json())
    else:
        print_sample(data)
    ok = data.problem is None and all(d.state != "failed" for d in data.datasets)
    return EXIT_OK if ok else EXIT_VERDICT


def cmd_test_transaction(args: argparse.Namespace) -> int:
    """Run the sample transaction; print it (JSON with --json); exit 0 only when it passed."""
    from core.cli.render import print_transaction
    from core.engine.keys import SecretKey

    key = SecretKey.parse(read_key())  # the key, parsed once here
    tenant = None
    if args.tenant is not None:
        from core.store import TenantName

        tenant = TenantName.parse(args.tenant)  # parsed once here: a bad name is refused before any request
    result = _service(args).transact(
        key, tenant, source="cli", amount=args.amount, currency=args.currency,
        idempotency_key=args.idempotency_key,
    )
    if args.json:
        print_json(result.to_json())
    else:
        print_transaction(result)
    if result.audit_problem:  # the result printed; only its record in the history failed
        _say(result.audit_problem)
        return EXIT_DATABASE
    return EXIT_OK if result.passed else EXIT_VERDICT


COMMANDS = {
    "check": cmd_check, "recheck": cmd_recheck, "history": cmd_history, "catalogue": cmd_catalogue,
    "calibrate": cmd_calibrate, "sandbox": cmd_sandbox, "sample-data": cmd_sample_data,
    "test-transaction": cmd_test_transaction,
}


def build_parser():
    """The CLI's parser (core.cli.parser), each subcommand bound to its command here."""
    return _build_parser(COMMANDS)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed its usage line (or the help)
        return EXIT_USAGE if e.code else EXIT_OK
    import logging

    # The CLI says what went wrong in its own one sentence on stderr; the service's log lines (for the dashboard's
    # server log) would be a second, rawer line there.
    logging.getLogger("keyhealth").addHandler(logging.NullHandler())
    # nor the driver's warnings (psycopg: "error ignored terminating …: the connection is lost" when PostgreSQL
    # dies under a run), which would otherwise reach stderr through logging's last-resort handler
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
    from core.config import settings

    try:  # a setting that is not allowed stops start-up with its one sentence (after --help, which needs none)
        settings()
        return args.func(args)
    except KeyboardInterrupt:
        return EXIT_SIGNAL["SIGINT"]
    except Exception as e:  # ours (CliError), or one the CLI explains (as_cli_error); any other is raised
        err = as_cli_error(e)
        if err is None:
            raise
        _say(str(err))  # one sentence, no traceback
        return err.status


def run(argv: list[str] | None = None) -> NoReturn:
    """The process entry point (`python -m core`; a console script should point here, not at `main`): `main`,
    then exit with its code. Stopped by SIGINT/SIGTERM, the summary is already printed: leave at once (os._exit
    after flushing). Tearing down the interpreter's modules takes seconds on a busy machine, and whatever is still
    in flight (a key source's group is already killed; an alert POST hanging stays pending for the next run)
    must not hold the exit: within a second of the signal, as promised. Otherwise `leave`: the interpreter's own
    exit, less the teardown of its modules."""
    import os

    try:
        code = main(argv)
    except SystemExit as e:  # argparse's --help or usage error (its text already printed)
        if e.code is not None and not isinstance(e.code, int):
            raise
        code = e.code or 0
    if code in EXIT_SIGNAL.values():
        _flush()
        os._exit(code)
    leave(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            pass


def leave(code: int) -> NoReturn:
    """Exit with `code` as the interpreter would, without tearing its modules down: the threads' shutdown as the
    interpreter runs it (thread pools told to stop, then every thread that is not a daemon waited for), the
    database engines closed (PostgreSQL's connections ended politely, SQLite's WAL folded in), the atexit handlers
    (logging flushed, temporary folders removed), output flushed, then os._exit. The teardown of a process that
    imported SQLAlchemy, the SDK and the store took a quarter of a second (measured on the fleet bench's recheck)
    and did nothing the steps here leave undone."""
    import atexit
    import os
    import threading

    shutdown = getattr(threading, "_shutdown", None)  # what the interpreter calls first at exit (CPython)
    if shutdown is not None:
        shutdown()
    else:
        for t in threading.enumerate():
            if t is not threading.current_thread() and not t.daemon:
                t.join()
    db = sys.modules.get("core.store.db")
    if db is not None and db._engines_pid == os.getpid():  # never a parent's engines (after a fork)
        for url in list(db._engines):
            db.dispose_engine(url)
    atexit._run_exitfuncs()
    _flush()
    os._exit(code)
