"""The API's routers, one module per area."""

from cloud.api.routes.admin import router as admin_router
from cloud.api.routes.alarms import router as alarms_router
from cloud.api.routes.auth import router as auth_router
from cloud.api.routes.commands import router as commands_router
from cloud.api.routes.ops import router as ops_router
from cloud.api.routes.patrols import router as patrols_router
from cloud.api.routes.sites import router as sites_router
from cloud.api.routes.telemetry import router as telemetry_router
from cloud.api.routes.workorders import router as workorders_router

__all__ = [
    "admin_router",
    "alarms_router",
    "auth_router",
    "commands_router",
    "ops_router",
    "patrols_router",
    "sites_router",
    "telemetry_router",
    "workorders_router",
]
