"""Running a key-source command (KEYHEALTH_KEYS_FROM / --keys-from) and reading its `tenant,key` lines.

    entries = read_key_source(command, timeout_s=120)                 # the whole fleet (recheck)
    entries = read_key_source(command, tenant="Acme Ltd", stop=stop)  # KEYHEALTH_TENANT=Acme Ltd in its environment

The source is bounded:
- it runs in its own process group (a new session), and the whole group is killed (SIGKILL) on timeout, when
  its output passes the cap, when the caller's `stop` is set (our SIGTERM/SIGINT: `SourceStopped` within 0.1 s),
  and when it is done (a pipeline's grandchild or a background leftover never outlives it);
- its output is capped at `MAX_SOURCE_BYTES` (64 MiB) and `MAX_SOURCE_LINES` (1,000,000 lines): past either,
  it is killed and refused with one sentence, before the output eats the memory;
- what it says on stderr (only its last line is quoted, in a failure's sentence) passes the one redaction step
  (core.engine.redact) with every key it printed on stdout, so a key glued into an error or cut short is masked.

Nothing is checked unless the whole output is valid (core.features.recheck.parse_lines): a failing source
(non-zero exit, timeout, not found, too much output) or any malformed line raises SourceError (one sentence).
"""
from __future__ import annotations

import os
import re
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from typing import Protocol

from core.engine.redact import redact
from core.features.recheck import MAX_SOURCE_LINES, BatchLine, parse_lines

MAX_SOURCE_BYTES = 64 << 20  # 64 MiB: 20,000 tenants' lines are about 3 MiB
MAX_STDERR_BYTES = 64 << 10  # only the end of stderr is kept (its last line is quoted)
POLL_S = 0.1  # how often the caller's stop is looked at while the source runs
_KEYISH = re.compile(r"[A-Za-z0-9_]{16,}")


class SourceError(Exception):
    """The key source failed or printed something that is not tenant,key lines: one sentence, nothing checked."""


class SourceStopped(SourceError):
    """The caller stopped the source (our SIGTERM / SIGINT): it was killed, nothing was checked."""


class Stoppable(Protocol):
    """What `read_key_source` accepts as `stop`: anything with is_set() (core.features.fleet.Stop, an Event)."""

    def is_set(self) -> bool: ...


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the source's whole process group (it leads its own session); nothing left is not an error."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB"


def read_key_source(
    command: str,
    *,
    tenant: str | None = None,
    timeout_s: float = 120.0,
    stop: Stoppable | None = None,
    env: Mapping[str, str] | None = None,
    max_bytes: int = MAX_SOURCE_BYTES,
    max_lines: int = MAX_SOURCE_LINES,
) -> list[BatchLine]:
    """Run the key-source `command` (split like a shell command line, not run by a shell) and return its
    `tenant,key` lines. `tenant` is passed to the source as KEYHEALTH_TENANT (a source may then print just that
    tenant's line); `env` replaces the inherited environment (KEYHEALTH_TENANT still added). SourceError (one
    sentence) when the source fails, times out, prints too much or prints a malformed line; SourceStopped when
    `stop` was set while it ran."""
    try:
        argv = shlex.split(command)
    except ValueError as e:
        raise SourceError(f"The key source command cannot be read as a command line ({e}); fix its quoting.") from None
    if not argv:
        raise SourceError("The key source command is empty; give --keys-from a command that prints tenant,key lines.")
    child_env = dict(os.environ if env is None else env)
    if tenant is not None:
        child_env["KEYHEALTH_TENANT"] = tenant
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, env=child_env)
    except FileNotFoundError:
        raise SourceError(f"The key source command {argv[0]!r} was not found; give its full path.") from None
    except PermissionError:
        raise SourceError(f"The key source command {argv[0]!r} cannot be run (permission denied); make it "
                          "executable.") from None
    except OSError as e:
        raise SourceError(f"The key source command could not be started ({e.strerror or type(e).__name__}); "
                          "check the command.") from None
    try:
        out, err = _collect(proc, timeout_s, stop, max_bytes, max_lines)
    finally:
        _kill_group(proc)  # whatever happened: nothing of the source outlives this call
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()
        proc.wait()
    text = out.decode("utf-8", "surrogateescape").replace("\r\n", "\n")
    if proc.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        said = ""
        if lines:
            last = lines[-1][:400]
            said = f" (it said: {redact(last, *_printed_keys(last, text))[:200]!r})"
        raise SourceError(f"The key source command failed with exit status {proc.returncode}{said}; nothing was "
                          "checked.")
    entries, failed = parse_lines(text, max_lines)
    if failed:
        first = failed[0]
        more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
        raise SourceError(f"The key source printed a malformed line (line {first['line']}: {first['problem']}"
                          f"){more}; nothing was checked.")
    if not entries:
        raise SourceError("The key source printed no tenant,key lines; nothing was checked.")
    return entries


def _printed_keys(line: str, stdout: str) -> set[str]:
    """The keys (long tokens) the source printed on stdout that share a run of 8 characters with `line`: what to
    redact `line` with. One search per 8 characters of the line, however many keys were printed."""
    printed = "\n".join(_KEYISH.findall(stdout))
    found: set[str] = set()
    for i in range(len(line) - 7):
        at = printed.find(line[i:i + 8])
        if at >= 0:
            end = printed.find("\n", at)
            found.add(printed[printed.rfind("\n", 0, at) + 1:end if end >= 0 else len(printed)])
    return found


def _collect(proc: subprocess.Popen, timeout_s: float, stop: Stoppable | None, max_bytes: int,
             max_lines: int) -> tuple[bytes, bytes]:
    """The source's stdout and (the end of) its stderr once it exited; raises (after killing its group) on
    timeout, too much output or `stop`."""
    assert proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + timeout_s
    out = bytearray()
    err = bytearray()
    newlines = 0
    sel = selectors.DefaultSelector()
    for f in (proc.stdout, proc.stderr):
        os.set_blocking(f.fileno(), False)
        sel.register(f, selectors.EVENT_READ)
    try:
        while True:
            if stop is not None and stop.is_set():
                _kill_group(proc)
                raise SourceStopped("Stopped while the key source ran; nothing was checked.")
            left = deadline - time.monotonic()
            if left <= 0:
                _kill_group(proc)
                raise SourceError(f"The key source command did not finish within {timeout_s:g} s; nothing was "
                                  "checked (raise KEYHEALTH_KEYS_FROM_TIMEOUT_S or make the source faster).")
            if not sel.get_map():  # both pipes closed: wait for the exit, still watching the clock and `stop`
                try:
                    proc.wait(min(POLL_S, left))
                    return bytes(out), bytes(err)
                except subprocess.TimeoutExpired:
                    continue
            for sk, _ in sel.select(min(POLL_S, left)):
                try:
                    chunk = os.read(sk.fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(sk.fileobj)
                    continue
                if sk.fileobj is proc.stderr:
                    err += chunk
                    del err[:-MAX_STDERR_BYTES]
                    continue
                out += chunk
                newlines += chunk.count(b"\n")
                if len(out) > max_bytes or newlines > max_lines:
                    _kill_group(proc)
                    what = f"more than {_mib(max_bytes)}" if len(out) > max_bytes else f"more than {max_lines:,} lines"
                    raise SourceError(f"The key source printed {what}, more than a fleet's tenant,key lines; it was "
                                      "stopped and nothing was checked (make it print one tenant,key line per "
                                      "tenant).")
    finally:
        sel.close()
