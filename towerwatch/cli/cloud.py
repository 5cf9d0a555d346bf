"""``towerwatch cloud serve|ingest|migrate|create-admin``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import signal
import sys
from pathlib import Path
from typing import Any

from towerwatch.i18n import t


def register(commands: Any) -> None:
    parser = commands.add_parser("cloud", help="the cloud service")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    serve = sub.add_parser("serve", help="run the API and ingest in one process")
    ingest = sub.add_parser("ingest", help="run ingest workers only (scale-out)")
    migrate = sub.add_parser("migrate", help="apply database migrations")
    admin = sub.add_parser("create-admin", help="create the first administrator")
    for p in (serve, ingest, migrate, admin):
        p.add_argument("--config", type=Path, help="settings file (YAML); TW_* env overrides")
    for p in (serve, ingest):
        p.add_argument("--workers", type=int, default=1, help="ingest workers in this process")
    serve.set_defaults(handler=run_serve, api=True)
    ingest.set_defaults(handler=run_serve, api=False)
    migrate.set_defaults(handler=run_migrate)
    admin.add_argument("username")
    admin.add_argument("--password-file", type=Path,
                       help="read the password from this file (default: ask twice)")
    admin.set_defaults(handler=run_create_admin)


def _settings(args: argparse.Namespace) -> Any:
    from cloud.settings import load_settings
    from towerwatch.sourced_yaml import SourceError

    try:
        return load_settings(args.config)
    except SourceError as exc:
        print(t("config.invalid", args.lang, file=args.config), file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return None


def run_migrate(args: argparse.Namespace) -> int:
    from cloud.db import migrate
    from cloud.db.errors import StoreError

    settings = _settings(args)
    if settings is None:
        return 2
    try:
        before, after = migrate(settings.database_url)
    except StoreError as exc:
        print(t("error.start", args.lang, error=exc), file=sys.stderr)
        return 1
    print(t("cloud.migrated", args.lang, before=before or "empty", after=after))
    return 0


def run_create_admin(args: argparse.Namespace) -> int:
    from cloud.db import Database, create_admin
    from cloud.db.errors import StoreError

    settings = _settings(args)
    if settings is None:
        return 2
    if args.password_file is not None:
        password = args.password_file.read_text(encoding="utf-8").strip()
    else:
        password = getpass.getpass(t("cloud.password", args.lang))
        if password != getpass.getpass(t("cloud.password_again", args.lang)):
            print(t("cloud.password_mismatch", args.lang), file=sys.stderr)
            return 1
    db = Database.from_url(settings.database_url)
    try:
        with db.transaction() as session:
            create_admin(session, args.username, password)
    except StoreError as exc:
        print(t("error.start", args.lang, error=exc), file=sys.stderr)
        return 1
    finally:
        db.dispose()
    print(t("cloud.admin_created", args.lang, user=args.username))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from cloud.service import CloudError, CloudService, settle_collector

    settings = _settings(args)
    if settings is None:
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        service = CloudService(settings, workers=args.workers, api=args.api)

        def ready(svc: CloudService) -> None:
            settle_collector()
            if svc.api_port is not None:
                host = settings.api.listen.rpartition(":")[0] or "127.0.0.1"
                print(t("cloud.api_ready", args.lang, url=f"http://{host}:{svc.api_port}"),
                      flush=True)
            print(t("cloud.ingest_ready", args.lang, workers=len(svc.workers),
                    broker=settings.mqtt.url), flush=True)
            if svc.metrics_port is not None:
                listen = settings.ingest.metrics_listen or ""
                host = listen.rpartition(":")[0] or "127.0.0.1"
                print(t("cloud.metrics_ready", args.lang,
                        url=f"http://{host}:{svc.metrics_port}"), flush=True)

        await service.run(stop, on_ready=ready)

    try:
        asyncio.run(main())
    except CloudError as exc:
        print(t("error.start", args.lang, error=exc), file=sys.stderr)
        return 1
    return 0
