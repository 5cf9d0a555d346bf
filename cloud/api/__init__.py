"""The REST API (``/api/v1``): FastAPI app, bearer-token auth, roles scoped to sites."""

from cloud.api.app import API_PREFIX, create_app
from cloud.api.context import ApiContext, CommandSender
from cloud.api.errors import ApiConfigError, ApiError, ErrorBody

__all__ = [
    "API_PREFIX",
    "ApiConfigError",
    "ApiContext",
    "ApiError",
    "CommandSender",
    "ErrorBody",
    "create_app",
]
