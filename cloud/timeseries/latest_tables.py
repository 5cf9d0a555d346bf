"""The latest-value index: the newest sample of every series, in the relational store.

A time-series server answers "the newest sample" by reading each series (InfluxDB 1.x:
~65 µs of server CPU per series even bounded to a day; 1,000 series are a 100 ms
request), while a dashboard asks for thousands of them at once. Ingest therefore keeps
one row per series here (:class:`~cloud.timeseries.indexed.IndexedStore`), upserted only
by a sample at least as new, and latest-value reads are keyed lookups. The SQLite store
keeps the same table in its own file and needs no index.

``latest_index_state`` holds one row once the index covers every series the store held
before the index existed (a backfill on the first start); until then reads go to the
store.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db.base import Base
from cloud.timeseries.base import MAX_KEY_LENGTH

__all__ = ["LatestIndexState", "LatestValue"]


class LatestValue(Base):
    """The newest sample of one series (value stored as in the SQLite store)."""

    __tablename__ = "latest_values"
    __table_args__ = (
        CheckConstraint("kind IN ('f', 'i', 'b', 's', 'n')", name="kind"),
        CheckConstraint("quality IN ('good', 'stale', 'bad')", name="quality"),
    )

    site_id: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    point_id: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(1))
    num: Mapped[float | None] = mapped_column(Float)
    txt: Mapped[str | None] = mapped_column(Text)
    quality: Mapped[str] = mapped_column(String(8))


class LatestIndexState(Base):
    """One row (``id = 1``) once the index is complete: when the backfill finished."""

    __tablename__ = "latest_index_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    complete_ms: Mapped[int] = mapped_column(BigInteger)
