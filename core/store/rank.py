"""Triage's impact order as one integer per tenant: the rule, written once.

`impact_rank` builds the SQL expression from whichever columns hold a tenant's latest status and key mode:
- the tenant row's copies (0010): the column `tenants.triage_rank` is this expression over them, computed by the
  database itself (a generated column, 0017), so Triage's first page is an index walk, not a sort of every tenant;
- the checks themselves (the raw path tests compare against), where it is computed per query.

Smaller ranks come first. From the most significant part down: tenants that need nothing (healthy or better, no
key signal) last; before them, tenants in production or on a live key first; then severity, where a key signal (a
test key on a live tenant, a replacement that changed the Stripe account) weighs as failing; then tenants with a
current bad streak (broken_since set) before those without one. Ties are broken by the caller (broken_since
newest first, then the stalest check, then the id).
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from core.engine.result import STATUSES


def status_rank(status: Any) -> Any:
    """SQL expression: 0 for the worst status (invalid) … 4 for healthy, 5 for anything else."""
    return sa.case({s: i for i, s in enumerate(STATUSES)}, value=status, else_=len(STATUSES))


def key_signal(key_mode: Any, expected_mode: Any, account_changed: Any) -> Any:
    """SQL: the tenant's current key carries a signal that weighs as failing in the impact order: a key in the
    wrong mode for the tenant (a test key on a live tenant) or a replacement that changed the Stripe account."""
    mismatch = sa.and_(expected_mode.is_not(None), key_mode.is_not(None), expected_mode != key_mode)
    return sa.or_(mismatch, account_changed.is_(True))


def impact_rank(status: Any, key_mode: Any, expected_mode: Any, account_changed: Any, broken_since: Any) -> Any:
    """SQL expression: the tenant's place in Triage's impact order (see the module's docstring)."""
    rank = status_rank(status)
    failing, healthy = STATUSES.index("failing"), STATUSES.index("healthy")
    severity = sa.case((sa.and_(key_signal(key_mode, expected_mode, account_changed), rank > failing), failing),
                       else_=rank)
    calm = sa.case((severity >= healthy, 100), else_=0)
    impact = sa.case((sa.or_(expected_mode == "live", key_mode == "live"), 0), else_=10)
    unbroken = sa.case((broken_since.is_(None), 1), else_=0)
    return (calm + impact + severity) * 2 + unbroken  # severity < 10 and unbroken < 2: one integer, same order


def tenant_rank() -> Any:
    """The expression over the tenant row's own columns, unqualified: what the generated column computes."""
    col = sa.column
    return impact_rank(col("last_status", sa.String), col("last_key_mode", sa.String),
                       col("expected_mode", sa.String), col("last_account_changed", sa.Boolean),
                       col("broken_since", sa.DateTime))
