"""tests/cli_process.py's `run_core` (a fork of a zygote that imported the heavy modules once) answers exactly as a
real `python -m core` process: the same exit code, stdout and stderr, for a usage error, argv that is not UTF-8, a
key refused locally, a full check against the sandbox and a recorded one; a run past its timeout is killed like
subprocess.run's and the next run is fresh; a run whose interpreter would start differently is sent to a real
process."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cli_process import needs_a_real_process, run_core, start_environment

from sandbox import DEMO_KEYS

ROOT = Path(__file__).resolve().parents[2]
VOLATILE = ("checked_at", "elapsed_s", "requests")


def _real(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, **kw)


def _steady(stdout: str) -> object:
    """The JSON answer without what changes from one run to the next (times, at any depth)."""
    def drop(v: object) -> object:
        if isinstance(v, dict):
            return {k: drop(x) for k, x in v.items() if k not in VOLATILE and not k.endswith("_at")}
        return [drop(x) for x in v] if isinstance(v, list) else v
    try:
        return drop(json.loads(stdout))
    except ValueError:
        return stdout


CASES = {
    "help": (["--help"], ""),
    "check help": (["check", "--help"], ""),
    "usage error": (["check", "--no-such-flag"], ""),
    "argv that is not UTF-8": ([b"check", b"--tenant", b"\xff\xfe", b"--json"], DEMO_KEYS["healthy"].key),
    "a key refused locally": (["check", "--json"], "sk_test_abc"),
    "a full check": (["check", "--json"], DEMO_KEYS["healthy"].key),
    "a recorded check": (["check", "--json", "--tenant", "Zygote Ltd"], DEMO_KEYS["missing"].key),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_answer_equals_a_real_process(case, sandbox, tmp_path):
    args, stdin = CASES[case]
    env = {**os.environ, "STRIPE_API_BASE": sandbox.url, "NO_COLOR": "1", "KEYHEALTH_RATE_TEST": "400",
           "KEYHEALTH_FINGERPRINT_SECRET": "zygote-test-secret"}
    env.pop("STRIPE_KEY", None)
    answers = []
    style, sandbox.deny_style = sandbox.deny_style, "newest"  # one wording (it rotates by default)
    try:
        for run, where in ((_real, "real"), (run_core, "zygote")):
            sandbox.reset()  # each run meets the sandbox as new
            run_env = {**env, "KEYHEALTH_DATA_DIR": str(tmp_path / where),
                       "DATABASE_URL": f"sqlite:///{tmp_path / where}.db"}
            answers.append(run(args, env=run_env, input=stdin, text=True, timeout=120))
    finally:
        sandbox.deny_style = style
    real, forked = answers
    assert forked.returncode == real.returncode, (real.stderr, forked.stderr)
    assert forked.stderr == real.stderr
    assert _steady(forked.stdout) == _steady(real.stdout)
    assert forked.args == real.args


def test_a_run_past_its_timeout_is_killed_and_the_next_run_is_fresh(tmp_path):
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        env = {**os.environ, "STRIPE_API_BASE": f"http://127.0.0.1:{silent.getsockname()[1]}",
               "KEYHEALTH_TIMEOUT_S": "60", "KEYHEALTH_DATA_DIR": str(tmp_path)}
        with pytest.raises(subprocess.TimeoutExpired):
            run_core(["check", "--json"], env=env, input=DEMO_KEYS["healthy"].key, text=True, timeout=1.5)
    after = run_core(["check", "--json"], env=env, input="sk_test_abc", text=True, timeout=60)
    assert after.returncode == 1 and json.loads(after.stdout)["status"] == "invalid"


def test_a_run_whose_interpreter_would_start_differently_gets_its_own_zygote_or_a_real_process(monkeypatch):
    base = dict(os.environ)
    assert not needs_a_real_process(base)
    assert not needs_a_real_process({**base, "KEYHEALTH_RATE_TEST": "1", "PYTHONWARNINGS": "always"})
    assert needs_a_real_process({**base, "PYTHONPATH": "/elsewhere"})
    assert start_environment({**base, "STRIPE_LOG": "debug"}) != start_environment(base)  # read at stripe's import
    assert start_environment({**base, "LC_ALL": "C"}) != start_environment(base)
    assert start_environment({**base, "KEYHEALTH_RATE_TEST": "1"}) == start_environment(base)
    p = run_core(["--help"], env={**base, "PYTHONVERBOSE": "1"}, text=True)
    assert p.returncode == 0 and "import " in p.stderr  # -v's import lines: a real interpreter started
    monkeypatch.setenv("KEYHEALTH_TEST_REAL_CLI", "1")
    assert needs_a_real_process(base)


def test_stripe_log_read_at_import_reaches_the_run(sandbox, tmp_path):
    """stripe reads STRIPE_LOG once, at import: a run that sets it gets a zygote started with it."""
    env = {**os.environ, "STRIPE_API_BASE": sandbox.url, "KEYHEALTH_DATA_DIR": str(tmp_path), "STRIPE_LOG": "debug",
           "KEYHEALTH_RATE_TEST": "400"}
    p = run_core(["check", "--json"], env=env, input=DEMO_KEYS["healthy"].key, text=True, timeout=120)
    assert p.returncode == 0 and "Request to Stripe api" in p.stderr
    quiet = run_core(["check", "--json"], env={**env, "STRIPE_LOG": ""}, input=DEMO_KEYS["healthy"].key, text=True,
                     timeout=120)
    assert quiet.returncode == 0 and "Request to Stripe api" not in quiet.stderr


def test_two_answers_that_arrive_together_are_read_one_at_a_time():
    """A child that exits at once makes the zygote write its "pid" and "rc" lines together. Reading the first must
    not take the second into a buffer, where the select() waiting for it would never see it (a 180 s hang, then
    every later run out of step, seen in a fresh-clone run)."""
    import time

    from cli_process import _answer, _spawn

    # both lines in one write, then the process stays (as the zygote does) until its stdin is closed
    two_lines = ('import sys; sys.stdout.write("{\\"pid\\": 1}\\n{\\"rc\\": 0}\\n"); sys.stdout.flush(); '
                 'sys.stdin.read()')
    proc = _spawn([sys.executable, "-c", two_lines], env=dict(os.environ))
    try:
        assert _answer(proc, None) == {"pid": 1}
        t0 = time.monotonic()
        assert _answer(proc, time.monotonic() + 5) == {"rc": 0}
        assert time.monotonic() - t0 < 4
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
