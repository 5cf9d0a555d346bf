"""The published OpenAPI document: tags, the bearer scheme, and our error shape.

FastAPI documents request-validation failures as 422 ``HTTPValidationError``; this API
answers them with 400 and :class:`~cloud.api.errors.ErrorBody`, so the document is
rewritten to say so.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["TAGS", "install_openapi"]

TAGS: Final = [
    {"name": "auth", "description": "Log in for a bearer token; the current user."},
    {"name": "sites", "description": "Sites, gateways, devices and points with online "
                                     "state and last values."},
    {"name": "telemetry", "description": "Time series (raw or downsampled) and batch "
                                         "latest values."},
    {"name": "commands", "description": "Commands to gateways and their outcome."},
    {"name": "alarms", "description": "Alarms (ISA-18.2): list, acknowledge, shelve, comment; "
                                      "live changes over Server-Sent Events; alarm load."},
    {"name": "work-orders", "description": "Work orders with SLA clocks, assets and "
                                           "preventive-maintenance plans."},
    {"name": "patrols", "description": "Security patrols: checkpoints, routes, schedules, "
                                       "tours, NFC scans and exceptions."},
    {"name": "admin", "description": "Ingest health and the audit log."},
    {"name": "ops", "description": "Liveness, readiness and Prometheus metrics."},
]

_ERROR_REF: Final = {"$ref": "#/components/schemas/ErrorBody"}
_FASTAPI_VALIDATION: Final = "#/components/schemas/HTTPValidationError"


def _is_fastapi_validation(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref") == _FASTAPI_VALIDATION)


def _rewrite(schema: dict[str, Any]) -> dict[str, Any]:
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "422" in responses and _is_fastapi_validation(responses["422"]):
                del responses["422"]
            if operation.get("parameters") or operation.get("requestBody"):
                responses.setdefault("400", {
                    "description": "`validation_failed`: `error.details` lists each field",
                    "content": {"application/json": {"schema": _ERROR_REF}},
                })
    components = schema.get("components", {}).get("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` produce the rewritten document (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _rewrite(get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes, tags=app.openapi_tags,
            ))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
