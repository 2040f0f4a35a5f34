"""How the CLI prints: the tables of each command, colours from the palette (core.ui.palette.TERMINAL_SGR), the
progress bar, and times in UTC. Only text goes out here; what is printed was redacted and masked before (keys
are shown masked, a tenant's name through safe_cell). Nothing heavy is imported: no pandas, no store, no Stripe.
"""
from __future__ import annotations

import sys
from typing import Any

from core.ui.csv_safe import safe_cell  # light: pandas only when a frame is written
from core.ui.palette import TERMINAL_SGR


def paint(text: str, what: str, colour: bool) -> str:
    """`text` in the terminal colour of the status or verdict `what` (when `colour`)."""
    code = TERMINAL_SGR.get(what)
    return f"\033[{code}m{text}\033[0m" if colour and code else text


def use_colour(stream) -> bool:
    """Colour on this stream: never with NO_COLOR, always with FORCE_COLOR, else only on a terminal."""
    from core.config import settings

    conf = settings()
    return not conf.no_color and (conf.force_color or stream.isatty())


def utc(iso: str) -> str:
    """'2026-12-06T08:30:12+00:00' -> '2026-12-06 08:30 UTC': every time the CLI prints is UTC, and says so."""
    return f"{iso[:16].replace('T', ' ')} UTC"


def print_check_table(result, stream=None) -> None:
    stream = stream or sys.stdout
    c = use_colour(stream)
    k = result.key
    head = f"{k.masked}  {k.kind}  {k.mode or '-'}  account {result.account or 'unknown'}"
    print(head, file=stream)
    score = f"score {result.score}/100" if result.says_something else "no score (nothing is known about the key)"
    print(
        f"status {paint(result.status.upper(), result.status, c)}  {score}  "
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
            verdict = paint(shown, r.verdict, c)
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
        print(paint(i, "failing", c), file=stream)
    if result.message:  # the other audience: what support sends the tenant (second person)
        print("\nmessage for the tenant:", file=stream)
        for line in result.message.splitlines():
            print(f"  {line}".rstrip(), file=stream)


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


def print_recheck_table(report, stopped: bool) -> None:
    """A recheck's lines (tenant, masked key, status, score), its failed lines and its one summary line."""
    run_id = report.run.get("id")
    c = use_colour(sys.stdout)
    print(f"{'line':>4}  {'tenant':<30}  {'key':<18}  {'status':<10}  score")
    for r in report.results:
        status = paint(f"{r['status']:<10}", r["status"], c)
        name = safe_cell(r["tenant"])[:30]  # a table pasted into a spreadsheet starts no formula
        score = "-" if r["status"] == "unreachable" else r["score"]
        print(f"{r['line']:>4}  {name:<30}  {r['masked']:<18}  {status}  {score}")
    for f in report.failed_lines:
        print(f"line {f['line']}: {f['problem']}")
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


def print_history(tenant: dict[str, Any], out: dict[str, Any]) -> None:
    """A tenant's checks, key replacements and changes (`out` is the history's JSON, as --json prints it)."""
    c = use_colour(sys.stdout)
    name = safe_cell(tenant["name"])  # a table pasted into a spreadsheet starts no formula (core.ui.csv_safe)
    print(f"{name} ({tenant['slug']})  account {tenant['account'] or 'unknown'}  {len(out['checks'])} checks")
    for ch in out["checks"]:
        status = paint(f"{ch['status']:<10}", ch["status"], c)
        score = "  -" if ch["score"] is None else f"{ch['score']:>3}"
        print(f"  {utc(ch['checked_at'])}  {status} {score}  {ch['masked']}  {ch['mode'] or '-'}  {ch['source']}")
    for ev in out["key_events"]:
        said = (("mode changed", ev["mode_changed"]), ("account changed", ev["account_changed"]))
        flags = [w for w, on in said if on]
        print(f"key replaced {utc(ev['at'])}: {ev['old_masked']} → {ev['new_masked']}"
              + (f" ({', '.join(flags)})" if flags else ""))
    if out["drift"]:
        print("changes (same key):")
        for d in out["drift"]:
            print(f"  {utc(d['at'])}  {d['resource']}: {d['from_granted']} → {d['to_granted']} "
                  f"({d['from_verdict']} → {d['to_verdict']})")
    if out["new_key_changes"]:
        print("changes with the new key (not drift):")
        for d in out["new_key_changes"]:
            print(f"  {utc(d['at'])}  {d['resource']}: {d['from_granted']} → {d['to_granted']} "
                  f"({d['from_verdict']} → {d['to_verdict']}; {d['from_key']} → {d['to_key']})")


def print_catalogue(sections: list[dict[str, Any]]) -> None:
    """One line per permission: category, label, scope and its probes (`sections`: Catalogue.to_json())."""
    for s in sections:
        probes = "; ".join(f"{p['level']}: {p['method']} {p['path']}" for p in s["probes"])
        print(f"{s['category']:<14} {s['label']:<36} rak_{s['scope']:<34} {probes}")


def print_sample(data) -> None:
    """The sample data read with one key: one line per dataset (state, rows)."""
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


def print_transaction(result) -> None:
    """The sample transaction: its status, each step, and the charge it made."""
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
