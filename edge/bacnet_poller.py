"""Polling BACnet devices with read-property-multiple, and COV where the profile asks.

Points marked ``cov`` are subscribed (renewed by the driver before expiry); a refused
or failed subscription falls back to polling that point until a later subscribe
succeeds. Every other point is polled by its poll group, in RPM chunks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from device_profiles.schema import BacnetPoint, BacnetProfile
from edge.config import DeviceConfig
from edge.drivers.bacnet import BacnetClient, CovSubscription, PropertyRef
from edge.errors import DeviceError, DeviceException
from edge.runtime import DeviceRuntime, GatewayContext

log = logging.getLogger(__name__)
RESUBSCRIBE_S = 60.0


class BacnetDevice(DeviceRuntime):
    def __init__(self, config: DeviceConfig, profile: BacnetProfile, ctx: GatewayContext,
                 client: BacnetClient, *, cov_lifetime: float) -> None:
        super().__init__(config, profile, ctx)
        self.bprofile = profile
        assert config.bacnet is not None
        address = config.bacnet.address
        self.address = address if ":" in address else f"{address}:47808"
        self.client = client
        self.cov_lifetime = cov_lifetime
        disabled = set(config.disabled_points)
        self.polled: list[BacnetPoint] = [p for p in profile.points if p.id not in disabled]
        self.refs = {p.id: PropertyRef(p.object, p.prop, p.index) for p in self.polled}
        self.subscriptions: dict[str, CovSubscription] = {}
        self._subscribe_at = 0.0
        now = time.monotonic()
        self.next_due = {g: now for g in {p.poll for p in self.polled}}
        self.max_properties = profile.limits.max_properties

    def _covered(self) -> set[str]:
        return {pid for pid, sub in self.subscriptions.items() if sub.active and not sub.failed}

    async def run(self) -> None:
        try:
            while True:
                now = time.monotonic()
                groups = [g for g, at in self.next_due.items() if at <= now]
                if groups:
                    lateness = max(now - self.next_due[g] for g in groups)
                    for g in groups:
                        nxt = self.next_due[g] + self.interval(g)
                        self.next_due[g] = nxt if nxt > now else now + self.interval(g)
                    self.ctx.metrics.cycle(self.id, lateness)
                    await self.cycle(groups)
                if self.online and now >= self._subscribe_at:
                    await self._subscribe()
                wake = min(self.next_due.values())
                await asyncio.sleep(max(0.0, wake - time.monotonic()))
        finally:
            for sub in self.subscriptions.values():
                sub.cancel()

    async def cycle(self, groups: Sequence[str]) -> None:
        covered = self._covered()
        due = [p for p in self.polled if p.poll in groups and p.id not in covered]
        if not due:
            return
        started = time.monotonic()
        try:
            results = await self.client.read_multiple(
                self.id, self.address, [self.refs[p.id] for p in due],
                max_properties=self.max_properties)
        except DeviceError as exc:
            self.failed(exc, self.ctx.clock())
            return
        self.ctx.metrics.request(self.id, time.monotonic() - started)
        now = self.ctx.clock()
        bad: list[str] = []
        for point in due:
            value = results.get(self.refs[point.id])
            if isinstance(value, DeviceException) or value is None:
                bad.append(point.id)
                continue
            self.points.apply_value(point.id, value, now)
        if bad:
            self.points.mark_bad(bad, "read failed", now)
        self.ctx.metrics.points_read(len(due) - len(bad))
        self.succeeded(now)

    async def _subscribe(self) -> None:
        """Subscribe every cov point that has no live subscription."""
        self._subscribe_at = time.monotonic() + RESUBSCRIBE_S
        for point in self.polled:
            if not point.cov:
                continue
            current = self.subscriptions.get(point.id)
            if current is not None and current.active and not current.failed:
                continue
            if current is not None:
                current.cancel()
            try:
                self.subscriptions[point.id] = await self.client.subscribe_cov(
                    self.id, self.address, point.object, lifetime=self.cov_lifetime,
                    on_value=self._on_cov)
            except DeviceError as exc:
                self.subscriptions.pop(point.id, None)
                log.info("%s: COV on %s refused (%s); polling it instead",
                         self.id, point.object, exc)

    def _on_cov(self, object_id: str, prop: str, value: object) -> None:
        now = self.ctx.clock()
        applied = 0
        for point in self.polled:
            if point.object == object_id and point.prop == prop and point.cov:
                self.points.apply_value(point.id, value, now)
                applied += 1
        if applied:
            self.ctx.metrics.points_read(applied)  # notified values count as read ones
        if self.online:
            self.ctx.send(self.collect(now))
