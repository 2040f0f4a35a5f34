"""Triage: every tenant's latest status, worst and stalest first; each tenant opens its page."""
from __future__ import annotations

from dashboard.gate import require_access

require_access()  # first: nothing below renders or touches the database until an allowed person signs in

import logging

import pandas as pd
import streamlit as st

from core import store
from core.engine.result import KEY_STATUSES
from core.ui.palette import status_css
from core.ui.problems import database_problem
from core.ui.text import md_escape
from dashboard.held_key import held_key_picker
from dashboard.widgets import session_service

log = logging.getLogger("keyhealth")
svc = session_service()
rt = svc.rt
QUICK_LINKS = 12
FLAG_WORDS = {  # triage column words for store.FLAGS
    "key_replaced": "key replaced",
    "mode_changed": "mode changed",
    "account_changed": "account changed",
    "mode_mismatch": "test key on live tenant",
    "rotation_due": "rotation due",
    "shared_key": "shared key",
}

st.title("Triage")
st.caption("Every tenant's latest check, worst status first, then the longest unchecked, one page at a time. "
    "Select a row to open the tenant.")

f1, f2, f3, f4 = st.columns([2, 1, 1, 2])
statuses = f1.multiselect("Status", KEY_STATUSES, key="tr_status", placeholder="Any status")
mode = f2.selectbox("Mode", ["any", "live", "test"], key="tr_mode")
stale = f3.number_input("Not checked for (days)", min_value=0, max_value=3650, value=0, step=1, key="tr_stale",
                        help="0 shows every tenant; 14 shows only tenants whose latest check is older than 14 days.")
search = f4.text_input("Search", key="tr_search", placeholder="Tenant, account, contact or masked key")
g1, g2 = st.columns([5, 1])
signals = g1.multiselect(
    "Key signals", list(store.FLAGS), key="tr_flags", placeholder="Any key",
    format_func=lambda f: FLAG_WORDS.get(f, f),
    help="Only tenants whose current key shows every chosen signal: replaced in the last 7 days, mode or account "
         "changed with the replacement, a test key on a live tenant, due for rotation, or recorded for another tenant.",
)
size = g2.selectbox("Rows per page", store.PAGE_SIZES, index=store.PAGE_SIZES.index(50), key="tr_size")

wanted = (tuple(statuses), mode, stale, search, tuple(signals), size)
if st.session_state.get("tr_filters") != wanted:  # another filter or page size: back to the first page
    st.session_state["tr_filters"] = wanted
    st.session_state["tr_page"] = 1
try:
    found = svc.store.latest_page(
        status=statuses or None,
        mode=None if mode == "any" else mode,
        stale_days=float(stale) if stale else None,
        search=search or None,
        flag=signals or None,
        rotation_days=rt.rotation_days,
        page=int(st.session_state.get("tr_page", 1)),
        page_size=size,
    )
    counts = svc.store.status_counts()
except store.StoreInputError as e:
    st.error(md_escape(e))
    st.stop()
except store.DATABASE_ERRORS as e:
    st.error(database_problem(e, svc.rt.db, "The tenants could not be read"))
    st.stop()
rows = found["rows"]
st.session_state["tr_page"] = found["page"]  # clamped: when the list shrank under this page, its last page

cols = st.columns(len(KEY_STATUSES))
for col, s in zip(cols, KEY_STATUSES, strict=True):
    col.metric(s, counts.get(s, 0), help=f"Tenants whose latest check is {s}")

try:
    alerts = svc.store.open_alerts(limit=20)
except Exception as e:  # noqa: BLE001 - the alerts are extra: triage stands without them
    log.error("alerts query failed: %s", type(e).__name__)
    alerts = []
if alerts:
    with st.expander(f"Open alerts ({len(alerts)}{'+' if len(alerts) == 20 else ''})", expanded=True):
        for a in alerts:
            a1, a2 = st.columns([6, 1])
            delivery = {"delivered": "sent to the webhook", "pending": "not sent yet",
                        "failed": f"delivery failed after {a['attempts']} attempts: {a['last_error'] or ''}"}
            said = delivery.get(a["delivery"], a["delivery"])
            a1.text(f"{a['created_at']:%Y-%m-%d %H:%M} UTC  {a['text']}\n({said})")
            if a2.button("Acknowledge", key=f"tr_ack_{a['id']}"):
                svc.ack_alert(a["id"])
                st.rerun()

