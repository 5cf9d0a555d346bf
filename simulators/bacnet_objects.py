"""The bacpypes3 objects of one simulated BACnet device, built from its profile.

With :mod:`simulators.bacnet_server`, the modules of ``simulators`` that import
bacpypes3. :func:`build_objects` makes the device object, one local object per point
object of the profile (multi-state and integer objects with COV criteria that work) and
the network port, and binds every point to the property that serves it. Values are
mapped with :mod:`device_profiles.codec`, so simulator and gateway agree by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bacpypes3 import object as std
from bacpypes3.local import analog, binary, multistate
from bacpypes3.local.cmd import Commandable
from bacpypes3.local.cov import COVIncrementCriteria, GenericCriteria
from bacpypes3.local.device import DeviceObject
from bacpypes3.local.networkport import NetworkPortObject
from bacpypes3.local.object import Object as LocalObject
from bacpypes3.primitivedata import Boolean, Real

from device_profiles.codec import CodecError, encode_bacnet
from device_profiles.schema import BacnetPoint, BacnetProfile
from simulators.bacnet_values import (
    DEFAULTS,
    PRESENT_VALUE,
    UNITS,
    attr_name,
    neutral_value,
    state_texts,
)
from simulators.models.base import SimError, Value

VENDOR_IDENTIFIER = 999
"""bacpypes3's own vendor id for local applications; clients decode standard objects."""


class BacnetServerError(SimError):
    """A simulated BACnet device could not be built from its profile, or could not start."""


def _local(base: Any, criteria: Any, *, local: bool = True) -> Any:
    """A local (servable) object class for ``base`` with the right COV criteria.

    Not registered with any vendor: this module has no ``_vendor_id``, so decoding in
    the same process (the gateway's tests) keeps the library's own classes.
    """
    bases = (LocalObject, base) if local else (base,)
    return type(f"Sim{base.__name__}", bases, {"_cov_criteria": criteria})


CLASSES: dict[str, Any] = {
    "analog-input": analog.AnalogInputObject, "analog-output": analog.AnalogOutputObject,
    "analog-value": analog.AnalogValueObject,
    "binary-input": binary.BinaryInputObject, "binary-output": binary.BinaryOutputObject,
    "binary-value": binary.BinaryValueObject,
    # bacpypes3's local multi-state classes use increment criteria and have no covIncrement
    "multi-state-input": _local(multistate.MultiStateInputObject, GenericCriteria, local=False),
    "multi-state-output": _local(multistate.MultiStateOutputObject, GenericCriteria,
                                 local=False),
    "multi-state-value": _local(multistate.MultiStateValueObject, GenericCriteria, local=False),
    "accumulator": _local(std.AccumulatorObject, GenericCriteria),
    "integer-value": _local(std.IntegerValueObject, COVIncrementCriteria),
    "positive-integer-value": _local(std.PositiveIntegerValueObject, COVIncrementCriteria),
    "characterstring-value": _local(std.CharacterStringValueObject, GenericCriteria),
    "life-safety-zone": _local(std.LifeSafetyZoneObject, GenericCriteria),
    "life-safety-point": _local(std.LifeSafetyPointObject, GenericCriteria),
    "device": DeviceObject,
}


@dataclass(eq=False)
class Binding:
    """A point served as one property of one local object."""

    point: BacnetPoint
    obj: Any
    attr: str

    def set(self, raw: object) -> None:
        if self.attr == PRESENT_VALUE and isinstance(self.obj, Commandable):
            # the device itself moves its output: bypass the priority array
            LocalObject.__setattr__(self.obj, PRESENT_VALUE, raw)
        else:
            setattr(self.obj, self.attr, raw)


@dataclass
class DeviceObjects:
    """What :func:`build_objects` made: the objects to serve, in order, and each
    point's binding, by point id and by ``(object type, instance, attribute)``."""

    objects: list[Any]
    bindings: dict[str, Binding] = field(default_factory=dict)
    by_property: dict[tuple[str, int, str], Binding] = field(default_factory=dict)


