"""Key Health: the router, page config and shared sidebar. Nothing else."""
from __future__ import annotations

import logging
import traceback
from pathlib import Path

import streamlit as st

from core import access, config
from core.runtime import Runtime
from core.store import mask_url
from core.ui.text import md_code, md_escape
from dashboard import session


def copy_secrets_to_env() -> None:
    """Deployment settings from .streamlit/secrets.toml (see secrets.toml.example); the environment wins."""
    try:
        config.apply_secrets(st.secrets)
    except Exception:  # no secrets file: the environment and the defaults apply
        return


copy_secrets_to_env()  # before anything reads the settings

HERE = Path(__file__).resolve().parent

st.set_page_config(page_title="Key Health", page_icon="🔑", layout="wide")


def read_secrets() -> dict:
    try:
        return st.secrets.to_dict()
    except Exception:  # no secrets file: open access, embedded defaults
        return {}


def sign_in_gate(policy: access.AccessPolicy) -> None:
    """With [auth] configured, nothing but this page is shown until an allowed person has signed in."""
    if not policy.enabled:
        return
    if not st.user.is_logged_in:
        st.title("Key Health")
        st.write("Pointai's internal dashboard for Stripe key health. Sign in to continue.")
        st.button("Sign in", type="primary", on_click=st.login, key="kh_sign_in")
        st.stop()
    if not policy.allows(st.user.get("email")):
        st.title("Key Health")
        st.error(policy.refusal(st.user.get("email")))
        st.button("Sign out", on_click=st.logout, key="kh_sign_out_refused")
        st.stop()


def switch_mode() -> None:
    """The demo switch moved. Demo keys mean nothing to Stripe and real keys must never reach the sandbox,
    so the session forgets the key, the result and the tenant."""
    st.session_state[session.DEMO] = bool(st.session_state.get("kh_demo_switch"))
    for k in session.FORGET_ON_SWITCH:
        st.session_state.pop(k, None)


def sidebar(rt: Runtime, policy: access.AccessPolicy) -> None:
    with st.sidebar:
        if policy.enabled:
            st.caption(f"Signed in as {md_escape(access.identity(st.user))}")
            st.button("Sign out", on_click=st.logout, key="kh_sign_out")
        if rt.demo:
            st.info("**Demo mode**: the embedded Stripe sandbox and a demo database. No real account is touched.")
            with st.expander("Demo keys (paste one on *Check a key*)", expanded=False):
                try:
                    from sandbox import DEMO_KEYS

                    for name, dk in DEMO_KEYS.items():
                        st.markdown(f"**{name}**: {dk.description}")
                        st.code(dk.key, language=None, wrap_lines=True)
                except Exception:
                    st.caption("The demo keys could not be listed.")
        else:
            st.success(f"**Real mode**: {md_escape(rt.stripe_label)}.")
        st.caption(f"Data: {md_code(rt.db_label)}")
    if not policy.enabled:
        st.markdown(
            ":orange-badge[:material/lock_open: Open access] Sign-in is not configured, so anyone who can reach "
            "this page can use it; configure `[auth]` in `.streamlit/secrets.toml` (see `secrets.toml.example`)."
        )


POLICY = access.policy_from_secrets(read_secrets())
sign_in_gate(POLICY)

if session.DEMO not in st.session_state:
    # ?demo=1 lets a link opened in a new tab keep the mode (the mode is no secret; a key never goes in a URL)
    asked = st.query_params.get("demo")
    st.session_state[session.DEMO] = asked == "1" if asked in ("0", "1") else config.settings().demo
# The mode lives in kh_demo (plain state); the switch is only its view. Its widget id can change between the
# very first run of a server (Streamlit's legacy pages/ handling) and the next, and a keyed widget would then
# fall back to its default; with value= taken from kh_demo it shows the session's mode whatever happens.
st.sidebar.toggle(
    "Demo mode",
    value=bool(st.session_state[session.DEMO]),
    key="kh_demo_switch",
    on_change=switch_mode,
    help="Run against the embedded Stripe sandbox and a seeded demo database instead of Stripe and your data.",
)

try:
    rt = session.service().rt
    rt.store  # brings the database up to date now: a database that cannot be opened is said here, once
except Exception as e:  # the database or the sandbox could not be opened: one sentence, no traceback
    logging.getLogger("keyhealth").error("runtime failed to start: %s", type(e).__name__)
    where = "the demo" if st.session_state.get(session.DEMO) else mask_url(config.settings().database_url)
    st.error(
        f"Key Health could not open {where} ({type(e).__name__}); check DATABASE_URL and that the database is "
        "reachable, or switch Demo mode on."
    )
    st.stop()
sidebar(rt, POLICY)

# URL paths differ from the file names on purpose: Streamlit still knows the legacy pages/ directory, and a
# URL path equal to a file's stem ("check" for pages/check.py) lets that legacy route run the page without
# this router (no sidebar, no runtime) on a server's first run and in AppTest.
PAGES = [
    st.Page("pages/check.py", title="Check a key", icon=":material/key:", url_path="check-key", default=True),
    st.Page("pages/triage.py", title="Triage", icon=":material/traffic:", url_path="tenants"),
    st.Page("pages/tenant.py", title="Tenant", icon=":material/storefront:", url_path="tenant-history"),
    st.Page("pages/fleet.py", title="Fleet health", icon=":material/monitoring:", url_path="fleet-health"),
]
EXTRA = [
    ("pages/sample_data.py", "Sample data", ":material/science:", "sample-data"),
    ("pages/sample_transaction.py", "Sample transaction", ":material/credit_card:", "sample-transaction"),
]
PAGES += [st.Page(p, title=t, icon=i, url_path=u) for p, t, i, u in EXTRA if (HERE / p).exists()]
PAGES.append(st.Page("pages/audit.py", title="Audit trail", icon=":material/policy:", url_path="audit-trail"))
PAGES.append(st.Page("pages/about.py", title="About", icon=":material/info:", url_path="about-key-health"))

page = st.navigation(PAGES)
try:
    page.run()
except Exception as e:  # st.stop / st.switch_page / st.rerun are BaseExceptions and pass through
    where = traceback.extract_tb(e.__traceback__)[-1]  # where, not the message: a message could quote input
    logging.getLogger("keyhealth").error(
        "page %s failed: %s at %s:%s", page.url_path, type(e).__name__, Path(where.filename).name, where.lineno
    )
    st.error("Something went wrong on this page; reload it, and if it happens again see the About page for the setup.")
