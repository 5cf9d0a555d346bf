"""A snapshot of the running gateway for the status page and /healthz."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from edge.config import Bacnet, DeviceConfig, ModbusSerial, ModbusTcp
from edge.status_page import AlarmView, DeviceView, MqttView, PointView, StatusView

if TYPE_CHECKING:
    from edge.daemon import Gateway


def endpoint_text(config: DeviceConfig) -> str:
    endpoint = config.modbus or config.bacnet
    if isinstance(endpoint, ModbusTcp):
        rtu = " (RTU)" if endpoint.framing == "rtu" else ""
        return f"modbus://{endpoint.host}:{endpoint.port}/{endpoint.unit}{rtu}"
    if isinstance(endpoint, ModbusSerial):
        return f"rtu://{endpoint.serial}/{endpoint.unit} {endpoint.baud} {endpoint.parity}"
    assert isinstance(endpoint, Bacnet)
    return f"bacnet://{endpoint.address} device {endpoint.instance}"


def status_view(gateway: Gateway) -> StatusView:
    cfg = gateway.config
    now = time.time()
    devices = []
    alarms = []
    for device in gateway.devices.values():
        points = []
        names = {p.id: p for p in device.profile.points}
        for point_id, state in device.points.snapshot().items():
            point = names[point_id]
            value = state.value
            points.append(PointView(point_id, point.name.en, point.name.zh, value, point.unit,
                                    state.quality,
                                    None if state.ts is None else int(state.ts * 1000)))
        loc = device.config.location
        location = " / ".join(x for x in (loc.building, loc.floor, loc.room) if x)
        devices.append(DeviceView(
            id=device.id, name=device.config.name or device.id, location=location,
            profile=device.profile.id, protocol=device.profile.protocol,
            endpoint=endpoint_text(device.config), online=bool(device.online),
            since=int(device.since * 1000), last_error=device.last_error,
            cycles=gateway.metrics.cycles(device.id),
            lateness_p99=gateway.metrics.lateness_p99(device.id), points=tuple(points)))
        rules = {a.id: a for a in device.profile.alarms}
        for alarm_id, since in device.active_alarms.items():
            rule = rules.get(alarm_id)
            alarms.append(AlarmView(
                device=device.id, id=alarm_id,
                severity=rule.severity.value if rule else "medium",
                text_en=rule.text.en if rule else "Device not responding",
                text_zh=rule.text.zh if rule else "设备通信中断",
                since=int(since * 1000)))
    publisher = gateway.publisher
    mqtt = MqttView(connected=publisher.connected, broker=cfg.mqtt.url,
                    since=None if publisher.since is None else int(publisher.since * 1000),
                    last_error=publisher.last_error)
    return StatusView(
        gateway=cfg.gateway, site=cfg.site, version=gateway.builder.version,
        boot_id=gateway.builder.boot_id, uptime=now - gateway.started, now=int(now * 1000),
        mqtt=mqtt, outbox_depth=gateway.outbox.depth(),
        outbox_capacity=cfg.outbox.max_messages, outbox_dropped=gateway.outbox.dropped,
        devices=tuple(devices), alarms=tuple(alarms))
