"""What the device profiles say about alarms: priority, category and texts per alarm id,
the equipment's work-order category, and the counter points (with where they wrap).

Built once from a :class:`~device_profiles.loader.ProfileSet`; the alarm sink and the
cloud rules look alarms up by ``(profile, alarm id)``. An alarm the catalogue does not know
(``comm_loss``, a profile unknown to the cloud) falls back to what the edge event carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from device_profiles.codec import CodecError, counter_modulus
from device_profiles.loader import ProfileSet
from device_profiles.schema import ModbusProfile, PointKind

__all__ = ["AlarmCatalogue", "AlarmInfo", "equipment_category"]

_CATEGORIES: Final = {
    "Elevator": "elevator", "Fire_Alarm_Control_Panel": "fire", "Fire_Pump": "fire",
    "Access_Control_Equipment": "access", "Electrical_Meter": "electrical",
    "Generator": "electrical", "Uninterruptible_Power_Supply": "electrical",
    "Automatic_Transfer_Switch": "electrical",
}


def equipment_category(equipment: str | None) -> str:
    """The work-order category of an equipment class (pumps and water meters: water)."""
    if equipment is None:
        return "general"
    if equipment in _CATEGORIES:
        return _CATEGORIES[equipment]
    return "water" if "Pump" in equipment or equipment == "Water_Meter" else "general"


@dataclass(frozen=True)
class AlarmInfo:
    priority: str
    category: str
    text_en: str
    text_zh: str


@dataclass(frozen=True)
class AlarmCatalogue:
    alarms: Mapping[tuple[str, str], AlarmInfo] = field(default_factory=dict)
    equipment: Mapping[str, str] = field(default_factory=dict)
    """Profile id → equipment class."""
    counters: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    """Profile id → counter point id → modulus in engineering units (None: unknown)."""

    @classmethod
    def from_profiles(cls, profiles: ProfileSet) -> AlarmCatalogue:
        alarms: dict[tuple[str, str], AlarmInfo] = {}
        equipment: dict[str, str] = {}
        counters: dict[str, dict[str, float | None]] = {}
        for pid in profiles.ids():
            profile = profiles.get(pid)
            equipment[pid] = profile.equipment
            for rule in profile.alarms:
                alarms[(pid, rule.id)] = AlarmInfo(rule.severity.value, rule.category.value,
                                                   rule.text.en, rule.text.zh)
            points: dict[str, float | None] = {}
            for point in profile.points:
                if point.kind is not PointKind.COUNTER:
                    continue
                modulus: float | None = None
                if isinstance(profile, ModbusProfile):
                    try:
                        modulus = float(counter_modulus(profile.point(point.id)))
                    except CodecError:
                        modulus = None
                points[point.id] = modulus
            if points:
                counters[pid] = points
        return cls(alarms, equipment, counters)

    def lookup(self, profile: str | None, alarm: str) -> AlarmInfo | None:
        return None if profile is None else self.alarms.get((profile, alarm))

    def category_of(self, profile: str | None) -> str:
        return equipment_category(None if profile is None else self.equipment.get(profile))
