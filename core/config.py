"""Settings: the one place that reads the environment (and, through it, Streamlit's secrets).

    s = settings()          # read when asked, never at import
    s.database_url, s.api_base, s.probe.rate_test, s.who

app.py copies the allowed keys of `.streamlit/secrets.toml` into the environment before anything reads
settings (the environment wins), so core never imports streamlit. No other module reads `os.environ`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.engine.settings import STRIPE_DEFAULT_API_BASE, ProbeSettings

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = ROOT / "data"
TRUE = ("1", "true", "yes", "on")
DEFAULT_ROTATION_DAYS = 180
# What .streamlit/secrets.toml may set (the environment wins); see secrets.toml.example.
SECRET_SETTINGS = (
    "DATABASE_URL", "STRIPE_API_BASE", "KEYHEALTH_DEMO", "KEYHEALTH_DATA_DIR", "KEYHEALTH_FINGERPRINT_SECRET",
    "KEYHEALTH_ALERT_WEBHOOK",
    "KEYHEALTH_DB_CONNECT_TIMEOUT_S", "KEYHEALTH_DB_STATEMENT_TIMEOUT_S", "KEYHEALTH_DB_BUSY_TIMEOUT_S",
)

__all__ = ["STRIPE_DEFAULT_API_BASE", "DatabaseSettings", "ProbeSettings", "Settings", "settings", "apply_secrets",
           "env_key", "settings_problem", "webhook_problem"]


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(env.get(name, default))
    except ValueError:
        return default


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(env.get(name, default))
    except ValueError:
        return default


def probe_settings(env: Mapping[str, str]) -> ProbeSettings:
    d = ProbeSettings()
    return ProbeSettings(
        rate_test=_float(env, "KEYHEALTH_RATE_TEST", d.rate_test),
        rate_live=_float(env, "KEYHEALTH_RATE_LIVE", d.rate_live),
        concurrency=max(1, _int(env, "KEYHEALTH_CONCURRENCY", d.concurrency)),
        retries=max(0, _int(env, "KEYHEALTH_RETRIES", d.retries)),
        backoff_s=_float(env, "KEYHEALTH_BACKOFF_S", d.backoff_s),
        timeout_s=_float(env, "KEYHEALTH_TIMEOUT_S", d.timeout_s),
        max_network_failures=max(1, _int(env, "KEYHEALTH_MAX_NETWORK_FAILURES", d.max_network_failures)),
    )


@dataclass(frozen=True)
class DatabaseSettings:
    """How long the store waits on its database before giving up with one sentence (core.store.errors)."""

    connect_timeout_s: float = 5.0  # PostgreSQL: the whole connection set-up (psycopg connect_timeout)
    statement_timeout_s: float = 15.0  # PostgreSQL: any one statement (server-side statement_timeout)
    busy_timeout_s: float = 5.0  # SQLite: waiting for another process's write lock


def database_settings(env: Mapping[str, str]) -> DatabaseSettings:
    d = DatabaseSettings()
    return DatabaseSettings(
        connect_timeout_s=max(1.0, _float(env, "KEYHEALTH_DB_CONNECT_TIMEOUT_S", d.connect_timeout_s)),
        statement_timeout_s=max(0.1, _float(env, "KEYHEALTH_DB_STATEMENT_TIMEOUT_S", d.statement_timeout_s)),
        busy_timeout_s=max(0.0, _float(env, "KEYHEALTH_DB_BUSY_TIMEOUT_S", d.busy_timeout_s)),
    )


@dataclass(frozen=True)
class Settings:
    """Everything Key Health can be told from outside, typed, with the embedded defaults `make run` uses."""

    api_base: str = STRIPE_DEFAULT_API_BASE  # STRIPE_API_BASE: Stripe itself, or the sandbox
    data_dir: Path = DEFAULT_DATA_DIR  # KEYHEALTH_DATA_DIR: default database, demo database, fingerprint secret
    database_url_env: str | None = None  # DATABASE_URL
    demo: bool = False  # KEYHEALTH_DEMO: the dashboard starts in demo mode
    fingerprint_secret: str | None = field(default=None, repr=False)  # KEYHEALTH_FINGERPRINT_SECRET
    user: str | None = None  # KEYHEALTH_USER, else USER: who the CLI acts as in the audit trail
    no_color: bool = False  # NO_COLOR
    force_color: bool = False  # FORCE_COLOR
    # KEYHEALTH_ROTATION_DAYS: the age (days since Key Health first saw a key) after which rotating it is due
    rotation_days: int = DEFAULT_ROTATION_DAYS
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    # fleet recheck (python -m core recheck)
    keys_from: str | None = None  # KEYHEALTH_KEYS_FROM: a command printing tenant,key lines
    keys_from_timeout_s: float = 120.0  # KEYHEALTH_KEYS_FROM_TIMEOUT_S
    fleet_concurrency: int = field(default_factory=lambda: default_fleet_concurrency())  # KEYHEALTH_FLEET_CONCURRENCY
    fleet_max_rps: float = 600.0  # KEYHEALTH_FLEET_MAX_RPS: requests/s ceiling for one process, all accounts
    claim_ttl_s: float = 600.0  # KEYHEALTH_CLAIM_TTL_S: a worker's claim on a tenant expires after this
    # alerts
    alert_webhook: str | None = field(default=None, repr=False)  # KEYHEALTH_ALERT_WEBHOOK (Slack-compatible)
    alert_timeout_s: float = 5.0  # KEYHEALTH_ALERT_TIMEOUT_S: per delivery attempt
    db: DatabaseSettings = field(default_factory=DatabaseSettings)  # KEYHEALTH_DB_*_TIMEOUT_S

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            api_base=env.get("STRIPE_API_BASE") or STRIPE_DEFAULT_API_BASE,
            data_dir=Path(env.get("KEYHEALTH_DATA_DIR") or DEFAULT_DATA_DIR),
            database_url_env=env.get("DATABASE_URL") or None,
            demo=env.get("KEYHEALTH_DEMO", "").strip().lower() in TRUE,
            fingerprint_secret=env.get("KEYHEALTH_FINGERPRINT_SECRET") or None,
            user=env.get("KEYHEALTH_USER") or env.get("USER") or None,
            no_color=bool(env.get("NO_COLOR")),
            force_color=bool(env.get("FORCE_COLOR")),
            rotation_days=max(1, _int(env, "KEYHEALTH_ROTATION_DAYS", DEFAULT_ROTATION_DAYS)),
            probe=probe_settings(env),
            keys_from=(env.get("KEYHEALTH_KEYS_FROM") or "").strip() or None,
            keys_from_timeout_s=max(1.0, _float(env, "KEYHEALTH_KEYS_FROM_TIMEOUT_S", 120.0)),
            fleet_concurrency=max(1, _int(env, "KEYHEALTH_FLEET_CONCURRENCY", default_fleet_concurrency())),
            fleet_max_rps=max(1.0, _float(env, "KEYHEALTH_FLEET_MAX_RPS", 600.0)),
            claim_ttl_s=max(5.0, _float(env, "KEYHEALTH_CLAIM_TTL_S", 600.0)),
            alert_webhook=(env.get("KEYHEALTH_ALERT_WEBHOOK") or "").strip() or None,
            alert_timeout_s=max(0.1, _float(env, "KEYHEALTH_ALERT_TIMEOUT_S", 5.0)),
            db=database_settings(env),
        )

    @property
    def database_url(self) -> str:
        """SQLite in the data dir by default; DATABASE_URL switches (e.g. to PostgreSQL)."""
        return self.database_url_env or f"sqlite:///{self.data_dir / 'keyhealth.db'}"

    @property
    def demo_database_url(self) -> str:
        """The demo's own database, never the real one."""
        return f"sqlite:///{self.data_dir / 'demo' / 'keyhealth-demo.db'}"


