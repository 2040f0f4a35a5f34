"""Fleet recheck: every tenant's key checked concurrently, paced per Stripe account, each result recorded
by one writer, in a stored run that can be resumed and shared by several workers (PostgreSQL).

    report = run_fleet(svc, entries, FleetOptions(concurrency=32))

- Keys come from standard input or a key-source command (`read_source`); they pass through memory only.
- Many keys are in flight at once (`concurrency`); each key's first request is sent alone and its 403 names
  the Stripe account, and from then on the key is paced by that account's bucket, shared with every other key
  of the account (core.engine.probe.Pacing). A global bucket caps the requests/s of the process.
- One writer thread in front of the store records every result in turn (SQLite has one writer anyway), so
  concurrency cannot lose a check to a lock; every line ends recorded or reported failed with its reason.
- A check Stripe gave no usable answer to (unreachable: our side's network, or a storm of 429/5xx answers) stops
  the run from claiming more tenants; it moves no tenant's status and raises no alert. Its tenant stays open in the
  run ("unreachable"), like the tenants not checked, and `--resume` checks them again.
- The run and its tenants are stored (fleet_runs, fleet_items). Tenants are claimed before they are checked
  (PostgreSQL: FOR UPDATE SKIP LOCKED, with an expiry of `claim_ttl_s`, 30 s), so workers sharing a run never
  check one twice and a run killed halfway keeps every finished check; `resume` picks the last unfinished run up
  where it stopped. A live worker's heartbeat keeps its claims (every claim_ttl_s / 3); a dead worker's expire and
  are taken over (a tenant it had checked just before dying is counted, not checked again).
- A worker with nothing left to claim while other workers still hold claims waits for them (taking over the claims
  that expire) and ends only when the run is finished, or when nothing moved for `wait_s`: the report then says
  `unfinished` ("run 7 unfinished: 19 tenants claimed by worker host:pid, which stopped answering"; exit 5).
- A run can be stopped (`Stop`: SIGINT or SIGTERM through `Stop.on_signals()`, or a database that died): no new
  tenant is claimed, sweeps in flight are abandoned (their requests are side-effect free; nothing of them is
  recorded), checks already handed to the writer are written whole (never half a check), unfinished claims go
  back to pending for `--resume`, and the report says which lines were recorded, which failed (with why) and
  which were not reached. A database failure other than a lock stops the run at the first line it fails.
"""
from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy.exc

from core.engine.check import check_key
from core.engine.probe import Pacing
from core.features.keysource import SourceError, SourceStopped, read_key_source  # noqa: F401 (re-exported)
from core.features.recheck import BatchLine, BatchReport
from core.store import fleet as runs
from core.store import guard, is_database_error, slugify
from core.store.db import DEADLINES
from core.store.errors import classify

# The database failures a run carries on after (the next line may well save): another process held the lock, or
# the database refused this one write for a reason of its own ("other": a constraint, a trigger). Anything that
# makes the database unusable (unreachable, read-only, corrupt, timed out, disk full, ...) stops the run: the
# remaining keys are not swept for nothing, and their lines are reported as not reached.
CARRY_ON = frozenset({"locked", "other"})

log = logging.getLogger("keyhealth")
MAX_PROBE_THREADS = 256


def read_source(command: str, timeout_s: float = 120.0, *, tenant: str | None = None,
                stop: Any = None) -> list[BatchLine]:
    """The key source's `tenant,key` lines (core.features.keysource.read_key_source: bounded, its own process
    group, killed on timeout, on too much output or when `stop` is set). With `tenant`, the source runs with
    KEYHEALTH_TENANT=<tenant>, so it may print just that tenant's line."""
    return read_key_source(command, tenant=tenant, timeout_s=timeout_s, stop=stop)


@dataclass
class FleetOptions:
    concurrency: int = 32
    max_rps: float = 600.0  # the process's ceiling, across every account
    run_name: str | None = None  # workers given the same name share the run
    resume: bool = False  # continue the last unfinished run
    claim_ttl_s: float = 30.0  # a claim not refreshed by its worker's heartbeat expires after this
    wait_s: float = 300.0  # waiting on other workers' claims: give up after this long with nothing moving
    command: str = "recheck"  # what started the run (stored; never a key)
    worker: str = field(default_factory=lambda: f"{socket.gethostname()[:60]}:{os.getpid()}")


