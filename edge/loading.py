"""Read a site config and check it against the profiles it names, all problems at once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from device_profiles.loader import ProfileSet, builtin_profile_dir, check_profiles
from device_profiles.schema import DeviceProfile, ModbusProfile
from edge.config import DeviceConfig, ModbusSerial, ModbusTcp, SiteConfig
from edge.errors import ConfigError
from towerwatch.sourced_yaml import (
    SourceError,
    SourceIssue,
    format_path,
    issues_from_validation,
    load_yaml,
    locate,
)


@dataclass(frozen=True)
class LoadedConfig:
    config: SiteConfig
    profiles: ProfileSet
    path: Path
    raw: Any

    def profile_of(self, device: DeviceConfig) -> DeviceProfile:
        return self.profiles.get(device.profile)


def load_config(path: Path | str) -> LoadedConfig:
    """The checked config; :class:`ConfigError` lists every problem with file:line."""
    path = Path(path)
    try:
        raw = load_yaml(path)
    except SourceError as exc:
        raise ConfigError(exc.issues) from exc
    try:
        config = SiteConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(issues_from_validation(exc, raw)) from exc
    folders = [builtin_profile_dir(), *((path.parent / p) for p in config.profiles)]
    profiles, issues = check_profiles(folders)
    issues += [SourceIssue(locate(raw, loc), format_path(loc), msg)
               for loc, msg in _cross_checks(config, profiles)]
    if issues:
        raise ConfigError(issues)
    config = _resolve_paths(config, path.parent)
    return LoadedConfig(config, profiles, path, raw)


def _resolve_paths(config: SiteConfig, base: Path) -> SiteConfig:
    """Relative file paths in the config are relative to the config file."""
    def fix(p: Path | None) -> Path | None:
        return None if p is None or p.is_absolute() else base / p

    mqtt = config.mqtt.model_copy(update={
        k: fix(getattr(config.mqtt, k)) or getattr(config.mqtt, k)
        for k in ("password_file", "ca_file", "cert_file", "key_file")})
    outbox = config.outbox.model_copy(update={"path": fix(config.outbox.path)
                                              or config.outbox.path})
    return config.model_copy(update={"mqtt": mqtt, "outbox": outbox})


Loc = tuple[int | str, ...]


def _cross_checks(config: SiteConfig, profiles: ProfileSet) -> Iterator[tuple[Loc, str]]:
    ids: set[str] = set()
    endpoints: dict[tuple[Any, ...], str] = {}
    buses: dict[str, ModbusSerial] = {}
    for i, device in enumerate(config.devices):
        at: Loc = ("devices", i)
        if device.id in ids:
            yield (*at, "id"), f"device id {device.id!r} is used twice"
        ids.add(device.id)
        if device.profile not in profiles:
            yield (*at, "profile"), (f"unknown profile {device.profile!r}; known: "
                                     f"{', '.join(profiles.ids())}")
            continue
        profile = profiles.get(device.profile)
        if profile.protocol != device.protocol:
            yield (*at, device.protocol), (f"profile {profile.id!r} is {profile.protocol}, "
                                           f"but the device is connected by {device.protocol}")
        for loc, msg in _point_refs(device, profile):
            yield (*at, *loc), msg
        key = _endpoint_key(device)
        if key in endpoints:
            yield (*at, device.protocol), f"same address as device {endpoints[key]!r}"
        endpoints[key] = device.id
        if isinstance(device.modbus, ModbusSerial):
            line = buses.setdefault(device.modbus.serial, device.modbus)
            settings = ("baud", "parity", "stopbits", "bytesize")
            if any(getattr(line, s) != getattr(device.modbus, s) for s in settings):
                yield (*at, "modbus"), (f"serial line {device.modbus.serial} is used with "
                                        "other baud/parity/stop bits by another device")


def _point_refs(device: DeviceConfig, profile: DeviceProfile) -> Iterator[tuple[Loc, str]]:
    point_ids = {p.id for p in profile.points}
    for j, point_id in enumerate(device.disabled_points):
        if point_id not in point_ids:
            yield ("disabled_points", j), f"profile {profile.id!r} has no point {point_id!r}"
    for j, point_id in enumerate(device.writable):
        if point_id not in point_ids:
            yield ("writable", j), f"profile {profile.id!r} has no point {point_id!r}"
        elif profile.read_only:
            yield ("writable", j), f"{profile.equipment} points are never writable"
        elif not profile.point(point_id).writable:
            yield ("writable", j), f"point {point_id!r} is not writable in {profile.id!r}"
    for group in device.poll:
        if group not in profile.poll_groups:
            yield ("poll", group), (f"profile {profile.id!r} has no poll group {group!r} "
                                    f"(known: {', '.join(sorted(profile.poll_groups))})")
    if device.byte_order is not None and not isinstance(profile, ModbusProfile):
        yield ("byte_order",), "byte_order applies to Modbus devices"
    if device.max_registers is not None and not isinstance(profile, ModbusProfile):
        yield ("max_registers",), "max_registers applies to Modbus devices"


def _endpoint_key(device: DeviceConfig) -> tuple[Any, ...]:
    if isinstance(device.modbus, ModbusTcp):
        return ("tcp", device.modbus.host, device.modbus.port, device.modbus.unit)
    if isinstance(device.modbus, ModbusSerial):
        return ("serial", device.modbus.serial, device.modbus.unit)
    assert device.bacnet is not None
    return ("bacnet", device.bacnet.instance)
