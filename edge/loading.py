"""Read a site config and check it against the profiles it names, all problems at once.

Problems found by the schema come from pydantic (English); the gateway's own checks
(:func:`load_config` cross-checks devices against their profiles) are
:class:`ConfigIssue` s, which also say themselves in Chinese (:func:`issue_text`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from device_profiles.loader import ProfileSet, builtin_profile_dir, check_profiles
from device_profiles.schema import DeviceProfile, ModbusProfile
from edge.config import MODBUS_TAGS, DeviceConfig, ModbusSerial, ModbusTcp, SiteConfig
from edge.errors import ConfigError
from towerwatch.i18n import Lang, t
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


@dataclass(frozen=True)
class ConfigIssue(SourceIssue):
    """A problem found by the gateway's checks: ``message`` is the English text of the
    message ``key`` of :mod:`towerwatch.i18n` with ``fields``."""

    key: str = ""
    fields: tuple[tuple[str, str], ...] = ()

    def text(self, lang: Lang) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.location}: {where}{t(self.key, lang, **dict(self.fields))}"


def issue_text(issue: SourceIssue, lang: Lang) -> str:
    """``file:line: path: message`` in ``lang`` where the message has a translation."""
    return issue.text(lang) if isinstance(issue, ConfigIssue) else str(issue)


Loc = tuple[int | str, ...]
Found = tuple[Loc, str, dict[str, object]]
"""Where (a pydantic-style path), the message key, its fields."""


def _issue(raw: Any, loc: Loc, key: str, fields: Mapping[str, object]) -> ConfigIssue:
    text_fields = tuple((k, str(v)) for k, v in fields.items())
    return ConfigIssue(locate(raw, loc), format_path(loc), t(key, "en", **dict(text_fields)),
                       key=key, fields=text_fields)


def load_config(path: Path | str) -> LoadedConfig:
    """The checked config; :class:`ConfigError` lists every problem with file:line."""
    path = Path(path)
    try:
        raw = load_yaml(path)
    except SourceError as exc:
        raise ConfigError(exc.issues) from exc
    secrets = [_issue(raw, loc, key, fields) for loc, key, fields in _inline_secrets(raw)]
    try:
        config = SiteConfig.model_validate(_without_secrets(raw) if secrets else raw)
    except ValidationError as exc:
        found = issues_from_validation(exc, raw, skip=MODBUS_TAGS)
        raise ConfigError(_in_file_order([*secrets, *found])) from exc
    folders = [builtin_profile_dir(), *((path.parent / p) for p in config.profiles)]
    profiles, issues = check_profiles(folders)
    issues += secrets
    issues += [_issue(raw, loc, key, fields)
               for loc, key, fields in _cross_checks(config, profiles)]
    if issues:
        raise ConfigError(_in_file_order(issues))
    config = _resolve_paths(config, path.parent)
    return LoadedConfig(config, profiles, path, raw)


def _in_file_order(issues: list[SourceIssue]) -> list[SourceIssue]:
    return sorted(issues, key=lambda issue: (issue.location, issue.path))


def _inline_secrets(raw: Any) -> Iterator[Found]:
    mqtt = raw.get("mqtt") if isinstance(raw, dict) else None
    if isinstance(mqtt, dict) and "password" in mqtt:
        yield ("mqtt", "password"), "config.inline_password", {}


def _without_secrets(raw: Any) -> Any:
    """``raw`` minus the inline password (reported on its own), so that the rest of the
    file is still checked."""
    mqtt = {k: v for k, v in raw["mqtt"].items() if k != "password"}
    return {**raw, "mqtt": mqtt}


def _resolve_paths(config: SiteConfig, base: Path) -> SiteConfig:
    """Relative file paths in the config are relative to the config file."""
    def fix(p: Path) -> Path:
        return p if p.is_absolute() else base / p

    mqtt = config.mqtt.model_copy(update={
        k: fix(v) for k in ("password_file", "ca_file", "cert_file", "key_file")
        if (v := getattr(config.mqtt, k)) is not None})
    outbox = config.outbox.model_copy(update={"path": fix(config.outbox.path)})
    return config.model_copy(update={"mqtt": mqtt, "outbox": outbox,
                                     "profiles": [fix(p) for p in config.profiles]})


def _cross_checks(config: SiteConfig, profiles: ProfileSet) -> Iterator[Found]:
    ids: set[str] = set()
    endpoints: dict[tuple[Any, ...], str] = {}
    buses: dict[str, tuple[str, ModbusSerial]] = {}
    framings: dict[tuple[str, int], tuple[str, str]] = {}
    for i, device in enumerate(config.devices):
        at: Loc = ("devices", i)
        if device.id in ids:
            yield (*at, "id"), "config.duplicate_id", {"id": device.id}
        ids.add(device.id)
        for loc, message, fields in _line_settings(device, buses, framings):
            yield (*at, *loc), message, fields
        key = _endpoint_key(device)
        if key in endpoints:
            yield (*at, device.protocol), "config.same_address", {"other": endpoints[key]}
        endpoints[key] = device.id
        if device.profile not in profiles:
            yield (*at, "profile"), "config.unknown_profile", {
                "profile": device.profile, "known": ", ".join(profiles.ids())}
            continue
        profile = profiles.get(device.profile)
        if profile.protocol != device.protocol:
            yield (*at, device.protocol), "config.protocol_mismatch", {
                "profile": profile.id, "protocol": profile.protocol,
                "connection": device.protocol}
        for loc, message, fields in _point_refs(device, profile):
            yield (*at, *loc), message, fields


_SERIAL_SETTINGS = ("baud", "parity", "stopbits", "bytesize")


def _line_settings(device: DeviceConfig, buses: dict[str, tuple[str, ModbusSerial]],
                   framings: dict[tuple[str, int], tuple[str, str]]) -> Iterator[Found]:
    """Devices sharing one line (a serial port, or one host:port) must agree on how it
    is driven: the first device on it sets that."""
    endpoint = device.modbus
    if isinstance(endpoint, ModbusSerial):
        other, line = buses.setdefault(endpoint.serial, (device.id, endpoint))
        differ = [s for s in _SERIAL_SETTINGS if getattr(line, s) != getattr(endpoint, s)]
        if differ:
            def settings(e: ModbusSerial) -> str:
                return f"{e.baud} {e.bytesize}{e.parity}{e.stopbits}"

            yield ("modbus", differ[0]), "config.serial_mismatch", {
                "line": endpoint.serial, "other": other, "theirs": settings(line),
                "ours": settings(endpoint)}
    elif isinstance(endpoint, ModbusTcp):
        where = (endpoint.host, endpoint.port)
        other, framing = framings.setdefault(where, (device.id, endpoint.framing))
        if framing != endpoint.framing:
            yield ("modbus", "framing"), "config.framing_mismatch", {
                "endpoint": f"{endpoint.host}:{endpoint.port}", "other": other,
                "theirs": framing, "ours": endpoint.framing}


def _point_refs(device: DeviceConfig, profile: DeviceProfile) -> Iterator[Found]:
    point_ids = {p.id for p in profile.points}
    for j, point_id in enumerate(device.disabled_points):
        if point_id not in point_ids:
            yield ("disabled_points", j), "config.no_point", {"profile": profile.id,
                                                              "point": point_id}
    for j, point_id in enumerate(device.writable):
        if point_id not in point_ids:
            yield ("writable", j), "config.no_point", {"profile": profile.id, "point": point_id}
        elif profile.read_only:
            yield ("writable", j), "config.never_writable", {"equipment": profile.equipment}
        elif not profile.point(point_id).writable:
            yield ("writable", j), "config.not_writable", {"profile": profile.id,
                                                           "point": point_id}
    for group in device.poll:
        if group not in profile.poll_groups:
            yield ("poll", group), "config.no_poll_group", {
                "profile": profile.id, "group": group,
                "known": ", ".join(sorted(profile.poll_groups))}
    for field in ("byte_order", "max_registers"):
        if getattr(device, field) is not None and not isinstance(profile, ModbusProfile):
            yield (field,), "config.modbus_only", {"field": field}


def _endpoint_key(device: DeviceConfig) -> tuple[Any, ...]:
    if isinstance(device.modbus, ModbusTcp):
        return ("tcp", device.modbus.host, device.modbus.port, device.modbus.unit)
    if isinstance(device.modbus, ModbusSerial):
        return ("serial", device.modbus.serial, device.modbus.unit)
    assert device.bacnet is not None
    return ("bacnet", device.bacnet.instance)
