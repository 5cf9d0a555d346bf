"""Preventive-maintenance plans: create, change, list, remove (audited as ``pm_plan.*``).

Defaults fill what a plan leaves out:

- interval: the asset's maintenance cycle (asset plans), the class default of
  :data:`cloud.assets.register.DEFAULT_CYCLE_DAYS` (class plans: elevators 15 days, fire
  alarm systems monthly, …), else the level's (:data:`LEVEL_DAYS`);
- window: elevators and escalators 00:00-06:00 (work after midnight), others 09:00-17:00;
- category: the trade of the asset class (:data:`CLASS_CATEGORY`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.assets.register import DEFAULT_CYCLE_DAYS, get_asset
from cloud.assets.tables import ASSET_CLASSES
from cloud.db.audit import record_audit
from cloud.db.errors import UnknownSite
from cloud.db.models import Site
from cloud.maintenance.tables import PM_LEVELS, PM_TRIGGERS, PmPlan
from cloud.workorders.errors import InvalidInput, NotFound
from cloud.workorders.policies import check_category, check_priority

__all__ = ["CLASS_CATEGORY", "LEVEL_DAYS", "create_plan", "delete_plan", "get_plan",
           "list_plans", "update_plan"]

LEVEL_DAYS: Final[Mapping[str, int]] = {
    "daily": 1, "monthly": 30, "quarterly": 91, "half_yearly": 182, "annual": 365}
CLASS_CATEGORY: Final[Mapping[str, str]] = {
    "elevator": "elevator", "escalator": "elevator", "pump": "water", "water_tank": "water",
    "fire_pump": "fire", "fire_alarm": "fire", "sprinkler": "fire", "fire_door": "fire",
    "extinguisher": "fire", "door": "access", "meter": "electrical", "power": "electrical",
    "hvac": "hvac", "other": "general"}
_NIGHT_CLASSES: Final = frozenset({"elevator", "escalator"})
_FIELDS: Final = ("name", "level", "asset_id", "asset_class", "category", "priority", "trigger",
                  "interval_days", "anchor_date", "window_start_min", "window_minutes",
                  "lead_days", "counter_gateway", "counter_device", "counter_point",
                  "counter_start", "counter_interval", "counter_lead", "contractor",
                  "instructions", "active")


def _fill(session: Session, site: str, values: dict[str, Any]) -> None:
    """Check every field (naming the bad one) and apply the defaults."""
    name = values.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidInput("name", "a plan needs a name of 1 to 200 characters")
    if values.get("level") not in PM_LEVELS:
        raise InvalidInput("level", f"one of: {', '.join(PM_LEVELS)}")
    trigger = values.setdefault("trigger", "calendar")
    if trigger not in PM_TRIGGERS:
        raise InvalidInput("trigger", f"one of: {', '.join(PM_TRIGGERS)}")
    asset_id, asset_class = values.get("asset_id"), values.get("asset_class")
    if (asset_id is None) == (asset_class is None):
        raise InvalidInput("asset_id", "give either asset_id or asset_class")
    cycle = None
    if asset_id is not None:
        asset = get_asset(session, asset_id, site=site)
        asset_class, cycle = asset.asset_class, asset.maintenance_cycle_days
    elif asset_class not in ASSET_CLASSES:
        raise InvalidInput("asset_class", f"one of: {', '.join(ASSET_CLASSES)}")
    else:
        cycle = DEFAULT_CYCLE_DAYS.get(asset_class)
    values["category"] = check_category(values.get("category") or CLASS_CATEGORY[asset_class])
    values["priority"] = check_priority(values.get("priority") or "normal")
    night = asset_class in _NIGHT_CLASSES
    values.setdefault("window_start_min", 0 if night else 9 * 60)
    values.setdefault("window_minutes", 6 * 60 if night else 8 * 60)
    values.setdefault("lead_days", 3)
    if not 0 <= values["window_start_min"] < 1440:
        raise InvalidInput("window_start_min", "minutes after local midnight, 0 to 1439")
    if not 1 <= values["window_minutes"] <= 1440:
        raise InvalidInput("window_minutes", "1 to 1440 minutes")
    if not 0 <= values["lead_days"] <= 90:
        raise InvalidInput("lead_days", "0 to 90 days")
    if trigger == "calendar":
        days = values.get("interval_days") or cycle or LEVEL_DAYS.get(values["level"])
        if not isinstance(days, int) or not 1 <= days <= 3660:
            raise InvalidInput("interval_days", "1 to 3660 days (required for this level)")
        values["interval_days"] = days
        if not isinstance(values.get("anchor_date"), dt.date):
            raise InvalidInput("anchor_date", "the first due date (YYYY-MM-DD)")
        return
    if asset_id is None:
        raise InvalidInput("asset_id", "a counter plan belongs to one asset")
    for key in ("counter_gateway", "counter_device", "counter_point"):
        if not values.get(key):
            raise InvalidInput(key, "a counter plan reads one point of one device")
    interval = values.get("counter_interval")
    if not isinstance(interval, int | float) or interval <= 0:
        raise InvalidInput("counter_interval", "a positive number of counter units")
    values.setdefault("counter_start", 0.0)
    values.setdefault("counter_lead", 0.0)
    if not 0 <= values["counter_lead"] < interval:
        raise InvalidInput("counter_lead", "0 or more, less than counter_interval")


def get_plan(session: Session, plan_id: int, *, site: str | None = None) -> PmPlan:
    plan = session.get(PmPlan, plan_id)
    if plan is None or (site is not None and plan.site_id != site):
        raise NotFound("pm_plan", plan_id)
    return plan


def _values(plan: PmPlan) -> dict[str, Any]:
    return {key: getattr(plan, key) for key in _FIELDS}


def _audit_detail(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in values.items()}


def create_plan(session: Session, *, site: str, now_ms: int, user: str | None,
                **fields: Any) -> PmPlan:
    if session.get(Site, site) is None:
        raise UnknownSite(site)
    unknown = set(fields) - set(_FIELDS)
    if unknown:
        raise InvalidInput(sorted(unknown)[0], "not a field of a plan")
    values = {k: v for k, v in fields.items() if v is not None}
    _fill(session, site, values)
    plan = PmPlan(site_id=site, created_ms=now_ms, updated_ms=now_ms, **values)
    session.add(plan)
    session.flush()
    record_audit(session, ts_ms=now_ms, user=user, action="pm_plan.create", site=site,
                 target=f"pm-plan/{plan.id}", detail=_audit_detail(values))
    return plan


def update_plan(session: Session, plan: PmPlan, changes: Mapping[str, Any], *, now_ms: int,
                user: str | None) -> PmPlan:
    """Change fields; the result is checked as a whole. Occurrences already generated stay."""
    unknown = set(changes) - set(_FIELDS)
    if unknown:
        raise InvalidInput(sorted(unknown)[0], "not a field of a plan")
    values = _values(plan) | dict(changes)
    if "asset_id" in changes and changes["asset_id"] is not None:
        values["asset_class"] = None
    if "asset_class" in changes and changes["asset_class"] is not None:
        values["asset_id"] = None
    _fill(session, plan.site_id, values)
    for key, value in values.items():
        setattr(plan, key, value)
    plan.updated_ms = now_ms
    session.flush()
    record_audit(session, ts_ms=now_ms, user=user, action="pm_plan.update", site=plan.site_id,
                 target=f"pm-plan/{plan.id}", detail=_audit_detail(changes))
    return plan


def delete_plan(session: Session, plan: PmPlan, *, now_ms: int, user: str | None) -> None:
    """Remove the plan; its work orders stay."""
    record_audit(session, ts_ms=now_ms, user=user, action="pm_plan.delete", site=plan.site_id,
                 target=f"pm-plan/{plan.id}", detail={"name": plan.name})
    session.delete(plan)
    session.flush()


def list_plans(session: Session, site: str, *, asset_id: int | None = None) -> list[PmPlan]:
    query = select(PmPlan).where(PmPlan.site_id == site).order_by(PmPlan.id)
    if asset_id is not None:
        query = query.where(PmPlan.asset_id == asset_id)
    return list(session.scalars(query))
