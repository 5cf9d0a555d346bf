"""``towerwatch profiles validate|show``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from towerwatch.i18n import t


def register(commands: Any) -> None:
    parser = commands.add_parser("profiles", help="check and inspect device profiles")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    validate = sub.add_parser("validate", help="check profile files; list every problem")
    validate.add_argument("paths", nargs="+", help="profile files or folders")
    validate.set_defaults(handler=run_validate)
    show = sub.add_parser("show", help="table of a profile's points and alarms")
    show.add_argument("id", help="profile id")
    show.add_argument("--profiles", action="append", metavar="DIR",
                      help="profile folder (default: the shipped profiles)")
    show.set_defaults(handler=run_show)


def run_validate(args: argparse.Namespace) -> int:
    from device_profiles.loader import check_profiles, profile_files

    if not profile_files(args.paths):
        print(t("profiles.none", args.lang, paths=", ".join(args.paths)), file=sys.stderr)
        return 2
    profiles, issues = check_profiles(args.paths)
    if issues:
        print(t("profiles.errors", args.lang, count=len(issues)), file=sys.stderr)
        for issue in issues:
            print(f"  {issue}", file=sys.stderr)
        return 1
    print(t("profiles.ok", args.lang, count=len(profiles), ids=", ".join(profiles.ids())))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from device_profiles.loader import builtin_profile_dir, load_profiles
    from device_profiles.render import render_profile
    from towerwatch.sourced_yaml import SourceError

    try:
        profiles = load_profiles(args.profiles or [builtin_profile_dir()])
    except SourceError as exc:
        print(t("profiles.errors", args.lang, count=len(exc.issues)), file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return 1
    if args.id not in profiles:
        print(t("profiles.unknown", args.lang, id=args.id, known=", ".join(profiles.ids())),
              file=sys.stderr)
        return 2
    print(render_profile(profiles.get(args.id), args.lang))
    return 0
