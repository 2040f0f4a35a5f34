"""`python -m core …` as a user runs it, a fresh process each time, without paying the interpreter's start and the
heavy imports (stripe, SQLAlchemy, Alembic, psycopg, the service: about 1.2 s of CPU) on every one of the suite's
hundreds of CLI runs.

`run_core(args, env=…, input=…, text=…, timeout=…)` is `subprocess.run([sys.executable, "-m", "core", *args], …,
capture_output=True)` and returns the same `CompletedProcess`. Behind it, a zygote process imports the heavy modules
once (nothing else: no setting is read, no client or engine is made) and forks a child per run. The child is a
separate process with the run's own working directory, environment, argv, stdin, stdout and stderr (files, not the
zygote's pipes), and its exit code is the process's (`SystemExit`, an uncaught exception, a signal). The CLI's own
code runs as under `-m core`: `runpy.run_module("core", run_name="__main__")`.

What is the zygote's and not the run's is the interpreter's start and those imports. So there is one zygote per
start environment: the variables the interpreter reads at start (PYTHONWARNINGS, the locale) and those a preloaded
module reads at import (STRIPE_LOG, psycopg's and protobuf's). A run with any other `PYTHON…` variable of its own
goes to a real `subprocess.run`, and so does every run when KEYHEALTH_TEST_REAL_CLI=1. What a command imports is
not measurable through it: tests/cli/test_cli_startup.py starts real processes.
Held by tests/cli/test_cli_process.py (each answer equals a real process's).
"""
from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = str(Path(__file__).resolve().parent)
PRELOAD = ("stripe", "sqlalchemy", "sqlmodel", "alembic", "alembic.command", "alembic.config", "psycopg",
           "core.cli.commands", "core.service", "core.store", "core.features.recheck", "core.features.fleet",
           "core.features.keysource", "core.features.sample", "core.features.transaction", "core.runtime")
