"""Settings of the alarm lifecycle, with per-site overrides.

:class:`AlarmSettings` is the ``alarms:`` section of the cloud settings (defaults from
shared/DOMAIN.md: an unacknowledged emergency escalates after the 5-minute response time,
an urgent one after 30 minutes). A site may override any top-level field with an
:class:`AlarmPolicy` stored in ``alarm_policies``; :func:`effective` merges the two.

Durations accept ``5s``, ``15m``, ``2h`` or seconds.
"""

from __future__ import annotations

import itertools
from fnmatch import fnmatchcase
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from device_profiles.durations import Duration

__all__ = ["AlarmPolicy", "AlarmSettings", "RuleSettings", "SuppressionRule", "effective"]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SuppressionRule(_Section):
    """Suppress alarms ``alarms`` (globs) of a device whose profile matches ``profiles`` while
    its point ``point`` reads ``equals`` (the latest sample in the time-series store)."""

    id: Annotated[str, Field(min_length=1, max_length=64)]
    profiles: list[str] = Field(min_length=1)
    point: str
    equals: str | int | float | bool
    alarms: list[str] = Field(min_length=1)

    def matches_alarm(self, alarm: str) -> bool:
        return any(fnmatchcase(alarm, a) for a in self.alarms)

    def applies(self, profile: str | None, alarm: str) -> bool:
        return (profile is not None and any(fnmatchcase(profile, p) for p in self.profiles)
                and self.matches_alarm(alarm))


class RuleSettings(_Section):
    """Cloud-side rules (evaluated by the periodic job)."""

    gateway_offline_after: Duration = 120.0
    """A gateway offline (will, or nothing heard) this long raises ``gateway_offline``."""
    device_offline_after: Duration = 120.0
    stale_after: Duration = 3600.0
    """An online device with no sample this long raises ``stale_data``."""
    leak_points: dict[str, str] = {"water-meter-*": "volume_total"}
    """Profile glob → cumulative volume point compared with the same hour's baseline."""
    leak_baseline_days: Annotated[int, Field(ge=1, le=60)] = 7
    leak_factor: Annotated[float, Field(gt=1)] = 3.0
    leak_min_volume: Annotated[float, Field(ge=0)] = 0.5
    """An hour's consumption must also exceed the baseline by this much (m³)."""
    counter_window: Duration = 3600.0
    """How far back the counter-going-backwards rule looks (and how long it stays active)."""


_DEFAULT_SUPPRESSION = [
    SuppressionRule(id="inspection_mode", profiles=["elevator-*"], point="mode",
                    equals="inspection", alarms=["door_*"]),
]


class AlarmSettings(_Section):
    realarm: dict[str, Duration | None] = {
        "emergency": 300.0, "high": 1800.0, "medium": 7200.0, "low": None}
    """Re-annunciate an unacknowledged active alarm this often, per priority (None: never)."""
    escalation: dict[str, list[Duration]] = {
        "emergency": [300.0, 900.0, 1800.0], "high": [1800.0, 3600.0]}
    """Per priority: seconds after the raise at which an unacknowledged alarm reaches
    level 1, 2, …; priorities not listed never escalate."""
    notify_priorities: list[str] = ["emergency", "high"]
    """Newly raised alarms of these priorities are notified at level 0."""
    max_shelve: Duration = 8 * 3600.0
    offline_exempt: list[str] = ["comm_*", "*_offline", "device_offline", "stale_data"]
    """Alarms (globs) a device being offline does not suppress: they report the outage."""
    suppression: list[SuppressionRule] = _DEFAULT_SUPPRESSION
    rules: RuleSettings = RuleSettings()
    job_interval: Duration = 15.0

    @model_validator(mode="after")
    def _known_priorities(self) -> AlarmSettings:
        known = {"emergency", "high", "medium", "low"}
        for name, keys in (("realarm", self.realarm), ("escalation", self.escalation),
                           ("notify_priorities", self.notify_priorities)):
            unknown = sorted(set(keys) - known)
            if unknown:
                raise ValueError(f"{name}: unknown priorit(y/ies) {unknown}; use {sorted(known)}")
        for priority, ladder in self.escalation.items():
            if any(b <= a for a, b in itertools.pairwise(ladder)):
                raise ValueError(f"escalation.{priority}: delays must increase, got {ladder}")
        return self

    def realarm_ms(self, priority: str) -> int | None:
        interval = self.realarm.get(priority)
        return None if not interval else int(interval * 1000)

    def ladder(self, priority: str) -> list[float]:
        return list(self.escalation.get(priority, []))

    def offline_suppresses(self, alarm: str) -> bool:
        return not any(fnmatchcase(alarm, pattern) for pattern in self.offline_exempt)


class AlarmPolicy(_Section):
    """A site's overrides: any field of :class:`AlarmSettings` left out keeps the default."""

    realarm: dict[str, Duration | None] | None = None
    escalation: dict[str, list[Duration]] | None = None
    notify_priorities: list[str] | None = None
    max_shelve: Duration | None = None
    offline_exempt: list[str] | None = None
    suppression: list[SuppressionRule] | None = None


def effective(settings: AlarmSettings,
              policy: AlarmPolicy | dict[str, Any] | None) -> AlarmSettings:
    """``settings`` with a site's ``policy`` applied (validated again as a whole)."""
    if policy is None:
        return settings
    overrides = policy if isinstance(policy, AlarmPolicy) else AlarmPolicy.model_validate(policy)
    changed = overrides.model_dump(exclude_none=True)
    if not changed:
        return settings
    return AlarmSettings.model_validate({**settings.model_dump(), **changed})
