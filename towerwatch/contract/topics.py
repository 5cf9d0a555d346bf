"""MQTT topic names: build them, parse them, and know how each kind is published.

Every topic lives under ``tw/v1/{site}/{gateway}``::

    …/status                      retained  birth / will
    …/telemetry/{device}                    point values
    …/event/{device}                        alarms, access, state changes
    …/device/{device}/state       retained  device online / offline
    …/cmd/{request_id}                      cloud → edge command
    …/cmd-reply/{request_id}                edge → cloud reply
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from towerwatch.contract.errors import IdentifierError, TopicError
from towerwatch.contract.ids import check_identifier, check_request_id

PREFIX = "tw"
VERSION = "v1"
ROOT = f"{PREFIX}/{VERSION}"


class TopicKind(StrEnum):
    """Which row of the wire contract a topic belongs to."""

    STATUS = "status"
    TELEMETRY = "telemetry"
    EVENT = "event"
    DEVICE_STATE = "device_state"
    COMMAND = "command"
    COMMAND_REPLY = "command_reply"

    @property
    def has_device(self) -> bool:
        return self in _DEVICE_KINDS

    @property
    def has_request_id(self) -> bool:
        return self in _REQUEST_KINDS


_DEVICE_KINDS = frozenset({TopicKind.TELEMETRY, TopicKind.EVENT, TopicKind.DEVICE_STATE})
_REQUEST_KINDS = frozenset({TopicKind.COMMAND, TopicKind.COMMAND_REPLY})

# The level after the gateway names the kind.
_SEGMENTS: dict[str, TopicKind] = {
    "status": TopicKind.STATUS,
    "telemetry": TopicKind.TELEMETRY,
    "event": TopicKind.EVENT,
    "device": TopicKind.DEVICE_STATE,
    "cmd": TopicKind.COMMAND,
    "cmd-reply": TopicKind.COMMAND_REPLY,
}


@dataclass(frozen=True)
class Delivery:
    """How a topic kind is published: MQTT QoS and the retained flag."""

    qos: int
    retain: bool


_DELIVERY: dict[TopicKind, Delivery] = {
    TopicKind.STATUS: Delivery(qos=1, retain=True),
    TopicKind.TELEMETRY: Delivery(qos=1, retain=False),
    TopicKind.EVENT: Delivery(qos=1, retain=False),
    TopicKind.DEVICE_STATE: Delivery(qos=1, retain=True),
    TopicKind.COMMAND: Delivery(qos=1, retain=False),
    TopicKind.COMMAND_REPLY: Delivery(qos=1, retain=False),
}


def delivery(kind: TopicKind) -> Delivery:
    """QoS and retained flag for a topic kind, as the wire contract's table says."""
    return _DELIVERY[kind]


def _check(part: str, check: Callable[[str, str], str], value: str, topic: str | None) -> str:
    try:
        return check(value, part)
    except IdentifierError as exc:
        raise TopicError(part, str(exc), topic) from exc


@dataclass(frozen=True)
class Topic:
    """A parsed topic; ``str(topic)`` gives the topic name."""

    kind: TopicKind
    site: str
    gateway: str
    device: str | None = None
    request_id: str | None = None

    def __post_init__(self) -> None:
        _check("site", check_identifier, self.site, None)
        _check("gateway", check_identifier, self.gateway, None)
        if self.kind.has_device:
            if self.device is None:
                raise TopicError("device", f"a {self.kind} topic needs a device")
            _check("device", check_identifier, self.device, None)
        elif self.device is not None:
            raise TopicError("device", f"a {self.kind} topic has no device")
        if self.kind.has_request_id:
            if self.request_id is None:
                raise TopicError("request_id", f"a {self.kind} topic needs a request id")
            _check("request_id", check_request_id, self.request_id, None)
        elif self.request_id is not None:
            raise TopicError("request_id", f"a {self.kind} topic has no request id")

    def __str__(self) -> str:
        root = gateway_root(self.site, self.gateway)
        match self.kind:
            case TopicKind.STATUS:
                return f"{root}/status"
            case TopicKind.TELEMETRY:
                return f"{root}/telemetry/{self.device}"
            case TopicKind.EVENT:
                return f"{root}/event/{self.device}"
            case TopicKind.DEVICE_STATE:
                return f"{root}/device/{self.device}/state"
            case TopicKind.COMMAND:
                return f"{root}/cmd/{self.request_id}"
            case TopicKind.COMMAND_REPLY:
                return f"{root}/cmd-reply/{self.request_id}"

    @property
    def delivery(self) -> Delivery:
        return delivery(self.kind)


