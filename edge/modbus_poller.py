"""Polling Modbus devices: block reads by poll group, holes, event logs, one task per line.

A :class:`ModbusLine` is one connection shared by one or more devices: a Modbus TCP
device on its own, several units behind an RTU-over-TCP gateway, or a serial bus.
It polls its devices in turn, so a line never has two requests in flight, and keeps
the inter-frame gap on serial lines. Devices on different lines are polled by
different tasks: a dead or slow device never delays another line's cycles.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence

from device_profiles.codec import decode_event_record, decode_raw, event_slot_address
from device_profiles.schema import ModbusPoint, ModbusProfile, ModbusTable, ModbusType, PointKind
from edge.config import DeviceConfig, ModbusSerial
from edge.drivers.modbus import ModbusClient
from edge.errors import DeviceException, DeviceTimeout, DeviceUnreachable
from edge.outbox import OutItem
from edge.planner import (
    ReadBlock,
    addresses_of,
    holes_for,
    plan_reads,
    reads_of,
    split_block,
)
from edge.runtime import DeviceRuntime, GatewayContext

log = logging.getLogger(__name__)
_ACCESS = "Access_Control_Equipment"
CYCLE_COST = 0.0003
"""Seconds of CPU a device's poll cycle takes, roughly (a Modbus request, decoding, duties)."""
SPREAD_ABOVE = 0.1
"""Share of a core the devices of one interval keep busy above which their cycles are
spread over the interval rather than run together (see :meth:`ModbusDevice.advance`)."""