@dataclass
class FleetReport(BatchReport):
    run: dict = field(default_factory=dict)
    skipped: int = 0  # already done in this run (resume, or another worker)
    rate_limited: int = 0
    requests: int = 0
    no_answer: int = 0  # of `requests`, those that got no HTTP answer (they may never have reached Stripe)
    elapsed_s: float = 0.0
    unreachable_tenants: int = 0  # checked without a usable answer from Stripe, or not checked because of it
    unfinished: str | None = None  # one sentence: the run is not finished, and who holds what is left

    @property
    def trouble(self) -> int:
        """Tenants (lines) this worker leaves unsettled or failed: unreachable, failed or not reached."""
        return self.unreachable_tenants + len(self.failed_lines) + len(self.not_reached)

    def to_json(self) -> dict:
        out = super().to_json()
        out["run"] = {"id": self.run.get("id"), "name": self.run.get("name"), "skipped": self.skipped,
                      "rate_limited": self.rate_limited, "requests": self.requests,
                      "elapsed_s": round(self.elapsed_s, 3), "finished": self.run.get("finished_at") is not None,
                      "open": self.run.get("open")}
        out["unreachable_tenants"] = self.unreachable_tenants
        out["unfinished"] = self.unfinished
        return out


class Stop:
    """Why a run stops early: "SIGINT" / "SIGTERM" (`on_signals`), or "database" (it died under the run).
    The first reason wins; later ones are ignored."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.reason: str | None = None
        self._event = threading.Event()

    def set(self, reason: str) -> None:
        if self.reason is not None:  # first (a second signal arriving inside this handler returns here)
            return
        self.reason = reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` s; True at once when the run is stopped."""
        return self._event.wait(timeout)

    @property
    def signal(self) -> str | None:
        return self.reason if self.reason in ("SIGINT", "SIGTERM") else None

    def _handler(self, signum: int, _frame: Any) -> None:
        self.set(signal.Signals(signum).name)  # only a flag: the run notices it between tenants and probes

    @contextmanager
    def on_signals(self) -> Iterator[Stop]:
        """While inside, SIGINT and SIGTERM stop the run instead of killing the process. Handlers can only be
        installed from the main thread; elsewhere (a caller's worker thread) this changes nothing."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


class _Abandoned(Exception):
    """Raised inside a sweep once the run is stopping: the sweep is left unfinished and nothing is recorded."""


class Writer:
    """One thread in front of the store: every write of the run goes through it, one after the other."""

    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _retrying(fn: Callable[[], Any], tries: int = 5, delay_s: float = 0.2) -> Any:
    """Run a store write, again after a lock or a dropped connection (OperationalError), a few times. A timeout
    (the server did not answer in time: frozen, cut off) is not tried again: each try would cost the whole wait."""
    for i in range(tries):
        try:
            return fn()
        except sqlalchemy.exc.OperationalError as e:
            if i == tries - 1 or classify(e).kind == "timed_out":
                raise
            time.sleep(delay_s * 2 ** i)  # backoff between tries of a locked database


def _release_dead_claims(store: Any, run_id: int) -> None:
    """On resume: tenants claimed by a process of this machine that is gone go back to pending."""
    host = socket.gethostname()[:60]
    dead = []
    for it in store.run_items(run_id):
        if it["state"] != "claimed" or not (it["claimed_by"] or "").startswith(host + ":"):
            continue
        try:
            pid = int(it["claimed_by"].rsplit(":", 1)[1])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            dead.append(it["id"])
        except PermissionError:
            pass  # alive, someone else's
    store.release_run_items(dead)


def unfinished_sentence(run_id: int, claims: list[tuple[str, int, Any]], unclaimed: int) -> str:
    """"run 7 unfinished: 19 tenants claimed by worker host:pid, which stopped answering" (and the rest)."""
    parts = [f"{n} tenant{'s' if n != 1 else ''} claimed by worker {w}" for w, n, _ in claims]
    said = ", ".join(parts) + (", which stopped answering" if claims else "")
    if unclaimed:
        said += ("; " if said else "") + (f"{unclaimed} tenant{'s' if unclaimed != 1 else ''} no worker has taken "
                                          "(their keys are in another worker's source)")
    return (f"run {run_id} unfinished: {said}; python -m core recheck --resume (or another worker) takes them "
            "over once their claims expire")


def run_fleet(svc: Any, entries: list[BatchLine], opts: FleetOptions, *,
              progress: Callable[[int, int, int], None] | None = None, stop: Stop | None = None) -> FleetReport:
    """Check and record every entry concurrently, in a stored run. `progress(done, total, failed)` is called
    after each tenant. A tenant on several lines is one tenant of the run, its lines checked in order.

    `stop` (set by a signal, see Stop.on_signals) ends the run early; so does a database failure outside
    CARRY_ON. Every line then ends in exactly one of `results` (recorded), `failed_lines` (with why) or
    `not_reached`; `interrupted` names the signal, `database_problem` the database's failure."""
    started = time.monotonic()
    stop = stop or Stop()
    store = svc.store
    report = FleetReport()
    if stop.is_set():  # stopped before anything started: no run, nothing checked
        report.interrupted = stop.signal
        report.not_reached = sorted(e.line for e in entries)
        return report
    by_slug: dict[str, list[BatchLine]] = {}  # a tenant given twice is checked twice, in line order
    for e in entries:
        by_slug.setdefault(slugify(e.tenant), []).append(e)
    db = svc.rt.db
    with guard(svc.rt.db):  # the database already unusable: DatabaseFailure, one sentence (exit 3 in the CLI)
        if opts.resume:
            run = store.last_unfinished_run()
            if run is None:
                raise SourceError("There is no unfinished run to resume; run without --resume.")
            _release_dead_claims(store, run["id"])
            store.settle_checked_run_items(run["id"])  # checked before the kill, not yet marked done
        else:
            run = store.start_run(name=opts.run_name, started_by=svc.who, command=opts.command)
        run_id = run["id"]
        report.run = dict(run)
        runs.reopen_unreachable(db, run_id)  # a run from before unreachable tenants stayed open: check them again
        store.add_run_items(run_id, [es[0].tenant for es in by_slug.values()])
        done_before = store.done_slugs(run_id) & set(by_slug)
        report.skipped = len(done_before)
        accounts = {t["slug"]: t["account"] for t in store.list_tenants(include_archived=True)}
    total = len(by_slug) - report.skipped

    probe = svc.rt.probe
    pacing = Pacing(probe, ceiling=opts.max_rps)
    client = svc.rt.client()
    writer = Writer()
    lock = threading.Lock()
    done = [0, 0]  # tenants finished, of which failed
    claimed: dict[int, dict] = {}  # every item this process claimed, by id
    finished: set[int] = set()  # items marked done in the run (or given back)
    foreign: set[int] = set()  # items of the run this worker has no key for (another worker's source)
    dead: list[bool] = [False]  # a write failed on a database outside CARRY_ON: later writes are not tried
    unreachable = threading.Event()  # Stripe gave no usable answer to a check: claim no more tenants (an outage)

    def tick(failed: bool) -> None:
        with lock:
            done[0] += 1
            done[1] += int(failed)
            d, f = done[0], done[1]
        if progress is not None:
            progress(d, total, f)

    def record(item: dict, entry: BatchLine, result: Any, error: str | None, last: bool) -> None:
        """In the writer thread: the check into history, then (after its last line) the tenant marked done.
        Signals never reach this thread, so a check handed to it is written whole or, after the database
        died under the run, not tried (its line is not reached)."""
        if dead[0]:
            return
        check_id, status, problem = None, None, error
        if result is not None:
            checked = _retrying_record(svc, result, entry.tenant)
            check_id, problem = checked.check_id, checked.save_problem
            status = result.status
            db_problem = checked.database_problem
            if db_problem is not None and db_problem.kind not in CARRY_ON:
                # this line fails with the reason (its check, audit entry and alert are all unsaved: one
                # transaction); the rest of the run is not reached
                dead[0] = True
                report.database_problem = db_problem
                stop.set("database")
                if db_problem.kind == "timed_out":
                    DEADLINES.expire_all()  # the main loop's (and the heartbeat's) statements end now
        try:
            if last and not dead[0]:
                _retrying(lambda: store.finish_run_item(item["id"], check_id=check_id, status=status,
                                                        problem=problem))
                finished.add(item["id"])
        except Exception as e:  # noqa: BLE001 - the check itself is kept; the run just does not know it finished
            log.error("marking a run item done failed: %s", type(e).__name__)
        if check_id is None:
            report.failed_lines.append({"line": entry.line, "problem": problem or "The check was not saved."})
        else:
            report.recorded += 1
            report.results.append({"line": entry.line, "tenant": entry.tenant, "status": result.status,
                                   "score": result.score if result.says_something else None,
                                   "masked": result.key.masked})
        if result is not None:
            report.requests += result.requests
            report.no_answer += result.no_answer
            if result.status == "unreachable":
                report.unreachable = report.unreachable or result.problem
                report.unreachable_tenants += 1
                unreachable.set()
        if last:
            tick(check_id is None)

    def abandon_if_stopping(*_: Any) -> None:
        if stop.reason is not None and stop.reason != "database" or dead[0]:
            raise _Abandoned()

    def check(item: dict, lines: list[BatchLine]) -> list[Future]:
        out: list[Future] = []
        if unreachable.is_set():  # claimed just before Stripe went away: left for --resume, not checked
            _retrying(lambda: store.release_run_items([item["id"]]))
            finished.add(item["id"])
            return out
        if item.get("taken_over"):  # a dead worker's claim: it may have checked the tenant just before dying
            found = _retrying(lambda: runs.checked_in_run(db, run_id, item["slug"]))
            if found is not None:
                _retrying(lambda: store.finish_run_item(item["id"], check_id=found[0], status=found[1],
                                                        problem=None))
                finished.add(item["id"])
                with lock:
                    report.skipped += 1
                return out
        for n, entry in enumerate(lines, start=1):
            try:
                abandon_if_stopping()
                result = check_key(entry.raw_key, settings=probe, client=client, pacing=pacing,
                                   account_hint=accounts.get(item["slug"]), pool=probe_pool,
                                   on_progress=abandon_if_stopping)
                result = svc.lifecycle(svc.judge(result), entry.tenant)
                error = None
                if result.status == "unreachable":
                    unreachable.set()  # before this worker frees its slot: no tenant is claimed after it
            except _Abandoned:
                break  # this line and the tenant's later ones: not reached
            except Exception as e:  # noqa: BLE001 - a bug or a store read failing in judge: the line fails, with why
                log.error("checking a fleet line failed: %s", type(e).__name__)
                result, error = None, f"The check could not be completed ({type(e).__name__}); run it again."
            with lock:  # handed to the writer before the stop is written; a sweep that ends after it is not
                if stop.signal is not None or dead[0]:
                    break
                out.append(writer.submit(record, item, entry, result, error, n == len(lines)))
            if len(lines) > 1:
                out[-1].result()  # the next line of the same tenant is judged against this one's record
        return out

    def database_stopped(e: Exception) -> None:
        """A store call of the main loop failed on the database: no more tenants. A timeout (a frozen or cut-off
        server) also stops the writer: every later write would wait as long again."""
        if not is_database_error(e):
            raise e
        problem = classify(e, db)
        report.database_problem = report.database_problem or problem
        if problem.kind == "timed_out":
            dead[0] = True
            DEADLINES.expire_all()  # the writer's (and the heartbeat's) statements waiting on it end now
        stop.set("database")

    beat_stop = threading.Event()

    def heartbeat() -> None:
        """While this worker lives, its claims stay its own (another worker takes them over once they expire)."""
        every = max(0.5, opts.claim_ttl_s / 3)
        while not beat_stop.wait(every):
            try:
                runs.heartbeat(db, run_id, opts.worker, opts.claim_ttl_s)
            except Exception as e:  # noqa: BLE001 - the run's own writes say what is wrong with the database
                log.warning("refreshing this worker's claims failed: %s", type(e).__name__)

    k = max(1, int(opts.concurrency))
    probe_pool = ThreadPoolExecutor(max_workers=min(MAX_PROBE_THREADS, k * probe.concurrency),
                                    thread_name_prefix="probe")
    keys_pool = ThreadPoolExecutor(max_workers=k, thread_name_prefix="fleet")
    in_flight: set[Future] = set()
    writes: list[Future] = []
    beat = threading.Thread(target=heartbeat, name="claims-heartbeat", daemon=True)
    beat.start()
    waiting: tuple[float, int] | None = None  # (since when, open items then) while waiting on other workers
    try:
        while True:
            free = 0 if unreachable.is_set() else k - len(in_flight)
            got: list[dict] = []
            if free > 0 and not stop.is_set():
                try:
                    got = _retrying(functools.partial(runs.claim_items, db, run_id, opts.worker, free,
                                                      opts.claim_ttl_s, exclude=foreign))
                except Exception as e:  # noqa: BLE001 - re-raised unless it is the database's
                    # no more tenants; the sweeps in flight still go to the writer, whose first failed write
                    # names the line and the reason (or the database is back and they are recorded)
                    database_stopped(e)
            for item in got:
                claimed[item["id"]] = item
                lines = by_slug.get(item["slug"])
                if lines is None:  # another worker's source has this tenant; this one has no key for it
                    store.release_run_items([item["id"]])
                    finished.add(item["id"])
                    foreign.add(item["id"])
                    continue
                in_flight.add(keys_pool.submit(check, item, lines))
            if got:
                waiting = None
            if not in_flight:
                if got or stop.is_set() or unreachable.is_set():
                    if got:
                        continue
                    break
                # nothing left to claim here: the run is finished, or other workers hold what is left
                try:
                    left = runs.open_claims(db, run_id)
                except Exception as e:  # noqa: BLE001 - re-raised unless it is the database's
                    database_stopped(e)
                    break
                if left["open"] == 0:
                    break
                now = time.monotonic()
                if waiting is None or left["open"] < waiting[1]:
                    waiting = (now, left["open"])  # something moved: wait on
                elif now - waiting[0] >= opts.wait_s:
                    others = [c for c in left["claims"] if c[0] != opts.worker]
                    report.unfinished = unfinished_sentence(run_id, others, left["claimable"])
                    break
                stop.wait(min(1.0, max(0.05, opts.claim_ttl_s / 10)))  # a signal ends the wait at once
                continue
            # a short timeout, so that a stop (a flag set by a signal handler) is noticed between completions
            ready, in_flight = wait(in_flight, timeout=0.2, return_when=FIRST_COMPLETED)
            writes.extend(w for f in ready for w in f.result())
        for w in writes:
            w.result()
    finally:
        keys_pool.shutdown(wait=True, cancel_futures=True)
        writer.close()
        probe_pool.shutdown(wait=True)
        beat_stop.set()
        report.rate_limited = pacing.rate_limited
        unfinished = [i for i in claimed if i not in finished]
        if not dead[0]:  # a database that timed out is not waited on again for the summary
            try:
                if unfinished:  # back to pending: --resume (or another worker) takes them
                    store.release_run_items(unfinished)
                store.add_rate_limited(run_id, pacing.rate_limited)
                report.run = store.summarise_run(run_id, finish=True)
            except Exception as e:  # noqa: BLE001 - the report still says what ran, from the run as it started
                log.error("summarising the run failed: %s", type(e).__name__)
        report.elapsed_s = time.monotonic() - started
    if report.unreachable is not None:  # the lines never checked because Stripe gave no usable answer
        covered = {r["line"] for r in report.results} | {f["line"] for f in report.failed_lines}
        skipped = [e for slug, es in by_slug.items() if slug not in done_before for e in es if e.line not in covered]
        has_result = {slugify(r["tenant"]) for r in report.results}
        report.unreachable_tenants += len({slugify(e.tenant) for e in skipped} - has_result)
        report.failed_lines.extend(
            {"line": e.line, "problem": "Not checked: Stripe gave no usable answer (see the unreachable line); "
                                        "run the recheck again (--resume) once it does."}
            for e in skipped
        )
    report.results.sort(key=lambda r: r["line"])
    report.failed_lines.sort(key=lambda f: f["line"])
    if stop.is_set():
        handled = {r["line"] for r in report.results} | {f["line"] for f in report.failed_lines}
        report.not_reached = sorted(e.line for e in entries if e.line not in handled
                                    and slugify(e.tenant) not in done_before)
        report.interrupted = stop.signal
    return report


def _retrying_record(svc: Any, result: Any, tenant: str) -> Any:
    """Service.record, again while the database says it is locked (another process writing)."""
    checked = svc.record(result, tenant, source="batch")
    tries = 0
    while checked.check_id is None and checked.database_problem is not None \
            and checked.database_problem.kind == "locked" and tries < 5:
        time.sleep(0.2 * 2 ** tries)  # backoff between tries of a locked database
        tries += 1
        checked = svc.record(result, tenant, source="batch")
    return checked
