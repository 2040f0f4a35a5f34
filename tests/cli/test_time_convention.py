"""One time convention (issue 19.8): the CLI says UTC on every time it prints, as the pages do; whole days."""
from __future__ import annotations

import re

from sandbox import DEMO_KEYS

UTC_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC")


def test_cli_check_and_history_print_utc_times(core_cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'times.db'}"
    p = core_cli("check", "--tenant", "Acme Ltd", key=DEMO_KEYS["healthy"].key, DATABASE_URL=url)
    assert p.returncode == 0, p.stderr
    status = next(line for line in p.stdout.splitlines() if line.startswith("status "))
    assert UTC_TIME.search(status), status
    h = core_cli("history", "--tenant", "Acme Ltd", DATABASE_URL=url)
    assert h.returncode == 0, h.stderr
    checks = [line for line in h.stdout.splitlines() if line.startswith("  ")]
    assert checks and all(UTC_TIME.search(line) for line in checks), h.stdout
    assert not re.search(r"\d\dT\d\d:\d\d", h.stdout)  # no bare ISO times in the human output
