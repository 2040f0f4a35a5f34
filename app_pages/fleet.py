"""Fleet health: status mix over time, the permissions most often wrong, checks per day, scores."""
from __future__ import annotations

from dashboard.gate import require_access

require_access()  # first: nothing below renders or touches the database until an allowed person signs in

import logging
from datetime import date, datetime, timedelta, timezone

import streamlit as st

from core import store
from core.engine.result import KEY_STATUSES
from core.ui.charts import STACK_ORDER
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

TRIAGE = "app_pages/triage.py"


GEN = st.session_state.get("fl_chart_gen", 0)  # fresh charts after a click, so coming back does not re-open


def open_triage(params: dict[str, str]) -> None:
    """Triage, filtered by `params` (its URL view: core/ui/triage.py)."""
    st.session_state["fl_chart_gen"] = GEN + 1
    st.switch_page(TRIAGE, query_params=params)


def selected_points(chart_key: str) -> list[dict]:
    """The points selected on a chart (a click on a bar), or []."""
    event = st.session_state.get(f"{chart_key}_{GEN}")
    try:
        return list(event["selection"]["points"]) if event else []
    except (KeyError, TypeError):
        return []


total = sum(counts.values())
cols = st.columns(len(KEY_STATUSES) + 1)
cols[0].metric("tenants checked", total)
cols[0].page_link(TRIAGE, label="Open in Triage", query_params={})
for col, s in zip(cols[1:], KEY_STATUSES, strict=True):
    col.metric(s, counts.get(s, 0), help=f"Tenants whose latest check is {s}")
    col.page_link(TRIAGE, label=f"{s} in Triage", query_params={"status": s})

st.subheader("Keys")
k1, k2, k3, k4 = st.columns(4)
k1.metric("key replaced this week", replaced_week, help="Tenants whose key was replaced in the last 7 days.")
k2.metric("mode or account changed", lifecycle["mode_or_account_changed"],
          help="Tenants whose current key is in another mode (live ↔ test) or another Stripe account than the key "
              "before.")
k3.metric("due for rotation", lifecycle["rotation_due"],
          help=f"Tenants whose current key was first seen {rt.rotation_days} days ago or more.")
k1.page_link(TRIAGE, label="Open in Triage", query_params={"flags": "key_replaced"})
k2.page_link(TRIAGE, label="mode changed", query_params={"flags": "mode_changed"})
k2.page_link(TRIAGE, label="another Stripe account", query_params={"flags": "account_changed"})
k3.page_link(TRIAGE, label="Open in Triage", query_params={"flags": "rotation_due"})
k4.metric("checks unreachable", f"{100 * unreachable['share']:.1f}%",
          help=f"{unreachable['unreachable']} of {unreachable['checks']} checks in the date range got no answer from "
               "Stripe at all: our network or an outage, not the tenants' keys.")

# --- bars open Triage filtered to them (a click selects the bar); the links below each chart do the same -------
for point in selected_points("fl_mix"):  # a status of the mix: Triage shows the tenants in that status now
    stack = list(STACK_ORDER)
    if 0 <= int(point.get("curve_number", -1)) < len(stack):
        open_triage({"status": stack[int(point["curve_number"])]})
for point in selected_points("fl_problems"):
    scope = str(point.get("customdata") or "").removeprefix("rak_")
    kind = "excess" if int(point.get("curve_number", 0)) == 1 else "missing"
    if scope:
        open_triage({kind: scope})
LIFECYCLE_FLAGS = {"key replaced this week": "key_replaced", "mode or account changed": "mode_changed",
                   "test key on a live tenant": "mode_mismatch", "key due for rotation": "rotation_due",
                   "key shared with another tenant": "shared_key"}
for point in selected_points("fl_lifecycle"):
    flag = LIFECYCLE_FLAGS.get(str(point.get("y")))
    if flag:
        open_triage({"flags": flag})

st.plotly_chart(charts.status_mix(mix, share=share), config=PLOTLY_CONFIG, key=f"fl_mix_{GEN}", on_select="rerun",
                selection_mode="points")
st.caption("Click a status in the mix to open Triage with the tenants in that status now.")
a, b = st.columns(2)
a.plotly_chart(charts.problem_scopes(missing, excess), config=PLOTLY_CONFIG, key=f"fl_problems_{GEN}",
               on_select="rerun", selection_mode="points")
with a.expander("Open the tenants behind a bar"):
    for kind, rows_ in (("missing", missing), ("excess", excess)):
        for d in rows_:
            st.page_link(TRIAGE, query_params={kind: d["scope"]},
                         label=f"{md_escape(d['category'])} → {md_escape(d['resource'])}: {d['tenants']} {kind}")
b.plotly_chart(charts.score_distribution(scores), config=PLOTLY_CONFIG, key="fl_scores")
b.caption("Scores have no Triage filter: open a status above instead (the score follows the status).")
st.plotly_chart(charts.checks_per_day(per_day), config=PLOTLY_CONFIG, key="fl_per_day")
u, v = st.columns(2)
u.plotly_chart(charts.unreachable_share(per_day), config=PLOTLY_CONFIG, key="fl_unreachable")
v.plotly_chart(charts.lifecycle_counts(lifecycle, replaced_week), config=PLOTLY_CONFIG, key=f"fl_lifecycle_{GEN}",
               on_select="rerun", selection_mode="points")
with v:
    links = st.columns(3)
    for i, (label, flag) in enumerate((("test key on a live tenant", "mode_mismatch"), ("shared key", "shared_key"),
                                       ("account changed", "account_changed"))):
        links[i].page_link(TRIAGE, label=label, query_params={"flags": flag})
st.caption("Status mix, checks per day and unreachable checks follow the date range; the permissions, scores and key "
           "signals are the tenants' latest checks. Unreachable checks say nothing about a key: they are out of the "
           "status mix and the scores. Figures and bars open Triage filtered to them.")

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
