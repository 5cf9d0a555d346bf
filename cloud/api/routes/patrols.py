"""Routes of patrols."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.deps import API_PREFIX
from cloud.api.errors import ErrorBody

__all__ = ["router"]

router = APIRouter(
    prefix=f"{API_PREFIX}/sites",
    tags=["patrols"],
    responses={
        401: {"model": ErrorBody, "description": "Not authenticated"},
        403: {"model": ErrorBody, "description": "Not allowed on this site"},
    },
)
