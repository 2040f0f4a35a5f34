"""How a sweep paces itself: a plain value, built from the environment by core.config (the engine reads none)."""
from __future__ import annotations

from dataclasses import dataclass

from core.engine.result import Mode

STRIPE_DEFAULT_API_BASE = "https://api.stripe.com"


@dataclass(frozen=True)
class ProbeSettings:
    """Rates are requests per second, per key."""

    rate_test: float = 20.0
    rate_live: float = 25.0
    concurrency: int = 8
    retries: int = 3  # extra tries after an inconclusive answer (429, 5xx, timeout, network)
    backoff_s: float = 0.25  # first backoff; doubles each retry, with jitter
    timeout_s: float = 10.0
    # Consecutive requests with no HTTP answer at all (refused, reset, DNS, TLS, proxy, timeout) after which
    # a sweep that had answers before stops: Stripe went away mid-sweep, the remaining scopes stay unknown.
    max_network_failures: int = 8
    # Consecutive inconclusive HTTP answers (429 or 5xx, each try counted) after which a sweep stops: a storm of
    # errors is Stripe's trouble, not the key's; the rows settled before stand, the check moves no status.
    max_error_answers: int = 16

    def rate_for(self, mode: Mode | None) -> float:
        return self.rate_live if mode == "live" else self.rate_test
