"""Key Health: the router, page config and shared sidebar. Nothing else."""
from __future__ import annotations

import logging
import traceback
from pathlib import Path

import streamlit as st

from core import access, config
from core.runtime import Runtime
from core.store import DatabaseFailure, is_database_error
from core.ui.problems import database_problem
from core.ui.text import md_code, md_escape
from dashboard import gate, session


def copy_secrets_to_env() -> None:
    """Deployment settings from .streamlit/secrets.toml (see secrets.toml.example); the environment wins."""
    try:
        config.apply_secrets(st.secrets)
    except Exception:  # noqa: BLE001 - no secrets file: the environment and the defaults apply
        return


copy_secrets_to_env()  # before anything reads the settings

HERE = Path(__file__).resolve().parent

st.set_page_config(page_title="Key Health", page_icon="🔑", layout="wide")

try:  # a setting that is not allowed stops start-up: its one sentence and nothing else
    config.settings()
except config.SettingError as bad_setting:
    st.error(md_escape(str(bad_setting)))
    st.stop()


def switch_mode() -> None:
    """The demo switch moved. Demo keys mean nothing to Stripe and real keys must never reach the sandbox,
    so the session forgets the key, the result and the tenant."""
    st.session_state[session.DEMO] = bool(st.session_state.get("kh_demo_switch"))
    for k in session.FORGET_ON_SWITCH:
        st.session_state.pop(k, None)


def keep_mode_in_url(demo: bool) -> None:
    """?demo=1 while in demo mode (and ?demo=0 in real mode when demo is the default), so a refresh, which
    starts a new session, comes back in the same mode. The mode is no secret; a key never goes in a URL."""
    want = "1" if demo else ("0" if config.settings().demo else None)
    if st.query_params.get("demo") == want:
        return
    if want is None:
        del st.query_params["demo"]
    else:
        st.query_params["demo"] = want


def reset_demo() -> None:
    """The sidebar's "Reset the demo": the demo database seeded again; the session forgets its key and result."""
    from core import runtime

    try:
        with st.spinner("Seeding the demo again…"):
            runtime.reset_demo(config.settings())
    except Exception as e:  # noqa: BLE001 - one sentence, never a traceback
        logging.getLogger("keyhealth").error("demo reset failed: %s", type(e).__name__)
        st.sidebar.error(f"The demo could not be reset ({type(e).__name__}); reload the page and try again.")
        return
    for k in session.FORGET_ON_SWITCH:
        st.session_state.pop(k, None)
    st.rerun()


def sidebar(rt: Runtime, policy: access.AccessPolicy) -> None:
    with st.sidebar:
        if policy.enabled:
            st.text(f"Signed in as {access.identity(st.user)}")  # plain text: an address in markdown autolinks
            st.button("Sign out", on_click=st.logout, key="kh_sign_out")
        if rt.demo:
            st.info("**Demo mode**: the embedded Stripe sandbox and a demo database. No real account is touched.")
            with st.expander("Demo keys (paste one on *Check a key*)", expanded=False):
                try:
                    from core.demo import demo_key_owners
                    from sandbox import DEMO_KEYS

                    owners = demo_key_owners()  # each story's key, with the demo tenant whose history holds it
                    for name, dk in sorted(DEMO_KEYS.items(), key=lambda kv: kv[0] not in owners):
                        who = owners.get(name)
                        st.markdown(f"**{md_escape(who)}** ({dk.mode}): {md_escape(dk.description)}" if who
                                    else f"**{name}** ({dk.mode}, no demo tenant): {md_escape(dk.description)}")
                        st.code(dk.key, language=None, wrap_lines=True)
                except Exception:  # noqa: BLE001 - the list is a convenience; the page works without it
                    st.caption("The demo keys could not be listed.")
            if st.button("Reset the demo", key="kh_demo_reset",
                         help="Put the demo database back as seeded (today's dates); demo data only."):
                reset_demo()
        else:
            st.success(f"**Real mode**: {md_escape(rt.stripe_label)}.")
        st.caption(f"Data: {md_code(rt.db_label)}")
    if not policy.enabled:
        st.markdown(
            ":orange-badge[:material/lock_open: Open access] Sign-in is not configured, so anyone who can reach "
            "this page can use it; configure `[auth]` in `.streamlit/secrets.toml` (see `secrets.toml.example`)."
        )


# --- the gate, then the pages ----------------------------------------------------------------------------
# The gate runs once, here, before any navigation is built: signed out (or refused, or with sign-in settings
# incomplete) the run stops inside it, and no st.navigation message ever leaves the server, so the browser gets
# no page title, URL path or script hash beyond the sign-in page. Each page file calls the gate again first
# thing, as a second lock. The page scripts live in app_pages/ (not pages/), so Streamlit serves none of them
# by its file name; the router is the only way to a page.
POLICY = gate.require_access()

