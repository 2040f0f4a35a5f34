"""`python -m bench` prints the load average around every table and writes docs/benchmarks.md only on a quiet
machine (bench/machine.py, bench/__main__.py). The load is given by parameter, never by patching os."""
from __future__ import annotations

from pathlib import Path

from bench.__main__ import END, START, main
from bench.machine import LoadWindow, refusal

PAGE_TEXT = f"# Benchmarks\n\nProse stays.\n\n{START}\nold figures\n{END}\n\nAfter.\n"


def _page(tmp_path: Path) -> Path:
    page = tmp_path / "benchmarks.md"
    page.write_text(PAGE_TEXT)
    return page


def _loads(*values: float):
    """A load source giving these 1-minute load averages in turn (then the last one again)."""
    seq = list(values)

    def load() -> tuple[float, float, float]:
        v = seq.pop(0) if len(seq) > 1 else seq[0]
        return (v, 0.5, 0.25)
    return load


def _bench() -> str:
    return "| a | b |\n| ---: | ---: |\n| 1 | 2 |"


def test_busy_machine_prints_tables_but_does_not_write_the_page(tmp_path, capsys):
    page = _page(tmp_path)
    assert main([], benches=[("Fake table", _bench)], page=page, load=_loads(0.5, 2.5), ncores=2) == 0
    out = capsys.readouterr().out
    assert "| 1 | 2 |" in out  # the table is still printed
    assert "before: 0.50 / 0.50 / 0.25; after: 2.50 / 0.50 / 0.25; 2 cores" in out
    assert "docs/benchmarks.md not written: the 1-minute load average reached 2.50, above the 2 cores" in out
    assert page.read_text() == PAGE_TEXT  # left alone


def test_busy_before_any_bench_refuses_too(tmp_path, capsys):
    page = _page(tmp_path)
    main([], benches=[("One", _bench), ("Two", _bench)], page=page, load=_loads(3.0, 0.2), ncores=2)
    assert "not written" in capsys.readouterr().out
    assert page.read_text() == PAGE_TEXT


def test_quiet_machine_writes_the_tables_with_their_load(tmp_path, capsys):
    page = _page(tmp_path)
    main([], benches=[("Fake table", _bench)], page=page, load=_loads(0.4, 1.9), ncores=2)
    text = page.read_text()
    assert "### Fake table" in text and "| 1 | 2 |" in text
    assert "Load average (1 / 5 / 15 min) before: 0.40 / 0.50 / 0.25; after: 1.90 / 0.50 / 0.25; 2 cores." in text
    assert "old figures" not in text
    assert text.startswith("# Benchmarks\n\nProse stays.") and text.endswith(f"{END}\n\nAfter.\n")
    assert "not written" not in capsys.readouterr().out


def test_load_equal_to_the_cores_is_still_quiet():
    assert LoadWindow((2.0, 0, 0), (2.0, 0, 0), 2).quiet
    assert not LoadWindow((2.0, 0, 0), (2.01, 0, 0), 2).quiet
    assert refusal([LoadWindow((1.0, 0, 0), (1.0, 0, 0), 2)]) is None


def test_some_benches_only_never_write(tmp_path, capsys):
    page = _page(tmp_path)
    main(["table"], benches=[("Fake table", _bench)], page=page, load=_loads(0.1), ncores=2)
    assert "| 1 | 2 |" in capsys.readouterr().out
    assert page.read_text() == PAGE_TEXT
