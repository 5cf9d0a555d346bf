"""Helpers of the alarm tests: a site with a gateway and devices, specs, a recording
observer and notifier, and a clock moved by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from sqlalchemy.orm import Session

from cloud.alarms import AlarmSpec
from cloud.alarms.tables import Alarm, Change
from cloud.db import learn_birth, learn_device_state, upsert_site
from cloud.notify.base import Notification
from towerwatch.contract import Birth, DeviceDescriptor, DeviceState

T0: Final = 1_749_996_000_000
"""2025-06-15T14:00:00Z."""
MIN: Final = 60_000


def seed_site(session: Session, *, site: str = "alpha", online: bool = True) -> None:
    """Site ``alpha`` with gateway ``gw1``: ``lift-1`` (elevator), ``pump-1``, ``meter-1``."""
    upsert_site(session, site, name="Alpha Tower", timezone="Asia/Shanghai")
    birth = Birth(boot_id="boot-0001", version="1.0.0", ts=T0 - 600_000, devices=[
        DeviceDescriptor(id="lift-1", profile="elevator-ctl-modbus"),
        DeviceDescriptor(id="pump-1", profile="booster-pumpset-modbus"),
        DeviceDescriptor(id="meter-1", profile="water-meter-modbus")])
    learn_birth(session, site, "gw1", birth, received_ms=T0 - 600_000)
    for device in ("lift-1", "pump-1", "meter-1"):
        learn_device_state(session, site, "gw1", device,
                           DeviceState(online=online, since=T0 - 590_000))


def spec(name: str = "pump1_tripped", *, device: str = "pump-1", priority: str = "high",
         category: str = "water", site: str = "alpha", source: str = "edge") -> AlarmSpec:
    return AlarmSpec(site, "gw1", device, name, source, priority, category,
                     f"{name} (en)", f"{name}（中文）", {})


@dataclass
class RecordingObserver:
    changes: list[tuple[int, Change, str]] = field(default_factory=list)

    def alarm_changed(self, session: Session, alarm: Alarm, change: Change) -> None:
        assert session.is_active
        self.changes.append((alarm.id, change, alarm.state))


@dataclass
class RecordingNotifier:
    sent: list[Notification] = field(default_factory=list)

    def submit(self, notification: Notification) -> bool:
        self.sent.append(notification)
        return True

    def close(self) -> None:
        return None


class Clock:
    def __init__(self, now_ms: int = T0) -> None:
        self.ms = now_ms

    def __call__(self) -> float:
        return self.ms / 1000

    def advance(self, ms: int) -> int:
        self.ms += ms
        return self.ms
