"""The browser session's service: which runtime (real or demo) and who is acting, from st.session_state and
st.user. Every page gets its Service here and records or audits nothing except through it."""
from __future__ import annotations

from typing import Any

import streamlit as st

from core import access, runtime
from core.config import settings
from core.service import Service

# st.session_state keys, named once.
DEMO = "kh_demo"  # is this browser session in demo mode
KEY = "kh_key"  # the SecretKey the session holds (never stored)
KEY_INPUT = "kh_key_input"
RESULT = "kh_result"  # the last CheckResult shown on the check page
RESULT_TENANT = "kh_result_tenant"
TENANT = "kh_tenant"
TENANT_PICK = "kh_tenant_pick"
TENANT_NEW = "kh_tenant_new"
TENANT_NEXT = "kh_tenant_next"
TENANT_FROM_URL = "kh_tenant_from_url"
FORGOTTEN = "kh_forgotten"
SAVE_PROBLEM = "kh_save_problem"
PENDING = "kh_pending"  # a judged check waiting for "right tenant?" before it is recorded: (CheckResult, tenant)
RECORDED = "kh_recorded"  # how the shown result was kept: "recorded" | "check only" | "not recorded"
# What a switch of mode forgets: demo keys mean nothing to Stripe and real keys must never reach the sandbox.
FORGET_ON_SWITCH = (KEY, KEY_INPUT, RESULT, RESULT_TENANT, TENANT, TENANT_PICK, TENANT_NEW, PENDING, RECORDED)


def who() -> str:
    """Who is acting, for the audit trail: the signed-in email, else "anonymous"."""
    user: Any = getattr(st, "user", None)
    return access.identity(user)


def demo_mode() -> bool:
    mode = st.session_state.get(DEMO)
    return settings().demo if mode is None else bool(mode)


def service() -> Service:
    """This session's Service: the runtime of its mode (demo or real), acting as the signed-in person."""
    return Service(runtime.build(settings(), demo_mode=demo_mode(), who=who()))
