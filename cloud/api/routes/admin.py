"""Ingest health and the audit log, for supervisors (their sites) and administrators.

- ``GET /api/v1/sites/{site}/ingest`` (``manage`` on the site): dead letters whose topic
  belongs to the site (count and the newest few, with reasons) and the sequence counters
  (messages, gaps, missing, late) of each of its gateways' boots.
- ``GET /api/v1/ingest`` (administrators): the same across every site, including dead
  letters whose topic names no site.
- ``GET /api/v1/sites/{site}/audit`` (``manage``) and ``GET /api/v1/audit`` (administrators).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.api.deps import API_PREFIX, IDENTIFIER_REGEX, Admin, Ctx, ManageSite, require_site
from cloud.api.errors import ErrorBody, validation_error
from cloud.api.timeparse import parse_time
from cloud.db.audit import list_audit
from cloud.db.dead_letters import count_dead_letters, list_dead_letters
from cloud.db.dedupe import gateway_key, seq_streams
from cloud.db.models import AuditEntry, DeadLetter, SeqStream
from cloud.db.registry import list_gateways

__all__ = ["AuditOut", "DeadLetterOut", "IngestOut", "router"]

PREVIEW_CHARS = 200

router = APIRouter(
    tags=["admin"],
    responses={
        401: {"model": ErrorBody, "description": "Not authenticated"},
        403: {"model": ErrorBody, "description": "Supervisors and administrators only"},
        404: {"model": ErrorBody, "description": "No such site"},
    },
)

Recent = Annotated[int, Query(ge=0, le=100, description="How many recent dead letters.")]
Limit = Annotated[int, Query(ge=1, le=1000)]
TimeArg = Annotated[str | None, Query(description="Epoch ms or ISO-8601 with a zone.")]
UserArg = Annotated[str | None, Query(max_length=64, description="Only this user's entries.")]


class DeadLetterOut(BaseModel):
    id: int
    received: int = Field(description="Cloud time, UTC epoch ms.")
    topic: str
    reason: str
    payload_size: int
    payload_preview: str = Field(description=f"The first {PREVIEW_CHARS} characters.")


class SeqStreamOut(BaseModel):
    boot_id: str
    high_water: int
    messages: int
    gaps: int
    missing: int = Field(description="Skipped sequence numbers not received (yet).")
    late: int
    first: int
    last: int


class GatewayIngest(BaseModel):
    gateway: str = Field(description="`gateway` for a site's report, `site/gateway` otherwise.")
    messages: int
    gaps: int
    missing: int
    late: int
    streams: list[SeqStreamOut]


class IngestOut(BaseModel):
    site: str | None
    dead_letters: int
    recent_dead_letters: list[DeadLetterOut]
    gateways: list[GatewayIngest]


class AuditOut(BaseModel):
    id: int
    ts: int
    user: str | None
    action: str
    site: str | None
    target: str | None
    detail: dict[str, Any]


def _letter(row: DeadLetter) -> DeadLetterOut:
    preview = row.payload[: PREVIEW_CHARS * 4].decode("utf-8", errors="replace")[:PREVIEW_CHARS]
    return DeadLetterOut(id=row.id, received=row.received_ms, topic=row.topic, reason=row.reason,
                         payload_size=row.payload_size, payload_preview=preview)


def _gateway(name: str, streams: Sequence[SeqStream]) -> GatewayIngest:
    out = [
        SeqStreamOut(boot_id=s.boot_id, high_water=s.high_water, messages=s.messages,
                     gaps=s.gaps, missing=s.missing, late=s.late, first=s.first_ms,
                     last=s.last_ms)
        for s in streams
    ]
    return GatewayIngest(
        gateway=name, streams=out, messages=sum(s.messages for s in out),
        gaps=sum(s.gaps for s in out), missing=sum(s.missing for s in out),
        late=sum(s.late for s in out),
    )


def _site_letters(session: Session, site: str, recent: int) -> tuple[int, list[DeadLetter]]:
    on_site = DeadLetter.topic.startswith(f"tw/v1/{site}/", autoescape=True)
    count = session.scalar(select(func.count()).select_from(DeadLetter).where(on_site)) or 0
    rows = session.scalars(
        select(DeadLetter).where(on_site).order_by(DeadLetter.id.desc()).limit(recent)
    )
    return count, list(rows)


def _site_ingest(site: str, recent: int) -> Callable[[Session], IngestOut]:
    def work(session: Session) -> IngestOut:
        require_site(session, site)
        count, letters = _site_letters(session, site, recent)
        gateways = [
            _gateway(g.id, seq_streams(session, gateway_key(site, g.id)))
            for g in list_gateways(session, site)
        ]
        return IngestOut(site=site, dead_letters=count,
                         recent_dead_letters=[_letter(r) for r in letters], gateways=gateways)

    return work


def _all_ingest(recent: int) -> Callable[[Session], IngestOut]:
    def work(session: Session) -> IngestOut:
        by_gateway: dict[str, list[SeqStream]] = defaultdict(list)
        for stream in seq_streams(session):
            by_gateway[stream.gateway_key].append(stream)
        letters = list_dead_letters(session, limit=recent) if recent else []
        return IngestOut(
            site=None, dead_letters=count_dead_letters(session),
            recent_dead_letters=[_letter(r) for r in letters],
            gateways=[_gateway(name, streams) for name, streams in sorted(by_gateway.items())],
        )

    return work


def _time_args(since: str | None, until: str | None) -> tuple[int | None, int | None]:
    out: list[int | None] = []
    problems: list[tuple[str, str]] = []
    for name, text in (("since", since), ("until", until)):
        try:
            out.append(None if text is None else parse_time(text))
        except ValueError as exc:
            problems.append((f"query.{name}", str(exc)))
    if problems:
        raise validation_error(problems)
    return out[0], out[1]


def _user(name: str | None) -> str | None:
    return None if name is None else name.strip().lower()


def _audit_out(row: AuditEntry) -> AuditOut:
    return AuditOut(id=row.id, ts=row.ts_ms, user=row.username, action=row.action,
                    site=row.site_id, target=row.target, detail=row.detail)


@router.get(f"{API_PREFIX}/sites/{{site}}/ingest", summary="Ingest health of a site")
async def site_ingest(access: ManageSite, ctx: Ctx, recent: Recent = 10) -> IngestOut:
    """Dead letters of the site's topics and each gateway's sequence counters."""
    return await ctx.run(_site_ingest(access.site, recent))


@router.get(f"{API_PREFIX}/ingest", summary="Ingest health of every site")
async def all_ingest(_admin: Admin, ctx: Ctx, recent: Recent = 10) -> IngestOut:
    """All dead letters (also those naming no site) and every gateway's counters."""
    return await ctx.run(_all_ingest(recent))


