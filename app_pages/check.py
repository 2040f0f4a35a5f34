"""Check a key: pick the tenant, paste the key, watch the sweep, read the grid and what to tell the tenant."""
from __future__ import annotations

from dashboard.gate import require_access

require_access()  # first: nothing below renders or touches the database until an allowed person signs in

import logging
import time
from collections import Counter

import pandas as pd
import streamlit as st

from core import store
from core.engine.catalogue import load_profile
from core.engine.check import grid_plan, unknown_scopes
from core.engine.keys import Pasted, SecretKey
from core.ui.check_view import (
    changes_markdown_parts,
    first_change,
    group_counts,
    has_problems,
    progress_text,
    row_word,
    similar_tenants,
    unknown_groups,
)
from core.ui.grid import PROBLEMS, counts_line, download_name, grid_csv, grid_json, styled_grid
from core.ui.palette import STATUS_BANNER, VERDICT_ICON, VERDICT_LABEL
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
PROFILE = load_profile()
PROBLEMS_ONLY = "kh_problems_only"
CATEGORIES = "kh_categories"
GRID_RESET = "kh_grid_reset"


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


def _keep(result, tenant: str | None, key, *, recorded: str, save_problem: str | None = None) -> None:
    """Show this result from the next run on: the grid opens on "Problems only" when there are problems."""
    st.session_state[state.RESULT] = result
    st.session_state[state.RESULT_TENANT] = tenant
    st.session_state[state.RECORDED] = recorded
    st.session_state[state.SAVE_PROBLEM] = save_problem
    st.session_state[GRID_RESET] = True  # the grid's filters start over (set before its widgets, in show_grid)
    if key is not None:
        st.session_state[state.KEY] = key
        st.session_state.pop(state.FORGOTTEN, None)
    if tenant and recorded == "recorded":
        st.session_state[state.TENANT] = tenant
        st.session_state[state.TENANT_NEXT] = tenant  # chosen in the tenant box on the next run


def needs_confirmation(result) -> bool:
    """A key of another Stripe account than the tenant's recorded one: ask "right tenant?" before recording."""
    lc = result.lifecycle
    return bool(lc is not None and lc.account_changed)


def record_now(result, tenant: store.TenantName, key) -> None:
    checked = svc.record(result, tenant, source="dashboard")
    recorded = "recorded" if checked.saved else "not recorded"
    _keep(result, tenant, key, recorded=recorded, save_problem=checked.save_problem)


def run_check(key: Pasted, tenant: store.TenantName | str | None, *, record: bool = True, previous=None) -> None:
    """Sweep with live progress (in the grid's rows and words, with the time left), judge the result against the
    tenant's history, then record it in that history (asking first when the key belongs to another Stripe
    account), or only show it ("Check only": not recorded, audited as check_only). `key` was parsed once, where it
    was pasted; `tenant` too (start), or it is the name this session kept (a TenantName passes as it is)."""
    only = unknown_scopes(previous) if previous is not None else None
    plan = grid_plan(previous=previous, only=only)
    label = f"Re-probing {len(only)} unknown rows…" if only else "Checking the key with Stripe…"
    seen: Counter = Counter(row_word(r) for r in plan)
    started = time.monotonic()
    with st.status(label, expanded=True) as status:
        bar = st.progress(0.0, text="Starting…")
        problems = st.empty()
        lines: list[str] = []

        def on_progress(row, done: int, total: int) -> None:
            seen[row_word(row)] += 1
            grid_total = len(plan) + total
            settled = len(plan) + done
            text = progress_text(seen, settled, grid_total, done, total, time.monotonic() - started)
            bar.progress(settled / grid_total, text=text)
            if row.verdict in PROBLEMS:
                lines.append(f"{ICON[row.verdict]} {row.category} → {row.resource}: {VERDICT_LABEL[row.verdict]}")
                problems.markdown("\n".join(f"- {md_escape(x)}" for x in lines[-12:]))
            status.update(label=f"{label} {text}")

        try:
            tenant = store.TenantName.optional(tenant)
            checked = svc.check(key, tenant, source="dashboard", on_progress=on_progress, only=only,
                                previous=previous, record=False)
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
    st.session_state.pop(state.PENDING, None)
    if not record or not tenant:
        problem = None
        try:
            svc.audit("check_only", tenant=tenant or None, outcome=result.status,
                      detail=f"{result.key.masked} score {result.score} (dashboard, not recorded)")
        except Exception as e:  # noqa: BLE001 - the check stands; only its audit entry is missing, and that is said
            log.error("auditing a check failed: %s", type(e).__name__)
            problem = "The check ran (not recorded), but the audit trail could not record it."
        _keep(result, tenant, key, recorded="check only", save_problem=problem)
    elif needs_confirmation(result):
        st.session_state[state.PENDING] = (result, tenant)
        _keep(result, tenant, key, recorded="pending")
    else:
        record_now(result, tenant, key)
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
        what = "Replaced by a key Stripe refuses" if result.status == "invalid" else "Key replaced"
        st.info(f"**{what}:** {md_code(lc.replaced)} → "
            f"{md_code(result.key.masked)}" + (f" ({', '.join(flags)})" if flags else ""))
    for sentence in lc.problems():
        (st.error if lc.mode_mismatch and "live (in production)" in sentence else st.warning)(md_escape(sentence))
    if lc.age_days is not None and result.status not in ("invalid", "unreachable"):
        line = f"This key has been in use for {lc.age_days} day{'s' if lc.age_days != 1 else ''}"
        if lc.first_seen_at:
            line += f" (first seen {lc.first_seen_at:%Y-%m-%d} UTC)"
        if lc.rotation_due:
            line += (
                f": rotation is due (after {lc.rotation_days} days). It still works; the message below suggests "
                "rotating it."
            )
        st.caption(md_escape(line + "."))


