"""What the gateway's status page shows: a snapshot (:class:`StatusView`), the same as
JSON (:func:`status_dict`), and the page itself in English or Chinese.

The page is for an installer in a plant room, on a phone: one self-contained HTML
document (inline CSS, no JavaScript) that reloads itself every 5 s, active alarms
first, then the devices with their state colour and last values. Every string that
comes from a config, a profile or a device is escaped.

Times in the view are UTC epoch milliseconds, as on the wire; ``now`` is the time the
snapshot was taken, and every age on the page is relative to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Any, Final, Literal
from urllib.parse import urlencode

from device_profiles.units import UNITS
from towerwatch.i18n import Lang

__all__ = [
    "AlarmView",
    "DeviceView",
    "MqttView",
    "PointView",
    "StatusView",
    "format_duration",
    "render_html",
    "status_dict",
]

Quality = Literal["good", "stale", "bad"]
Severity = Literal["emergency", "high", "medium", "low"]
PointValue = float | int | bool | str | None

REFRESH_SECONDS: Final = 5
MAX_VALUES_LISTED: Final = 600
"""Above this many points in all, values are shown for one chosen device at a time."""
_QUALITIES: Final = ("good", "stale", "bad")
_SEVERITIES: Final = ("emergency", "high", "medium", "low")


@dataclass(frozen=True)
class PointView:
    id: str
    name_en: str
    name_zh: str
    value: PointValue
    unit: str = "none"
    """A unit id of the profile vocabulary (shown as its symbol), or free text."""
    quality: Quality = "good"
    ts: int | None = None
    """When the value was read (epoch ms)."""

    def __post_init__(self) -> None:
        if self.quality not in _QUALITIES:
            raise ValueError(f"point {self.id}: quality {self.quality!r} not in {_QUALITIES}")


@dataclass(frozen=True)
class AlarmView:
    device: str
    id: str
    severity: Severity
    text_en: str
    text_zh: str
    since: int
    """When the alarm became active (epoch ms)."""
    value: PointValue = None

    def __post_init__(self) -> None:
        if self.severity not in _SEVERITIES:
            raise ValueError(f"alarm {self.id}: severity {self.severity!r} not in {_SEVERITIES}")


@dataclass(frozen=True)
class DeviceView:
    id: str
    name: str
    location: str
    profile: str
    protocol: str
    endpoint: str
    online: bool
    since: int | None = None
    """When the device last went online or offline (epoch ms)."""
    last_error: str | None = None
    cycles: int = 0
    lateness_p99: float | None = None
    """Seconds, over recent cycles."""
    enabled: bool = True
    points: tuple[PointView, ...] = ()


@dataclass(frozen=True)
class MqttView:
    connected: bool
    broker: str
    since: int | None = None
    """When the connection was last made or lost (epoch ms)."""
    last_error: str | None = None


@dataclass(frozen=True)
class StatusView:
    gateway: str
    site: str
    version: str
    boot_id: str
    uptime: float
    """Seconds since the daemon started."""
    now: int
    """When this snapshot was taken (epoch ms)."""
    mqtt: MqttView
    outbox_depth: int = 0
    outbox_capacity: int = 0
    outbox_dropped: int = 0
    devices: tuple[DeviceView, ...] = ()
    alarms: tuple[AlarmView, ...] = ()

    def __post_init__(self) -> None:
        if self.outbox_depth < 0 or self.outbox_capacity < 0 or self.outbox_dropped < 0:
            raise ValueError("outbox figures are never negative")


# -- JSON ---------------------------------------------------------------------------------
def status_dict(view: StatusView) -> dict[str, Any]:
    """The view as JSON-ready data (non-finite floats become strings)."""
    data = _plain(view)
    data["mqtt"] = _plain(view.mqtt)
    data["alarms"] = [_plain(alarm) for alarm in view.alarms]
    data["devices"] = [{**_plain(device), "points": [_plain(p) for p in device.points]}
                       for device in view.devices]
    return data


def _plain(item: object) -> dict[str, Any]:
    return {key: str(value) if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in vars(item).items()}


# -- text ---------------------------------------------------------------------------------
_T: Final[dict[str, tuple[str, str]]] = {
    "title": ("Gateway status", "网关状态"),
    "site": ("Site", "站点"),
    "version": ("Version", "版本"),
    "uptime": ("Up", "已运行"),
    "boot": ("Boot", "启动编号"),
    "mqtt": ("Broker", "消息服务器"),
    "connected": ("connected", "已连接"),
    "disconnected": ("disconnected", "已断开"),
    "outbox": ("Outbox", "待发队列"),
    "dropped": ("dropped", "已丢弃"),
    "alarms": ("Active alarms", "当前报警"),
    "no_alarms": ("No active alarms", "无报警"),
    "devices": ("Devices", "设备"),
    "online_count": ("{n} of {m} online", "{n}/{m} 台在线"),
    "state": ("State", "状态"),
    "device": ("Device", "设备"),
    "location": ("Location", "位置"),
    "endpoint": ("Address", "地址"),
    "since": ("For", "持续"),
    "began": ("Since", "发生"),
    "all_devices": ("all devices", "全部设备"),
    "pick_device": ("Choose a device above to see its values.", "点击上方设备名称查看数据。"),
    "cycles": ("Cycles", "轮询次数"),
    "lateness": ("Late p99", "延迟p99"),
    "error": ("Last error", "最近错误"),
    "online": ("online", "在线"),
    "offline": ("offline", "离线"),
    "disabled": ("disabled", "已停用"),
    "values": ("Values", "数据"),
    "no_values": ("no values yet", "暂无数据"),
    "point": ("Point", "点位"),
    "value": ("Value", "数值"),
    "quality": ("Quality", "质量"),
    "updated": ("Updated", "更新"),
    "alarm": ("Alarm", "报警"),
    "severity": ("Severity", "级别"),
    "good": ("good", "正常"),
    "stale": ("stale", "过期"),
    "bad": ("bad", "故障"),
    "emergency": ("emergency", "紧急"),
    "high": ("high", "高"),
    "medium": ("medium", "中"),
    "low": ("low", "低"),
    "yes": ("yes", "是"),
    "no": ("no", "否"),
    "ago": ("{d} ago", "{d}前"),
    "refresh": ("Refreshes every {s} s", "每 {s} 秒自动刷新"),
    "other_lang": ("中文", "English"),
}

_UNITS_DHMS: Final = {"en": ("d", "h", "min", "s"), "zh": ("天", "小时", "分", "秒")}


def _t(key: str, lang: Lang, **fields: object) -> str:
    en, zh = _T[key]
    return (zh if lang == "zh" else en).format(**fields)


def format_duration(seconds: float, lang: Lang = "en") -> str:
    """``"3 d 4 h"``, ``"2 min 5 s"``, ``"12 s"`` (``"3天4小时"`` in Chinese); two units at most."""
    units = _UNITS_DHMS[lang]
    total = max(0, int(seconds))
    amounts = (total // 86400, total % 86400 // 3600, total % 3600 // 60, total % 60)
    first = next((i for i, n in enumerate(amounts) if n), 3)
    shown = [(amounts[first], units[first])]
    if first < 3 and amounts[first + 1]:
        shown.append((amounts[first + 1], units[first + 1]))
    sep = "" if lang == "zh" else " "
    return sep.join(f"{n}{sep}{u}" for n, u in shown)


def _value(value: PointValue, unit: str, lang: Lang) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return _t("yes" if value else "no", lang)
    if isinstance(value, float):
        text = f"{value:.6g}" if math.isfinite(value) else str(value)
    else:
        text = str(value)
    symbol = UNITS[unit][lang == "zh"] if unit in UNITS else unit
    return f"{text} {symbol}" if symbol else text


def _ago(view: StatusView, ts: int | None, lang: Lang) -> str:
    if ts is None:
        return "–"
    return _t("ago", lang, d=format_duration((view.now - ts) / 1000, lang))


# -- page ---------------------------------------------------------------------------------
_CSS: Final = """
body{font:15px/1.4 system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;
margin:0;padding:12px;color:#1f2328;background:#f6f8fa}
h1{font-size:1.2em;margin:0 0 4px}h2{font-size:1.05em;margin:18px 0 6px}
.meta{color:#57606a;font-size:.9em}.meta span{margin-right:12px;white-space:nowrap}
.box{background:#fff;border:1px solid #d0d7de;border-radius:6px;overflow-x:auto}
table{border-collapse:collapse;width:100%}th,td{padding:6px 8px;text-align:left;
border-bottom:1px solid #eaeef2;vertical-align:top}th{font-size:.85em;color:#57606a}
.dot{display:inline-block;width:.7em;height:.7em;border-radius:50%;margin-right:4px}
.on{color:#1a7f37}.on .dot{background:#1a7f37}.off{color:#cf222e;font-weight:600}
.off .dot{background:#cf222e}.dis{color:#6e7781}.dis .dot{background:#afb8c1}
.q-stale{background:#fff8c5}.q-bad{background:#ffebe9;color:#cf222e}
.sev{padding:1px 6px;border-radius:4px;color:#fff;font-size:.85em;white-space:nowrap}
.sev-emergency{background:#82071e}.sev-high{background:#cf222e}
.sev-medium{background:#bc4c00}.sev-low{background:#0969da}
.err{color:#cf222e;font-size:.85em}.num{text-align:right;white-space:nowrap}
h3{font-size:1em;margin:14px 0 4px}.ok{color:#1a7f37}.warn{color:#cf222e;font-weight:600}
footer{margin-top:18px;color:#57606a;font-size:.85em}a{color:#0969da}
"""


def render_html(view: StatusView, lang: Lang = "en", *, device: str | None = None) -> str:
    """The whole status page as one HTML document.

    Values are listed for every device (up to :data:`MAX_VALUES_LISTED` in all), or only
    for ``device``: the device names link to ``?device=ID``, and as the selection is in
    the URL, the 5 s reload keeps it.
    """
    e = escape
    chosen = [d for d in view.devices if d.id == device]
    other: Lang = "zh" if lang == "en" else "en"
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">',
        f"<title>{e(view.gateway)} · {e(_t('title', lang))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(view.gateway)} <small>· {e(_t('title', lang))}</small></h1>",
        _header(view, lang),
        f"<h2>{e(_t('alarms', lang))} ({len(view.alarms)})</h2>",
        _alarms(view, lang),
        _devices(view, lang),
        f"<h2>{e(_t('values', lang))}</h2>",
        f'<p><a href="{_link(lang)}">{e(_t("all_devices", lang))}</a></p>' if chosen else "",
        *_values(view, chosen, lang),
        f"<footer>{e(_t('refresh', lang, s=REFRESH_SECONDS))} · "
        f'<a href="{_link(other, device if chosen else None)}">{e(_t("other_lang", lang))}</a>'
        ' · <a href="/status.json">status.json</a> · <a href="/metrics">metrics</a> · '
        '<a href="/healthz">healthz</a></footer>',
        "</body></html>",
    ]
    return "\n".join(parts)


def _values(view: StatusView, chosen: list[DeviceView], lang: Lang) -> list[str]:
    if not chosen and sum(len(d.points) for d in view.devices) > MAX_VALUES_LISTED:
        return [f'<p class="meta">{escape(_t("pick_device", lang))}</p>']
    return [_points(view, d, lang) for d in (chosen or view.devices)]


def _link(lang: Lang, device: str | None = None) -> str:
    query = {"lang": lang} if device is None else {"lang": lang, "device": device}
    return escape("?" + urlencode(query))


def _header(view: StatusView, lang: Lang) -> str:
    e = escape
    mqtt = view.mqtt
    state = "connected" if mqtt.connected else "disconnected"
    since = f" {e(format_duration((view.now - mqtt.since) / 1000, lang))}" if mqtt.since else ""
    err = (f' <span class="err">{e(mqtt.last_error)}</span>'
           if mqtt.last_error and not mqtt.connected else "")
    fill = f" / {view.outbox_capacity}" if view.outbox_capacity else ""
    full = bool(view.outbox_capacity) and view.outbox_depth > 0.9 * view.outbox_capacity
    return (
        '<div class="meta">'
        f"<span>{e(_t('site', lang))}: <b>{e(view.site)}</b></span>"
        f"<span>{e(_t('version', lang))}: {e(view.version)}</span>"
        f"<span>{e(_t('uptime', lang))}: {e(format_duration(view.uptime, lang))}</span>"
        f"<span>{e(_t('boot', lang))}: {e(view.boot_id)}</span></div>"
        '<div class="meta">'
        f"<span>{e(_t('mqtt', lang))} {e(mqtt.broker)}: "
        f'<b class="{"ok" if mqtt.connected else "warn"}">{e(_t(state, lang))}</b>{since}'
        f"{err}</span>"
        f"<span>{e(_t('outbox', lang))}: <b class=\"{'warn' if full else ''}\">"
        f"{view.outbox_depth}{fill}</b>, {e(_t('dropped', lang))} {view.outbox_dropped}"
        "</span></div>"
    )


def _alarms(view: StatusView, lang: Lang) -> str:
    e = escape
    if not view.alarms:
        return f'<p class="ok">{e(_t("no_alarms", lang))}</p>'
    names = {d.id: d.name or d.id for d in view.devices}
    rows = sorted(view.alarms, key=lambda a: (_SEVERITIES.index(a.severity), -a.since))
    body = "".join(
        f'<tr><td><span class="sev sev-{a.severity}">{e(_t(a.severity, lang))}</span></td>'
        f"<td>{e(a.text_zh if lang == 'zh' else a.text_en)}</td>"
        f"<td>{e(names.get(a.device, a.device))}</td>"
        f"<td>{e(_ago(view, a.since, lang))}</td></tr>"
        for a in rows
    )
    head = "".join(f"<th>{e(_t(k, lang))}</th>" for k in ("severity", "alarm", "device", "began"))
    return f'<div class="box"><table><tr>{head}</tr>{body}</table></div>'


def _state(device: DeviceView) -> tuple[str, str]:
    if not device.enabled:
        return "dis", "disabled"
    return ("on", "online") if device.online else ("off", "offline")


def _devices(view: StatusView, lang: Lang) -> str:
    e = escape
    enabled = [d for d in view.devices if d.enabled]
    count = _t("online_count", lang, n=sum(d.online for d in enabled), m=len(enabled))
    head = "".join(f"<th>{e(_t(k, lang))}</th>" for k in
                   ("state", "device", "location", "endpoint", "since", "cycles", "lateness",
                    "error"))
    rows = []
    for d in view.devices:
        css, state = _state(d)
        late = "–" if d.lateness_p99 is None else f"{d.lateness_p99 * 1000:.0f} ms"
        since = "–" if d.since is None else format_duration((view.now - d.since) / 1000, lang)
        rows.append(
            f'<tr><td class="{css}"><span class="dot"></span>{e(_t(state, lang))}</td>'
            f'<td><a href="{_link(lang, d.id)}"><b>{e(d.name or d.id)}</b></a><br>'
            f"<small>{e(d.id)} · {e(d.profile)}</small></td>"
            f"<td>{e(d.location)}</td><td>{e(d.protocol)} {e(d.endpoint)}</td>"
            f"<td>{e(since)}</td><td class=\"num\">{d.cycles}</td>"
            f'<td class="num">{e(late)}</td>'
            f'<td class="err">{e(d.last_error or "")}</td></tr>'
        )
    return (f"<h2>{e(_t('devices', lang))} <small>({e(count)})</small></h2>"
            f'<div class="box"><table><tr>{head}</tr>{"".join(rows)}</table></div>')


def _points(view: StatusView, device: DeviceView, lang: Lang) -> str:
    e = escape
    css, _ = _state(device)
    title = (f'<h3 id="v-{e(device.id)}"><span class="{css}"><span class="dot"></span></span>'
             f"{e(device.name or device.id)} <small>{e(device.id)}</small></h3>")
    if not device.points:
        return f'{title}<p class="meta">{e(_t("no_values", lang))}</p>'
    head = "".join(f"<th>{e(_t(k, lang))}</th>" for k in ("point", "value", "quality", "updated"))
    rows = "".join(
        f'<tr class="q-{p.quality}"><td>{e(p.name_zh if lang == "zh" else p.name_en)}'
        f"<br><small>{e(p.id)}</small></td>"
        f'<td class="num">{e(_value(p.value, p.unit, lang))}</td>'
        f"<td>{e(_t(p.quality, lang))}</td><td>{e(_ago(view, p.ts, lang))}</td></tr>"
        for p in device.points
    )
    return f'{title}<div class="box"><table><tr>{head}</tr>{rows}</table></div>'
