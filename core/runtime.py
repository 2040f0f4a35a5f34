"""Which Stripe, which database and who is acting: the runtime a Service is bound to.

    rt = runtime.real(settings, who="ana@pointai.example")   # Stripe (or STRIPE_API_BASE) + DATABASE_URL
    rt = runtime.demo(settings, who=...)                       # the embedded sandbox + the demo database
    rt.client()                                                # the process's shared StripeClient for rt.api_base

Two browser sessions of one server may be in different modes at the same time, so nothing here sets a
process-wide variable: each session builds its own Runtime. Process-wide, and started at most once: the
embedded sandbox (it holds no key, so sharing it is fine), the demo database's seeding, and the schema upgrade
of each database. No Streamlit in here.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import stripe

from core.config import DEFAULT_ROTATION_DAYS, Settings
from core.engine.probe import client_for
from core.engine.settings import STRIPE_DEFAULT_API_BASE, ProbeSettings
from core.store import Database, Store


@dataclass(frozen=True)
class Runtime:
    demo: bool
    api_base: str
    db: Database
    who: str | None = None  # who is acting, for the audit trail ("anonymous" when nobody signed in)
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    alert_webhook: str | None = field(default=None, repr=False)  # where alerts go (never in demo mode)
    alert_timeout_s: float = 5.0
    rotation_days: int = DEFAULT_ROTATION_DAYS  # KEYHEALTH_ROTATION_DAYS: key age after which rotation is due
    keys_from: str | None = None  # the key-source command (KEYHEALTH_KEYS_FROM; the demo's own in demo mode)
    keys_from_timeout_s: float = 120.0

    def client(self) -> stripe.StripeClient:
        """The shared StripeClient for this Stripe base (one per base and timeout, per process)."""
        return client_for(self.api_base, self.probe.timeout_s)

    @property
    def store(self) -> Store:
        """The store of this runtime's database, brought up to date (once per process) on first use."""
        ensure_schema(self.db)
        return Store(self.db)

    @property
    def is_stripe(self) -> bool:
        """True when this talks to Stripe itself (not the sandbox or another Stripe-compatible server)."""
        return not self.demo and self.api_base.rstrip("/") == STRIPE_DEFAULT_API_BASE

    @property
    def mode_label(self) -> str:
        return "Demo" if self.demo else "Real"

    @property
    def stripe_label(self) -> str:
        if self.demo:
            return f"the embedded Stripe sandbox at {self.api_base} (demo keys only; no real Stripe account)"
        if self.api_base.rstrip("/") == STRIPE_DEFAULT_API_BASE:
            return f"Stripe itself ({STRIPE_DEFAULT_API_BASE})"
        return f"a Stripe-compatible server at {self.api_base} (set by STRIPE_API_BASE)"

    @property
    def db_label(self) -> str:
        return self.db.label


# --- once per process ---------------------------------------------------------------------------------
_schema_lock = threading.Lock()
_upgraded: set[Database] = set()
_sandbox_lock = threading.Lock()
_sandbox: Any = None
_seed_lock = threading.Lock()
_seeded: set[Database] = set()


def ensure_schema(db: Database) -> None:
    """Bring the database to the newest schema, once per process."""
    if db in _upgraded:
        return
    with _schema_lock:
        if db not in _upgraded:
            from core.store import guard

            with guard(db):  # a database that cannot be used: DatabaseFailure, one sentence (core.store.errors)
                db.upgrade()
            _upgraded.add(db)


def demo_sandbox() -> Any:
    """The embedded sandbox (a sandbox.Sandbox), started once per process (it takes no key, so sharing it is fine)."""
    global _sandbox
    if _sandbox is None:
        with _sandbox_lock:
            if _sandbox is None:
                from sandbox import Sandbox

                sb = Sandbox(port=0)
                sb.start()
                _sandbox = sb
    return _sandbox


def demo_sandbox_url() -> str:
    return str(demo_sandbox().url)


def _ensure_seeded(db: Database) -> None:
    if db in _seeded:
        return
    with _seed_lock:
        if db not in _seeded:
            from core.demo import seed_demo
            from core.store import guard

            with guard(db):
                seed_demo(Store(db))
            _seeded.add(db)


def real(settings: Settings, who: str | None = None) -> Runtime:
    """Stripe and the database from the settings (STRIPE_API_BASE, DATABASE_URL) or the defaults."""
    return Runtime(demo=False, api_base=settings.api_base, db=Database(settings.database_url), who=who,
                   probe=settings.probe, alert_webhook=settings.alert_webhook,
                   alert_timeout_s=settings.alert_timeout_s,
                   rotation_days=settings.rotation_days, keys_from=settings.keys_from,
                   keys_from_timeout_s=settings.keys_from_timeout_s)


def demo(settings: Settings, who: str | None = None) -> Runtime:
    """The embedded sandbox and the seeded demo database (<KEYHEALTH_DATA_DIR>/demo/keyhealth-demo.db)."""
    api_base = demo_sandbox_url()
    db = Database(settings.demo_database_url)
    ensure_schema(db)
    _ensure_seeded(db)
    return Runtime(demo=True, api_base=api_base, db=db, who=who, probe=settings.probe,
                   rotation_days=settings.rotation_days, keys_from=demo_key_source(),
                   keys_from_timeout_s=settings.keys_from_timeout_s)


def demo_key_source() -> str:
    """The demo's key source command: scripts/demo_key_source.py (core.demo.main) run by this Python."""
    import shlex
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "demo_key_source.py"
    return shlex.join([sys.executable, str(script)])


def reset_demo(settings: Settings) -> int:
    """Put the demo database back as seeded: the file is removed and seeded again (with today's dates). Returns
    the number of checks written. Demo only: the real database is never touched."""
    from pathlib import Path

    from core.store import dispose_engine

    url = settings.demo_database_url
    db = Database(url)
    with _seed_lock, _schema_lock:
        dispose_engine(url)
        path = Path(url.removeprefix("sqlite:///"))
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            p.unlink(missing_ok=True)
        _upgraded.discard(db)
        _seeded.discard(db)
    ensure_schema(db)
    from core.demo import seed_demo

    with _seed_lock:
        n = seed_demo(Store(db))
        _seeded.add(db)
    return n


def build(settings: Settings, *, demo_mode: bool, who: str | None = None) -> Runtime:
    return demo(settings, who) if demo_mode else real(settings, who)
