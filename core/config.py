"""Settings from the environment, with the embedded defaults `make run` uses.

Every knob has one place: here. Streamlit secrets are copied into the environment by app.py
before core is used, so core never imports streamlit.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = ROOT / "data"
CATALOGUE_PATH = ROOT / "data" / "catalogue.toml"
REQUIREMENTS_PATH = ROOT / "data" / "requirements.toml"
STRIPE_DEFAULT_API_BASE = "https://api.stripe.com"


def _float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def _int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class ProbeSettings:
    """How a sweep paces itself. Rates are requests per second, per key."""

    rate_test: float = 20.0
    rate_live: float = 25.0
    concurrency: int = 8
    retries: int = 3  # extra tries after an inconclusive answer (429, 5xx, timeout, network)
    backoff_s: float = 0.25  # first backoff; doubles each retry, with jitter
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls) -> "ProbeSettings":
        d = cls()
        return cls(
            rate_test=_float("KEYHEALTH_RATE_TEST", d.rate_test),
            rate_live=_float("KEYHEALTH_RATE_LIVE", d.rate_live),
            concurrency=max(1, _int("KEYHEALTH_CONCURRENCY", d.concurrency)),
            retries=max(0, _int("KEYHEALTH_RETRIES", d.retries)),
            backoff_s=_float("KEYHEALTH_BACKOFF_S", d.backoff_s),
            timeout_s=_float("KEYHEALTH_TIMEOUT_S", d.timeout_s),
        )

    def rate_for(self, mode: str | None) -> float:
        return self.rate_live if mode == "live" else self.rate_test


def stripe_api_base() -> str:
    """Stripe itself unless STRIPE_API_BASE points somewhere else (the sandbox)."""
    return os.environ.get("STRIPE_API_BASE") or STRIPE_DEFAULT_API_BASE


def data_dir() -> Path:
    """KEYHEALTH_DATA_DIR, read when asked (not at import), else data/ in the repository."""
    return Path(os.environ.get("KEYHEALTH_DATA_DIR") or DEFAULT_DATA_DIR)


def database_url() -> str:
    """SQLite in data/ by default; DATABASE_URL switches (e.g. to PostgreSQL)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{data_dir() / 'keyhealth.db'}"
