"""What a check sent at a shared pace (the fleet) carries into core.engine.check.check_key: Service.check(...,
pacing=Paced(...))."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from core.engine.probe import Pacing


@dataclass(frozen=True)
class Paced:
    """The per-account buckets every key of a run shares (Pacing), the probe threads the sweeps share, and the
    Stripe account the tenant's key answered from last (its first request then waits for that account's turn)."""

    pacing: Pacing | None = None
    pool: ThreadPoolExecutor | None = None
    account_hint: str | None = None
