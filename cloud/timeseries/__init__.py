"""Time-series storage of telemetry samples: SQLite (embedded) and InfluxDB backends."""

from cloud.timeseries.base import Bucket, Quality, Sample, SeriesKey, TimeSeriesStore, Value
from cloud.timeseries.errors import QueryTooLarge, StoreUnavailable, TimeSeriesError
from cloud.timeseries.sqlite import SqliteStore

__all__ = [
    "Bucket",
    "Quality",
    "QueryTooLarge",
    "Sample",
    "SeriesKey",
    "SqliteStore",
    "StoreUnavailable",
    "TimeSeriesError",
    "TimeSeriesStore",
    "Value",
]
