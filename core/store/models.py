"""SQLModel tables of the key-health history store.

The raw key is never stored: a check keeps `key_masked` (at most 40 characters, enforced by a CHECK
constraint in the database itself) and `key_fingerprint` (a keyed hash computed in core/engine/keys.py).
Every constraint and index is named so Alembic migrations can refer to them; the migrations in
core/migrations/versions create exactly these tables (a test compares them).
"""
from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.store.rank import tenant_rank
from core.store.types import UTCDateTime, utcnow

SOURCES: tuple[str, ...] = ("dashboard", "cli", "batch", "key source")
MASKED_MAX = 40
FINGERPRINT_MAX = 128
NAME_MAX = 100


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"
    __table_args__ = (
        sa.UniqueConstraint("slug", name="uq_tenants_slug"),
        sa.Index("ix_tenants_last_checked_at", "last_checked_at"),
        # 0010: a tenant named by its exact name or its slug (`slug = ? OR name = ?`) is two index seeks, not a
        # scan of every tenant row (record_check resolves its tenant that way)
        sa.Index("ix_tenants_name", "name"),
        # 0017: Triage's "got worse" filter and its figures per status (its order: ix_tenants_triage below)
        sa.Index("ix_tenants_worse_at", "worse_at"),
        sa.Index("ix_tenants_status", "last_status", "last_score", "archived", "last_check_id"),
        sa.Index("ix_tenants_last_key_fingerprint", "last_key_fingerprint"),
        # 0010: the latest key's copies are limited like the checks' own columns (see Check)
        sa.CheckConstraint(f"length(last_key_masked) <= {MASKED_MAX}", name="ck_tenants_last_key_masked_len"),
        sa.CheckConstraint(f"length(last_key_fingerprint) <= {FINGERPRINT_MAX}",
                           name="ck_tenants_last_key_fingerprint_len"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=sa.String(NAME_MAX), nullable=False)
    slug: str = Field(sa_type=sa.String(120), nullable=False)
    account: str | None = Field(default=None, sa_type=sa.String(64))  # acct_… once a check has seen it
    contact: str | None = Field(default=None, sa_type=sa.String(200))
    notes: str | None = Field(default=None, sa_type=sa.Text)
    archived: bool = Field(default=False, nullable=False, sa_column_kwargs={"server_default": sa.false()})
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    # 0002: denormalised pointer to the newest check (by checked_at), kept by record_check.
    # No foreign key on purpose: tenants <-> checks would be a cycle.
    last_check_id: int | None = Field(default=None)
    last_checked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # 0006: "live" once the tenant is in production (a test key is then a problem), "test", or None (not said).
    expected_mode: str | None = Field(default=None, sa_type=sa.String(8))
    # 0010: copies of the latest check's figures (None while last_check_id is None), kept by record_check in the
    # UPDATE that moves last_check_id, so triage/fleet order, filter and count tenants without reading checks.
    # See core/store/latest.py.
    last_status: str | None = Field(default=None, sa_type=sa.String(16))
    last_score: int | None = Field(default=None)
    last_key_mode: str | None = Field(default=None, sa_type=sa.String(8))
    last_key_fingerprint: str | None = Field(default=None, sa_type=sa.String(FINGERPRINT_MAX))
    last_key_masked: str | None = Field(default=None, sa_type=sa.String(MASKED_MAX))
    last_account: str | None = Field(default=None, sa_type=sa.String(64))
    # 0015: the latest check's short problem for Triage, the current bad streak (first check after the last
    # healthy one), the last healthy check, the last check that made the status worse, and whether the current key
    # came with another Stripe account; kept by record_check with the pointer (core/store/latest.py).
    last_summary: str | None = Field(default=None, sa_type=sa.String(200))
    broken_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_healthy_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    worse_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # no Python-side default (the database's own is false), so inserts written for older revisions still work
    last_account_changed: bool | None = Field(default=None, nullable=False,
                                              sa_column_kwargs={"server_default": sa.false()})
    # 0017: the tenant's place in Triage's impact order (core/store/rank.py), computed by the database from the
    # columns above (a generated column: nothing writes it). PostgreSQL stores it; SQLite computes it on read
    # (ALTER TABLE can only add VIRTUAL ones) and keeps it in ix_tenants_triage.
    triage_rank: int | None = Field(default=None, sa_column=sa.Column(
        "triage_rank", sa.Integer, sa.Computed(tenant_rank(), persisted=True)))


_t = Tenant.__table__  # type: ignore[attr-defined]
# 0017: Triage's order, newest breakage first within a rank (a DESC column, so declared on the table's columns)
sa.Index("ix_tenants_triage", _t.c.triage_rank, _t.c.broken_since.desc(), _t.c.last_checked_at, _t.c.id)


class Check(SQLModel, table=True):
    __tablename__ = "checks"
    __table_args__ = (
        sa.CheckConstraint("source IN ('dashboard', 'cli', 'batch', 'key source')", name="ck_checks_source"),
        sa.CheckConstraint(f"length(key_masked) <= {MASKED_MAX}", name="ck_checks_key_masked_len"),
        sa.CheckConstraint(f"length(key_fingerprint) <= {FINGERPRINT_MAX}", name="ck_checks_key_fingerprint_len"),
        # 0012: the key's Dashboard id is an mk_… id, never anything shaped like a secret key
        sa.CheckConstraint("key_dashboard_id LIKE 'mk!_%' ESCAPE '!' AND length(key_dashboard_id) <= 64",
                           name="ck_checks_key_dashboard_id_mk"),
        # 0002: covering index for history/drift (tenant, time order) and the per-day fleet window
        sa.Index("ix_checks_tenant_checked_at_id_status", "tenant_id", "checked_at", "id", "status"),
        sa.Index("ix_checks_checked_at", "checked_at"),
        # 0009: (key, tenant) so "is this key recorded for another tenant" is one index seek per side
        sa.Index("ix_checks_key_fingerprint_tenant_id", "key_fingerprint", "tenant_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(
        sa_column_args=[sa.ForeignKey("tenants.id", name="fk_checks_tenant_id", ondelete="CASCADE")],
        nullable=False,
    )
    checked_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    checked_by: str | None = Field(default=None, sa_type=sa.String(NAME_MAX))
    source: str = Field(sa_type=sa.String(16), nullable=False)
    key_masked: str = Field(sa_type=sa.String(MASKED_MAX), nullable=False)
    key_fingerprint: str | None = Field(default=None, sa_type=sa.String(FINGERPRINT_MAX))
    key_kind: str = Field(sa_type=sa.String(32), nullable=False)
    key_mode: str | None = Field(default=None, sa_type=sa.String(8))
    account: str | None = Field(default=None, sa_type=sa.String(64))
    status: str = Field(sa_type=sa.String(16), nullable=False)
    score: int = Field(nullable=False)
    n_ok: int = Field(default=0, nullable=False)
    n_missing: int = Field(default=0, nullable=False)
    n_excess: int = Field(default=0, nullable=False)
    n_unknown: int = Field(default=0, nullable=False)
    n_not_applicable: int = Field(default=0, nullable=False)
    requests: int = Field(default=0, nullable=False)
    elapsed_s: float = Field(default=0.0, nullable=False)
    problem: str | None = Field(default=None, sa_type=sa.Text)
    # 0006: why Stripe refused the key (invalid | expired | revoked | ip_not_allowed | no_key), for the timeline.
    refused: str | None = Field(default=None, sa_type=sa.String(16))
    # 0012: the key's Dashboard id (mk_…, not a secret) when a refusal in Stripe's newest wording gave it.
    key_dashboard_id: str | None = Field(default=None, sa_type=sa.String(64))


class StripeKey(SQLModel, table=True):
    """0006: one row per key fingerprint ever checked: when Key Health first saw it (its age)."""

    __tablename__ = "stripe_keys"
    __table_args__ = (
        sa.UniqueConstraint("fingerprint", name="uq_stripe_keys_fingerprint"),
        sa.CheckConstraint(f"length(fingerprint) <= {FINGERPRINT_MAX}", name="ck_stripe_keys_fingerprint_len"),
        sa.CheckConstraint(f"length(key_masked) <= {MASKED_MAX}", name="ck_stripe_keys_key_masked_len"),
        sa.Index("ix_stripe_keys_first_seen_at", "first_seen_at"),  # 0017: keys due for rotation
    )

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(sa_type=sa.String(FINGERPRINT_MAX), nullable=False)
    key_masked: str = Field(sa_type=sa.String(MASKED_MAX), nullable=False)
    key_mode: str | None = Field(default=None, sa_type=sa.String(8))
    first_seen_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class KeyEvent(SQLModel, table=True):
    """0006: a tenant's key replaced by another (a check with a new fingerprint for the tenant)."""

    __tablename__ = "key_events"
    __table_args__ = (
        sa.Index("ix_key_events_tenant_id_at", "tenant_id", "at"),
        sa.Index("ix_key_events_at", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(
        sa_column_args=[sa.ForeignKey("tenants.id", name="fk_key_events_tenant_id", ondelete="CASCADE")],
        nullable=False,
    )
    check_id: int = Field(
        sa_column_args=[sa.ForeignKey("checks.id", name="fk_key_events_check_id", ondelete="CASCADE")],
        nullable=False,
    )
    at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    kind: str = Field(default="replaced", sa_type=sa.String(16), nullable=False)
    old_fingerprint: str | None = Field(default=None, sa_type=sa.String(FINGERPRINT_MAX))
    new_fingerprint: str = Field(sa_type=sa.String(FINGERPRINT_MAX), nullable=False)
    old_masked: str | None = Field(default=None, sa_type=sa.String(MASKED_MAX))
    new_masked: str = Field(sa_type=sa.String(MASKED_MAX), nullable=False)
    old_mode: str | None = Field(default=None, sa_type=sa.String(8))
    new_mode: str | None = Field(default=None, sa_type=sa.String(8))
    old_account: str | None = Field(default=None, sa_type=sa.String(64))  # the tenant's last known account before
    # filled in once a check of the new key sees it
    new_account: str | None = Field(default=None, sa_type=sa.String(64))


class CheckRow(SQLModel, table=True):
    __tablename__ = "check_rows"
    __table_args__ = (sa.Index("ix_check_rows_check_id", "check_id"),)

    id: int | None = Field(default=None, primary_key=True)
    check_id: int = Field(
        sa_column_args=[sa.ForeignKey("checks.id", name="fk_check_rows_check_id", ondelete="CASCADE")],
        nullable=False,
    )
    scope: str | None = Field(default=None, sa_type=sa.String(100))  # None for guide items with no permission
    resource: str = Field(sa_type=sa.String(200), nullable=False)
    category: str = Field(sa_type=sa.String(100), nullable=False)
    required: str = Field(sa_type=sa.String(8), nullable=False)
    granted: str | None = Field(default=None, sa_type=sa.String(8))
    verdict: str = Field(sa_type=sa.String(16), nullable=False)
    reason: str | None = Field(default=None, sa_type=sa.String(200))  # why a row is unknown


class Audit(SQLModel, table=True):
    __tablename__ = "audit"
    __table_args__ = (
        sa.Index("ix_audit_at", "at"),
        sa.Index("ix_audit_tenant_id_at", "tenant_id", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    who: str | None = Field(default=None, sa_type=sa.String(NAME_MAX))
    action: str = Field(sa_type=sa.String(40), nullable=False)  # check | sample_data | sample_transaction | view | …
    tenant_id: int | None = Field(
        default=None,
        sa_column_args=[sa.ForeignKey("tenants.id", name="fk_audit_tenant_id", ondelete="SET NULL")],
    )
    tenant: str | None = Field(default=None, sa_type=sa.String(NAME_MAX))  # the name as given, kept if the tenant goes
    outcome: str = Field(sa_type=sa.String(16), nullable=False)  # ok | error | denied | …
    detail: str | None = Field(default=None, sa_type=sa.Text)


class FleetRun(SQLModel, table=True):
    """One fleet recheck: when, by whom and from what, and what it found (0005)."""

    __tablename__ = "fleet_runs"
    __table_args__ = (
        sa.UniqueConstraint("name", name="uq_fleet_runs_name"),
        sa.Index("ix_fleet_runs_started_at", "started_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str | None = Field(default=None, sa_type=sa.String(NAME_MAX))  # workers sharing a run join it by name
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # None: running, or killed halfway
    started_by: str | None = Field(default=None, sa_type=sa.String(NAME_MAX))
    command: str | None = Field(default=None, sa_type=sa.String(200))  # what started it (never a key)
    total: int = Field(default=0, nullable=False)
    recorded: int = Field(default=0, nullable=False)
    failed: int = Field(default=0, nullable=False)
    rate_limited: int = Field(default=0, nullable=False)  # 429s Stripe answered during the run
    status_counts: str | None = Field(default=None, sa_type=sa.Text)  # JSON {status: n}


class FleetItem(SQLModel, table=True):
    """One tenant of a fleet run: its claim (PostgreSQL workers split a run with FOR UPDATE SKIP LOCKED;
    a claim expires, so a crashed worker's tenants are taken over) and its outcome."""

    __tablename__ = "fleet_items"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "slug", name="uq_fleet_items_run_slug"),
        sa.Index("ix_fleet_items_run_state", "run_id", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(
        sa_column_args=[sa.ForeignKey("fleet_runs.id", name="fk_fleet_items_run_id", ondelete="CASCADE")],
        nullable=False,
    )
    slug: str = Field(sa_type=sa.String(120), nullable=False)
    tenant: str = Field(sa_type=sa.String(NAME_MAX), nullable=False)
    state: str = Field(sa_type=sa.String(16), nullable=False)  # pending | claimed | recorded | failed
    claimed_by: str | None = Field(default=None, sa_type=sa.String(NAME_MAX))
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    check_id: int | None = Field(default=None)
    status: str | None = Field(default=None, sa_type=sa.String(16))
    problem: str | None = Field(default=None, sa_type=sa.Text)
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Alert(SQLModel, table=True):
    """Something got worse for a tenant (0005): kept until acknowledged, with its webhook delivery state."""

    __tablename__ = "alerts"
    __table_args__ = (
        sa.Index("ix_alerts_acked_at_created_at", "acked_at", "created_at"),
        sa.Index("ix_alerts_delivery", "delivery"),
    )

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    tenant_id: int | None = Field(
        default=None,
        sa_column_args=[sa.ForeignKey("tenants.id", name="fk_alerts_tenant_id", ondelete="CASCADE")],
    )
    tenant: str = Field(sa_type=sa.String(NAME_MAX), nullable=False)
    check_id: int | None = Field(default=None)
    kinds: str = Field(sa_type=sa.String(100), nullable=False)  # worse, drift, refused (comma-separated)
    text: str = Field(sa_type=sa.Text, nullable=False)  # what the webhook says (masked key only)
    delivery: str = Field(sa_type=sa.String(16), nullable=False)  # pending | delivered | failed
    attempts: int = Field(default=0, nullable=False)
    last_error: str | None = Field(default=None, sa_type=sa.String(300))
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acked_by: str | None = Field(default=None, sa_type=sa.String(NAME_MAX))


class RollupDay(SQLModel, table=True):
    """0008: the fleet's checks per UTC day, kept by record_check (and update_tenant's archive flag).

    One row per (day, archived): the checks recorded that day by tenants with that archived flag, the distinct
    tenants checked that day (any status), and the checks Stripe never answered. Fleet charts read these rows
    instead of walking every check; archived=True rows only count when the figures include archived tenants.
    """

    __tablename__ = "rollup_days"
    __table_args__ = (sa.PrimaryKeyConstraint("day", "archived", name="pk_rollup_days"),)

    day: date = Field(sa_type=sa.Date, primary_key=True)
    archived: bool = Field(primary_key=True)
    checks: int = Field(default=0, nullable=False)
    tenants: int = Field(default=0, nullable=False)
    unreachable: int = Field(default=0, nullable=False)


class RollupStatus(SQLModel, table=True):
    """0008: per UTC day, how many tenants ENDED the day in each status (the status of their last check of the
    day that Stripe answered, by (checked_at, id)); kept by record_check. See core/store/rollup.py."""

    __tablename__ = "rollup_status"
    __table_args__ = (sa.PrimaryKeyConstraint("day", "archived", "status", name="pk_rollup_status"),)

    day: date = Field(sa_type=sa.Date, primary_key=True)
    archived: bool = Field(primary_key=True)
    status: str = Field(sa_type=sa.String(16), primary_key=True)
    tenants: int = Field(default=0, nullable=False)


class LatestProblem(SQLModel, table=True):
    """0010: how many tenants' LATEST check has a scope missing or excess (kind), by the tenant's archived flag;
    kept by record_check and update_tenant (see core/store/latest.py). Rows that reach 0 may stay."""

    __tablename__ = "latest_problems"
    __table_args__ = (
        sa.PrimaryKeyConstraint("archived", "kind", "scope", "resource", "category", name="pk_latest_problems"),
    )

    archived: bool = Field(primary_key=True)
    kind: str = Field(sa_type=sa.String(16), primary_key=True)
    scope: str = Field(sa_type=sa.String(100), primary_key=True)
    resource: str = Field(sa_type=sa.String(200), primary_key=True)
    category: str = Field(sa_type=sa.String(100), primary_key=True)
    tenants: int = Field(default=0, nullable=False)


class KeyTenants(SQLModel, table=True):
    """0010: how many distinct tenants have a check of each key (by fingerprint); kept by record_check. Triage's
    "shared key" flag is `tenants > 1` for the tenant's current key, one join instead of two index probes into
    the checks per tenant. See core/store/latest.py."""

    __tablename__ = "key_tenants"
    __table_args__ = (
        sa.PrimaryKeyConstraint("fingerprint", name="pk_key_tenants"),
        sa.CheckConstraint(f"length(fingerprint) <= {FINGERPRINT_MAX}", name="ck_key_tenants_fingerprint_len"),
    )

    fingerprint: str = Field(sa_type=sa.String(FINGERPRINT_MAX), primary_key=True)
    tenants: int = Field(default=0, nullable=False)


metadata = SQLModel.metadata
tenants_t: sa.Table = Tenant.__table__  # type: ignore[attr-defined]
checks_t: sa.Table = Check.__table__  # type: ignore[attr-defined]
check_rows_t: sa.Table = CheckRow.__table__  # type: ignore[attr-defined]
audit_t: sa.Table = Audit.__table__  # type: ignore[attr-defined]
fleet_runs_t: sa.Table = FleetRun.__table__  # type: ignore[attr-defined]
fleet_items_t: sa.Table = FleetItem.__table__  # type: ignore[attr-defined]
alerts_t: sa.Table = Alert.__table__  # type: ignore[attr-defined]
stripe_keys_t: sa.Table = StripeKey.__table__  # type: ignore[attr-defined]
key_events_t: sa.Table = KeyEvent.__table__  # type: ignore[attr-defined]
rollup_days_t: sa.Table = RollupDay.__table__  # type: ignore[attr-defined]
rollup_status_t: sa.Table = RollupStatus.__table__  # type: ignore[attr-defined]
latest_problems_t: sa.Table = LatestProblem.__table__  # type: ignore[attr-defined]
key_tenants_t: sa.Table = KeyTenants.__table__  # type: ignore[attr-defined]
