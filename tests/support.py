"""Shared test helpers that are not fixtures (fixtures live in tests/conftest.py). Import by base name:
`from support import FAST, fast_probe, FAST_ENV` (tests/ is not a package: see conftest.py).

The fast probe settings are defined here once. The local sandbox has no rate limit unless a test gives it one, so
the tests pace fast; a short backoff and timeout keep fault tests quick. A test that needs another value names
only that one: `fast_probe(retries=3)`.
"""
from __future__ import annotations

import dataclasses

from core.engine.settings import ProbeSettings

FAST = ProbeSettings(rate_test=400, rate_live=400, concurrency=8, retries=1, backoff_s=0.01, timeout_s=5.0)


def fast_probe(**changes) -> ProbeSettings:
    """FAST with the named fields changed (e.g. `fast_probe(retries=2, timeout_s=2.0)`)."""
    return dataclasses.replace(FAST, **changes)


# The same settings for a subprocess or a Streamlit page (core.config reads them from the environment).
FAST_ENV = {
    "KEYHEALTH_RATE_TEST": str(int(FAST.rate_test)),
    "KEYHEALTH_RATE_LIVE": str(int(FAST.rate_live)),
    "KEYHEALTH_BACKOFF_S": str(FAST.backoff_s),
    "KEYHEALTH_RETRIES": str(FAST.retries),
}
