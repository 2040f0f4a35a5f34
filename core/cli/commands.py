"""`python -m core …`: the command-line way in. A public interface: keep it stable.

Keys are read from STRIPE_KEY, or from standard input when it is unset; never from an argument
(arguments end up in shell history and process lists).

Exit codes: 0 healthy / done, 1 a key is not healthy (or a recheck line failed), 2 usage error, 3 the database
could not be used (one sentence on stderr naming the cause and the fix; core.store.errors), 4 Stripe gave no
usable answer (our network, or a storm of 429/5xx answers; a recheck: some tenant unreachable, left for --resume),
5 a recheck's run is unfinished (other workers' claims never finished; one sentence names them), 130 / 143 a
recheck stopped by SIGINT / SIGTERM (after printing which lines it saved).
"""
from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
from typing import Any, NoReturn

from core.ui.csv_safe import safe_cell  # light: pandas only when a frame is written

EXIT_OK, EXIT_VERDICT, EXIT_USAGE, EXIT_DATABASE, EXIT_UNREACHABLE = 0, 1, 2, 3, 4  # 4: Stripe never answered
EXIT_UNFINISHED = 5  # a recheck's run did not finish: other workers' claims stayed open (see docs/operations.md)
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}

COLOURS = {
    "ok": "32",
    "missing": "31",
    "excess": "33",
    "unknown": "90",
    "not_applicable": "36",
    "healthy": "32",
    "attention": "33",
    "failing": "31",
    "incomplete": "34",  # blue, as on the dashboard (core/ui/palette.py)
    "invalid": "31",
    "unreachable": "35",
}


from core.config import env_key, settings  # noqa: E402
from core.engine.keys import mask  # noqa: E402  (light: no network, no store)


class UsageError(Exception):
    """Bad invocation: one sentence, exit 2."""


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
    env = env_key()
    if env is not None and env.strip():  # an empty STRIPE_KEY counts as unset
        return env
    stdin = stdin or sys.stdin
    if stdin is None:
        raise UsageError("No key given: set STRIPE_KEY or pipe the key on standard input.")
    if stdin.isatty():
        return getpass.getpass("Paste the restricted key (not shown): ")
    text = read_stdin(stdin)
    if not text.strip():
        raise UsageError("No key given: set STRIPE_KEY or pipe the key on standard input.")
    return text


def _paint(text: str, what: str, colour: bool) -> str:
    code = COLOURS.get(what)
    return f"\033[{code}m{text}\033[0m" if colour and code else text


def _use_colour(stream) -> bool:
    conf = settings()
    return not conf.no_color and (conf.force_color or stream.isatty())


def print_check_table(result, stream=None) -> None:
    stream = stream or sys.stdout
    c = _use_colour(stream)
    k = result.key
    head = f"{k.masked}  {k.kind}  {k.mode or '-'}  account {result.account or 'unknown'}"
    print(head, file=stream)
    score = f"score {result.score}/100" if result.says_something else "no score (nothing is known about the key)"
    print(
        f"status {_paint(result.status.upper(), result.status, c)}  {score}  "
        f"{result.requests} requests in {result.elapsed_s:.2f} s  checked {result.checked_at:%Y-%m-%d %H:%M} UTC",
        file=stream,
    )
    if result.problem:
        print(f"problem (for support): {result.problem}", file=stream)
    lc = result.lifecycle
    if lc is not None:
        if lc.replaced:
            print(f"key replaced: {lc.replaced} → {k.masked}", file=stream)
        for sentence in lc.problems():
            print(f"key: {sentence}", file=stream)
        if lc.age_days is not None:
            due = "; rotation due" if lc.rotation_due else ""
            print(f"key in use for {lc.age_days} days{due}", file=stream)
    if result.rows:
        w_cat = max(len(r.category) for r in result.rows)
        w_res = max(len(r.resource) for r in result.rows)
        print(f"\n{'category':<{w_cat}}  {'permission':<{w_res}}  {'required':<8}  {'granted':<8}  "
            "verdict", file=stream)
        for r in result.rows:
            shown = ("implied (unverified)" if r.implied_unverified else "ok (implied)") if r.implied else r.verdict
            verdict = _paint(shown, r.verdict, c)
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
    if result.message:  # the other audience: what support sends the tenant (second person)
        print("\nmessage for the tenant:", file=stream)
        for line in result.message.splitlines():
            print(f"  {line}".rstrip(), file=stream)


