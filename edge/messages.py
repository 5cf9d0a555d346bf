"""Wire messages of one gateway boot: topics, payloads, ``seq`` numbering.

Every telemetry and event message carries ``(boot_id, seq)``; ``seq`` counts up from 1
for each boot, so the cloud can drop redeliveries and see gaps. Payloads are built as
the contract models in :mod:`towerwatch.contract` and encoded by its codec, so what the
gateway sends is validated by the same models the cloud decodes with.

Telemetry, the one message of every poll cycle, has a fast path: when every value is
of a kind whose JSON the standard library writes byte for byte as the contract's
encoder does (booleans, integers, finite floats from 1e-4 up, printable ASCII text,
null with a quality other than ``good``) and every point id is an identifier, the
payload is written directly, with the text :mod:`json` gives each value, in the same
pass that checks it by the rules the model applies. Anything else goes through the
model, which validates it (and raises for what is invalid). Topics are built (and
their identifiers checked) once per device.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from edge.outbox import OutItem
from towerwatch.contract import (
    TS_MAX,
    TS_MIN,
    Birth,
    CommandReply,
    DeviceDescriptor,
    DeviceState,
    Event,
    Telemetry,
    Will,
    check_boot_id,
    check_identifier,
    command_reply_topic,
    device_state_topic,
    encode,
    event_topic,
    new_boot_id,
    status_topic,
    telemetry_topic,
)

Scalar = bool | int | float | str

_QUALITIES: Final = frozenset({"good", "stale", "bad"})
_FLOAT_PLAIN_MIN: Final = 1e-4
"""Below this magnitude Python writes floats with an exponent (``1e-05``), the contract's
encoder without (``0.00001``): such values take the model's path."""
_json_string: Final = json.encoder.encode_basestring_ascii


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
        self.boot_id = check_boot_id(boot_id) if boot_id is not None else new_boot_id()
        self._seq = seq_start
        self._telemetry_topics: dict[str, str] = {}
        self._event_topics: dict[str, str] = {}
        self._ids: set[str] = set()
        """Point ids already checked to be identifiers."""

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    @property
    def seq(self) -> int:
        """The last sequence number given out."""
        return self._seq

    def telemetry(self, device: str, values: Mapping[str, Scalar | None],
                  quality: Mapping[str, str], now: float | None = None) -> OutItem:
        """One telemetry message; the payload is what ``encode(Telemetry(...))`` gives."""
        topic = self._telemetry_topics.get(device)
        if topic is None:
            topic = self._telemetry_topics[device] = telemetry_topic(
                self.site, self.gateway, device)
        seq, ts = self._next(), now_ms(now)
        plain = self._plain_json(values, quality)
        if plain is not None and TS_MIN <= ts <= TS_MAX:
            body = (f'{{"seq":{seq},"boot_id":"{self.boot_id}","ts":{ts},{plain}}}').encode()
        else:
            body = encode(Telemetry(seq=seq, boot_id=self.boot_id, ts=ts, values=dict(values),
                                    quality=dict(quality)))  # type: ignore[arg-type]
        return OutItem(topic, body, qos=1, retain=False, kind="telemetry")

    def _plain(self, values: Mapping[str, Scalar | None], quality: Mapping[str, str]) -> bool:
        """Whether the fast path writes exactly what the model would, and the model
        would accept it: see the module docstring."""
        return self._plain_json(values, quality) is not None

    def _plain_json(self, values: Mapping[str, Scalar | None],
                    quality: Mapping[str, str]) -> str | None:
        """``"values":{...},"quality":{...}`` as :mod:`json` writes them (compact), in
        the same pass that checks them; None when the model's path must write them.

        Written here rather than by :mod:`json`: each value's text is the one the json
        encoder uses for its type (``int.__repr__``, ``float.__repr__``, its ASCII string
        escaping, ``true``/``false``/``null``), and point ids, being identifiers, need no
        escaping; the encoder's setup per call costs more than a small report itself."""
        ids = self._ids
        parts: list[str] = []
        for point, value in values.items():
            if point not in ids:
                if point.__class__ is not str or not _identifier(point):
                    return None
                ids.add(point)
            cls = value.__class__
            if cls is int:
                parts.append(f'"{point}":{int.__repr__(value)}')
            elif cls is bool:
                parts.append(f'"{point}":true' if value else f'"{point}":false')
            elif cls is float:
                number: float = value  # type: ignore[assignment]
                if not math.isfinite(number) or (number != 0.0
                                                 and abs(number) < _FLOAT_PLAIN_MIN):
                    return None
                parts.append(f'"{point}":{float.__repr__(number)}')
            elif cls is str:
                text: str = value  # type: ignore[assignment]
                if not (text.isascii() and text.isprintable()):
                    return None
                parts.append(f'"{point}":{_json_string(text)}')
            elif value is None and quality.get(point, "good") != "good":
                parts.append(f'"{point}":null')
            else:
                return None
        values_json = ",".join(parts)
        parts.clear()
        for point, q in quality.items():
            if q not in _QUALITIES or (point not in ids and not (
                    point.__class__ is str and _identifier(point))):
                return None
            parts.append(f'"{point}":"{q}"')
        return f'"values":{{{values_json}}},"quality":{{{",".join(parts)}}}'

    def event(self, device: str, *, kind: str, name: str, state: str, event_id: str | None = None,
              severity: str | None = None, value: Scalar | None = None,
              detail: Mapping[str, Scalar] | None = None, now: float | None = None) -> OutItem:
        seq = self._next()
        payload = Event(seq=seq, boot_id=self.boot_id, ts=now_ms(now),
                        event_id=event_id or f"{device}:{self.boot_id}:{seq}",
                        kind=kind, name=name, state=state,  # type: ignore[arg-type]
                        severity=severity, value=value,  # type: ignore[arg-type]
                        detail=dict(detail or {}))
        topic = self._event_topics.get(device)
        if topic is None:
            topic = self._event_topics[device] = event_topic(self.site, self.gateway, device)
        return OutItem(topic, encode(payload), qos=1, retain=False, kind="event")

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


def _identifier(text: str) -> bool:
    try:
        check_identifier(text)
    except ValueError:
        return False
    return True
