"""Triage: tenants by impact with a short problem each, what got worse overnight first, the view in the URL."""
from __future__ import annotations

from dashboard.gate import require_access

require_access()  # first: nothing below renders or touches the database until an allowed person signs in

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import streamlit as st

from core import store
from core.engine.result import KEY_STATUSES
from core.store.triage import WORSE_HOURS
from core.ui import triage
from core.ui.palette import status_css
from core.ui.problems import database_problem
from core.ui.text import md_code, md_escape
from dashboard.held_key import held_key_picker
from dashboard.widgets import session_service

log = logging.getLogger("keyhealth")
svc = session_service()
rt = svc.rt
QUICK_LINKS = 12
WORSE_SHOWN = 8
# view key -> session-state key (the widgets' keys; missing/excess are set by links only)
KEYS = {"status": "tr_status", "mode": "tr_mode", "stale": "tr_stale", "search": "tr_search", "flags": "tr_flags",
        "worse": "tr_worse", "size": "tr_size", "page": "tr_page", "missing": "tr_missing", "excess": "tr_excess"}
FILTER_KEYS = ("status", "mode", "stale", "search", "flags", "worse", "size", "missing", "excess")


def _filters_of(view: dict[str, Any]) -> tuple:
    return tuple(tuple(v) if isinstance(v, list) else v for v in (view[k] for k in FILTER_KEYS))


# --- the URL sets the view when it changed from outside (a link, a new tab); otherwise the widgets do ----------
url_now = {p: st.query_params[p] for p in triage.PARAMS.values() if p in st.query_params}
if url_now != st.session_state.get("tr_url"):
    opened = triage.view_from_params(url_now)
    for k, sk in KEYS.items():
        st.session_state[sk] = opened[k]
    st.session_state["tr_filters"] = _filters_of(opened)
for k, sk in KEYS.items():
    st.session_state.setdefault(sk, triage.DEFAULT_VIEW[k])

st.title("Triage")
st.caption("Every tenant's latest check by impact: tenants in production or on a live key first, then the worst "
           "(a test key on a live tenant or another Stripe account counts as failing), then the newest breakage; "
           "healthy tenants last. Select a row to open the tenant.")

f1, f2, f3, f4 = st.columns([2, 1, 1, 2])
f1.multiselect("Status", KEY_STATUSES, key="tr_status", placeholder="Any status")
f2.selectbox("Mode", ["any", "live", "test"], key="tr_mode")
f3.number_input("Not checked for (days)", min_value=0, max_value=triage.STALE_MAX, step=1, key="tr_stale",
                help="0 shows every tenant; 14 shows only tenants whose latest check is older than 14 days.")
f4.text_input("Search", key="tr_search", placeholder="Tenant, account, contact or masked key",
              max_chars=triage.SEARCH_MAX)
g1, g2, g3 = st.columns([4, 2, 1], vertical_alignment="bottom")
g1.multiselect(
    "Key signals", list(store.FLAGS), key="tr_flags", placeholder="Any key",
    format_func=lambda f: triage.FLAG_WORDS.get(f, f),
    help="Only tenants whose current key shows every chosen signal: replaced in the last 7 days, mode or account "
         "changed with the replacement, a test key on a live tenant, due for rotation, or recorded for another tenant.",
)
g2.toggle(f"Got worse in the last {WORSE_HOURS} hours", key="tr_worse",
          help="Only tenants whose status got worse (or who failed their first check) in the last 24 hours: what "
               "changed overnight.")
g3.selectbox("Rows per page", store.PAGE_SIZES, key="tr_size")
for kind in ("missing", "excess"):
    scope = st.session_state.get(KEYS[kind])
    if scope:
        s1, s2 = st.columns([5, 1], vertical_alignment="center")
        s1.markdown(f"Only tenants whose latest check has {md_code('rak_' + scope)} **{kind}**.")
        if s2.button("Clear", key=f"tr_clear_{kind}"):
            st.session_state[KEYS[kind]] = None
            st.rerun()

view: dict[str, Any] = {k: st.session_state[sk] for k, sk in KEYS.items()}
if st.session_state.get("tr_filters") != _filters_of(view):  # another filter or page size: back to the first page
    st.session_state["tr_filters"] = _filters_of(view)
    st.session_state["tr_page"] = view["page"] = 1
now = datetime.now(timezone.utc)
worse_since = now - timedelta(hours=WORSE_HOURS)
filters = triage.store_filters(view)
try:
    counts = svc.store.latest_status_counts(
        **{k: v for k, v in filters.items() if k != "status"}, worse_since=worse_since if view["worse"] else None,
        rotation_days=rt.rotation_days, now=now,
    )
    found = svc.store.latest_page(  # the same filters: the total is the figures' sum over the statuses shown
        **filters, worse_since=worse_since if view["worse"] else None, rotation_days=rt.rotation_days,
        page=int(view["page"]), page_size=int(view["size"]), now=now,
        total=sum(counts.get(s_, 0) for s_ in (view["status"] or KEY_STATUSES)),
    )
    worse = None
    if not triage.is_filtered(view):  # the landing view: what got worse overnight comes first
        worse = svc.store.latest_page(worse_since=worse_since, rotation_days=rt.rotation_days, page_size=WORSE_SHOWN,
                                      now=now)