RECORDED_WORDS = {
    "recorded": "recorded in {tenant}'s history",
    "check only": "check only: not recorded",
    "not recorded": "not recorded",
    "pending": "not recorded yet: waiting for your answer",
}


def show_pending(result, tenant: store.TenantName) -> None:
    """Another Stripe account than the tenant's: ask before the check goes into the tenant's history."""
    lc = result.lifecycle
    st.warning(
        f"**This key belongs to another Stripe account: right tenant?** It is {md_code(result.account or '?')}, "
        f"while **{md_escape(tenant)}**'s previous checks saw {md_code(lc.previous_account or '?')}. Recording it "
        "makes this key the tenant's current key."
    )
    row = st.container(horizontal=True)
    if row.button(f"Yes, record it for {md_escape(tenant)}", type="primary", key="kh_confirm_record"):
        st.session_state.pop(state.PENDING, None)
        record_now(result, tenant, st.session_state.get(state.KEY))
        st.rerun()
    if row.button("No, don't record it", key="kh_confirm_skip"):
        st.session_state.pop(state.PENDING, None)
        try:
            svc.audit("check_only", tenant=tenant, outcome=result.status,
                      detail=f"{result.key.masked} score {result.score} (dashboard, another account: not recorded)")
        except Exception as e:  # noqa: BLE001 - the result stands; only its audit entry is missing
            log.error("auditing a check failed: %s", type(e).__name__)
        st.session_state[state.RECORDED] = "not recorded"
        st.rerun()


def show_changes(result) -> None:
    """"What to change" as one list: where to go once, then the settings grouped by category."""
    st.subheader("What to change")
    if result.status == "invalid":
        st.markdown(f"1. {md_escape(result.problem)}")
        return
    where, groups = changes_markdown_parts(result, PROFILE.key_name)
    if groups:
        body = [md_escape(where)]
        for category, changes in groups:
            body.append(f"\n**{md_escape(category)}** ({len(changes)})")
            body += [f"- {md_escape(c)}" for c in changes]
        st.markdown("\n".join(body))
    unknown = unknown_groups(result.rows)
    if unknown:
        listed = "; ".join(f"**{md_escape(c)}**: {md_escape(', '.join(names))}" for c, names in unknown)
        st.markdown(f"Not checked yet (Stripe did not answer conclusively): {listed}.")
    if not groups and not unknown:
        st.markdown("Nothing: the key has exactly the permissions Pointai needs.")