def gateway_root(site: str, gateway: str) -> str:
    """``tw/v1/{site}/{gateway}``."""
    _check("site", check_identifier, site, None)
    _check("gateway", check_identifier, gateway, None)
    return f"{ROOT}/{site}/{gateway}"


def status_topic(site: str, gateway: str) -> str:
    """``…/status`` (retained birth; the MQTT will goes here too)."""
    return str(Topic(TopicKind.STATUS, site, gateway))


def telemetry_topic(site: str, gateway: str, device: str) -> str:
    """``…/telemetry/{device}``."""
    return str(Topic(TopicKind.TELEMETRY, site, gateway, device=device))


def event_topic(site: str, gateway: str, device: str) -> str:
    """``…/event/{device}``."""
    return str(Topic(TopicKind.EVENT, site, gateway, device=device))


def device_state_topic(site: str, gateway: str, device: str) -> str:
    """``…/device/{device}/state`` (retained)."""
    return str(Topic(TopicKind.DEVICE_STATE, site, gateway, device=device))


def command_topic(site: str, gateway: str, request_id: str) -> str:
    """``…/cmd/{request_id}`` (cloud → edge)."""
    return str(Topic(TopicKind.COMMAND, site, gateway, request_id=request_id))


def command_reply_topic(site: str, gateway: str, request_id: str) -> str:
    """``…/cmd-reply/{request_id}`` (edge → cloud)."""
    return str(Topic(TopicKind.COMMAND_REPLY, site, gateway, request_id=request_id))


def _level(levels: list[str], index: int, part: str, topic: str) -> str:
    if index >= len(levels):
        raise TopicError(part, "missing", topic)
    return levels[index]


def parse_topic(topic: str) -> Topic:
    """Parse a topic name; anything malformed raises :class:`TopicError` naming the bad part."""
    if not topic:
        raise TopicError("topic", "empty", topic)
    levels = topic.split("/")
    if (prefix := levels[0]) != PREFIX:
        raise TopicError("root", f"expected {PREFIX!r}, got {prefix!r}", topic)
    if (version := _level(levels, 1, "version", topic)) != VERSION:
        raise TopicError("version", f"expected {VERSION!r}, got {version!r}", topic)
    site = _check("site", check_identifier, _level(levels, 2, "site", topic), topic)
    gateway = _check("gateway", check_identifier, _level(levels, 3, "gateway", topic), topic)
    segment = _level(levels, 4, "kind", topic)
    kind = _SEGMENTS.get(segment)
    if kind is None:
        expected = ", ".join(repr(s) for s in _SEGMENTS)
        raise TopicError("kind", f"unknown {segment!r} (expected one of {expected})", topic)
    device = request_id = None
    end = 5
    if kind.has_device:
        device = _check("device", check_identifier, _level(levels, 5, "device", topic), topic)
        end = 6
        if kind is TopicKind.DEVICE_STATE:
            if (last := _level(levels, 6, "state", topic)) != "state":
                raise TopicError("state", f"expected 'state', got {last!r}", topic)
            end = 7
    elif kind.has_request_id:
        raw = _level(levels, 5, "request_id", topic)
        request_id = _check("request_id", check_request_id, raw, topic)
        end = 6
    if len(levels) > end:
        extra = "/".join(levels[end:])
        raise TopicError("extra levels", f"unexpected {extra!r} after {segment!r}", topic)
    return Topic(kind, site, gateway, device=device, request_id=request_id)
