"""The tenants' names: what the pages' tenant pickers list (the tenant rows themselves, their lookups and their
writes are core/store/tenants.py's)."""
from __future__ import annotations

import sqlalchemy as sa

from core.store.db import Database
from core.store.rows import TenantNameRow
from core.store.sql import t


class NameQueries:
    """The tenants' names (composed into Store)."""

    db: Database

    def tenant_names(self, *, include_archived: bool = False) -> list[TenantNameRow]:
        """Every tenant's name and slug, by name (case-insensitive): what the pages' tenant pickers list. Two columns
        of the tenants table only, so it stays quick at 20,000 tenants (list_tenants also joins each latest check)."""
        q = sa.select(t.c.name, t.c.slug).order_by(sa.func.lower(t.c.name), t.c.id)
        if not include_archived:
            q = q.where(t.c.archived.is_(False))
        with self.db.connect() as conn:
            return [{"name": name, "slug": slug} for name, slug in conn.execute(q)]
