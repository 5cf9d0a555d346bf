"""The ``towerwatch`` command: one entry point, subcommands imported lazily."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from towerwatch.i18n import language


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="towerwatch",
        description="Towerwatch: building equipment to the people who run buildings.")
    parser.add_argument("--lang", choices=["en", "zh"], default=None,
                        help="language of messages (default: from TOWERWATCH_LANG or LANG)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from towerwatch.cli import cloud, demo, edge, profiles, sim

    profiles.register(commands)
    edge.register(commands)
    cloud.register(commands)
    sim.register(commands)
    demo.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.lang = language(args.lang)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
