"""Settings: the one place that reads the environment (and, through it, Streamlit's secrets).

    s = settings()          # read when asked, never at import
    s.database_url, s.api_base, s.probe.rate_test, s.user

Every setting is one row of SETTINGS below: its variable, the attribute it fills, its kind, its default, what is
allowed and what it means. That table is the only place a setting is described: `Settings.from_env` reads the
environment through it and docs/configuration.md is generated from it (`python scripts/gen_docs.py`, kept current
by tests/service/test_config.py). An empty value counts as unset. A value that is not allowed stops start-up with one
sentence naming the variable, the value and what is allowed (`SettingError`; the CLI and app.py check first).

Adding a setting: a field on Settings (or ProbeSettings / DatabaseSettings for "probe." / "db." attributes), one
row in SETTINGS, then `python scripts/gen_docs.py`.

The probe defaults are the engine's own (core/engine/settings.py's ProbeSettings, which the engine falls back on
and which reads no environment); their rows point at them, so every default is written once.

app.py copies the allowed keys of `.streamlit/secrets.toml` into the environment before anything reads
settings (the environment wins), so core never imports streamlit. No other module reads `os.environ`.
"""
from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from core.engine.settings import STRIPE_DEFAULT_API_BASE, ProbeSettings

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = ROOT / "data"
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
DEFAULT_ROTATION_DAYS = 180

__all__ = ["SECRET_SETTINGS", "SETTINGS", "STRIPE_DEFAULT_API_BASE", "DatabaseSettings", "ProbeSettings", "Setting",
           "SettingError", "Settings", "apply_secrets", "env_key", "markdown", "settings"]

Kind = Literal["text", "url", "path", "bool", "flag", "int", "float"]


class SettingError(ValueError):
    """A setting's value is not allowed: one sentence naming the variable, the value and what is allowed."""


def default_fleet_concurrency() -> int:
    """Keys in flight at once by default: 32 per core, 8 to 128. Each key sends its probes one after another
    (KEYHEALTH_FLEET_KEY_CONCURRENCY, 1), so a key sends about one request per answer time (3 to 10 a second);
    beyond that the client's CPU, not the keys, is the limit."""
    return max(8, min(128, 32 * (os.cpu_count() or 1)))


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    env: str  # the environment variable
    attr: str  # the Settings attribute it fills; "probe.x" / "db.x" fill Settings.probe / Settings.db
    kind: Kind
    default: Any  # the value when unset (or empty); a callable is called then
    doc: str  # what it means (one line, Markdown)
    minimum: float | None = None  # int / float: the smallest value allowed
    secret: bool = False  # the value is never shown (in errors, in repr)
    from_secrets: bool = False  # .streamlit/secrets.toml may set it (the environment wins)
    fallback: str | None = None  # when unset, this other variable is read instead
    default_doc: str | None = None  # how the docs show the default, when the value itself would not say it

    def allowed(self) -> str:
        """What is allowed, as the end of 'it must be …'."""
        at_least = "" if self.minimum is None else f" of at least {_number(self.minimum)}"
        return {
            "text": "any text",
            "url": "an http:// or https:// URL",
            "path": "a directory",
            "bool": f"{', '.join(TRUE[:-1])} or {TRUE[-1]} (on), or {', '.join(FALSE[:-1])} or {FALSE[-1]} (off)",
            "flag": "any non-empty value (on)",
            "int": f"a whole number{at_least}",
            "float": f"a number{at_least}",
        }[self.kind]

    def shown_default(self) -> str:
        if self.default_doc is not None:
            return self.default_doc
        d = self.default
        if d is None:
            return "unset"
        if isinstance(d, bool):
            return "on" if d else "off"
        if isinstance(d, float | int):
            return _number(d)
        return str(d)

    def read(self, env: Mapping[str, str]) -> Any:
        name = self.env if env.get(self.env) or not self.fallback else self.fallback
        raw = env.get(name) or ""
        if not self.secret:  # a secret is taken as given (a changed fingerprint secret changes every fingerprint)
            raw = raw.strip()
        if raw == "":
            return self.default() if callable(self.default) else self.default
        value = self._parse(raw)
        if value is None:
            raise SettingError(self._refusal(name, raw))
        return value

    def _parse(self, raw: str) -> Any:
        """The typed value, or None when `raw` is not allowed."""
        if self.kind == "text":
            return raw
        if self.kind == "path":
            return Path(raw)
        if self.kind == "flag":
            return True
        if self.kind == "bool":
            low = raw.lower()
            return True if low in TRUE else False if low in FALSE else None
        if self.kind == "url":
            return raw if _http_url(raw) else None
        try:
            number: float = int(raw) if self.kind == "int" else float(raw)
        except ValueError:
            return None
        if not math.isfinite(number) or (self.minimum is not None and number < self.minimum):
            return None
        return number

    def _refusal(self, name: str, raw: str) -> str:
        unset = ", or unset" if self.default is None else f", or unset for the default ({self.shown_default()})"
        if self.secret:
            return (f"{name} is set to a value that is not allowed (not shown: it is a secret); it must be "
                    f"{self.allowed()}{unset}.")
        shown = raw if len(raw) <= 60 else raw[:57] + "…"
        return f"{name} is set to {shown!r}, which is not allowed; it must be {self.allowed()}{unset}."


