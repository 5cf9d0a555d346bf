"""Request dependencies: the context, the current user, and site access checks.

A request is authenticated by its ``Authorization: Bearer <token>`` header; the user is
read from the database each time (inactive users and changed passwords end their tokens,
role changes apply at once). Site access follows :mod:`cloud.db.roles`: a user without
the action on the site gets 403 whether or not the site exists, so a site's existence is
not revealed to users of other sites; users allowed everywhere get 404 for unknown sites.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Set
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from cloud.api.auth import TokenClaims, TokenError
from cloud.api.context import ApiContext
from cloud.api.errors import ApiError
from cloud.db.errors import UnknownSite
from cloud.db.models import Site, User
from cloud.db.roles import ALL_SITES, Action, Role, allowed
from cloud.db.users import roles_for
from towerwatch.contract.ids import IDENTIFIER_MAX, IDENTIFIER_PATTERN, REQUEST_ID_PATTERN

__all__ = [
    "API_PREFIX",
    "IDENTIFIER_REGEX",
    "Admin",
    "CommandSite",
    "Ctx",
    "CurrentUser",
    "DeviceId",
    "GatewayId",
    "ManageSite",
    "MemberSite",
    "PointId",
    "Principal",
    "ReadSite",
    "RequestIdPath",
    "SiteAccess",
    "SiteId",
    "any_site_role",
    "current_user",
    "forbidden",
    "get_context",
    "require_admin",
    "require_site",
    "site_access",
]

log = logging.getLogger(__name__)


API_PREFIX = "/api/v1"
IDENTIFIER_REGEX = f"^{IDENTIFIER_PATTERN}$"


def _identifier(what: str) -> object:
    return Path(
        pattern=IDENTIFIER_REGEX,
        max_length=IDENTIFIER_MAX,
        description=f"{what} id: `[a-z0-9][a-z0-9_-]*`, at most {IDENTIFIER_MAX} characters.",
    )


SiteId = Annotated[str, _identifier("Site")]
GatewayId = Annotated[str, _identifier("Gateway")]
DeviceId = Annotated[str, _identifier("Device")]
PointId = Annotated[str, _identifier("Point")]
RequestIdPath = Annotated[
    str, Path(pattern=f"^{REQUEST_ID_PATTERN}$", description="Command request id.")
]


def get_context(request: Request) -> ApiContext:
    return cast(ApiContext, request.app.state.context)


Ctx = Annotated[ApiContext, Depends(get_context)]

_bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="towerwatch-v1",
    description="A token from `POST /api/v1/auth/login`.",
)


@dataclass(frozen=True)
class Principal:
    """The authenticated user of a request, with the roles held at request time."""

    user_id: int
    username: str
    display_name: str
    roles: Mapping[str, Set[Role]]
    """Site id (or ``"*"``: every site) → roles."""
    token_expires_ms: int

    def can(self, action: Action, site: str | None) -> bool:
        return allowed(self.roles, action, site)

    def has_role_on(self, site: str) -> bool:
        """Whether any role applies to ``site`` (its own or an all-sites role)."""
        return bool(self.roles.get(site)) or bool(self.roles.get(ALL_SITES))

    def actions_on(self, site: str) -> list[Action]:
        return [action for action in Action if self.can(action, site)]


def _unauthenticated(code: str, message: str) -> ApiError:
    challenge = "Bearer" if code == "unauthenticated" else f'Bearer error="{code}"'
    return ApiError(401, code, message, headers={"WWW-Authenticate": challenge})


def _load_principal(ctx: ApiContext, claims: TokenClaims) -> Callable[[Session], Principal | None]:
    def load(session: Session) -> Principal | None:
        user = session.get(User, claims.user_id)
        if user is None or not user.active:
            return None
        if ctx.tokens.user_version(user.id, user.password_hash) != claims.version:
            return None
        roles = {site: frozenset(held) for site, held in roles_for(user).items()}
        return Principal(user.id, user.username, user.display_name, roles, claims.expires_ms)

    return load


async def current_user(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The user the bearer token names; 401 without a valid token."""
    if credentials is None:
        raise _unauthenticated("unauthenticated", "a bearer token is required")
    try:
        claims = ctx.tokens.verify(credentials.credentials, now_ms=ctx.now_ms())
    except TokenError as exc:
        message = "the token has expired" if exc.code == "token_expired" else "invalid token"
        raise _unauthenticated(exc.code, message) from None
    principal = await ctx.run(_load_principal(ctx, claims))
    if principal is None:
        raise _unauthenticated("invalid_token", "the token is no longer valid")
    return principal


CurrentUser = Annotated[Principal, Depends(current_user)]


@dataclass(frozen=True)
class SiteAccess:
    """A site the current user may act on in the way the route needs."""

    site: str
    user: Principal


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def site_access(action: Action) -> Callable[..., Awaitable[SiteAccess]]:
    """A dependency: the ``{site}`` path parameter, if the user may do ``action`` there."""

    async def check(site: SiteId, user: CurrentUser) -> SiteAccess:
        if not user.can(action, site):
            log.info("refused: %s may not %s on site %s", user.username, action.value, site)
            raise forbidden(f"you may not {action.value} on site {site!r}")
        return SiteAccess(site, user)

    check.__name__ = f"site_{action.value}_access"
    return check


async def any_site_role(site: SiteId, user: CurrentUser) -> SiteAccess:
    """The ``{site}`` path parameter, if the user holds any role there (guards too)."""
    if not user.has_role_on(site):
        raise forbidden(f"you have no role on site {site!r}")
    return SiteAccess(site, user)


async def require_admin(user: CurrentUser) -> Principal:
    """The current user, if allowed to ``administer`` across sites."""
    if not user.can(Action.ADMINISTER, None):
        raise forbidden("administrators only")
    return user


ReadSite = Annotated[SiteAccess, Depends(site_access(Action.READ))]
CommandSite = Annotated[SiteAccess, Depends(site_access(Action.COMMAND))]
ManageSite = Annotated[SiteAccess, Depends(site_access(Action.MANAGE))]
MemberSite = Annotated[SiteAccess, Depends(any_site_role)]
Admin = Annotated[Principal, Depends(require_admin)]


def require_site(session: Session, site: str) -> Site:
    """The registry row of ``site``; raises :class:`~cloud.db.errors.UnknownSite` (404)."""
    row = session.get(Site, site)
    if row is None:
        raise UnknownSite(site)
    return row
