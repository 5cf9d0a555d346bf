"""Payload models, one per row of the wire contract; validated on both sides.

All models are frozen, reject unknown fields and do not coerce types (``"3"`` is not
``3``). Rules that span fields raise :class:`FieldRuleError`, which names each field.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from towerwatch.contract.errors import FieldIssue
from towerwatch.contract.fields import (
    CommandOp,
    EventKind,
    Quality,
    Scalar,
    Seq,
    Severity,
    Text,
    Timestamp,
    Value,
)
from towerwatch.contract.ids import BootId, Identifier

EventId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
"""Unique per event, e.g. ``{device}:{seq}``: 1-128 of ``A-Z a-z 0-9 _ . : -``."""

EventState = Annotated[str, Field(min_length=1, max_length=64)]
"""What happened: ``active``, ``cleared``, ``granted``, ``denied``, …"""


class FieldRuleError(ValueError):
    """A rule across fields failed; ``issues`` names each offending field."""

    def __init__(self, issues: Iterable[FieldIssue]) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(str(issue) for issue in self.issues))


def _raise_issues(issues: list[FieldIssue]) -> None:
    if issues:
        raise FieldRuleError(issues)


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class DeviceDescriptor(_Payload):
    """A device announced in a gateway's birth message."""

    id: Identifier
    profile: Identifier
    name: Text | None = None


class Birth(_Payload):
    """Retained on ``…/status`` when a gateway connects."""

    state: Literal["online"] = "online"
    boot_id: BootId
    version: Annotated[str, Field(min_length=1, max_length=64)]
    ts: Timestamp
    devices: list[DeviceDescriptor]

    @model_validator(mode="after")
    def _unique_devices(self) -> Self:
        seen: set[str] = set()
        issues = []
        for index, device in enumerate(self.devices):
            if device.id in seen:
                issues.append(FieldIssue(f"devices[{index}].id", f"duplicate id {device.id!r}"))
            seen.add(device.id)
        _raise_issues(issues)
        return self


class Will(_Payload):
    """The MQTT will on ``…/status``: the broker publishes it when the gateway vanishes."""

    state: Literal["offline"] = "offline"
    boot_id: BootId
    ts: Timestamp
    reason: Text | None = None


Status = Annotated[Birth | Will, Field(discriminator="state")]
"""A ``…/status`` payload: :class:`Birth` or :class:`Will`, told apart by ``state``."""


class Telemetry(_Payload):
    """Point values of one device, each with a quality; a point absent from ``quality`` is good.

    A null value means "unknown" and needs quality ``stale`` or ``bad``.
    """

    seq: Seq
    boot_id: BootId
    ts: Timestamp
    values: dict[Identifier, Value]
    quality: dict[Identifier, Quality]

    def quality_of(self, point: str) -> Quality:
        """The quality of ``point`` (``good`` when not listed)."""
        return self.quality.get(point, "good")

    @model_validator(mode="after")
    def _null_is_not_good(self) -> Self:
        _raise_issues(
            [
                FieldIssue(f"values.{point}", "null value needs quality 'stale' or 'bad'")
                for point, value in self.values.items()
                if value is None and self.quality_of(point) == "good"
            ]
        )
        return self


class Event(_Payload):
    """An alarm, access or state event of one device."""

    seq: Seq
    boot_id: BootId
    ts: Timestamp
    event_id: EventId
    kind: EventKind
    name: Identifier
    state: EventState
    severity: Severity | None = None
    value: Value = None
    detail: dict[str, Scalar] = Field(default_factory=dict)


class DeviceState(_Payload):
    """Retained on ``…/device/{device}/state``: whether the gateway can reach the device."""

    online: bool
    since: Timestamp
    reason: Text | None = None


class Command(_Payload):
    """Cloud → edge. ``write`` needs device, point and value; ``ping``/``reload`` take neither."""

    op: CommandOp
    device: Identifier | None = None
    point: Identifier | None = None
    value: Value = None
    expires: Timestamp

    def expired(self, now_ms: int) -> bool:
        """Whether the command is past its ``expires`` time at ``now_ms``."""
        return now_ms >= self.expires

    @model_validator(mode="after")
    def _fields_fit_op(self) -> Self:
        issues = []
        if self.op == "write":
            for field in ("device", "point", "value"):
                if getattr(self, field) is None:
                    issues.append(FieldIssue(field, "required when op is 'write'"))
        else:
            for field in ("point", "value"):
                if getattr(self, field) is not None:
                    issues.append(FieldIssue(field, f"not allowed when op is {self.op!r}"))
        _raise_issues(issues)
        return self


class CommandReply(_Payload):
    """Edge → cloud answer to a command; ``error`` says why when ``ok`` is false."""

    ok: bool
    error: Text | None = None
    ts: Timestamp

    @model_validator(mode="after")
    def _error_fits_ok(self) -> Self:
        if not self.ok and self.error is None:
            _raise_issues([FieldIssue("error", "required when ok is false")])
        if self.ok and self.error is not None:
            _raise_issues([FieldIssue("error", "must be null when ok is true")])
        return self


Payload = Birth | Will | Telemetry | Event | DeviceState | Command | CommandReply
"""Any payload model."""
