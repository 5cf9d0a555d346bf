"""The gateway's Prometheus metrics, behind small typed methods.

This is the only module that imports ``prometheus_client``; the rest of the gateway
calls :class:`GatewayMetrics` methods (``cycle``, ``request``, ``error`` ...). Each
instance owns its own registry, so tests can create as many as they like.

Labelled children are cached per label value, so an update is a dict lookup plus
the client's own increment (well under a microsecond); call the point counters once
per cycle with a count, not once per point.

Metric names (prefix ``towerwatch_edge_``)::

    cycles_total{device}                 poll cycles completed
    cycle_lateness_seconds               how late each cycle started (histogram)
    request_duration_seconds{device}     one device request, e.g. a block read (histogram)
    request_errors_total{device,kind}    kind: timeout | unreachable | exception
    device_online{device}                1 online, 0 offline
    points_read_total                    point values decoded
    points_published_total               point values put in telemetry messages
    messages_published_total             MQTT messages acknowledged by the broker
    outbox_depth                         messages waiting in the durable outbox
    outbox_dropped_total                 messages dropped by the overflow policy
    mqtt_connected                       1 connected, 0 not
    mqtt_reconnects_total                successful reconnects after a loss
    events_published_total{kind}         kind: alarm | access | state
    commands_total{op,result}            cloud commands by op and result (ok, refused, ...)
    info{site,gateway,version,boot_id}   constant 1, see :meth:`GatewayMetrics.set_info`
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from edge.errors import DeviceError, DeviceTimeout, DeviceUnreachable

__all__ = ["LATENESS_BUCKETS", "REQUEST_BUCKETS", "ErrorKind", "GatewayMetrics"]

ErrorKind = Literal["timeout", "unreachable", "exception"]

NAMESPACE: Final = "towerwatch_edge"
LATENESS_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
REQUEST_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_RECENT: Final = 256
"""Recent cycle latenesses kept per device for :meth:`GatewayMetrics.lateness_p99`."""


class _DeviceStats:
    """Plain-Python figures the status page shows (Prometheus children are write-only)."""

    __slots__ = ("cycles", "lateness")

    def __init__(self) -> None:
        self.cycles = 0
        self.lateness: deque[float] = deque(maxlen=_RECENT)


class GatewayMetrics:
    """All metrics of one gateway, in a private :class:`CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r, ns = self.registry, NAMESPACE
        self._cycles = Counter("cycles", "Poll cycles completed", ["device"],
                               namespace=ns, registry=r)
        self._lateness = Histogram("cycle_lateness_seconds",
                                   "How late a poll cycle started against its schedule",
                                   namespace=ns, registry=r, buckets=LATENESS_BUCKETS)
        self._request = Histogram("request_duration_seconds",
                                  "Duration of one device request (e.g. one block read)",
                                  ["device"], namespace=ns, registry=r, buckets=REQUEST_BUCKETS)
        self._errors = Counter("request_errors", "Failed device requests by kind",
                               ["device", "kind"], namespace=ns, registry=r)
        self._online = Gauge("device_online", "1 when the device answers, 0 when offline",
                             ["device"], namespace=ns, registry=r)
        self._points_read = Counter("points_read", "Point values decoded",
                                    namespace=ns, registry=r)
        self._points_published = Counter("points_published",
                                         "Point values put in telemetry messages",
                                         namespace=ns, registry=r)
        self._messages = Counter("messages_published", "MQTT messages acknowledged by the broker",
                                 namespace=ns, registry=r)
        self._outbox_depth = Gauge("outbox_depth", "Messages waiting in the durable outbox",
                                   namespace=ns, registry=r)
        self._outbox_dropped = Counter("outbox_dropped",
                                       "Messages dropped by the outbox overflow policy",
                                       namespace=ns, registry=r)
        self._mqtt_connected = Gauge("mqtt_connected", "1 when connected to the broker",
                                     namespace=ns, registry=r)
        self._reconnects = Counter("mqtt_reconnects", "Reconnects to the broker after a loss",
                                   namespace=ns, registry=r)
        self._events = Counter("events_published", "Event messages queued for publishing",
                               ["kind"], namespace=ns, registry=r)
        self._commands = Counter("commands", "Commands from the cloud by op and result",
                                 ["op", "result"], namespace=ns, registry=r)
        self._info = Gauge("info", "Constant 1, labelled with what this gateway is",
                           ["site", "gateway", "version", "boot_id"], namespace=ns, registry=r)
        # Cached children: one dict lookup per update instead of labels() parsing.
        self._c_cycles: dict[str, Counter] = {}
        self._c_request: dict[str, Histogram] = {}
        self._c_errors: dict[tuple[str, str], Counter] = {}
        self._c_online: dict[str, Gauge] = {}
        self._c_events: dict[str, Counter] = {}
        self._c_commands: dict[tuple[str, str], Counter] = {}
        self._stats: dict[str, _DeviceStats] = {}
        self._totals: dict[str, int] = {}

    # -- gateway --------------------------------------------------------------------------
    def set_info(self, *, site: str, gateway: str, version: str, boot_id: str) -> None:
        """Label the ``info`` metric (replaces any earlier labels)."""
        self._info.clear()
        self._info.labels(site=site, gateway=gateway, version=version, boot_id=boot_id).set(1)

    # -- polling --------------------------------------------------------------------------
    def cycle(self, device: str, lateness: float) -> None:
        """A poll cycle of ``device`` completed; it started ``lateness`` seconds late."""
        child = self._c_cycles.get(device)
        if child is None:
            child = self._c_cycles[device] = self._cycles.labels(device=device)
        child.inc()
        lateness = max(0.0, lateness)
        self._lateness.observe(lateness)
        stats = self._stats.get(device)
        if stats is None:
            stats = self._stats[device] = _DeviceStats()
        stats.cycles += 1
        stats.lateness.append(lateness)

    def request(self, device: str, seconds: float) -> None:
        """One request to ``device`` took ``seconds`` (answered or not)."""
        child = self._c_request.get(device)
        if child is None:
            child = self._c_request[device] = self._request.labels(device=device)
        child.observe(seconds)

    def error(self, device: str, kind: ErrorKind | str) -> None:
        """A failed request; ``kind`` is timeout, unreachable or exception
        (:meth:`device_error` picks it from the error's class)."""
        key = (device, kind)
        child = self._c_errors.get(key)
        if child is None:
            child = self._c_errors[key] = self._errors.labels(device=device, kind=kind)
        child.inc()

    def device_error(self, exc: DeviceError) -> None:
        """Count a driver error by its class (timeout, unreachable, exception)."""
        kind: ErrorKind
        if isinstance(exc, DeviceTimeout):
            kind = "timeout"
        elif isinstance(exc, DeviceUnreachable):
            kind = "unreachable"
        else:  # DeviceException, or any other device error
            kind = "exception"
        self.error(exc.device, kind)

    def device_online(self, device: str, online: bool) -> None:
        child = self._c_online.get(device)
        if child is None:
            child = self._c_online[device] = self._online.labels(device=device)
        child.set(1 if online else 0)

    def points_read(self, count: int = 1) -> None:
        self._points_read.inc(count)

    def points_published(self, count: int = 1) -> None:
        self._points_published.inc(count)

    # -- publishing -----------------------------------------------------------------------
    def messages_published(self, count: int = 1) -> None:
        self._messages.inc(count)

    def outbox_depth(self, depth: int) -> None:
        self._outbox_depth.set(depth)

    def outbox_dropped(self, count: int = 1) -> None:
        self._outbox_dropped.inc(count)

    def outbox(self, depth: int, dropped_total: int) -> None:
        """Sync from the outbox's own figures (depth now, drops since it was opened)."""
        self._outbox_depth.set(depth)
        self._outbox_dropped.inc(self._delta("dropped", dropped_total))

    def mqtt_connected(self, connected: bool) -> None:
        self._mqtt_connected.set(1 if connected else 0)

    def mqtt_reconnect(self) -> None:
        self._reconnects.inc()

    def mqtt(self, connected: bool, reconnects_total: int,
             published_total: int | None = None) -> None:
        """Sync from the publisher's own figures (state now; reconnects and messages the
        broker acknowledged since it started)."""
        self._mqtt_connected.set(1 if connected else 0)
        self._reconnects.inc(self._delta("reconnects", reconnects_total))
        if published_total is not None:
            self._messages.inc(self._delta("published", published_total))

    def event(self, kind: str) -> None:
        """An event message (alarm, access, state) was queued for publishing."""
        child = self._c_events.get(kind)
        if child is None:
            child = self._c_events[kind] = self._events.labels(kind=kind)
        child.inc()

    def _delta(self, name: str, total: int) -> int:
        """How much a source's running total grew; a smaller total means it restarted."""
        last = self._totals.get(name, 0)
        self._totals[name] = total
        return total - last if total >= last else total

    def command(self, op: str, result: str) -> None:
        """A cloud command ``op`` (write, reload, ping) ended with ``result`` (ok, refused ...)."""
        key = (op, result)
        child = self._c_commands.get(key)
        if child is None:
            child = self._c_commands[key] = self._commands.labels(op=op, result=result)
        child.inc()

    # -- devices come and go (config reload) ----------------------------------------------
    def forget_device(self, device: str) -> None:
        """Drop every series labelled with ``device`` (it left the config)."""
        for cache, metric in ((self._c_cycles, self._cycles), (self._c_request, self._request),
                              (self._c_online, self._online)):
            if cache.pop(device, None) is not None:
                metric.remove(device)
        for key in [k for k in self._c_errors if k[0] == device]:
            del self._c_errors[key]
            self._errors.remove(*key)
        self._stats.pop(device, None)

    # -- reading back (status page) -------------------------------------------------------
    def cycles(self, device: str) -> int:
        """Poll cycles of ``device`` completed since start."""
        stats = self._stats.get(device)
        return 0 if stats is None else stats.cycles

    def lateness_p99(self, device: str) -> float | None:
        """p99 lateness (s) over the device's last 256 cycles; ``None`` before the first."""
        stats = self._stats.get(device)
        if stats is None or not stats.lateness:
            return None
        ordered = sorted(stats.lateness)
        return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
