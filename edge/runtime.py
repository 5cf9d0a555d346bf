"""What every polled device shares: its points, alarms, online state and publishing.

A :class:`DeviceRuntime` turns what a driver read into wire messages: report-by-
exception telemetry, alarm transitions, counter and event-log events, and the
retained online state. Protocol pollers (:mod:`edge.modbus_poller`,
:mod:`edge.bacnet_poller`) own the reading; this owns the meaning.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from device_profiles.schema import DeviceProfile
from edge.alarms import AlarmEngine, AlarmTransition
from edge.config import DeviceConfig, PollingConfig
from edge.errors import DeviceError, OutboxError
from edge.messages import MessageBuilder
from edge.metrics import GatewayMetrics
from edge.outbox import Outbox, OutboxFull, OutItem
from edge.points import PointTable

log = logging.getLogger(__name__)
FLUSH_WINDOW = 0.1
"""Seconds telemetry may wait to be stored together (see :class:`GatewayContext`)."""
_TELEMETRY = "telemetry"


@dataclass
class GatewayContext:
    """The gateway-wide services a device runtime publishes through.

    :meth:`send` queues messages; they are stored in the outbox, in order, in one
    transaction: telemetry at most :data:`FLUSH_WINDOW` s later, together with that of
    every other device whose cycle ended meanwhile (one outbox write, one wake-up of the
    publisher and one burst of publishes per window instead of one per device cycle:
    each costs more than a cycle's own work); anything else (events, device state,
    command replies) at the end of the event-loop turn, with what is queued before it.
    Anything that writes the outbox directly, or closes it, calls :meth:`flush` first,
    so the outbox keeps the order in which messages were made and holds all of them. A
    crash in the window loses what was queued, as if the gateway had died that much
    earlier: nothing it had stored, and no gap in ``seq``.
    """

    builder: MessageBuilder
    outbox: Outbox
    metrics: GatewayMetrics
    polling: PollingConfig
    notify: Callable[[], None] = lambda: None
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)
    _queued: list[OutItem] = field(default_factory=list, init=False, repr=False)
    _flush: asyncio.Handle | None = field(default=None, init=False, repr=False)
    _flush_urgent: bool = field(default=False, init=False, repr=False)
    _intervals: dict[float, int] = field(default_factory=dict, init=False, repr=False)

    def count_interval(self, interval: float) -> None:
        """A device polls a group every ``interval`` s (the pollers spread their cycles
        by how many do)."""
        self._intervals[interval] = self._intervals.get(interval, 0) + 1

    def devices_at(self, interval: float) -> int:
        """How many device poll groups run every ``interval`` s."""
        return self._intervals.get(interval, 0)

    def send(self, items: Sequence[OutItem]) -> None:
        """Queue ``items`` for the outbox (stored at once when no loop is running)."""
        if not items:
            return
        self._queued.extend(items)
        urgent = any(item.kind != _TELEMETRY for item in items)
        if self._flush is not None and (self._flush_urgent or not urgent):
            return  # the flush already planned comes soon enough
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._flush is not None:
            self._flush.cancel()
        self._flush_urgent = urgent
        self._flush = (loop.call_soon(self.flush) if urgent
                       else loop.call_later(FLUSH_WINDOW, self.flush))

    def flush(self) -> None:
        """Store the queued messages in one transaction and wake the publisher."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        items, self._queued = self._queued, []
        if not items:
            return
        try:
            self.outbox.put_many(items)
        except OutboxFull:
            pass  # refuse_new: the outbox counted and logged the refused telemetry
        except OutboxError as exc:
            log.error("%d message(s) not stored: %s", len(items), exc)
            return
        self.notify()


