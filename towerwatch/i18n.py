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
    "config.duplicate_id": ("device id {id!r} is used twice", "设备编号 {id!r} 重复使用"),
    "config.unknown_profile": ("unknown profile {profile!r}; known: {known}",
                               "未知设备模板 {profile!r}；已有模板：{known}"),
    "config.protocol_mismatch": (
        "profile {profile!r} is {protocol}, but the device is connected by {connection}",
        "设备模板 {profile!r} 使用 {protocol} 协议，但该设备配置的连接方式是 {connection}"),
    "config.no_point": ("profile {profile!r} has no point {point!r}",
                        "设备模板 {profile!r} 中没有点位 {point!r}"),
    "config.never_writable": ("{equipment} points are never writable",
                              "{equipment} 类设备的点位一律不可写"),
    "config.not_writable": ("point {point!r} is not writable in {profile!r}",
                            "点位 {point!r} 在设备模板 {profile!r} 中不可写"),
    "config.no_poll_group": ("profile {profile!r} has no poll group {group!r} (known: {known})",
                             "设备模板 {profile!r} 中没有轮询组 {group!r}（已有：{known}）"),
    "config.modbus_only": ("{field} applies to Modbus devices only",
                           "{field} 仅适用于 Modbus 设备"),
    "config.same_address": ("same address as device {other!r}", "与设备 {other!r} 的地址相同"),
    "config.serial_mismatch": (
        "serial line {line} runs at {theirs} (device {other!r}), here {ours}",
        "串口 {line} 的参数为 {theirs}（设备 {other!r}），此处却为 {ours}"),
    "config.framing_mismatch": (
        "{endpoint} is read with {theirs} framing (device {other!r}), here {ours}",
        "{endpoint} 按 {theirs} 帧格式读取（设备 {other!r}），此处却为 {ours}"),
    "config.inline_password": (
        "mqtt.password must not be written in the config; use mqtt.password_file or "
        "mqtt.password_env", "配置文件中不得写入 mqtt.password；请改用 mqtt.password_file 或 "
        "mqtt.password_env"),
    "error.start": ("cannot start: {error}", "无法启动：{error}"),
    "error.unreachable": ("cannot reach {target}: {error}", "无法连接 {target}：{error}"),
    "error.target": ("{target!r} is not HOST or HOST:PORT", "{target!r} 不是 HOST 或 HOST:PORT"),
    "cloud.migrated": ("Database migrated: {before} -> {after}.",
                       "数据库已迁移：{before} -> {after}。"),
    "cloud.password": ("Password: ", "密码："),
    "cloud.password_again": ("Password again: ", "再次输入密码："),
    "cloud.password_mismatch": ("The passwords differ; nothing created.",
                                "两次输入的密码不一致，未创建用户。"),
    "cloud.admin_created": ("Administrator {user!r} created.", "管理员 {user!r} 已创建。"),
    "cloud.api_ready": ("API listening on {url} (OpenAPI: {url}/api/v1/docs)",
                        "API 已在 {url} 监听（接口文档：{url}/api/v1/docs）"),
    "cloud.ingest_ready": ("{workers} ingest worker(s) reading from {broker}",
                           "{workers} 个接入进程正在从 {broker} 接收数据"),
    "cloud.metrics_ready": ("Prometheus metrics on {url}/metrics",
                            "Prometheus 指标地址：{url}/metrics"),
    "demo.ready": ("Towerwatch demo is running: {devices} simulated devices -> edge gateway "
                   "-> MQTT -> cloud.",
                   "Towerwatch 演示已启动：{devices} 台模拟设备 -> 边缘网关 -> MQTT -> 云端。"),
    "demo.api": ("  API:          {url}/api/v1/docs", "  API：          {url}/api/v1/docs"),
    "demo.login": ("  Login:        {user} / {password}   (created for this run)",
                   "  登录：         {user} / {password}   （本次运行生成）"),
    "demo.edge": ("  Edge status:  {url}/", "  网关状态页：   {url}/?lang=zh"),
    "demo.broker": ("  MQTT broker:  {url}", "  MQTT 服务器：  {url}"),
    "demo.try": ("  Try: curl -s -X POST {url}/api/v1/auth/login -H 'content-type: "
                 "application/json' -d '{{\"username\":\"demo\",\"password\":\"...\"}}'",
                 "  试一试：curl -s -X POST {url}/api/v1/auth/login -H 'content-type: "
                 "application/json' -d '{{\"username\":\"demo\",\"password\":\"...\"}}'"),
    "demo.stop": ("Press Ctrl-C to stop.", "按 Ctrl-C 停止。"),
    "demo.stopped": ("Demo stopped.", "演示已停止。"),
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
