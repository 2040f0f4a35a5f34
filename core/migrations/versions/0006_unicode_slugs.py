"""Tenant slugs keep Unicode letters: "北京 Foods", "上海 Foods" and "Foods" are three tenants again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

Why: until now a slug kept only ASCII letters and digits, so names that differ only in other letters
collapsed onto one slug and therefore one tenant: the checks of "北京 Foods" and "上海 Foods" landed in the
history of "Foods", and drift and revoked-key detection compared one business's keys with another's.

What this does, tenant by tenant: the slug is recomputed with the new rule (NFKC, case-folded, letters, marks
and digits of any script kept; the same rule as core.store.rules.slugify, frozen here). Two cases cannot be
fixed by re-slugging and are left as they are, and reported:
- kept_slug: two existing tenants would get the same new slug (e.g. "Straße" and "Strasse"). Both keep the
  slug they had; each stays reachable by its exact name.
- merged: checks recorded under another name went into this tenant because the old slugs were equal (found
  from the audit trail, which keeps each check's tenant name as given). Those checks are not moved (nothing
  says which key belonged to whom for sure); new checks under those names now go to tenants of their own.
Each report is logged on Alembic's logger and kept as an audit entry (action "reslug", who "migration 0006"),
so the Audit trail page and the About page show it after the upgrade.

Downgrade: the old ASCII slugs come back; tenants that would then share one get "-<id>" appended.
"""
from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections import defaultdict
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from core.store.types import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
WHO = "migration 0006"

tenants = sa.table("tenants", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("slug", sa.String))
audit = sa.table(
    "audit",
    sa.column("at", UTCDateTime),
    sa.column("who", sa.String),
    sa.column("action", sa.String),
    sa.column("tenant_id", sa.Integer),
    sa.column("tenant", sa.String),
    sa.column("outcome", sa.String),
    sa.column("detail", sa.Text),
)


def _hashed(name: str) -> str:
    return "tenant-" + hashlib.sha256(name.strip().casefold().encode()).hexdigest()[:10]


def new_slug(name: str) -> str:
    """core.store.rules.slugify as of 0006 (frozen: later changes to the code must not change this step)."""
    clean = name.strip()
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", clean).casefold())
    slug = re.sub(r"-+", "-", "".join(ch if unicodedata.category(ch)[0] in "LMN" else "-" for ch in folded))
    slug = slug.strip("-")[:100].strip("-")
    return slug or _hashed(clean)


def old_slug(name: str) -> str:
    """The slug rule before 0006 (ASCII only)."""
    clean = name.strip()
    ascii_ = unicodedata.normalize("NFKD", clean).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-")[:100].strip("-")
    return slug or _hashed(clean)


def _quoted(names: list[str]) -> str:
    q = [f"'{n}'" for n in names]
    return q[0] if len(q) == 1 else ", ".join(q[:-1]) + " and " + q[-1]


def _set_slugs(conn, changes: dict[int, str]) -> None:
    """Two steps, so that swapping slugs never trips the unique constraint half-way."""
    for tid in changes:
        conn.execute(tenants.update().where(tenants.c.id == tid).values(slug=f"~reslug-{tid}"))
    for tid, slug in changes.items():
        conn.execute(tenants.update().where(tenants.c.id == tid).values(slug=slug))


def _report(conn, rows: list[dict]) -> None:
    now = datetime.now(UTC)
    for r in rows:
        log.warning("tenant %r: %s", r["tenant"], r["detail"])
        conn.execute(audit.insert().values(at=now, who=WHO, action="reslug", **r))


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(tenants.c.id, tenants.c.name, tenants.c.slug).order_by(tenants.c.id)).all()
    name = {r.id: r.name for r in rows}
    old = {r.id: r.slug for r in rows}
    new = {r.id: new_slug(r.name) for r in rows}
    keep: set[int] = set()
    while True:  # until no two tenants share a slug: a tenant whose new slug is taken keeps its old one
        final = {tid: old[tid] if tid in keep else new[tid] for tid in name}
        groups: dict[str, list[int]] = defaultdict(list)
        for tid, slug in final.items():
            groups[slug].append(tid)
        more = {tid for ids in groups.values() if len(ids) > 1 for tid in ids if tid not in keep}
        if not more:
            break
        keep |= more
    changes = {tid: final[tid] for tid in name if final[tid] != old[tid]}
    _set_slugs(conn, changes)

    report: list[dict] = []
    for tid in sorted(keep):
        if new[tid] == old[tid]:
            continue
        others = sorted(name[o] for o in name if o != tid and new[tid] in (new[o], final[o]))
        report.append({
            "tenant_id": tid, "tenant": name[tid], "outcome": "kept_slug",
            "detail": f"Its new slug '{new[tid]}' would be the same as that of {_quoted(others)}, so it keeps its "
                      f"old slug '{old[tid]}'; it is still found by its exact name, and renaming one of them "
                      "separates them for good.",
        })

    # merged before: audit entries filed under this tenant with a name whose new slug is another one
    entries = conn.execute(
        sa.select(audit.c.tenant_id, audit.c.tenant, audit.c.action, sa.func.count().label("n"))
        .where(audit.c.tenant_id.is_not(None), audit.c.tenant.is_not(None))
        .group_by(audit.c.tenant_id, audit.c.tenant, audit.c.action)
    ).all()
    merged: dict[int, dict[str, int]] = defaultdict(dict)
    for e in entries:
        if e.tenant_id in final and new_slug(e.tenant) not in (final[e.tenant_id], new[e.tenant_id]):
            counts = merged[e.tenant_id]
            counts[e.tenant] = counts.get(e.tenant, 0) + (e.n if e.action == "check" else 0)
    for tid, counts in sorted(merged.items()):
        parts = [f"'{n}' ({c} check{'s' if c != 1 else ''})" for n, c in sorted(counts.items())]
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        report.append({
            "tenant_id": tid, "tenant": name[tid], "outcome": "merged",
            "detail": f"Entries recorded under {listed} went into this tenant's history because the old slugs "
                      "ignored non-ASCII letters; they stay here, and new checks under those names now go to "
                      "tenants of their own.",
        })
    _report(conn, report)


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(tenants.c.id, tenants.c.name, tenants.c.slug).order_by(tenants.c.id)).all()
    taken: set[str] = set()
    changes: dict[int, str] = {}
    for r in rows:
        slug = old_slug(r.name)
        if slug in taken:
            slug = f"{slug[:100]}-{r.id}"
        taken.add(slug)
        if slug != r.slug:
            changes[r.id] = slug
    _set_slugs(conn, changes)