def check_profile(profile: BacnetProfile, device_name: str) -> None:
    """Raise BacnetServerError for a point this server cannot serve, or serves twice."""
    seen: set[tuple[str, str]] = set()
    names = {device_name, f"{device_name}/port"}
    for point in profile.points:
        who = f"{profile.id}: point {point.id!r}"
        cls = CLASSES.get(point.object_type)
        attr = attr_name(point.prop)
        if cls is None or attr not in cls._elements:
            raise BacnetServerError(f"{who}: {point.object} {point.prop} is not served")
        if point.index is not None:
            raise BacnetServerError(f"{who}: array elements ('index') are not served")
        key = ("device" if point.object_type == "device" else point.object, attr)
        if key in seen or point.id in names:
            raise BacnetServerError(f"{who}: {point.object} {point.prop} is served twice, "
                                    f"or the point id is the name of another object")
        seen.add(key)
        names.add(point.id)


def encode(profile: BacnetProfile, point: BacnetPoint, value: Value) -> object:
    """Engineering value -> what bacpypes3 casts into the property."""
    try:
        raw = encode_bacnet(point, value, enums=profile.enums)
    except CodecError as exc:
        raise BacnetServerError(f"{profile.id}: {exc}") from exc
    attr = attr_name(point.prop)
    if attr != PRESENT_VALUE and issubclass(CLASSES[point.object_type]._elements[attr],
                                            Boolean):
        return bool(value)
    return raw


def build_objects(profile: BacnetProfile, *, device_instance: int, device_name: str,
                  vendor_name: str, address: str, values: dict[str, Value]) -> DeviceObjects:
    """The device object, one object per point object, and the network port last,
    with every point bound to the property that serves it (``values``: the points'
    values to start with)."""
    description = profile.description.en if profile.description else None
    device = DeviceObject(
        objectIdentifier=("device", device_instance), objectName=device_name,
        vendorName=vendor_name, vendorIdentifier=VENDOR_IDENTIFIER,
        modelName=profile.model, firmwareRevision=profile.version,
        description=description or profile.model, apduTimeout=3000,
        numberOfApduRetries=3)
    groups: dict[str, list[BacnetPoint]] = {}
    for point in profile.points:
        groups.setdefault(point.object, []).append(point)
    made = DeviceObjects([device])
    for points in groups.values():
        obj = (device if points[0].object_type == "device"
               else _point_object(profile, points, values))
        if obj is not device:
            made.objects.append(obj)
        for point in points:
            binding = Binding(point, obj, attr_name(point.prop))
            if binding.attr != PRESENT_VALUE:
                binding.set(encode(profile, point, values[point.id]))
            made.bindings[point.id] = binding
            instance = device_instance if obj is device else point.instance
            made.by_property[(point.object_type, instance, binding.attr)] = binding
    # the port opens the sockets: add it last, after every object was accepted
    made.objects.append(NetworkPortObject(address, objectIdentifier=("network-port", 1),
                                          objectName=f"{device_name}/port"))
    return made


def _point_object(profile: BacnetProfile, points: list[BacnetPoint],
                  values: dict[str, Value]) -> Any:
    main = next((p for p in points if attr_name(p.prop) == PRESENT_VALUE), None)
    first = main or points[0]
    cls = CLASSES[first.object_type]
    kwargs: dict[str, object] = {
        "objectIdentifier": (first.object_type, first.instance),
        "objectName": first.id, "description": first.name.en,
        **{k: v for k, v in DEFAULTS.items() if k in cls._elements},
    }
    if "units" in cls._elements:
        kwargs["units"] = UNITS.get(first.unit, "noUnits")
    if "covIncrement" in cls._elements:  # Real, or Unsigned on integer objects
        increment = (main.cov_increment if main else None) or 0.0
        real = issubclass(cls._elements["covIncrement"], Real)
        kwargs["covIncrement"] = increment if real else round(increment)
    if first.object_type.startswith("multi-state") and first.enum is not None:
        texts = state_texts(profile.enums.get(first.enum, []))
        kwargs["numberOfStates"], kwargs["stateText"] = len(texts), texts
    if main is not None:
        kwargs[PRESENT_VALUE] = encode(profile, main, values[main.id])
    else:  # only other properties are points
        kwargs[PRESENT_VALUE] = neutral_value(first.object_type)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError, AttributeError) as exc:
        raise BacnetServerError(f"{profile.id}: cannot build {first.object} for "
                                f"point {first.id!r}: {exc!r}") from exc
