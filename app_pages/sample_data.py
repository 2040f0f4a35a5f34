"""Sample data: what the session's key may read, masked, with charts and CSV downloads (layout; core does the work)."""
from __future__ import annotations

from dashboard.gate import require_access

require_access()  # first: nothing below renders or touches the database until an allowed person signs in

import pandas as pd
import streamlit as st

from core.features.sample import (
    DEFAULT_MAX_ROWS,
    DEFAULT_WINDOW_DAYS,
    MAX_ROWS_CAP,
    MAX_WINDOW_DAYS,
    SampleData,
)
from core.store import TenantName
from core.ui.charts import payments
from core.ui.csv_safe import dataset_csv
from core.ui.money import display_frame
from core.ui.palette import SAMPLE_STATE_ICON
from core.ui.text import md_escape
from dashboard import session as state
from dashboard.widgets import key_line, session_key_or_paste, session_service

STATE_ICONS = SAMPLE_STATE_ICON
RESULT = "kh_sample_result"  # masked SampleData only; never the key

st.title("Sample data")
st.caption(
    "Reads a small, recent sample with the tenant's key: only GET requests, paced, and personal data "
    "(emails, names, phone numbers, addresses) masked before it is shown. Card brand and last 4 stay."
)

svc = session_service()
rt = svc.rt


key = session_key_or_paste("kh_sample")
tenant = TenantName.optional(st.session_state.get(state.TENANT) or None)  # a name the session kept

key_line(key.masked, key.mode, tenant)

c1, c2, c3 = st.columns([1, 1, 1])
days = c1.number_input("Days to look back", min_value=1, max_value=MAX_WINDOW_DAYS, value=DEFAULT_WINDOW_DAYS, step=1,
                       key="kh_sample_days", help="Charges, balance transactions, invoices and checkout sessions "
                       "created in this window.")
rows = c2.number_input("Rows per dataset", min_value=1, max_value=MAX_ROWS_CAP, value=DEFAULT_MAX_ROWS, step=10,
                       key="kh_sample_rows")
c3.write("")
fetch = c3.button("Fetch sample data", key="kh_sample_fetch", type="primary")

if fetch:
    bar = st.progress(0.0, text="Reading sample data…")
    fresh = svc.sample(
        key, tenant, window_days=int(days), max_rows=int(rows),
        on_progress=lambda name, done, total: bar.progress(done / total, text=f"Read {done} of {total} datasets"),
    )
    bar.empty()
    st.session_state[RESULT] = fresh
    if fresh.audit_problem:  # the sample is still shown; the audit entry is what failed
        st.warning(md_escape(fresh.audit_problem))

data: SampleData | None = st.session_state.get(RESULT)
if data is not None and data.key.fingerprint != key.info.fingerprint:
    data = None  # a sample read with another key: not shown for this one
if data is None:
    st.stop()

st.caption(
    f"{data.requests} requests in {data.elapsed_s:.2f} s · last {data.window_days} days · at most "
    f"{data.max_rows} rows per dataset · read {data.fetched_at:%Y-%m-%d %H:%M} UTC"
)
if data.problem:
    st.error(md_escape(data.problem))

summary = pd.DataFrame(
    [
        {
            "dataset": d.label,
            "state": f"{STATE_ICONS.get(d.state, '')} {d.state}",
            "rows": d.count,
            "permission needed": d.permission or "",
            "reason": d.reason or ("row cap reached" if d.truncated else ""),
        }
        for d in data.datasets
    ]
)
if not summary.empty:
    st.subheader("Datasets")
    st.dataframe(summary, hide_index=True, width="stretch")

charges = data.get("charges")
balance = data.get("balance")
if charges is not None or balance is not None:
    st.subheader("Charts")
    why_no_charges = (charges.reason or "Charges were not read.") if charges is not None and charges.state in (
        "not_permitted", "failed") else "No charges in the time window."
    ch = data.frame("charges")
    left, right = st.columns(2)
    left.plotly_chart(payments.daily_volume(ch, empty_message=why_no_charges), key="kh_chart_volume")
    right.plotly_chart(payments.daily_count(ch, empty_message=why_no_charges), key="kh_chart_count")
    left, right = st.columns(2)
    left.plotly_chart(payments.success_rate(ch, empty_message=why_no_charges), key="kh_chart_success")
    why_no_balance = (balance.reason or "The balance was not read.") if balance is not None and balance.state in (
        "not_permitted", "failed") else "No balance to show."
    right.plotly_chart(payments.balance_by_currency(data.frame("balance"), empty_message=why_no_balance),
                       key="kh_chart_balance")

for d in data.datasets:
    st.subheader(d.label)
    if d.state == "loaded":
        note = " (row cap reached; more exist)" if d.truncated else ""
        st.caption(f"{STATE_ICONS['loaded']} loaded: {d.count} rows{note}")
        st.dataframe(display_frame(d.name, d.frame), hide_index=True, width="stretch")
        st.download_button(f"Download {d.label} CSV", data=dataset_csv(d), file_name=f"{d.name}.csv", mime="text/csv",
                           key=f"kh_sample_csv_{d.name}")
    elif d.state == "empty":
        st.info(f"{STATE_ICONS['empty']} empty: the key may read {d.label.lower()}, but there are none in the window.")
    elif d.state == "not_permitted":
        st.warning(f"{STATE_ICONS['not_permitted']} not permitted: {md_escape(d.reason)} Needs "
            f"{md_escape(d.permission)}.")
    else:
        st.error(f"{STATE_ICONS['failed']} failed: {md_escape(d.reason)}")
