"""Verify integration: check, sample data and test charge in one action; a summary and a message. Layout only."""
from __future__ import annotations

from dashboard.gate import require_access

require_access()  # first: nothing below renders or touches the database until an allowed person signs in

import logging

import streamlit as st

from core import store
from core.engine.keys import SecretKey
from core.features.held_key import held_key, held_key_available
from core.features.verify import verify_integration
from core.ui.palette import STATUS_BANNER
from core.ui.text import md_escape
from dashboard import session as state
from dashboard.widgets import session_service

log = logging.getLogger("keyhealth")
RESULT = "kh_verify_result"  # the last Verification (no key in it)
BANNER = {status: getattr(st, kind) for status, kind in STATUS_BANNER.items()}

svc = session_service()
st.title("Verify integration")
st.caption(
    "One action: checks the key, reads the sample data and, with a test key, makes one small test charge. Each "
    "step is recorded and audited as on its own page. A live key gets the check and the sample data only."
)

try:
    names = [t["name"] for t in svc.store.tenant_names()]
except store.DATABASE_ERRORS:
    names = []
chosen = st.session_state.get(state.TENANT)
with st.form("kh_verify_form", border=False):
    tenant = st.selectbox(
        "Tenant (the check is recorded in its history)", names, index=names.index(chosen) if chosen in names else None,
        placeholder="Choose a tenant (optional: without one nothing is recorded)", key="kh_verify_tenant",
    )
    raw = st.text_input("Restricted key", type="password", key="kh_verify_key",
                        help="Never stored, logged or put in a URL; Enter starts the verification.")
    b1, b2 = st.columns([1, 2])
    go = b1.form_submit_button("Verify integration", type="primary")
    held = b2.form_submit_button(
        "Verify the key Pointai holds", disabled=not held_key_available(svc),
        help="Takes the chosen tenant's key from the key source (KEYHEALTH_KEYS_FROM) instead of a pasted one; "
             "the key is never shown." if held_key_available(svc) else "No key source is configured "
             "(KEYHEALTH_KEYS_FROM).")

if go or held:
    source = "dashboard"
    try:
        name = store.TenantName.optional(tenant or None)  # the tenant's name, parsed once here
    except store.StoreInputError as e:
        st.error(md_escape(e))
        st.stop()
        raise  # st.stop() raises; this line is for type checkers
    if held:
        if name is None:
            st.error("Choose the tenant whose key Pointai holds, then verify.")
            st.stop()
            raise  # st.stop() raises; this line is for type checkers
        from_source, why = held_key(svc, name)  # the key source's line, parsed once where it was read
        if from_source is None:
            st.error(md_escape(why))
            st.stop()
            raise  # st.stop() raises; this line is for type checkers
        key, source = from_source, "key source"
    elif not raw.strip():
        st.error("No key was entered; paste the tenant's restricted key (rk_test_… or rk_live_…).")
        st.stop()
    else:
        key = SecretKey.parse(raw)  # the key, parsed once here
    try:
        with st.spinner("Checking the key, reading sample data, making the test charge…"):
            v = verify_integration(svc, key, name, source=source)
        raw = ""
        del key
    except store.StoreInputError as e:
        st.error(md_escape(e))
        st.stop()
    except Exception as e:  # noqa: BLE001 - an unexpected failure: one sentence, never a traceback
        log.error("verify failed: %s", type(e).__name__)
        st.error(f"The verification could not run ({type(e).__name__}); try again in a minute.")
        st.stop()
    st.session_state[RESULT] = v
    st.session_state.pop("kh_verify_key", None)  # the key is not kept by this page

shown = st.session_state.get(RESULT)
if shown is None:
    st.stop()
v = shown

status = v.status or "invalid"
(st.success if v.passed else BANNER.get(status, st.warning))(
    f"**{'VERIFIED' if v.passed else 'PROBLEMS FOUND'}** · key {md_escape(v.key.masked)} · "
    f"{md_escape(v.key.mode or '?')} mode · check {md_escape(status)}"
    + (f" · tenant **{md_escape(v.tenant)}**" if v.tenant else "")
)
if v.key.mode == "live":
    st.info("A live key: the check and the sample data only. No test charge was made (it would be a real payment).")

st.subheader("Summary for the ticket")
st.code(v.summary, language=None, wrap_lines=True)
st.subheader("Message for the tenant")
if v.tenant_message:
    st.code(v.tenant_message, language=None, wrap_lines=True)
else:
    st.info("No message for the tenant: Stripe could not be reached from here (our side), nothing is known about "
            "the key.")
