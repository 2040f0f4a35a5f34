"""The key's Dashboard id (mk_…) with each check.

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-06

Why (issue 20): Stripe's newest refusal wording links to the edit page of the very key refused,
https://dashboard.stripe.com/b/acct_…?destination=%2Fapikeys%2Fmk_…%2Fedit. The `mk_…` id is the key's id in the
Dashboard (not a secret): it tells two keys apart better than a masked tail, so a check keeps it and the Tenant
page shows it. The link itself is rebuilt from the account and this id, so nothing else is stored.

No backfill: older checks never kept the text of Stripe's refusals, so there is nothing to read the id from; their
column stays NULL ("not given"). The only rule, frozen here: an id is `mk_` followed by letters or digits, at most
64 characters in all (core.engine.probe checks it before a check carries it). The database enforces the prefix and
the length itself, with a column CHECK (SQLite ignores VARCHAR(n)), so the column can never hold a secret key
(those start sk_/rk_), not even from plain SQL.
"""
from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE checks ADD COLUMN key_dashboard_id VARCHAR(64) CONSTRAINT ck_checks_key_dashboard_id_mk "
               "CHECK (key_dashboard_id LIKE 'mk!_%' ESCAPE '!' AND length(key_dashboard_id) <= 64)")


def downgrade() -> None:
    op.drop_column("checks", "key_dashboard_id")
