"""The gateway's HTTP port over a real socket: routes, errors, limits, page, metrics."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from edge.errors import DeviceException, DeviceTimeout, DeviceUnreachable, EdgeError
from edge.http import HttpServer, check_health, parse_listen, pick_language
from edge.metrics import GatewayMetrics
from edge.status_page import (
    MAX_VALUES_LISTED,
    AlarmView,
    DeviceView,
    MqttView,
    PointView,
    StatusView,
    format_duration,
    render_html,
    status_dict,
)

NOW = 1_760_000_000_000  # epoch ms


def make_view(**changes: Any) -> StatusView:
    booster = DeviceView(
        id="booster", name="Booster <script>alert('x')</script>", location="T1 / B2 / Pump room",
        profile="booster-pumpset-modbus", protocol="modbus", endpoint="10.0.0.5:502 unit 1",
        online=True, since=NOW - 65_000, cycles=42, lateness_p99=0.012,
        points=(
            PointView("outlet_pressure", "Outlet pressure", "出口压力", 4.25, "bar", "good",
                      NOW - 2_000),
            PointView("running", "Running", "运行", True, "none", "stale", NOW - 60_000),
            PointView("fault_code", "Fault & code", "故障代码", None, "none", "bad", None),
        ))
    lift = DeviceView(
        id="lift-1", name="Passenger lift 1", location="T1 / R", profile="elevator-ctl-modbus",
        protocol="modbus", endpoint="10.0.0.6:502 unit 1", online=False, since=NOW - 300_000,
        last_error="timeout after 0.5 s <no answer>", cycles=3)
    spare = DeviceView(id="spare", name="Spare meter", location="", profile="water-meter-modbus",
                       protocol="modbus", endpoint="/dev/ttyUSB0 unit 9", online=False,
                       enabled=False)
    view = StatusView(
        gateway="gw-1", site="demo-tower", version="0.1.0", boot_id="boot-abc", uptime=3725.0,
        now=NOW, mqtt=MqttView(True, "mqtts://broker.example:8883", since=NOW - 3_600_000),
        outbox_depth=12, outbox_capacity=1000, outbox_dropped=0, devices=(booster, lift, spare),
        alarms=(
            AlarmView("booster", "low_pressure", "medium", "Low outlet pressure", "出口压力低",
                      NOW - 30_000, 1.2),
            AlarmView("lift-1", "trapped", "emergency", "Passenger trapped", "困人", NOW - 5_000),
        ))
    return replace(view, **changes)


class Gateway:
    """What the server's callables read: a view the test can change."""

    def __init__(self) -> None:
        self.view = make_view()
        self.calls = 0

    def status(self) -> StatusView:
        self.calls += 1
        return self.view

    def health(self) -> tuple[bool, dict[str, Any]]:
        return check_health(self.view)


@pytest.fixture
def gateway() -> Gateway:
    return Gateway()


@pytest.fixture
def metrics() -> GatewayMetrics:
    return GatewayMetrics()


@pytest.fixture
async def server(gateway: Gateway, metrics: GatewayMetrics) -> AsyncIterator[HttpServer]:
    http = HttpServer("127.0.0.1:0", health=gateway.health, metrics=metrics,
                      status=gateway.status)
    await http.start()
    try:
        yield http
    finally:
        await http.stop()


class Reply:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.status = int(lines[0].split(" ")[1])
        self.headers = {k.lower(): v.strip() for k, _, v in
                        (line.partition(":") for line in lines[1:])}

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        assert self.headers["content-type"] == "application/json; charset=utf-8"
        return json.loads(self.body)


async def send(port: int, raw: bytes) -> Reply:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    return Reply(data)


async def get(port: int, target: str, *headers: str, method: str = "GET") -> Reply:
    head = "".join(f"{h}\r\n" for h in ("Host: gw", *headers))
    return await send(port, f"{method} {target} HTTP/1.1\r\n{head}\r\n".encode())


