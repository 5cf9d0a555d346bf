"""Errors of the REST API and how every failure becomes one JSON shape.

Every error answer, whatever raised it, is::

    {"error": {"code": "stable_code", "message": "for people", "details": ... | null}}

``code`` is stable (clients branch on it); ``message`` may change wording. The codes:

======  =======================================================================
status  codes
======  =======================================================================
400     ``validation_failed`` (``details``: ``[{"path": "query.start", "message"}]``)
401     ``unauthenticated``, ``invalid_token``, ``token_expired``, ``invalid_credentials``
403     ``forbidden``
404     ``not_found`` (no such route), ``site_not_found``, ``gateway_not_found``,
        ``device_not_found``, ``point_not_found``, ``command_not_found``, ``user_not_found``
405     ``method_not_allowed``
409     ``conflict``, ``user_exists``
422     ``range_too_large``, ``too_many_points``, ``too_many_buckets``, ``too_many_series``,
        ``query_too_large``, ``point_not_writable``, ``weak_password``
429     ``too_many_attempts`` (with ``Retry-After``)
500     ``internal_error``
503     ``database_unavailable``, ``timeseries_unavailable``, ``command_not_sent``,
        ``not_ready``
======  =======================================================================

Error tree::

    ApiError            an HTTP error answer: status, code, message, details, headers
    ApiConfigError      the API cannot start with these settings (a missing or short secret)

Store errors (:mod:`cloud.db.errors`, :mod:`cloud.timeseries.errors`) and SQLAlchemy's
connection errors are mapped here, so routes let them propagate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud.db.errors import (
    InvalidCredentials,
    MigrationError,
    StoreError,
    UnknownCommand,
    UnknownGateway,
    UnknownSite,
    UnknownUser,
    UserExists,
    WeakPassword,
)
from cloud.timeseries.errors import QueryTooLarge, StoreUnavailable, TimeSeriesError

__all__ = [
    "ApiConfigError",
    "ApiError",
    "ErrorBody",
    "ErrorInfo",
    "FieldProblem",
    "error_response",
    "install_error_handlers",
    "validation_error",
]

log = logging.getLogger(__name__)


class ApiConfigError(ValueError):
    """The API cannot be built from these settings; the message says what to fix."""


class ApiError(Exception):
    """An error answer; raise it anywhere in a request and the handler renders it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})
        super().__init__(f"{status} {code}: {message}")


# -- the body, as published in OpenAPI -------------------------------------------------
class FieldProblem(BaseModel):
    """One invalid field of a request."""

    path: str = Field(description="Where: `body.username`, `query.start`, `path.site`.")
    message: str


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `site_not_found`.")
    message: str = Field(description="Human-readable explanation (wording may change).")
    details: Any = Field(
        default=None,
        description="Specifics: a list of field problems for `validation_failed`, "
        "else an object or null.",
    )


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorInfo


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def validation_error(problems: Iterable[tuple[str, str]]) -> ApiError:
    """A 400 ``validation_failed`` naming each ``(path, message)``."""
    details = [{"path": path, "message": message} for path, message in problems]
    summary = "; ".join(f"{d['path']}: {d['message']}" for d in details)
    return ApiError(400, "validation_failed", f"invalid request: {summary}", details=details)


# -- mapping --------------------------------------------------------------------------
_HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_attempts",
    503: "unavailable",
}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _path(loc: Sequence[Any]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts) or "(request)"


def _store_error(exc: StoreError) -> ApiError:
    if isinstance(exc, UnknownSite):
        return ApiError(404, "site_not_found", str(exc), details={"site": exc.site})
    if isinstance(exc, UnknownGateway):
        details = {"site": exc.site, "gateway": exc.gateway}
        return ApiError(404, "gateway_not_found", str(exc), details=details)
    if isinstance(exc, UnknownCommand):
        return ApiError(404, "command_not_found", str(exc), details={"request_id": exc.request_id})
    if isinstance(exc, UnknownUser):
        return ApiError(404, "user_not_found", str(exc))
    if isinstance(exc, UserExists):
        return ApiError(409, "user_exists", str(exc))
    if isinstance(exc, WeakPassword):
        return ApiError(422, "weak_password", str(exc))
    if isinstance(exc, InvalidCredentials):
        return ApiError(401, "invalid_credentials", str(exc))
    if isinstance(exc, MigrationError):
        log.warning("database not usable: %s", exc)
        return ApiError(503, "database_unavailable", "the database is not ready")
    log.error("unexpected store error: %s", exc)
    return ApiError(500, "internal_error", "internal error")


def _timeseries_error(exc: TimeSeriesError) -> ApiError:
    if isinstance(exc, QueryTooLarge):
        return ApiError(422, "query_too_large", str(exc), details={"limit": exc.bound})
    log.warning("time-series store failed: %s", exc)
    if isinstance(exc, StoreUnavailable):
        return ApiError(503, "timeseries_unavailable", "the time-series store is unavailable")
    return ApiError(503, "timeseries_unavailable", "the time-series store failed to answer")


def _render(exc: ApiError) -> JSONResponse:
    return error_response(
        exc.status, exc.code, exc.message, details=exc.details, headers=exc.headers
    )


# -- handlers -------------------------------------------------------------------------
async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _render(exc)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _HTTP_CODES.get(status, f"http_{status}")
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else _phrase(status)
    return error_response(status, code, message, headers=exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # The offending input is never echoed: it may be a password.
    problems = [
        (_path(err.get("loc", ())), str(err.get("msg", "invalid")).removeprefix("Value error, "))
        for err in exc.errors()
    ]
    return _render(validation_error(problems))


async def _store_failure(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StoreError)
    return _render(_store_error(exc))


async def _timeseries_failure(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TimeSeriesError)
    return _render(_timeseries_error(exc))


async def _database_down(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", exc)
    return error_response(503, "database_unavailable", "the database is unavailable")


async def _unexpected(_request: Request, _exc: Exception) -> JSONResponse:
    # Starlette re-raises the exception after this answer, so the server logs it.
    return error_response(500, "internal_error", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as :class:`ErrorBody`."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StoreError, _store_failure)
    app.add_exception_handler(TimeSeriesError, _timeseries_failure)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(InterfaceError, _database_down)
    app.add_exception_handler(Exception, _unexpected)
