"""What the patrol routes share: the patrol runtime on ``app.state``, running service code
with patrol errors turned into API errors, and the guard's identity from a bearer token or
the tap cookie.

``install_patrols(app, runtime)`` puts a :class:`~cloud.patrols.runtime.PatrolRuntime` on
the app (``create_app`` calls it); without one the patrol routes answer 503
``patrols_not_configured``.

Patrol error codes: 404 ``checkpoint_not_found``, ``route_not_found``,
``schedule_not_found``, ``tour_not_found``, ``patrol_exception_not_found``; 409
``conflict``; 400 ``validation_failed``; 422 ``tap_rejected``; 503
``patrol_keys_unavailable``, ``patrols_not_configured``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Final, TypeVar, cast

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.orm import Session

from cloud.api.context import ApiContext
from cloud.api.deps import Ctx, SiteAccess, SiteId, current_user, forbidden
from cloud.api.errors import ApiError, validation_error
from cloud.db.roles import Action
from cloud.patrols.errors import (
    PatrolConfigError,
    PatrolConflict,
    PatrolError,
    PatrolInvalid,
    PatrolNotFound,
    TapRejected,
)
from cloud.patrols.runtime import PatrolRuntime

__all__ = [
    "COOKIE",
    "AnyPatrolSite",
    "GuardSite",
    "PatrolSite",
    "Runtime",
    "get_runtime",
    "install_patrols",
    "patrol_call",
]

T = TypeVar("T")
COOKIE: Final = "tw_patrol"


def install_patrols(app: FastAPI, runtime: PatrolRuntime) -> None:
    app.state.patrols = runtime


def get_runtime(request: Request) -> PatrolRuntime:
    runtime = getattr(request.app.state, "patrols", None)
    if runtime is None:
        raise ApiError(503, "patrols_not_configured", "the patrol service is not configured")
    return cast(PatrolRuntime, runtime)


Runtime = Annotated[PatrolRuntime, Depends(get_runtime)]


def _api_error(exc: PatrolError) -> ApiError:
    if isinstance(exc, PatrolNotFound):
        code = exc.what.replace(" ", "_") + "_not_found"
        return ApiError(404, code, str(exc), details={"id": str(exc.key)})
    if isinstance(exc, PatrolInvalid):
        return validation_error([(f"body.{exc.field}", str(exc).split(": ", 1)[-1])])
    if isinstance(exc, PatrolConflict):
        return ApiError(409, "conflict", str(exc))
    if isinstance(exc, PatrolConfigError):
        return ApiError(503, "patrol_keys_unavailable", str(exc))
    if isinstance(exc, TapRejected):
        return ApiError(422, "tap_rejected", str(exc), details={"result": exc.kind})
    return ApiError(500, "internal_error", "internal error")


async def patrol_call(ctx: ApiContext, work: Callable[[Session], T]) -> T:
    """Run ``work`` in one transaction; patrol errors become API errors (rolled back)."""
    try:
        return await ctx.run(work)
    except PatrolError as exc:
        raise _api_error(exc) from None


def _site_check(*actions: Action, cookie_ok: bool) -> Callable[..., Awaitable[SiteAccess]]:
    async def check(site: SiteId, request: Request, ctx: Ctx) -> SiteAccess:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            token = request.cookies.get(COOKIE, "") if cookie_ok else ""
        credentials = (HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
                       if token else None)
        user = await current_user(ctx, credentials)
        if not any(user.can(action, site) for action in actions):
            wanted = " or ".join(a.value for a in actions)
            raise forbidden(f"you may not {wanted} on site {site!r}")
        return SiteAccess(site, user)

    check.__name__ = "patrol_" + "_".join(a.value for a in actions) + "_access"
    return check


GuardSite = Annotated[SiteAccess, Depends(_site_check(Action.PATROL, cookie_ok=True))]
"""The ``patrol`` action on the site, by bearer token or the tap cookie."""
PatrolSite = Annotated[SiteAccess, Depends(_site_check(Action.MANAGE, cookie_ok=False))]
AnyPatrolSite = Annotated[SiteAccess, Depends(
    _site_check(Action.PATROL, Action.MANAGE, cookie_ok=True))]
"""Guards and supervisors (round progress)."""
"""The ``manage`` action on the site (supervisors), by bearer token."""