# -- routes ---------------------------------------------------------------------------------
async def test_healthz_ok(server: HttpServer) -> None:
    reply = await get(server.port, "/healthz")
    assert reply.status == 200
    assert reply.headers["connection"] == "close"
    data = reply.json()
    assert data["status"] == "ok"
    assert data["reasons"] == []
    assert (data["gateway"], data["devices_online"], data["devices"]) == ("gw-1", 1, 2)
    assert int(reply.headers["content-length"]) == len(reply.body)


async def test_healthz_unhealthy_names_every_reason(server: HttpServer, gateway: Gateway) -> None:
    gateway.view = make_view(
        mqtt=MqttView(False, "mqtts://b:8883", since=NOW - 120_000, last_error="refused"),
        outbox_depth=950,
        devices=tuple(replace(d, online=False) for d in make_view().devices))
    reply = await get(server.port, "/healthz")
    assert reply.status == 503
    data = reply.json()
    assert data["status"] == "unhealthy"
    assert data["reasons"] == ["MQTT disconnected for 120 s",
                               "outbox 950/1000 is more than 90% full",
                               "no device polled successfully"]


async def test_metrics_after_updates(server: HttpServer, metrics: GatewayMetrics) -> None:
    metrics.set_info(site="demo-tower", gateway="gw-1", version="0.1.0", boot_id="b1")
    metrics.cycle("booster", 0.004)
    metrics.cycle("booster", 0.3)
    metrics.request("booster", 0.002)
    metrics.device_error(DeviceTimeout("lift-1", "no answer"))
    metrics.device_error(DeviceUnreachable("lift-1", "refused"))
    metrics.device_error(DeviceException("lift-1", "illegal address", 2))
    metrics.device_online("booster", True)
    metrics.device_online("lift-1", False)
    metrics.points_read(40)
    metrics.points_published(7)
    metrics.messages_published(3)
    metrics.outbox(12, 5)
    metrics.mqtt(True, 2)
    metrics.event("alarm")
    metrics.command("write", "refused")
    reply = await get(server.port, "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.text
    expected = [
        'towerwatch_edge_cycles_total{device="booster"} 2.0',
        'towerwatch_edge_cycle_lateness_seconds_bucket{le="0.005"} 1.0',
        'towerwatch_edge_cycle_lateness_seconds_count 2.0',
        'towerwatch_edge_request_duration_seconds_count{device="booster"} 1.0',
        'towerwatch_edge_request_errors_total{device="lift-1",kind="timeout"} 1.0',
        'towerwatch_edge_request_errors_total{device="lift-1",kind="unreachable"} 1.0',
        'towerwatch_edge_request_errors_total{device="lift-1",kind="exception"} 1.0',
        'towerwatch_edge_device_online{device="booster"} 1.0',
        'towerwatch_edge_device_online{device="lift-1"} 0.0',
        "towerwatch_edge_points_read_total 40.0",
        "towerwatch_edge_points_published_total 7.0",
        "towerwatch_edge_messages_published_total 3.0",
        "towerwatch_edge_outbox_depth 12.0",
        "towerwatch_edge_outbox_dropped_total 5.0",
        "towerwatch_edge_mqtt_connected 1.0",
        "towerwatch_edge_mqtt_reconnects_total 2.0",
        'towerwatch_edge_events_published_total{kind="alarm"} 1.0',
        'towerwatch_edge_commands_total{op="write",result="refused"} 1.0',
        'towerwatch_edge_info{boot_id="b1",gateway="gw-1",site="demo-tower",version="0.1.0"} 1.0',
    ]
    missing = [line for line in expected if line not in text.splitlines()]
    assert not missing, text


async def test_status_json_is_the_view(server: HttpServer, gateway: Gateway) -> None:
    reply = await get(server.port, "/status.json")
    assert reply.status == 200
    data = reply.json()
    assert data == json.loads(json.dumps(status_dict(gateway.view)))
    assert [d["id"] for d in data["devices"]] == ["booster", "lift-1", "spare"]
    assert data["devices"][0]["points"][0]["value"] == 4.25
    assert data["alarms"][1]["text_zh"] == "困人"


async def test_page_lists_devices_escaped(server: HttpServer) -> None:
    reply = await get(server.port, "/")
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src" not in reply.headers["content-security-policy"]
    html = reply.text
    assert '<meta http-equiv="refresh" content="5">' in html
    assert "<script" not in html
    assert "Booster &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "timeout after 0.5 s &lt;no answer&gt;" in html
    assert "Fault &amp; code" in html
    rows = re.findall(r'<tr><td class="(on|off|dis)">', html)
    assert rows == ["on", "off", "dis"]
    assert "4.25 bar" in html
    assert "Gateway status" in html


async def test_page_alarms_first_most_severe_first(server: HttpServer) -> None:
    html = (await get(server.port, "/")).text
    alarms, devices = html.index("Active alarms"), html.index("Devices")
    trapped, low = html.index("Passenger trapped"), html.index("Low outlet pressure")
    assert alarms < trapped < low < devices


async def test_page_in_chinese(server: HttpServer) -> None:
    for reply in (await get(server.port, "/?lang=zh"),
                  await get(server.port, "/", "Accept-Language: zh-CN,zh;q=0.9,en;q=0.8")):
        html = reply.text
        assert '<html lang="zh-CN">' in html
        for label in ("网关状态", "当前报警", "在线", "离线", "已停用", "出口压力", "困人", "紧急"):
            assert label in html
        assert "4.25 巴" in html
        assert "Gateway status" not in html
    english = (await get(server.port, "/", "Accept-Language: en-US,zh;q=0.5")).text
    assert "Gateway status" in english
    assert "网关状态" not in english


async def test_page_selects_one_device(server: HttpServer) -> None:
    html = (await get(server.port, "/?device=lift-1&lang=en")).text
    assert 'id="v-lift-1"' in html
    assert 'id="v-booster"' not in html
    assert 'href="?lang=zh&amp;device=lift-1"' in html  # the language switch keeps it
    everything = (await get(server.port, "/?device=nope")).text
    assert 'id="v-booster"' in everything and 'id="v-lift-1"' in everything


def test_large_site_lists_values_of_one_device_at_a_time() -> None:
    points = tuple(PointView(f"p{j}", f"Point {j}", "点位", j, "kPa") for j in range(40))
    devices = tuple(DeviceView(f"d{i}", f"Device {i}", "", "p", "modbus", "e", True,
                               points=points) for i in range(20))
    view = make_view(devices=devices, alarms=())
    assert MAX_VALUES_LISTED < 20 * 40
    html = render_html(view, "en")
    assert "Choose a device above" in html
    assert 'id="v-d0"' not in html
    assert html.count('href="?lang=en&amp;device=d') == 20
    one = render_html(view, "zh", device="d7")
    assert 'id="v-d7"' in one and one.count('<tr class="q-good">') == 40


# -- HTTP rules -----------------------------------------------------------------------------
async def test_unknown_path_404(server: HttpServer) -> None:
    reply = await get(server.port, "/nope?x=1")
    assert reply.status == 404
    assert reply.json() == {"error": "not found", "path": "/nope"}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
async def test_other_methods_405(server: HttpServer, gateway: Gateway, method: str) -> None:
    reply = await get(server.port, "/status.json", method=method)
    assert reply.status == 405
    assert reply.headers["allow"] == "GET, HEAD"
    assert reply.json()["error"] == "method not allowed"
    assert gateway.calls == 0


async def test_head_has_headers_only(server: HttpServer) -> None:
    full = await get(server.port, "/")
    head = await get(server.port, "/", method="HEAD")
    assert head.status == 200
    assert head.body == b""
    assert int(head.headers["content-length"]) == len(full.body)
    assert (await get(server.port, "/metrics", method="HEAD")).body == b""


@pytest.mark.parametrize("size", [5_000, 200_000])
async def test_oversized_request_line_400(server: HttpServer, gateway: Gateway,
                                          size: int) -> None:
    reply = await send(server.port, b"GET /" + b"a" * size + b" HTTP/1.1\r\n\r\n")
    assert reply.status == 400
    assert "request line longer than" in reply.json()["detail"]
    assert gateway.calls == 0


@pytest.mark.parametrize("raw", [
    b"GET\r\n\r\n",
    b"GET / HTTP/1.1 extra\r\n\r\n",
    b"GET noslash HTTP/1.1\r\n\r\n",
    b"GET / SPDY/3\r\n\r\n",
    b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(100)) + b"\r\n",
    b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n",
])
async def test_malformed_requests_400(server: HttpServer, raw: bytes) -> None:
    reply = await send(server.port, raw)
    assert reply.status == 400
    assert reply.json()["error"] == "bad request"


