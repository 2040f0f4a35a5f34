"""Peak memory of the dashboard process with 2,000 tenants.

Starts `streamlit run app.py` on the pages bench database (2,000 tenants, see bench_pages.py), opens every
page in Debian's Chromium (Playwright), waits for each to finish rendering, and reads the server's peak
resident memory (VmHWM in /proc/<pid>/status) before and after.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["check-key", "tenants", "tenant-history?tenant=bench-tenant-00042", "fleet-health", "sample-data",
         "sample-transaction", "about-key-health"]
CHROMIUM = Path("/usr/bin/chromium")  # Debian's (`make chromium`); Playwright's own download is not reachable
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("streamlit exited before it was healthy")
        try:
            if requests.get(f"{url}/_stcore/health", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)  # polling the health endpoint, not waiting a fixed time
    raise RuntimeError("streamlit did not become healthy")


def report(chromium: Path = CHROMIUM) -> str:
    """The dashboard's memory, idle and after each page, in the browser at `chromium`; without one, one sentence
    (a traceback would end `make bench` and lose every other bench's figures)."""
    if not chromium.exists():
        return f"Dashboard memory: not measured (no Chromium at {chromium}: `make chromium` installs it)."
    from playwright.sync_api import sync_playwright

    from bench.bench_pages import ensure_db

    db_url, _ = ensure_db()
    port = _free_port()
    data_dir = tempfile.mkdtemp(prefix="kh-bench-mem-")
    env = {**os.environ, "DATABASE_URL": db_url, "KEYHEALTH_DATA_DIR": data_dir, "KEYHEALTH_DEMO": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        _wait_healthy(url, proc)
        idle = _kib(proc.pid, "VmRSS")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for path in PAGES:
                t0 = time.perf_counter()
                page.goto(f"{url}/{path}")
                page.wait_for_selector("[data-testid=stMain] h1", timeout=60_000)  # the page's script has run
                page.wait_for_function(
                    "() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=60_000
                )
                took = time.perf_counter() - t0
                rows.append((path.split("?")[0], took, _kib(proc.pid, "VmRSS"), _kib(proc.pid, "VmHWM")))
            browser.close()
        peak = _kib(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    lines = [
        "`streamlit run app.py` on a 2,000-tenant database, every page opened in Chromium in turn; resident memory "
        "of the server process (MiB).",
        "",
        "| page | load in browser (s) | RSS after (MiB) | peak so far (MiB) |",
        "| --- | ---: | ---: | ---: |",
        f"| (started, idle) | | {idle / 1024:.0f} | |",
    ]
    lines += [f"| {p} | {t:.2f} | {rss / 1024:.0f} | {hwm / 1024:.0f} |" for p, t, rss, hwm in rows]
    lines.append(f"\nPeak resident memory of the dashboard process: **{peak / 1024:.0f} MiB**.")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
