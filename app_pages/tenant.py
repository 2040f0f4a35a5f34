"""One tenant: status, its key (replaced, mode/account changed, age, shared, expected mode), charts, drift, history."""
from __future__ import annotations

from dashboard.gate import require_access

require_access()  # first: nothing below renders or touches the database until an allowed person signs in

import logging
from datetime import datetime, timezone
from typing import NoReturn

import streamlit as st

from core import store
from core.engine.catalogue import load_catalogue, load_profile
from core.ui import tenant as tables
from core.ui.charts import tenant as charts
from core.ui.palette import STATUS_BANNER
from core.ui.problems import database_problem
from core.ui.text import md_code, md_escape
from dashboard import session as state
from dashboard.held_key import held_key_button
from dashboard.widgets import session_service

log = logging.getLogger("keyhealth")
svc = session_service()
rt = svc.rt
# one colour per status (core/ui/palette)
BANNER = {status: getattr(st, kind) for status, kind in STATUS_BANNER.items()}
PLOTLY_CONFIG = {"displayModeBar": False}
UTC_COLUMN = st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm", timezone="UTC")


def pick_tenant(title: bool = True) -> NoReturn:
    if title:
        st.title("Tenant")
    try:
        tenants = svc.store.tenant_names()
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
if not slug and st.session_state.get(state.TENANT):
    slug = store.slugify(st.session_state[state.TENANT])
if not slug:
    pick_tenant()
assert slug  # pick_tenant() stops the page without one

try:
    tenant = svc.store.get_tenant(slug)
    history = svc.store.tenant_history(slug, limit=1000) if tenant else []
    changes = svc.store.drift(slug, limit=500) if tenant else []
    new_key_changes = svc.store.drift(slug, new_key=True, limit=500) if tenant else []
    events = svc.store.key_events(slug) if tenant else []
    shared = svc.store.shared_keys(slug) if tenant else []
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
assert tenant is not None  # pick_tenant() stops the page

st.title(md_escape(tenant["name"]))
facts = ["Tenant", f"account {md_code(tenant['account'])}" if tenant.get("account") else "account not seen yet"]
if tenant.get("contact"):
    facts.append(f"contact {md_code(tenant['contact'])}")  # a code span: no mailto link, copies cleanly
facts.append(f"{len(history)} check{'s' if len(history) != 1 else ''}")
st.caption(" · ".join(facts))

live = st.toggle(
    "In production (expects a live key)", value=tenant.get("expected_mode") == "live", key=f"tn_live_{tenant['slug']}",
    help="A tenant in production must use a live-mode key: a test key is then flagged here, in Triage and in the "
        "check.",
)
if live != (tenant.get("expected_mode") == "live"):
    try:
        tenant = svc.set_expected_mode(tenant["id"], "live" if live else None)
    except Exception as e:  # noqa: BLE001 - any database failure: one sentence, never a traceback
        log.error("updating the tenant failed: %s", type(e).__name__)
        st.error("The tenant could not be updated; the database did not answer.")

if st.button("Check again", type="primary", help="Open *Check a key* with this tenant chosen; paste its key there."):
    st.session_state[state.TENANT] = tenant["name"]
    st.session_state[state.TENANT_PICK] = tenant["name"]
    st.switch_page("app_pages/check.py", query_params={"tenant": tenant["slug"]})
held_key_button(svc, tenant["name"], key="tn_held_key")  # only with a key source; the key is never shown

if not history:
    st.info("This tenant has not been checked yet.")
    st.stop()

if history[0]["status"] == "unreachable":
    st.warning(
        f"The last attempt ({history[0]['checked_at']:%Y-%m-%d %H:%M} UTC) could not reach Stripe: a problem on our "
        "side, which says nothing about the key. The status below is from the check before it."
    )
key_checks = [h for h in history if h["status"] != "unreachable"]
if not key_checks:
    st.info("Stripe has not answered any check of this tenant yet (every attempt was unreachable, our side).")
    st.stop()
latest = key_checks[0]
BANNER.get(latest["status"], st.info)(
    f"**{md_escape(latest['status'].upper())}** · score **{latest['score']}/100** · key "
    f"{md_code(latest['key_masked'])} · "
    + (f"Dashboard id {md_code(latest['key_dashboard_id'])} · " if latest.get("key_dashboard_id") else "") +
    f"{md_escape(latest['key_mode'] or '?')} mode · checked {latest['checked_at']:%Y-%m-%d %H:%M} UTC "
    f"({md_escape(latest['source'])})"
)
if latest.get("problem"):
    st.markdown(f"**Problem:** {md_escape(latest['problem'])}")
streak = tables.streak_line(tenant, latest["status"])
if streak:
    st.markdown(f"**{streak}**")
elif tenant.get("last_healthy_at") is not None:
    st.caption(f"Healthy; last healthy check {tenant['last_healthy_at']:%Y-%m-%d %H:%M} UTC.")

# --- why, without the key: the stored rows of the latest check, and the message for the tenant rebuilt from them
current_fp = latest.get("key_fingerprint")
first = None
try:
    stored = svc.store.get_check(latest["check_id"])
    first = svc.store.key_first_seen(current_fp) if current_fp else None