# The check page is the home page (/); its internal url_path only names it (a default page's URL is /).
CHECK = st.Page("app_pages/check.py", title="Check a key", icon=":material/key:", url_path="check-a-key",
                default=True)


def check_key_address() -> None:
    """/check-key, the check page's own address in links and bookmarks, answers with the check page (at /)."""
    st.switch_page(CHECK, query_params=st.query_params.to_dict())


PAGES = [
    CHECK,
    st.Page("app_pages/triage.py", title="Triage", icon=":material/traffic:", url_path="tenants"),
    st.Page("app_pages/tenant.py", title="Tenant", icon=":material/storefront:", url_path="tenant-history"),
    st.Page("app_pages/fleet.py", title="Fleet health", icon=":material/monitoring:", url_path="fleet-health"),
]
EXTRA = [
    ("app_pages/sample_data.py", "Sample data", ":material/science:", "sample-data"),
    ("app_pages/sample_transaction.py", "Sample transaction", ":material/credit_card:", "sample-transaction"),
]
PAGES += [st.Page(p, title=t, icon=i, url_path=u) for p, t, i, u in EXTRA if (HERE / p).exists()]
PAGES.append(st.Page("app_pages/verify.py", title="Verify integration", icon=":material/verified:",
                     url_path="verify-integration"))
PAGES.append(st.Page("app_pages/audit.py", title="Audit trail", icon=":material/policy:", url_path="audit-trail"))
PAGES.append(st.Page("app_pages/about.py", title="About", icon=":material/info:", url_path="about-key-health"))
ALIASES = [st.Page(check_key_address, title="Check a key", url_path="check-key", visibility="hidden")]

# Only for a person who may see it: the navigation resolves the page (hidden: the router draws its own links).
page = st.navigation(PAGES + ALIASES, position="hidden")

if session.DEMO not in st.session_state:
    # a new session (a new tab, a refresh): ?demo=1 / ?demo=0 keeps the mode the URL carries
    asked = st.query_params.get("demo")
    st.session_state[session.DEMO] = asked == "1" if asked in ("0", "1") else config.settings().demo
keep_mode_in_url(bool(st.session_state[session.DEMO]))

with st.sidebar:
    for p in PAGES:
        st.page_link(p)
# The mode lives in kh_demo (plain state); the switch is only its view: with value= taken from kh_demo it shows
# the session's mode whatever happened to the widget's state (a page switch, a new session from a refresh).
st.sidebar.toggle(
    "Demo mode",
    value=bool(st.session_state[session.DEMO]),
    key="kh_demo_switch",
    on_change=switch_mode,
    help="Run against the embedded Stripe sandbox and a seeded demo database instead of Stripe and your data.",
)

try:
    rt = session.service().rt
    _ = rt.store  # brings the database up to date now: one that cannot be opened is said here, once
except DatabaseFailure as e:  # the database could not be used: one sentence naming the cause and the fix
    logging.getLogger("keyhealth").error("runtime failed to start: database %s", e.kind)
    st.error(md_escape(e))
    if not st.session_state.get(session.DEMO):
        st.caption("Meanwhile, Demo mode (in the sidebar) runs Key Health on a demo database and a local sandbox.")
    st.stop()
except Exception as e:  # noqa: BLE001 - the embedded sandbox could not start: one sentence, no traceback
    logging.getLogger("keyhealth").error("runtime failed to start: %s", type(e).__name__)
    st.error(
        f"Key Health could not start the embedded Stripe sandbox for Demo mode ({type(e).__name__}); reload the "
        "page, and if it happens again switch Demo mode off."
        if st.session_state.get(session.DEMO) else
        f"Key Health could not start ({type(e).__name__}); reload the page, and if it happens again see the "
        "server's log."
    )
    st.stop()
sidebar(rt, POLICY)

try:
    page.run()
except Exception as e:  # noqa: BLE001 - st.stop / st.switch_page / st.rerun are BaseExceptions and pass through
    if is_database_error(e):  # a store call a page did not guard: still the one sentence
        st.error(database_problem(e, rt.db, "This page could not be shown"))
        st.stop()
    frame = traceback.extract_tb(e.__traceback__)[-1]  # where, not the message: a message could quote input
    logging.getLogger("keyhealth").error(
        "page %s failed: %s at %s:%s", page.url_path, type(e).__name__, Path(frame.filename).name, frame.lineno
    )
    st.error("Something went wrong on this page; reload it, and if it happens again see the About page for the setup.")
