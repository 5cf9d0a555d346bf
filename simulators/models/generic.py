"""A model for any profile: numbers wander, bools flip now and then, enums stay put.

It drives profiles that have no behaviour model of their own (load tests, a new
profile being written), so a gateway has something changing to read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from device_profiles.codec import counter_modulus
from device_profiles.schema import DeviceProfile, ModbusPoint, PointKind
from simulators.models.base import DeviceModel, SimContext, Value, WriteRefused

ANY_PROFILE = "*"


class GenericModel(DeviceModel):
    profiles: ClassVar[tuple[str, ...]] = (ANY_PROFILE,)

    def __init__(self, device_id: str, ctx: SimContext, options: Mapping[str, Any]) -> None:
        super().__init__(device_id, ctx, options)
        profile = options.get("profile")
        if profile is None:
            raise ValueError("the generic model needs the profile (given by the building)")
        self.profile: DeviceProfile = profile
        self.change = float(options.get("change", 0.1))
        if not 0 <= self.change <= 1:
            raise ValueError(f"option 'change' is a share of points per second (0-1), "
                             f"got {self.change}")
        self._values: dict[str, Value] = {}
        for point in self.profile.points:
            if point.kind is PointKind.EVENT_LOG:
                continue
            self._values[point.id] = self._initial(point.kind, point.enum)

    def _initial(self, kind: PointKind, enum: str | None) -> Value:
        if kind is PointKind.BOOL:
            return False
        if kind is PointKind.ENUM and enum is not None:
            return self.profile.enums[enum][0].name
        if kind is PointKind.TEXT:
            return "SIM"
        if kind is PointKind.BITFIELD:
            return 0
        return 100 if kind is PointKind.COUNTER else 50

    def step(self, now: float, dt: float) -> None:
        rng = self.ctx.rng
        for point in self.profile.points:
            if point.id not in self._values or rng.random() > self.change * dt:
                continue
            value = self._values[point.id]
            if point.kind is PointKind.BOOL:
                self._values[point.id] = not value
            elif point.kind is PointKind.NUMBER and isinstance(value, int | float):
                self._values[point.id] = min(60000, max(0, int(value) + rng.randint(-3, 3)))
            elif point.kind is PointKind.COUNTER and isinstance(value, int | float):
                limit = counter_modulus(point) if isinstance(point, ModbusPoint) else 2**31
                self._values[point.id] = (int(value) + rng.randint(0, 5)) % int(limit)

    def values(self) -> dict[str, Value]:
        return dict(self._values)

    def write(self, point_id: str, value: Value) -> None:
        if point_id not in self._values:
            raise WriteRefused(f"{self.device_id}: no point {point_id!r}")
        self._values[point_id] = value
