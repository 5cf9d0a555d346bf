"""The edge gateway under load: simulated devices, a real Mosquitto, the daemon as a process.

Each scenario runs ``towerwatch sim run`` (behaviour model ``generic`` on the load
profiles in ``bench/profiles``) and ``towerwatch edge run`` as processes of their own,
and a Mosquitto started here (the rig: :mod:`bench.edge_rig`); a subscriber checks
that every ``seq`` of every boot arrives. Every duty is on: quality, report by
exception, alarm rules, the durable SQLite outbox, QoS 1 publishing. Prints one JSON
object.

Scenarios (``--scenario``, default ``all``):

- ``modbus``: ``--devices`` x 40 holding registers every ``--interval`` s
  (target: <= 9 us of gateway CPU per point read);
- ``ramp``: the same devices at each of ``--intervals`` until one core is busy
  (target: >= 100,000 points/s with p99 lateness < 200 ms and RSS < 200 MB; past
  that, cycles stretch, lateness is reported, memory and the outbox stay bounded);
- ``idle``: one device at 1 s (target: < 1% of a core over ``--idle`` s);
- ``bacnet``: ``--bacnet-devices`` x 20 BACnet points, 14 by read-property-multiple
  and 6 by COV: values/s and CPU per value.

    python -m bench.edge_poll [--scenario all] [--devices 200] [--interval 1] [--duration 30]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.edge_rig import (
    BACNET_PROFILE,
    MODBUS_PROFILE,
    SeqWatch,
    device_entries,
    machine,
    run_gateway,
    simulator,
)
from tests.servers.mosquitto import MosquittoServer

# ---- scenarios -------------------------------------------------------------------------

def modbus(args: argparse.Namespace, folder: Path, broker: MosquittoServer,
           watch: SeqWatch) -> dict[str, Any]:
    entries = device_entries(MODBUS_PROFILE, args.devices, args.change, "load")
    with simulator(folder, entries) as (sim, served):
        result = run_gateway(folder, served, broker, watch, name="gw-modbus",
                             interval=args.interval, duration=args.duration,
                             warmup=args.warmup, sim=sim, profile_to=args.profile)
        bare = run_gateway(folder, served, broker, watch, name="gw-modbus-bare",
                           interval=args.interval, duration=args.duration / 2,
                           warmup=args.warmup, sim=sim, bare=True)
    full_us, bare_us = result["cpu_us_per_point"], bare["cpu_us_per_point"]
    return {"devices": args.devices, "points_per_device": 40, "interval_s": args.interval,
            "sim_change_per_point_per_s": args.change,
            "requests_per_s": result["cycles_per_s"], **result,
            "target_cpu_us_per_point": 9.0,
            "bare_poller": {
                "what": "the same gateway and devices, no duties after decoding (no report "
                        "by exception, alarms, messages, outbox or MQTT), right after",
                "cpu_us_per_point": bare_us,
                "cpu_us_per_point_slices": bare["cpu_us_per_point_slices"],
                "other_processes_cores": bare["other_processes_cores"]},
            "duties_cpu_us_per_point": round(full_us - bare_us, 2) if full_us and bare_us
            else None}


def ramp(args: argparse.Namespace, folder: Path, broker: MosquittoServer,
         watch: SeqWatch) -> dict[str, Any]:
    entries = device_entries(MODBUS_PROFILE, args.devices, args.change, "load")
    steps = []
    with simulator(folder, entries) as (sim, served):
        for i, interval in enumerate(float(x) for x in args.intervals.split(",")):
            result = run_gateway(folder, served, broker, watch, name=f"gw-ramp-{i}",
                                 interval=interval, duration=args.ramp_duration,
                                 warmup=args.warmup, sim=sim)
            demanded = args.devices * 40 / interval
            steps.append({"interval_s": interval, "points_demanded_per_s": round(demanded),
                          "cycle_stretch": round(demanded / max(result["points_read_per_s"], 1),
                                                 2), **result})
    best = max((s for s in steps if (s["lateness_p99_ms"] or 0) < 200
                and s["rss_mb"]["max"] < 200), key=lambda s: s["points_read_per_s"],
               default=None)
    return {"devices": args.devices, "steps": steps,
            "best_within_targets_points_per_s": best["points_read_per_s"] if best else None,
            "target_points_per_s": 100_000, "target_lateness_p99_ms": 200,
            "target_rss_mb": 200}


def idle(args: argparse.Namespace, folder: Path, broker: MosquittoServer,
         watch: SeqWatch) -> dict[str, Any]:
    entries = device_entries(MODBUS_PROFILE, 1, args.change, "idle")
    with simulator(folder, entries) as (sim, served):
        result = run_gateway(folder, served, broker, watch, name="gw-idle", interval=1.0,
                             duration=args.idle, warmup=args.warmup, sim=sim,
                             profile_to=args.profile)
    return {"devices": 1, "interval_s": 1.0, "cpu_percent_of_core":
            result["gateway_cpu_percent_of_core"], "target_cpu_percent_of_core": 1.0,
            "rss_mb": result["rss_mb"], "points_read_per_s": result["points_read_per_s"]}


def bacnet(args: argparse.Namespace, folder: Path, broker: MosquittoServer,
           watch: SeqWatch) -> dict[str, Any]:
    entries = device_entries(BACNET_PROFILE, args.bacnet_devices, args.change, "bac")
    with simulator(folder, entries) as (sim, served):
        before = watch.values
        result = run_gateway(folder, served, broker, watch, name="gw-bacnet", interval=1.0,
                             duration=args.duration, warmup=args.warmup, sim=sim,
                             profile_to=args.profile)
        published = watch.values - before
    # points_read counts polled values and the values COV notifications bring.
    values = result["points_read_per_s"]
    cpu = result["gateway_cpu_percent_of_core"] / 100
    return {"devices": args.bacnet_devices, "points_per_device": 20, "polled_per_device": 14,
            "cov_per_device": 6, "values_per_s": values,
            "cov_notifications_per_s_expected": round(args.bacnet_devices * 6 * args.change, 1),
            "cpu_us_per_value": round(cpu / values * 1e6, 1) if values else None,
            "values_received_by_subscriber": published, **result}


SCENARIOS = {"modbus": modbus, "ramp": ramp, "idle": idle, "bacnet": bacnet}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", choices=["all", *SCENARIOS], default="all")
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--intervals", default="0.25,0.1,0.075,0.05,0.035,0.025",
                        help="comma-separated poll intervals for the ramp")
    parser.add_argument("--ramp-duration", type=float, default=20.0)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle sampling")
    parser.add_argument("--bacnet-devices", type=int, default=50)
    parser.add_argument("--change", type=float, default=0.1,
                        help="share of points the simulator changes per second")
    parser.add_argument("--profile", type=Path,
                        help="write a cProfile of the gateway's measured window (one scenario)")
    args = parser.parse_args()
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    out: dict[str, Any] = {"bench": "edge_poll", "cores": os.cpu_count(),
                           "machine_before": machine()}
    with tempfile.TemporaryDirectory() as tmp, MosquittoServer() as broker:
        folder = Path(tmp)
        watch = SeqWatch(broker.host, broker.port)
        try:
            for name in names:
                out[name] = SCENARIOS[name](args, folder, broker, watch)
            watch.settle()
        finally:
            watch.close()
        out["subscriber"] = watch.summary()
    out["machine_after"] = machine()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
