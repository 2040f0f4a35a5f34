"""The memory bench on a machine without Chromium: one sentence in its section, no traceback (a traceback ended
`make bench` and lost every other bench's figures)."""
from __future__ import annotations

from bench.bench_memory import report


def test_without_chromium_the_memory_bench_says_so_in_one_sentence(tmp_path):
    missing = tmp_path / "chromium"
    assert report(missing) == f"Dashboard memory: not measured (no Chromium at {missing}: `make chromium` installs it)."