except store.StoreInputError as e:
    st.error(md_escape(e))
    st.stop()
except store.DATABASE_ERRORS as e:
    st.error(database_problem(e, svc.rt.db, "The tenants could not be read"))
    st.stop()
rows = found["rows"]
st.session_state["tr_page"] = view["page"] = found["page"]  # clamped: when the list shrank, its last page

# --- the view goes into the URL (only what differs from the default), so a link reopens it --------------------
want = triage.params_from_view(view)
for p in triage.PARAMS.values():
    if p in want:
        if st.query_params.get(p) != want[p]:
            st.query_params[p] = want[p]
    elif p in st.query_params:
        del st.query_params[p]
st.session_state["tr_url"] = want

# --- what got worse in the last 24 hours: first, when there is any ------------------------------------------
if worse is not None and worse["total"]:
    st.subheader(f"Got worse in the last {WORSE_HOURS} hours ({worse['total']:,})")
    for r in worse["rows"]:
        problem = triage.problem_text(r)
        st.page_link(
            "app_pages/tenant.py", query_params={"tenant": r["slug"]},
            label=f"{md_escape(r['tenant'])}: {r['status']}" + (f" · {md_escape(problem)}" if problem else ""),
        )
    if worse["total"] > len(worse["rows"]):
        st.caption(f"The {len(worse['rows'])} with the most impact are listed.")
    st.page_link("app_pages/triage.py", label=f"Show only these {worse['total']:,} tenants",
                 query_params={"worse": "1", **({"demo": "1"} if rt.demo else {})})
    st.divider()

filtered = triage.is_filtered(view)
cols = st.columns(len(KEY_STATUSES))
for col, s in zip(cols, KEY_STATUSES, strict=True):
    col.metric(s, counts.get(s, 0), help=f"Tenants whose latest check is {s}"
               + (" (under the filters above, the Status filter aside)" if filtered else ""))
st.caption("The figures follow the filters above (all but Status)." if filtered else
           "The figures count every tenant (no filter is set).")

try:
    alerts = svc.store.open_alerts(limit=20)
except Exception as e:  # noqa: BLE001 - the alerts are extra: triage stands without them
    log.error("alerts query failed: %s", type(e).__name__)
    alerts = []
if alerts:
    with st.expander(f"Open alerts ({len(alerts)}{'+' if len(alerts) == 20 else ''})", expanded=False):
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
    if filtered:
        st.info("No tenant matches these filters; clear a filter to see more.")
    else:
        st.info("No tenant has been checked yet: check a key on the *Check a key* page and it shows up here.")
    st.stop()

frame = triage.table(rows, demo=rt.demo)
total = found["total"]
st.caption(f"Rows {found['first']:,}–{found['last']:,} of {total:,} tenant{'s' if total != 1 else ''}"
           if found["pages"] > 1 else f"{total:,} tenant{'s' if total != 1 else ''}")
gen = st.session_state.get("tr_table_gen", 0)
w = triage.COLUMN_WIDTHS
event = st.dataframe(
    frame.style.map(status_css, subset=["Status"]),
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key=f"tr_table_{gen}",
    height=min(38 + 35 * len(frame), 640),
    column_config={
        "Tenant": st.column_config.TextColumn("Tenant", width=w["Tenant"]),
        "Status": st.column_config.TextColumn("Status", width=w["Status"]),
        "Problem": st.column_config.TextColumn(
            "Problem", width=w["Problem"],
            help="The key's signals (a test key on a live tenant, another Stripe account, …), then what the "
                 "latest check found: the missing permissions by their Stripe Dashboard names, or why Stripe refused "
                 "the key."),
        "Mode": st.column_config.TextColumn("Mode", width=w["Mode"], help="The key's mode; ★ the tenant is in "
                                            "production (expects a live key)."),
        "Broken since": st.column_config.DatetimeColumn(
            "Broken since", width=w["Broken since"], format="YYYY-MM-DD", timezone="UTC",
            help="The first check of the current run of checks that were not healthy (UTC day)."),
        "Last checked (UTC)": st.column_config.DatetimeColumn("Last checked (UTC)", width=w["Last checked (UTC)"],
                                                              format="MM-DD HH:mm", timezone="UTC"),
        "Open": st.column_config.LinkColumn("Open", width=w["Open"], display_text="↗",
                                            help="Open the tenant in a new tab"),
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
