"""The sign-in gate. Every page file calls `require_access()` first, and so does app.py's router.

Streamlit runs a page file on more routes than the router's own: the legacy file-name paths of a `pages/`
folder beside the main script (`/audit`, `/check`, …, on a fresh server's first script run), `AppTest`, and
whatever a later Streamlit adds. A gate only in app.py holds only on the routes that pass through app.py, so
each page holds it itself: with `[auth]` configured, nothing of a page renders and nothing touches the
database until an allowed person has signed in; signed out, only the sign-in page shows; signed in but not
on the allow-list, only the refusal.

The policy comes from `st.secrets` (`core.access` decides; it has no Streamlit in it). No secrets file at all
means open access (the app says so on every page); a secrets file that exists but cannot be read closes
everything, because a typo must not open the dashboard.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import streamlit as st

from core import access

log = logging.getLogger("keyhealth")

UNREADABLE = (
    "Key Health's settings (.streamlit/secrets.toml) could not be read, so every page stays closed; an "
    "administrator must fix that file (see .streamlit/secrets.toml.example)."
)


def read_secrets(secrets: Any = None) -> Mapping[str, Any] | None:
    """The secrets as a dict: {} when there is no secrets file (open access), None when one exists but cannot
    be read (a parse error, a bad path): the caller must then fail closed."""
    secrets = st.secrets if secrets is None else secrets
    try:
        return secrets.to_dict()
    except FileNotFoundError as e:  # StreamlitSecretNotFoundError: no file, or a file that does not parse
        if getattr(e, "error_id", None) == "no-secrets-found":
            return {}
        log.error("the secrets file could not be read: %s", getattr(e, "error_id", type(e).__name__))
        return None
    except Exception as e:  # noqa: BLE001 - anything else unreadable must close the app, never open it
        log.error("the secrets file could not be read: %s", type(e).__name__)
        return None


def current_policy() -> access.AccessPolicy | None:
    """This deployment's access policy, or None when the secrets cannot be read (everything stays closed)."""
    secrets = read_secrets()
    return None if secrets is None else access.policy_from_secrets(secrets)


def signed_in_email() -> str | None:
    """The signed-in person's email as the identity provider gave it, or None."""
    email = st.user.get("email") if st.user.is_logged_in else None
    return email if isinstance(email, str) else None


def admitted(policy: access.AccessPolicy) -> bool:
    """May this session see the dashboard under this policy? (Renders nothing.)"""
    if not policy.enabled:
        return True
    return bool(st.user.is_logged_in) and policy.allows(signed_in_email())


def require_access() -> access.AccessPolicy:
    """Stop the script run unless this session may see the dashboard; returns the policy when it may.

    Signed out: the sign-in page only. Signed in but not allowed: the refusal only. Call it before anything
    renders or touches the database: `st.stop()` ends the run here.
    """
    policy = current_policy()
    if policy is not None and admitted(policy):
        return policy
    st.title("Key Health")
    if policy is None:
        st.error(UNREADABLE)
    elif not st.user.is_logged_in:
        st.write("Pointai's internal dashboard for Stripe key health. Sign in to continue.")
        st.button("Sign in", type="primary", on_click=st.login, key="kh_sign_in")
    else:
        st.error(policy.refusal(None))
        # plain text, never markdown: the address comes from the identity provider (an address autolinks)
        st.text(f"Signed in as {signed_in_email() or 'an account without an email address'}")
        st.button("Sign out", on_click=st.logout, key="kh_sign_out_refused")
    st.stop()