class DeviceRuntime:
    """One device's state between its driver and the outbox."""

    def __init__(self, config: DeviceConfig, profile: DeviceProfile, ctx: GatewayContext) -> None:
        self.config, self.profile, self.ctx = config, profile, ctx
        self.id = config.id
        self.points = PointTable(profile, byte_order=config.byte_order,
                                 disabled=config.disabled_points)
        self.alarms = AlarmEngine(profile)
        self.online: bool | None = None
        self.since = ctx.clock()
        self.last_error: str | None = None
        self.last_ok: float | None = None
        self.missed = 0
        self.cycles = 0
        self.active_alarms: dict[str, float] = {}
        """Active alarm ids and when they went active (for the status page)."""
        self._quiet = False  # a failure was logged at WARNING; DEBUG until recovery
        self._force = True
        self._intervals: dict[str, float] = {}

    # -- intervals -------------------------------------------------------------------
    def interval(self, group: str) -> float:
        interval = self._intervals.get(group)
        if interval is None:
            interval = self._intervals[group] = float(
                self.config.poll.get(group, self.profile.poll_groups.get(group, 5.0)))
        return interval

    def backoff(self) -> float:
        """Seconds to wait after ``missed`` failed cycles: doubling, jittered, capped."""
        base = min(self.interval(g) for g in self.profile.poll_groups) or 1.0
        delay: float = min(self.ctx.polling.backoff_max, base * 2.0 ** max(0, self.missed - 1))
        return delay * self.ctx.rng.uniform(0.8, 1.2)

    # -- outcomes --------------------------------------------------------------------
    def succeeded(self, now: float) -> None:
        """A cycle got answers: publish what changed, alarms, and coming back online."""
        self.cycles += 1
        self.missed = 0
        self.last_ok = now
        if self._quiet:
            log.warning("%s: answering again", self.id)
            self._quiet = False
        self.last_error = None
        items: list[OutItem] = []
        if self.online is not True:
            items += self._set_online(True, now, None)
        items += self.collect(now)
        self.ctx.send(items)

    def failed(self, error: DeviceError, now: float) -> None:
        """A whole cycle failed (timeout / unreachable): count it; offline after N."""
        self.missed += 1
        self.last_error = str(error)
        self.ctx.metrics.device_error(error)
        if not self._quiet:
            log.warning("%s: %s (further failures logged at DEBUG until it answers)",
                        self.id, error)
            self._quiet = True
        else:
            log.debug("%s: %s", self.id, error)
        if self.missed >= self.ctx.polling.offline_after and self.online is not False:
            self.points.mark_stale(now)
            items = self._set_online(False, now, str(error))
            items += self.collect(now)
            self.ctx.send(items)

    def collect(self, now: float) -> list[OutItem]:
        """Telemetry by exception, alarm transitions and counter events, as messages."""
        builder = self.ctx.builder
        items: list[OutItem] = []
        report = self.points.report(now, force=self._force)
        self._force = False
        if report is not None and report.values:
            items.append(builder.telemetry(self.id, report.values, report.quality, now))
            self.ctx.metrics.points_published(len(report.values))
        items += [self._alarm_item(t) for t in self.alarms.evaluate(self.points, now)]
        for point_id, kind, previous, current in self.points.counter_events():
            items.append(builder.event(self.id, kind="state", name=f"counter_{kind}",
                                       state=kind, value=current, now=now,
                                       detail={"point": point_id, "previous": previous}))
        return items

    def resend_all(self) -> None:
        """Report every point on the next cycle (after a reconnect or reload)."""
        self._force = True

    def _set_online(self, online: bool, now: float, reason: str | None) -> list[OutItem]:
        self.online, self.since = online, now
        self.ctx.metrics.device_online(self.id, online)
        items = [self.ctx.builder.device_state(self.id, online=online, since=now, reason=reason)]
        transition = self.alarms.comm_loss_transition(online, now)
        if transition is not None:
            items.append(self._alarm_item(transition))
        return items

    def _alarm_item(self, t: AlarmTransition) -> OutItem:
        self.ctx.metrics.event("alarm")
        if t.state == "active":
            self.active_alarms[t.alarm_id] = t.ts
        else:
            self.active_alarms.pop(t.alarm_id, None)
        return self.ctx.builder.event(
            self.id, kind="alarm", name=t.alarm_id, state=t.state, severity=t.severity,
            value=t.value, now=t.ts,
            detail={"category": t.category, "text_en": t.text_en, "text_zh": t.text_zh})
