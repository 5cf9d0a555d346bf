"""The fixed unit vocabulary of point values, with display symbols in English and Chinese."""

from __future__ import annotations

from typing import Final

#: unit id -> (English display, Chinese display)
UNITS: Final[dict[str, tuple[str, str]]] = {
    "none": ("", ""),
    "percent": ("%", "%"),
    "count": ("", "次"),
    "floor": ("floor", "层"),
    "s": ("s", "秒"),
    "min": ("min", "分钟"),
    "h": ("h", "小时"),
    "m": ("m", "米"),
    "mm": ("mm", "毫米"),
    "m/s": ("m/s", "米/秒"),
    "rpm": ("rpm", "转/分"),
    "Pa": ("Pa", "帕"),
    "kPa": ("kPa", "千帕"),
    "MPa": ("MPa", "兆帕"),
    "bar": ("bar", "巴"),
    "L": ("L", "升"),
    "m3": ("m³", "立方米"),
    "L/s": ("L/s", "升/秒"),
    "m3/h": ("m³/h", "立方米/小时"),
    "V": ("V", "伏"),
    "A": ("A", "安"),
    "W": ("W", "瓦"),
    "kW": ("kW", "千瓦"),
    "kVA": ("kVA", "千伏安"),
    "kvar": ("kvar", "千乏"),
    "kWh": ("kWh", "千瓦时"),
    "kvarh": ("kvarh", "千乏时"),
    "Hz": ("Hz", "赫兹"),
    "pf": ("", ""),
    "degC": ("°C", "摄氏度"),
    "ohm": ("Ω", "欧"),
}


def is_known_unit(unit: str) -> bool:
    return unit in UNITS
