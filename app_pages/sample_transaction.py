"""Sample transaction: one small test charge with the session's test key. Layout only; core does the work."""
from __future__ import annotations

from dashboard.gate import require_access

require_access()  # first: nothing below renders or touches the database until an allowed person signs in

import pandas as pd
import streamlit as st

from core.features.transaction import (
    DEFAULT_AMOUNT,
    DEFAULT_CURRENCY,
    MAX_AMOUNT,
    TransactionResult,
    new_idempotency_key,
    refusal,
)
from core.store import TenantName
from core.ui.money import money
from core.ui.text import md_escape
from dashboard import session as state
from dashboard.widgets import key_line, session_key_or_paste, session_service

IDEM = "kh_txn_idempotency"  # intent (fingerprint, amount, currency) -> idempotency key
RESULT = "kh_txn_result"  # the last TransactionResult (no key in it)

st.title("Sample transaction")
st.caption(
    "Creates one small test charge (tok_visa) with the tenant's test key, reads it back and finds its balance "
    "transaction. Test keys only: a live key is refused before any request. Clicking twice, or retrying, "
    "returns the same charge (idempotency key), until you start a new test charge."
)

svc = session_service()
rt = svc.rt


key = session_key_or_paste("kh_txn")
tenant = TenantName.optional(st.session_state.get(state.TENANT) or None)  # a name the session kept

info = key.info  # parsed once, where the key was pasted: no request, no second parse
key_line(info.masked, info.mode, tenant)

why = refusal(info)
if why is not None:
    st.error(f"Refused: {md_escape(why)}")
    st.stop()

c1, c2 = st.columns(2)
amount = c1.number_input("Amount (smallest currency unit)", min_value=1, max_value=MAX_AMOUNT, value=DEFAULT_AMOUNT,
                         step=50, key="kh_txn_amount", help="100 is 1.00 in a two-decimal currency such as USD.")
currency = c2.text_input("Currency", value=DEFAULT_CURRENCY, max_chars=3, key="kh_txn_currency")

intent = f"{info.fingerprint}|{int(amount)}|{currency.strip().lower()}"
keys = st.session_state.setdefault(IDEM, {})
if intent not in keys:
    keys[intent] = new_idempotency_key()

b1, b2 = st.columns([1, 1])
create = b1.button("Create test charge", key="kh_txn_create", type="primary")
fresh = b2.button("Start a new test charge", key="kh_txn_new",
                  help="Forget this intent's idempotency key, so the next click creates another charge.")

if fresh:
    keys[intent] = new_idempotency_key()
    st.session_state.pop(RESULT, None)

if create:
    with st.spinner("Creating the test charge…"):
        made = svc.transact(key, tenant, source="dashboard", amount=int(amount), currency=currency,
                            idempotency_key=keys[intent])
    st.session_state[RESULT] = made
    if made.audit_problem:  # the result is still shown; the audit entry is what failed
        st.warning(md_escape(made.audit_problem))

result: TransactionResult | None = st.session_state.get(RESULT)
if result is None or result.key.fingerprint != info.fingerprint:
    st.stop()

if result.status == "passed":
    st.success(f"Passed: {len(result.steps)} steps in {result.elapsed_s:.2f} s ({result.requests} requests).")
elif result.status == "refused":
    st.error(f"Refused: {md_escape(result.problem)}")
else:
    st.error(f"Failed: {md_escape(result.problem)}")
if result.replayed:
    st.info("Stripe returned the charge made earlier for this intent (same idempotency key): no second charge.")

if result.steps:
    st.subheader("Steps")
    steps = pd.DataFrame(
        [
            {
                "step": s.label,
                "result": ("✓ " if s.result == "passed" else "✗ ") + s.result,
                "time (s)": round(s.elapsed_s, 3),
                "detail": s.detail,
            }
            for s in result.steps
        ]
    )
    st.dataframe(steps, hide_index=True, width="stretch")

if result.charge:
    st.subheader("Charge")
    c = result.charge
    st.code(c["id"], language=None)
    m1, m2 = st.columns(2)
    m1.metric("Charge amount", md_escape(money(c["amount"], c["currency"])))
    m2.metric("Charge status", md_escape(c["status"]))

if result.balance_transaction_detail:
    st.subheader("Balance transaction")
    t = result.balance_transaction_detail
    st.code(t["id"], language=None)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Transaction amount", md_escape(money(t["amount"], t["currency"])))
    m2.metric("Fee", md_escape(money(t["fee"], t["currency"])))
    m3.metric("Net", md_escape(money(t["net"], t["currency"])))
    m4.metric("Transaction status", md_escape(t["status"]))
    st.caption(f"type {md_escape(t['type'])}")