async def test_failing_callable_500_then_recovers(server: HttpServer, gateway: Gateway,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    good = gateway.view
    gateway.view = None  # type: ignore[assignment]  # render_html will fail on it
    reply = await get(server.port, "/")
    assert reply.status == 500
    assert reply.json() == {"error": "internal error", "path": "/"}
    assert "HTTP / failed" in caplog.text
    gateway.view = good
    assert (await get(server.port, "/")).status == 200


async def test_half_sent_request_does_not_block_others_or_stop(server: HttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost:")  # and never finishes
    await writer.drain()
    try:
        assert (await get(server.port, "/healthz")).status == 200
        async with asyncio.timeout(2):
            await server.stop()  # cancels the stuck connection
        assert await reader.read() == b""
    finally:
        writer.close()
        await writer.wait_closed()


# -- lifecycle ------------------------------------------------------------------------------
async def test_bind_failure_names_the_address(server: HttpServer, gateway: Gateway,
                                              metrics: GatewayMetrics) -> None:
    listen = f"127.0.0.1:{server.port}"
    clash = HttpServer(listen, health=gateway.health, metrics=metrics, status=gateway.status)
    with pytest.raises(EdgeError, match=re.escape(listen)):
        await clash.start()
    await clash.stop()


async def test_empty_listen_disables(gateway: Gateway, metrics: GatewayMetrics) -> None:
    off = HttpServer("", health=gateway.health, metrics=metrics, status=gateway.status)
    assert not off.enabled
    await off.start()
    with pytest.raises(EdgeError, match="not running"):
        _ = off.port
    await off.stop()


@pytest.mark.parametrize(("listen", "expected"), [
    ("127.0.0.1:9105", ("127.0.0.1", 9105)),
    ("0.0.0.0:0", ("0.0.0.0", 0)),
    ("[::1]:8080", ("::1", 8080)),
    ("localhost:80", ("localhost", 80)),
])
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["9105", ":9105", "host:", "host:http", "host:70000"])
def test_parse_listen_rejects(listen: str) -> None:
    with pytest.raises(EdgeError, match="not host:port"):
        parse_listen(listen)


# -- pure helpers ---------------------------------------------------------------------------
@pytest.mark.parametrize(("query", "header", "expected"), [
    (None, None, "en"),
    ("zh", "en-US", "zh"),
    ("en", "zh-CN", "en"),
    ("fr", "zh-TW,en;q=0.5", "zh"),
    (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
    (None, "en-US,en;q=0.9,zh-CN;q=0.8", "en"),
    (None, "fr-FR,zh;q=0.7,en;q=0.6", "zh"),
    (None, "en;q=0.2,zh;q=0.8", "zh"),
    (None, "zh;q=0,de", "en"),
    (None, "de,fr", "en"),
    (None, "zh;q=bogus,en", "en"),
])
def test_pick_language(query: str | None, header: str | None, expected: str) -> None:
    assert pick_language(query, header) == expected


@pytest.mark.parametrize(("seconds", "en", "zh"), [
    (0, "0 s", "0秒"),
    (59.9, "59 s", "59秒"),
    (60, "1 min", "1分"),
    (125, "2 min 5 s", "2分5秒"),
    (3600, "1 h", "1小时"),
    (3725, "1 h 2 min", "1小时2分"),
    (90061, "1 d 1 h", "1天1小时"),
    (-5, "0 s", "0秒"),
])
def test_format_duration(seconds: float, en: str, zh: str) -> None:
    assert format_duration(seconds, "en") == en
    assert format_duration(seconds, "zh") == zh


@pytest.mark.parametrize(("changes", "reasons"), [
    ({}, []),
    ({"mqtt": MqttView(False, "b", since=NOW - 30_000)}, []),
    ({"mqtt": MqttView(False, "b", since=NOW - 61_000)}, ["MQTT disconnected for 61 s"]),
    ({"mqtt": MqttView(False, "b"), "uptime": 10.0}, []),
    ({"mqtt": MqttView(False, "b"), "uptime": 100.0}, ["MQTT disconnected for 100 s"]),
    ({"outbox_depth": 900}, []),
    ({"outbox_depth": 901}, ["outbox 901/1000 is more than 90% full"]),
    ({"outbox_depth": 10**6, "outbox_capacity": 0}, []),
    ({"devices": ()}, []),
    ({"devices": (DeviceView("a", "A", "", "p", "modbus", "e", online=False),)},
     ["no device polled successfully"]),
    ({"devices": (DeviceView("a", "A", "", "p", "modbus", "e", online=False),), "uptime": 5.0},
     []),
    ({"devices": (DeviceView("a", "A", "", "p", "modbus", "e", False, enabled=False),)}, []),
])
def test_check_health(changes: dict[str, Any], reasons: list[str]) -> None:
    healthy, details = check_health(make_view(**changes))
    assert details["reasons"] == reasons
    assert healthy is (not reasons)


def test_views_check_themselves() -> None:
    with pytest.raises(ValueError, match="quality"):
        PointView("p", "P", "P", 1, quality="fine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="severity"):
        AlarmView("d", "a", "urgent", "t", "t", NOW)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        make_view(outbox_depth=-1)


def test_status_dict_has_no_nan() -> None:
    point = PointView("p", "P", "P", float("nan"))
    view = make_view(devices=(replace(make_view().devices[0], points=(point,)),))
    assert status_dict(view)["devices"][0]["points"][0]["value"] == "nan"
    json.dumps(status_dict(view), allow_nan=False)
    assert "nan" in render_html(view)


def test_metrics_read_back_and_forget() -> None:
    metrics = GatewayMetrics()
    assert metrics.cycles("a") == 0
    assert metrics.lateness_p99("a") is None
    for i in range(100):
        metrics.cycle("a", i / 1000)
    metrics.cycle("a", -1.0)  # early is not negative lateness
    assert metrics.cycles("a") == 101
    assert metrics.lateness_p99("a") == pytest.approx(0.098)
    metrics.device_online("a", True)
    metrics.error("a", "timeout")
    metrics.request("a", 0.01)
    metrics.forget_device("a")
    text = metrics.render()[0].decode()
    assert 'device="a"' not in text
    assert metrics.cycles("a") == 0


def test_metrics_totals_sync_survives_a_restarted_source() -> None:
    metrics = GatewayMetrics()
    metrics.outbox(5, 3)
    metrics.outbox(5, 10)   # +7
    metrics.outbox(0, 2)    # the outbox was reopened: +2
    metrics.outbox_dropped(1)
    assert "towerwatch_edge_outbox_dropped_total 13.0" in metrics.render()[0].decode()


def test_registries_are_private() -> None:
    first, second = GatewayMetrics(), GatewayMetrics()
    first.points_read(5)
    assert "towerwatch_edge_points_read_total 0.0" in second.render()[0].decode()
