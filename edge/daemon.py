"""The gateway daemon: one asyncio process, one task group, tasks named after what they do.

``towerwatch edge run`` builds a :class:`Gateway` from a checked site config and runs
it until SIGTERM/SIGINT. SIGHUP (or a ``reload`` command) checks the config file again;
a valid one restarts the gateway with it (device tasks, MQTT connection, HTTP port),
an invalid one is refused (named in the reply and the log) and the running config
stays. Across a reload the outbox, boot id and ``seq`` numbering carry over, and so do
the online state and active alarms of every device that stays: a reload loses and
repeats nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

from device_profiles.codec import encode_bacnet, encode_modbus, set_bit
from device_profiles.schema import BacnetProfile, ModbusProfile, ModbusTable
from edge.bacnet_poller import BacnetDevice
from edge.commands import CommandHandler, Scalar
from edge.config import ModbusSerial, ModbusTcp, SiteConfig
from edge.drivers.bacnet import BacnetClient
from edge.drivers.modbus import ModbusClient
from edge.errors import ConfigError
from edge.http import HttpServer, check_health
from edge.loading import LoadedConfig, load_config
from edge.messages import DeviceInfo, MessageBuilder
from edge.metrics import GatewayMetrics
from edge.modbus_poller import ModbusDevice, ModbusLine
from edge.mqtt import MqttPublisher
from edge.outbox import Outbox
from edge.runtime import DeviceRuntime, GatewayContext
from edge.status import status_view

log = logging.getLogger(__name__)
VERSION = "0.1.0"


def _line_key(device: ModbusDevice) -> str:
    endpoint = device.config.modbus
    if isinstance(endpoint, ModbusSerial):
        return f"serial:{endpoint.serial}"
    assert isinstance(endpoint, ModbusTcp)
    return f"tcp:{endpoint.host}:{endpoint.port}"


async def _cancel_stragglers(tasks: list[asyncio.Task[None]], *, grace: float = 1.0) -> None:
    """Cancel again the tasks that are still running ``grace`` s after their cancel.

    On Python 3.11 ``asyncio.wait_for`` (used inside pymodbus for every request) loses
    a cancellation that arrives in the same loop turn as the answer: the read returns
    and the poll loop goes on, so the task group would wait for it for ever.
    """
    for _ in range(10):
        pending = [task for task in tasks if not task.done()]
        if not pending:
            return
        await asyncio.wait(pending, timeout=grace)
        for task in pending:
            if not task.done():
                log.debug("task %s ignored its cancellation; cancelling it again",
                          task.get_name())
                task.cancel()


class Gateway:
    """Everything one running gateway owns, built from one config."""

    def __init__(self, loaded: LoadedConfig, *, builder: MessageBuilder | None = None,
                 metrics: GatewayMetrics | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.loaded = loaded
        cfg: SiteConfig = loaded.config
        self.config = cfg
        self.builder = builder or MessageBuilder(cfg.site, cfg.gateway, version=VERSION)
        self.metrics = metrics or GatewayMetrics()
        self.metrics.set_info(site=cfg.site, gateway=cfg.gateway, version=self.builder.version,
                              boot_id=self.builder.boot_id)
        self.outbox = Outbox(cfg.outbox.path, max_messages=cfg.outbox.max_messages,
                             overflow=cfg.outbox.overflow)
        self.ctx = GatewayContext(self.builder, self.outbox, self.metrics, cfg.polling,
                                  clock=clock)
        self.started = time.time()
        self.devices: dict[str, DeviceRuntime] = {}
        self.lines: dict[str, ModbusLine] = {}
        self.line_of: dict[str, ModbusLine] = {}
        self.bacnet: BacnetClient | None = None
        self._build_devices()
        self.commands = CommandHandler(self.ctx, self.devices, self._write_point, self._reload)
        infos = [DeviceInfo(d.id, d.profile.id, d.config.name) for d in self.devices.values()]
        self.publisher = MqttPublisher(
            cfg.mqtt, site=cfg.site, gateway=cfg.gateway, outbox=self.outbox,
            birth=lambda: self.builder.birth(infos), will=self.builder.will(),
            on_command=self.commands.handle)
        self.ctx.notify = self.publisher.notify
        self.http = HttpServer(cfg.http.listen, health=lambda: check_health(status_view(self)),
                               metrics=self.metrics, status=lambda: status_view(self))
        self.reload_requested = False
        self.next_config: LoadedConfig | None = None
        """The checked config a reload will restart with (set by a valid reload)."""
        self._stop = asyncio.Event()
        self._reloads: set[asyncio.Task[str | None]] = set()

    def carry_over(self, old: Gateway) -> None:
        """After a reload: keep what the cloud was already told about each device that
        stays (same id and profile): its online state and its active alarms, so a reload
        neither repeats nor forgets an alarm. The uptime counts from the first start."""
        self.started = old.started
        for device_id, device in self.devices.items():
            before = old.devices.get(device_id)
            if before is None or before.profile.id != device.profile.id:
                continue
            device.alarms.restore(before.alarms.active())
            device.active_alarms = dict(before.active_alarms)
            device.online, device.since = before.online, before.since

    def _build_devices(self) -> None:
        groups: dict[str, list[ModbusDevice]] = {}
        for config in self.config.devices:
            if not config.enabled:
                continue
            profile = self.loaded.profiles.get(config.profile)
            if isinstance(profile, ModbusProfile):
                device = ModbusDevice(config, profile, self.ctx)
                groups.setdefault(_line_key(device), []).append(device)
                self.devices[device.id] = device
            else:
                assert isinstance(profile, BacnetProfile)
                if self.bacnet is None:
                    self.bacnet = BacnetClient(self.config.bacnet,
                                               timeout=self.config.polling.timeout)
                self.devices[config.id] = BacnetDevice(
                    config, profile, self.ctx, self.bacnet,
                    cov_lifetime=self.config.bacnet.cov_lifetime)
        for key, members in groups.items():
            endpoint = members[0].config.modbus
            assert endpoint is not None
            client = ModbusClient(endpoint, timeout=self.config.polling.timeout, name=key)
            line = ModbusLine(key, client, members)
            self.lines[key] = line
            for member in members:
                self.line_of[member.id] = line

    # -- running -----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> bool:
        """Run until ``stop`` is set (returns False) or a reload is requested (True)."""
        stop = stop or asyncio.Event()
        await self.http.start()
        try:
            if self.bacnet is not None:
                await self.bacnet.start()
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self.publisher.run(), name="mqtt")]
                tasks += [group.create_task(line.run(), name=f"poll {key}")
                          for key, line in self.lines.items()]
                tasks += [group.create_task(d.run(), name=f"poll bacnet {d.id}")
                          for d in self.devices.values() if isinstance(d, BacnetDevice)]
                tasks.append(group.create_task(self._gauges(), name="gauges"))
                waiters = [asyncio.ensure_future(stop.wait()),
                           asyncio.ensure_future(self._stop.wait())]
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
                # Say goodbye (retained offline status) before the tasks go: a cancelled
                # publisher drops the connection and the broker sends the will instead.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.publisher.stop(graceful=True), 5)
                for task in tasks:
                    task.cancel()
                await _cancel_stragglers(tasks[1:])
        finally:
            if self.bacnet is not None:
                await self.bacnet.close()
            await self.http.stop()
            self.ctx.flush()  # messages made in the last loop turn
            self.outbox.close()
        return self.reload_requested

    def commands_reload(self) -> None:
        """SIGHUP: reload like the ``reload`` command does (only a valid config is taken)."""
        task = asyncio.get_running_loop().create_task(self._reload(), name="reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    def request_stop(self, *, reload: bool = False) -> None:
        self.reload_requested = reload
        self._stop.set()

    async def _gauges(self) -> None:
        while True:
            self.metrics.outbox(self.outbox.depth(), self.outbox.dropped)
            self.metrics.mqtt(self.publisher.connected, self.publisher.reconnects,
                              published_total=self.publisher.published)
            await asyncio.sleep(1.0)

    async def _reload(self) -> str | None:
        """Check the config file again; restart with it when it is valid.

        Returns ``None`` when the restart is on its way, else the reason it is not (also
        logged: a SIGHUP has nobody else to tell).
        """
        path = self.loaded.path
        loaded: LoadedConfig | None = None
        problem: str | None = None
        try:
            loaded = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            problem = f"{len(exc.issues)} problem(s), first: {exc.issues[0]}"
        else:
            problem = _unreloadable(self.config, loaded.config)
        if problem is not None or loaded is None:
            log.warning("config %s not reloaded, still running the previous one: %s",
                        path, problem)
            return problem
        log.info("config %s is valid; reloading", path)
        self.next_config = loaded
        # A moment for the command reply to go out before the connection is closed.
        asyncio.get_running_loop().call_later(0.2, lambda: self.request_stop(reload=True))
        return None

    # -- writes --------------------------------------------------------------------------
    async def _write_point(self, device: DeviceRuntime, point_id: str, value: Scalar) -> None:
        if isinstance(device, ModbusDevice):
            point = device.mprofile.point(point_id)
            client = self.line_of[device.id].client
            order = point.byte_order or device.byte_order
            if point.table is ModbusTable.COIL:
                registers = [1 if value else 0]
            elif point.bit is not None:
                current = await client.read(device.unit, point.table, point.address, point.width)
                registers = set_bit(current, point.bit, bool(value), byte_order=order)
            else:
                registers = encode_modbus(point, value, byte_order=order,
                                          enums=device.profile.enums)
            await client.write(device.unit, point.table, point.address, registers)
        elif isinstance(device, BacnetDevice):
            bpoint = device.bprofile.point(point_id)
            assert self.bacnet is not None
            encoded = encode_bacnet(bpoint, value, enums=device.profile.enums)
            await self.bacnet.write(device.id, device.address, device.refs[point_id], encoded)


def _unreloadable(old: SiteConfig, new: SiteConfig) -> str | None:
    """Why ``new`` cannot replace ``old`` in a running gateway (``None``: it can)."""
    if (new.site, new.gateway) != (old.site, old.gateway):
        return (f"site/gateway changed from {old.site}/{old.gateway} to "
                f"{new.site}/{new.gateway}: restart the gateway instead")
    if new.outbox.path != old.outbox.path:
        return (f"outbox.path changed from {old.outbox.path} to {new.outbox.path}: the "
                "messages in the old outbox would be left behind; restart the gateway")
    return None


async def run_gateway(path: Path, *, stop: asyncio.Event, sighup: bool = True,
                      on_start: Callable[[Gateway], None] | None = None) -> None:
    """Run the gateway of the config at ``path``, reloading it on request, until ``stop``.

    A reload restarts with the config it checked (not a second reading of the file), and
    keeps the boot id, ``seq`` numbering, metrics and known device state. ``on_start`` is
    called with every :class:`Gateway` built (the first and one per reload).
    """
    loaded = load_config(path)
    previous: Gateway | None = None
    loop = asyncio.get_running_loop()
    try:
        while True:
            gateway = Gateway(loaded, builder=previous.builder if previous else None,
                              metrics=previous.metrics if previous else None)
            if previous is not None:
                gateway.carry_over(previous)
            if on_start is not None:
                on_start(gateway)
            if sighup:
                loop.add_signal_handler(signal.SIGHUP, gateway.commands_reload)
            reload = await gateway.run(stop)
            if not reload or stop.is_set() or gateway.next_config is None:
                return
            loaded, previous = gateway.next_config, gateway
    finally:
        if sighup:
            loop.remove_signal_handler(signal.SIGHUP)
