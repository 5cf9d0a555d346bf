"""One simulated BACnet/IP device, generated from a BACnet device profile.

The only module in ``simulators`` that imports bacpypes3. A :class:`BacnetDeviceServer`
is one bacpypes3 application on its own address, e.g. ``127.0.0.5/8:47808`` (on
loopback the /8 mask makes 127.255.255.255 the broadcast, so every device hears a
Who-Is). It serves one object per point object of the profile, answers Who-Is,
ReadProperty(-Multiple), WriteProperty(-Multiple) and SubscribeCOV, and notifies COV
subscribers when :meth:`~BacnetDeviceServer.update` changes a value (analog objects
honour the point's ``cov_increment``). Values are mapped with
:mod:`device_profiles.codec`, so simulator and gateway agree by construction.

Writes are accepted only on the present-value of points the profile marks writable
(commandable objects through their priority array, so relinquish works); any other
write answers write-access-denied, and a refusal by the model (``WriteRefused``)
answers value-out-of-range, as the Modbus server answers illegal-data-value.

bacpypes3 0.0.110 traps handled here: a failed bind is retried forever in the
background, never raised (start() test-binds first, then waits with a deadline); the
library's WriteProperty(-Multiple) writes any property of any object (both replaced);
its local multi-state objects use COV-increment criteria without a covIncrement, and
analog objects need covIncrement set; local objects schedule a task when built (they
are built inside the running loop).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bacpypes3 import object as std
from bacpypes3.apdu import ConfirmedRequestPDU, SimpleAckPDU, WritePropertyMultipleError
from bacpypes3.app import Application
from bacpypes3.basetypes import ErrorType, ObjectPropertyReference, PriorityValue
from bacpypes3.errors import ExecutionError
from bacpypes3.local import analog, binary, multistate
from bacpypes3.local.cmd import Commandable
from bacpypes3.local.cov import COVIncrementCriteria, GenericCriteria
from bacpypes3.local.device import DeviceObject
from bacpypes3.local.networkport import NetworkPortObject
from bacpypes3.local.object import Object as LocalObject
from bacpypes3.pdu import IPv4Address
from bacpypes3.primitivedata import Boolean, Null, PropertyIdentifier, Real

from device_profiles.codec import CodecError, decode_bacnet, encode_bacnet
from device_profiles.schema import BacnetPoint, BacnetProfile
from simulators.bacnet_values import (
    DEFAULTS,
    PRESENT_VALUE,
    UNITS,
    attr_name,
    default_value,
    neutral_value,
    plain_value,
    state_texts,
)
from simulators.models.base import SimError, Value, WriteRefused

log = logging.getLogger(__name__)

CommsMode = Literal["normal", "slow", "silent"]
VENDOR_IDENTIFIER = 999
"""bacpypes3's own vendor id for local applications; clients decode standard objects."""
ENDPOINT_TIMEOUT_S = 2.0
"""How long start() waits for bacpypes3 to open its UDP endpoints."""


class BacnetServerError(SimError):
    """A simulated BACnet device could not be built from its profile, or could not start."""


def _local(base: Any, criteria: Any, *, local: bool = True) -> Any:
    """A local (servable) object class for ``base`` with the right COV criteria.

    Not registered with any vendor: this module has no ``_vendor_id``, so decoding in
    the same process (the gateway's tests) keeps the library's own classes.
    """
    bases = (LocalObject, base) if local else (base,)
    return type(f"Sim{base.__name__}", bases, {"_cov_criteria": criteria})


