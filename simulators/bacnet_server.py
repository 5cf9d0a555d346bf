"""One simulated BACnet/IP device, generated from a BACnet device profile.

With :mod:`simulators.bacnet_objects` (which builds the device's objects from the
profile), the modules of ``simulators`` that import bacpypes3. A :class:`BacnetDeviceServer`
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
from typing import Any, Literal

from bacpypes3.apdu import ConfirmedRequestPDU, SimpleAckPDU, WritePropertyMultipleError
from bacpypes3.app import Application
from bacpypes3.basetypes import ErrorType, ObjectPropertyReference, PriorityValue
from bacpypes3.errors import ExecutionError
from bacpypes3.local.cmd import Commandable
from bacpypes3.pdu import IPv4Address
from bacpypes3.primitivedata import Null, PropertyIdentifier

from device_profiles.codec import CodecError, decode_bacnet
from device_profiles.schema import BacnetProfile
from simulators.bacnet_objects import (
    BacnetServerError,
    Binding,
    build_objects,
    check_profile,
    encode,
)
from simulators.bacnet_values import (
    PRESENT_VALUE,
    default_value,
    plain_value,
)
from simulators.models.base import Value, WriteRefused

log = logging.getLogger(__name__)

CommsMode = Literal["normal", "slow", "silent"]
ENDPOINT_TIMEOUT_S = 2.0
"""How long start() waits for bacpypes3 to open its UDP endpoints."""


def _denied(code: str = "writeAccessDenied") -> ExecutionError:
    return ExecutionError(errorClass="property", errorCode=code)


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
        check_profile(profile, device_name)
        self._values = {p.id: initial.get(p.id, default_value(p, profile.enums))
                        for p in profile.points}
        for point in profile.points:
            encode(profile, point, self._values[point.id])
        self.comms: CommsMode = "normal"
        self.delay = 0.0
        self._app: Any = None
        self._bindings: dict[str, Binding] = {}
        self._by_property: dict[tuple[str, int, str], Binding] = {}
        self._failed: set[str] = set()
        self._sleepers: set[asyncio.Task[Any]] = set()

    # -- profile -> objects ---------------------------------------------------------------
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
            made = build_objects(self.profile, device_instance=self.device_instance,
                                 device_name=self.device_name, vendor_name=self.vendor_name,
                                 address=self.address, values=self._values)
            app = _SimApplication.from_object_list(made.objects)
        except RuntimeError as exc:
            raise BacnetServerError(f"{self.profile.id}: {exc}") from exc
        self._bindings, self._by_property = made.bindings, made.by_property
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
                raw = encode(self.profile, point, value)
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
