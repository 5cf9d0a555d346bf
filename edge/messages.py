"""Wire messages of one gateway boot: topics, payloads, ``seq`` numbering.

Every telemetry and event message carries ``(boot_id, seq)``; ``seq`` counts up from 1
for each boot, so the cloud can drop redeliveries and see gaps. Payloads are built as
the contract models in :mod:`towerwatch.contract` and encoded by its codec, so what the
gateway sends is validated by the same models the cloud decodes with.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edge.outbox import OutItem
from towerwatch.contract import (
    Birth,
    CommandReply,
    DeviceDescriptor,
    DeviceState,
    Event,
    Telemetry,
    Will,
    command_reply_topic,
    device_state_topic,
    encode,
    event_topic,
    new_boot_id,
    status_topic,
    telemetry_topic,
)

Scalar = bool | int | float | str


def now_ms(now: float | None = None) -> int:
    return int((time.time() if now is None else now) * 1000)


@dataclass(frozen=True)
class DeviceInfo:
    id: str
    profile: str
    name: str | None = None


class MessageBuilder:
    """Builds the messages of one boot of one gateway."""

    def __init__(self, site: str, gateway: str, *, version: str, boot_id: str | None = None,
                 seq_start: int = 0) -> None:
        self.site, self.gateway, self.version = site, gateway, version
        self.boot_id = boot_id or new_boot_id()
        self._seq = seq_start

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    @property
    def seq(self) -> int:
        """The last sequence number given out."""
        return self._seq

    def telemetry(self, device: str, values: Mapping[str, Scalar | None],
                  quality: Mapping[str, str], now: float | None = None) -> OutItem:
        payload = Telemetry(seq=self._next(), boot_id=self.boot_id, ts=now_ms(now),
                            values=dict(values), quality=dict(quality))  # type: ignore[arg-type]
        return OutItem(telemetry_topic(self.site, self.gateway, device), encode(payload),
                       qos=1, retain=False, kind="telemetry")

    def event(self, device: str, *, kind: str, name: str, state: str, event_id: str | None = None,
              severity: str | None = None, value: Scalar | None = None,
              detail: Mapping[str, Scalar] | None = None, now: float | None = None) -> OutItem:
        seq = self._next()
        payload = Event(seq=seq, boot_id=self.boot_id, ts=now_ms(now),
                        event_id=event_id or f"{device}:{self.boot_id}:{seq}",
                        kind=kind, name=name, state=state,  # type: ignore[arg-type]
                        severity=severity, value=value,  # type: ignore[arg-type]
                        detail=dict(detail or {}))
        return OutItem(event_topic(self.site, self.gateway, device), encode(payload),
                       qos=1, retain=False, kind="event")

    def device_state(self, device: str, *, online: bool, since: float,
                     reason: str | None = None) -> OutItem:
        payload = DeviceState(online=online, since=now_ms(since), reason=reason)
        return OutItem(device_state_topic(self.site, self.gateway, device), encode(payload),
                       qos=1, retain=True, kind="state")

    def birth(self, devices: Sequence[DeviceInfo], now: float | None = None) -> bytes:
        return encode(Birth(state="online", boot_id=self.boot_id, version=self.version,
                            ts=now_ms(now),
                            devices=[DeviceDescriptor(id=d.id, profile=d.profile, name=d.name)
                                     for d in devices]))

    def will(self, reason: str = "connection lost", now: float | None = None) -> bytes:
        return encode(Will(state="offline", boot_id=self.boot_id, ts=now_ms(now), reason=reason))

    @property
    def status_topic(self) -> str:
        return status_topic(self.site, self.gateway)

    def reply(self, request_id: str, *, ok: bool, error: str | None = None,
              now: float | None = None) -> OutItem:
        payload = CommandReply(ok=ok, error=None if ok else (error or "failed"), ts=now_ms(now))
        return OutItem(command_reply_topic(self.site, self.gateway, request_id), encode(payload),
                       qos=1, retain=False, kind="reply")
