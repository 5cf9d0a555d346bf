"""A simulated building: behaviour models served over real Modbus and BACnet sockets.

:class:`SimBuilding` builds one model per device of a site file, serves Modbus devices
from register images generated from their profiles and BACnet devices as BACnet/IP
objects, steps every model by the building's clock, and plays a scenario timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from device_profiles.loader import ProfileSet
from device_profiles.schema import BacnetProfile, DeviceProfile, ModbusProfile, ModbusTable
from simulators.bacnet_server import BacnetDeviceServer
from simulators.clock import SimClock
from simulators.image import AddressRange, ModbusImage
from simulators.modbus_server import CommsMode, ModbusEndpoint, ModbusUnit
from simulators.models.base import DeviceModel, SimContext, SimError, Value
from simulators.models.registry import model_class, model_for_profile
from simulators.ports import PortClaim, claim_port
from simulators.scenario import Scenario, ScenarioEvent
from simulators.site import DeviceSpec, SiteSpec, expand
from towerwatch.sourced_yaml import SourceError, SourceIssue, format_path, locate

log = logging.getLogger(__name__)

MAX_STEP_S = 1.0
"""Longest simulated step a model takes at once; longer ticks are split."""
MAX_SUBSTEPS = 600


@dataclass(eq=False)
class SimulatedDevice:
    """One device of the building and where it answers."""

    id: str
    spec: DeviceSpec
    profile: DeviceProfile
    model: DeviceModel
    host: str | None = None
    port: int | None = None
    unit: int | None = None
    bacnet_address: str | None = None
    bacnet_instance: int | None = None
    modbus: ModbusUnit | None = None
    bacnet: BacnetDeviceServer | None = None
    _stamp: int = -1
    image: ModbusImage | None = field(default=None, repr=False)

    def describe(self) -> dict[str, Any]:
        """What a gateway needs to reach this device (also printed by ``sim run``)."""
        entry: dict[str, Any] = {"id": self.id, "profile": self.profile.id,
                                 "protocol": self.profile.protocol}
        if self.profile.protocol == "modbus":
            entry.update(host=self.host, port=self.port, unit=self.unit,
                         framing=self.spec.modbus.framing)
        else:
            entry.update(address=self.bacnet_address, instance=self.bacnet_instance)
        return entry


class SimBuilding:
    def __init__(self, site: SiteSpec, profiles: ProfileSet, *, clock: SimClock | None = None,
                 scenario: Scenario | None = None, seed: int = 0, site_raw: Any = None,
                 scenario_raw: Any = None) -> None:
        self.site = site
        self.clock = clock or SimClock(timezone=site.timezone)
        self.scenario = scenario
        self.devices: dict[str, SimulatedDevice] = {}
        self._endpoints: list[ModbusEndpoint] = []
        self._pending: list[ScenarioEvent] = scenario.timeline() if scenario else []
        self._start = self.clock.now()
        self._last = self._start
        self.ticks = 0
        self.log: list[str] = []
        self.on_event: Callable[[str], None] | None = None
        """Called with each scenario event as it is played (the CLI prints them)."""
        issues = self._build(profiles, seed, site_raw)
        if scenario is not None:
            issues += self._check_scenario(scenario, scenario_raw)
        if issues:
            raise SourceError(issues)

    # -- construction -------------------------------------------------------------------
    def _build(self, profiles: ProfileSet, seed: int, raw: Any) -> list[SourceIssue]:
        issues: list[SourceIssue] = []

        def problem(index: int, key: str, message: str) -> None:
            loc: list[int | str] = ["devices", index, key]
            issues.append(SourceIssue(locate(raw, loc), format_path(loc), message))

        bacnet_next = ipaddress.ip_address(self.site.bacnet.network) + 1
        for position, item in enumerate(expand(self.site)):
            spec = item.spec
            if spec.profile not in profiles:
                problem(item.spec_index, "profile", f"unknown profile {spec.profile!r}; "
                        f"known: {', '.join(profiles.ids())}")
                continue
            profile = profiles.get(spec.profile)
            try:
                name = spec.model or model_for_profile(profile.id)
                cls = model_class(name)
                options = dict(spec.options)
                if "*" in cls.profiles:
                    options["profile"] = profile
                elif profile.id not in cls.profiles:
                    raise KeyError(f"model {name!r} does not drive profile {profile.id!r}")
                ctx = SimContext(self.clock, random.Random(f"{seed}:{item.id}"))
                model = cls(item.id, ctx, options)
            except (KeyError, ValueError, TypeError) as exc:
                problem(item.spec_index, "model" if spec.model else "profile", _text(exc))
                continue
            device = SimulatedDevice(item.id, spec, profile, model)
            if isinstance(profile, BacnetProfile):
                address = spec.bacnet.address or str(bacnet_next)
                bacnet_next += 1
                device.bacnet_address = address
                device.bacnet_instance = (spec.bacnet.instance if spec.bacnet.instance is not None
                                          else self.site.bacnet.base_instance + position + 1)
            self.devices[item.id] = device
        return issues

    def _check_scenario(self, scenario: Scenario, raw: Any) -> list[SourceIssue]:
        issues = []
        for index, event in enumerate(scenario.events):
            loc: list[int | str] = ["events", index, "device"]
            device = self.devices.get(event.device)
            if device is None:
                issues.append(SourceIssue(locate(raw, loc), format_path(loc),
                                          f"no device {event.device!r} in site "
                                          f"{self.site.site!r}"))
                continue
            name = event.fault or event.clear
            if name is not None and name not in device.model.faults:
                loc[-1] = "fault" if event.fault else "clear"
                known = ", ".join(sorted(device.model.faults))
                issues.append(SourceIssue(locate(raw, loc), format_path(loc),
                                          f"{event.device} has no fault {name!r} (known: {known})"))
        return issues

    # -- serving ------------------------------------------------------------------------
    async def start(self) -> None:
        """Open every device's socket; raise SimError naming what could not start."""
        self.tick()
        groups: dict[tuple[str, int], list[SimulatedDevice]] = {}
        claims: dict[tuple[str, int], PortClaim] = {}
        buses: dict[str, tuple[str, int, int]] = {}
        next_port = self.site.modbus.base_port
        try:
            for device in self.devices.values():
                if not isinstance(device.profile, ModbusProfile):
                    continue
                spec = device.spec.modbus
                host, port, unit = spec.host or self.site.modbus.host, spec.port, spec.unit
                if spec.bus is not None and spec.bus in buses:
                    host, port, last_unit = buses[spec.bus]
                    unit = spec.unit if device.spec.count == 1 else last_unit + 1
                if port is None:
                    claim = claim_port(host, next_port)
                    port, next_port = claim.port, claim.port + 1 if next_port else 0
                    claims[(host, port)] = claim
                if spec.bus is not None:
                    buses[spec.bus] = (host, port, unit)
                device.host, device.port, device.unit = host, port, unit
                groups.setdefault((host, port), []).append(device)
            for (host, port), members in groups.items():
                units = [self._modbus_unit(d) for d in members]
                framing = members[0].spec.modbus.framing
                endpoint = ModbusEndpoint(host, port, units, framing)
                await endpoint.start()
                self._endpoints.append(endpoint)
                if (host, port) in claims:
                    claims.pop((host, port)).release()  # the endpoint listens on it now
            for device in self.devices.values():
                if isinstance(device.profile, BacnetProfile):
                    await self._start_bacnet(device)
        except BaseException:
            await self.stop()
            raise
        finally:
            for claim in claims.values():
                claim.release()

    def _modbus_unit(self, device: SimulatedDevice) -> ModbusUnit:
        assert isinstance(device.profile, ModbusProfile) and device.unit is not None
        device.image = ModbusImage(device.profile)
        illegal = [AddressRange(ModbusTable(r.table), r.start, r.end) for r in device.spec.illegal]
        unit = ModbusUnit(device.unit, device.image, lambda: self._refresh(device),
                          device.model.write, illegal=illegal)
        unit.set_comms(device.spec.comms, device.spec.delay)
        device.modbus = unit
        return unit

    async def _start_bacnet(self, device: SimulatedDevice) -> None:
        assert isinstance(device.profile, BacnetProfile)
        assert device.bacnet_address is not None and device.bacnet_instance is not None
        server = BacnetDeviceServer(
            profile=device.profile, device_instance=device.bacnet_instance,
            device_name=device.id,
            address=f"{device.bacnet_address}/8:{self.site.bacnet.port}",
            initial=device.model.values(), on_write=device.model.write)
        await server.start()
        device.bacnet = server
        if device.spec.comms != "normal":
            server.set_comms(device.spec.comms, device.spec.delay)

    def _refresh(self, device: SimulatedDevice) -> None:
        if device.image is not None and device._stamp != self.ticks:
            device.image.update(device.model.values(), device.model.events())
            device._stamp = self.ticks

    async def stop(self) -> None:
        for endpoint in self._endpoints:
            await endpoint.stop()
        self._endpoints.clear()
        for device in self.devices.values():
            if device.bacnet is not None:
                with contextlib.suppress(Exception):
                    await device.bacnet.stop()
                device.bacnet = None

    # -- time ---------------------------------------------------------------------------
    def tick(self) -> None:
        """Bring every model to the clock's now and play the scenario events that are due."""
        now = self.clock.now()
        dt = now - self._last
        if dt > 0:
            steps = min(MAX_SUBSTEPS, max(1, int(dt / MAX_STEP_S + 0.999)))
            for i in range(1, steps + 1):
                at = self._last + dt * i / steps
                for device in self.devices.values():
                    device.model.step(at, dt / steps)
            self._last = now
        while self._pending and self._pending[0].at <= now - self._start:
            self._apply(self._pending.pop(0))
        self.ticks += 1
        for device in self.devices.values():
            if device.bacnet is not None:
                device.bacnet.update(device.model.values())

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every ``site.tick`` seconds of real time until ``stop`` is set."""
        while not stop.is_set():
            self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.site.tick)

    def _apply(self, event: ScenarioEvent) -> None:
        try:
            if event.fault:
                self.inject(event.device, event.fault, event.args)
            elif event.clear:
                self.clear(event.device, event.clear, event.args)
            elif event.comms:
                self.set_comms(event.device, event.comms, event.delay)
        except (SimError, ValueError, KeyError) as exc:
            log.warning("scenario event %s failed: %s", event.describe(), exc)
            return
        message = f"+{_hms(event.at)} {event.describe()}"
        self.log.append(message)
        log.info("scenario: %s", message)
        if self.on_event is not None:
            self.on_event(message)

    # -- cues ---------------------------------------------------------------------------
    def device(self, device_id: str) -> SimulatedDevice:
        try:
            return self.devices[device_id]
        except KeyError:
            raise KeyError(f"no device {device_id!r} in site {self.site.site!r}") from None

    def inject(self, device_id: str, fault: str, args: Mapping[str, Any] | None = None) -> None:
        self.device(device_id).model.inject(fault, args or {})

    def clear(self, device_id: str, fault: str, args: Mapping[str, Any] | None = None) -> None:
        self.device(device_id).model.clear(fault, args or {})

    def set_comms(self, device_id: str, mode: CommsMode, delay: float = 0.0) -> None:
        device = self.device(device_id)
        if device.modbus is not None:
            device.modbus.set_comms(mode, delay)
        if device.bacnet is not None:
            device.bacnet.set_comms(mode, delay)

    def values(self, device_id: str) -> dict[str, Value]:
        return self.device(device_id).model.values()

    def served(self) -> list[dict[str, Any]]:
        return [d.describe() for d in self.devices.values()]


def _hms(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _text(exc: BaseException) -> str:
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
