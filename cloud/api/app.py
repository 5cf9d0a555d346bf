"""``create_app``: the REST API as a FastAPI application.

=======  ==============================================================  ==============
method   path                                                            who
=======  ==============================================================  ==============
GET      /healthz, /readyz, /metrics                                     anyone
GET      /api/v1/openapi.json, /api/v1/docs                              anyone
POST     /api/v1/auth/login                                              anyone
GET      /api/v1/auth/me                                                 any user
GET      /api/v1/sites                                                   any user (own)
GET      /api/v1/sites/{site}                                            any role there
GET      /api/v1/sites/{site}/gateways                                   read
GET      /api/v1/sites/{site}/devices                                    read
GET      /api/v1/sites/{site}/devices/{gateway}/{device}                 read
GET      /api/v1/sites/{site}/devices/{gateway}/{device}/points          read
GET      …/devices/{gateway}/{device}/points/{point}/series              read
GET      /api/v1/sites/{site}/latest?points=gw/dev/pt,…                  read
POST     /api/v1/sites/{site}/gateways/{gateway}/commands                command
GET      /api/v1/sites/{site}/gateways/{gateway}/commands/{request_id}   read
GET      /api/v1/sites/{site}/commands                                   read
GET      /api/v1/sites/{site}/ingest                                     manage
GET      /api/v1/sites/{site}/audit                                      manage
GET      /api/v1/ingest, /api/v1/audit                                   administer
…        /api/v1/sites/{site}/alarms…  (docs/alarms.md)                  read / ack / manage
…        /api/v1/sites/{site}/work-orders…, assets, maintenance plans,   read / ack / manage
         SLA policies and breaches  (docs/work-orders.md)
…        /api/v1/sites/{site}/patrol…  (docs/patrols.md)                 patrol / manage
=======  ==============================================================  ==============

Everything is built here from arguments and kept on ``app.state.context``; nothing is
read or connected at import. The caller owns the database, the time-series store and
the command sender (it opens and closes them); the app only uses them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI

from cloud.api.auth import LoginLimiter, TokenSigner, load_secret
from cloud.api.context import ApiContext, CommandSender
from cloud.api.deps import API_PREFIX
from cloud.api.errors import install_error_handlers
from cloud.api.metrics import ApiMetrics, MetricsMiddleware
from cloud.api.openapi import TAGS, install_openapi
from cloud.api.routes import (
    admin_router,
    alarms_router,
    auth_router,
    commands_router,
    ops_router,
    patrols_router,
    sites_router,
    telemetry_router,
    workorders_router,
)
from cloud.api.routes.patrol_common import install_patrols
from cloud.db.engine import Database
from cloud.ingest.metrics import IngestView
from cloud.patrols.runtime import PatrolRuntime
from cloud.security.passwords import DEFAULT_HASHER, PasswordHasher
from cloud.settings import CloudSettings
from cloud.timeseries.base import TimeSeriesStore
from cloud.workorders.photos import PhotoStore

__all__ = ["API_PREFIX", "create_app"]

_DESCRIPTION = """\
Towerwatch: live state, telemetry and commands for the equipment of managed buildings.

Authenticate with `POST /api/v1/auth/login`, then send `Authorization: Bearer <token>`.
Roles (`viewer`, `engineer`, `supervisor`, `guard`, `admin`) are held per site or for
every site. Times are UTC epoch milliseconds. Every error answer is
`{"error": {"code", "message", "details"}}` with a stable `code`.
"""


def _version() -> str:
    try:
        return version("towerwatch")
    except PackageNotFoundError:
        return "0+unknown"


def create_app(
    settings: CloudSettings,
    *,
    db: Database,
    store: TimeSeriesStore,
    commands: CommandSender,
    clock: Callable[[], float] = time.time,
    hasher: PasswordHasher = DEFAULT_HASHER,
    patrols: PatrolRuntime | None = None,
    ingest: IngestView | None = None,
) -> FastAPI:
    """The API app. ``clock`` gives seconds since the epoch (tests inject one); ``hasher``
    verifies passwords (tests pass a cheap one); ``patrols`` is the service's patrol
    runtime (one is built from the settings when not given); ``ingest`` shows the
    service's ingest workers on ``/metrics``. Raises
    :class:`~cloud.api.errors.ApiConfigError` when the API secret is unusable."""
    api = settings.api
    secret, _persistent = load_secret(api)
    context = ApiContext(
        settings=api,
        db=db,
        store=store,
        commands=commands,
        clock=clock,
        tokens=TokenSigner(secret),
        limiter=LoginLimiter(api.login_attempts, api.login_window),
        metrics=ApiMetrics(),
        hasher=hasher,
    )
    app = FastAPI(
        title="Towerwatch API",
        version=_version(),
        description=_DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        openapi_tags=TAGS,
    )
    if ingest is not None:
        context.metrics.watch_ingest(ingest)
    app.state.context = context
    install_patrols(app, patrols or PatrolRuntime.from_settings(settings.patrols))
    app.state.photo_store = PhotoStore(api.photos_dir, max_bytes=api.photo_max_bytes)
    install_error_handlers(app)
    static = frozenset(p for p in (app.openapi_url, app.docs_url) if p)
    app.add_middleware(MetricsMiddleware, metrics=context.metrics, static_paths=static)
    app.include_router(ops_router)
    app.include_router(auth_router)
    app.include_router(sites_router)
    app.include_router(telemetry_router)
    app.include_router(commands_router)
    app.include_router(alarms_router)
    app.include_router(workorders_router)
    app.include_router(patrols_router)
    app.include_router(admin_router)
    install_openapi(app)
    return app
