"""Fleet health: status mix over time, the permissions most often wrong, checks per day, scores."""
from __future__ import annotations

from dashboard.gate import require_access

require_access()  # first: nothing below renders or touches the database until an allowed person signs in

import logging
from datetime import date, datetime, timedelta, timezone

import streamlit as st

from core import store
from core.engine.result import KEY_STATUSES
from core.ui.charts import fleet as charts
from core.ui.csv_safe import safe_cell
from core.ui.problems import database_problem
from core.ui.text import md_escape
from dashboard.widgets import session_service

log = logging.getLogger("keyhealth")
svc = session_service()
rt = svc.rt
PLOTLY_CONFIG = {"displayModeBar": False}
DEFAULT_DAYS = 42

st.title("Fleet health")
today = datetime.now(timezone.utc).date()
c1, c2 = st.columns([2, 1])
picked = c1.date_input(
    "Date range (UTC days, for the charts over time)",
    value=(today - timedelta(days=DEFAULT_DAYS), today),
    max_value=today,
    key="fl_range",
)
share = c2.toggle("Status mix as percentages", key="fl_share")
if isinstance(picked, (tuple, list)):
    start = picked[0] if len(picked) > 0 else None
    end = picked[1] if len(picked) > 1 else start
else:
    start = end = picked
if isinstance(start, date) and isinstance(end, date) and start > end:
    start, end = end, start

try:
    counts = svc.store.status_counts()
    mix = svc.store.status_mix_per_day(start, end)
    per_day = svc.store.checks_per_day(start, end)
    missing = svc.store.top_problem_scopes("missing", 10)
    excess = svc.store.top_problem_scopes("excess", 10)
    scores = svc.store.score_distribution(10)
    lifecycle = svc.store.lifecycle_counts(rotation_days=rt.rotation_days)
    replaced_week = svc.store.replaced_tenants(datetime.now(timezone.utc) - timedelta(days=7))
    unreachable = svc.store.unreachable_share(start, end)
except store.StoreInputError as e:
    st.error(md_escape(e))
    st.stop()
except store.DATABASE_ERRORS as e:
    st.error(database_problem(e, svc.rt.db, "The fleet figures could not be read"))
    st.stop()

total = sum(counts.values())
cols = st.columns(len(KEY_STATUSES) + 1)
cols[0].metric("tenants checked", total)
for col, s in zip(cols[1:], KEY_STATUSES, strict=True):
    col.metric(s, counts.get(s, 0), help=f"Tenants whose latest check is {s}")

st.subheader("Keys")
k1, k2, k3, k4 = st.columns(4)
k1.metric("key replaced this week", replaced_week, help="Tenants whose key was replaced in the last 7 days.")
k2.metric("mode or account changed", lifecycle["mode_or_account_changed"],
          help="Tenants whose current key is in another mode (live ↔ test) or another Stripe account than the key "
              "before.")
k3.metric("due for rotation", lifecycle["rotation_due"],
          help=f"Tenants whose current key was first seen {rt.rotation_days} days ago or more.")
k4.metric("checks unreachable", f"{100 * unreachable['share']:.1f}%",
          help=f"{unreachable['unreachable']} of {unreachable['checks']} checks in the date range got no answer from "
               "Stripe at all: our network or an outage, not the tenants' keys.")

st.plotly_chart(charts.status_mix(mix, share=share), config=PLOTLY_CONFIG, key="fl_mix")
a, b = st.columns(2)
a.plotly_chart(charts.problem_scopes(missing, excess), config=PLOTLY_CONFIG, key="fl_problems")
b.plotly_chart(charts.score_distribution(scores), config=PLOTLY_CONFIG, key="fl_scores")
st.plotly_chart(charts.checks_per_day(per_day), config=PLOTLY_CONFIG, key="fl_per_day")
u, v = st.columns(2)
u.plotly_chart(charts.unreachable_share(per_day), config=PLOTLY_CONFIG, key="fl_unreachable")
v.plotly_chart(charts.lifecycle_counts(lifecycle, replaced_week), config=PLOTLY_CONFIG, key="fl_lifecycle")
st.caption("Status mix, checks per day and unreachable checks follow the date range; the permissions, scores and key "
           "signals are the tenants' latest checks. Unreachable checks say nothing about a key: they are out of the "
           "status mix and the scores.")

st.subheader("Recent fleet runs")
try:
    runs = svc.store.list_runs(10)
except Exception as e:  # noqa: BLE001 - the runs table is extra: the page stands without it
    log.error("fleet runs query failed: %s", type(e).__name__)
    runs = []
if runs:
    st.dataframe(
        [{"Run": r["id"], "Name": safe_cell(r["name"] or ""), "Started": r["started_at"], "Finished": r["finished_at"],
          "Tenants": r["total"], "Recorded": r["recorded"], "Failed": r["failed"], "429s": r["rate_limited"],
          "Statuses": ", ".join(f"{k} {v}" for k, v in sorted(r["status_counts"].items())),
          "Started by": safe_cell(f"{r['started_by'] or ''} ({r['command'] or ''})")} for r in runs],
        hide_index=True, key="fl_runs",
    )
    st.caption("A run without a finish time is still running or was stopped; `python -m core recheck --resume` "
               "continues it.")
else:
    st.caption("No fleet run yet: `python -m core recheck --keys-from …` runs one (see the README for a schedule).")
