"""Plain-text tables of a profile, for ``towerwatch profiles show``."""

from __future__ import annotations

from collections.abc import Sequence

from device_profiles.schema import AlarmRule, BacnetPoint, DeviceProfile, ModbusPoint, ModbusProfile
from device_profiles.units import UNITS
from towerwatch.i18n import Lang, t


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell (East Asian wide characters count double)."""
    widths = [max([_width(h)] + [_width(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c + " " * (w - _width(c)) for c, w in zip(cells, widths, strict=True))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers).rstrip(), rule, *(line(r).rstrip() for r in rows)])


def _width(text: str) -> int:
    return sum(2 if ord(ch) >= 0x1100 and not 0xFF61 <= ord(ch) <= 0xFFDC else 1 for ch in text)


def _address(point: ModbusPoint | BacnetPoint, profile: DeviceProfile) -> tuple[str, str]:
    if isinstance(point, ModbusPoint):
        assert isinstance(profile, ModbusProfile)
        where = f"{point.table} {point.address}"
        if point.width > 1:
            where += f"-{point.address + point.width - 1}"
        if point.bit is not None:
            where += f".{point.bit}"
        kind = point.type.value
        if point.type.width and point.type.width > 1:
            kind += f" {profile.byte_order_of(point)}"
        return where, kind
    prop = "" if point.prop == "present-value" else f" {point.prop}"
    return point.object + prop, point.kind.value


def _flags(point: ModbusPoint | BacnetPoint) -> str:
    flags = [point.kind.value]
    if point.enum:
        flags.append(f"enum={point.enum}")
    if point.bits:
        flags.append(f"bits={point.bits}")
    if isinstance(point, ModbusPoint) and (point.scale != 1 or point.offset != 0):
        flags.append(f"x{point.scale:g}" + (f"{point.offset:+g}" if point.offset else ""))
    if isinstance(point, BacnetPoint) and point.cov:
        flags.append("cov")
    if point.writable:
        flags.append("writable")
    return " ".join(flags)


def _when(alarm: AlarmRule) -> str:
    cond = alarm.when
    operand = cond.operand
    if cond.operator == "stale":
        return f"{cond.point} stale"
    if cond.operator == "bit":
        return f"{cond.point} bit {operand}"
    if isinstance(operand, list):
        operand = "[" + ", ".join(str(v) for v in operand) + "]"
    return f"{cond.point} {cond.operator} {operand}"


def render_profile(profile: DeviceProfile, lang: Lang) -> str:
    header = t("show.header", lang, id=profile.id, version=profile.version,
               manufacturer=profile.manufacturer, model=profile.model,
               protocol=profile.protocol, equipment=profile.equipment)
    point_rows = []
    for point in profile.points:
        where, kind = _address(point, profile)
        unit = UNITS[point.unit][1 if lang == "zh" else 0] if point.unit != "none" else ""
        name = point.name.zh if lang == "zh" else point.name.en
        poll = f"{point.poll} {profile.poll_groups.get(point.poll, 0):g}s"
        point_rows.append([point.id, name, where, kind, unit, poll, _flags(point)])
    alarm_rows = [[a.id, a.severity.value, _when(a), f"{a.on_delay:g}s/{a.off_delay:g}s",
                   a.text.zh if lang == "zh" else a.text.en] for a in profile.alarms]
    cols = [t(f"col.{c}", lang) for c in ("id", "name", "address", "type", "unit", "poll",
                                          "flags")]
    alarm_cols = [t(f"col.{c}", lang) for c in ("id", "severity", "when", "delay", "text")]
    parts = [header, "", t("show.points", lang), table(cols, point_rows)]
    if alarm_rows:
        parts += ["", t("show.alarms", lang), table(alarm_cols, alarm_rows)]
    return "\n".join(parts)
