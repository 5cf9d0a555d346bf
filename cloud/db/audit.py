"""The audit log: append-only records of who acknowledged, shelved, commanded or changed what.

There is no update or delete here on purpose. ``action`` is a short dotted name
(``alarm.acknowledge``, ``command.write``, ``user.create``); ``target`` names the thing
acted on (``elevator-1/trapped``); ``detail`` holds JSON-able specifics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.db.models import AuditEntry

__all__ = ["list_audit", "record_audit"]


def record_audit(
    session: Session,
    *,
    ts_ms: int,
    user: str | None,
    action: str,
    site: str | None = None,
    target: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry; ``user=None`` records an action of the system itself."""
    if not action:
        raise ValueError("an audit entry needs an action")
    entry = AuditEntry(
        ts_ms=ts_ms,
        username=user,
        action=action,
        site_id=site,
        target=target,
        detail=dict(detail or {}),
    )
    session.add(entry)
    session.flush()
    return entry


def list_audit(
    session: Session,
    *,
    site: str | None = None,
    user: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Entries newest first, filtered by site, user and ``[since_ms, until_ms)``."""
    query = select(AuditEntry).order_by(AuditEntry.ts_ms.desc(), AuditEntry.id.desc())
    if site is not None:
        query = query.where(AuditEntry.site_id == site)
    if user is not None:
        query = query.where(AuditEntry.username == user)
    if since_ms is not None:
        query = query.where(AuditEntry.ts_ms >= since_ms)
    if until_ms is not None:
        query = query.where(AuditEntry.ts_ms < until_ms)
    return list(session.scalars(query.limit(limit)))
