"""Check a key: pick the tenant, paste the key, watch the sweep, read the grid and what to tell the tenant."""
from __future__ import annotations

from dashboard.gate import require_access

require_access()  # first: nothing below renders or touches the database until an allowed person signs in

import logging
from collections import Counter

import pandas as pd
import streamlit as st

from core import store
from core.engine.check import unknown_scopes
from core.engine.keys import intake
from core.ui.grid import PROBLEMS, counts_line, download_name, grid_csv, grid_json, styled_grid
from core.ui.palette import STATUS_BANNER, VERDICT_ICON
from core.ui.problems import database_problem
from core.ui.text import md_code, md_escape
from dashboard import session as state
from dashboard.widgets import session_service

log = logging.getLogger("keyhealth")
svc = session_service()
rt = svc.rt
# one colour per status (core/ui/palette)
BANNER = {status: getattr(st, kind) for status, kind in STATUS_BANNER.items()}
ICON = VERDICT_ICON


def forget_key() -> None:
    st.session_state.pop(state.KEY, None)
    st.session_state[state.KEY_INPUT] = ""
    st.session_state[state.FORGOTTEN] = True


def is_demo_key(raw: str) -> bool:
    try:
        from sandbox import DEMO_KEYS

        return any(raw.strip() == dk.key for dk in DEMO_KEYS.values())
    except Exception:  # noqa: BLE001 - only a hint for the demo: a key the sandbox cannot vouch for is not one
        return False


def run_check(key, tenant: str, *, previous=None) -> None:
    """Sweep with live progress, keep the result in this session, record it in the tenant's history."""
    only = unknown_scopes(previous) if previous is not None else None
    label = f"Re-probing {len(only)} unknown rows…" if only else "Checking the key with Stripe…"
    seen: Counter = Counter()
    with st.status(label, expanded=True) as status:
        bar = st.progress(0.0, text="Starting…")
        problems = st.empty()
        lines: list[str] = []

        def on_progress(row, done: int, total: int) -> None:
            seen[row.verdict] += 1
            bar.progress(done / total, text=f"{done}/{total} permissions · {row.category} → {row.resource}: "
                f"{row.verdict}")
            if row.verdict in PROBLEMS:
                lines.append(f"{ICON[row.verdict]} {row.category} → {row.resource}: {row.verdict}")
                problems.markdown("\n".join(f"- {x}" for x in lines[-12:]))
            status.update(label=f"{label} {done}/{total} · " + ", ".join(f"{n} {v}" for v, n in seen.items()))

        try:
            checked = svc.check(key, tenant, source="dashboard", on_progress=on_progress, only=only, previous=previous)
        except store.StoreInputError as e:
            status.update(label="The check did not run.", state="error")
            st.error(md_escape(e))
            return
        except Exception as e:  # noqa: BLE001 - an unexpected failure: one sentence, never a traceback
            log.error("check failed: %s", type(e).__name__)
            status.update(label="The check could not run.", state="error")
            st.error(f"The check could not run ({type(e).__name__}); try again in a minute.")
            return
        result = checked.result
        score = f"score {result.score}/100" if result.says_something else "Stripe did not answer (our side)"
        status.update(
            label=f"Done: {result.status}, {score}, {result.requests} requests in {result.elapsed_s:.1f} s",
            state="error" if result.status in ("invalid", "failing", "unreachable") else "complete",
            expanded=False,
        )
    st.session_state[state.RESULT] = result
    st.session_state[state.RESULT_TENANT] = tenant
    st.session_state[state.KEY] = key
    st.session_state[state.TENANT] = tenant
    st.session_state.pop(state.FORGOTTEN, None)
    st.session_state[state.TENANT_NEXT] = tenant  # chosen in the tenant box on the next run
    st.session_state[state.SAVE_PROBLEM] = checked.save_problem or checked.audit_problem
    st.rerun()


def show_unreachable(result, tenant: str | None) -> None:
    """Stripe never answered: our side's problem. No grid, no score, no message for the tenant."""
    facts = [f"key {md_code(result.key.masked)}", f"{md_escape(result.key.mode or '?')} mode"]
    if tenant:
        facts.append(f"tenant **{md_escape(tenant)}**")
    st.error("**STRIPE UNREACHABLE** · a problem on our side, not the tenant's key · " + " · ".join(facts))
    st.markdown(f"**What happened:** {md_escape(result.problem)}")
    if st.session_state.get(state.SAVE_PROBLEM):
        st.warning(md_escape(st.session_state[state.SAVE_PROBLEM]))
    st.subheader("What to do")
    st.markdown(
        "Nothing for the tenant: nothing is known about their key, and no message is offered. Check this "
        "server's connection to Stripe (firewall, proxy, DNS, or a Stripe outage), then check again. The attempt "
        "is kept in the tenant's history as a gap, without a score."
    )
    has_key = st.session_state.get(state.KEY) is not None
    if st.button("Check again", disabled=not has_key, key="kh_unreachable_again",
                 help=None if has_key else "The key was forgotten: paste it again to check."):
        run_check(st.session_state[state.KEY], tenant or st.session_state.get(state.TENANT) or "")


