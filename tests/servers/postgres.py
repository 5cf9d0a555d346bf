"""A real PostgreSQL cluster (initdb + pg_ctl) on a free loopback port, in a temp dir."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Self

from tests.servers import binaries
from tests.servers.process import ManagedServer, ServerStartError, as_user

__all__ = ["PostgresServer"]

_USER = "postgres"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"invalid database name {name!r} (use [a-z_][a-z0-9_]*)")
    return name


class PostgresServer(ManagedServer):
    """``initdb`` + ``pg_ctl start`` (as the postgres user when root), trust auth.

    ``dsn`` is ``postgresql://postgres@127.0.0.1:PORT/DBNAME``; ``sqlalchemy_url`` the
    same with ``postgresql+psycopg://``. ``create_database()`` gives fresh databases.
    """

    name = "postgres"
    owner = _USER

    def __init__(
        self,
        *,
        database: str = "towerwatch",
        port: int | None = None,
        base_dir: Path | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.database = _check_name(database)
        super().__init__(port=port, base_dir=base_dir, startup_timeout=startup_timeout)
        self.user = _USER
        self.data_dir = self.workdir / "data"
        self.socket_dir = self.workdir
        self._started = False

    # -- urls ---------------------------------------------------------------------
    def dsn_for(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    @property
    def dsn(self) -> str:
        return self.dsn_for(self.database)

    def sqlalchemy_url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    @property
    def sqlalchemy_url(self) -> str:
        return self.sqlalchemy_url_for(self.database)

    @property
    def running(self) -> bool:
        return self._started

    # -- helpers ------------------------------------------------------------------
    def _run_as_postgres(self, *argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            as_user(argv, _USER),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            env=self._env(),
        )

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        return env

    def psql(self, sql: str, database: str | None = None, timeout: float = 30.0) -> str:
        """Run SQL with ``psql`` over TCP; return unaligned, tuples-only output."""
        result = subprocess.run(
            [
                str(binaries.require("psql")), "-X", "-q", "-A", "-t",
                "-v", "ON_ERROR_STOP=1", "-d", self.dsn_for(database or self.database),
                "-c", sql,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            env={**self._env(), "PGCONNECT_TIMEOUT": "5"},
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"psql failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout.strip()

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{_check_name(name)}"', database="postgres")
        return name

    def drop_database(self, name: str) -> None:
        self.psql(
            f'DROP DATABASE IF EXISTS "{_check_name(name)}" WITH (FORCE)', database="postgres"
        )

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> Self:
        if self._started:
            return self
        initdb = str(binaries.require("initdb"))
        pg_ctl = str(binaries.require("pg_ctl"))
        if not (self.data_dir / "PG_VERSION").exists():
            result = self._run_as_postgres(
                initdb, "-D", str(self.data_dir), "-U", _USER, "-A", "trust",
                "-E", "UTF8", "--no-sync", "--no-instructions",
                timeout=self.startup_timeout,
            )  # fmt: skip
            if result.returncode != 0:
                raise ServerStartError(f"initdb failed: {result.stderr or result.stdout}")
        options = (
            f"-p {self.port} -c listen_addresses={self.host} "
            f"-c unix_socket_directories={self.socket_dir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        self._track()
        self._started = True
        result = self._run_as_postgres(
            pg_ctl, "-D", str(self.data_dir), "-l", str(self.log_path), "-w",
            "-t", str(int(self.startup_timeout)), "-o", options, "start",
            timeout=self.startup_timeout + 10,
        )  # fmt: skip
        if result.returncode != 0:
            self.stop()
            raise self.startup_error(f"pg_ctl start failed: {result.stderr or result.stdout}")
        try:
            if self.database != "postgres":
                self.create_database(self.database)
        except BaseException:
            self.stop()
            raise
        return self

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, timeout: float = 10.0) -> None:
        """``pg_ctl stop -m fast``; SIGKILL the postmaster if that does not work."""
        if not self._started:
            return
        self._started = False
        self._untrack()
        pg_ctl = binaries.find_binary("pg_ctl")
        stopped = False
        if pg_ctl is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                result = self._run_as_postgres(
                    str(pg_ctl), "-D", str(self.data_dir), "-m", "fast", "-w",
                    "-t", str(int(timeout)), "stop", timeout=timeout + 5,
                )  # fmt: skip
                stopped = result.returncode == 0
        pid = self._postmaster_pid()
        if not stopped and pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def __repr__(self) -> str:
        return f"<PostgresServer {self.dsn} dir={self.workdir}>"
