"""The gateway's BACnet/IP client: Who-Is, read-property-multiple, writes, COV subscriptions.

With :mod:`edge.drivers.bacnet_values` (values and errors translated), the only modules
in ``edge`` that import bacpypes3; everything else sees plain Python values,
:class:`PropertyRef`, :class:`IAm`, :class:`CovSubscription` and :mod:`edge.errors`
(import them from here; they live in :mod:`edge.drivers.bacnet_types` and
:mod:`edge.drivers.bacnet_cov`).

bacpypes3 0.0.110 traps handled here: its errors (``ErrorRejectAbortNack``) derive from
``BaseException``; a request nobody answers ends as ``AbortPDU`` no-response after
``apduTimeout`` x (1 + ``numberOfApduRetries``) of the client's own device object; a
failed bind is retried forever in the background, never raised (start() test-binds);
the library's COV context loses the first notification and renews unobserved (replaced
by :mod:`edge.drivers.bacnet_cov`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

from bacpypes3.apdu import (
    ErrorRejectAbortNack,
    ReadPropertyMultipleRequest,
    ReadPropertyRequest,
    SubscribeCOVRequest,
    WhoIsRequest,
    WritePropertyRequest,
)
from bacpypes3.app import Application
from bacpypes3.local.device import DeviceObject
from bacpypes3.local.networkport import NetworkPortObject
from bacpypes3.pdu import Address, IPv4Address
from bacpypes3.primitivedata import (
    ObjectIdentifier,
    PropertyIdentifier,
)

from edge.config import BacnetClientConfig
from edge.drivers.bacnet_cov import CovSubscription, CovSubscriptions, OnFailed, OnValue
from edge.drivers.bacnet_types import BacnetStats, IAm, PropertyRef
from edge.drivers.bacnet_values import PropertyValues, ReadSpecs, device_error
from edge.errors import DeviceException, DeviceTimeout, DeviceUnreachable

__all__ = [
    "BacnetClient",
    "BacnetStats",
    "CovSubscription",
    "IAm",
    "OnFailed",
    "OnValue",
    "PropertyRef",
]

log = logging.getLogger(__name__)

DEVICE_PORT = 47808
ENDPOINT_TIMEOUT_S = 2.0
_PER_PROPERTY_CODES = frozenset({"unknown-object", "unknown-property", "read-access-denied"})


class _GatewayApp(Application):  # type: ignore[misc]
    """A bacpypes3 application that hands every I-Am to the Who-Is calls listening."""

    listeners: list[Callable[[Any], None]]

    async def do_IAmRequest(self, apdu: Any) -> None:
        for listener in list(self.listeners):
            listener(apdu)
        await super().do_IAmRequest(apdu)


class BacnetClient:
    """The gateway's own BACnet/IP device: one UDP socket shared by every BACnet device.

    ``timeout`` is per attempt; a dead device costs ``timeout * (1 + retries)``.
    """

    def __init__(self, config: BacnetClientConfig, *, timeout: float, retries: int = 0) -> None:
        if timeout <= 0 or retries < 0:
            raise ValueError(f"timeout > 0 and retries >= 0, not {timeout!r} {retries!r}")
        self.config, self.timeout, self.retries = config, timeout, retries
        try:
            self._ip = IPv4Address(config.address)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"bad BACnet/IP address {config.address!r}: {exc}") from exc
        host = self._ip.addrBroadcastTuple[0]
        self.broadcast = f"{'255.255.255.255' if host == '0.0.0.0' else host}:{DEVICE_PORT}"
        self.budget = timeout * (retries + 1)
        """How long one request may take before it is a timeout."""
        self.stats = BacnetStats()
        self._values = PropertyValues(self.stats)
        self._specs = ReadSpecs()
        self._cov = CovSubscriptions(self.stats, self.budget, send=self._send_cov,
                                     decode=self._values.decode)
        self._app: Any = None
        self._addresses: dict[str, Any] = {}
        self._no_rpm: set[str] = set()

    # -- lifecycle --------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._app is not None

    async def start(self) -> None:
        """Bind the gateway's BACnet/IP address; DeviceUnreachable names it if that fails."""
        if self._app is not None:
            return
        where = f"the gateway's BACnet/IP address {self.config.address}"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:  # bacpypes3 would retry a failed bind forever, silently
                probe.bind(self._ip.addrTuple)
            except OSError as exc:
                raise DeviceUnreachable("bacnet", f"cannot bind {where}: {exc}") from exc
        instance = self.config.instance
        device = DeviceObject(objectIdentifier=("device", instance),
                              objectName=f"towerwatch-gateway-{instance}",
                              apduTimeout=max(1, round(self.timeout * 1000)),
                              numberOfApduRetries=self.retries)
        port = NetworkPortObject(self.config.address, objectIdentifier=("network-port", 1),
                                 objectName=f"towerwatch-gateway-{instance}/port")
        app = _GatewayApp.from_object_list([device, port])
        app.listeners = []
        self._app = app
        self._cov.routes = app._cov_contexts  # bacpypes3 routes notifications by this table
        tasks = [t for link in app.link_layers.values() for t in link.server._transport_tasks]
        _, pending = await asyncio.wait(tasks, timeout=ENDPOINT_TIMEOUT_S)
        if pending:
            await self.close()
            raise DeviceUnreachable("bacnet", f"cannot bind {where}: the UDP endpoints did "
                                              f"not open within {ENDPOINT_TIMEOUT_S} s")
        log.debug("BACnet/IP client %d on %s", instance, self.config.address)

    async def close(self) -> None:
        """Unsubscribe (briefly, best effort), stop COV tasks, close the socket; idempotent."""
        app = self._app
        if app is None:
            return
        await self._cov.close(self.budget + 0.5)
        self._app = self._cov.routes = None
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

    # -- plumbing ---------------------------------------------------------------------
    def _address(self, device: str, address: str) -> Any:
        found = self._addresses.get(address)
        if found is None:
            try:
                found = Address(address)
            except (ValueError, TypeError) as exc:
                raise DeviceUnreachable(device, f"bad BACnet address {address!r}") from exc
            self._addresses[address] = found
        return found

    async def _request(self, device: str, what: str, apdu: Any) -> Any:
        """Send one confirmed request; its error, reject or abort as our errors."""
        if self._app is None:
            raise RuntimeError("the BACnet client is not started")
        self.stats.requests += 1
        try:
            async with asyncio.timeout(self.budget + 0.5):  # in case the stack loses it
                return await self._app.request(apdu)
        except ErrorRejectAbortNack as exc:
            error = device_error(device, what, exc, self.budget)
        except TimeoutError:
            error = DeviceTimeout(device, f"{what}: no answer within {self.budget:g} s")
        self.stats.errors += 1
        self.stats.timeouts += isinstance(error, DeviceTimeout)
        raise error

    # -- discovery --------------------------------------------------------------------
    async def who_is(self, *, address: str | None = None, low: int | None = None,
                     high: int | None = None, wait: float = 1.5) -> list[IAm]:
        """Devices that answer within ``wait`` s, by instance; broadcast when no address."""
        if (low is None) != (high is None) or (low is not None and high is not None
                                               and not 0 <= low <= high <= 4194303):
            raise ValueError(f"give both low and high, 0 <= low <= high, not {low} {high}")
        if self._app is None:
            raise RuntimeError("the BACnet client is not started")
        request = WhoIsRequest(destination=self._address("who-is", address or self.broadcast))
        if low is not None:
            request.deviceInstanceRangeLowLimit = low
            request.deviceInstanceRangeHighLimit = high
        found: dict[int, IAm] = {}
        one = asyncio.Event()

        def heard(apdu: Any) -> None:
            instance = int(apdu.iAmDeviceIdentifier[1])
            if low is not None and high is not None and not low <= instance <= high:
                return
            source = apdu.pduSource
            host, port = getattr(source, "addrTuple", (str(source), DEVICE_PORT))
            found.setdefault(instance, IAm(instance, f"{host}:{port}", int(apdu.vendorID),
                                           int(apdu.maxAPDULengthAccepted),
                                           str(apdu.segmentationSupported)))
            if low is not None and low == high:
                one.set()  # the one device asked for answered

        self._app.listeners.append(heard)
        try:
            self.stats.requests += 1
            self._app.request(request)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(one.wait(), wait)
        finally:
            self._app.listeners.remove(heard)
        return [found[i] for i in sorted(found)]

    # -- reading and writing ----------------------------------------------------------
    async def read_multiple(self, device: str, address: str, requests: Sequence[PropertyRef],
                            *, max_properties: int = 25
                            ) -> dict[PropertyRef, object | DeviceException]:
        """Every requested property: its plain value, or the DeviceException the device gave.

        Read-property-multiple in chunks of ``max_properties``; one ReadProperty at a time
        for a device that rejects it (remembered). A silent device raises DeviceTimeout; a
        request the device refuses as a whole raises DeviceException.
        """
        if max_properties < 1:
            raise ValueError(f"max_properties must be >= 1, not {max_properties}")
        addr = self._address(device, address)
        refs = list(dict.fromkeys(requests))
        results: dict[PropertyRef, object | DeviceException] = {}
        for start in range(0, len(refs), max_properties):
            chunk = refs[start:start + max_properties]
            if device in self._no_rpm:
                for ref in chunk:
                    results[ref] = await self._read_one(device, addr, ref)
            else:
                results.update(await self._read_chunk(device, addr, chunk))
        return results

    async def _read_chunk(self, device: str, addr: Any, chunk: list[PropertyRef]
                          ) -> dict[PropertyRef, object | DeviceException]:
        request = ReadPropertyMultipleRequest(listOfReadAccessSpecs=self._specs.of(chunk),
                                              destination=addr)
        what = f"read-property-multiple of {len(chunk)} properties"
        try:
            ack = await self._request(device, what, request)
        except DeviceException as exc:
            if exc.code == "unrecognized-service":
                log.info("%s: read-property-multiple rejected; reading one property at a time",
                         device)
                self._no_rpm.add(device)
            elif exc.code not in _PER_PROPERTY_CODES:
                raise
            elif len(chunk) == 1:  # every object of the request is unknown, or the one
                return {chunk[0]: DeviceException(device, f"{chunk[0]}: {exc.code}", exc.code)}
            return {ref: await self._read_one(device, addr, ref) for ref in chunk}
        wanted = {(ref.object_id, ref.prop, ref.index): ref for ref in chunk}
        results: dict[PropertyRef, object | DeviceException] = {}
        for result in ack.listOfReadAccessResults:
            oid = result.objectIdentifier
            obj = f"{oid[0]},{oid[1]}"
            for element in result.listOfResults:
                ref = wanted.get((obj, str(element.propertyIdentifier),
                                  element.propertyArrayIndex))
                if ref is None:
                    continue
                answer = element.readResult
                if answer.propertyAccessError:
                    code = str(answer.propertyAccessError.errorCode)
                    results[ref] = DeviceException(device, f"{ref}: {code}", code)
                else:
                    results[ref] = self._values.decode(device, ref, answer.propertyValue)
        for ref in chunk:
            if ref not in results:
                results[ref] = DeviceException(device, f"{ref}: not in the answer", "missing")
        return results

    async def _read_one(self, device: str, addr: Any, ref: PropertyRef
                        ) -> object | DeviceException:
        request = ReadPropertyRequest(objectIdentifier=ObjectIdentifier(ref.object_id),
                                      propertyIdentifier=PropertyIdentifier(ref.prop),
                                      destination=addr)
        if ref.index is not None:
            request.propertyArrayIndex = ref.index
        try:
            ack = await self._request(device, f"read {ref}", request)
        except DeviceException as exc:
            return exc
        return self._values.decode(device, ref, ack.propertyValue)

    async def write(self, device: str, address: str, ref: PropertyRef, value: object,
                    priority: int | None = None) -> None:
        """Write one property (``value`` as codec.encode_bacnet gives it; None relinquishes)."""
        if priority is not None and not 1 <= priority <= 16:
            raise ValueError(f"priority is 1..16, not {priority}")
        typed = self._values.encode(device, ref, value)
        request = WritePropertyRequest(objectIdentifier=ObjectIdentifier(ref.object_id),
                                       propertyIdentifier=PropertyIdentifier(ref.prop),
                                       propertyValue=typed,
                                       destination=self._address(device, address))
        if ref.index is not None:
            request.propertyArrayIndex = ref.index
        if priority is not None:
            request.priority = priority
        await self._request(device, f"write {ref}", request)
        log.info("%s: wrote %s = %r (priority %s)", device, ref, value, priority)

    # -- change of value --------------------------------------------------------------
    async def subscribe_cov(self, device: str, address: str, object_id: str, *,
                            lifetime: float, on_value: OnValue, confirmed: bool = True,
                            on_failed: OnFailed | None = None) -> CovSubscription:
        """Subscribe to one object's present-value/status-flags, renewed until cancelled.

        The device's first notification carries the current values. A refusal raises
        DeviceException (poll that point instead), no answer DeviceTimeout.
        """
        if lifetime < 1:
            raise ValueError(f"a COV lifetime is at least 1 s, not {lifetime}")
        if self._app is None:
            raise RuntimeError("the BACnet client is not started")
        process_id = self._cov.next_process_id()
        addr, object_id = self._address(device, address), PropertyRef(object_id).object_id
        return await self._cov.subscribe(CovSubscription(
            self._cov, device, addr, object_id, ObjectIdentifier(object_id), round(lifetime),
            confirmed, process_id, on_value, on_failed))

    async def _send_cov(self, subscription: CovSubscription, subscribe: bool) -> None:
        """Subscribe (or renew) with the subscription's lifetime, or cancel it."""
        renew = {"issueConfirmedNotifications": subscription.confirmed,
                 "lifetime": subscription.lifetime} if subscribe else {}
        request = SubscribeCOVRequest(
            subscriberProcessIdentifier=subscription.process_id,
            monitoredObjectIdentifier=subscription.monitored_object_identifier,
            destination=subscription.address, **renew)
        what = "subscribe-cov" if subscribe else "unsubscribe"
        await self._request(subscription.device, f"{what} {subscription.object_id}", request)
