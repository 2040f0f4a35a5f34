"""What a check sent at a shared pace (the fleet) carries into core.engine.check.check_key: Service.check(...,
pacing=Paced(...))."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from core.engine.probe import Pacing


@dataclass(frozen=True)
class Paced:
    """The per-account buckets every key of a run shares (Pacing), the probe threads the sweeps share, the
    Stripe account the tenant's key answered from last (its first request then waits for that account's turn),
    and the probes in flight per key in this run (None: the settings' `concurrency`; 1: one after another in the
    sweep's own thread, with no pool)."""

    pacing: Pacing | None = None
    pool: ThreadPoolExecutor | None = None
    account_hint: str | None = None
    concurrency: int | None = None
