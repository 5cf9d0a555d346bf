"""The device-profile schema: what a device model is and how to read it.

A profile is parsed from YAML into these frozen pydantic models. Field-level rules
(types, ranges, required combinations inside one object) live here; rules that look
across objects (overlapping addresses, dangling references, spans) live in
:mod:`device_profiles.validate`, which reports every problem with file and line.

Modbus addresses are **0-based** protocol addresses (the number on the wire), not the
1-based "40001" register numbers of some manuals.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from device_profiles.durations import Duration
from device_profiles.units import UNITS

IDENTIFIER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

Identifier = Annotated[str, Field(pattern=IDENTIFIER_RE.pattern, min_length=1, max_length=64)]
Scalar = bool | int | float | str
"""A decoded point value as it travels on the wire."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class LocalizedText(_Frozen):
    """User-facing text; every operator-facing string exists in English and Chinese."""

    en: Annotated[str, Field(min_length=1)]
    zh: Annotated[str, Field(min_length=1)]


class ModbusTable(StrEnum):
    COIL = "coil"
    DISCRETE = "discrete"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def is_bit_table(self) -> bool:
        return self in (ModbusTable.COIL, ModbusTable.DISCRETE)


class ModbusType(StrEnum):
    U16 = "u16"
    S16 = "s16"
    U32 = "u32"
    S32 = "s32"
    U64 = "u64"
    S64 = "s64"
    F32 = "f32"
    F64 = "f64"
    BOOL = "bool"
    STRING = "string"

    @property
    def width(self) -> int | None:
        """Registers taken by one value; None for strings (their ``count`` says)."""
        return _TYPE_WIDTH[self]

    @property
    def is_integer(self) -> bool:
        return self in (ModbusType.U16, ModbusType.S16, ModbusType.U32, ModbusType.S32,
                        ModbusType.U64, ModbusType.S64)


_TYPE_WIDTH: dict[ModbusType, int | None] = {
    ModbusType.U16: 1, ModbusType.S16: 1, ModbusType.BOOL: 1,
    ModbusType.U32: 2, ModbusType.S32: 2, ModbusType.F32: 2,
    ModbusType.U64: 4, ModbusType.S64: 4, ModbusType.F64: 4,
    ModbusType.STRING: None,
}


class ByteOrder(StrEnum):
    """Order of the bytes of a multi-register value, A being the most significant.

    ``ABCD`` is big-endian (Modbus standard); ``CDAB`` swaps words (common for
    float32 on meters); ``BADC`` swaps bytes within words; ``DCBA`` is little-endian.
    """

    ABCD = "ABCD"
    CDAB = "CDAB"
    BADC = "BADC"
    DCBA = "DCBA"


class PointKind(StrEnum):
    NUMBER = "number"
    BOOL = "bool"
    ENUM = "enum"
    COUNTER = "counter"
    BITFIELD = "bitfield"
    EVENT_LOG = "event_log"
    TEXT = "text"


class Severity(StrEnum):
    EMERGENCY = "emergency"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class WorkOrderCategory(StrEnum):
    """Trade that answers an alarm: picks the work-order queue and the SLA policy row."""

    ELEVATOR = "elevator"
    FIRE = "fire"
    WATER = "water"
    ELECTRICAL = "electrical"
    ACCESS = "access"
    HVAC = "hvac"
    GENERAL = "general"


EquipmentClass = Literal[
    "Elevator",
    "Pump",
    "Water_Pump",
    "Booster_Pump",
    "Sump_Pump",
    "Fire_Pump",
    "Fire_Alarm_Control_Panel",
    "Access_Control_Equipment",
    "Electrical_Meter",
    "Water_Meter",
    "Generator",
    "Uninterruptible_Power_Supply",
    "Automatic_Transfer_Switch",
]

#: equipment classes whose points are never writable from Towerwatch
READ_ONLY_EQUIPMENT: frozenset[str] = frozenset({"Fire_Alarm_Control_Panel"})


class EnumEntry(_Frozen):
    value: int
    name: Identifier
    en: Annotated[str, Field(min_length=1)]
    zh: Annotated[str, Field(min_length=1)]


class BitEntry(_Frozen):
    bit: Annotated[int, Field(ge=0, le=63)]
    name: Identifier
    en: Annotated[str, Field(min_length=1)]
    zh: Annotated[str, Field(min_length=1)]


class PublishPolicy(_Frozen):
    """Report by exception: publish on a change beyond ``deadband`` or when ``heartbeat`` is due."""

    on_change: bool = True
    deadband: Annotated[float, Field(ge=0)] = 0.0
    heartbeat: Duration = 300.0


