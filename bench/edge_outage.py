"""The broker goes away for a minute while the gateway publishes ~5,000 points/s.

A simulated building (``--devices`` x 40 registers, every point changing each second:
about 18 points per device per second pass report by exception) is polled every second
by ``towerwatch edge run``; a subscriber with a persistent session checks every ``seq``.
After ``--steady`` s the Mosquitto broker is stopped (SIGTERM: it saves its persistent
sessions), kept down for ``--outage`` s and started again on the same port. Prints one
JSON object: messages lost (gaps in ``seq``; must be 0), duplicates, the outbox peak,
when the gateway reconnected, and when the backlog was delivered: the time from the
broker's restart until the subscriber held every message made before the restart.

    python -m bench.edge_outage [--devices 280] [--outage 60] [--steady 10]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from bench.edge_rig import (
    MODBUS_PROFILE,
    GatewayProc,
    SeqWatch,
    device_entries,
    machine,
    simulator,
)
from tests.servers.mosquitto import MosquittoServer

POINTS_PUBLISHED = "towerwatch_edge_points_published_total"


class TimedWatch(SeqWatch):
    """A :class:`SeqWatch` that also notes each message's ``ts`` and arrival (wall) time."""

    def __init__(self, host: str, port: int) -> None:
        self.arrivals: list[tuple[int, float]] = []
        self.arrivals_lock = threading.Lock()
        super().__init__(host, port, client_id="bench-outage-watch")

    def _message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        super()._message(client, userdata, message)
        ts = int(json.loads(message.payload)["ts"])
        with self.arrivals_lock:
            self.arrivals.append((ts, time.time()))

    def delivered_by(self, made_before: float) -> float | None:
        """Wall time when the last message made before ``made_before`` arrived."""
        limit = int(made_before * 1000)
        with self.arrivals_lock:
            times = [at for ts, at in self.arrivals if ts <= limit]
        return max(times) if times else None


def depth_and_connected(gw: GatewayProc) -> tuple[int, bool, float]:
    found = gw.metrics()
    return (int(found.get("towerwatch_edge_outbox_depth", 0)),
            found.get("towerwatch_edge_mqtt_connected", 0) > 0,
            found.get(POINTS_PUBLISHED, 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=280)
    parser.add_argument("--change", type=float, default=1.0,
                        help="share of points the simulator changes per second")
    parser.add_argument("--outage", type=float, default=60.0, help="seconds without broker")
    parser.add_argument("--steady", type=float, default=10.0,
                        help="seconds of publishing before the outage")
    parser.add_argument("--drain-limit", type=float, default=180.0,
                        help="longest wait for the backlog after the restart")
    args = parser.parse_args()
    before = machine()
    with tempfile.TemporaryDirectory() as tmp, MosquittoServer() as broker:
        folder = Path(tmp)
        watch = TimedWatch(broker.host, broker.port)
        entries = device_entries(MODBUS_PROFILE, args.devices, args.change, "load")
        with simulator(folder, entries) as (_sim, served):
            gw = GatewayProc(folder, served, broker.url, name="gw-outage", interval=1.0)
            try:
                gw.wait_online()
                _, _, published0 = depth_and_connected(gw)
                t0 = time.monotonic()
                time.sleep(args.steady)
                _, _, published1 = depth_and_connected(gw)
                rate = (published1 - published0) / (time.monotonic() - t0)
                steady_depth = depth_and_connected(gw)[0]
                broker.stop()
                down_at = time.time()
                peak = 0
                while time.time() - down_at < args.outage:
                    time.sleep(1.0)
                    peak = max(peak, depth_and_connected(gw)[0])
                broker.start()
                up_at = time.time()
                reconnected: float | None = None
                emptied: float | None = None
                while time.time() - up_at < args.drain_limit:
                    depth, connected, _ = depth_and_connected(gw)
                    peak = max(peak, depth)
                    if connected and reconnected is None:
                        reconnected = time.time() - up_at
                    if reconnected is not None and depth <= steady_depth + 400:
                        emptied = time.time() - up_at
                        break
                    time.sleep(0.5)
                time.sleep(3.0)
                status = gw.status()
            finally:
                gw.stop()
            watch.settle()
        watch.close()
        summary = watch.summary()
        delivered = watch.delivered_by(up_at)
        drained = None if delivered is None or emptied is None else delivered - up_at
    result = {
        "bench": "edge_outage", "cores": os.cpu_count(), "devices": args.devices,
        "points_published_per_s_before": round(rate),
        "outage_s": args.outage,
        "outbox_depth_before": steady_depth,
        "outbox_peak": peak,
        "reconnected_after_s": None if reconnected is None else round(reconnected, 1),
        "backlog_delivered_after_s": None if drained is None else round(drained, 1),
        "drain_note": "from the broker's restart until the subscriber held the last message "
                      "made before it (gateway reconnect backoff included)",
        "drained_after_reconnect_s": None if drained is None or reconnected is None
        else round(drained - reconnected, 1),
        "messages_lost": summary["messages_lost"],
        "duplicates": summary["duplicates"],
        "messages_received": summary["messages_received"],
        "boots": summary["boots"],
        "outbox_back_to_normal_after_s": None if emptied is None else round(emptied, 1),
        "outbox_dropped": status.get("outbox_dropped"),
        "machine_before": before, "machine_after": machine(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
