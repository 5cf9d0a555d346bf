"""COV subscriptions of the BACnet client: registered before the request, renewed here.

No bacpypes3 here (:mod:`edge.drivers.bacnet` and :mod:`edge.drivers.bacnet_values`
import it): the client hands :class:`CovSubscriptions` the call that sends a subscribe
or cancel request, the call that decodes a notified value, and, while it runs, the
stack's table that routes notifications to their subscription. bacpypes3's own COV
context registers itself only after the subscription is acknowledged (so the first
notification is lost) and renews in an unobserved task: a subscription is routed before
its request goes out and renewed here, at 2/3 of its lifetime.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from edge.drivers.bacnet_types import BacnetStats, PropertyRef
from edge.errors import DeviceError, DeviceException, DeviceTimeout

log = logging.getLogger(__name__)

RENEW_AT = 2 / 3
"""A COV subscription is renewed after this fraction of its lifetime."""
RENEW_RETRY_S = 0.5
_COV_PROPERTIES = frozenset({"present-value", "status-flags"})

OnValue = Callable[[str, str, object], None]
OnFailed = Callable[["CovSubscription"], None]
Send = Callable[["CovSubscription", bool], Awaitable[None]]
"""Sends a subscribe (True: with the subscription's lifetime, also a renewal) or cancel
(False) request; raises :mod:`edge.errors`."""
Decode = Callable[[str, PropertyRef, Any], object]
"""``(device, ref, value)`` -> the plain value, or the DeviceException of a bad one."""


class CovSubscriptions:
    """The client's live subscriptions and their renewal tasks."""

    def __init__(self, stats: BacnetStats, budget: float, *, send: Send,
                 decode: Decode) -> None:
        self.stats, self.budget = stats, budget
        self.send, self.decode = send, decode
        self.routes: MutableMapping[Any, CovSubscription] | None = None
        """The stack's ``(address, process id)`` -> subscription table while the client
        runs; None when it is closed."""
        self._live: set[CovSubscription] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._next_process_id = 1

    def next_process_id(self) -> int:
        process_id = self._next_process_id
        self._next_process_id = self._next_process_id % (1 << 22) + 1
        return process_id

    async def subscribe(self, subscription: CovSubscription) -> CovSubscription:
        """Route, send the request, renew until cancelled; DeviceError if refused."""
        assert self.routes is not None
        self.routes[subscription.key] = subscription  # before the first notification
        try:
            await self.send(subscription, True)
        except DeviceError:
            self.routes.pop(subscription.key, None)
            raise
        self._live.add(subscription)
        subscription._task = asyncio.create_task(
            subscription._keep_alive(),
            name=f"bacnet-cov {subscription.device} {subscription.object_id}")
        return subscription

    def forget(self, subscription: CovSubscription, *, unsubscribe: bool) -> None:
        self._live.discard(subscription)
        if self.routes is None:
            return
        self.routes.pop(subscription.key, None)
        if unsubscribe:
            task = asyncio.create_task(self._unsubscribe(subscription))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _unsubscribe(self, subscription: CovSubscription) -> None:
        try:
            await self.send(subscription, False)
        except DeviceError as exc:  # it lapses by itself at the end of its lifetime
            log.debug("%s", exc)

    async def close(self, grace: float) -> None:
        """Cancel every subscription; wait up to ``grace`` s for the unsubscribes."""
        for subscription in list(self._live):
            subscription.cancel()
        if self._background:
            _, pending = await asyncio.wait(self._background, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


class CovSubscription:
    """One live COV subscription; renewed in the background at 2/3 of its lifetime.

    ``failed`` once a renewal is refused or unanswered until the subscription would
    lapse: the caller polls the point from then on.
    """

    def __init__(self, owner: CovSubscriptions, device: str, address: Any, object_id: str,
                 monitored_object_identifier: Any, lifetime: int, confirmed: bool,
                 process_id: int, on_value: OnValue, on_failed: OnFailed | None) -> None:
        self.owner, self.device, self.address = owner, device, address
        self.object_id, self.lifetime, self.confirmed = object_id, lifetime, confirmed
        self.process_id, self.on_value, self.on_failed = process_id, on_value, on_failed
        self.monitored_object_identifier = monitored_object_identifier
        """The stack's identifier of the object, as notifications carry it."""
        self.key = (address, process_id)
        self.renewals = 0
        self.notifications = 0
        self.error: DeviceError | None = None
        self.cancelled = False
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self._task is not None and not self.cancelled and self.error is None

    @property
    def failed(self) -> bool:
        return self.error is not None

    def cancel(self) -> None:
        """Stop renewing and unsubscribe (best effort, in the background); idempotent."""
        if self.cancelled:
            return
        self.cancelled = True
        if self._task is not None:
            self._task.cancel()
        self.owner.forget(self, unsubscribe=self.error is None)

    async def put(self, property_value: Any) -> None:
        """Called by bacpypes3 with each value of a notification for this subscription."""
        prop = str(property_value.propertyIdentifier)
        if prop not in _COV_PROPERTIES or self.cancelled:
            return
        ref = PropertyRef(self.object_id, prop)
        value = self.owner.decode(self.device, ref, property_value.value)
        if isinstance(value, DeviceException):
            log.warning("%s", value)
            return
        self.notifications += 1
        self.owner.stats.cov_notifications += 1
        try:
            self.on_value(self.object_id, prop, value)
        except Exception:
            log.exception("%s: COV callback for %s failed", self.device, ref)

    async def _keep_alive(self) -> None:
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            await asyncio.sleep(max(0.0, renewed + self.lifetime * RENEW_AT - loop.time()))
            lapses = renewed + self.lifetime
            while True:
                try:
                    await self.owner.send(self, True)
                    break
                except DeviceTimeout as exc:
                    if loop.time() + RENEW_RETRY_S + self.owner.budget >= lapses:
                        self._fail(exc)
                        return
                    await asyncio.sleep(RENEW_RETRY_S)
                except DeviceError as exc:
                    self._fail(exc)
                    return
            renewed = loop.time()
            self.renewals += 1
            self.owner.stats.cov_renewals += 1

    def _fail(self, error: DeviceError) -> None:
        self.error = error
        self.owner.stats.cov_failures += 1
        log.warning("%s: COV subscription to %s lost (%s); poll it instead", self.device,
                    self.object_id, error)
        self.owner.forget(self, unsubscribe=False)
        if self.on_failed is not None:
            try:
                self.on_failed(self)
            except Exception:
                log.exception("%s: COV failure callback for %s failed", self.device,
                              self.object_id)
