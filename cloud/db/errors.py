"""Errors of the relational store.

::

    StoreError
    ├── UnsupportedDatabase   the URL names an engine Towerwatch does not run on
    ├── MigrationError        Alembic could not bring the schema to the wanted revision
    ├── UserExists            a user with this username already exists
    ├── UnknownUser           no user with this username
    ├── InvalidCredentials    login refused (unknown user, wrong password or inactive: one error)
    ├── WeakPassword          a new password breaks the password policy
    ├── UnknownSite           no site with this id in the registry
    ├── UnknownGateway        no gateway with this (site, id) in the registry
    └── UnknownCommand        no command request with this id

SQLAlchemy and Alembic errors are converted where they are caught, with ``raise … from exc``;
errors the caller cannot act on (a lost connection) pass through as SQLAlchemy's own.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the relational store raises on purpose."""


class UnsupportedDatabase(StoreError):
    """The database URL is not ``sqlite:///…`` or ``postgresql[+psycopg]://…``."""


class MigrationError(StoreError):
    """A migration failed or the schema is not at the expected revision."""


class UserExists(StoreError):
    """``create_user`` / ``create_admin`` on a username that is taken."""

    def __init__(self, username: str) -> None:
        self.username = username
        super().__init__(f"user {username!r} already exists")


class UnknownUser(StoreError):
    """No user with this username."""

    def __init__(self, username: str) -> None:
        self.username = username
        super().__init__(f"no user {username!r}")


class InvalidCredentials(StoreError):
    """Login refused; deliberately does not say whether the user exists."""

    def __init__(self) -> None:
        super().__init__("invalid username or password")


class WeakPassword(StoreError):
    """The password breaks the policy (too short, too long, or equal to the username)."""


class UnknownSite(StoreError):
    """No site with this id."""

    def __init__(self, site: str) -> None:
        self.site = site
        super().__init__(f"no site {site!r}")


class UnknownGateway(StoreError):
    """No gateway ``(site, gateway)`` in the registry."""

    def __init__(self, site: str, gateway: str) -> None:
        self.site = site
        self.gateway = gateway
        super().__init__(f"no gateway {gateway!r} on site {site!r}")


class UnknownCommand(StoreError):
    """No command request with this request id."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(f"no command request {request_id!r}")
