"""Audit trail: who checked which tenant, viewed sample data or ran a sample transaction, when, and how it went."""
from __future__ import annotations

from dashboard.gate import require_access

require_access()  # first: nothing below renders or touches the database until an allowed person signs in

import logging
from datetime import datetime, time, timedelta, timezone

import pandas as pd
import streamlit as st

from core import store
from core.ui.audit import detail_sentence
from core.ui.csv_safe import frame_csv
from core.ui.problems import database_problem
from core.ui.text import md_escape
from dashboard.widgets import session_service

log = logging.getLogger("keyhealth")
svc = session_service()
rt = svc.rt
ACTIONS = ["check", "sample_data", "sample_transaction", "key_source", "alert_ack", "tenant_expected_mode"]

st.title("Audit trail")
st.caption("Every check, sample-data view and sample transaction, newest first. Keys are never recorded.")

f1, f2, f3, f4 = st.columns([2, 2, 2, 2])
actions = f1.multiselect("Action", ACTIONS, key="au_action", placeholder="Any action")
who = f2.text_input("Who", key="au_who", help="Any part of the email, upper or lower case (\"ana\" finds Ana).")
tenant = f3.text_input("Tenant", key="au_tenant", help="Any part of the tenant's name, upper or lower case.")
today = datetime.now(timezone.utc).date()
period = f4.date_input("Between", value=(today - timedelta(days=30), today), key="au_period")

start, end = (period if isinstance(period, (tuple, list)) and len(period) == 2 else (today - timedelta(days=30), today))
try:
    entries = svc.store.list_audit(
        action=actions or None,
        who_contains=who.strip() or None,
        tenant_contains=tenant.strip() or None,
        since=datetime.combine(start, time.min, tzinfo=timezone.utc),
        until=datetime.combine(end + timedelta(days=1), time.min, tzinfo=timezone.utc),
        limit=5000
    )
except store.StoreInputError as e:
    st.error(md_escape(e))
    st.stop()
except store.DATABASE_ERRORS as e:
    st.error(database_problem(e, svc.rt.db, "The audit trail could not be read"))
    st.stop()

if not entries:
    st.info("No audit entries match these filters; widen the dates or clear a filter.")
    st.stop()

frame = pd.DataFrame(
    [
        {
            "When (UTC)": e["at"].strftime("%Y-%m-%d %H:%M:%S"),
            "Who": e["who"] or "anonymous",
            "Action": e["action"],
            "Tenant": e["tenant"] or "",
            "Outcome": e["outcome"],
            "Detail": detail_sentence(e["action"], e["outcome"], e["detail"]),
        }
        for e in entries
    ]
)
st.caption(f"{len(frame)} entries" + (" (the newest 5,000)" if len(frame) == 5000 else ""))
st.dataframe(frame, hide_index=True, width="stretch")
st.download_button(
    "Download audit CSV",
    frame_csv(frame).encode(),  # no cell starts a spreadsheet formula (core.ui.csv_safe)
    file_name=f"keyhealth-audit-{start}-{end}.csv",
    mime="text/csv",
    key="au_download",
)