def default_fleet_concurrency() -> int:
    """Keys in flight at once by default: 16 per core, at most 64 (each key is paced at ~20 requests/s, so
    the client's CPU, not the keys, is the limit beyond that)."""
    return max(4, min(64, 16 * (os.cpu_count() or 1)))


def settings() -> Settings:
    """The settings as the environment says now (read when asked, not at import)."""
    return Settings.from_env()


def apply_secrets(secrets: Mapping[str, object]) -> None:
    """Deployment settings from Streamlit's secrets, for the keys in SECRET_SETTINGS; the environment wins."""
    for k in SECRET_SETTINGS:
        if k in secrets:
            os.environ.setdefault(k, str(secrets[k]))


def env_key() -> str | None:
    """The key the CLI was given in STRIPE_KEY (an empty value counts as none)."""
    return os.environ.get("STRIPE_KEY") or None


def webhook_problem(url: str | None) -> str | None:
    """One sentence when KEYHEALTH_ALERT_WEBHOOK is set to something alerts cannot be POSTed to (not an
    http(s) URL with a host), else None. The URL itself is never quoted: it is a secret."""
    if url is None:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        host = None
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not host or any(c.isspace() for c in url):
        return ("KEYHEALTH_ALERT_WEBHOOK is not an http(s) URL; set it to the webhook's full address, starting "
                "with https:// (or unset it to keep alerts on Triage only).")
    return None


def settings_problem(s: Settings) -> str | None:
    """One sentence naming the first setting Key Health cannot start with (CLI and dashboard check it at
    start-up), else None."""
    return webhook_problem(s.alert_webhook)
