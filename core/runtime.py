"""Which Stripe and which database a browser session talks to: the real ones, or the demo's.

    rt = current(demo)          # demo: the embedded Stripe sandbox + data/demo/keyhealth-demo.db
    rt.client()                 # the process's shared StripeClient for rt.api_base (keys are passed per call)
    rt.db_url                   # hand to every core.store call as url=

Two browser sessions of one server may be in different modes at the same time, so nothing here sets a
process-wide environment variable: the mode is a value each session carries (the dashboard keeps it in
st.session_state["kh_demo"]). Process-wide, and started at most once: the embedded sandbox (it holds no
key, so sharing it is fine), the demo database's seeding, and the schema upgrade of each database.
No Streamlit in here.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from core.config import STRIPE_DEFAULT_API_BASE, ProbeSettings, database_url, stripe_api_base

DEMO_ENV = "KEYHEALTH_DEMO"
STATE_DEMO = "kh_demo"  # st.session_state key: is this browser session in demo mode


def demo_default() -> bool:
    """The demo switch's default: KEYHEALTH_DEMO=1 (what `make demo` sets), else off."""
    return os.environ.get(DEMO_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def mask_db_url(url: str) -> str:
    """The database URL without its password (for the About page and error messages)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy understands: show only its scheme
        return url.split(":", 1)[0] + ":…"


@dataclass(frozen=True)
class Runtime:
    demo: bool
    api_base: str
    db_url: str

    def settings(self) -> ProbeSettings:
        return ProbeSettings.from_env()

    def client(self):
        """The shared StripeClient for this Stripe base (one per base and timeout, per process)."""
        from core.engine.probe import client_for

        return client_for(self.api_base, self.settings().timeout_s)

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
        return mask_db_url(self.db_url)


# --- once per process ---------------------------------------------------------------------------------
_schema_lock = threading.Lock()
_upgraded: set[str] = set()
_sandbox_lock = threading.Lock()
_sandbox = None  # the embedded sandbox.Sandbox, started on first use
_sandbox_url: str | None = None
_seed_lock = threading.Lock()
_seeded: set[str] = set()


def ensure_schema(url: str) -> None:
    """Bring the database at `url` to the newest schema, once per process."""
    if url in _upgraded:
        return
    with _schema_lock:
        if url in _upgraded:
            return
        from core.store import upgrade

        upgrade(url)
        _upgraded.add(url)


def demo_sandbox():
    """The embedded sandbox, started once per process (module-level singleton; it takes no key)."""
    global _sandbox, _sandbox_url
    if _sandbox_url is not None:
        return _sandbox
    with _sandbox_lock:
        if _sandbox_url is None:
            from sandbox import Sandbox

            sb = Sandbox(port=0)
            url = sb.start()
            _sandbox, _sandbox_url = sb, url
    return _sandbox


def _ensure_seeded(url: str) -> None:
    if url in _seeded:
        return
    with _seed_lock:
        if url in _seeded:
            return
        from core.demo import seed_demo

        seed_demo(url)
        _seeded.add(url)


def real_runtime() -> Runtime:
    """Stripe and the database from the environment (STRIPE_API_BASE, DATABASE_URL) or the defaults."""
    rt = Runtime(demo=False, api_base=stripe_api_base(), db_url=database_url())
    ensure_schema(rt.db_url)
    return rt


def demo_runtime() -> Runtime:
    """The embedded sandbox and the seeded demo database (<KEYHEALTH_DATA_DIR>/demo/keyhealth-demo.db)."""
    from core.demo import demo_db_url

    demo_sandbox()
    url = demo_db_url()
    ensure_schema(url)
    _ensure_seeded(url)
    assert _sandbox_url is not None
    return Runtime(demo=True, api_base=_sandbox_url, db_url=url)


def current(demo: bool) -> Runtime:
    return demo_runtime() if demo else real_runtime()


def for_session(state: Mapping) -> Runtime:
    """The runtime for one browser session, from its state (st.session_state) and the default."""
    demo = state.get(STATE_DEMO)
    return current(demo_default() if demo is None else bool(demo))
