"""Operations: ``/healthz`` (the process answers), ``/readyz`` (it can serve: database
reachable, schema at the newest migration, time-series store answering) and ``/metrics``.

These three need no token, so load balancers and Prometheus can use them; they reveal
no site data (``/metrics`` labels requests by route template, not by concrete path), and
the reasons ``/readyz`` gives are generic: the details go to the log.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from fastapi import APIRouter, Response
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from cloud.api.context import ApiContext
from cloud.api.deps import Ctx
from cloud.api.errors import ErrorBody, error_response
from cloud.db.errors import MigrationError
from cloud.db.migrate import is_up_to_date
from cloud.ingest.pending import pending_summary
from cloud.timeseries.base import SeriesKey
from cloud.timeseries.errors import TimeSeriesError

__all__ = ["CHECK_TIMEOUT_S", "Health", "Ready", "readiness_checks", "router"]

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S: Final = 5.0
_PROBE: Final = SeriesKey("readyz", "readyz", "readyz", "readyz")

router = APIRouter(tags=["ops"])


class Health(BaseModel):
    status: str = "ok"


class Ready(BaseModel):
    status: str = "ready"
    checks: dict[str, str]


async def _database(ctx: ApiContext) -> dict[str, str]:
    try:
        up = await asyncio.wait_for(
            asyncio.to_thread(is_up_to_date, ctx.db.engine), CHECK_TIMEOUT_S
        )
    except TimeoutError:
        log.debug("readyz: the database did not answer within %s s", CHECK_TIMEOUT_S)
        return {"database": "no answer", "migrations": "unknown"}
    except (MigrationError, SQLAlchemyError) as exc:
        log.debug("readyz: database check failed: %s", exc)
        return {"database": "unreachable", "migrations": "unknown"}
    if not up:
        return {"database": "ok", "migrations": "behind: run `towerwatch cloud migrate`"}
    return {"database": "ok", "migrations": "ok"}


async def _timeseries(ctx: ApiContext) -> dict[str, str]:
    try:
        await asyncio.wait_for(ctx.store.raw(_PROBE, 0, 1, limit=1), CHECK_TIMEOUT_S)
    except TimeoutError:
        log.debug("readyz: the time-series store did not answer within %s s", CHECK_TIMEOUT_S)
        return {"timeseries": "no answer"}
    except TimeSeriesError as exc:
        log.debug("readyz: time-series check failed: %s", exc)
        return {"timeseries": "unavailable"}
    return {"timeseries": "ok"}


async def readiness_checks(ctx: ApiContext) -> dict[str, str]:
    """Each check's verdict (``ok`` or a short reason), run concurrently."""
    database, timeseries = await asyncio.gather(_database(ctx), _timeseries(ctx))
    checks = database | timeseries
    ready = all(verdict == "ok" for verdict in checks.values())
    if ready != ctx.readiness.ready:
        if ready:
            log.info("ready: %s", checks)
        else:
            log.warning("not ready: %s", checks)
        ctx.readiness.ready = ready
    return checks


@router.get("/healthz", summary="Liveness")
async def healthz() -> Health:
    """200 while the process can answer at all."""
    return Health()


@router.get(
    "/readyz",
    summary="Readiness",
    response_model=Ready,
    responses={503: {"model": ErrorBody, "description": "`not_ready`, with each check"}},
)
async def readyz(ctx: Ctx) -> Response:
    """200 when the database is reachable and migrated and the time-series store answers;
    503 `not_ready` otherwise, naming the failing checks in `details.checks`."""
    checks = await readiness_checks(ctx)
    if all(verdict == "ok" for verdict in checks.values()):
        return Response(Ready(checks=checks).model_dump_json(), media_type="application/json")
    failing = ", ".join(f"{name}: {verdict}" for name, verdict in checks.items() if verdict != "ok")
    return error_response(503, "not_ready", f"not ready ({failing})", details={"checks": checks})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(ctx: Ctx) -> Response:
    """Requests by route and status, latency histograms, logins and commands; the events
    waiting in the ingest outbox; the counters of the ingest workers of this process."""
    await ctx.metrics.count_pending(lambda: ctx.run(pending_summary), CHECK_TIMEOUT_S,
                                    ctx.now_ms())
    body, content_type = ctx.metrics.render()
    return Response(body, media_type=content_type)