_CLASSES: dict[str, Any] = {
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

def _denied(code: str = "writeAccessDenied") -> ExecutionError:
    return ExecutionError(errorClass="property", errorCode=code)


@dataclass(eq=False)
class _Binding:
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


class _SimApplication(Application):  # type: ignore[misc]
    """A bacpypes3 application with the simulator's comms modes and guarded writes."""

    server: BacnetDeviceServer

    async def indication(self, apdu: Any) -> None:
        if await self.server._admit(apdu):
            await super().indication(apdu)

    def cov_notification(self, cov: Any, apdu: Any) -> None:
        if self.server.comms != "silent":
            super().cov_notification(cov, apdu)

    def cov_confirmation(self, cov: Any, future: asyncio.Future[Any]) -> None:
        # the library's callback raises (into the loop's handler) on any negative answer
        if not future.cancelled() and future.exception() is not None:
            log.debug("COV notification to %s refused: %r", cov.client_addr, future.exception())

    async def do_WritePropertyRequest(self, apdu: Any) -> None:
        self.server._write(apdu.objectIdentifier, apdu.propertyIdentifier,
                           apdu.propertyArrayIndex, apdu.priority, apdu.propertyValue)
        await self.response(SimpleAckPDU(context=apdu))

    async def do_WritePropertyMultipleRequest(self, apdu: Any) -> None:
        for spec in apdu.listOfWriteAccessSpecs:
            for item in spec.listOfProperties:
                try:
                    self.server._write(spec.objectIdentifier, item.propertyIdentifier,
                                       item.propertyArrayIndex, item.priority, item.value)
                except ExecutionError as err:
                    ref = ObjectPropertyReference(objectIdentifier=spec.objectIdentifier,
                                                  propertyIdentifier=item.propertyIdentifier)
                    error = ErrorType(errorClass=err.errorClass, errorCode=err.errorCode)
                    await self.response(WritePropertyMultipleError(
                        errorType=error, firstFailedWriteAttempt=ref, context=apdu))
                    return
        await self.response(SimpleAckPDU(context=apdu))


class BacnetDeviceServer:
    """One simulated BACnet/IP device: a device object plus one object per profile point."""

    def __init__(self, *, profile: BacnetProfile, device_instance: int, device_name: str,
                 address: str, initial: Mapping[str, Value],
                 on_write: Callable[[str, Value], None] | None = None,
                 vendor_name: str = "Towerwatch Simulator") -> None:
        self.profile, self.device_instance, self.device_name = profile, device_instance, device_name
        self.address, self.vendor_name, self._on_write = address, vendor_name, on_write
        try:
            self._ip = IPv4Address(address)
        except (ValueError, TypeError) as exc:
            raise BacnetServerError(f"bad BACnet/IP address {address!r}: {exc}") from exc
        if not 0 <= device_instance < 4194303:
            raise BacnetServerError(f"device instance {device_instance} is out of range")
        self._points = {p.id: p for p in profile.points}
        self._check_profile()
        self._values = {p.id: initial.get(p.id, default_value(p, profile.enums))
                        for p in profile.points}
        for point in profile.points:
            self._encode(point, self._values[point.id])
        self.comms: CommsMode = "normal"
        self.delay = 0.0
        self._app: Any = None
        self._bindings: dict[str, _Binding] = {}
        self._by_property: dict[tuple[str, int, str], _Binding] = {}
        self._failed: set[str] = set()
        self._sleepers: set[asyncio.Task[Any]] = set()

    # -- profile -> objects ---------------------------------------------------------------
    def _check_profile(self) -> None:
        seen: set[tuple[str, str]] = set()
        names = {self.device_name, f"{self.device_name}/port"}
        for point in self.profile.points:
            who = f"{self.profile.id}: point {point.id!r}"
            cls = _CLASSES.get(point.object_type)
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

    def _encode(self, point: BacnetPoint, value: Value) -> object:
        """Engineering value -> what bacpypes3 casts into the property."""
        try:
            raw = encode_bacnet(point, value, enums=self.profile.enums)
        except CodecError as exc:
            raise BacnetServerError(f"{self.profile.id}: {exc}") from exc
        attr = attr_name(point.prop)
        if attr != PRESENT_VALUE and issubclass(_CLASSES[point.object_type]._elements[attr],
                                                Boolean):
            return bool(value)
        return raw

    def _objects(self) -> list[Any]:
        """The device object, one object per point object, and the network port last."""
        description = self.profile.description.en if self.profile.description else None
        device = DeviceObject(
            objectIdentifier=("device", self.device_instance), objectName=self.device_name,
            vendorName=self.vendor_name, vendorIdentifier=VENDOR_IDENTIFIER,
            modelName=self.profile.model, firmwareRevision=self.profile.version,
            description=description or self.profile.model, apduTimeout=3000,
            numberOfApduRetries=3)
        groups: dict[str, list[BacnetPoint]] = {}
        for point in self.profile.points:
            groups.setdefault(point.object, []).append(point)
        objects: list[Any] = [device]
        for points in groups.values():
            obj = device if points[0].object_type == "device" else self._point_object(points)
            if obj is not device:
                objects.append(obj)
            for point in points:
                binding = _Binding(point, obj, attr_name(point.prop))
                if binding.attr != PRESENT_VALUE:
                    binding.set(self._encode(point, self._values[point.id]))
                self._bindings[point.id] = binding
                instance = self.device_instance if obj is device else point.instance
                self._by_property[(point.object_type, instance, binding.attr)] = binding
        # the port opens the sockets: add it last, after every object was accepted
        objects.append(NetworkPortObject(self.address, objectIdentifier=("network-port", 1),
                                         objectName=f"{self.device_name}/port"))
        return objects

    def _point_object(self, points: list[BacnetPoint]) -> Any:
        main = next((p for p in points if attr_name(p.prop) == PRESENT_VALUE), None)
        first = main or points[0]
        cls = _CLASSES[first.object_type]
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
            texts = state_texts(self.profile.enums.get(first.enum, []))
            kwargs["numberOfStates"], kwargs["stateText"] = len(texts), texts
        if main is not None:
            kwargs[PRESENT_VALUE] = self._encode(main, self._values[main.id])
        else:  # only other properties are points
            kwargs[PRESENT_VALUE] = neutral_value(first.object_type)
        try:
            return cls(**kwargs)
        except (ValueError, TypeError, AttributeError) as exc:
            raise BacnetServerError(f"{self.profile.id}: cannot build {first.object} for "
                                    f"point {first.id!r}: {exc!r}") from exc

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._app is not None

    async def start(self) -> None:
        """Bind the device to its address and answer requests; BacnetServerError if not."""
        if self._app is not None:
            return
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:  # bacpypes3 would retry a failed bind forever, silently
                probe.bind(self._ip.addrTuple)
            except OSError as exc:
                raise BacnetServerError(
                    f"cannot serve BACnet/IP on {self.address}: {exc}") from exc
        try:
            app = _SimApplication.from_object_list(self._objects())
        except RuntimeError as exc:
            self._bindings.clear()
            raise BacnetServerError(f"{self.profile.id}: {exc}") from exc
        app.server, self._app = self, app
        tasks = [t for link in app.link_layers.values() for t in link.server._transport_tasks]
        _, pending = await asyncio.wait(tasks, timeout=ENDPOINT_TIMEOUT_S)
        if pending:
            await self.stop()
            raise BacnetServerError(f"cannot serve BACnet/IP on {self.address}: the UDP "
                                    f"endpoints did not open within {ENDPOINT_TIMEOUT_S} s")
        self._apply_comms()
        log.debug("BACnet device %s (%d) on %s", self.device_name, self.device_instance,
                  self.address)

    async def stop(self) -> None:
        """Close the sockets, drop subscriptions and pending transactions; idempotent."""
        app, self._app = self._app, None
        self._bindings.clear()
        self._by_property.clear()
        if app is None:
            return
        for task in list(self._sleepers):
            task.cancel()
        for detection in list(app._cov_detections.values()):
            for cov in list(detection.cov_subscriptions):
                app.cancel_subscription(cov)
        for transaction in [*app.asap.clientTransactions, *app.asap.serverTransactions]:
            transaction.stop_timer()
        for requests in list(app._requests.values()):
            for _, future in list(requests):
                future.cancel()
        for link in app.link_layers.values():
            for task in link.server._transport_tasks:
                task.cancel()
        app.close()
        for _ in range(3):  # closed transports release their sockets on the next loop turn
            await asyncio.sleep(0)

    # -- behaviour ------------------------------------------------------------------------
    def update(self, values: Mapping[str, Value]) -> None:
        """Serve new values: changed points are set, COV subscribers notified.

        Ids of no point are ignored; a value the point cannot hold is logged once and
        skipped (the rest still update), like the Modbus register image.
        """
        for point_id, value in values.items():
            point = self._points.get(point_id)
            last = self._values.get(point_id)
            if point is None or value is None or (last == value and type(last) is type(value)):
                continue
            try:
                raw = self._encode(point, value)
                if (binding := self._bindings.get(point_id)) is not None:
                    binding.set(raw)
            except (BacnetServerError, ValueError, TypeError) as exc:
                if point_id not in self._failed:
                    log.warning("%s: cannot serve %s=%r: %s", self.device_name, point_id,
                                value, exc)
                    self._failed.add(point_id)
                continue
            self._values[point_id] = value
            self._failed.discard(point_id)

    def set_comms(self, mode: CommsMode, delay: float = 0.0) -> None:
        """normal; slow: answer confirmed requests after ``delay`` s; silent: answer nothing."""
        if mode not in ("normal", "slow", "silent") or delay < 0:
            raise ValueError(f"comms is normal, slow or silent with a delay >= 0, "
                             f"not {mode!r} {delay!r}")
        self.comms, self.delay = mode, delay
        self._apply_comms()

    def _apply_comms(self) -> None:
        if self._app is not None:  # a transaction must outlive a slow answer
            self._app.asap.applicationTimeout = max(3000, int(self.delay * 1000) + 2000)

    def _silent(self) -> bool:
        return self.comms == "silent" or self._app is None

    async def _admit(self, apdu: Any) -> bool:
        """Whether to process an incoming request, after the slow-mode delay."""
        if self._silent():
            return False
        if self.comms == "slow" and self.delay > 0 and isinstance(apdu, ConfirmedRequestPDU):
            task = asyncio.current_task()
            assert task is not None
            self._sleepers.add(task)
            try:
                await asyncio.sleep(self.delay)
            finally:
                self._sleepers.discard(task)
        return not self._silent()

    def _write(self, oid: Any, prop: Any, index: int | None, priority: int | None,
               value: Any) -> None:
        """A client's write of one property; raises ExecutionError to answer an error."""
        attr = PropertyIdentifier(prop).attr
        binding = self._by_property.get((str(oid[0]), int(oid[1]), attr))
        if binding is None and self._app.get_object_id(oid) is None:
            raise ExecutionError(errorClass="object", errorCode="unknownObject")
        if (binding is None or not binding.point.writable or self.profile.read_only
                or attr != PRESENT_VALUE or index is not None):
            log.info("%s: write to %s %s refused: not writable", self.device_name, oid, attr)
            raise _denied()
        point, obj = binding.point, binding.obj
        try:
            written = value.cast_out(obj.get_property_type(PRESENT_VALUE),
                                     null=priority is not None)
        except (ValueError, TypeError, AttributeError) as exc:
            raise _denied("invalidDataType") from exc
        commandable, relinquish = isinstance(obj, Commandable), isinstance(written, Null)
        if relinquish and not commandable:
            raise _denied("invalidDataType")
        slot, effective = priority or 16, written
        if commandable:  # what the present value becomes once the slot is written
            if not 1 <= slot <= 16:
                raise _denied("valueOutOfRange")
            entries = list(obj.priorityArray)
            entries[slot - 1] = PriorityValue(null=()) if relinquish else PriorityValue(written)
            effective = next((getattr(e, e._choice) for e in entries if e.null is None),
                             obj.relinquishDefault)
        try:
            decoded = decode_bacnet(point, plain_value(effective), enums=self.profile.enums)
        except CodecError as exc:
            raise _denied("valueOutOfRange") from exc
        if decoded.quality != "good" or decoded.reason is not None or decoded.value is None:
            raise _denied("valueOutOfRange")  # e.g. a state the enum does not have
        if self._on_write is not None:
            try:
                self._on_write(point.id, decoded.value)
            except WriteRefused as exc:
                log.info("%s: write %s=%r refused by the device: %s", self.device_name,
                         point.id, decoded.value, exc)
                raise _denied("valueOutOfRange") from exc
        if commandable:
            obj.priorityArray[slot - 1] = entries[slot - 1]
        else:
            binding.set(written)
        self._values[point.id] = decoded.value