@router.get(f"{API_PREFIX}/sites/{{site}}/audit", summary="Audit log of a site")
async def site_audit(
    access: ManageSite, ctx: Ctx, user: UserArg = None, since: TimeArg = None,
    until: TimeArg = None, limit: Limit = 100,
) -> list[AuditOut]:
    """Entries newest first, within `[since, until)`."""
    since_ms, until_ms = _time_args(since, until)

    def work(session: Session) -> list[AuditOut]:
        require_site(session, access.site)
        rows = list_audit(session, site=access.site, user=_user(user), since_ms=since_ms,
                          until_ms=until_ms, limit=limit)
        return [_audit_out(r) for r in rows]

    return await ctx.run(work)


@router.get(f"{API_PREFIX}/audit", summary="Audit log of every site")
async def all_audit(
    _admin: Admin, ctx: Ctx,
    site: Annotated[str | None, Query(pattern=IDENTIFIER_REGEX)] = None,
    user: UserArg = None, since: TimeArg = None, until: TimeArg = None, limit: Limit = 100,
) -> list[AuditOut]:
    """Entries newest first (administrators only; also entries of no site)."""
    since_ms, until_ms = _time_args(since, until)

    def work(session: Session) -> list[AuditOut]:
        rows = list_audit(session, site=site, user=_user(user), since_ms=since_ms,
                          until_ms=until_ms, limit=limit)
        return [_audit_out(r) for r in rows]

    return await ctx.run(work)