def show_lifecycle(result) -> None:
    """What the tenant's history says about this key: replaced, mode or account changed, age, shared."""
    lc = result.lifecycle
    if lc is None:
        return
    if lc.replaced:
        flags = [w for w, on in (("mode changed", lc.mode_changed), ("account changed", lc.account_changed)) if on]
        st.info(f"**Key replaced:** {md_code(lc.replaced)} → "
            f"{md_code(result.key.masked)}" + (f" ({', '.join(flags)})" if flags else ""))
    for sentence in lc.problems():
        (st.error if lc.mode_mismatch and "live (in production)" in sentence else st.warning)(md_escape(sentence))
    if lc.age_days is not None and result.status not in ("invalid", "unreachable"):
        line = f"This key has been in use for {lc.age_days} day{'s' if lc.age_days != 1 else ''}"
        if lc.first_seen_at:
            line += f" (first seen {lc.first_seen_at:%Y-%m-%d})"
        if lc.rotation_due:
            line += (
                f": rotation is due (after {lc.rotation_days} days). It still works; the message below suggests "
                "rotating it."
            )
        st.caption(md_escape(line + "."))


def show_result(result, tenant: str | None) -> None:
    if result.status == "unreachable":
        show_unreachable(result, tenant)
        return
    k = result.key
    facts = [f"score **{result.score}/100**", f"key {md_code(k.masked)}", f"{md_escape(k.mode or '?')} mode"]
    if result.account:
        facts.append(f"account {md_code(result.account)}")
    if tenant:
        facts.append(f"tenant **{md_escape(tenant)}**")
    BANNER.get(result.status, st.info)(f"**{result.status.upper()}** · " + " · ".join(facts))
    if result.problem:
        st.markdown(f"**Problem:** {md_escape(result.problem)}")
    if st.session_state.get(state.SAVE_PROBLEM):
        st.warning(md_escape(st.session_state[state.SAVE_PROBLEM]))
    show_lifecycle(result)
    for incident in result.incidents:
        st.error(md_escape(incident))
    if result.rows:
        st.caption(f"{counts_line(result)} · {result.requests} requests in {result.elapsed_s:.1f} s")

    if result.rows:
        st.subheader("Permissions")
        c1, c2 = st.columns([1, 3])
        problems_only = c1.toggle("Problems only", key="kh_problems_only")
        cats = list(dict.fromkeys(r.category for r in result.rows))
        picked = c2.multiselect("Categories", cats, key="kh_categories", placeholder="All categories")
        styler = styled_grid(result.rows, problems_only=problems_only, categories=picked or None)
        shown: pd.DataFrame = styler.data  # type: ignore[attr-defined]  # a Styler attribute pandas-stubs omit
        if shown.empty:
            st.success("No problems: every permission matches what Pointai needs.")
        else:
            st.dataframe(
                styler,
                hide_index=True,
                height=min(38 + 35 * len(shown), 760),
                column_config={
                    "What to do": st.column_config.TextColumn(width="large"),
                    "Note": st.column_config.TextColumn(width="medium"),
                },
            )

    fixes = [r for r in result.rows if r.verdict in ("missing", "excess") and r.fix]
    unknown = [r for r in result.rows if r.verdict == "unknown"]
    st.subheader("What to change")
    if result.status == "invalid":
        st.markdown(f"1. {md_escape(result.problem)}")
    elif fixes:
        st.markdown("\n".join(f"{i}. {md_escape(r.fix)}" for i, r in enumerate(fixes, 1)))  # fixes may quote Stripe
    elif unknown:
        st.markdown("Nothing to change yet: Stripe did not answer conclusively for some permissions.")
    else:
        st.markdown("Nothing: the key has exactly the permissions Pointai needs.")
    for note in result.guide_notes:  # the onboarding guide's traps that explain this key
        st.info(md_escape(note), icon="💡")
    if result.create_link and result.status != "healthy":
        st.link_button("Create a key with exactly the right permissions in Stripe", result.create_link)

    if result.message:
        st.markdown("**Message for the tenant** (copy with the button at the top right)")
        st.code(result.message, language=None, wrap_lines=True)

    row = st.container(horizontal=True)
    row.download_button("Download CSV", grid_csv(result), download_name(result, tenant, "csv"), "text/csv")
    row.download_button("Download JSON", grid_json(result), download_name(result, tenant, "json"), "application/json")
    if unknown:
        has_key = st.session_state.get(state.KEY) is not None
        if row.button(f"Re-probe {len(unknown)} unknown rows", disabled=not has_key,
                     help=None if has_key else "The key was forgotten: paste it again to re-probe."):
            run_check(st.session_state[state.KEY], tenant or st.session_state.get(state.TENANT) or "", previous=result)


