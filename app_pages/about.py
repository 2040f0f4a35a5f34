"""About: which Stripe this talks to, where the data lives, what is probed, which version."""
from __future__ import annotations

from dashboard.gate import require_access

require_access()  # first: nothing below renders or touches the database until an allowed person signs in

import pandas as pd
import streamlit as st

import core
from core import store
from core.engine.catalogue import load_catalogue, load_profile
from core.ui.palette import LEVEL_LABEL
from core.ui.problems import database_problem
from core.ui.text import md_code, md_escape
from dashboard.widgets import session_service

svc = session_service()
rt = svc.rt
LEVEL = LEVEL_LABEL
PROVENANCE = {
    "docs": "Stripe's docs",
    "error": "a real Stripe error text",
    "calibrated": "calibrated against a real account",
    "inferred": "inferred (no public trace)",
}

st.title("About Key Health")
st.markdown(
    "Key Health checks the Stripe **restricted keys** tenants give Pointai: it probes every permission from "
    "outside with requests Stripe refuses without the permission and that can never change anything, and "
    "compares what the key has with what Pointai requires."
)

st.subheader("This session")
settings = rt.probe
st.markdown(
    f"- **Mode:** {md_escape(rt.mode_label)}\n"
    f"- **Stripe:** {md_escape(rt.stripe_label)}\n"
    f"- **Data:** {md_code(rt.db_label)}" + (" (the demo database; it never mixes with the real "
        "one)" if rt.demo else "") + "\n"
    f"- **Pace:** {settings.rate_test:g} requests/s for test keys, {settings.rate_live:g}/s for live keys, "
    f"{settings.concurrency} at a time, {settings.retries} retries\n"
    f"- **Version:** Key Health {core.__version__}"
)

try:
    reslugged = svc.store.list_audit(action="reslug", limit=200)
except store.DATABASE_ERRORS as e:
    reslugged = []
    st.warning(database_problem(e, svc.rt.db, "The tenant re-slug report could not be read"))
if reslugged:
    st.subheader("Tenants the slug migration reported")
    st.caption(
        "Migration 0006 gave tenants Unicode slugs, so names that differ only in non-ASCII letters are separate "
        "tenants from now on. It left these as they were; see the README's store section."
    )
    st.dataframe(
        pd.DataFrame(
            {
                "Tenant": [a["tenant"] or "" for a in reslugged],
                "What": ["kept its old slug" if a["outcome"] == "kept_slug" else "holds merged history"
                         for a in reslugged],
                "Detail": [a["detail"] or "" for a in reslugged],
            }
        ),
        hide_index=True,
        key="ab_reslug",
    )

try:
    catalogue, profile = load_catalogue(), load_profile()
except Exception as e:  # noqa: BLE001 - a malformed data file: say which, never a traceback
    st.error(f"The permission catalogue could not be loaded: {md_escape(e)}")
    st.stop()


def probe_text(p, scope=None, level: str = "") -> str:
    if p is not None:
        extra = [f"Stripe-Version {p.api_version}"] if p.api_version else []
        if p.provenance and (scope is None or p.provenance != scope.provenance):
            extra.append(p.provenance)
        return f"{p.method} {p.path}" + (f" ({', '.join(extra)})" if extra else "")
    if scope is not None and level in scope.unchecked_levels:
        return "not checkable from outside"
    return "—"


st.subheader("What is probed")
st.caption(
    f"{len(catalogue.scopes)} Stripe permissions in {len(catalogue.categories())} categories "
    f"(data/catalogue.toml), against the requirement profile “{md_escape(profile.name)}” (data/requirements.toml)."
)
counts = catalogue.provenance_counts()
st.markdown(
    "**Where the catalogue comes from:** "
    + ", ".join(f"{n} from {PROVENANCE[p]}" for p, n in counts.items())
    + ". Run `python -m core calibrate` against Pointai's own Stripe account after a Stripe API change, and "
    "monthly, to prove it (see the README); with a standard test key it also sets Stripe's own permission map "
    "beside the catalogue (agree / disagree / unresolved). The endpoint-to-permission source is Stripe's "
    "permission reference (docs.stripe.com/keys/permissions-reference)."
)
st.markdown(
    "**Connected accounts are not checked.** Stripe's key editor has a second column for Connect platforms: the "
    "key's permissions on connected accounts. Every probe is sent without a `Stripe-Account` header, so it tests "
    "the key's permissions on its own account only; the Connect rows say so in their notes."
)
st.dataframe(
    pd.DataFrame(
        {
            "Category": [s.category for s in catalogue.scopes],
            "Permission": [s.label for s in catalogue.scopes],
            "Scope": [f"rak_{s.scope}" for s in catalogue.scopes],
            "Stripe offers": [" / ".join(LEVEL[lv] for lv in s.levels) for s in catalogue.scopes],
            "Pointai requires": [LEVEL[profile.required(s)[0]] for s in catalogue.scopes],
            "Read probe": [probe_text(s.read, s, "read") for s in catalogue.scopes],
            "Write probe": [probe_text(s.write, s, "write") for s in catalogue.scopes],
            "Source": [s.provenance for s in catalogue.scopes],
            "Confidence": ["low" if s.low_confidence else "" for s in catalogue.scopes],
            "Note": [s.note or "" for s in catalogue.scopes],
        }
    ),
    hide_index=True,
    key="ab_catalogue",
)
unmapped = profile.unmapped()
if unmapped:
    st.markdown("**Guide items that are not a Stripe permission** (shown as *not applicable* in the grid)")
    st.dataframe(
        pd.DataFrame({"Guide item": [i.guide for i in unmapped], "Why": [i.note or "" for i in unmapped]}),
        hide_index=True,
        key="ab_unmapped",
    )
