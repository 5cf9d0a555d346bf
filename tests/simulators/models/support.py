"""Shared scaffolding of the behaviour-model tests.

A model on a manual clock in site-local time, stepped in fixed steps; profiles loaded
from their files; the values checked against a profile (every point present, every
value encodable); alarm conditions evaluated by hand, independent of the edge's rules.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from device_profiles.codec import encode_bacnet, encode_modbus
from device_profiles.loader import builtin_profile_dir, load_profiles
from device_profiles.registers import set_bit
from device_profiles.schema import (
    BacnetProfile,
    Condition,
    DeviceProfile,
    ModbusProfile,
    PointKind,
)
from simulators.clock import SimClock
from simulators.models.base import DeviceModel, SimContext, Value

TZ = "Asia/Shanghai"
DAY = datetime(2024, 5, 6, tzinfo=ZoneInfo(TZ)).timestamp()
"""Midnight, site-local, of the day every model test starts on (a Monday)."""

Values = dict[str, Value]
M = TypeVar("M", bound=DeviceModel)

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge,
    "lt": operator.lt, "le": operator.le}


def clock_at(hour: float) -> SimClock:
    """A manual clock ``hour`` hours into :data:`DAY`."""
    return SimClock(start=DAY + hour * 3600.0, speed=0, timezone=TZ)


def make(cls: type[M], device_id: str, hour: float = 0.0,
         options: Mapping[str, Any] | None = None, seed: int = 0) -> tuple[M, SimClock]:
    """A model of ``cls`` on its own clock, ``hour`` hours into the test day."""
    clock = clock_at(hour)
    model = cls(device_id, SimContext(clock=clock, rng=random.Random(seed)), options or {})
    return model, clock


def run(model: DeviceModel, clock: SimClock, seconds: float, step: float = 1.0,
        watch: Callable[[Values], None] | None = None) -> Values:
    """Step the model ``seconds`` on in steps of ``step``; ``watch`` sees every step's values.
    Returns the values at the end."""
    done = 0.0
    while done < seconds - 1e-9:
        h = min(step, seconds - done)
        clock.advance(h)
        model.step(clock.now(), h)
        done += h
        if watch is not None:
            watch(model.values())
    return model.values()


def profiles_from(files: Mapping[str, str]) -> dict[str, DeviceProfile]:
    """The built-in profiles ``{profile id: file name}``, loaded from just those files."""
    loaded = load_profiles([builtin_profile_dir() / name for name in files.values()])
    return {profile_id: loaded.get(profile_id) for profile_id in files}


def modbus_profiles_from(files: Mapping[str, str]) -> dict[str, ModbusProfile]:
    result: dict[str, ModbusProfile] = {}
    for profile_id, profile in profiles_from(files).items():
        assert isinstance(profile, ModbusProfile), profile_id
        result[profile_id] = profile
    return result


def check_encodes(profile: DeviceProfile, values: Mapping[str, Value]) -> None:
    """Every point but event logs has a value, and every value encodes for the wire
    (a Modbus bit point as a bool in its register)."""
    assert set(values) == {p.id for p in profile.points if p.kind is not PointKind.EVENT_LOG}
    if isinstance(profile, BacnetProfile):
        for bpoint in profile.points:
            encode_bacnet(bpoint, values[bpoint.id], enums=profile.enums)
        return
    for point in profile.points:
        if point.event_log is not None:
            continue
        value = values[point.id]
        if point.bit is not None:
            assert isinstance(value, bool), point.id
            set_bit([0] * point.width, point.bit, value)
        else:
            encode_modbus(point, value, byte_order=profile.byte_order_of(point),
                          enums=profile.enums)


def holds(when: Condition, values: Mapping[str, Value],
          profile: DeviceProfile | None = None) -> bool:
    """An alarm's ``when`` evaluated by hand on model values (no delays); a ``bit`` by
    name needs the ``profile`` for the bit's number."""
    value, op, operand = values[when.point], when.operator, when.operand
    if op == "bit":
        if not isinstance(operand, int):
            assert profile is not None, "a bit by name needs the profile"
            names = {b.name: b.bit for b in profile.bits[profile.point(when.point).bits or ""]}
            operand = names[str(operand)]
        assert isinstance(value, int)
        assert isinstance(operand, int)
        return bool(value >> operand & 1)
    if op == "in":
        assert isinstance(operand, list)
        return value in operand
    return _COMPARE[op](value, operand)


def alarm_active(profile: DeviceProfile, alarm_id: str, values: Mapping[str, Value]) -> bool:
    """The condition of the profile's alarm ``alarm_id``, evaluated by hand."""
    when = next(a for a in profile.alarms if a.id == alarm_id).when
    return holds(when, values, profile)


def bit(profile: DeviceProfile, values: Mapping[str, Value], point: str, name: str) -> bool:
    """Whether the bit called ``name`` of bitfield ``point`` is set."""
    number = next(b.bit for b in profile.bits[profile.point(point).bits or ""] if b.name == name)
    word = values[point]
    assert isinstance(word, int)
    return bool(word >> number & 1)