def show_grid(result) -> None:
    st.subheader("Permissions")
    if st.session_state.pop(GRID_RESET, False):  # a new result: open on "Problems only" when there are problems
        st.session_state[PROBLEMS_ONLY] = has_problems(result)
        st.session_state.pop(CATEGORIES, None)
    c1, c2 = st.columns([1, 3])
    problems_only = c1.toggle("Problems only", key=PROBLEMS_ONLY)
    counts = dict(group_counts(result.rows, problems_only=problems_only))
    cats = list(dict.fromkeys(r.category for r in result.rows))
    picked = c2.multiselect("Categories", cats, key=CATEGORIES, placeholder="All categories",
                            format_func=lambda c: f"{c} ({counts.get(c, 0)})")
    styler = styled_grid(result.rows, problems_only=problems_only, categories=picked or None)
    shown: pd.DataFrame = styler.data  # type: ignore[attr-defined]  # a Styler attribute pandas-stubs omit
    if shown.empty:
        st.success("No problems: every permission matches what Pointai needs.")
        return
    groups = [(c, n) for c, n in counts.items() if not picked or c in picked]
    what = "problem" if problems_only else "row"
    st.caption("By category: " + " · ".join(f"**{md_escape(c)}** {n}" for c, n in groups)
               + f" ({len(shown)} {what}{'s' if len(shown) != 1 else ''})")
    st.dataframe(
        styler,
        hide_index=True,
        height=min(38 + 35 * len(shown), 760),
        column_config={
            "What to do": st.column_config.TextColumn(width="large"),
            "Note": st.column_config.TextColumn(width="medium"),
        },
    )


def show_verdict(result, tenant: str | None, kept: str | None) -> None:
    """The banner: the verdict and what to change first, then the facts (score, key, mode, account, tenant, saved)."""
    k = result.key
    facts = [f"score **{result.score}/100**", f"key {md_code(k.masked)}", f"{md_escape(k.mode or '?')} mode"]
    if result.account:
        facts.append(f"account {md_code(result.account)}")
    if tenant:
        facts.append(f"tenant **{md_escape(tenant)}**")
    if kept in RECORDED_WORDS:
        facts.append(md_escape(RECORDED_WORDS[kept].format(tenant=tenant or "the tenant")))
    BANNER.get(result.status, st.info)(
        f"**{result.status.upper()}** · {md_escape(first_change(result))}  \n" + " · ".join(facts)
    )


def show_downloads(result, tenant: str | None, kept: str | None) -> None:
    """The CSV and JSON downloads, and re-probing the unknown rows while the key is still in the session."""
    unknown = [r for r in result.rows if r.verdict == "unknown"]
    row = st.container(horizontal=True)
    row.download_button("Download CSV", grid_csv(result), download_name(result, tenant, "csv"), "text/csv")
    row.download_button("Download JSON", grid_json(result), download_name(result, tenant, "json"), "application/json")
    if unknown:
        has_key = st.session_state.get(state.KEY) is not None
        if row.button(f"Re-probe {len(unknown)} unknown rows", disabled=not has_key,
                     help=None if has_key else "The key was forgotten: paste it again to re-probe."):
            run_check(st.session_state[state.KEY], tenant or st.session_state.get(state.TENANT) or None,
                      record=kept == "recorded", previous=result)


def show_result(result, tenant: str | None) -> None:
    if result.status == "unreachable":
        show_unreachable(result, tenant)
        return
    pending = st.session_state.get(state.PENDING)
    if pending is not None and tenant:
        show_pending(result, pending[1])  # the TenantName the check was for
    kept = st.session_state.get(state.RECORDED)
    show_verdict(result, tenant, kept)
    if result.problem:
        st.markdown(f"**Problem (for support):** {md_escape(result.problem)}")
    if st.session_state.get(state.SAVE_PROBLEM):
        st.warning(md_escape(st.session_state[state.SAVE_PROBLEM]))
    show_lifecycle(result)
    for incident in result.incidents:
        st.error(md_escape(incident))
    if result.rows:
        st.caption(f"{md_escape(counts_line(result))} · {result.requests} requests in {result.elapsed_s:.1f} s")

    show_changes(result)
    for note in result.guide_notes:  # the onboarding guide's traps that explain this key
        st.info(md_escape(note), icon="💡")
    if result.create_link and result.status != "healthy":
        st.link_button("Create a key with exactly the right permissions in Stripe", result.create_link)

    if result.message:
        st.markdown("**Message for the tenant** (copy with the button at the top right)")
        st.code(result.message, language=None, wrap_lines=True)

    if result.rows:
        show_grid(result)
    show_downloads(result, tenant, kept)


