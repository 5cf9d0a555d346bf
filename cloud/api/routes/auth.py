"""``/api/v1/auth``: log in for a bearer token; who am I."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from cloud.api.context import ApiContext
from cloud.api.deps import API_PREFIX, Ctx, CurrentUser
from cloud.api.errors import ApiError, ErrorBody
from cloud.db.errors import InvalidCredentials
from cloud.db.roles import ALL_SITES, Role
from cloud.db.users import authenticate, roles_for

__all__ = ["LoginRequest", "LoginResponse", "RoleGrant", "UserOut", "router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix=f"{API_PREFIX}/auth", tags=["auth"])


class LoginRequest(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=256)]
    password: Annotated[str, Field(min_length=1, max_length=4096)]


class RoleGrant(BaseModel):
    role: Role
    site: str | None = Field(description="The site, or null for every site.")


class UserOut(BaseModel):
    username: str
    display_name: str
    roles: list[RoleGrant]


class LoginResponse(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer <token>`.")
    token_type: str = "bearer"
    expires: int = Field(description="When the token expires, UTC epoch milliseconds.")
    user: UserOut


class MeResponse(UserOut):
    token_expires: int = Field(description="When this token expires, UTC epoch ms.")


def role_grants(roles: Mapping[str, Set[Role]]) -> list[RoleGrant]:
    return [
        RoleGrant(role=role, site=None if scope == ALL_SITES else scope)
        for scope in sorted(roles, key=lambda s: (s != ALL_SITES, s))
        for role in sorted(roles[scope])
    ]


@dataclass(frozen=True)
class _LoggedIn:
    user_id: int
    username: str
    display_name: str
    roles: Mapping[str, Set[Role]]
    token_version: str


def _authenticate(ctx: ApiContext, username: str, password: str) -> Callable[[Session], _LoggedIn]:
    def work(session: Session) -> _LoggedIn:
        user = authenticate(session, username, password, hasher=ctx.hasher)
        roles = {site: frozenset(held) for site, held in roles_for(user).items()}
        version = ctx.tokens.user_version(user.id, user.password_hash)
        return _LoggedIn(user.id, user.username, user.display_name, roles, version)

    return work


@router.post(
    "/login",
    summary="Log in",
    responses={
        401: {"model": ErrorBody, "description": "`invalid_credentials` (unknown user, "
              "wrong password or inactive user: one answer)"},
        429: {"model": ErrorBody, "description": "`too_many_attempts`; see `Retry-After`"},
    },
)
async def login(body: LoginRequest, request: Request, ctx: Ctx) -> LoginResponse:
    """Exchange a username and password for a bearer token (valid for `api.token_ttl`).

    Failed logins are limited per username and client address: after `api.login_attempts`
    failures within `api.login_window` the answer is 429 until the window has passed.
    """
    address = request.client.host if request.client else "unknown"
    key = (body.username.strip().lower(), address)
    now = ctx.clock()
    wait = ctx.limiter.attempt(key, now)
    if wait is not None:
        ctx.metrics.logins.labels("rate_limited").inc()
        seconds = math.ceil(wait)
        log.warning("login for %r from %s refused: too many failures", key[0], address)
        raise ApiError(
            429,
            "too_many_attempts",
            f"too many failed logins; try again in {seconds} s",
            details={"retry_after": seconds},
            headers={"Retry-After": str(seconds)},
        )
    try:
        principal = await ctx.run(_authenticate(ctx, body.username, body.password))
    except InvalidCredentials:
        ctx.metrics.logins.labels("refused").inc()
        log.info("login for %r from %s refused", key[0], address)
        raise ApiError(401, "invalid_credentials", "invalid username or password") from None
    ctx.limiter.succeeded(key)
    ctx.metrics.logins.labels("ok").inc()
    ttl_ms = max(1, int(ctx.settings.token_ttl * 1000))
    token, claims = ctx.tokens.issue(
        principal.user_id, principal.token_version, now_ms=int(now * 1000), ttl_ms=ttl_ms
    )
    log.info("%s logged in from %s", principal.username, address)
    return LoginResponse(
        token=token,
        expires=claims.expires_ms,
        user=UserOut(
            username=principal.username,
            display_name=principal.display_name,
            roles=role_grants(principal.roles),
        ),
    )


@router.get("/me", summary="The current user")
async def me(user: CurrentUser) -> MeResponse:
    """The user the token belongs to, with the roles held now."""
    return MeResponse(
        username=user.username,
        display_name=user.display_name,
        roles=role_grants(user.roles),
        token_expires=user.token_expires_ms,
    )