# Read once, when the zygote starts or imports (stripe/_util.py, psycopg/pq and waiting.py, protobuf).
READ_AT_START = ("PYTHONWARNINGS", "LANG", "STRIPE_LOG", "PSYCOPG_IMPL", "PSYCOPG_WAIT_FUNC",
                 "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "TMPDIR")
_lock = threading.Lock()
_zygotes: dict[tuple[tuple[str, str], ...], subprocess.Popen] = {}


def start_environment(env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """What of `env` the zygote's own start and imports read."""
    return tuple(sorted((k, v) for k, v in env.items() if k in READ_AT_START or k.startswith("LC_")))


def needs_a_real_process(env: dict[str, str]) -> bool:
    """Does `env` change the interpreter's start in a way a zygote does not show (PYTHONVERBOSE, PYTHONPATH, …)?"""
    def own(e: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in e.items() if k.startswith("PYTHON") and k not in READ_AT_START}
    return os.environ.get("KEYHEALTH_TEST_REAL_CLI") == "1" or own(env) != own(dict(os.environ))


def _zygote_for(env: dict[str, str]) -> subprocess.Popen:
    key = start_environment(env)
    zygote = _zygotes.get(key)
    if zygote is None or zygote.poll() is not None:
        start = {k: v for k, v in os.environ.items() if k not in READ_AT_START and not k.startswith("LC_")}
        code = f"import sys; sys.path.insert(0, {HERE!r}); import cli_process; cli_process._zygote_main()"
        zygote = _zygotes[key] = _spawn([sys.executable, "-c", code, *PRELOAD], env={**start, **dict(key)})
    return zygote


def _spawn(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    """A process spoken to by lines on its stdin and stdout. Unbuffered (bufsize=0): a buffered reader's readline
    may take the next answer too (a child that exits at once makes the zygote write "pid" and "rc" together), and
    the select() that waits for it would then wait for an answer already read."""
    return subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0)


@atexit.register
def _stop_all() -> None:
    for zygote in _zygotes.values():
        if zygote.poll() is None:
            assert zygote.stdin is not None
            zygote.stdin.close()
            try:
                zygote.wait(timeout=10)
            except subprocess.TimeoutExpired:
                zygote.kill()
    _zygotes.clear()


def _answer(proc: subprocess.Popen, deadline: float | None) -> dict[str, Any] | None:
    """The zygote's next answer, or None when `deadline` (time.monotonic) passes first."""
    assert proc.stdout is not None
    while True:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([proc.stdout.fileno()], [], [], wait)
        if ready:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("the CLI zygote exited (its stderr is the test's)")
            answer: dict[str, Any] = json.loads(line)
            return answer
        if deadline is not None and time.monotonic() >= deadline:
            return None


def _fork(env: dict[str, str], request: dict[str, Any]) -> tuple[subprocess.Popen, int]:
    """Ask the zygote for `env` to fork a child for `request`: (the zygote, the child's pid)."""
    for attempt in (1, 2):
        zygote = _zygote_for(env)
        assert zygote.stdin is not None
        try:
            zygote.stdin.write(json.dumps(request).encode() + b"\n")
            zygote.stdin.flush()
            started = _answer(zygote, None)
            assert started is not None
            return zygote, int(started["pid"])
        except (BrokenPipeError, RuntimeError):
            zygote.kill()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def run_core(args: list[str | bytes], *, env: dict[str, str] | None = None, input: str | bytes | None = None,
             cwd: str | Path | None = None, timeout: float | None = None, text: bool = False, check: bool = False,
             capture_output: bool = True) -> subprocess.CompletedProcess:
    """`subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, …)`, run in a zygote's fork."""
    assert capture_output, "run_core always captures stdout and stderr"
    env = dict(os.environ) if env is None else dict(env)
    cmd = [sys.executable, "-m", "core", *args]
    if needs_a_real_process(env):
        return subprocess.run(cmd, env=env, input=input, cwd=cwd or ROOT, timeout=timeout, text=text, check=check,
                              capture_output=True)
    data = input.encode() if isinstance(input, str) else (input or b"")
    with _lock, tempfile.TemporaryDirectory(prefix="kh-cli-") as tmp:
        paths = {name: os.path.join(tmp, name) for name in ("stdin", "stdout", "stderr")}
        Path(paths["stdin"]).write_bytes(data)
        zygote, pid = _fork(env, {"args": [os.fsdecode(a) for a in args], "env": env, "cwd": str(cwd or ROOT),
                                  **paths})
        finished = _answer(zygote, None if timeout is None else time.monotonic() + timeout)
        if finished is None:  # as subprocess.run does: kill the child, then raise
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended meanwhile: its answer is on the way
                pass
            _answer(zygote, None)  # the child's rc: the next run's answers stay in step
            raise subprocess.TimeoutExpired(cmd, timeout or 0, Path(paths["stdout"]).read_bytes(),
                                            Path(paths["stderr"]).read_bytes())
        out, err = Path(paths["stdout"]).read_bytes(), Path(paths["stderr"]).read_bytes()
    stdout: str | bytes = out
    stderr: str | bytes = err
    if text:  # as subprocess's text mode reads a pipe: the locale's encoding, universal newlines
        import locale

        enc = locale.getpreferredencoding(False)
        stdout, stderr = (b.decode(enc).replace("\r\n", "\n").replace("\r", "\n") for b in (out, err))
    done = subprocess.CompletedProcess(cmd, finished["rc"], stdout, stderr)
    if check:
        done.check_returncode()
    return done


# --- the zygote (runs in its own process) -----------------------------------------------------------------------
def _zygote_main() -> None:
    for name in sys.argv[1:]:
        __import__(name)
    sys.stdout.flush()
    sys.stderr.flush()
    # The protocol moves off fds 0 and 1, which each child replaces with its own files.
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    while True:
        line = proto_in.readline()
        if not line:
            os._exit(0)
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            proto_in.close()
            proto_out.close()
            break
        proto_out.write(json.dumps({"pid": pid}).encode() + b"\n")
        proto_out.flush()
        _, status = os.waitpid(pid, 0)
        proto_out.write(json.dumps({"rc": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
        proto_out.flush()
    _child(request)  # never returns


def _child(request: dict[str, Any]) -> None:
    import atexit
    import runpy
    import threading

    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # The interpreter's own sys.stdin/stdout/stderr (made at the zygote's start, for pipes: the same encoding, errors
    # and buffering a real run's get) now read and write the run's files.
    for fd, name, flags in ((0, "stdin", os.O_RDONLY), (1, "stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, "stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        f = os.open(request[name], flags)
        os.dup2(f, fd)
        os.close(f)
    if HERE in sys.path:
        sys.path.remove(HERE)
    sys.path[0] = os.getcwd()  # as under -m
    sys.argv = ["-m", *request["args"]]
    sys.modules.pop("cli_process", None)
    try:
        runpy.run_module("core", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as e:
        code = _exit_code(e.code)
    except KeyboardInterrupt:  # as the interpreter ends on one: the traceback, then death by SIGINT
        sys.excepthook(*sys.exc_info())
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        code = 130
    except BaseException:  # noqa: BLE001 - as the interpreter ends on an uncaught exception: its traceback, exit 1
        sys.excepthook(*sys.exc_info())
        code = 1
    # What the interpreter does on its way out, in its order, but not tearing down every module one by one (the
    # zygote's heap is shared with the fork; tearing it down is 0.1-0.2 s of copying pages per run).
    threading._shutdown()  # type: ignore[attr-defined]  # joins the non-daemon threads
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # as Python exits when flushing stdout fails at exit
    os._exit(code)


def _exit_code(code: object) -> int:
    """The exit status of `SystemExit(code)`, as the interpreter turns it into one."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1
