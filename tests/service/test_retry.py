"""The one retry helper (core.features.retry, issue 18 item 5): what its docstring promises, try by try."""
from __future__ import annotations

import pytest

from core.features.retry import retrying


class Flaky:
    """Fails (raises, or returns "bad") `failures` times, then returns "ok"."""

    def __init__(self, failures: int, *, raises: bool = True):
        self.failures, self.raises, self.calls = failures, raises, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            if self.raises:
                raise OSError(f"try {self.calls}")
            return "bad"
        return "ok"


def _no_wait(log: list[float]):
    def wait(s: float) -> bool:
        log.append(s)
        return False
    return wait


def test_an_exception_worth_retrying_is_tried_again_with_backoff():
    waits: list[float] = []
    f = Flaky(2)
    assert retrying(f, tries=5, delay_s=0.1, again_on=lambda e: isinstance(e, OSError), wait=_no_wait(waits)) == "ok"
    assert f.calls == 3 and waits == [0.1, 0.2]


def test_the_last_tries_exception_is_raised_and_no_more_tries_are_made():
    waits: list[float] = []
    f = Flaky(9)
    with pytest.raises(OSError, match="try 3"):
        retrying(f, tries=3, delay_s=1.0, again_on=lambda e: True, wait=_no_wait(waits))
    assert f.calls == 3 and waits == [1.0, 2.0]


def test_an_exception_not_worth_retrying_is_raised_at_once():
    f = Flaky(1)
    with pytest.raises(OSError):
        retrying(f, tries=5, delay_s=0.1, again_on=lambda e: isinstance(e, ValueError), wait=_no_wait([]))
    assert f.calls == 1


def test_a_result_worth_retrying_is_tried_again_and_the_last_is_returned():
    waits: list[float] = []
    f = Flaky(9, raises=False)
    assert retrying(f, tries=4, delay_s=0.5, start=2, again=lambda r: r == "bad", wait=_no_wait(waits)) == "bad"
    assert f.calls == 4 and waits == [2.0, 4.0, 8.0]  # start=2: the backoff goes on from earlier tries
    g = Flaky(1, raises=False)
    assert retrying(g, tries=4, delay_s=0.5, again=lambda r: r == "bad", wait=_no_wait([])) == "ok"
    assert g.calls == 2


def test_at_least_one_try_and_a_stop_ends_the_retrying_at_once():
    f = Flaky(0)
    assert retrying(f, tries=0, delay_s=1.0) == "ok" and f.calls == 1
    g = Flaky(9, raises=False)
    assert retrying(g, tries=5, delay_s=1.0, again=lambda r: r == "bad", wait=lambda s: True) == "bad"
    assert g.calls == 1
    h = Flaky(9)
    with pytest.raises(OSError, match="try 1"):
        retrying(h, tries=5, delay_s=1.0, again_on=lambda e: True, wait=lambda s: True)
    assert h.calls == 1


def test_the_default_wait_sleeps(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr("core.features.retry.time.sleep", slept.append)
    assert retrying(Flaky(1), tries=2, delay_s=0.01, again_on=lambda e: True) == "ok"
    assert slept == [0.01]
