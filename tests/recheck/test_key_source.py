"""Key sources are bounded (issue 17 item 5): output capped, their own process group killed on timeout and on our
SIGTERM/SIGINT (a pipeline's grandchild included), SIGTERM while the source runs or during the final alert flush
stops the recheck within a second with its summary and exit 143.

Everything runs for real: the CLI as a subprocess, real child processes, the sandbox over HTTP; waits poll.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cli_process import run_core
from webhook import Webhook

from core.features.keysource import MAX_SOURCE_BYTES, SourceError, SourceStopped, read_key_source
from sandbox import DEMO_KEYS

ROOT = Path(__file__).resolve().parents[2]
HEALTHY = DEMO_KEYS["healthy"]


def cli_env(sb, tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("STRIPE_KEY", "KEYHEALTH_KEYS_FROM",
                                                             "KEYHEALTH_ALERT_WEBHOOK")}
    env.update(STRIPE_API_BASE=sb.url, KEYHEALTH_RATE_TEST="400", NO_COLOR="1", KEYHEALTH_DATA_DIR=str(tmp_path),
               DATABASE_URL=f"sqlite:///{tmp_path / 'src.db'}", KEYHEALTH_FINGERPRINT_SECRET="source-test",
               KEYHEALTH_BACKOFF_S="0.01")
    env.update(extra)
    return env


def cli(args, sb, tmp_path, timeout=120, **extra) -> subprocess.CompletedProcess:
    return run_core(args, cwd=ROOT, env=cli_env(sb, tmp_path, **extra), text=True, timeout=timeout, check=False)


def wait_for(pred, seconds=30.0, what="condition"):
    deadline = time.monotonic() + seconds
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # poll interval


def alive(pid: int) -> bool:
    """The process exists and is no zombie (a container's init may be slow to reap an orphan)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def spawner(tmp_path: Path, name: str, *, first_line: str = "") -> tuple[str, Path]:
    """A key source that starts a grandchild (`sleep 300`, in a pipeline through `sh`), writes both pids to a
    file, optionally prints a line, and then hangs."""
    pids = tmp_path / f"{name}.pids"
    script = tmp_path / f"{name}.py"
    script.write_text(
        "import os, subprocess, sys, time\n"
        "p = subprocess.Popen(['sh', '-c', 'sleep 300 | cat'])\n"
        f"open({str(pids)!r} + '.tmp', 'w').write(f'{{os.getpid()}} {{p.pid}}')\n"
        f"os.rename({str(pids)!r} + '.tmp', {str(pids)!r})\n"
        + (f"print({first_line!r}, flush=True)\n" if first_line else "")
        + "time.sleep(300)\n")
    return f"{sys.executable} {script}", pids


def group_members(pgid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[2]) == pgid and stat[0] != "Z":
                out.append(int(d.name))
    return out


# --- output caps ------------------------------------------------------------------------------------------
def test_a_source_printing_without_end_is_stopped_at_a_million_lines(sandbox, tmp_path):
    started = time.monotonic()
    p = cli(["recheck", "--keys-from", "yes"], sandbox, tmp_path, KEYHEALTH_KEYS_FROM_TIMEOUT_S="60")
    took = time.monotonic() - started
    assert p.returncode == 2, p.stderr
    assert "more than 1,000,000 lines" in p.stderr and "nothing was checked" in p.stderr
    assert p.stderr.strip().count("\n") == 0 and "Traceback" not in p.stderr and p.stdout == ""
    assert took < 30, took  # not the 60 s timeout: the cap stopped it


def test_a_source_printing_endless_bytes_is_stopped_at_64_mib(tmp_path):
    script = tmp_path / "flood.py"
    script.write_text("import sys\nb = b'x' * (1 << 20)\nwhile True:\n    sys.stdout.buffer.write(b)\n")
    with pytest.raises(SourceError, match=r"more than 64 MiB") as e:
        read_key_source(f"{sys.executable} {script}", timeout_s=60)
    assert "nothing was checked" in str(e.value)
    assert MAX_SOURCE_BYTES == 64 << 20


# --- process groups ----------------------------------------------------------------------------------------
def test_a_timed_out_source_dies_with_its_grandchildren(tmp_path):
    command, pids = spawner(tmp_path, "hang")
    with pytest.raises(SourceError, match="did not finish within 1 s"):
        read_key_source(command, timeout_s=1)
    child, grandchild = map(int, pids.read_text().split())
    wait_for(lambda: not alive(child) and not alive(grandchild), 5, "the source's group to die")
    wait_for(lambda: group_members(child) == [], 5, "every member of the source's group to die")  # sleep, cat


def test_the_tenant_is_passed_to_the_source_and_stop_kills_it(tmp_path):
    script = tmp_path / "one.py"
    script.write_text("import os\nprint(os.environ['KEYHEALTH_TENANT'] + ',rk_test_51One' + 'x' * 20)\n")
    [entry] = read_key_source(f"{sys.executable} {script}", tenant="Acme Ltd")
    assert entry.tenant == "Acme Ltd"
    command, pids = spawner(tmp_path, "stopped")
    stop = threading.Event()
    threading.Thread(target=lambda: (wait_for(pids.exists, 30, "the pids"), stop.set()), daemon=True).start()
    with pytest.raises(SourceStopped):
        read_key_source(command, timeout_s=120, stop=stop)
    child, grandchild = map(int, pids.read_text().split())
    wait_for(lambda: not alive(child) and not alive(grandchild) and group_members(child) == [], 5, "the group")


# --- our signals --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_the_source_runs_stops_within_a_second(sig, code, sandbox, tmp_path):
    command, pids = spawner(tmp_path, f"sig{int(sig)}")
    proc = subprocess.Popen([sys.executable, "-m", "core", "recheck", "--keys-from", command], cwd=ROOT,
                            env=cli_env(sandbox, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for(pids.exists, 60, "the source to start")
        sent = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == code, (out, err)
    assert took < 1.0, f"stopped {took:.2f} s after the signal"
    assert f"Stopped by {sig.name}" in err and "Traceback" not in err
    assert "0 recorded, 0 lines failed" in out  # the usual summary
    child, grandchild = map(int, pids.read_text().split())
    wait_for(lambda: not alive(child) and not alive(grandchild) and group_members(child) == [], 5, "the group")


def test_sigterm_during_the_final_alert_flush_stops_at_once_with_the_summary(sandbox, tmp_path):
    key = "rk_test_51FlushSig" + "a1B2c3D4e5" * 8
    sandbox.add_key(key, HEALTHY.permissions, "test")
    src = tmp_path / "src.py"
    src.write_text(f"print('Flush Ltd,{key}')\n")
    hook = Webhook(hang=True)  # takes every POST and never answers (until closed)
    try:
        first = cli(["recheck", "--keys-from", f"{sys.executable} {src}"], sandbox, tmp_path)
        assert first.returncode == 0, first.stderr
        sandbox.add_key(key, set(), "test")  # the tenant's key lost every permission: worse, an alert
        proc = subprocess.Popen(
            [sys.executable, "-m", "core", "recheck", "--keys-from", f"{sys.executable} {src}"], cwd=ROOT,
            env=cli_env(sandbox, tmp_path, KEYHEALTH_ALERT_WEBHOOK=hook.url, KEYHEALTH_ALERT_TIMEOUT_S="30"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: hook.bodies, 60, "the alert to be posted")  # the flush is waiting on the webhook
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
            took = time.monotonic() - sent
        finally:
            proc.kill()
    finally:
        sandbox.add_key(key, HEALTHY.permissions, "test")
        hook.close()
    assert proc.returncode == 143, (out, err)
    assert took < 1.0, f"stopped {took:.2f} s after SIGTERM"
    assert "1 recorded, 0 lines failed" in out and "Stopped by SIGTERM" in err
    assert "Flush Ltd" in hook.bodies[0]["text"] and key not in json.dumps(hook.bodies)


def test_a_failing_source_that_printed_a_whole_fleet_quotes_its_stderr_redacted(tmp_path):
    """100,000 keys on stdout, then a piece of one of them (no prefix, from its middle) on stderr: the sentence
    quotes stderr with that piece masked, found among every key printed, in well under the source's timeout."""
    script = tmp_path / "fleet.py"
    script.write_text(
        "import sys\n"
        "keys = [f'rk_test_51Fleet{i:06d}' + format(i * 7919 % 10**12, '012d') + 'QwErTy' * 6\n"
        "        for i in range(100_000)]\n"
        "sys.stdout.write(''.join(f'Tenant {i},{k}\\n' for i, k in enumerate(keys)))\n"
        "sys.stderr.write(f'vault error near token={keys[54321][12:40]}\\n')\n"
        "sys.exit(1)\n")
    key = "rk_test_51Fleet054321" + format(54321 * 7919 % 10**12, "012d") + "QwErTy" * 6
    started = time.monotonic()
    with pytest.raises(SourceError, match="exit status 1") as e:
        read_key_source(f"{sys.executable} {script}", timeout_s=120)
    took = time.monotonic() - started
    assert "vault error near token=" in str(e.value)
    assert not any(key[i:i + 8] in str(e.value) for i in range(1, len(key) - 7)), str(e.value)
    assert took < 30, took