def use_tenant(name: str) -> None:
    st.session_state[state.TENANT_PICK] = name
    st.session_state.pop(state.TENANT_NEW, None)


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
is_new = pick == NEW
if is_new:
    tenant = t2.text_input(
        "New tenant's name", key=state.TENANT_NEW, max_chars=100, placeholder="e.g. Acme Coffee Roasters"
    )
    tenant = (tenant or "").strip()
    for other in similar_tenants(tenant, names) if tenant else []:  # offer the existing tenant first
        st.warning(f"**{md_escape(other)}** already exists and looks like “{md_escape(tenant)}”: is it the same "
                   "tenant? Use it rather than creating a new one.")
        st.button(f"Use {md_escape(other)}", key=f"kh_use_{store.slugify(other)}", on_click=use_tenant,
                  args=(other,))

session_key = st.session_state.get(state.KEY)
with st.form("kh_check_form", border=False, enter_to_submit=True):
    raw = st.text_input(
        "Restricted key",
        type="password",
        key=state.KEY_INPUT,
        placeholder="rk_live_… or rk_test_… (Enter starts the check)",
        help="Paste the tenant's restricted key and press Enter. It is checked here first and never stored: only "
             "a masked form is kept.",
    )
    if tenant:  # said before the click: where "Check and record" (and Enter) puts the check
        st.caption(f"“Check and record” (or Enter in the key field) records the check in **{md_escape(tenant)}**'s "
                   "history" + (" (a new tenant)" if is_new else "") + "; “Check only” records nothing.")
    else:
        st.caption("Choose or type the tenant to record the check in its history; “Check only” records nothing.")
    buttons = st.container(horizontal=True)
    # Enter presses the form's first submit button. Its label and look never change: the browser re-registers a
    # submit button whose label changes, after "Check only", and Enter would then press "Check only".
    record_clicked = buttons.form_submit_button("Check and record", type="primary", key="kh_check_record")
    only_clicked = buttons.form_submit_button("Check only (don't record)", key="kh_check_only")
if session_key is not None and not raw:
    st.caption(f"Using the key kept in this session: {md_escape(session_key.masked)}")
elif st.session_state.get(state.FORGOTTEN):
    st.caption("The key was forgotten: nothing of it is left in this session.")
st.button("Forget key", on_click=forget_key, disabled=session_key is None and not raw,
          help="Remove the key from this browser session (the field and the session's memory).")


def start(record: bool) -> None:
    """The form was submitted (a button or Enter): check the pasted key (or the session's), for the tenant."""
    candidate: SecretKey
    if raw:
        taken = SecretKey.parse(raw)  # the key, parsed once here: everything after takes this SecretKey
        if not taken.accepted or taken.key is None:  # answered here, without a request; nothing recorded, not kept
            st.error(md_escape(taken.info.problem))
            refused = svc.check(taken, None, record=False).result
            _keep(refused, tenant or None, None, recorded="not recorded")
            return
        candidate = taken.key
        if record and not tenant:
            st.error("Choose or type the tenant first: the check is recorded in its history (or use “Check only”).")
            return
        if rt.is_stripe and is_demo_key(raw):
            st.warning("This is one of the demo keys: Stripe itself will refuse it. Switch Demo mode on in the "
                "sidebar.")
    elif session_key is not None:
        candidate = session_key
        if record and not tenant:
            st.error("Choose or type the tenant first: the check is recorded in its history (or use “Check only”).")
            return
    else:
        st.error("Paste the tenant's restricted key first (rk_live_… or rk_test_…).")
        return
    try:
        name = store.TenantName.optional(tenant or None)  # the tenant's name, parsed once here
    except store.StoreInputError as e:
        st.error(md_escape(e))
        return
    if not record or name is None:
        run_check(candidate, name, record=False)
        return
    try:
        clash = svc.store.name_clash(name)  # a name too close to another tenant's: say so before the sweep
    except store.DATABASE_ERRORS:  # the check still runs; saving it says what is wrong with the database
        run_check(candidate, name)
    else:
        if clash:
            st.error(md_escape(clash))
        else:
            run_check(candidate, name)


if record_clicked or only_clicked:
    start(bool(record_clicked))

result = st.session_state.get(state.RESULT)
if result is not None:
    st.divider()
    show_result(result, st.session_state.get(state.RESULT_TENANT))
