"""The time-series store's errors.

::

    TimeSeriesError            a store operation failed (the server refused it, bad data, a bug)
    ├── StoreUnavailable       the store cannot be reached or opened (connection refused,
    │                          timeout, HTTP 5xx, database locked or unopenable, store closed)
    └── QueryTooLarge          a query would return more than the caller's bound
                               (raw: more than ``limit`` samples; downsampled: too many buckets)

Foreign errors (sqlite3, httpx, influxdb-client) are converted in the backend that imports
them, with ``raise ... from exc``. Bad arguments (a negative limit, an invalid key) raise
``ValueError`` before anything is sent.
"""

from __future__ import annotations


class TimeSeriesError(Exception):
    """Base of every error a time-series store raises on purpose."""


class StoreUnavailable(TimeSeriesError):
    """The store cannot be reached, opened or used right now; retrying later may help."""


class QueryTooLarge(TimeSeriesError):
    """The result would exceed the bound the caller gave; narrow the range or raise the bound."""

    def __init__(self, message: str, *, bound: int) -> None:
        self.bound = bound
        super().__init__(message)
