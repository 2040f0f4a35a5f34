"""Shared by the browser tests: Debian's Chromium, a free port, and a real `streamlit run` polled until healthy.

Imported by name (tests/e2e is on sys.path for its test modules); the `browser` fixture is re-exported by
tests/e2e/conftest.py."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
NO_CHROMIUM = "Chromium is not installed (make chromium)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def wait_for(url: str, proc: subprocess.Popen | None, log: Path | None, what: str, expect: bytes = b"ok",
             seconds: float = 60) -> None:
    """Poll `url` until its body holds `expect`; fail at once if `proc` exits, or after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what} exited early:\n{log.read_text()[-3000:] if log else ''}")
        try:
            if expect in http_get(url, 1.0):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not answer {url} within {seconds:.0f} s")
        time.sleep(0.1)  # between polls


@contextmanager
def streamlit_server(script: str | Path, *, cwd: Path, env: dict[str, str], log_path: Path,
                     extra_args: tuple[str, ...] = (), port: int | None = None) -> Iterator[str]:
    """`streamlit run script` on `port` (default: a free one) of 127.0.0.1, yielded as its base URL once
    /_stcore/health says ok; stopped on the way out."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
             *extra_args],
            cwd=cwd, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            wait_for(base + "/_stcore/health", proc, log_path, "streamlit")
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium per test process (each test opens its own page or context)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
