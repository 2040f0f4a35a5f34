"""One retry loop with exponential backoff, for the fleet's store writes and the alerts' webhook deliveries.

    retrying(write, tries=5, delay_s=0.2, again_on=lambda e: is_lock(e))          # an exception worth retrying
    retrying(send, tries=3, delay_s=1.0, again=lambda error: error is not None,   # a result worth retrying
             wait=stop_event.wait)                                               # a stop ends the waiting at once
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


def retrying(attempt: Callable[[], T], *, tries: int, delay_s: float, start: int = 0,
             again: Callable[[T], bool] = lambda _: False,
             again_on: Callable[[Exception], bool] = lambda _: False,
             wait: Callable[[float], bool] = _sleep) -> T:
    """Call `attempt` at most `tries` times (at least once). It is called again while it returns a result for which
    `again` is true, or raises an exception for which `again_on` is true; the last try's result is returned, or its
    exception raised. Between tries it waits `delay_s * 2 ** (start + i)` (i: the tries so far, less one) through
    `wait(seconds)`, which ends the retrying at once when it returns True (a stop: the last result or exception)."""
    i = 0
    while True:
        last = i + 1 >= tries
        try:
            out = attempt()
        except Exception as e:
            if last or not again_on(e) or wait(delay_s * 2 ** (start + i)):
                raise
        else:
            if last or not again(out) or wait(delay_s * 2 ** (start + i)):
                return out
        i += 1
