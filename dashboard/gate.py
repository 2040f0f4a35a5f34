"""The sign-in gate. app.py calls `require_access()` once, before it builds any navigation; every page file calls
it again first thing, as a second lock (AppTest and any future route can run a page file without app.py).

With sign-in wanted (core.access decides, on the parsed secrets), nothing of a page renders and nothing
touches the database until an allowed person with a verified email has signed in; signed out, only the
sign-in page shows; signed in but not allowed (or unverified), only the refusal; sign-in wanted but its
settings incomplete, only one sentence naming what is missing, for everyone.

No secrets file at all, or one with neither an auth-like section nor an allow-list, means open access (the
app says so on every page); a secrets file that exists but cannot be read closes everything, because a typo
must not open the dashboard.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
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


METADATA_TTL_S = 600.0
METADATA_TIMEOUT_S = 5.0
_claims_cache: dict[str, tuple[float, frozenset[str]]] = {}
_claims_lock = threading.Lock()
NO_METADATA = (
    "Key Health could not read the identity provider's settings to confirm that this account's email address "
    "is verified; reload the page in a minute, and if it persists an administrator must check server_metadata_url."
)


def provider_claims(metadata_url: str) -> frozenset[str] | None:
    """The claims the identity provider says it sends (its metadata's `claims_supported`), cached for 10 minutes;
    None when the metadata cannot be read. Only asked when an identity lacks `email_verified`."""
    now = time.monotonic()
    with _claims_lock:
        hit = _claims_cache.get(metadata_url)
    if hit and now - hit[0] < METADATA_TTL_S:
        return hit[1]
    try:
        with urllib.request.urlopen(metadata_url, timeout=METADATA_TIMEOUT_S) as r:
            metadata = json.loads(r.read(1_000_000))
        claims = frozenset(str(c) for c in metadata.get("claims_supported") or ())
    except Exception as e:  # noqa: BLE001 - unreadable metadata: the caller refuses (closed), never admits
        log.error("the identity provider's metadata could not be read: %s", type(e).__name__)
        return None
    with _claims_lock:
        _claims_cache[metadata_url] = (now, claims)
    return claims


def _user() -> Mapping[str, Any]:
    try:
        return st.user.to_dict()
    except Exception:  # noqa: BLE001 - outside a script run st.user refuses: nobody is signed in
        return {}


def verification_refusal() -> str | None:
    """The sentence refusing a signed-in identity for its email (unverified, or not confirmable), else None."""
    user = _user()
    if user.get("email_verified") is not None:
        return access.UNVERIFIED if access.email_unverified(user, None) else None
    secrets = read_secrets() or {}
    auth = secrets.get("auth")
    url = auth.get("server_metadata_url") if isinstance(auth, Mapping) else None
    claims = provider_claims(url) if isinstance(url, str) and url.strip() else None
    if claims is None:
        return NO_METADATA
    return access.UNVERIFIED if access.email_unverified(user, claims) else None


def signed_in_email() -> str | None:
    """The signed-in person's email as the identity provider gave it, or None."""
    email = st.user.get("email") if st.user.is_logged_in else None
    return email if isinstance(email, str) else None


def admitted(policy: access.AccessPolicy) -> bool:
    """May this session see the dashboard under this policy? (Renders nothing.)"""
    if policy.closed:
        return False
    if not policy.enabled:
        return True
    return (bool(st.user.is_logged_in) and policy.allows(signed_in_email())
            and verification_refusal() is None)


def require_access() -> access.AccessPolicy:
    """Stop the script run unless this session may see the dashboard; returns the policy when it may.

    Settings incomplete: the one sentence only. Signed out: the sign-in page only. Signed in but not allowed,
    or with an unverified email: the refusal only. Call it before anything renders, touches the database or
    builds the navigation: `st.stop()` ends the run here.
    """
    policy = current_policy()
    if policy is not None and admitted(policy):
        return policy
    st.title("Key Health")
    if policy is None:
        st.error(UNREADABLE)
    elif policy.problem:
        st.error(policy.problem)
    elif not st.user.is_logged_in:
        st.write("Pointai's internal dashboard for Stripe key health. Sign in to continue.")
        st.button("Sign in", type="primary", on_click=st.login, key="kh_sign_in")
    else:
        allowed = policy.allows(signed_in_email())
        st.error((verification_refusal() or policy.refusal(None)) if allowed else policy.refusal(None))
        # plain text, never markdown: the address comes from the identity provider (an address autolinks)
        st.text(f"Signed in as {signed_in_email() or 'an account without an email address'}")
        st.button("Sign out", on_click=st.logout, key="kh_sign_out_refused")
    st.stop()
