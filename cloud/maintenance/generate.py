"""Generating due preventive-maintenance work orders ahead of time (a periodic job).

``generate_due(session, now_ms, readings)`` is idempotent: each work order carries
``(pm_plan_id, asset_id, pm_occurrence)``, unique in the database, and generation starts
after the newest occurrence already made, so running it twice, or on two replicas at
once, never makes two work orders for one due date. Counter plans need the latest
counter readings, which live in the time-series store: the caller reads them first with
:func:`read_counters` (async) and passes them in.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.assets.tables import Asset
from cloud.db.models import Site
from cloud.maintenance.schedule import Occurrence, due_occurrences, local_date
from cloud.maintenance.tables import PmPlan
from cloud.timeseries.base import SeriesKey, TimeSeriesStore
from cloud.workorders import texts as _texts  # noqa: F401  (registers the messages)
from cloud.workorders.errors import Conflict
from cloud.workorders.service import create_work_order
from cloud.workorders.tables import WorkOrder
from towerwatch.i18n import t

__all__ = ["CounterTarget", "counter_targets", "generate_due", "read_counters"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CounterTarget:
    plan_id: int
    series: SeriesKey


def counter_targets(session: Session) -> list[CounterTarget]:
    """The series every active counter plan reads."""
    plans = session.scalars(select(PmPlan).where(PmPlan.active.is_(True),
                                                 PmPlan.trigger == "counter"))
    return [CounterTarget(p.id, SeriesKey(p.site_id, p.counter_gateway or "",
                                          p.counter_device or "", p.counter_point or ""))
            for p in plans]


async def read_counters(store: TimeSeriesStore,
                        targets: Sequence[CounterTarget]) -> dict[int, float]:
    """Plan id → latest numeric reading of its counter (plans without one are left out)."""
    if not targets:
        return {}
    latest = await store.latest(sorted({t.series for t in targets},
                                       key=lambda s: (s.site, s.gateway, s.device, s.point)))
    readings = {}
    for target in targets:
        sample = latest.get(target.series)
        if sample is not None and isinstance(sample.value, int | float) \
                and not isinstance(sample.value, bool):
            readings[target.plan_id] = float(sample.value)
    return readings


def _targets(session: Session, plan: PmPlan) -> list[Asset]:
    if plan.asset_id is not None:
        asset = session.get(Asset, plan.asset_id)
        return [] if asset is None else [asset]
    return list(session.scalars(select(Asset).where(
        Asset.site_id == plan.site_id, Asset.asset_class == plan.asset_class)
        .order_by(Asset.id)))


def _last_occurrence(session: Session, plan: PmPlan, asset: Asset) -> int | None:
    return session.scalar(select(func.max(WorkOrder.pm_occurrence)).where(
        WorkOrder.pm_plan_id == plan.id, WorkOrder.asset_id == asset.id))


def _create(session: Session, plan: PmPlan, asset: Asset, occurrence: int, description: str,
            now_ms: int, window: Occurrence | None) -> WorkOrder | None:
    title = t("workorder.pm_title", "en", plan=plan.name, asset=asset.name)
    try:
        return create_work_order(
            session, site=plan.site_id, category=plan.category, priority=plan.priority,
            title=title, description=description, source="pm", now_ms=now_ms, actor=None,
            asset_id=asset.id, pm_plan_id=plan.id, pm_occurrence=occurrence,
            scheduled_start_ms=None if window is None else window.start_ms,
            scheduled_end_ms=None if window is None else window.end_ms,
            reference=plan.contractor)
    except Conflict:
        return None  # made by a concurrent run


def _both(key: str, **fields: object) -> str:
    return t(key, "en", **fields) + "\n" + t(key, "zh", **fields)


def _calendar(session: Session, plan: PmPlan, tz: ZoneInfo, now_ms: int) -> list[WorkOrder]:
    assert plan.anchor_date is not None and plan.interval_days is not None
    made = []
    for asset in _targets(session, plan):
        last_key = _last_occurrence(session, plan, asset)
        after = None
        if last_key is not None:
            after = _index_of(plan, tz, last_key)
        for occ in due_occurrences(
                anchor=plan.anchor_date, interval_days=plan.interval_days,
                lead_days=plan.lead_days, tz=tz, now_ms=now_ms, after_index=after,
                not_before_ms=plan.created_ms, window_start_min=plan.window_start_min,
                window_minutes=plan.window_minutes):
            start = plan.window_start_min
            end = (start + plan.window_minutes) % 1440
            description = _both("workorder.pm_due", level=plan.level, date=occ.date.isoformat(),
                                start=f"{start // 60:02d}:{start % 60:02d}",
                                end=f"{end // 60:02d}:{end % 60:02d}")
            order = _create(session, plan, asset, occ.key_ms, description, now_ms, occ)
            if order is not None:
                made.append(order)
    return made


def _index_of(plan: PmPlan, tz: ZoneInfo, key_ms: int) -> int:
    assert plan.anchor_date is not None and plan.interval_days is not None
    return (local_date(key_ms, tz) - plan.anchor_date).days // plan.interval_days


def _counter(session: Session, plan: PmPlan, reading: float, now_ms: int) -> list[WorkOrder]:
    assert plan.counter_interval is not None
    start = plan.counter_start or 0.0
    reached = int((reading + plan.counter_lead - start) // plan.counter_interval)
    if reached < 1:
        return []
    made = []
    for asset in _targets(session, plan):
        last = _last_occurrence(session, plan, asset)
        if last is not None and last >= reached:
            continue
        threshold = start + reached * plan.counter_interval
        point = f"{plan.counter_device}/{plan.counter_point}"
        description = _both("workorder.pm_counter", level=plan.level, point=point,
                            threshold=f"{threshold:g}", reading=f"{reading:g}")
        order = _create(session, plan, asset, reached, description, now_ms, None)
        if order is not None:
            made.append(order)
    return made


def generate_due(session: Session, now_ms: int,
                 readings: Mapping[int, float] | None = None) -> list[WorkOrder]:
    """Make the work orders of every active plan that are due by ``now_ms`` (calendar plans:
    ``lead_days`` ahead of the window; counter plans: once ``readings[plan_id]`` reaches the
    next threshold less ``counter_lead``). Returns the new work orders."""
    readings = readings or {}
    made: list[WorkOrder] = []
    zones: dict[str, ZoneInfo] = {}
    for plan in session.scalars(select(PmPlan).where(PmPlan.active.is_(True))
                                .order_by(PmPlan.id)).all():
        if plan.trigger == "calendar":
            if plan.site_id not in zones:
                site = session.get(Site, plan.site_id)
                zones[plan.site_id] = ZoneInfo(site.timezone if site else "UTC")
            made += _calendar(session, plan, zones[plan.site_id], now_ms)
        elif plan.id in readings:
            made += _counter(session, plan, readings[plan.id], now_ms)
    if made:
        log.info("generated %d preventive-maintenance work order(s)", len(made))
    return made