def _http_url(raw: str) -> bool:
    """An http(s) URL with a host, no white space and (if any) a numeric port: what alerts can be POSTed to."""
    try:
        parts = urlsplit(raw)
        host, _port = parts.hostname, parts.port  # a port that is not a number raises here
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(host) and not any(c.isspace() for c in raw)


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


_P = ProbeSettings()  # the engine's probe defaults

# The table. Order = the order of docs/configuration.md.
SETTINGS: tuple[Setting, ...] = (
    Setting("STRIPE_API_BASE", "api_base", "url", STRIPE_DEFAULT_API_BASE,
            "where the Stripe API is (the sandbox in tests and demo)", from_secrets=True),
    Setting("DATABASE_URL", "database_url_env", "text", None,
            "the store; `postgresql+psycopg://…` switches to PostgreSQL", secret=True, from_secrets=True,
            default_doc="`sqlite:///` + the data dir's `keyhealth.db`"),
    Setting("KEYHEALTH_DATA_DIR", "data_dir", "path", DEFAULT_DATA_DIR,
            "the default database, the demo database (`demo/keyhealth-demo.db`) and the fingerprint secret",
            from_secrets=True, default_doc="`data/` in the checkout"),
    Setting("KEYHEALTH_FINGERPRINT_SECRET", "fingerprint_secret", "text", None,
            "the key of the keyed fingerprint; keep it stable or fingerprints change", secret=True,
            from_secrets=True, default_doc="generated once into `<data dir>/.fingerprint_secret` (0600)"),
    Setting("KEYHEALTH_DEMO", "demo", "bool", False,
            "`1` starts every new dashboard session in demo mode (the sidebar switch still turns it off)",
            from_secrets=True),
    Setting("KEYHEALTH_USER", "user", "text", None,
            "who the CLI acts as in the audit trail (the dashboard uses the signed-in email)", fallback="USER",
            default_doc="`USER`"),
    Setting("NO_COLOR", "no_color", "flag", False, "the CLI prints no colours (no-color.org)"),
    Setting("FORCE_COLOR", "force_color", "flag", False, "the CLI prints colours even when not on a terminal"),
    Setting("KEYHEALTH_ROTATION_DAYS", "rotation_days", "int", DEFAULT_ROTATION_DAYS,
            "a key first seen this many days ago is due for rotation (shown, never failing)", minimum=1),
    # the check's sweep (core.engine.settings.ProbeSettings)
    Setting("KEYHEALTH_RATE_TEST", "probe.rate_test", "float", _P.rate_test,
            "probe requests per second for a test key", minimum=0.1),
    Setting("KEYHEALTH_RATE_LIVE", "probe.rate_live", "float", _P.rate_live,
            "probe requests per second for a live key", minimum=0.1),
    Setting("KEYHEALTH_CONCURRENCY", "probe.concurrency", "int", _P.concurrency, "probes in flight at once",
            minimum=1),
    Setting("KEYHEALTH_RETRIES", "probe.retries", "int", _P.retries,
            "retries of an inconclusive answer (429, 5xx, timeout, network)", minimum=0),
    Setting("KEYHEALTH_BACKOFF_S", "probe.backoff_s", "float", _P.backoff_s,
            "first backoff in seconds; doubles each retry, with jitter", minimum=0),
    Setting("KEYHEALTH_TIMEOUT_S", "probe.timeout_s", "float", _P.timeout_s, "request timeout in seconds",
            minimum=0.1),
    Setting("KEYHEALTH_MAX_NETWORK_FAILURES", "probe.max_network_failures", "int", _P.max_network_failures,
            "consecutive requests with no HTTP answer after which a sweep that had answers stops (Stripe went "
            "away mid-sweep)", minimum=1),
    Setting("KEYHEALTH_MAX_ERROR_ANSWERS", "probe.max_error_answers", "int", _P.max_error_answers,
            "consecutive inconclusive answers (429, 5xx) after which a sweep stops: Stripe's trouble, not the key's",
            minimum=1),
    # the fleet recheck (keyhealth recheck)
    Setting("KEYHEALTH_KEYS_FROM", "keys_from", "text", None,
            "the key-source command `recheck` runs when given no `--csv -` (it prints tenant,key lines)"),
    Setting("KEYHEALTH_KEYS_FROM_TIMEOUT_S", "keys_from_timeout_s", "float", 120.0,
            "how long the key source may take, in seconds", minimum=1),
    Setting("KEYHEALTH_FLEET_CONCURRENCY", "fleet_concurrency", "int", default_fleet_concurrency,
            "keys in flight at once in `recheck`", minimum=1, default_doc="32 per core (8 to 128)"),
    Setting("KEYHEALTH_FLEET_KEY_CONCURRENCY", "fleet_key_concurrency", "int", 1,
            "probes in flight per key in `recheck`: 1 sends a key's probes one after another from its own thread "
            "(the least CPU per request); more makes each key faster, not the fleet", minimum=1),
    Setting("KEYHEALTH_FLEET_MAX_RPS", "fleet_max_rps", "float", 600.0,
            "requests per second ceiling for one `recheck` process, across every Stripe account", minimum=1),
    Setting("KEYHEALTH_CLAIM_TTL_S", "claim_ttl_s", "float", 30.0,
            "a worker's claim on a tenant expires after this many seconds unless its heartbeat (every third of it) "
            "refreshes it: a dead worker's tenants are taken over about this long after it died", minimum=5),
    Setting("KEYHEALTH_FLEET_WAIT_S", "fleet_wait_s", "float", 300.0,
            "a worker with nothing left to claim waits on the other workers' claims this long with nothing moving "
            "before it ends the run unfinished (exit 5)", minimum=1),
    # alerts
    Setting("KEYHEALTH_ALERT_WEBHOOK", "alert_webhook", "url", None,
            "Slack-compatible webhook alerts are POSTed to (`{\"text\": …}`); never used in demo mode", secret=True,
            from_secrets=True),
    Setting("KEYHEALTH_ALERT_TIMEOUT_S", "alert_timeout_s", "float", 5.0, "per alert delivery attempt, in seconds",
            minimum=0.1),
    # the store's database (DatabaseSettings)
    Setting("KEYHEALTH_DB_CONNECT_TIMEOUT_S", "db.connect_timeout_s", "float", 5.0,
            "PostgreSQL: give up connecting after this many seconds (whole seconds; a server that accepts and never "
            "answers included)", minimum=1, from_secrets=True),
    Setting("KEYHEALTH_DB_STATEMENT_TIMEOUT_S", "db.statement_timeout_s", "float", 15.0,
            "PostgreSQL: the server cancels any one statement after this many seconds", minimum=0.1,
            from_secrets=True),
    Setting("KEYHEALTH_DB_BUSY_TIMEOUT_S", "db.busy_timeout_s", "float", 5.0,
            "SQLite: wait at most this many seconds for another process's write lock (a schema upgrade waits up to "
            "30 s for another process's upgrade)", minimum=0, from_secrets=True),
)

