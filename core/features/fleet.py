"""Fleet recheck: every tenant's key checked concurrently, paced per Stripe account, each result recorded
by one writer, in a stored run that can be resumed and shared by several workers (PostgreSQL).

    report = run_fleet(svc, entries, FleetOptions(concurrency=32))   # FleetRun(svc, entries, opts).run()

- Each line goes through Service.check, the one pipeline every check takes: a tenant name too close to another
  tenant's is refused before any request (the line fails with the dashboard's sentence), the key is swept at the
  run's shared pace (`Paced`) and judged against history; the writer records it through Service.record.
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
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy.exc

from core.engine.paced import Paced
from core.engine.probe import Pacing
from core.engine.result import CheckResult
from core.features.keysource import SourceError, SourceStopped, read_key_source  # noqa: F401 (re-exported)
from core.features.recheck import BatchLine, BatchReport
from core.features.retry import retrying
from core.store import History, StoreInputError, guard, is_database_error, slugify
from core.store.db import DEADLINES
from core.store.errors import classify

if TYPE_CHECKING:
    from core.service import Checked, Service

T = TypeVar("T")

# The database failures a run carries on after (the next line may well save): another process held the lock, or
# the database refused this one write for a reason of its own ("other": a constraint, a trigger). Anything that
# makes the database unusable (unreachable, read-only, corrupt, timed out, disk full, ...) stops the run: the
# remaining keys are not swept for nothing, and their lines are reported as not reached.
CARRY_ON = frozenset({"locked", "other"})

log = logging.getLogger("keyhealth")
MAX_PROBE_THREADS = 256
WAIT_POLL_S = 0.25  # waiting on other workers' claims: how often to look again


def read_source(command: str, timeout_s: float = 120.0, *, tenant: str | None = None,
                stop: Any = None) -> list[BatchLine]:
    """The key source's `tenant,key` lines (core.features.keysource.read_key_source: bounded, its own process
    group, killed on timeout, on too much output or when `stop` is set). With `tenant`, the source runs with
    KEYHEALTH_TENANT=<tenant>, so it may print just that tenant's line."""
    return read_key_source(command, tenant=tenant, timeout_s=timeout_s, stop=stop)


@dataclass
class FleetOptions:
    concurrency: int = 32
    key_concurrency: int = 1  # probes in flight per key: 1 sends them one after another in the key's sweep thread
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
    lines: list[LineResult] = field(default_factory=list)  # what the writer made of each line, in writing order

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


@dataclass
class LineResult:
    """What became of one line of the run, as the writer saw it: recorded (`check_id`), or failed (`problem`, one
    sentence). `result` is the judged check (None when the line was refused or failed before it was checked)."""

    line: int
    tenant: str
    result: CheckResult | None = None
    check_id: int | None = None
    problem: str | None = None

    def to_json(self) -> dict:
        """The report's entry: a recorded line (`results`) or a failed one (`failed_lines`)."""
        if self.check_id is None or self.result is None:
            return {"line": self.line, "problem": self.problem or "The check was not saved."}
        r = self.result
        return {"line": self.line, "tenant": self.tenant, "status": r.status,
                "score": r.score if r.says_something else None, "masked": r.key.masked}


@dataclass
class _Checked:
    """A line checked in a sweep thread, for the writer: the judged result, or why there is none."""

    entry: BatchLine
    result: CheckResult | None = None
    error: str | None = None
    history: History | None = None  # the one read of history the check started with: the write reads no more


def _is_retryable(e: Exception) -> bool:
    """A lock or a dropped connection (OperationalError) is tried again; a timeout (the server did not answer in
    time: frozen, cut off) is not: each try would cost the whole wait."""
    return isinstance(e, sqlalchemy.exc.OperationalError) and classify(e).kind != "timed_out"


def _retrying(fn: Callable[[], T]) -> T:
    """A store write of the run, again after a lock or a dropped connection, a few times (backoff)."""
    return retrying(fn, tries=5, delay_s=0.2, again_on=_is_retryable)


def _locked(checked: Checked) -> bool:
    return checked.check_id is None and checked.database_problem is not None \
        and checked.database_problem.kind == "locked"


