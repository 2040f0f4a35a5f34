"""One tenant: current status, score over time, status timeline, drift, the history, and "check again"."""
from __future__ import annotations

from dashboard.gate import require_access

require_access()  # first: nothing below renders or touches the database until an allowed person signs in

import logging
from typing import NoReturn

import pandas as pd
import streamlit as st

from core import store
from core.ui.charts import tenant as charts
from core.ui.palette import LEVEL_LABEL, STATUS_BANNER
from core.ui.problems import database_problem
from core.ui.text import md_code, md_escape
from dashboard.widgets import session_service

log = logging.getLogger("keyhealth")
svc = session_service()
rt = svc.rt
# one colour per status (core/ui/palette)
BANNER = {status: getattr(st, kind) for status, kind in STATUS_BANNER.items()}
LEVEL = LEVEL_LABEL
PLOTLY_CONFIG = {"displayModeBar": False}


def pick_tenant(title: bool = True) -> NoReturn:
    if title:
        st.title("Tenant")
    try:
        tenants = svc.store.list_tenants()
    except store.DATABASE_ERRORS as e:
        st.error(database_problem(e, svc.rt.db, "The tenant list could not be read"))
        st.stop()
    if not tenants:
        st.info("No tenants yet: check a key on the *Check a key* page to add one.")
        st.stop()
    by_name = {t["name"]: t["slug"] for t in tenants}
    name = st.selectbox("Tenant", list(by_name), index=None, placeholder="Choose a tenant", key="tn_pick")
    if name:
        st.query_params["tenant"] = by_name[name]
        st.rerun()
    st.stop()


slug = st.query_params.get("tenant")
if not slug and st.session_state.get("kh_tenant"):
    slug = store.slugify(st.session_state["kh_tenant"])
if not slug:
    pick_tenant()

try:
    tenant = svc.store.get_tenant(slug)
    history = svc.store.tenant_history(slug, limit=1000) if tenant else []
    changes = svc.store.drift(slug, limit=500) if tenant else []
except store.StoreInputError as e:
    st.error(md_escape(e))
    st.stop()
except store.DATABASE_ERRORS as e:
    st.error(database_problem(e, svc.rt.db, "This tenant's history could not be read"))
    st.stop()

if tenant is None:
    st.title("Tenant")
    st.warning(f"There is no tenant “{md_escape(slug)}” here (in {rt.mode_label.lower()} mode); choose one below.")
    pick_tenant(title=False)

st.title(md_escape(tenant["name"]))
facts = ["Tenant", f"account {md_code(tenant['account'])}" if tenant.get("account") else "account not seen yet"]
if tenant.get("contact"):
    facts.append(f"contact {md_code(tenant['contact'])}")  # a code span: no mailto link, copies cleanly
facts.append(f"{len(history)} check{'s' if len(history) != 1 else ''}")
st.caption(" · ".join(facts))

if st.button("Check again", type="primary", help="Open *Check a key* with this tenant chosen; paste its key there."):
    st.session_state["kh_tenant"] = tenant["name"]
    st.session_state["kh_tenant_pick"] = tenant["name"]
    st.switch_page("pages/check.py", query_params={"tenant": tenant["slug"]})

if not history:
    st.info("This tenant has not been checked yet.")
    st.stop()

latest = history[0]
BANNER.get(latest["status"], st.info)(
    f"**{md_escape(latest['status'].upper())}** · score **{latest['score']}/100** · key "
    f"{md_code(latest['key_masked'])} · "
    f"{md_escape(latest['key_mode'] or '?')} mode · checked {latest['checked_at']:%Y-%m-%d %H:%M} UTC "
    f"({md_escape(latest['source'])})"
)
if latest.get("problem"):
    st.markdown(f"**Problem:** {md_escape(latest['problem'])}")

c1, c2 = st.columns(2)
c1.plotly_chart(charts.score_over_time(history), config=PLOTLY_CONFIG, key="tn_score")
c2.plotly_chart(charts.status_timeline(history), config=PLOTLY_CONFIG, key="tn_timeline")

st.subheader("Drift")
if changes:
    st.caption("Which permissions changed between consecutive checks, newest first.")
    st.dataframe(
        pd.DataFrame(
            {
                "When": [d["at"] for d in changes],
                "Permission": [f"{d['category']} → {d['resource']}" for d in changes],
                "Scope": [f"rak_{d['scope']}" for d in changes],
                "Granted": [
                    f"{LEVEL.get(d['from_granted'], d['from_granted'])} → {LEVEL.get(d['to_granted'], d['to_granted'])}"
                    for d in changes
                ],
                "Verdict": [f"{d['from_verdict']} → {d['to_verdict']}" for d in changes],
            }
        ),
        hide_index=True,
        column_config={"When": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm", timezone="UTC")},
        key="tn_drift",
    )
else:
    st.caption("No permission changed between this tenant's checks.")

st.subheader("History")
st.dataframe(
    pd.DataFrame(
        {
            "Checked": [h["checked_at"] for h in history],
            "Status": [h["status"] for h in history],
            "Score": [h["score"] for h in history],
            "Missing": [h["n_missing"] for h in history],
            "Excess": [h["n_excess"] for h in history],
            "Unknown": [h["n_unknown"] for h in history],
            "Key": [h["key_masked"] for h in history],
            "Fingerprint": [(h["key_fingerprint"] or "")[:11] for h in history],
            "Mode": [h["key_mode"] or "" for h in history],
            "Source": [h["source"] for h in history],
            "By": [h["checked_by"] or "" for h in history],
            "Problem": [h["problem"] or "" for h in history],
        }
    ),
    hide_index=True,
    column_config={
        "Checked": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm", timezone="UTC"),
        "Score": st.column_config.ProgressColumn(min_value=0, max_value=100, format="%d"),
        "Fingerprint": st.column_config.TextColumn(help="Same fingerprint = same key; it changes when a new key is "
            "pasted."),
    },
    key="tn_history",
)
