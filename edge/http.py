"""The gateway's local HTTP port: ``/healthz``, ``/metrics``, ``/`` and ``/status.json``.

A deliberately small HTTP/1.1 server on :func:`asyncio.start_server` (no web
framework): GET and HEAD only, one request per connection (``Connection: close``),
request line and headers read with size, count and time limits. Errors are JSON::

    400 malformed or oversized request     404 unknown path
    405 method other than GET/HEAD         408 request head not received in time
    500 a status/health callable failed    503 /healthz when the gateway is unhealthy

:func:`check_health` is the usual ``health`` callable's verdict on a :class:`StatusView`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from edge.errors import EdgeError
from edge.metrics import GatewayMetrics
from edge.status_page import StatusView, render_html, status_dict
from towerwatch.i18n import Lang

__all__ = ["HttpServer", "check_health", "parse_listen", "pick_language"]

log = logging.getLogger(__name__)

MAX_REQUEST_LINE: Final = 4096
MAX_HEADER_LINE: Final = 8192
MAX_HEADERS: Final = 64
MAX_HEAD_BYTES: Final = 32 * 1024
HEAD_TIMEOUT: Final = 10.0
WRITE_TIMEOUT: Final = 10.0
MAX_CONNECTIONS: Final = 32
_LINGER_BYTES: Final = 64 * 1024
_LINGER_SECONDS: Final = 0.5

_REASONS: Final = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                   408: "Request Timeout", 500: "Internal Server Error",
                   503: "Service Unavailable"}
_JSON: Final = "application/json; charset=utf-8"
_HTML: Final = "text/html; charset=utf-8"
_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'"


def parse_listen(listen: str) -> tuple[str, int]:
    """``"host:port"`` / ``"[::1]:port"`` → ``(host, port)``; :class:`EdgeError` if malformed."""
    host, sep, port_text = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise EdgeError(f"http listen address {listen!r} is not host:port")
    return host, int(port_text)


def pick_language(query: str | None, accept_language: str | None) -> Lang:
    """``?lang=`` wins; else the best-ranked ``zh``/``en`` in Accept-Language; else English."""
    if query in ("en", "zh"):
        return "zh" if query == "zh" else "en"
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        ranked.append((-quality, index, tag.strip().lower()))
    for negative_q, _, tag in sorted(ranked):
        if negative_q < 0 and (tag.startswith("zh") or tag.startswith("en")):
            return "zh" if tag.startswith("zh") else "en"
    return "en"


def check_health(view: StatusView, *, mqtt_grace: float = 60.0, outbox_limit: float = 0.9,
                 startup_grace: float = 30.0) -> tuple[bool, dict[str, Any]]:
    """``(healthy, details)``; ``details["reasons"]`` says what is wrong.

    Unhealthy when the broker has been unreachable for more than ``mqtt_grace`` s, the
    outbox is more than ``outbox_limit`` full, or (after ``startup_grace`` s) no enabled
    device answers.
    """
    reasons: list[str] = []
    mqtt = view.mqtt
    if not mqtt.connected:
        down = view.uptime if mqtt.since is None else (view.now - mqtt.since) / 1000
        if down > mqtt_grace:
            reasons.append(f"MQTT disconnected for {down:.0f} s")
    if view.outbox_capacity and view.outbox_depth > outbox_limit * view.outbox_capacity:
        reasons.append(f"outbox {view.outbox_depth}/{view.outbox_capacity} is more than "
                       f"{outbox_limit:.0%} full")
    enabled = [d for d in view.devices if d.enabled]
    if enabled and view.uptime > startup_grace and not any(d.online for d in enabled):
        reasons.append("no device polled successfully")
    details: dict[str, Any] = {
        "gateway": view.gateway, "site": view.site, "version": view.version,
        "boot_id": view.boot_id, "uptime": round(view.uptime, 1),
        "mqtt_connected": mqtt.connected, "outbox_depth": view.outbox_depth,
        "devices_online": sum(d.online for d in enabled), "devices": len(enabled),
        "reasons": reasons,
    }
    return not reasons, details


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


class _BadRequest(Exception):
    pass


def _json_response(status: int, data: Mapping[str, Any],
                   headers: tuple[tuple[str, str], ...] = ()) -> _Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return _Response(status, body, _JSON, headers)


class HttpServer:
    """``HttpServer("127.0.0.1:9105", health=..., metrics=..., status=...)``.

    ``health()`` returns ``(healthy, details)``; ``status()`` a :class:`StatusView`.
    Both are called on the event loop for each request, so keep them cheap. ``listen``
    ``""`` disables the server (``start`` and ``stop`` do nothing).
    """

    def __init__(self, listen: str, *, health: Callable[[], tuple[bool, dict[str, Any]]],
                 metrics: GatewayMetrics, status: Callable[[], StatusView]) -> None:
        self.listen = listen
        self._address = parse_listen(listen) if listen else None
        self._health = health
        self._metrics = metrics
        self._status = status
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def port(self) -> int:
        """The port actually bound (useful with ``:0``)."""
        if self._server is None or not self._server.sockets:
            raise EdgeError(f"HTTP server {self.listen!r} is not running")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        if self._address is None or self._server is not None:
            return
        host, port = self._address
        try:
            self._server = await asyncio.start_server(self._serve, host, port,
                                                      limit=MAX_HEADER_LINE)
        except OSError as exc:
            raise EdgeError(f"cannot listen for HTTP on {self.listen}: "
                            f"{exc.strerror or exc}") from exc
        log.info("status page on http://%s:%d/", host, self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> HttpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- one connection -------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if len(self._tasks) > MAX_CONNECTIONS:
                response = _json_response(503, {"error": "too many connections"})
                await self._send(writer, response, head_only=False)
                return
            await self._exchange(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _exchange(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(_read_head(reader), HEAD_TIMEOUT)
        except _BadRequest as exc:
            await self._send(writer, _json_response(400, {"error": "bad request",
                                                          "detail": str(exc)}), head_only=False)
            if writer.can_write_eof():
                writer.write_eof()
            await _linger(reader)
            return
        except TimeoutError:
            await self._send(writer, _json_response(408, {"error": "request timeout"}),
                             head_only=False)
            return
        response = await self._route(request)
        log.debug("%s %s -> %d", request.method, request.path, response.status)
        await self._send(writer, response, head_only=request.method == "HEAD")

    async def _route(self, request: _Request) -> _Response:
        routes: dict[str, Callable[[_Request], Awaitable[_Response]]] = {
            "/healthz": self._healthz, "/metrics": self._metrics_page,
            "/": self._page, "/status.json": self._status_json,
        }
        handler = routes.get(request.path)
        if handler is None:
            return _json_response(404, {"error": "not found", "path": request.path})
        if request.method not in ("GET", "HEAD"):
            return _json_response(405, {"error": "method not allowed",
                                        "allow": ["GET", "HEAD"]},
                                  (("Allow", "GET, HEAD"),))
        try:
            return await handler(request)
        except Exception:
            log.exception("HTTP %s failed", request.path)
            return _json_response(500, {"error": "internal error", "path": request.path})

    # The callables read live gateway state, so they run on the loop; turning their
    # snapshot into text (tens of ms for a 200-device site) runs in a worker thread,
    # so polling does not stall while a page is built.

    async def _healthz(self, request: _Request) -> _Response:
        healthy, details = self._health()
        status = "ok" if healthy else "unhealthy"
        return _json_response(200 if healthy else 503, {"status": status, **details})

    async def _metrics_page(self, request: _Request) -> _Response:
        body, content_type = await asyncio.to_thread(self._metrics.render)
        return _Response(200, body, content_type)

    async def _page(self, request: _Request) -> _Response:
        chosen = request.query.get("lang", [])
        lang = pick_language(chosen[0] if chosen else None,
                             request.headers.get("accept-language"))
        device = request.query.get("device", [])
        view = self._status()
        html = await asyncio.to_thread(render_html, view, lang,
                                       device=device[0] if device else None)
        return _Response(200, html.encode(), _HTML,
                         (("Content-Security-Policy", _CSP), ("Vary", "Accept-Language")))

    async def _status_json(self, request: _Request) -> _Response:
        view = self._status()
        data = await asyncio.to_thread(status_dict, view)
        return _json_response(200, data)

    async def _send(self, writer: asyncio.StreamWriter, response: _Response, *,
                    head_only: bool) -> None:
        lines = [
            f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            "Connection: close",
            "Cache-Control: no-store",
            "X-Content-Type-Options: nosniff",
            *(f"{name}: {value}" for name, value in response.headers),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if not head_only:
            writer.write(response.body)
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)


async def _read_line(reader: asyncio.StreamReader, limit: int, what: str) -> str:
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError as exc:
        raise _BadRequest(f"{what} longer than {limit} bytes") from exc
    if len(raw) > limit:
        raise _BadRequest(f"{what} longer than {limit} bytes")
    try:
        return raw.decode("latin-1").rstrip("\r\n")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise _BadRequest(f"{what} is not text") from exc


async def _read_head(reader: asyncio.StreamReader) -> _Request:
    line = await _read_line(reader, MAX_REQUEST_LINE, "request line")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1].startswith("/"):
        raise _BadRequest("malformed request line")
    method, target, version = parts
    if not version.startswith("HTTP/1."):
        raise _BadRequest(f"unsupported protocol {version[:16]!r}")
    headers: dict[str, str] = {}
    total = len(line)
    while True:
        header = await _read_line(reader, MAX_HEADER_LINE, "header line")
        if not header:
            break
        total += len(header)
        if len(headers) >= MAX_HEADERS or total > MAX_HEAD_BYTES:
            raise _BadRequest("too many or too large headers")
        name, sep, value = header.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest("malformed header line")
        headers[name.lower()] = value.strip()
    url = urlsplit(target)
    return _Request(method, url.path, parse_qs(url.query), headers)


async def _linger(reader: asyncio.StreamReader) -> None:
    """Read what the client is still sending before closing, so it sees our answer
    instead of a reset."""
    received = 0
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_LINGER_SECONDS):
            while received < _LINGER_BYTES:
                chunk = await reader.read(8192)
                if not chunk:
                    break
                received += len(chunk)