class FleetRun:
    """One worker's part of a stored run: claim tenants, check each line through Service.check (refused, paced,
    judged), record it through Service.record in the one writer thread, and report what became of every line.

        report = FleetRun(svc, entries, FleetOptions(concurrency=32)).run()

    `progress(done, total, failed)` is called after each tenant. A tenant on several lines is one tenant of the
    run, its lines checked in order. `stop` (set by a signal, see Stop.on_signals) ends the run early; so does a
    database failure outside CARRY_ON. Every line then ends in exactly one of `results` (recorded),
    `failed_lines` (with why) or `not_reached`; `interrupted` names the signal, `database_problem` the
    database's failure."""

    def __init__(self, svc: Service, entries: list[BatchLine], opts: FleetOptions, *,
                 progress: Callable[[int, int, int], None] | None = None, stop: Stop | None = None):
        self.svc, self.entries, self.opts, self.progress = svc, entries, opts, progress
        self.stop = stop or Stop()
        self.store, self.db = svc.store, svc.rt.db
        self.report = FleetReport()
        self.by_slug: dict[str, list[BatchLine]] = {}  # a tenant given twice is checked twice, in line order
        for e in entries:
            self.by_slug.setdefault(slugify(e.tenant), []).append(e)
        self.run_id = 0
        self.done_before: set[str] = set()
        self.accounts: dict[str, str | None] = {}
        self.total = 0
        self.lock = threading.Lock()
        self.done = self.failed = 0  # tenants finished, of which failed
        self.claimed: dict[int, dict] = {}  # every item this process claimed, by id
        self.finished: set[int] = set()  # items marked done in the run (or given back)
        self.foreign: set[int] = set()  # items of the run this worker has no key for (another worker's source)
        self.dead = False  # a write failed on a database outside CARRY_ON: later writes are not tried
        self.unreachable = threading.Event()  # Stripe gave no usable answer to a check: claim no more tenants
        self.beat_stop = threading.Event()
        self.k = max(1, int(opts.concurrency))
        self.pacing = Pacing(svc.rt.probe, ceiling=opts.max_rps)

    # --- the run ----------------------------------------------------------------------------------------
    def run(self) -> FleetReport:
        started = time.monotonic()
        if self.stop.is_set():  # stopped before anything started: no run, nothing checked
            self.report.interrupted = self.stop.signal
            self.report.not_reached = sorted(e.line for e in self.entries)
            return self.report
        self._open()
        self.writer = Writer()
        self.key_concurrency = max(1, int(self.opts.key_concurrency))
        # probe threads only when a key has more than one probe in flight; at 1 each sweep sends from its own thread
        self.probe_pool = ThreadPoolExecutor(
            max_workers=min(MAX_PROBE_THREADS, self.k * self.key_concurrency), thread_name_prefix="probe") \
            if self.key_concurrency > 1 else None
        self.keys_pool = ThreadPoolExecutor(max_workers=self.k, thread_name_prefix="fleet")
        threading.Thread(target=self._heartbeat, name="claims-heartbeat", daemon=True).start()
        try:
            for w in self._loop():
                w.result()
        finally:
            self._close()
            self.report.elapsed_s = time.monotonic() - started
        self._settle_report()
        return self.report

    def _open(self) -> None:
        """Start (or resume) the stored run and put this worker's tenants in it."""
        store, report = self.store, self.report
        with guard(self.db):  # the database already unusable: DatabaseFailure, one sentence (exit 3 in the CLI)
            if self.opts.resume:
                run = store.last_unfinished_run()
                if run is None:
                    raise SourceError("There is no unfinished run to resume; run without --resume.")
                _release_dead_claims(store, run["id"])
                store.settle_checked_run_items(run["id"])  # checked before the kill, not yet marked done
            else:
                run = store.start_run(name=self.opts.run_name, started_by=self.svc.who, command=self.opts.command)
            self.run_id = run["id"]
            report.run = dict(run)
            store.reopen_unreachable_run_items(self.run_id)  # from before unreachable tenants stayed open: again
            store.add_run_items(self.run_id, [es[0].tenant for es in self.by_slug.values()])
            self.done_before = store.done_slugs(self.run_id) & set(self.by_slug)
            report.skipped = len(self.done_before)
            self.accounts = {t["slug"]: t["account"] for t in store.list_tenants(include_archived=True)}
        self.total = len(self.by_slug) - report.skipped

    def _loop(self) -> list[Future]:
        """Claim tenants while there are free slots, hand each to a sweep thread, and collect their writes, until
        nothing is left (or the run stops). The writes handed to the writer."""
        in_flight: set[Future] = set()
        writes: list[Future] = []
        self.waiting: tuple[float, int] | None = None  # (since when, open items then) while waiting on others
        while True:
            got = self._claim(self.k - len(in_flight))
            in_flight |= self._dispatch(got)
            if got:
                self.waiting = None
            if not in_flight:
                if got:
                    continue
                # this worker's own last checks are written before it asks what is left: until then their claims
                # look open, and the question would wait a poll for its own writer
                wait(writes)
                if self.stop.is_set() or self.unreachable.is_set() or self._nothing_left():
                    return writes
                continue
            # a short timeout, so that a stop (a flag set by a signal handler) is noticed between completions
            ready, in_flight = wait(in_flight, timeout=0.2, return_when=FIRST_COMPLETED)
            writes.extend(w for f in ready for w in f.result())

    def _claim(self, free: int) -> list[dict]:
        if free <= 0 or self.unreachable.is_set() or self.stop.is_set():
            return []
        try:
            # never this worker's own tenants still in flight: a claim that lapsed while its check ran (a TTL
            # shorter than the check) would otherwise be taken over by its own worker and counted twice
            in_flight = {i for i in list(self.claimed) if i not in self.finished}
            return _retrying(functools.partial(self.store.claim_run_items, self.run_id, self.opts.worker, free,
                                               self.opts.claim_ttl_s, exclude=self.foreign | in_flight))
        except Exception as e:  # noqa: BLE001 - re-raised unless it is the database's
            # no more tenants; the sweeps in flight still go to the writer, whose first failed write names the
            # line and the reason (or the database is back and they are recorded)
            self._database_stopped(e)
            return []

    def _dispatch(self, got: list[dict]) -> set[Future]:
        out: set[Future] = set()
        for item in got:
            self.claimed[item["id"]] = item
            lines = self.by_slug.get(item["slug"])
            if lines is None:  # another worker's source has this tenant; this one has no key for it
                self.store.release_run_items([item["id"]])
                self.finished.add(item["id"])
                self.foreign.add(item["id"])
                continue
            out.add(self.keys_pool.submit(self._check_tenant, item, lines))
        return out

    def _nothing_left(self) -> bool:
        """Nothing left to claim here: True when the run is finished (or this worker gives up waiting on other
        workers' claims, saying so in `unfinished`); False after a short wait for them."""
        try:
            left = self.store.open_run_claims(self.run_id)
        except Exception as e:  # noqa: BLE001 - re-raised unless it is the database's
            self._database_stopped(e)
            return True
        if left["open"] == 0:
            return True
        now = time.monotonic()
        if self.waiting is None or left["open"] < self.waiting[1]:
            self.waiting = (now, left["open"])  # something moved: wait on
        elif now - self.waiting[0] >= self.opts.wait_s:
            others = [c for c in left["claims"] if c[0] != self.opts.worker]
            self.report.unfinished = unfinished_sentence(self.run_id, others, left["claimable"])
            return True
        # a signal ends the wait at once; a quarter second between looks, so that the last worker's exit is not
        # followed by a second of this one's waiting (one cheap query each)
        self.stop.wait(min(WAIT_POLL_S, max(0.05, self.opts.claim_ttl_s / 10)))
        return False

    def _close(self) -> None:
        """Stop the threads, give unfinished claims back (--resume or another worker takes them), summarise."""
        self.keys_pool.shutdown(wait=True, cancel_futures=True)
        self.writer.close()
        if self.probe_pool is not None:
            self.probe_pool.shutdown(wait=True)
        self.beat_stop.set()
        self.report.rate_limited = self.pacing.rate_limited
        if self.dead:  # a database that timed out is not waited on again for the summary
            return
        unfinished = [i for i in self.claimed if i not in self.finished]
        try:
            if unfinished:
                self.store.release_run_items(unfinished)
            self.store.add_rate_limited(self.run_id, self.pacing.rate_limited)
            self.report.run = self.store.summarise_run(self.run_id, finish=True)
        except Exception as e:  # noqa: BLE001 - the report still says what ran, from the run as it started
            log.error("summarising the run failed: %s", type(e).__name__)

    def _settle_report(self) -> None:
        """The lines never checked because Stripe gave no usable answer fail with why; the rest, after a stop, are
        not reached."""
        report = self.report
        if report.unreachable is not None:
            covered = {r["line"] for r in report.results} | {f["line"] for f in report.failed_lines}
            skipped = [e for slug, es in self.by_slug.items() if slug not in self.done_before
                       for e in es if e.line not in covered]
            has_result = {slugify(r["tenant"]) for r in report.results}
            report.unreachable_tenants += len({slugify(e.tenant) for e in skipped} - has_result)
            report.failed_lines.extend(
                {"line": e.line, "problem": "Not checked: Stripe gave no usable answer (see the unreachable line); "
                                            "run the recheck again (--resume) once it does."}
                for e in skipped
            )
        report.results.sort(key=lambda r: r["line"])
        report.failed_lines.sort(key=lambda f: f["line"])
        if self.stop.is_set():
            handled = {r["line"] for r in report.results} | {f["line"] for f in report.failed_lines}
            report.not_reached = sorted(e.line for e in self.entries if e.line not in handled
                                        and slugify(e.tenant) not in self.done_before)
            report.interrupted = self.stop.signal

    # --- a tenant, in a sweep thread ------------------------------------------------------------------
    def _check_tenant(self, item: dict, lines: list[BatchLine]) -> list[Future]:
        """Check the tenant's lines in order, each handed to the writer; its writes."""
        out: list[Future] = []
        if self.unreachable.is_set():  # claimed just before Stripe went away: left for --resume, not checked
            _retrying(lambda: self.store.release_run_items([item["id"]]))
            self.finished.add(item["id"])
            return out
        if item.get("taken_over") and self._checked_by_the_dead(item):
            return out
        for n, entry in enumerate(lines, start=1):
            try:
                checked = self._check_line(item, entry)
            except _Abandoned:
                break  # this line and the tenant's later ones: not reached
            with self.lock:  # handed to the writer before the stop is written; a sweep that ends after it is not
                if self.stop.signal is not None or self.dead:
                    break
                out.append(self.writer.submit(self._write, item, checked, n == len(lines)))
            if len(lines) > 1:
                out[-1].result()  # the next line of the same tenant is judged against this one's record
        return out

    def _checked_by_the_dead(self, item: dict) -> bool:
        """A dead worker's claim: it may have checked the tenant just before dying. True when it did (the tenant
        is marked done with that check, and counted as skipped)."""
        found = _retrying(lambda: self.store.checked_in_run(self.run_id, item["slug"]))
        if found is None:
            return False
        _retrying(lambda: self.store.finish_run_item(item["id"], check_id=found[0], status=found[1], problem=None))
        self.finished.add(item["id"])
        with self.lock:
            self.report.skipped += 1
        return True

    def _check_line(self, item: dict, entry: BatchLine) -> _Checked:
        """One line through Service.check: a name clash refused before any request, the key swept at the run's
        shared pace, judged against history. Raises _Abandoned once the run is stopping."""
        self._abandon_if_stopping()
        paced = Paced(self.pacing, self.probe_pool, self.accounts.get(item["slug"]), self.key_concurrency)
        try:
            checked = self.svc.check(entry.key, entry.tenant, source="batch", record="later", pacing=paced,
                                     on_progress=self._abandon_if_stopping)
            result = checked.result
        except _Abandoned:
            raise
        except StoreInputError as e:  # a bad name, or one too close to another tenant's: the sentence, no request
            return _Checked(entry, error=str(e))
        except Exception as e:  # noqa: BLE001 - a bug or a store read failing in judge: the line fails, with why
            log.error("checking a fleet line failed: %s", type(e).__name__)
            return _Checked(entry, error=f"The check could not be completed ({type(e).__name__}); run it again.")
        if result.status == "unreachable":
            self.unreachable.set()  # before this worker frees its slot: no tenant is claimed after it
        return _Checked(entry, result, history=checked.history)

    def _abandon_if_stopping(self, *_: Any) -> None:
        if self.stop.reason is not None and self.stop.reason != "database" or self.dead:
            raise _Abandoned()

    # --- the writer thread ----------------------------------------------------------------------------
    def _write(self, item: dict, checked: _Checked, last: bool) -> None:
        """The check into history, with (after its last line) the tenant marked done. Signals never reach this
        thread, so a check handed to it is written whole or, after the database died under the run, not tried
        (its line is not reached)."""
        if self.dead:
            return
        line = self._save(checked, item["id"] if last else None)
        if last and line.check_id is not None:  # recorded: the tenant was marked done with its check
            self.finished.add(item["id"])
        elif last and not self.dead:  # the line failed: the tenant is done, with why
            status = None if checked.result is None else checked.result.status
            try:
                _retrying(lambda: self.store.finish_run_item(item["id"], check_id=None, status=status,
                                                             problem=line.problem))
                self.finished.add(item["id"])
            except Exception as e:  # noqa: BLE001 - the run just does not know: --resume checks the tenant again
                log.error("marking a run item done failed: %s", type(e).__name__)
        self._tally(line)
        if last:
            self._tick(line.check_id is None)

    def _save(self, checked: _Checked, run_item: int | None) -> LineResult:
        """Service.record (again while the database says it is locked: another process writing), marking
        `run_item` (the tenant's, after its last line) done in the same transaction. A database failure outside
        CARRY_ON stops the run: this line fails with the reason (its check, audit entry, alert and run item are all
        unsaved: one transaction); the rest of the run is not reached."""
        entry, result = checked.entry, checked.result
        line = LineResult(entry.line, entry.tenant, result, problem=checked.error)
        if result is None:
            return line
        saved = retrying(lambda: self.svc.record(result, entry.tenant, source="batch", history=checked.history,
                                                 run_item=run_item),
                         tries=6, delay_s=0.2,
                         again=_locked)
        line.check_id, line.problem = saved.check_id, saved.save_problem
        problem = saved.database_problem
        if problem is not None and problem.kind not in CARRY_ON:
            self.dead = True
            self.report.database_problem = problem
            self.stop.set("database")
            if problem.kind == "timed_out":
                DEADLINES.expire_all()  # the main loop's (and the heartbeat's) statements end now
        return line

    def _tally(self, line: LineResult) -> None:
        report, result = self.report, line.result
        report.lines.append(line)
        entry = line.to_json()
        if line.check_id is None:
            report.failed_lines.append(entry)
        else:
            report.recorded += 1
            report.results.append(entry)
        if result is None:
            return
        report.requests += result.requests
        report.no_answer += result.no_answer
        if result.status == "unreachable":
            report.unreachable = report.unreachable or result.problem
            report.unreachable_tenants += 1
            self.unreachable.set()

    def _tick(self, failed: bool) -> None:
        with self.lock:
            self.done += 1
            self.failed += int(failed)
            d, f = self.done, self.failed
        if self.progress is not None:
            self.progress(d, self.total, f)

    # --- the main thread's troubles, and the heartbeat ----------------------------------------------------
    def _database_stopped(self, e: Exception) -> None:
        """A store call of the main loop failed on the database: no more tenants. A timeout (a frozen or cut-off
        server) also stops the writer: every later write would wait as long again."""
        if not is_database_error(e):
            raise e
        problem = classify(e, self.db)
        self.report.database_problem = self.report.database_problem or problem
        if problem.kind == "timed_out":
            self.dead = True
            DEADLINES.expire_all()  # the writer's (and the heartbeat's) statements waiting on it end now
        self.stop.set("database")

    def _heartbeat(self) -> None:
        """While this worker lives, its claims stay its own (another worker takes them over once they expire)."""
        every = max(0.5, self.opts.claim_ttl_s / 3)
        while not self.beat_stop.wait(every):
            try:
                self.store.heartbeat_run(self.run_id, self.opts.worker, self.opts.claim_ttl_s)
            except Exception as e:  # noqa: BLE001 - the run's own writes say what is wrong with the database
                log.warning("refreshing this worker's claims failed: %s", type(e).__name__)


def run_fleet(svc: Service, entries: list[BatchLine], opts: FleetOptions, *,
              progress: Callable[[int, int, int], None] | None = None, stop: Stop | None = None) -> FleetReport:
    """FleetRun(svc, entries, opts, progress=..., stop=...).run(): check and record every entry, in a stored run."""
    return FleetRun(svc, entries, opts, progress=progress, stop=stop).run()
