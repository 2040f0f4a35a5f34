"""Issue 18 item 3: one result, built once. The service reads the history facts first, then
core.engine.check.assemble builds the CheckResult once: frozen, with the lifecycle and a revoked refusal as inputs
and the message for the tenant built inside it, by one call of the one builder (remediation.tenant_message).
Against the sandbox with the real SDK over real HTTP; the builder's calls are counted with a profiler (nothing
is patched)."""
from __future__ import annotations

import json
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
from assemble_cases import all_snapshots

from core.engine.remediation import tenant_message
from sandbox import DEMO_KEYS

GOLDEN = Path(__file__).parent / "data" / "assemble_golden.json"


class Calls:
    """Counts the calls of one function in this thread while in the `with` block (sys.setprofile)."""

    def __init__(self, fn):
        self.code, self.n = fn.__code__, 0

    def _profile(self, frame, event, arg):
        if event == "call" and frame.f_code is self.code:
            self.n += 1

    def __enter__(self):
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)


def test_every_combination_says_what_the_code_before_said():
    """1,218 combinations (each status and refusal x key mode x live tenant x previous key x key age x shared key,
    and what intake refuses), assembled with the history read first, give the very message, problem, lifecycle,
    rows and link that the old code gave by rewriting the result after assembly (tests/engine/data/assemble_golden.json,
    written by it)."""
    want, got = json.loads(GOLDEN.read_text()), all_snapshots()
    assert len(got["cases"]) == len(want["cases"]) >= 1000
    differ = []
    for case, w in want["cases"].items():
        g = got["cases"][case]
        old = {**w, "message": want["texts"][w["message"]], "problem": want["texts"][w["problem"]]}
        new = {**g, "message": got["texts"][g["message"]], "problem": got["texts"][g["problem"]]}
        if old != new:
            differ.append((case, {k: (old[k], new[k]) for k in old if old[k] != new[k]}))
    assert not differ, f"{len(differ)} combinations changed, e.g. {differ[:2]}"


@pytest.fixture
def svc(make_service, tmp_path, sandbox):
    sandbox.reset()
    return make_service(f"sqlite:///{tmp_path / 'once.db'}", who="ana@pointai.example")


def test_the_message_is_built_once_with_the_history_in_it(svc):
    """A test key on a tenant in production (the history read first): the message asks for the live key, from
    the first read on; the builder ran once for the check, however often the message is read afterwards."""
    assert svc.check(DEMO_KEYS["live_healthy"].key, "Acme", source="cli").saved
    svc.set_expected_mode("Acme", "live")
    with Calls(tenant_message) as calls:
        checked = svc.check(DEMO_KEYS["missing"].key, "Acme", source="cli")
        r = checked.result
        texts = {r.message, r.message, r.to_json()["message"]}
    assert calls.n == 1, f"the message builder ran {calls.n} times for one check"
    assert checked.saved and len(texts) == 1
    assert "Pointai needs your live key" in r.message
    assert r.lifecycle is not None and r.lifecycle.mode_mismatch and r.lifecycle.replaced
    with pytest.raises(FrozenInstanceError):
        r.message = "changed after assembly"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        r.lifecycle = None  # type: ignore[misc]


def test_a_revoked_key_is_named_so_when_assembled(svc, sandbox):
    """Stripe answers a revoked key like a mistyped one; the history read before assembling (it accepted this very
    key before) names it revoked, in the problem and in the message, built once."""
    key = "rk_test_51KeyHealthAssembleOnce" + "q7R8s9" * 12
    sandbox.add_key(key, DEMO_KEYS["healthy"].permissions, "test")
    assert svc.check(key, "Acme", source="cli").saved
    sandbox.remove_key(key)
    with Calls(tenant_message) as calls:
        r = svc.check(key, "Acme", source="cli").result
        assert r.message == r.to_json()["message"]
    assert calls.n == 1
    assert (r.status, r.refused) == ("invalid", "revoked") and r.last_accepted_at is not None
    assert "revoked or deleted" in r.problem and "it last worked on" in r.message
