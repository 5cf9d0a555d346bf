"""What the API takes and gives for preventive-maintenance plans (pydantic)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from cloud.assets.tables import AssetClass
from cloud.maintenance.tables import PmLevel, PmPlan, PmTrigger
from cloud.workorders.states import Priority

__all__ = ["PlanIn", "PlanOut", "PlanPatch"]

Ident = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]


class PlanPatch(BaseModel):
    """Fields to change (absent ones stay)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    level: PmLevel | None = None
    asset_id: int | None = None
    asset_class: AssetClass | None = None
    category: str | None = None
    priority: Priority | None = None
    trigger: PmTrigger | None = None
    interval_days: Annotated[int, Field(ge=1, le=3660)] | None = None
    anchor_date: dt.date | None = Field(None, description="First due date (site-local).")
    window_start_min: Annotated[int, Field(ge=0, le=1439)] | None = Field(
        None, description="Window start, minutes after local midnight (elevators: 0).")
    window_minutes: Annotated[int, Field(ge=1, le=1440)] | None = None
    lead_days: Annotated[int, Field(ge=0, le=90)] | None = None
    counter_gateway: Ident | None = None
    counter_device: Ident | None = None
    counter_point: Ident | None = None
    counter_start: float | None = None
    counter_interval: Annotated[float, Field(gt=0)] | None = None
    counter_lead: Annotated[float, Field(ge=0)] | None = None
    contractor: Annotated[str, Field(max_length=200)] | None = None
    instructions: Annotated[str, Field(max_length=4000)] | None = None
    active: bool | None = None

    def fields(self) -> dict[str, Any]:
        """The fields set, with enums as their values."""
        return {k: getattr(v, "value", v) for k, v in self.model_dump(exclude_unset=True).items()}


class PlanIn(PlanPatch):
    """A plan for one asset (`asset_id`) or every asset of a class (`asset_class`)."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    level: PmLevel


class PlanOut(BaseModel):
    id: int
    site: str
    name: str
    level: str
    asset_id: int | None
    asset_class: str | None
    category: str
    priority: str
    trigger: str
    interval_days: int | None
    anchor_date: dt.date | None
    window_start_min: int
    window_minutes: int
    lead_days: int
    counter_gateway: str | None
    counter_device: str | None
    counter_point: str | None
    counter_start: float | None
    counter_interval: float | None
    counter_lead: float
    contractor: str | None
    instructions: str | None
    active: bool
    created: int
    updated: int

    @classmethod
    def of(cls, plan: PmPlan) -> PlanOut:
        values = {name: getattr(plan, name) for name in cls.model_fields
                  if name not in ("site", "created", "updated")}
        return cls(site=plan.site_id, created=plan.created_ms, updated=plan.updated_ms,
                   **values)
