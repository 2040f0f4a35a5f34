"""Widgets the sample pages share (a module, not a page: nothing under dashboard/ is ever a route)."""
from __future__ import annotations

import streamlit as st

from core.engine.keys import SecretKey
from core.service import Service
from core.store.errors import DatabaseFailure
from core.ui.text import md_escape
from dashboard import session as state
from dashboard.session import service


def session_service() -> Service:
    """This session's Service with its database up to date; when the database cannot be used, the one sentence
    (cause and fix) and the page stops: a page reached without the router (a file-name route) must not show
    a traceback either."""
    try:
        svc = service()
        svc.store  # noqa: B018  (brings the database up to date once per process, or says why it cannot)
        return svc
    except DatabaseFailure as e:
        st.error(md_escape(e))
        st.stop()
        raise  # st.stop() raises; this line is for type checkers


def session_key_or_paste(prefix: str) -> SecretKey:
    """The key the check page left in this session, or a password field to paste one; stops the page until
    there is a key. The key lives in st.session_state only: never stored, logged or put in a URL."""
    key = st.session_state.get(state.KEY)
    if key is not None:
        return key
    st.info("No key in this session yet: check a key on the check page, or paste one here.")
    pasted = st.text_input("Restricted key", type="password", key=f"{prefix}_key_input")
    st.caption("The key stays in this browser session only: never stored, logged or put in a URL.")
    if st.button("Use this key", key=f"{prefix}_use_key"):
        taken = SecretKey.parse(pasted)  # the key, parsed once here
        if taken.accepted and taken.key is not None:
            st.session_state[state.KEY] = taken.key
            st.rerun()
        else:
            st.error(md_escape(taken.info.problem))
    st.stop()


def key_line(masked: str, mode: str | None, tenant: str | None) -> None:
    st.markdown(f"Key **{md_escape(masked)}** ({md_escape(mode)} "
        "mode)" + (f" · tenant **{md_escape(tenant)}**" if tenant else ""))
