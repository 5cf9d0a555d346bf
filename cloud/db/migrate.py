"""Run the Alembic migrations in ``cloud/migrations`` from code (no ``alembic.ini``).

``towerwatch cloud migrate`` calls :func:`upgrade`; ``/readyz`` may call
:func:`is_up_to_date`. The migrations folder is package data, found with
:mod:`importlib.resources`, so this works from a wheel as well as from a checkout.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import URL, Engine
from sqlalchemy.exc import SQLAlchemyError

from cloud.db.engine import create_engine_for, normalize_url
from cloud.db.errors import MigrationError

__all__ = [
    "alembic_config",
    "current",
    "downgrade",
    "head",
    "is_up_to_date",
    "migrate",
    "migrations_dir",
    "upgrade",
]

_URL_KEY = "towerwatch.url"  # read by cloud/migrations/env.py


@contextmanager
def migrations_dir() -> Iterator[Path]:
    """The folder holding ``env.py`` and ``versions/``, as a filesystem path."""
    with importlib.resources.as_file(importlib.resources.files("cloud") / "migrations") as path:
        yield Path(path)


def alembic_config(url: str | URL, script_location: Path) -> Config:
    """An Alembic config for ``url`` whose scripts live in ``script_location``."""
    config = Config()
    config.set_main_option("script_location", str(script_location).replace("%", "%%"))
    config.attributes[_URL_KEY] = normalize_url(url).render_as_string(hide_password=False)
    return config


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision`` (default: the newest)."""
    with migrations_dir() as scripts:
        _run(lambda: command.upgrade(alembic_config(url, scripts), revision), "upgrade")


def downgrade(url: str | URL, revision: str) -> None:
    """Take the database at ``url`` down to ``revision`` (``base`` drops every table)."""
    with migrations_dir() as scripts:
        _run(lambda: command.downgrade(alembic_config(url, scripts), revision), "downgrade")


def head() -> str:
    """The newest revision shipped with this code."""
    with migrations_dir() as scripts:
        heads = ScriptDirectory(str(scripts)).get_heads()
    if len(heads) != 1:
        raise MigrationError(f"expected one migration head, found {sorted(heads)}")
    return heads[0]


def current(database: str | URL | Engine) -> str | None:
    """The revision the database is at; ``None`` when it was never migrated.

    Pass the running :class:`~sqlalchemy.Engine` (``/readyz``) to reuse its pool; a URL
    gets a throw-away engine.
    """
    engine = database if isinstance(database, Engine) else create_engine_for(database)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise MigrationError(f"cannot read the schema revision: {exc}") from exc
    finally:
        if engine is not database:
            engine.dispose()


def is_up_to_date(database: str | URL | Engine) -> bool:
    """Whether the database is at :func:`head`."""
    return current(database) == head()


def migrate(url: str | URL) -> tuple[str | None, str]:
    """``towerwatch cloud migrate``: upgrade to head; return (revision before, after)."""
    before = current(url)
    upgrade(url)
    after = current(url)
    if after is None:
        raise MigrationError("the database has no revision after upgrading")
    return before, after


def _run(step: Callable[[], None], what: str) -> None:
    try:
        step()
    except (CommandError, SQLAlchemyError) as exc:
        raise MigrationError(f"{what} failed: {exc}") from exc
