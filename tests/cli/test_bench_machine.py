"""`python -m bench` prints the load average around every table and writes docs/benchmarks.md only when the
machine was quiet as each bench began, after letting it settle (bench/machine.py, bench/__main__.py). The load
and the wait are given by parameter, never by patching os or time."""
from __future__ import annotations

from pathlib import Path

from bench.__main__ import END, START, main
from bench.machine import LoadWindow, refusal, settle

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


class Waits:
    """A sleep that only counts: the bench's settling wait, without waiting."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def __call__(self, s: float) -> None:
        self.slept.append(s)


def test_a_machine_busy_as_a_bench_begins_prints_tables_but_does_not_write_the_page(tmp_path, capsys):
    page = _page(tmp_path)
    waits = Waits()
    assert main([], benches=[("Fake table", _bench)], page=page, load=_loads(2.5), ncores=2, sleep=waits) == 0
    out = capsys.readouterr().out
    assert "| 1 | 2 |" in out  # the table is still printed
    assert "before: 2.50 / 0.50 / 0.25; after (the bench's own processes included): 2.50 / 0.50 / 0.25; 2 cores" in out
    assert "docs/benchmarks.md not written: the 1-minute load average was 2.50 as a bench began, above the 2 cores" \
        in out
    assert page.read_text() == PAGE_TEXT  # left alone
    assert sum(waits.slept) >= 240  # it waited for the machine to settle first, and gave up


def test_busy_before_the_second_bench_refuses_too(tmp_path, capsys):
    page = _page(tmp_path)
    main([], benches=[("One", _bench), ("Two", _bench)], page=page, load=_loads(0.2, 0.2, 3.0), ncores=2,
         sleep=Waits())
    assert "not written" in capsys.readouterr().out
    assert page.read_text() == PAGE_TEXT


def test_a_bench_waits_for_the_load_its_predecessor_left_to_decay(tmp_path, capsys):
    """The fleet bench's own three processes leave a load of 2-3 on 2 cores: the next bench waits until the load
    is back at the core count, and then it counts as quiet."""
    page = _page(tmp_path)
    waits = Waits()
    # One: before 0.4, after 2.9 (its own processes); Two: 2.9, 2.4, 1.8 (settled) before, 1.0 after
    main([], benches=[("One", _bench), ("Two", _bench)], page=page, load=_loads(0.4, 2.9, 2.9, 2.4, 1.8, 1.0),
         ncores=2, sleep=waits)
    assert len(waits.slept) == 2  # two readings above the cores, then a quiet one
    text = page.read_text()
    assert "before: 1.80 / 0.50 / 0.25; after (the bench's own processes included): 1.00" in text
    assert "not written" not in capsys.readouterr().out


def test_settle_gives_up_after_its_limit_and_returns_the_last_reading():
    waits = Waits()
    assert settle(_loads(5.0), 2, within_s=20, poll_s=5, sleep=waits)[0] == 5.0
    assert waits.slept == [5, 5, 5, 5]
    assert settle(_loads(1.0), 2, sleep=waits)[0] == 1.0 and len(waits.slept) == 4  # quiet: no wait at all


def test_quiet_machine_writes_the_tables_with_their_load(tmp_path, capsys):
    """A bench whose own processes push the load above the cores (the fleet: recheck, sandbox, PostgreSQL on 2
    cores) is still written: the machine was quiet as it began."""
    page = _page(tmp_path)
    main([], benches=[("Fake table", _bench)], page=page, load=_loads(0.4, 2.7), ncores=2, sleep=Waits())
    text = page.read_text()
    assert "### Fake table" in text and "| 1 | 2 |" in text
    assert ("Load average (1 / 5 / 15 min) before: 0.40 / 0.50 / 0.25; after (the bench's own processes included): "
            "2.70 / 0.50 / 0.25; 2 cores.") in text
    assert "old figures" not in text
    assert text.startswith("# Benchmarks\n\nProse stays.") and text.endswith(f"{END}\n\nAfter.\n")
    assert "not written" not in capsys.readouterr().out


def test_load_equal_to_the_cores_is_still_quiet():
    assert LoadWindow((2.0, 0, 0), (9.0, 0, 0), 2).quiet
    assert not LoadWindow((2.01, 0, 0), (1.0, 0, 0), 2).quiet
    assert refusal([LoadWindow((1.0, 0, 0), (3.0, 0, 0), 2)]) is None


def test_some_benches_only_never_write(tmp_path, capsys):
    page = _page(tmp_path)
    main(["table"], benches=[("Fake table", _bench)], page=page, load=_loads(0.1), ncores=2, sleep=Waits())
    assert "| 1 | 2 |" in capsys.readouterr().out
    assert page.read_text() == PAGE_TEXT
