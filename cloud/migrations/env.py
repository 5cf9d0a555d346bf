"""Alembic environment of the Towerwatch relational store.

Run through :mod:`cloud.db.migrate`, never with an ``alembic.ini``: the caller puts the
database URL in ``config.attributes["towerwatch.url"]`` (or an open connection in
``config.attributes["connection"]``). On SQLite, migrations run with foreign keys off
(table rebuilds would fire cascades) and in batch mode; on PostgreSQL an advisory lock
makes concurrent ``migrate`` runs (several API replicas starting) take turns.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from cloud.db.engine import create_engine_for, normalize_url
from cloud.db.schema import target_metadata

URL_KEY = "towerwatch.url"
CONNECTION_KEY = "connection"
ADVISORY_LOCK_KEY = 0x7457_6D69  # "tWmi": Towerwatch migrations

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata(),
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            )
        context.run_migrations()


def _url() -> str:
    url = config.attributes.get(URL_KEY)
    if not isinstance(url, str):
        raise RuntimeError(
            "no database URL: run migrations through cloud.db.migrate, which sets "
            f"config.attributes[{URL_KEY!r}]"
        )
    return url


def run_offline() -> None:
    context.configure(
        url=normalize_url(_url()),
        target_metadata=target_metadata(),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get(CONNECTION_KEY)
    if isinstance(connection, Connection):
        _configure(connection)
        return
    engine = create_engine_for(_url(), foreign_keys=False)
    try:
        with engine.connect() as connection:
            _configure(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