class ModbusDevice(DeviceRuntime):
    """One Modbus device: its read plan, the holes it taught us, its event logs."""

    def __init__(self, config: DeviceConfig, profile: ModbusProfile, ctx: GatewayContext) -> None:
        super().__init__(config, profile, ctx)
        self.mprofile = profile
        assert config.modbus is not None
        self.unit = config.modbus.unit
        self.byte_order = config.byte_order or profile.byte_order
        disabled = set(config.disabled_points)
        self.polled = [p for p in profile.points if p.id not in disabled]
        self.by_id = {p.id: p for p in self.polled}
        self.event_logs = [p for p in self.polled if p.kind is PointKind.EVENT_LOG]
        self.holes: set[tuple[ModbusTable, int]] = set()
        self.blocks: list[ReadBlock] = []
        self._blocks_of: dict[tuple[str, ...], list[ReadBlock]] = {}
        """The blocks of each combination of due poll groups (cleared by a new plan)."""
        self.replan()
        now = time.monotonic()
        self.next_due = {g: now for g in {b.group for b in self.blocks}
                         | {p.poll for p in self.event_logs}}
        self.retry_at = 0.0
        self._tick: dict[str, int] = {}
        self._phase: dict[str, float] = {}
        for group in self.next_due:
            ctx.count_interval(self.interval(group))

    def replan(self) -> None:
        limits = self.mprofile.limits
        self.blocks = plan_reads(
            [p for p in self.polled if p.kind is not PointKind.EVENT_LOG],
            max_registers=self.config.max_registers or limits.max_registers,
            max_bits=limits.max_bits,
            max_gap=(self.ctx.polling.max_gap if self.ctx.polling.max_gap is not None
                     else limits.max_gap),
            forbidden=limits.forbidden, holes=self.holes)
        self._blocks_of.clear()

    def due(self, now: float) -> list[str]:
        if now < self.retry_at:
            return []
        return [g for g, at in self.next_due.items() if at <= now]

    def advance(self, groups: Sequence[str], now: float) -> float:
        """Schedule the next cycle of ``groups``; returns the worst lateness (s).

        The first cycle is at once; the next ones fall on a grid shared by the gateway,
        ``(k + phase) x interval`` on the monotonic clock. While the devices polled at an
        interval keep the gateway less than :data:`SPREAD_ABOVE` busy, their phase is 0:
        they wake in one event-loop turn (waking the process costs more than a cycle's
        own work) and their messages share one outbox write. Busier, each device takes a
        random phase: the cycles spread evenly over the interval, and neither the event
        loop nor the devices see a burst of requests. A late cycle is not made up for.
        """
        lateness = 0.0
        next_due, ticks = self.next_due, self._tick
        for group in groups:
            due = next_due[group]
            if now - due > lateness:
                lateness = now - due
            interval = self.interval(group)
            phase = self._phase.get(group)
            if phase is None:
                busy = self.ctx.devices_at(interval) * CYCLE_COST / interval
                phase = self._phase[group] = (
                    self.ctx.rng.random() if busy > SPREAD_ABOVE else 0.0)
            offset = phase * interval
            tick = ticks.get(group)
            tick = math.floor((now - offset) / interval) if tick is None else tick + 1
            nxt = tick * interval + offset
            if nxt <= now:  # late: no backlog, the next grid point after now
                tick = math.floor((now - offset) / interval) + 1
                nxt = tick * interval + offset
                if nxt <= now:
                    tick += 1
                    nxt = tick * interval + offset
            ticks[group], next_due[group] = tick, nxt
        return lateness

    def wake_at(self) -> float:
        return max(min(self.next_due.values(), default=float("inf")), self.retry_at)

    async def cycle(self, client: ModbusClient, groups: Sequence[str], gap: float) -> None:
        """Read the blocks of ``groups`` and the due event logs; publish what came of it."""
        now_wall = self.ctx.clock()
        started = time.monotonic()
        key = tuple(groups)
        blocks = self._blocks_of.get(key)
        if blocks is None:
            blocks = self._blocks_of[key] = [b for b in self.blocks if b.group in key]
        try:
            for block in blocks:
                await self._read_block(client, block, now_wall, gap)
            if self.event_logs:
                for point in self.event_logs:
                    if point.poll in key:
                        await self._read_event_log(client, point, gap)
        except (DeviceTimeout, DeviceUnreachable, DeviceException) as exc:
            # A whole-cycle failure: no answer, no connection, or an event-log read refused.
            self.retry_at = time.monotonic() + self.backoff()
            self.failed(exc, self.ctx.clock())
            return
        self.retry_at = 0.0
        self.ctx.metrics.request(self.id, time.monotonic() - started)
        self.succeeded(self.ctx.clock())

    async def _read_block(self, client: ModbusClient, block: ReadBlock, now: float,
                          gap: float) -> bool:
        """Read one block into the point table; False when it answered with an exception."""
        try:
            registers = await client.read(self.unit, block.table, block.address, block.count)
        except DeviceException as exc:
            if not exc.illegal_address:
                self.points.mark_bad(block.points, str(exc), now)
                return False
            await self._illegal(client, block, now, gap, exc)
            return False
        finally:
            if gap:
                await asyncio.sleep(gap)
        self.points.apply_registers(block.table, block.address, registers, block.points, now)
        self.ctx.metrics.points_read(len(block.points))
        return True

    async def _illegal(self, client: ModbusClient, block: ReadBlock, now: float, gap: float,
                       exc: DeviceException) -> None:
        """Split a block that answered illegal-address until the culprits are found.

        A single point that fails goes bad and its addresses become holes; when every
        half answers, the culprit was in the gap left out by the split: that becomes a
        hole. Future plans never merge across a hole.
        """
        halves = split_block(block, self.by_id)
        if not halves:
            self.points.mark_bad(block.points, str(exc), now)
            for point_id in block.points:
                self.holes.update(addresses_of(self.by_id[point_id]))
            log.warning("%s: %s %d answers illegal address; marking %s bad and not reading "
                        "it again", self.id, block.table, block.address, ", ".join(block.points))
        else:
            results = [await self._read_block(client, half, now, gap) for half in halves]
            if all(results):
                self.holes.update(holes_for(block, self.by_id) - reads_of(halves))
        self.replan()

    async def _read_event_log(self, client: ModbusClient, point: ModbusPoint,
                              gap: float) -> None:
        spec = point.event_log
        assert spec is not None
        key = f"eventlog:{self.id}:{point.id}"
        head_regs = await client.read(self.unit, point.table, spec.head, 2)
        head = int(decode_raw(head_regs, ModbusType.U32, self.byte_order))
        cursor = self.ctx.outbox.cursor(key)
        if cursor is None:
            cursor = max(0, head - spec.capacity)
        if head <= cursor:
            if head < cursor:  # the controller was reset / replaced: follow it
                with self.ctx.outbox.transaction() as tx:
                    tx.set_cursor(key, head)
            return
        first = max(cursor + 1, head - spec.capacity + 1)
        records: list[tuple[int, dict[str, bool | int | float | str]]] = []
        for seq in range(first, head + 1):
            address = event_slot_address(point, seq)
            registers = await client.read(self.unit, point.table, address, spec.record_size)
            if gap:
                await asyncio.sleep(gap)
            record = decode_event_record(spec, registers, byte_order=self.byte_order,
                                         enums=self.profile.enums)
            if int(record.get("seq", seq)) != seq:
                continue  # overwritten while we read: the overrun event below covers it
            records.append((seq, record))
        # Built (numbered) and stored with no await in between, after what was queued
        # before: the outbox stays in seq order while other devices poll meanwhile.
        self.ctx.flush()
        builder = self.ctx.builder
        items: list[OutItem] = []
        if first > cursor + 1:
            items.append(builder.event(
                self.id, kind="state", name="event_log_overrun", state="lost",
                value=first - cursor - 1, detail={"point": point.id}))
        kind = "access" if self.profile.equipment == _ACCESS else "state"
        for seq, record in records:
            name = str(record.get("event", point.id))
            items.append(builder.event(
                self.id, kind=kind, name=name, state=name, event_id=f"{self.id}:{point.id}:{seq}",
                detail={k: v for k, v in record.items() if k != "event"}))
            self.ctx.metrics.event(kind)
        with self.ctx.outbox.transaction() as tx:
            tx.put_many(items)
            tx.set_cursor(key, head)
        self.ctx.notify()


class ModbusLine:
    """One shared connection and the devices polled over it, in turn."""

    def __init__(self, name: str, client: ModbusClient, devices: Sequence[ModbusDevice]) -> None:
        self.name, self.client, self.devices = name, client, list(devices)
        first = devices[0]
        serial = isinstance(first.config.modbus, ModbusSerial)
        gap_ms = max(d.mprofile.limits.min_gap_ms for d in devices)
        if serial:
            gap_ms += first.ctx.polling.serial_gap_ms
        self.gap = gap_ms / 1000

    async def run(self) -> None:
        try:
            while True:
                now = time.monotonic()
                for device in self.devices:
                    groups = device.due(now)
                    if groups:
                        lateness = device.advance(groups, now)
                        device.ctx.metrics.cycle(device.id, lateness)
                        await device.cycle(self.client, groups, self.gap)
                wake = min(d.wake_at() for d in self.devices)
                await asyncio.sleep(max(0.0, wake - time.monotonic()))
        finally:
            self.devices[0].ctx.flush()  # what the cycles made is stored before the outbox closes
            await self.client.close()
