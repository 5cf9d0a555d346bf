"""Telemetry queries: one point's series (raw or downsampled) and batch latest values.

Bounds (from ``api`` settings): a range may span at most ``max_range``; a raw query
returns at most ``max_points`` samples and a downsampled one at most ``max_points``
buckets, else 422 (``range_too_large``, ``too_many_points`` with a suggested bucket,
``too_many_buckets``). A batch of latest values names at most
:data:`MAX_LATEST_SERIES` series (``too_many_series``).

Replies are built once as plain JSON (up to 10,000 samples or buckets): the models below
describe them in the OpenAPI document, but a reply is not validated against them a
second time (the store's values are already checked), which halves the CPU of a 24-hour
trend.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

import pydantic_core
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from cloud.api.deps import API_PREFIX, Ctx, DeviceId, GatewayId, PointId, ReadSite, require_site
from cloud.api.errors import ApiError, ErrorBody, validation_error
from cloud.api.routes.sites import LastValue, ScalarValue
from cloud.api.timeparse import bucket_label, parse_bucket, parse_time, suggest_bucket
from cloud.timeseries.base import MAX_BUCKETS, SeriesKey
from cloud.timeseries.errors import QueryTooLarge
from towerwatch.contract.errors import IdentifierError
from towerwatch.contract.ids import IDENTIFIER_MAX, IDENTIFIER_PATTERN, check_identifier

__all__ = [
    "DEFAULT_WINDOW_MS",
    "MAX_LATEST_SERIES",
    "BucketOut",
    "DownsampledSeries",
    "LatestOut",
    "RawSeries",
    "SampleOut",
    "router",
]

DEFAULT_WINDOW_MS: Final = 24 * 3_600_000
"""The range of a series query that gives no ``start``: the day before ``end``."""
MAX_LATEST_SERIES: Final = 1000
_SERIES_NAME: Final = re.compile(
    f"({IDENTIFIER_PATTERN})/({IDENTIFIER_PATTERN})/({IDENTIFIER_PATTERN})")

router = APIRouter(
    prefix=f"{API_PREFIX}/sites",
    tags=["telemetry"],
    responses={
        401: {"model": ErrorBody, "description": "Not authenticated"},
        403: {"model": ErrorBody, "description": "No access to this site"},
        404: {"model": ErrorBody, "description": "No such site"},
        422: {"model": ErrorBody, "description": "Over a bound: `range_too_large`, "
              "`too_many_points`, `too_many_buckets`, `too_many_series`"},
        503: {"model": ErrorBody, "description": "`timeseries_unavailable`"},
    },
)


class SampleOut(BaseModel):
    ts: int = Field(description="Edge time, UTC epoch ms.")
    value: ScalarValue
    quality: Literal["good", "stale", "bad"]


class BucketOut(BaseModel):
    start: int = Field(description="Bucket start, UTC epoch ms (aligned to the bucket size).")
    mean: float | None
    min: float | None
    max: float | None
    last: ScalarValue
    count: int


class _SeriesBase(BaseModel):
    site: str
    gateway: str
    device: str
    point: str
    start: int
    end: int = Field(description="Exclusive.")


class RawSeries(_SeriesBase):
    mode: Literal["raw"] = "raw"
    samples: list[SampleOut]


class DownsampledSeries(_SeriesBase):
    mode: Literal["downsampled"] = "downsampled"
    bucket: str
    bucket_ms: int
    buckets: list[BucketOut]


class LatestItem(LastValue):
    gateway: str
    device: str
    point: str


class LatestOut(BaseModel):
    site: str
    values: list[LatestItem]
    missing: list[str] = Field(description="Requested series without any sample.")


def _json(body: dict[str, Any]) -> Response:
    """``body`` (plain JSON types) as the reply, without a second validation."""
    return Response(pydantic_core.to_json(body), media_type="application/json")


def _range(start: str | None, end: str | None, now_ms: int) -> tuple[int, int]:
    problems: list[tuple[str, str]] = []
    times: dict[str, int | None] = {"start": None, "end": None}
    for name, text in (("start", start), ("end", end)):
        if text is not None:
            try:
                times[name] = parse_time(text)
            except ValueError as exc:
                problems.append((f"query.{name}", str(exc)))
    if problems:
        raise validation_error(problems)
    end_ms = now_ms if times["end"] is None else times["end"]
    start_ms = max(0, end_ms - DEFAULT_WINDOW_MS) if times["start"] is None else times["start"]
    if start_ms >= end_ms:
        raise validation_error([("query.start", "must be before end")])
    return start_ms, end_ms


@router.get(
    "/{site}/devices/{gateway}/{device}/points/{point}/series",
    summary="A point's time series, raw or downsampled",
    response_model=RawSeries | DownsampledSeries,
)
async def series(
    access: ReadSite,
    gateway: GatewayId,
    device: DeviceId,
    point: PointId,
    ctx: Ctx,
    start: Annotated[str | None, Query(
        description="Range start (inclusive): epoch ms or ISO-8601 with a zone. "
        "Default: 24 h before `end`.")] = None,
    end: Annotated[str | None, Query(
        description="Range end (exclusive): epoch ms or ISO-8601 with a zone. Default: now.")]
    = None,
    bucket: Annotated[str | None, Query(
        description="Downsample into buckets of this size (`30s`, `1m`, `5m`, `1h`, `1d`): "
        "mean/min/max/last/count per bucket. Without it: raw samples.")] = None,
) -> Response:
    """Samples of one point over `[start, end)`, in time order."""
    start_ms, end_ms = _range(start, end, ctx.now_ms())
    bucket_ms: int | None = None
    if bucket is not None:
        try:
            bucket_ms = parse_bucket(bucket)
        except ValueError as exc:
            raise validation_error([("query.bucket", str(exc))]) from None
    limits = ctx.settings
    max_range_ms = int(limits.max_range * 1000)
    if end_ms - start_ms > max_range_ms:
        raise ApiError(
            422, "range_too_large",
            f"the range spans {(end_ms - start_ms) / 86_400_000:.1f} days; "
            f"at most {limits.max_range / 86400:g} days per query",
            details={"range_ms": end_ms - start_ms, "max_range_ms": max_range_ms},
        )
    await ctx.run(lambda session: require_site(session, access.site))
    key = SeriesKey(access.site, gateway, device, point)
    head = {"site": access.site, "gateway": gateway, "device": device, "point": point,
            "start": start_ms, "end": end_ms}
    suggestion = suggest_bucket(end_ms - start_ms)
    if bucket_ms is None:
        try:
            samples = await ctx.store.raw(key, start_ms, end_ms, limit=limits.max_points)
        except QueryTooLarge:
            raise ApiError(
                422, "too_many_points",
                f"more than {limits.max_points} samples in the range: narrow it or "
                f"downsample with bucket={suggestion}",
                details={"limit": limits.max_points, "suggested_bucket": suggestion},
            ) from None
        return _json({**head, "mode": "raw", "samples": [
            {"ts": s.ts_ms, "value": s.value, "quality": s.quality} for s in samples]})
    most = min(limits.max_points, MAX_BUCKETS)
    count = (end_ms - 1) // bucket_ms - start_ms // bucket_ms + 1
    if count > most:
        raise ApiError(
            422, "too_many_buckets",
            f"{count} buckets of {bucket_label(bucket_ms)} in the range (at most {most}): "
            f"use a larger bucket, e.g. bucket={suggestion}",
            details={"buckets": count, "limit": most, "suggested_bucket": suggestion},
        )
    buckets = await ctx.store.downsampled(key, start_ms, end_ms, bucket_ms=bucket_ms)
    return _json({**head, "mode": "downsampled", "bucket": bucket_label(bucket_ms),
                  "bucket_ms": bucket_ms, "buckets": [
                      {"start": b.start_ms, "mean": b.mean, "min": b.min, "max": b.max,
                       "last": b.last, "count": b.count} for b in buckets]})


def _series_keys(site: str, points: list[str]) -> list[tuple[str, SeriesKey]]:
    names: dict[str, None] = {}
    for item in points:
        for part in item.split(","):
            if part.strip():
                names[part.strip()] = None
    if not names:
        raise validation_error([("query.points", "name at least one gateway/device/point")])
    if len(names) > MAX_LATEST_SERIES:
        raise ApiError(
            422, "too_many_series", f"{len(names)} series asked for; at most {MAX_LATEST_SERIES}",
            details={"series": len(names), "limit": MAX_LATEST_SERIES},
        )
    keys: list[tuple[str, SeriesKey]] = []
    problems: list[tuple[str, str]] = []
    for index, name in enumerate(names):
        if (match := _SERIES_NAME.fullmatch(name)) is not None and all(
                len(part) <= IDENTIFIER_MAX for part in match.groups()):
            keys.append((name, SeriesKey(site, *match.groups())))
            continue
        parts = name.split("/")  # not three identifiers: say what is wrong
        try:
            if len(parts) != 3:
                raise IdentifierError("expected gateway/device/point")
            gateway, device, point = (check_identifier(p) for p in parts)
        except IdentifierError as exc:
            problems.append((f"query.points[{index}]", f"{name!r}: {exc}"))
            continue
        keys.append((name, SeriesKey(site, gateway, device, point)))
    if problems:
        raise validation_error(problems)
    return keys


@router.get("/{site}/latest", summary="Latest values of many points", response_model=LatestOut)
async def latest(
    access: ReadSite,
    ctx: Ctx,
    points: Annotated[list[str], Query(
        description="Series as `gateway/device/point`; repeat the parameter or separate "
        f"with commas (at most {MAX_LATEST_SERIES}).")],
) -> Response:
    """The newest sample of each named series of the site."""
    keys = _series_keys(access.site, points)
    await ctx.run(lambda session: require_site(session, access.site))
    found = await ctx.store.latest([key for _, key in keys])
    values, missing = [], []
    for name, key in keys:
        sample = found.get(key)
        if sample is None:
            missing.append(name)
            continue
        values.append({"value": sample.value, "quality": sample.quality, "ts": sample.ts_ms,
                       "gateway": key.gateway, "device": key.device, "point": key.point})
    return _json({"site": access.site, "values": values, "missing": missing})