# --- the page -----------------------------------------------------------------------------------------
st.title("Check a key")
st.caption(f"{rt.mode_label} mode: probing {md_escape(rt.stripe_label)}. The key stays in this browser session only.")

try:
    tenants = svc.store.tenant_names()
except store.DATABASE_ERRORS as e:
    st.error(database_problem(e, svc.rt.db, "The tenant list could not be read"))
    tenants = []
names = [t["name"] for t in tenants]

if state.TENANT_NEXT in st.session_state:  # the tenant just checked (created if it was new)
    just = st.session_state.pop(state.TENANT_NEXT)
    nxt = store.slugify(just)
    match = next((t["name"] for t in tenants if t["name"] == just), None) or next(
        (t["name"] for t in tenants if t["slug"] == nxt), None)
    if match:
        st.session_state[state.TENANT_PICK] = match
        st.session_state.pop(state.TENANT_NEW, None)
asked = st.query_params.get("tenant")  # a tenant slug in the URL is fine; a key never
if asked and st.session_state.get(state.TENANT_FROM_URL) != asked:
    match = next((t["name"] for t in tenants if t["slug"] == asked), None)
    if match:
        st.session_state[state.TENANT_PICK] = match
    st.session_state[state.TENANT_FROM_URL] = asked
elif state.TENANT_PICK not in st.session_state and st.session_state.get(state.TENANT) in names:
    st.session_state[state.TENANT_PICK] = st.session_state[state.TENANT]

NEW = "➕ New tenant…"
if state.TENANT_PICK not in st.session_state and not names:
    st.session_state[state.TENANT_PICK] = NEW
t1, t2 = st.columns(2)
pick = t1.selectbox("Tenant", [NEW] + names, index=None, key=state.TENANT_PICK, placeholder="Choose a tenant")
tenant = pick
if pick == NEW:
    tenant = t2.text_input(
        "New tenant's name", key=state.TENANT_NEW, max_chars=100, placeholder="e.g. Acme Coffee Roasters"
    )
raw = st.text_input(
    "Restricted key",
    type="password",
    key=state.KEY_INPUT,
    placeholder="rk_live_… or rk_test_…",
    help="Paste the tenant's restricted key. It is checked here first and never stored: only a masked form is kept.",
)

taken = intake(raw) if raw else None
session_key = st.session_state.get(state.KEY)
candidate = None
if taken is not None:
    if taken.accepted:
        candidate = taken.key
        notes = f" ({'; '.join(taken.notes)})" if taken.notes else ""
        st.caption(md_escape(f"✓ {taken.info.masked} · restricted key · {taken.info.mode} mode{notes}"))
        if rt.is_stripe and is_demo_key(raw):
            st.warning("This is one of the demo keys: Stripe itself will refuse it. Switch Demo mode on in the "
                "sidebar.")
    else:
        st.error(md_escape(taken.info.problem))
elif session_key is not None:
    candidate = session_key
    st.caption(f"Using the key kept in this session: {md_escape(session_key.masked)}")
elif st.session_state.get(state.FORGOTTEN):
    st.caption("The key was forgotten: nothing of it is left in this session.")

with st.container(horizontal=True):
    clicked = st.button("Check key", type="primary", disabled=candidate is None or not tenant)
    st.button("Forget key", on_click=forget_key, disabled=session_key is None and not raw,
              help="Remove the key from this browser session (the field and the session's memory).")
if candidate is not None and not tenant:
    st.caption("Choose or type the tenant first: the check is recorded in its history.")

if clicked and candidate is not None and tenant:
    try:
        store.validate_tenant_name(tenant)
        clash = svc.store.name_clash(tenant)  # a name too close to another tenant's: say so before the sweep
    except store.StoreInputError as e:
        st.error(md_escape(e))
    except store.DATABASE_ERRORS:  # the check still runs; saving it says what is wrong with the database
        run_check(candidate, tenant.strip())
    else:
        if clash:
            st.error(md_escape(clash))
        else:
            run_check(candidate, tenant.strip())

result = st.session_state.get(state.RESULT)
if result is not None:
    st.divider()
    show_result(result, st.session_state.get(state.RESULT_TENANT))