# What .streamlit/secrets.toml may set (the environment wins); see secrets.toml.example.
SECRET_SETTINGS = tuple(s.env for s in SETTINGS if s.from_secrets)


@dataclass(frozen=True)
class DatabaseSettings:
    """How long the store waits on its database before giving up with one sentence (core.store.errors)."""

    connect_timeout_s: float  # PostgreSQL: the whole connection set-up (psycopg connect_timeout)
    statement_timeout_s: float  # PostgreSQL: any one statement (server-side statement_timeout)
    busy_timeout_s: float  # SQLite: waiting for another process's write lock


# Where the "group." attributes go.
_GROUPS: dict[str, Callable[..., Any]] = {"probe": ProbeSettings, "db": DatabaseSettings}


@dataclass(frozen=True)
class Settings:
    """Everything Key Health can be told from outside, typed; `Settings.from_env({})` is the embedded defaults
    `make run` uses. Each field's variable, default and meaning are its row in SETTINGS."""

    api_base: str
    data_dir: Path
    database_url_env: str | None = field(repr=False)
    demo: bool
    fingerprint_secret: str | None = field(repr=False)
    user: str | None
    no_color: bool
    force_color: bool
    rotation_days: int
    probe: ProbeSettings
    keys_from: str | None
    keys_from_timeout_s: float
    fleet_concurrency: int
    fleet_key_concurrency: int
    fleet_max_rps: float
    claim_ttl_s: float
    fleet_wait_s: float
    alert_webhook: str | None = field(repr=False)
    alert_timeout_s: float
    db: DatabaseSettings

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment gives; SettingError (one sentence) for a value that is not allowed."""
        env = os.environ if env is None else env
        top: dict[str, Any] = {}
        groups: dict[str, dict[str, Any]] = {g: {} for g in _GROUPS}
        for s in SETTINGS:
            group, _, name = s.attr.rpartition(".")
            (groups[group] if group else top)[name] = s.read(env)
        return cls(**top, **{g: _GROUPS[g](**kw) for g, kw in groups.items()})

    @property
    def database_url(self) -> str:
        """SQLite in the data dir by default; DATABASE_URL switches (e.g. to PostgreSQL)."""
        return self.database_url_env or f"sqlite:///{self.data_dir / 'keyhealth.db'}"

    @property
    def demo_database_url(self) -> str:
        """The demo's own database, never the real one."""
        return f"sqlite:///{self.data_dir / 'demo' / 'keyhealth-demo.db'}"


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


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown() -> str:
    """docs/configuration.md, generated from SETTINGS."""
    lines = [
        "# Configuration",
        "",
        "<!-- Generated from core/config.py's SETTINGS by `python scripts/gen_docs.py`; edit the table there, "
        "not this file (tests/service/test_config.py fails when the two differ). -->",
        "",
        "Key Health is configured by environment variables; `core/config.py` is the only reader. An empty value "
        "counts as unset. A value that is not allowed stops start-up (the CLI exits with status 2, the dashboard "
        "shows only that) with one sentence naming the variable, the value and what is allowed; a secret's value "
        "is never shown (`tests/service/test_config.py`: "
        "`test_a_value_that_is_not_allowed_is_refused_in_one_sentence_never_"
        "defaulted`, `test_the_cli_stops_at_start_with_the_sentence_and_exit_2`, "
        "`test_the_dashboard_shows_only_the_sentence`, `test_a_secret_value_is_never_shown`).",
        "",
        "| variable | default | allowed | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for s in SETTINGS:
        name = f"`{s.env}`" + (f" (else `{s.fallback}`)" if s.fallback else "")
        default = s.shown_default() if s.default_doc else f"`{s.shown_default()}`" if s.default is not None else "unset"
        meaning = s.doc + (" (secret: never shown)" if s.secret else "")
        lines.append(f"| {_cell(name)} | {_cell(default)} | {_cell(s.allowed())} | {_cell(meaning)} |")
    from_secrets = ", ".join(f"`{s.env}`" for s in SETTINGS if s.from_secrets)
    lines += [
        "",
        "## Streamlit secrets",
        "",
        "`.streamlit/secrets.toml` (see `.streamlit/secrets.toml.example`) may set " + from_secrets + "; a variable "
        "already set in the environment wins. app.py copies them into the environment before anything reads the "
        "settings. The same file holds the sign-in settings (`[auth]`, `[keyhealth]`, see "
        "[operations](operations.md)).",
        "",
        "## Not settings",
        "",
        "- `STRIPE_KEY`: the key the CLI's `check`, `sample-data` and `test-transaction` read when no key comes on "
        "standard input; a key is never a setting and never stored.",
        "- `PORT` and `ADDRESS` (Makefile): where `make run` / `make demo` listen (8501 on 127.0.0.1 by default).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m core.config --markdown
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m core.config --markdown")
    sys.stdout.write(markdown())
