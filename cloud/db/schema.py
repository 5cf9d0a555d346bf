"""The complete schema: every model module, imported so their tables join one metadata.

Alembic's ``env.py`` and the schema tests use :func:`target_metadata`. A new model module
(alarms, work orders, patrols) is added to the imports below and gets its own migration.
"""

from __future__ import annotations

from sqlalchemy import MetaData

__all__ = ["target_metadata"]


def target_metadata() -> MetaData:
    """The metadata of all Towerwatch tables (importing every model module first)."""
    import cloud.alarms.tables
    import cloud.db.models
    import cloud.patrols.tables
    import cloud.timeseries.latest_tables
    import cloud.workorders.tables  # noqa: F401  (each registers its tables on Base.metadata)
    from cloud.db.base import Base

    return Base.metadata