# --- commands ------------------------------------------------------------------------------
def _service(args=None):
    """The CLI's service: the real runtime from the settings, acting as KEYHEALTH_USER (else USER)."""
    from core import runtime
    from core.config import settings
    from core.service import Service

    conf = settings()
    return Service(runtime.build(conf, demo_mode=bool(getattr(args, "demo", False)), who=conf.user))


def _utc(iso: str) -> str:
    """'2026-12-06T08:30:12+00:00' -> '2026-12-06 08:30 UTC': every time the CLI prints is UTC, and says so."""
    return f"{iso[:16].replace('T', ' ')} UTC"


def _say(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def cmd_check(args) -> int:
    from core.store import DatabaseFailure, guard

    if args.from_source and args.tenant is None:
        raise UsageError("--from-source checks the key a tenant's key source holds; name the tenant with --tenant.")
    raw = None if args.from_source else read_key()
    svc = _service(args)
    refused = None  # a name too close to another tenant's: refused before any request
    if args.tenant is not None:  # --tenant "" is a bad name, not "no tenant"
        from core.store import validate_tenant_name

        validate_tenant_name(args.tenant)  # a bad name is refused before any request
        try:
            with guard(svc.rt.db):
                refused = svc.store.name_clash(args.tenant)
        except DatabaseFailure:  # the check still runs and prints; saving it then says what is wrong
            pass
        if refused:
            raise UsageError(refused)
    if args.from_source:
        from core.features.held_key import check_held_key

        held = check_held_key(svc, args.tenant)
        if held.checked is None:
            raise UsageError(held.problem or "The key source gave no key.")
        checked = held.checked
    else:
        checked = svc.check(raw, args.tenant, source="cli")
    result = checked.result
    if args.json:
        out = result.to_json()
        if args.tenant is not None:
            out["saved"] = checked.saved
            out["save_problem"] = checked.database_problem.sentence if checked.database_problem and \
                not checked.saved else checked.save_problem
            out["audit_problem"] = checked.audit_problem
        print(json.dumps(out))
    else:
        print_check_table(result)
    _flush_alerts(svc, checked.alert_id is not None)
    problem = checked.save_problem or checked.audit_problem
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


class ProgressBar:
    """`[#####.....] 120/200 tenants  2 failed  ETA 0:41` on a terminal's stderr, redrawn in place."""

    WIDTH = 30

    def __init__(self, stream=None, clock=None):
        import time

        self.stream = stream or sys.stderr
        self.clock = clock or time.monotonic
        self.started = self.clock()
        self._last = -1.0

    def __call__(self, done: int, total: int, failed: int) -> None:
        now = self.clock()
        if done < total and now - self._last < 0.1:
            return  # at most ten redraws a second
        self._last = now
        self.stream.write("\r" + self.line(done, total, failed, now - self.started))
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()

    @classmethod
    def line(cls, done: int, total: int, failed: int, elapsed_s: float) -> str:
        frac = done / total if total else 1.0
        filled = int(cls.WIDTH * frac)
        if done and done < total:
            eta_s = int(elapsed_s / done * (total - done))
            eta = f"ETA {eta_s // 3600}:{eta_s // 60 % 60:02d}:{eta_s % 60:02d}"
        elif done >= total:
            eta = f"done in {int(elapsed_s) // 60}:{int(elapsed_s) % 60:02d}"
        else:
            eta = "ETA …"
        return (f"[{'#' * filled}{'.' * (cls.WIDTH - filled)}] {done}/{total} tenants"
                f"{f'  {failed} failed' if failed else ''}  {eta}")


def line_ranges(lines: list[int]) -> str:
    """[1, 2, 3, 5, 7, 8] -> "1-3, 5, 7-8"."""
    out: list[str] = []
    for n in sorted(lines):
        if out and out[-1].split("-")[-1] == str(n - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ", ".join(out)


def cmd_recheck(args) -> int:
    from core.features.fleet import Stop

    stop = Stop()
    with stop.on_signals():  # SIGINT / SIGTERM from here on: the run stops cleanly and says what it saved
        return _recheck(args, stop)


def _recheck(args, stop) -> int:
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
            concurrency=args.concurrency or conf.fleet_concurrency,
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
    report.failed_lines = sorted(failed + report.failed_lines, key=lambda f: f["line"])
    stopped = report.interrupted is not None or report.database_problem is not None and stop.is_set()
    run_id = report.run.get("id")
    if args.json:
        print(json.dumps(report.to_json()), flush=True)
    else:
        c = _use_colour(sys.stdout)
        print(f"{'line':>4}  {'tenant':<30}  {'key':<18}  {'status':<10}  score")
        for r in report.results:
            status = _paint(f"{r['status']:<10}", r["status"], c)
            name = safe_cell(r["tenant"])[:30]  # a table pasted into a spreadsheet starts no formula
            score = "-" if r["status"] == "unreachable" else r["score"]
            print(f"{r['line']:>4}  {name:<30}  {r['masked']:<18}  {status}  {score}")
        for f in report.failed_lines:
            print(f"line {f['line']}: {f['problem']}")
        for r in report.results:
            if r.get("audit_problem"):
                print(f"line {r['line']}: {r['audit_problem']}")
        if stopped:
            saved = [r["line"] for r in report.results]
            print(f"recorded: {'lines ' + line_ranges(saved) if saved else 'no line'}")
        if report.not_reached:
            print(f"not reached (not checked, nothing recorded): lines {line_ranges(report.not_reached)}")
        extra = f", {report.skipped} already done in this run" if report.skipped else ""
        extra += f", {len(report.not_reached)} not reached" if report.not_reached else ""
        extra += f", {report.unreachable_tenants} unreachable" if report.unreachable_tenants else ""
        where = f"run {run_id}" if run_id is not None else "no run started"
        print(f"{report.recorded} recorded, {len(report.failed_lines)} lines failed{extra} "
              f"({where}, {report.rate_limited} rate-limited answers, {report.elapsed_s:.1f} s)", flush=True)
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


def cmd_history(args) -> int:
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
        print(json.dumps(out))
        return EXIT_OK
    c = _use_colour(sys.stdout)
    name = safe_cell(tenant["name"])  # a table pasted into a spreadsheet starts no formula (core.ui.csv_safe)
    print(f"{name} ({tenant['slug']})  account {tenant['account'] or 'unknown'}  {len(checks)} checks")
    for ch in out["checks"]:
        status = _paint(f"{ch['status']:<10}", ch["status"], c)
        score = "  -" if ch["score"] is None else f"{ch['score']:>3}"
        print(f"  {_utc(ch['checked_at'])}  {status} {score}  {ch['masked']}  {ch['mode'] or '-'}  {ch['source']}")
    for ev in out["key_events"]:
        said = (("mode changed", ev["mode_changed"]), ("account changed", ev["account_changed"]))
        flags = [w for w, on in said if on]
        print(f"key replaced {_utc(ev['at'])}: {ev['old_masked']} → {ev['new_masked']}"
              + (f" ({', '.join(flags)})" if flags else ""))
    if out["drift"]:
        print("changes (same key):")
        for d in out["drift"]:
            print(f"  {_utc(d['at'])}  {d['resource']}: {d['from_granted']} → {d['to_granted']} "
                  f"({d['from_verdict']} → {d['to_verdict']})")
    if out["new_key_changes"]:
        print("changes with the new key (not drift):")
        for d in out["new_key_changes"]:
            print(f"  {_utc(d['at'])}  {d['resource']}: {d['from_granted']} → {d['to_granted']} "
                  f"({d['from_verdict']} → {d['to_verdict']}; {d['from_key']} → {d['to_key']})")
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


def cmd_catalogue(args) -> int:
    from core.engine.catalogue import load_catalogue

    cat = load_catalogue()
    if args.json:
        print(json.dumps([p for s in cat.to_json() for p in s["probes"]]))
    else:
        for s in cat.to_json():
            probes = "; ".join(f"{p['level']}: {p['method']} {p['path']}" for p in s["probes"])
            print(f"{s['category']:<14} {s['label']:<36} rak_{s['scope']:<34} {probes}")
    return EXIT_OK


def cmd_calibrate(args) -> int:
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
        print(json.dumps(cal.to_json()))
    else:
        print_table(cal)
    return EXIT_OK if cal.ok else EXIT_VERDICT


def cmd_sandbox(args) -> int:
    from sandbox import serve

    serve(args.host, args.port, latency_s=args.latency)
    return EXIT_OK


def cmd_sample_data(args) -> int:
    """Print the sample data (JSON with --json); exit 0 when every dataset was read or settled
    (loaded, empty, not_permitted), 1 when the key was refused or a dataset failed."""
    raw = read_key()
    try:
        data = _service(args).sample(
            raw, window_days=args.days, max_rows=args.rows, datasets=tuple(args.dataset) if args.dataset else None
        )
    except ValueError as e:
        if type(e).__name__ not in ("ValueError",):
            raise
        raise UsageError(str(e)) from None
    if args.json:
        print(json.dumps(data.to_json()))
    else:
        k = data.key
        print(f"{k.masked}  {k.kind}  {k.mode or '-'}  account {data.account or 'unknown'}")
        print(f"{data.requests} requests in {data.elapsed_s:.2f} s; last {data.window_days} days, "
              f"at most {data.max_rows} rows per dataset")
        if data.problem:
            print(f"problem: {data.problem}")
        if data.datasets:
            w = max(len(d.label) for d in data.datasets)
            for d in data.datasets:
                extra = d.reason or ""
                if d.state in ("loaded", "empty"):
                    extra = f"{d.count} rows" + (" (capped)" if d.truncated else "")
                print(f"{d.label:<{w}}  {d.state:<13}  {extra}")
    ok = data.problem is None and all(d.state != "failed" for d in data.datasets)
    return EXIT_OK if ok else EXIT_VERDICT


def cmd_test_transaction(args) -> int:
    """Run the sample transaction; print it (JSON with --json); exit 0 only when it passed."""
    raw = read_key()
    if args.tenant is not None:
        from core.store import validate_tenant_name

        validate_tenant_name(args.tenant)
    result = _service(args).transact(
        raw, args.tenant, source="cli", amount=args.amount, currency=args.currency,
        idempotency_key=args.idempotency_key,
    )
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        k = result.key
        print(f"{k.masked}  {k.kind}  {k.mode or '-'}")
        print(f"sample transaction {result.status.upper()}  {result.requests} requests in {result.elapsed_s:.2f} s")
        if result.problem:
            print(f"problem: {result.problem}")
        for st in result.steps:
            print(f"  {st.result:<6}  {st.elapsed_s:6.3f} s  {st.label}: {st.detail}")
        if result.charge:
            ch = result.charge
            print(f"charge {ch['id']}  {ch['amount']} {ch['currency']}  {ch['status']}")
        if result.balance_transaction:
            print(f"balance transaction {result.balance_transaction}")
    if result.audit_problem:  # the result printed; only its record in the history failed
        _say(result.audit_problem)
        return EXIT_DATABASE
    return EXIT_OK if result.passed else EXIT_VERDICT


_KEYISH = re.compile(r"\b(rk|sk|pk|rkcs|whsec)_[A-Za-z0-9_]{8,}")


class _Parser(argparse.ArgumentParser):
    """argparse echoes unrecognised arguments; a key pasted as an argument must not be echoed back."""

    def error(self, message: str) -> NoReturn:
        message = _KEYISH.sub(lambda m: mask(m.group(0)), message)
        super().error(message + " (keys are read from STRIPE_KEY or standard input, never from arguments)"
                      if _KEYISH.search(message) or "…" in message else message)


DEMO_HELP = "use the demo database and the embedded Stripe sandbox (as the dashboard's demo mode)"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m core", description="Key Health: check Stripe restricted keys.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="check one key (from STRIPE_KEY or standard input)")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("--tenant", help="record the check in this tenant's history (created if new)")
    c.add_argument("--from-source", action="store_true",
                   help="check the key the key source (KEYHEALTH_KEYS_FROM) holds for --tenant; nothing is pasted")
    c.add_argument("--demo", action="store_true", help=DEMO_HELP)
    c.set_defaults(func=cmd_check)

    c = sub.add_parser("recheck", help="check many tenants' keys (tenant,key lines) concurrently, as one stored run")
    c.add_argument("--csv", help="'-': tenant,key lines on standard input")
    c.add_argument("--keys-from", metavar="COMMAND",
                   help="a command that prints tenant,key lines (default: KEYHEALTH_KEYS_FROM)")
    c.add_argument("--concurrency", type=int, help="keys in flight at once (default: KEYHEALTH_FLEET_CONCURRENCY, "
                                                  "else 16 per core, at most 64)")
    c.add_argument("--max-rps", type=float,
                   help="requests/s ceiling for this process (default: KEYHEALTH_FLEET_MAX_RPS, else 600)")
    c.add_argument("--run-name", help="share the run of this name with other workers (PostgreSQL)")
    c.add_argument("--resume", action="store_true", help="continue the last unfinished run, skipping its done tenants")
    c.add_argument("--json", action="store_true")
    c.add_argument("--demo", action="store_true", help=DEMO_HELP)
    c.set_defaults(func=cmd_recheck)

    c = sub.add_parser("history", help="a tenant's checks and what changed between them")
    c.add_argument("--tenant", required=True)
    c.add_argument("--json", action="store_true")
    c.add_argument("--demo", action="store_true", help=DEMO_HELP)
    c.set_defaults(func=cmd_history)

    c = sub.add_parser("catalogue", help="print the permission catalogue and its probes")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_catalogue)

    c = sub.add_parser("calibrate", help="prove the catalogue against a real account (keys as run,key lines on "
                                         "standard input: full,sk_test_…  none,rk_test_…  [guide,rk_test_…])")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cmd_calibrate)

    c = sub.add_parser("sandbox", help="run the local Stripe sandbox and print its demo keys")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, default=12111)
    c.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    c.set_defaults(func=cmd_sandbox)

    c = sub.add_parser("sample-data", help="read masked sample data with one key (from STRIPE_KEY or standard input)")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("--days", type=int, default=30, help="time window for activity data, in days (1-365)")
    c.add_argument("--rows", type=int, default=100, help="row cap per dataset (1-1000)")
    c.add_argument("--dataset", action="append", help="only this dataset (repeatable), e.g. charges")
    c.set_defaults(func=cmd_sample_data)

    c = sub.add_parser("test-transaction", help="create one small test charge with a test key (never a live key)")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("--amount", type=int, default=100, help="amount in the currency's smallest unit (default 100)")
    c.add_argument("--currency", default="usd", help="three-letter currency code (default usd)")
    c.add_argument("--idempotency-key", help="reuse this idempotency key (default: derived from key, amount, currency, "
        "UTC hour)")
    c.add_argument("--tenant", help="record the result in this tenant's history")
    c.set_defaults(func=cmd_test_transaction)
    return p