except store.DATABASE_ERRORS as e:
    st.error(database_problem(e, svc.rt.db, "The latest check's permissions could not be read"))
    stored = None
age = max(0, (datetime.now(timezone.utc) - first).days) if first is not None else None
rebuilt = None
if stored is not None:
    rebuilt = tables.result_from_stored(stored, tenant, age_days=age, rotation_days=rt.rotation_days)
if rebuilt is not None and (latest["status"] != "healthy" or (rebuilt.lifecycle and rebuilt.lifecycle.mode_mismatch)):
    profile, catalogue = load_profile(), load_catalogue()
    why = tables.why_frame(rebuilt, profile)
    st.subheader("Why")
    if not why.empty:
        st.caption(f"What the latest check ({latest['checked_at']:%Y-%m-%d %H:%M} UTC) found, permission by "
                   "permission, and what to change in the Stripe Dashboard. Read from the stored check: no key needed.")
        st.dataframe(why, hide_index=True, key="tn_why",
                     column_config={"What to change": st.column_config.TextColumn(width="large")})
    message = tables.message_for(rebuilt, profile, catalogue)
    if message:
        st.markdown("**Message for the tenant** (copy it with the button at its top right)")
        st.code(message, language=None, wrap_lines=True)

# --- the key: replaced, mode/account changed, expected mode, age, shared ----------------------------------
last_event = events[0] if events else None
if last_event is not None and last_event["new_fingerprint"] == current_fp:
    flags = [w for w, on in (("mode changed", last_event["mode_changed"]),
                             ("account changed", last_event["account_changed"])) if on]
    (st.warning if flags else st.info)(
        f"**Key replaced** on {last_event['at']:%Y-%m-%d}: {md_code(last_event['old_masked'] or '?')} → "
        f"{md_code(last_event['new_masked'])}" + (f" · **{', '.join(flags)}**" if flags else "")
    )
    if last_event["mode_changed"]:
        st.warning(f"Mode changed: the previous key was {md_escape(last_event['old_mode'])} mode, this one is "
                   f"{md_escape(last_event['new_mode'])} mode.")
    if last_event["account_changed"]:
        st.warning(f"Account changed: the new key belongs to {md_code(last_event['new_account'])}, the tenant's "
            "previous checks "
                   f"saw {md_code(last_event['old_account'])}. This is the most likely cause of \"it worked "
                   "yesterday\".")
if tenant.get("expected_mode") == "live" and latest.get("key_mode") == "test":
    st.error("This tenant is live (in production) but its current key is a test-mode key: Pointai cannot take real "
             "payments with it; ask the tenant for their live restricted key (rk_live_…).")
for sk in shared:
    st.warning(
        f"The key {md_code(sk['key_masked'])} is also recorded for {', '.join(md_escape(n) for n in sk['others'])}: a "
        "key "
        "pasted into the wrong tenant, or tenants sharing one Stripe account."
    )
if current_fp:
    if first is not None and age is not None:
        due = age >= rt.rotation_days and latest["status"] != "invalid"
        st.caption(
            f"This key has been in use for {age} day{'s' if age != 1 else ''} (first seen {first:%Y-%m-%d})"
            + (f": rotation is due (after {rt.rotation_days} days); it still works." if due else ".")
        )

c1, c2 = st.columns(2)
c1.plotly_chart(charts.score_over_time(history, events), config=PLOTLY_CONFIG, key="tn_score")
c2.plotly_chart(charts.status_timeline(history, events), config=PLOTLY_CONFIG, key="tn_timeline")

st.subheader("Drift")
if changes:
    st.caption("Which permissions changed between consecutive checks of the same key, newest first.")
    st.dataframe(
        tables.drift_frame(changes),
        hide_index=True,
        column_config={"When": UTC_COLUMN},
        key="tn_drift",
    )
else:
    st.caption("No permission changed between checks of the same key.")

if new_key_changes:
    st.subheader("Changes with the new key")
    st.caption("Not drift: a new key was pasted, and it has different permissions from the key before it.")
    st.dataframe(
        tables.drift_frame(new_key_changes, keys=True),
        hide_index=True,
        column_config={"When": UTC_COLUMN},
        key="tn_new_key",
    )

timeline = tables.key_timeline_frame(events, history)
if not timeline.empty:
    st.subheader("Key timeline")
    st.dataframe(
        timeline,
        hide_index=True,
        column_config={"When": UTC_COLUMN},
        key="tn_key_timeline",
    )

st.subheader("History")
st.dataframe(
    tables.history_frame(history),
    hide_index=True,
    column_config={
        "Checked": st.column_config.DatetimeColumn("Checked (UTC)", format="YYYY-MM-DD HH:mm", timezone="UTC"),
        "Score": st.column_config.ProgressColumn(min_value=0, max_value=100, format="%d"),
        "Fingerprint": st.column_config.TextColumn(help="Same fingerprint = same key; it changes when a new key is "
            "pasted."),
    },
    key="tn_history",
)
