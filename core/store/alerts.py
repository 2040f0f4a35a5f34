"""Alerts (table from migration 0005): the outbox a recorded check's alert is written to (in the check's own
transaction, core/store/checks.py) and that the background sender (core/features/alerts.py) delivers, and their
acknowledgement on Triage.
"""
from __future__ import annotations

import sqlalchemy as sa

from core.engine.redact import redact
from core.store.checks import insert_alert
from core.store.db import Database
from core.store.models import NAME_MAX, alerts_t
from core.store.names import TenantName
from core.store.sql import optional_text
from core.store.types import utcnow

a_ = alerts_t


class AlertQueries:
    """Alerts: added, delivered, acknowledged (composed into Store)."""

    db: Database

    def add_alert(self, *, tenant_id: int | None, tenant: str, check_id: int | None, kinds: list[str],
                  text: str, delivery: str = "pending") -> int:
        TenantName.parse(tenant)
        with self.db.connect(write=True) as conn:
            return insert_alert(conn, tenant_id=tenant_id, tenant=tenant, check_id=check_id, kinds=kinds, text=text,
                                delivery=delivery)

    def get_alert(self, alert_id: int) -> dict | None:
        with self.db.connect() as conn:
            row = conn.execute(sa.select(a_).where(a_.c.id == alert_id)).first()
            return dict(row._mapping) if row else None

    def pending_alerts(self, limit: int = 100) -> list[dict]:
        with self.db.connect() as conn:
            return [dict(x._mapping) for x in conn.execute(
                sa.select(a_).where(a_.c.delivery == "pending").order_by(a_.c.id).limit(int(limit)))]

    def mark_alert_delivery(self, alert_id: int, *, delivery: str, attempts: int, error: str | None) -> None:
        values: dict = {"delivery": delivery, "attempts": attempts, "last_error": (redact(error) or "")[:300] or None}
        if delivery == "delivered":
            values["delivered_at"] = utcnow()
        with self.db.connect(write=True) as conn:
            conn.execute(a_.update().where(a_.c.id == alert_id).values(**values))

    def open_alerts(self, limit: int = 200) -> list[dict]:
        """Alerts nobody has acknowledged, newest first."""
        with self.db.connect() as conn:
            return [dict(x._mapping) for x in conn.execute(
                sa.select(a_).where(a_.c.acked_at.is_(None)).order_by(a_.c.created_at.desc(), a_.c.id.desc())
                .limit(int(limit)))]

    def ack_alert(self, alert_id: int, *, who: str | None) -> dict | None:
        """Acknowledge an alert (once); returns it, or None if there is no such alert."""
        who_ = optional_text(who, "user name", NAME_MAX)
        with self.db.connect(write=True) as conn:
            conn.execute(a_.update().where(a_.c.id == alert_id, a_.c.acked_at.is_(None))
                         .values(acked_at=utcnow(), acked_by=who_))
            row = conn.execute(sa.select(a_).where(a_.c.id == alert_id)).first()
            return dict(row._mapping) if row else None