def main(argv: list[str] | None = None) -> int:
    import logging

    # The CLI says what went wrong in its own one sentence on stderr; the service's log lines (for the dashboard's
    # server log) would be a second, rawer line there.
    logging.getLogger("keyhealth").addHandler(logging.NullHandler())
    # nor the driver's warnings (psycopg: "error ignored terminating …: the connection is lost" when PostgreSQL
    # dies under a run), which would otherwise reach stderr through logging's last-resort handler
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed its usage line
        return EXIT_USAGE if e.code else EXIT_OK
    from core.config import SettingError, settings
    from core.store import DatabaseFailure

    try:  # a setting that is not allowed stops start-up with its one sentence (after --help, which needs none)
        settings()
    except SettingError as e:
        _say(str(e))
        return EXIT_USAGE
    try:
        return args.func(args)
    except UsageError as e:
        _say(str(e))
        return EXIT_USAGE
    except DatabaseFailure as e:  # the database could not be used: one sentence, exit 3, no traceback
        _say(str(e))
        return EXIT_DATABASE
    except ValueError as e:  # StoreInputError and friends: one sentence, no traceback
        if type(e).__name__ not in ("StoreInputError", "UnknownTenantError", "CatalogueError"):
            raise
        _say(str(e))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_SIGNAL["SIGINT"]


def run(argv: list[str] | None = None) -> NoReturn:
    """The process entry point (`python -m core`; a console script should point here, not at `main`): `main`,
    then exit with its code. Stopped by SIGINT/SIGTERM, the summary is already printed: leave at once (os._exit
    after flushing). Tearing down the interpreter's modules takes seconds on a busy machine, and whatever is still
    in flight (a key source's group is already killed; an alert POST hanging stays pending for the next run)
    must not hold the exit: within a second of the signal, as promised."""
    import os

    code = main(argv)
    if code in EXIT_SIGNAL.values():
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more to say
                pass
        os._exit(code)
    sys.exit(code)
