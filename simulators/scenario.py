"""Scenario files: a timeline of things that happen to a simulated building.

``at`` is simulated time since the scenario started (``"00:30"`` = 30 minutes,
``"01:00:30"``, or a duration such as ``"90s"``)::

    name: {en: A bad night, zh: 不平静的夜晚}
    events:
      - {at: "00:30", device: lift-2, fault: passenger_trapped}
      - {at: "00:50", device: lift-2, clear: passenger_trapped}
      - {at: "01:00", device: fire-panel, fault: fire_alarm, args: {zone: 3}}
      - {at: "02:00", device: pumps, fault: pump_trip, args: {pump: 1}}
      - {at: "02:30", device: meter-1, comms: silent}
      - {at: "02:40", device: meter-1, comms: normal}

Each event does exactly one of ``fault`` (start a fault), ``clear`` (end one) or
``comms`` (``normal`` | ``slow`` with ``delay`` | ``silent``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from device_profiles.durations import Duration, parse_duration
from device_profiles.schema import Identifier, LocalizedText
from towerwatch.sourced_yaml import SourceError, issues_from_validation, load_yaml

_CLOCK = re.compile(r"^(\d+):([0-5]\d)(?::([0-5]\d))?$")


def parse_offset(value: object) -> float:
    """``"HH:MM"``, ``"HH:MM:SS"`` or a duration -> seconds since the scenario started."""
    if isinstance(value, str) and (match := _CLOCK.match(value.strip())):
        hours, minutes, seconds = match.groups()
        return int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)
    return parse_duration(value)


Offset = Annotated[float, BeforeValidator(parse_offset)]


class ScenarioEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    at: Offset
    device: Identifier
    fault: Identifier | None = None
    clear: Identifier | None = None
    comms: Literal["normal", "slow", "silent"] | None = None
    delay: Duration = 0.0
    args: dict[str, Any] = {}

    @model_validator(mode="after")
    def _one_action(self) -> ScenarioEvent:
        given = [n for n in ("fault", "clear", "comms") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("an event does exactly one of 'fault', 'clear' or 'comms'; "
                             f"found {', '.join(given) or 'none'}")
        return self

    def describe(self) -> str:
        if self.fault:
            what = f"fault {self.fault}"
        elif self.clear:
            what = f"clear {self.clear}"
        else:
            what = f"comms {self.comms}"
        args = ", ".join(f"{k}={v}" for k, v in self.args.items())
        return f"{self.device}: {what}" + (f" ({args})" if args else "")


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: LocalizedText | None = None
    events: list[ScenarioEvent]

    def timeline(self) -> list[ScenarioEvent]:
        """Events in the order they happen (stable for equal times)."""
        return sorted(self.events, key=lambda e: e.at)


def load_scenario(path: Path | str) -> tuple[Scenario, Any]:
    raw = load_yaml(path)
    try:
        return Scenario.model_validate(raw), raw
    except ValidationError as exc:
        raise SourceError(issues_from_validation(exc, raw)) from exc