class EventField(_Frozen):
    """One field of an event-log record, at ``offset`` registers from the record start."""

    id: Identifier
    offset: Annotated[int, Field(ge=0)]
    type: ModbusType
    enum: Identifier | None = None
    count: Annotated[int, Field(ge=1, le=125)] | None = None


class EventLogSpec(_Frozen):
    """A ring buffer of fixed-size records plus a head register.

    ``head`` holds the sequence number (u32) of the newest record; record ``seq``
    lives at ``point.address + (seq % capacity) * record_size``. Sequence numbers
    start at 1; 0 in ``head`` means the log is empty. One field must be ``seq``.
    """

    head: Annotated[int, Field(ge=0, le=65535)]
    capacity: Annotated[int, Field(ge=1, le=4096)]
    record_size: Annotated[int, Field(ge=1, le=125)]
    fields: Annotated[list[EventField], Field(min_length=1)]

    @model_validator(mode="after")
    def _has_seq(self) -> EventLogSpec:
        if "seq" not in {f.id for f in self.fields}:
            raise ValueError("event_log.fields needs a 'seq' field (the record's sequence number)")
        return self


class Condition(_Frozen):
    """``point`` compared by exactly one operator, ``bit`` set, or ``stale``."""

    point: Identifier
    eq: Scalar | None = None
    ne: Scalar | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    in_: Annotated[list[Scalar] | None, Field(alias="in")] = None
    bit: Identifier | Annotated[int, Field(ge=0, le=63)] | None = None
    stale: Literal[True] | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        given = [n for n in _OPERATORS if getattr(self, n) is not None]
        if len(given) != 1:
            names = ", ".join(o.rstrip("_") for o in _OPERATORS)
            found = ", ".join(g.rstrip("_") for g in given) or "none"
            raise ValueError(f"'when' needs exactly one of {names}; found {found}")
        return self

    @property
    def operator(self) -> str:
        return next(n.rstrip("_") for n in _OPERATORS if getattr(self, n) is not None)

    @property
    def operand(self) -> object:
        return next(getattr(self, n) for n in _OPERATORS if getattr(self, n) is not None)


_OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le", "in_", "bit", "stale")


class AlarmRule(_Frozen):
    id: Identifier
    when: Condition
    severity: Severity
    on_delay: Duration = 0.0
    off_delay: Duration = 0.0
    deadband: Annotated[float, Field(ge=0)] = 0.0
    category: WorkOrderCategory
    text: LocalizedText


class ForbiddenRange(_Frozen):
    """Addresses the device refuses to read (inclusive); block reads never span them."""

    table: ModbusTable
    start: Annotated[int, Field(ge=0, le=65535)]
    end: Annotated[int, Field(ge=0, le=65535)]

    @model_validator(mode="after")
    def _ordered(self) -> ForbiddenRange:
        if self.end < self.start:
            raise ValueError(f"forbidden range ends ({self.end}) before it starts ({self.start})")
        return self


class Limits(_Frozen):
    max_registers: Annotated[int, Field(ge=1, le=125)] = 125
    max_bits: Annotated[int, Field(ge=1, le=2000)] = 2000
    max_gap: Annotated[int, Field(ge=0, le=125)] = 10
    forbidden: list[ForbiddenRange] = []
    min_gap_ms: Annotated[int, Field(ge=0, le=10_000)] = 0
    max_properties: Annotated[int, Field(ge=1, le=200)] = 25
    """BACnet: properties per read-property-multiple request."""


class PointBase(_Frozen):
    id: Identifier
    name: LocalizedText
    unit: str = "none"
    kind: PointKind = PointKind.NUMBER
    enum: Identifier | None = None
    bits: Identifier | None = None
    poll: Identifier = "normal"
    publish: PublishPolicy = PublishPolicy()
    writable: bool = False
    rollover: Annotated[int, Field(ge=2)] | None = None
    """Counters: the raw value at which the device wraps to 0 (default: 2**bits of the type)."""

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, unit: str) -> str:
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r}; known units: {', '.join(sorted(UNITS))}")
        return unit

    @model_validator(mode="after")
    def _kind_needs(self) -> PointBase:
        if self.kind is PointKind.ENUM and self.enum is None:
            raise ValueError("a point of kind 'enum' needs 'enum: <name>'")
        if self.kind is PointKind.BITFIELD and self.bits is None:
            raise ValueError("a point of kind 'bitfield' needs 'bits: <name>'")
        if self.rollover is not None and self.kind is not PointKind.COUNTER:
            raise ValueError("'rollover' applies only to points of kind 'counter'")
        return self


