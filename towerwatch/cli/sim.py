"""``towerwatch sim run``: serve a simulated building until stopped."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from towerwatch.i18n import Lang, t


def register(commands: Any) -> None:
    parser = commands.add_parser("sim", help="simulated buildings")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = sub.add_parser("run", help="serve a simulated building over Modbus and BACnet")
    run.add_argument("--site", required=True, type=Path, help="site file (simulators/sites/...)")
    run.add_argument("--scenario", type=Path, help="scenario file: a timeline of faults")
    run.add_argument("--speed", type=float, default=1.0, help="clock speed (x real time)")
    run.add_argument("--seed", type=int, default=0, help="random seed (same seed, same building)")
    run.add_argument("--profiles", action="append", metavar="DIR",
                     help="profile folder (default: the shipped profiles)")
    run.add_argument("--served", type=Path, metavar="FILE",
                     help="write the served devices (ports, addresses) to FILE as JSON")
    run.add_argument("--base-port", type=int, default=None, metavar="PORT",
                     help="first Modbus TCP port, overriding the site file (0: any free ports)")
    run.add_argument("--bacnet-network", default=None, metavar="ADDR",
                     help="loopback address after which BACnet devices are placed")
    run.set_defaults(handler=run_sim)


def run_sim(args: argparse.Namespace) -> int:
    from towerwatch.sourced_yaml import SourceError

    try:
        building = _build(args)
    except SourceError as exc:
        print(t("profiles.errors", args.lang, count=len(exc.issues)), file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(building, args))
    except OSError as exc:
        print(t("error.start", args.lang, error=exc), file=sys.stderr)
        return 1
    return 0


def _build(args: argparse.Namespace) -> Any:
    from device_profiles.loader import builtin_profile_dir, load_profiles
    from simulators.building import SimBuilding
    from simulators.clock import SimClock
    from simulators.scenario import load_scenario
    from simulators.site import load_site, with_overrides

    site, site_raw = load_site(args.site)
    site = with_overrides(site, base_port=args.base_port, bacnet_network=args.bacnet_network)
    scenario, scenario_raw = load_scenario(args.scenario) if args.scenario else (None, None)
    profiles = load_profiles(args.profiles or [builtin_profile_dir()])
    clock = SimClock(speed=args.speed, timezone=site.timezone)
    return SimBuilding(site, profiles, clock=clock, scenario=scenario, seed=args.seed,
                       site_raw=site_raw, scenario_raw=scenario_raw)


async def _serve(building: Any, args: argparse.Namespace) -> None:
    from simulators.models.base import SimError

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await building.start()
    except SimError as exc:
        raise OSError(str(exc)) from exc
    try:
        served = building.served()
        if args.served:
            args.served.write_text(json.dumps({"site": building.site.site, "devices": served},
                                              indent=2) + "\n", encoding="utf-8")
        print(describe(building, args.lang, args.speed), flush=True)
        building.on_event = lambda text: print(t("sim.event", args.lang, text=text), flush=True)
        await building.run(stop)
    finally:
        await building.stop()
        print(t("sim.stopped", args.lang), flush=True)


def describe(building: Any, lang: Lang, speed: float) -> str:
    from device_profiles.render import table

    rows = []
    for entry in building.served():
        if entry["protocol"] == "modbus":
            where = f"modbus://{entry['host']}:{entry['port']} unit {entry['unit']}"
            if entry["framing"] == "rtu":
                where += " (RTU over TCP)"
        else:
            where = f"bacnet://{entry['address']}:{building.site.bacnet.port} " \
                    f"device {entry['instance']}"
        rows.append([entry["id"], entry["profile"], where])
    lines = [t("sim.serving", lang, site=building.site.site, count=len(rows)),
             table(["device", "profile", "endpoint"], rows)]
    if building.scenario is not None:
        timeline = building.scenario.timeline()
        span = f"{timeline[-1].at / 60:.0f} min" if timeline else "0 min"
        lines.append(t("sim.scenario", lang, count=len(timeline), span=span))
    lines.append(t("sim.speed", lang, speed=f"{speed:g}"))
    return "\n".join(lines)