if not rows:
    if any((statuses, mode != "any", stale, search, signals)):
        st.info("No tenant matches these filters; clear a filter to see more.")
    else:
        st.info("No tenant has been checked yet: check a key on the *Check a key* page and it shows up here.")
    st.stop()

demo_q = "&demo=1" if rt.demo else ""
frame = pd.DataFrame(
    {
        "Tenant": [r["tenant"] for r in rows],
        "Status": [r["status"] for r in rows],
        "Score": [r["score"] for r in rows],
        "Mode": [r["key_mode"] or "" for r in rows],
        "Key signals": [", ".join(w for f, w in FLAG_WORDS.items() if r.get(f)) for r in rows],
        "Key age (days)": [r.get("key_age_days") for r in rows],
        "Last checked": [r["checked_at"] for r in rows],
        "Days ago": [int(r["age_days"]) for r in rows],  # whole days, as everywhere
        "Missing": [r["n_missing"] for r in rows],
        "Excess": [r["n_excess"] for r in rows],
        "Unknown": [r["n_unknown"] for r in rows],
        "Key": [r["key_masked"] for r in rows],
        "Account": [r["account"] or "" for r in rows],
        "Problem": [r["problem"] or "" for r in rows],
        "Open": [f"tenant-history?tenant={r['slug']}{demo_q}" for r in rows],
    }
)
total = found["total"]
st.caption(f"Rows {found['first']:,}–{found['last']:,} of {total:,} tenant{'s' if total != 1 else ''}"
           if found["pages"] > 1 else f"{total:,} tenant{'s' if total != 1 else ''}")
gen = st.session_state.get("tr_table_gen", 0)
event = st.dataframe(
    frame.style.map(status_css, subset=["Status"]),
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key=f"tr_table_{gen}",
    height=min(38 + 35 * len(frame), 640),
    column_config={
        "Status": st.column_config.TextColumn("Status", width=96),
        "Score": st.column_config.ProgressColumn("Score", min_value=0, max_value=100, format="%d"),
        "Last checked": st.column_config.DatetimeColumn("Last checked (UTC)", format="YYYY-MM-DD HH:mm",
                                                        timezone="UTC"),
        "Days ago": st.column_config.NumberColumn("Days ago", format="%d", help="Whole days since the last check."),
        "Key signals": st.column_config.TextColumn(
            "Key signals", width="medium",
            help="Key replaced (last 7 days), mode or account changed with it, a test key on a live tenant, rotation "
                 "due, the same key on another tenant."),
        "Key age (days)": st.column_config.NumberColumn("Key age (days)", format="%d",
                                                        help="Days since Key Health first saw the current key."),
        "Problem": st.column_config.TextColumn("Problem", width="medium"),
        "Open": st.column_config.LinkColumn("Open", display_text="history ↗", help="Open in a new tab"),
    },
)
picked = event.selection.rows if event is not None else []
if picked:
    st.session_state["tr_table_gen"] = gen + 1  # a fresh table next time, so coming back does not re-open
    slug = rows[picked[0]]["slug"]
    st.switch_page("app_pages/tenant.py", query_params={"tenant": slug})


def _turn(step: int) -> None:
    st.session_state["tr_page"] = int(st.session_state.get("tr_page", 1)) + step


p1, p2, p3, _ = st.columns([1, 1, 1, 3], vertical_alignment="bottom")
p1.button("Previous", key="tr_prev", on_click=_turn, args=(-1,), disabled=found["page"] <= 1,
          width="stretch")
p2.number_input(f"Page (of {found['pages']:,})", min_value=1, max_value=found["pages"], step=1, key="tr_page")
p3.button("Next", key="tr_next", on_click=_turn, args=(1,), disabled=found["page"] >= found["pages"],
          width="stretch")

st.markdown("**Open a tenant**")
link_cols = st.columns(3)
for i, r in enumerate(rows[:QUICK_LINKS]):
    link_cols[i % 3].page_link(
        "app_pages/tenant.py", label=f"{md_escape(r['tenant'])} ({r['status']})", query_params={"tenant": r["slug"]}
    )
if total > QUICK_LINKS:
    st.caption(f"The {QUICK_LINKS} most urgent on this page are linked here; search, turn the page or select a "
               "row for the others.")

with st.expander("Check the key Pointai holds", expanded=False):  # only with a key source; the key is never shown
    held_key_picker(svc, [r["tenant"] for r in rows], key="tr_held_key")
