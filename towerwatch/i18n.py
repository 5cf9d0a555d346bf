"""Operator-facing messages in English and Simplified Chinese.

The language comes from ``--lang``, else ``TOWERWATCH_LANG``, else ``LANG``
(``zh*`` -> Chinese), else English.
"""

from __future__ import annotations

import os
from typing import Final, Literal

Lang = Literal["en", "zh"]

MESSAGES: Final[dict[str, tuple[str, str]]] = {
    "profiles.ok": ("{count} profile(s) valid: {ids}", "{count} 个设备模板校验通过：{ids}"),
    "profiles.errors": ("{count} problem(s) found:", "发现 {count} 处问题："),
    "profiles.unknown": ("unknown profile {id!r}; known profiles: {known}",
                         "未知设备模板 {id!r}；已有模板：{known}"),
    "profiles.none": ("no profile files found under {paths}", "在 {paths} 下没有找到设备模板文件"),
    "show.header": ("{id} v{version}: {manufacturer} {model} ({protocol}, {equipment})",
                    "{id} v{version}：{manufacturer} {model}（{protocol}，{equipment}）"),
    "show.points": ("Points", "点位"),
    "show.alarms": ("Alarms", "报警"),
    "col.id": ("id", "编号"),
    "col.name": ("name", "名称"),
    "col.address": ("address", "地址"),
    "col.type": ("type", "类型"),
    "col.unit": ("unit", "单位"),
    "col.poll": ("poll", "轮询"),
    "col.flags": ("flags", "标记"),
    "col.severity": ("severity", "级别"),
    "col.when": ("when", "条件"),
    "col.delay": ("on/off delay", "延时(起/止)"),
    "col.text": ("text", "报警文字"),
    "sim.serving": ("Simulated building {site!r} is serving {count} device(s):",
                    "模拟楼宇 {site!r} 正在提供 {count} 台设备："),
    "sim.scenario": ("Scenario: {count} event(s) over {span}", "场景：{count} 个事件，历时 {span}"),
    "sim.speed": ("Clock runs at {speed}x real time. Press Ctrl-C to stop.",
                  "模拟时钟为实际时间的 {speed} 倍。按 Ctrl-C 停止。"),
    "sim.stopped": ("Simulated building stopped.", "模拟楼宇已停止。"),
    "sim.event": ("scenario {text}", "场景事件 {text}"),
    "config.invalid": ("{file} is not valid:", "{file} 有错误："),
    "error.start": ("cannot start: {error}", "无法启动：{error}"),
    "edge.check_ok": ("{file}: valid. Site {site!r}, gateway {gateway!r}, {devices} device(s).",
                      "{file}：校验通过。站点 {site!r}，网关 {gateway!r}，共 {devices} 台设备。"),
    "edge.plan_bacnet": ("{device}: BACnet, {points} point(s), {cov} by COV, the rest by "
                         "read-property-multiple ({per} per request)",
                         "{device}：BACnet，{points} 个点位，{cov} 个用 COV 订阅，其余用 "
                         "ReadPropertyMultiple 轮询（每次 {per} 个）"),
    "edge.scan_found": ("{count} of {tried} unit id(s) answered.",
                        "{tried} 个从站地址中有 {count} 个应答。"),
    "edge.scan_found_bacnet": ("{count} BACnet device(s) answered.",
                               "{count} 台 BACnet 设备应答。"),
}


def language(explicit: str | None = None) -> Lang:
    for candidate in (explicit, os.environ.get("TOWERWATCH_LANG"), os.environ.get("LANG")):
        if candidate:
            return "zh" if candidate.lower().startswith("zh") else "en"
    return "en"


def t(key: str, lang: Lang, **fields: object) -> str:
    """The message ``key`` in ``lang`` with ``fields`` filled in."""
    en, zh = MESSAGES[key]
    return (zh if lang == "zh" else en).format(**fields)