class ModbusPoint(PointBase):
    table: ModbusTable
    address: Annotated[int, Field(ge=0, le=65535)]
    type: ModbusType = ModbusType.U16
    count: Annotated[int, Field(ge=1)] | None = None
    """Registers taken; required for strings, and must match the type's width otherwise."""
    byte_order: ByteOrder | None = None
    """Overrides the profile's byte order for this point."""
    bit: Annotated[int, Field(ge=0)] | None = None
    """Take one bit of an integer register value as a bool."""
    scale: float = 1.0
    offset: float = 0.0
    invalid: list[int] = []
    """Raw values that mean 'no reading' (e.g. 0x8000, 0xFFFF): the value goes quality bad."""
    event_log: EventLogSpec | None = None

    @property
    def width(self) -> int:
        """Registers (or bits, on coil/discrete tables) this point reads."""
        if self.kind is PointKind.EVENT_LOG and self.event_log is not None:
            return self.event_log.capacity * self.event_log.record_size
        if self.count is not None:
            return self.count
        return self.type.width or 1

    @model_validator(mode="after")
    def _event_log_shape(self) -> ModbusPoint:
        if (self.kind is PointKind.EVENT_LOG) != (self.event_log is not None):
            raise ValueError("'event_log' is given exactly when kind is 'event_log'")
        return self


BACNET_OBJECT_TYPES: frozenset[str] = frozenset({
    "analog-input", "analog-output", "analog-value",
    "binary-input", "binary-output", "binary-value",
    "multi-state-input", "multi-state-output", "multi-state-value",
    "accumulator", "integer-value", "positive-integer-value",
    "characterstring-value", "life-safety-zone", "life-safety-point", "device",
})


class BacnetPoint(PointBase):
    object: str
    """``type,instance``, e.g. ``analog-input,3``."""
    prop: Annotated[str, Field(alias="property")] = "present-value"
    """The property read (YAML key ``property``)."""
    index: Annotated[int, Field(ge=0)] | None = None
    cov: bool = False
    """Subscribe to change-of-value notifications instead of polling."""
    cov_increment: Annotated[float, Field(gt=0)] | None = None

    @field_validator("object")
    @classmethod
    def _object_id(cls, value: str) -> str:
        parse_object_id(value)
        return value

    @property
    def object_type(self) -> str:
        return parse_object_id(self.object)[0]

    @property
    def instance(self) -> int:
        return parse_object_id(self.object)[1]


def parse_object_id(text: str) -> tuple[str, int]:
    """Split ``analog-input,3`` into its type and instance; ValueError names what is wrong."""
    kind, sep, instance = text.partition(",")
    kind = kind.strip()
    if not sep or not instance.strip().isdigit():
        raise ValueError(
            f"BACnet object must be 'type,instance' like 'analog-input,3', got {text!r}")
    if kind not in BACNET_OBJECT_TYPES:
        raise ValueError(f"unknown BACnet object type {kind!r} in {text!r}")
    number = int(instance)
    if number > 4194302:
        raise ValueError(f"BACnet instance {number} is above 4194302 in {text!r}")
    return kind, number


class ProfileBase(_Frozen):
    id: Identifier
    version: Annotated[str, Field(min_length=1)]
    manufacturer: Annotated[str, Field(min_length=1)]
    model: Annotated[str, Field(min_length=1)]
    description: LocalizedText | None = None
    equipment: EquipmentClass
    extends: Identifier | None = None
    limits: Limits = Limits()
    poll_groups: dict[Identifier, Duration] = {"fast": 1.0, "normal": 5.0, "slow": 60.0}
    enums: dict[Identifier, list[EnumEntry]] = {}
    bits: dict[Identifier, list[BitEntry]] = {}
    alarms: list[AlarmRule] = []

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int | float) else value

    @property
    def read_only(self) -> bool:
        return self.equipment in READ_ONLY_EQUIPMENT


class ModbusProfile(ProfileBase):
    protocol: Literal["modbus"]
    byte_order: ByteOrder = ByteOrder.ABCD
    points: list[ModbusPoint]

    def point(self, point_id: str) -> ModbusPoint:
        return _find(self.points, point_id, self.id)

    def byte_order_of(self, point: ModbusPoint) -> ByteOrder:
        return point.byte_order or self.byte_order


class BacnetProfile(ProfileBase):
    protocol: Literal["bacnet"]
    points: list[BacnetPoint]

    def point(self, point_id: str) -> BacnetPoint:
        return _find(self.points, point_id, self.id)


_P = TypeVar("_P", bound=PointBase)

DeviceProfile = Annotated[ModbusProfile | BacnetProfile, Field(discriminator="protocol")]
AnyPoint = ModbusPoint | BacnetPoint


def _find(points: list[_P], point_id: str, profile_id: str) -> _P:
    for point in points:
        if point.id == point_id:
            return point
    raise KeyError(f"profile {profile_id!r} has no point {point_id!r}")
