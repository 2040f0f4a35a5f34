"""`KeyRequests` keeps the guarantee it claims: a 401 stops everything, so a refused key costs one request,
whatever its callers do. These tests force the race: many workers at once, a slow first answer, no pacing."""
from __future__ import annotations

import threading

from core.engine.probe import KeyRequests
from core.engine.settings import ProbeSettings
from sandbox import DEMO_KEYS

NO_PACING = ProbeSettings(rate_test=10_000, rate_live=10_000, retries=0, backoff_s=0.0, timeout_s=5.0)


def _hammer(http: KeyRequests, workers: int) -> list:
    """`workers` threads released at the same instant, each sending one request."""
    gate = threading.Barrier(workers)
    answers: list = []
    lock = threading.Lock()

    def one(i: int) -> None:
        gate.wait()
        _, a = http.send("GET", f"/v1/charges/ch_race_{i}")
        with lock:
            answers.append(a)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return answers


def test_a_refused_key_costs_one_request_however_many_workers(sandbox, sandbox_client):
    sandbox.reset()
    sandbox.faults.latency(0.3)  # the 401 takes long to arrive: every other worker is ready to send meanwhile
    try:
        http = KeyRequests(DEMO_KEYS["revoked"].key, "test", NO_PACING, sandbox_client)
        answers = _hammer(http, 16)
    finally:
        sandbox.faults.clear()
    assert len(sandbox.requests) == 1 and http.requests == 1
    assert http.auth_kind == "invalid" and http.stop.is_set()
    kinds = sorted(a.kind for a in answers)
    assert kinds == ["auth"] + ["stopped"] * 15


def test_an_accepted_key_lets_the_workers_go_after_the_first_answer(sandbox, sandbox_client):
    sandbox.reset()
    http = KeyRequests(DEMO_KEYS["healthy"].key, "test", NO_PACING, sandbox_client)
    answers = _hammer(http, 8)
    assert http.requests == 8 and len(sandbox.requests) == 8
    assert not http.stop.is_set() and all(a is not None and a.kind != "stopped" for a in answers)
