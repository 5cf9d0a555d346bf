"""Series queries (raw and downsampled), their bounds, and batch latest values."""

from __future__ import annotations

import httpx
import pytest

from cloud.timeseries import Sample, SeriesKey, SqliteStore
from tests.cloud.api.support import T0_MS, AsUser, assert_error

SERIES = "/api/v1/sites/alpha/devices/gw1/pump-1/points/pressure/series"
KEY = SeriesKey("alpha", "gw1", "pump-1", "pressure")
HOUR = 3_600_000


@pytest.fixture
async def viewer(as_user: AsUser, store: SqliteStore) -> httpx.AsyncClient:
    """A viewer of alpha; the pressure has a sample every 10 s over the last hour."""
    await store.write([
        Sample(KEY, T0_MS - HOUR + i * 10_000, 4.0 + (i % 6) / 10, "good") for i in range(360)
    ])
    return await as_user("viewer-a")


async def test_raw_samples_in_a_range(viewer: httpx.AsyncClient) -> None:
    response = await viewer.get(SERIES, params={"start": T0_MS - 60_000, "end": T0_MS - 20_000})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "raw"
    assert (body["site"], body["gateway"], body["device"], body["point"]) == (
        "alpha", "gw1", "pump-1", "pressure")
    assert (body["start"], body["end"]) == (T0_MS - 60_000, T0_MS - 20_000)
    assert [s["ts"] for s in body["samples"]] == [T0_MS - 60_000, T0_MS - 50_000,
                                                  T0_MS - 40_000, T0_MS - 30_000]
    assert body["samples"][0] == {"ts": T0_MS - 60_000, "value": 4.0, "quality": "good"}


async def test_times_may_be_iso_8601_with_a_zone(viewer: httpx.AsyncClient) -> None:
    # T0 is 2025-06-15T14:00:00Z = 22:00 in Shanghai
    utc = await viewer.get(SERIES, params={"start": "2025-06-15T13:59:00Z",
                                           "end": "2025-06-15T14:00:00.000+00:00"})
    local = await viewer.get(SERIES, params={"start": "2025-06-15T21:59:00+08:00",
                                             "end": "2025-06-15T22:00:00+08:00"})
    # an unencoded '+' arrives as a space
    spaced = await viewer.get(f"{SERIES}?start=2025-06-15T21:59:00+08:00&end={T0_MS}")
    for response in (utc, local, spaced):
        assert response.status_code == 200, response.text
        assert (response.json()["start"], response.json()["end"]) == (T0_MS - 60_000, T0_MS)
        assert len(response.json()["samples"]) == 6


async def test_the_default_range_is_the_day_before_now(viewer: httpx.AsyncClient) -> None:
    body = (await viewer.get(SERIES)).json()
    assert (body["start"], body["end"]) == (T0_MS - 24 * HOUR, T0_MS)
    assert len(body["samples"]) == 360


