"""Users, role assignments and the checks the API makes with them.

Usernames are case-insensitive: they are stored stripped and lower-case, 1-64 of
``a-z 0-9 _ . @ -``. Passwords are at least :data:`MIN_PASSWORD_LENGTH` characters and
never equal to the username; there is no default password anywhere (the first admin is
made by ``towerwatch cloud create-admin`` with a password the operator chooses).

A function that raises after a failed flush (:class:`~cloud.db.errors.UserExists` from a
concurrent insert) leaves the session needing a rollback, like any failed flush.
The permission matrix is in :mod:`cloud.db.roles`.
"""

from __future__ import annotations

import re
import time
from typing import Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.db.errors import (
    InvalidCredentials,
    UnknownSite,
    UnknownUser,
    UserExists,
    WeakPassword,
)
from cloud.db.models import RoleAssignment, Site, User
from cloud.db.roles import ALL_SITES, Action, Role, allowed
from cloud.security.passwords import DEFAULT_HASHER, PasswordHasher

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "authenticate",
    "can",
    "check_password",
    "create_admin",
    "create_user",
    "get_user",
    "grant_role",
    "normalize_username",
    "revoke_role",
    "roles_for",
    "set_active",
    "set_password",
]

MIN_PASSWORD_LENGTH: Final = 10
MAX_PASSWORD_LENGTH: Final = 1024
"""Longer inputs are refused before hashing (a cheap denial of service otherwise)."""

_USERNAME = re.compile(r"[a-z0-9_.@-]{1,64}")


def normalize_username(username: str) -> str:
    """``username`` stripped and lower-cased; ``ValueError`` when it is not a valid name."""
    name = username.strip().lower()
    if _USERNAME.fullmatch(name) is None:
        raise ValueError(f"invalid username {username!r}: use 1-64 of a-z 0-9 _ . @ -")
    return name


def check_password(username: str, password: str) -> None:
    """Raise :class:`WeakPassword` when ``password`` breaks the policy."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_PASSWORD_LENGTH} characters")
    if password.strip().lower() == normalize_username(username):
        raise WeakPassword("the password must not be the username")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def create_user(
    session: Session,
    username: str,
    password: str,
    *,
    display_name: str = "",
    now_ms: int | None = None,
    hasher: PasswordHasher = DEFAULT_HASHER,
) -> User:
    """Create an active user without roles; raises :class:`UserExists`, :class:`WeakPassword`."""
    name = normalize_username(username)
    check_password(name, password)
    if session.scalar(select(User.id).where(User.username == name)) is not None:
        raise UserExists(name)
    user = User(
        username=name,
        password_hash=hasher.hash(password),
        display_name=display_name,
        active=True,
        created_ms=_now_ms() if now_ms is None else now_ms,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # created concurrently since the check above
        raise UserExists(name) from exc
    return user


def create_admin(
    session: Session,
    username: str,
    password: str,
    *,
    now_ms: int | None = None,
    hasher: PasswordHasher = DEFAULT_HASHER,
) -> User:
    """Create a user holding ``admin`` on all sites (the CLI's first-admin command).

    Refuses an existing username (:class:`UserExists`) rather than resetting its password.
    """
    user = create_user(
        session, username, password, display_name="Administrator", now_ms=now_ms, hasher=hasher
    )
    grant_role(session, user, Role.ADMIN)
    return user


def get_user(session: Session, username: str) -> User:
    """The user called ``username`` (any case); raises :class:`UnknownUser`."""
    try:
        name = normalize_username(username)
    except ValueError as exc:
        raise UnknownUser(username) from exc
    user = session.scalar(select(User).where(User.username == name))
    if user is None:
        raise UnknownUser(name)
    return user


def authenticate(
    session: Session, username: str, password: str, *, hasher: PasswordHasher = DEFAULT_HASHER
) -> User:
    """The active user whose password this is; raises :class:`InvalidCredentials`.

    Unknown users cost as much time as wrong passwords. A hash made with older parameters
    is replaced (flushed in this session) after a successful login.
    """
    try:
        user = get_user(session, username)
    except UnknownUser:
        hasher.verify_dummy(password[:MAX_PASSWORD_LENGTH])
        raise InvalidCredentials() from None
    if len(password) > MAX_PASSWORD_LENGTH or not hasher.verify(user.password_hash, password):
        raise InvalidCredentials()
    if not user.active:
        raise InvalidCredentials()
    if hasher.needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
        session.flush()
    return user


def set_password(
    session: Session, user: User, password: str, *, hasher: PasswordHasher = DEFAULT_HASHER
) -> None:
    check_password(user.username, password)
    user.password_hash = hasher.hash(password)
    session.flush()


def set_active(session: Session, user: User, active: bool) -> None:
    """Enable or disable a user (disabled users cannot log in and may do nothing)."""
    user.active = active
    session.flush()


def grant_role(
    session: Session, user: User, role: Role | str, site: str | None = None
) -> RoleAssignment:
    """Give ``user`` ``role`` on ``site`` (``None``: all sites); idempotent.

    Raises :class:`UnknownSite` for a site the registry does not know.
    """
    role = Role(role)
    for assignment in user.assignments:
        if assignment.role == role.value and assignment.site_id == site:
            return assignment
    if site is not None and session.get(Site, site) is None:
        raise UnknownSite(site)
    assignment = RoleAssignment(role=role.value, site_id=site)
    user.assignments.append(assignment)
    session.flush()
    return assignment


def revoke_role(session: Session, user: User, role: Role | str, site: str | None = None) -> bool:
    """Take ``role`` on ``site`` away from ``user``; ``False`` if it was not held."""
    role = Role(role)
    for assignment in list(user.assignments):
        if assignment.role == role.value and assignment.site_id == site:
            user.assignments.remove(assignment)
            session.flush()
            return True
    return False


def roles_for(user: User) -> dict[str, set[Role]]:
    """The user's roles by site id, with :data:`~cloud.db.roles.ALL_SITES` (``"*"``) for
    roles held on every site. Inactive users hold nothing."""
    roles: dict[str, set[Role]] = {}
    if not user.active:
        return roles
    for assignment in user.assignments:
        scope = ALL_SITES if assignment.site_id is None else assignment.site_id
        roles.setdefault(scope, set()).add(Role(assignment.role))
    return roles


def can(user: User, action: Action | str, site: str | None) -> bool:
    """Whether ``user`` may do ``action`` on ``site`` (``None``: an action across sites)."""
    return allowed(roles_for(user), Action(action), site)
