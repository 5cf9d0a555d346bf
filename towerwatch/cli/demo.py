"""``towerwatch demo``: the whole system on embedded defaults.

Today that is the example simulated building with the demo scenario; the edge
gateway and the cloud join it as they land.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path
from typing import Any


def _shipped(folder: str, name: str) -> Path:
    return Path(str(resources.files("simulators") / folder / name))


def register(commands: Any) -> None:
    parser = commands.add_parser("demo", help="run the example building on embedded defaults")
    parser.add_argument("--site", type=Path, default=_shipped("sites", "example.yaml"),
                        help="site file (default: the example building)")
    parser.add_argument("--scenario", type=Path, default=_shipped("scenarios", "demo.yaml"),
                        help="scenario file (default: the demo scenario)")
    parser.add_argument("--speed", type=float, default=1.0, help="clock speed (x real time)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--served", type=Path, metavar="FILE",
                        help="write the served devices to FILE as JSON")
    parser.add_argument("--base-port", type=int, default=None, metavar="PORT",
                        help="first Modbus TCP port (0: any free ports)")
    parser.add_argument("--bacnet-network", default=None, metavar="ADDR",
                        help="loopback address after which BACnet devices are placed")
    parser.set_defaults(handler=run_demo, profiles=None)


def run_demo(args: argparse.Namespace) -> int:
    from towerwatch.cli.sim import run_sim

    return run_sim(args)
