"""Errors of work orders, assets, SLA policies and maintenance plans.

::

    WorkOrderError              status + stable code, so the API renders it as is
    ├── InvalidInput            a field is wrong (400 validation_failed, names the field)
    ├── NotFound                404: work_order_not_found, asset_not_found,
    │                           pm_plan_not_found, device_not_found, photo_not_found
    ├── NotPermitted            403 forbidden: the role does not allow this transition
    ├── TransitionRefused       409 invalid_transition: not from this state
    ├── Conflict                409 conflict: another open work order has this key, a
    │                           name is taken, a follow-up is missing before closing
    └── PhotoRejected           413 payload_too_large / 415 unsupported_media_type
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Conflict",
    "InvalidInput",
    "NotFound",
    "NotPermitted",
    "PhotoRejected",
    "TransitionRefused",
    "WorkOrderError",
]


class WorkOrderError(Exception):
    """Base: ``status`` and ``code`` say how the API answers; ``details`` says what."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None) -> None:
        self.message = message
        self.details = details
        super().__init__(message)


class InvalidInput(WorkOrderError):
    status = 400
    code = "validation_failed"

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}",
                         details=[{"path": f"body.{field}", "message": message}])


class NotFound(WorkOrderError):
    status = 404

    def __init__(self, what: str, key: object) -> None:
        self.code = f"{what}_not_found"
        super().__init__(f"no {what.replace('_', ' ')} {key!r}", details={what: key})


class NotPermitted(WorkOrderError):
    status = 403
    code = "forbidden"


class TransitionRefused(WorkOrderError):
    status = 409
    code = "invalid_transition"


class Conflict(WorkOrderError):
    status = 409
    code = "conflict"


class PhotoRejected(WorkOrderError):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(message)