async def test_downsampled_buckets(viewer: httpx.AsyncClient) -> None:
    response = await viewer.get(SERIES, params={"start": T0_MS - HOUR, "end": T0_MS,
                                                "bucket": "1m"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["mode"], body["bucket"], body["bucket_ms"]) == ("downsampled", "1m", 60_000)
    assert len(body["buckets"]) == 60
    first = body["buckets"][0]
    assert first["start"] == T0_MS - HOUR and first["count"] == 6
    assert first["min"] == pytest.approx(4.0) and first["max"] == pytest.approx(4.5)
    assert first["mean"] == pytest.approx(4.25) and first["last"] == pytest.approx(4.5)
    hourly = (await viewer.get(SERIES, params={"bucket": "60m"})).json()
    assert hourly["bucket"] == "1h"
    assert [(b["start"], b["count"]) for b in hourly["buckets"]] == [(T0_MS - HOUR, 360)]


async def test_a_range_longer_than_max_range_is_422(viewer: httpx.AsyncClient) -> None:
    response = await viewer.get(SERIES, params={"start": T0_MS - 31 * 24 * HOUR, "end": T0_MS})
    error = assert_error(response, 422, "range_too_large")
    assert error["details"] == {"range_ms": 31 * 24 * HOUR, "max_range_ms": 30 * 24 * HOUR}
    assert (await viewer.get(SERIES, params={"start": T0_MS - 30 * 24 * HOUR})).is_success


async def test_too_many_raw_samples_is_422_suggesting_a_bucket(
    viewer: httpx.AsyncClient, store: SqliteStore
) -> None:
    # max_points is 1000: add 1000 more samples in the hour before
    await store.write([Sample(KEY, T0_MS - 2 * HOUR + i * 3600, 1.0, "good")
                       for i in range(1000)])
    response = await viewer.get(SERIES, params={"start": T0_MS - 2 * HOUR})
    error = assert_error(response, 422, "too_many_points")
    assert error["details"] == {"limit": 1000, "suggested_bucket": "10s"}
    assert "bucket=10s" in error["message"]
    downsampled = await viewer.get(SERIES, params={"start": T0_MS - 2 * HOUR, "bucket": "10s"})
    assert downsampled.status_code == 200
    assert sum(b["count"] for b in downsampled.json()["buckets"]) == 1360


async def test_too_many_buckets_is_422(viewer: httpx.AsyncClient) -> None:
    response = await viewer.get(SERIES, params={"start": T0_MS - 2 * HOUR, "bucket": "1s"})
    error = assert_error(response, 422, "too_many_buckets")
    assert error["details"] == {"buckets": 7200, "limit": 1000, "suggested_bucket": "10s"}


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"start": "yesterday"}, "query.start"),
        ({"end": "2025-06-15T14:00:00"}, "query.end"),  # no zone
        ({"start": "-5"}, "query.start"),
        ({"bucket": "5 minutes"}, "query.bucket"),
        ({"bucket": "0s"}, "query.bucket"),
        ({"bucket": "500ms"}, "query.bucket"),
        ({"start": str(T0_MS), "end": str(T0_MS)}, "query.start"),  # empty range
        ({"start": str(T0_MS), "end": str(T0_MS - 1)}, "query.start"),
    ],
)
async def test_malformed_query_arguments_are_400(
    viewer: httpx.AsyncClient, params: dict[str, str], path: str
) -> None:
    error = assert_error(await viewer.get(SERIES, params=params), 400, "validation_failed")
    assert [d["path"] for d in error["details"]] == [path]


async def test_a_series_without_samples_is_empty(viewer: httpx.AsyncClient) -> None:
    body = (await viewer.get("/api/v1/sites/alpha/devices/gw1/pump-1/points/nope/series")).json()
    assert body["samples"] == []


async def test_latest_values_of_many_series(
    viewer: httpx.AsyncClient, store: SqliteStore
) -> None:
    running = SeriesKey("alpha", "gw1", "pump-1", "running")
    await store.write([Sample(running, T0_MS - 5000, True, "good")])
    response = await viewer.get(
        "/api/v1/sites/alpha/latest",
        params=[("points", "gw1/pump-1/pressure,gw1/pump-1/running"),
                ("points", "gw1/pump-1/setpoint"), ("points", "gw1/pump-1/pressure")],
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "site": "alpha",
        "values": [
            {"gateway": "gw1", "device": "pump-1", "point": "pressure", "value": 4.5,
             "quality": "good", "ts": T0_MS - 10_000},
            {"gateway": "gw1", "device": "pump-1", "point": "running", "value": True,
             "quality": "good", "ts": T0_MS - 5000},
        ],
        "missing": ["gw1/pump-1/setpoint"],
    }


async def test_latest_bounds_and_errors(viewer: httpx.AsyncClient) -> None:
    latest = "/api/v1/sites/alpha/latest"
    many = ",".join(f"gw1/pump-1/p{i}" for i in range(1001))
    error = assert_error(await viewer.get(latest, params={"points": many}), 422,
                         "too_many_series")
    assert error["details"] == {"series": 1001, "limit": 1000}
    error = assert_error(await viewer.get(latest, params={"points": "gw1/pump-1,gw1/X/y"}),
                         400, "validation_failed")
    assert [d["path"] for d in error["details"]] == ["query.points[0]", "query.points[1]"]
    error = assert_error(await viewer.get(latest), 400, "validation_failed")
    assert error["details"][0]["path"] == "query.points"
    assert_error(await viewer.get(latest, params={"points": ","}), 400, "validation_failed")
