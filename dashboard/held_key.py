"""The "Check the key Pointai holds" action the Tenant and Triage pages share (a module, not a page).

It runs the runtime's key source for one tenant and checks and records that tenant's key through
core.features.held_key; the key never reaches the page, the session or the URL, only the result's masked form."""
from __future__ import annotations

import logging

import streamlit as st

from core.features.held_key import check_held_key, held_key_available
from core.service import Service
from core.store import TenantName
from core.ui.text import md_code, md_escape

log = logging.getLogger("keyhealth")
FLASH = "kh_held_key_flash"  # (kind, sentence) of the last held-key check, shown once after the rerun
LABEL = "Check the key Pointai holds"


def _run(svc: Service, tenant: str) -> None:
    try:
        with st.spinner(f"Asking the key source for {tenant}'s key and checking it with Stripe…"):
            held = check_held_key(svc, TenantName.parse(tenant))  # a name the store listed: parsed once here
    except Exception as e:  # noqa: BLE001 - an unexpected failure: one sentence, never a traceback
        log.error("held-key check failed: %s", type(e).__name__)
        st.session_state[FLASH] = {"kind": "error",
                                   "headline": f"The check could not run ({type(e).__name__}); try again in a minute."}
        return
    if held.checked is None:
        st.session_state[FLASH] = {"kind": "error",
                                   "headline": md_escape(held.problem or "The key source gave no key.")}
        return
    r = held.checked.result
    score = f"score {r.score}/100" if r.says_something else "Stripe did not answer (our side)"
    saved = ("recorded in its history" if held.checked.saved
             else md_escape(held.checked.save_problem or "not recorded"))
    kind = "success" if r.status == "healthy" else "error" if r.status in ("invalid", "failing") else "warning"
    # what the page shows after the rerun: no key, only its masked form and what Stripe said
    st.session_state[FLASH] = {
        "kind": kind,
        "headline": f"Checked the key Pointai holds for **{md_escape(tenant)}** ({md_code(r.key.masked)}): "
                    f"**{md_escape(r.status.upper())}**, {score}; {saved}.",
        "problem": r.problem,
        "since": held.since,
        "last_healthy": held.last_healthy,
        "message": r.message if r.says_something else None,
    }


def show_flash() -> None:
    said = st.session_state.pop(FLASH, None)
    if not said:
        return
    getattr(st, said["kind"], st.info)(said["headline"])
    if said.get("problem"):
        st.markdown(f"**Problem:** {md_escape(said['problem'])}")
    when = []
    if said.get("since"):
        when.append(f"not healthy since **{said['since']:%Y-%m-%d %H:%M} UTC**")
    if said.get("last_healthy"):
        when.append(f"last healthy {said['last_healthy']:%Y-%m-%d %H:%M} UTC")
    if when:
        line = "; ".join(when)
        st.markdown(line[0].upper() + line[1:] + ".")
    if said.get("message"):
        st.markdown("**Message for the tenant** (copy and send)")
        st.code(said["message"], language=None, wrap_lines=True)


def held_key_button(svc: Service, tenant: str, *, key: str) -> None:
    """The button (only when a key source is configured), and the last run's sentence."""
    show_flash()
    if not held_key_available(svc):
        return
    if st.button(LABEL, key=key, help="Runs the key source (KEYHEALTH_KEYS_FROM) for this tenant, checks the key it "
                 "holds and records it. The key is never shown."):
        _run(svc, tenant)
        st.rerun()


def held_key_picker(svc: Service, tenants: list[str], *, key: str) -> None:
    """For a list of tenants (Triage's rows): pick one, check the key Pointai holds for it."""
    show_flash()
    if not held_key_available(svc) or not tenants:
        return
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    tenant = c1.selectbox("Tenant on this page", tenants, key=f"{key}_pick")
    if c2.button(LABEL, key=key, help="Runs the key source (KEYHEALTH_KEYS_FROM) for the tenant, checks the key it "
                 "holds and records it. The key is never shown."):
        _run(svc, tenant)
        st.rerun()
