"""CPU cost of the edge's per-point duties: decode + report by exception + alarm rules.

For each profile, ``--devices`` simulated devices (behaviour models on a manual clock)
are stepped ``--cycles`` times at 1 s, and the register blocks the read planner would
fetch are recorded first. The timed loop then does what the daemon does with every read
of every device, every cycle: ``PointTable.apply_registers`` for each block,
``AlarmEngine.evaluate`` and ``PointTable.report``. No I/O is timed.

Scenarios: ``simulated`` (the models' own values: what a building does), ``steady``
(nothing changes), ``all_changing`` (every register changes every cycle: the worst case).
``codec_us_per_point`` is the cost of :func:`decode_modbus` for every point, for
comparison. Prints one JSON object; figures are the best of ``--repeat`` runs.

    python -m bench.edge_points [--devices 20] [--cycles 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import time
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from device_profiles.codec import decode_modbus
from device_profiles.loader import load_profiles
from device_profiles.schema import ModbusProfile, ModbusTable
from edge.alarms import AlarmEngine
from edge.planner import ReadBlock, plan_reads
from edge.points import PointTable
from simulators.clock import SimClock
from simulators.image import ModbusImage
from simulators.models.base import SimContext
from simulators.models.registry import model_class, model_for_profile

PROFILES = ("booster-pumpset-modbus", "elevator-ctl-modbus")
START = datetime(2024, 5, 6, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
Read = tuple[ModbusTable, int, list[int], tuple[str, ...]]


@dataclass
class Device:
    table: PointTable
    engine: AlarmEngine
    cycles: list[list[Read]]


def plan(profile: ModbusProfile) -> list[ReadBlock]:
    limits = profile.limits
    return plan_reads(profile.points, poll_of=lambda p: "all",
                      max_registers=limits.max_registers, max_bits=limits.max_bits,
                      max_gap=limits.max_gap, forbidden=limits.forbidden)


def record(profile: ModbusProfile, seed: int, cycles: int, scenario: str) -> list[list[Read]]:
    """The block reads of one simulated device for every cycle (not timed)."""
    clock = SimClock(start=START, speed=0, timezone="Asia/Shanghai")
    model = model_class(model_for_profile(profile.id))(
        f"dev-{seed}", SimContext(clock=clock, rng=random.Random(seed)), {})
    image = ModbusImage(profile)
    blocks = plan(profile)
    recorded: list[list[Read]] = []
    for cycle in range(cycles):
        if scenario == "simulated" or cycle == 0:
            clock.advance(1.0)
            model.step(clock.now(), 1.0)
            image.update(model.values(), model.events())
        reads: list[Read] = []
        for block in blocks:
            words = image.tables[block.table][block.address:block.address + block.count]
            if scenario == "all_changing":
                words = [w ^ (cycle & 1) for w in words]
            reads.append((block.table, block.address, words, block.points))
        recorded.append(reads)
    return recorded


def timed(devices: list[Device], cycles: int) -> dict[str, float]:
    apply_s = report_s = alarm_s = 0.0
    clock = time.perf_counter
    for cycle in range(cycles):
        now = START + cycle
        for device in devices:
            table = device.table
            t0 = clock()
            for tab, address, words, ids in device.cycles[cycle]:
                table.apply_registers(tab, address, words, ids, now)
            t1 = clock()
            device.engine.evaluate(table, now)
            t2 = clock()
            table.report(now)
            t3 = clock()
            apply_s += t1 - t0
            alarm_s += t2 - t1
            report_s += t3 - t2
    points = cycles * sum(len(d.table.point_ids) for d in devices)
    return {"us_per_point": round((apply_s + alarm_s + report_s) / points * 1e6, 3),
            "apply_us": round(apply_s / points * 1e6, 3),
            "alarms_us": round(alarm_s / points * 1e6, 3),
            "report_us": round(report_s / points * 1e6, 3)}


def scenario_cost(profile: ModbusProfile, scenario: str, devices: int, cycles: int,
                  repeat: int) -> dict[str, float]:
    recorded = [record(profile, seed, cycles, scenario) for seed in range(devices)]
    best: dict[str, float] | None = None
    for _ in range(repeat):
        fleet = [Device(PointTable(profile), AlarmEngine(profile), reads) for reads in recorded]
        for device in fleet:  # boot: the first forced report
            device.table.report(START - 1, force=True)
        gc.collect()
        result = timed(fleet, cycles)
        if best is None or result["us_per_point"] < best["us_per_point"]:
            best = result
    assert best is not None
    return best


def codec_cost(profile: ModbusProfile, reads: list[Read]) -> float:
    """decode_modbus for every point of one cycle's blocks, per point."""
    points = {p.id: p for p in profile.points}
    start = time.perf_counter()
    count = 0
    for _ in range(20):
        for _tab, address, words, ids in reads:
            for point_id in ids:
                point = points[point_id]
                offset = point.address - address
                decode_modbus(point, words[offset:offset + point.width],
                              byte_order=profile.byte_order_of(point), enums=profile.enums)
                count += 1
    return round((time.perf_counter() - start) / count * 1e6, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    profiles = load_profiles()
    out: dict[str, object] = {"python": platform.python_version(), "devices": args.devices,
                              "cycles": args.cycles}
    for profile_id in PROFILES:
        profile = profiles.get(profile_id)
        assert isinstance(profile, ModbusProfile)
        table = PointTable(profile)
        entry: dict[str, object] = {"points": len(table.point_ids),
                                    "alarm_rules": len(profile.alarms),
                                    "blocks": len(plan(profile))}
        for scenario in ("simulated", "steady", "all_changing"):
            entry[scenario] = scenario_cost(profile, scenario, args.devices, args.cycles,
                                            args.repeat)
        entry["codec_us_per_point"] = codec_cost(profile, record(profile, 0, 1, "steady")[0])
        out[profile_id] = entry
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
