"""A key's first-seen date counts only checks Stripe accepted the key in.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

Why (issue 19.4, checks that keep history true): every check with a fingerprint put the key in stripe_keys,
so a key Stripe refused (mistyped, revoked, expired before Key Health ever saw it work) got a first-seen date,
an age ("in use for 0 days") and, later, a rotation reminder. From now on record_check adds a key to stripe_keys
only when Stripe accepted it in that check (status healthy, attention, failing or incomplete: an answered
sweep), and its first-seen date is its first such check.

What this does: the rule, frozen here (the same as core.store.checks.ACCEPTED_STATUSES today): every
stripe_keys row whose fingerprint has no accepted check is deleted; every other row's first_seen_at becomes its
earliest accepted check's time. Two statements, each one pass over stripe_keys with an index seek per key on
ix_checks_key_fingerprint_tenant_id.

Downgrade: the rows of never-accepted keys come back with their earliest check's time (any status).
"""
from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_ACCEPTED = "('healthy', 'attention', 'failing', 'incomplete')"  # frozen: the statuses of an answered sweep


def upgrade() -> None:
    op.execute(
        "DELETE FROM stripe_keys WHERE NOT EXISTS (SELECT 1 FROM checks c WHERE c.key_fingerprint = "
        f"stripe_keys.fingerprint AND c.status IN {_ACCEPTED})"
    )
    op.execute(
        "UPDATE stripe_keys SET first_seen_at = (SELECT MIN(c.checked_at) FROM checks c WHERE c.key_fingerprint = "
        f"stripe_keys.fingerprint AND c.status IN {_ACCEPTED})"
    )


def downgrade() -> None:
    op.execute(
        "INSERT INTO stripe_keys (fingerprint, key_masked, key_mode, first_seen_at) "
        "SELECT c.key_fingerprint, MIN(c.key_masked), MIN(c.key_mode), MIN(c.checked_at) FROM checks c "
        "WHERE c.key_fingerprint IS NOT NULL AND NOT EXISTS (SELECT 1 FROM stripe_keys k WHERE k.fingerprint = "
        "c.key_fingerprint) GROUP BY c.key_fingerprint"
    )
    op.execute(
        "UPDATE stripe_keys SET first_seen_at = (SELECT MIN(c.checked_at) FROM checks c WHERE c.key_fingerprint = "
        "stripe_keys.fingerprint)"
    )
