"""``towerwatch demo``: the whole system on embedded defaults, until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from towerwatch.i18n import t


def _shipped(folder: str, name: str) -> Path:
    return Path(str(resources.files("simulators") / folder / name))


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "demo", help="run the example building, an edge gateway, a broker and the cloud")
    parser.add_argument("--site", type=Path, default=_shipped("sites", "example.yaml"),
                        help="simulated building (default: the example building)")
    parser.add_argument("--scenario", type=Path, default=_shipped("scenarios", "demo.yaml"),
                        help="scenario file (default: the demo scenario)")
    parser.add_argument("--speed", type=float, default=1.0, help="clock speed (x real time)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--mqtt-url", help="use this broker instead of the embedded one")
    parser.add_argument("--database-url", help="e.g. postgresql://user@host/db (default SQLite)")
    parser.add_argument("--influx-url", help="store time series in InfluxDB 1.x at this URL")
    parser.add_argument("--api-port", type=int, default=8080, help="API port (or a free one)")
    parser.add_argument("--base-port", type=int, default=15020,
                        help="first Modbus port of the simulators (0: any free ports)")
    parser.add_argument("--bacnet-network", default="127.0.1.0",
                        help="loopback address after which BACnet devices are placed")
    parser.add_argument("--workdir", type=Path, help="keep databases here (default: temporary)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from towerwatch.demo.run import DemoOptions, DemoReady, run_demo

    options = DemoOptions(site=args.site, scenario=args.scenario, speed=args.speed,
                          seed=args.seed, mqtt_url=args.mqtt_url,
                          database_url=args.database_url, influx_url=args.influx_url,
                          api_port=args.api_port, base_port=args.base_port,
                          bacnet_network=args.bacnet_network, workdir=args.workdir)

    def ready(info: DemoReady) -> None:
        lines = [t("demo.ready", args.lang, devices=info.devices),
                 t("demo.api", args.lang, url=info.api_url),
                 t("demo.login", args.lang, user=info.username, password=info.password),
                 t("demo.edge", args.lang, url=info.edge_url),
                 t("demo.broker", args.lang, url=info.broker_url),
                 t("demo.try", args.lang, url=info.api_url),
                 t("demo.stop", args.lang)]
        print("\n".join(lines), flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_demo(options, stop, on_ready=ready)

    try:
        asyncio.run(main())
    except Exception as exc:  # the operator reads one line, not a traceback
        print(t("error.start", args.lang, error=exc), file=sys.stderr)
        return 1
    print(t("demo.stopped", args.lang), flush=True)
    return 0
