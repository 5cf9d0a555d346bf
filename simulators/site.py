"""The site file of a simulated building: which devices, how many, and where they answer.

Example (``simulators/sites/example.yaml`` is a complete one)::

    site: demo-tower
    timezone: Asia/Shanghai
    modbus: {host: 127.0.0.1, base_port: 15020}
    bacnet: {network: 127.0.1.0, port: 47808, base_instance: 1000}
    devices:
      - id: lift-{n}
        count: 2
        profile: elevator-ctl-modbus
        options: {floors: 24}

Devices with ``count`` expand ``{n}`` (1, 2, ...) in their id. Modbus devices without
a port take consecutive ports from ``base_port`` (``0``: any free port); BACnet
devices without an address take consecutive loopback addresses in ``network``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from device_profiles.durations import Duration
from device_profiles.schema import Identifier, LocalizedText
from towerwatch.sourced_yaml import (
    SourceError,
    SourceIssue,
    issues_from_validation,
    load_yaml,
    locate,
)

Port = Annotated[int, Field(ge=0, le=65535)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Location(_Strict):
    building: str | None = None
    floor: str | None = None
    room: str | None = None


class ModbusEndpointSpec(_Strict):
    host: str | None = None
    port: Port | None = None
    bus: Identifier | None = None
    """Devices naming the same bus share one endpoint (an RS-485 line behind a gateway)."""
    unit: Annotated[int, Field(ge=1, le=247)] = 1
    framing: Literal["socket", "rtu"] = "socket"


class BacnetEndpointSpec(_Strict):
    address: str | None = None
    instance: Annotated[int, Field(ge=0, le=4194302)] | None = None


class IllegalRange(_Strict):
    table: Literal["coil", "discrete", "holding", "input"]
    start: Port
    end: Port


class DeviceSpec(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_{}-]*$", max_length=64)]
    profile: Identifier
    model: Identifier | None = None
    """Behaviour model name; default: the model that drives the profile."""
    count: Annotated[int, Field(ge=1, le=10_000)] = 1
    name: LocalizedText | None = None
    location: Location = Location()
    options: dict[str, Any] = {}
    modbus: ModbusEndpointSpec = ModbusEndpointSpec()
    bacnet: BacnetEndpointSpec = BacnetEndpointSpec()
    comms: Literal["normal", "slow", "silent"] = "normal"
    delay: Duration = 0.0
    illegal: list[IllegalRange] = []

    @model_validator(mode="after")
    def _template(self) -> DeviceSpec:
        if self.count > 1 and "{n}" not in self.id:
            raise ValueError("a device with count > 1 needs '{n}' in its id, e.g. 'lift-{n}'")
        if self.count > 1 and self.modbus.bus is not None and self.modbus.unit != 1:
            raise ValueError("devices with count > 1 on a bus take units 1, 2, ...; omit 'unit'")
        if self.count > 1 and (self.modbus.port is not None or self.bacnet.address is not None):
            raise ValueError("a device with count > 1 takes ports/addresses automatically; "
                             "remove modbus.port / bacnet.address")
        return self


class ModbusDefaults(_Strict):
    host: str = "127.0.0.1"
    base_port: Port = 15020


class BacnetDefaults(_Strict):
    network: str = "127.0.1.0"
    """Devices take consecutive addresses after this one, on loopback (/8)."""
    port: Port = 47808
    base_instance: Annotated[int, Field(ge=0, le=4194000)] = 1000

    @model_validator(mode="after")
    def _loopback(self) -> BacnetDefaults:
        if not ipaddress.ip_address(self.network).is_loopback:
            raise ValueError(f"simulated BACnet devices live on loopback, not {self.network}")
        return self


class SiteSpec(_Strict):
    site: Identifier
    name: LocalizedText | None = None
    timezone: str = "UTC"
    tick: Duration = 1.0
    modbus: ModbusDefaults = ModbusDefaults()
    bacnet: BacnetDefaults = BacnetDefaults()
    devices: Annotated[list[DeviceSpec], Field(min_length=1)]


class ExpandedDevice(_Strict):
    """One concrete device after ``count`` expansion."""

    id: Identifier
    spec_index: int
    spec: DeviceSpec
    n: int


def expand(site: SiteSpec) -> list[ExpandedDevice]:
    devices: list[ExpandedDevice] = []
    for index, spec in enumerate(site.devices):
        for n in range(1, spec.count + 1):
            devices.append(ExpandedDevice(id=spec.id.replace("{n}", str(n)), spec_index=index,
                                          spec=spec, n=n))
    return devices


def load_site(path: Path | str) -> tuple[SiteSpec, Any]:
    """Read and check a site file; every problem is reported with file:line."""
    raw = load_yaml(path)
    try:
        site = SiteSpec.model_validate(raw)
    except ValidationError as exc:
        raise SourceError(issues_from_validation(exc, raw)) from exc
    issues = []
    seen: dict[str, int] = {}
    for device in expand(site):
        if device.id in seen:
            where = locate(raw, ["devices", device.spec_index, "id"])
            issues.append(SourceIssue(where, f"devices[{device.spec_index}].id",
                                      f"device id {device.id!r} is used twice"))
        seen[device.id] = device.spec_index
    if issues:
        raise SourceError(issues)
    return site, raw


def with_overrides(site: SiteSpec, *, base_port: int | None = None,
                   bacnet_network: str | None = None) -> SiteSpec:
    """The site with its Modbus base port and/or BACnet network replaced (tests, demos)."""
    if base_port is not None:
        site = site.model_copy(update={"modbus": ModbusDefaults(host=site.modbus.host,
                                                                base_port=base_port)})
    if bacnet_network is not None:
        bacnet = BacnetDefaults(network=bacnet_network, port=site.bacnet.port,
                                base_instance=site.bacnet.base_instance)
        site = site.model_copy(update={"bacnet": bacnet})
    return site
