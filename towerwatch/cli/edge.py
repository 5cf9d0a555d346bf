"""``towerwatch edge check|plan|scan|run``: commissioning and running a gateway."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from towerwatch.i18n import t


def register(commands: Any) -> None:
    parser = commands.add_parser("edge", help="the edge gateway")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="check a site config and the profiles it names")
    check.add_argument("--config", required=True, type=Path)
    check.set_defaults(handler=run_check)
    plan = sub.add_parser("plan", help="show the read plan of every device")
    plan.add_argument("--config", required=True, type=Path)
    plan.set_defaults(handler=run_plan)
    run = sub.add_parser("run", help="run the gateway until stopped")
    run.add_argument("--config", required=True, type=Path)
    run.set_defaults(handler=run_daemon)
    scan = sub.add_parser("scan", help="find devices that answer (commissioning)")
    kinds = scan.add_subparsers(dest="protocol", required=True, metavar="PROTOCOL")
    modbus = kinds.add_parser("modbus", help="probe unit ids at HOST[:PORT]")
    modbus.add_argument("target", metavar="HOST[:PORT]")
    modbus.add_argument("--units", default="1-247", help="unit ids, e.g. 1-10,15 (default 1-247)")
    modbus.add_argument("--rtu", action="store_true", help="RTU framing over TCP")
    modbus.add_argument("--timeout", type=float, default=0.3, help="seconds per unit")
    modbus.set_defaults(handler=run_scan_modbus)
    bacnet = kinds.add_parser("bacnet", help="Who-Is on the network (or at --address)")
    bacnet.add_argument("--address", help="a device address instead of the broadcast")
    bacnet.add_argument("--bind", default="0.0.0.0:47809",
                        help="our own BACnet address (host/prefix:port), not port 47808")
    bacnet.add_argument("--wait", type=float, default=2.0, help="seconds to collect I-Am")
    bacnet.set_defaults(handler=run_scan_bacnet)


def _load(args: argparse.Namespace) -> Any:
    from edge.errors import ConfigError
    from edge.loading import load_config

    try:
        return load_config(args.config)
    except ConfigError as exc:
        _print_issues(args, exc)
        return None


def _print_issues(args: argparse.Namespace, exc: Any) -> None:
    from edge.loading import issue_text

    print(t("config.invalid", args.lang, file=args.config), file=sys.stderr)
    for issue in exc.issues:
        print(f"  {issue_text(issue, args.lang)}", file=sys.stderr)


def run_check(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if loaded is None:
        return 1
    cfg = loaded.config
    print(t("edge.check_ok", args.lang, file=args.config, site=cfg.site, gateway=cfg.gateway,
            devices=len(cfg.devices)))
    return 0


def run_plan(args: argparse.Namespace) -> int:
    from device_profiles.schema import ModbusProfile, PointKind
    from edge.plan_render import render_plan
    from edge.planner import plan_reads

    loaded = _load(args)
    if loaded is None:
        return 1
    for device in loaded.config.devices:
        profile = loaded.profile_of(device)
        if not isinstance(profile, ModbusProfile):
            covs = sum(1 for p in profile.points if getattr(p, "cov", False))
            print(t("edge.plan_bacnet", args.lang, device=device.id, points=len(profile.points),
                    cov=covs, per=profile.limits.max_properties))
            print()
            continue
        disabled = set(device.disabled_points)
        points = [p for p in profile.points
                  if p.id not in disabled and p.kind is not PointKind.EVENT_LOG]
        limits = profile.limits
        max_gap = loaded.config.polling.max_gap
        blocks = plan_reads(points, max_registers=device.max_registers or limits.max_registers,
                            max_bits=limits.max_bits,
                            max_gap=limits.max_gap if max_gap is None else max_gap,
                            forbidden=limits.forbidden)
        groups = {**profile.poll_groups, **device.poll}
        print(render_plan(device.id, profile, blocks, groups))
        print()
    return 0


def run_scan_modbus(args: argparse.Namespace) -> int:
    from edge.errors import DeviceError
    from edge.scan_modbus import parse_units, scan_modbus

    target = _host_port(args.target, 502)
    if target is None:
        print(t("error.target", args.lang, target=args.target), file=sys.stderr)
        return 2
    host, port = target
    try:
        units = parse_units(args.units)
    except ValueError as exc:
        print(f"--units: {exc}", file=sys.stderr)
        return 2
    try:
        hits = asyncio.run(scan_modbus(host, port, units, timeout=args.timeout,
                                       framing="rtu" if args.rtu else "socket"))
    except DeviceError as exc:
        print(t("error.unreachable", args.lang, target=f"{host}:{port}", error=exc),
              file=sys.stderr)
        return 1
    found = [h for h in hits if h.answered]
    for hit in found:
        identity = ", ".join(f"{k}={v}" for k, v in (hit.identity or {}).items())
        print(f"unit {hit.unit:3d}  {hit.detail}" + (f"  [{identity}]" if identity else ""))
    print(t("edge.scan_found", args.lang, count=len(found), tried=len(units)))
    return 0 if found else 1


def _host_port(text: str, default_port: int) -> tuple[str, int] | None:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``; None when it is none of those."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else ""
    else:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if not host or (port_text and not port_text.isdigit()):
        return None
    port = int(port_text) if port_text else default_port
    return (host, port) if 0 < port < 65536 else None


def run_scan_bacnet(args: argparse.Namespace) -> int:
    from edge.config import BacnetClientConfig
    from edge.errors import DeviceError
    from edge.scan_bacnet import scan_bacnet

    try:
        results = asyncio.run(scan_bacnet(BacnetClientConfig(address=args.bind),
                                          address=args.address, wait=args.wait))
    except DeviceError as exc:
        print(t("error.start", args.lang, error=exc), file=sys.stderr)
        return 1
    for result in results:
        print(result)
    print(t("edge.scan_found_bacnet", args.lang, count=len(results)))
    return 0 if results else 1


def run_daemon(args: argparse.Namespace) -> int:
    from edge.daemon import run_gateway
    from edge.errors import ConfigError, EdgeError

    if _load(args) is None:
        return 1

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_gateway(args.config, stop=stop)

    try:
        asyncio.run(main())
    except ConfigError as exc:
        _print_issues(args, exc)
        return 1
    except EdgeError as exc:
        print(t("error.start", args.lang, error=exc), file=sys.stderr)
        return 1
    return 0
