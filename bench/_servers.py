"""Real servers for the cloud benches, from ``tests.servers`` (free ports, temp dirs).

Used by :mod:`bench.ingest` and :mod:`bench.api`::

    with Servers(mosquitto=True, postgres=True, influx=True) as servers:
        url = servers.postgres_database("bench_1")   # migrated, fresh
        db = servers.influx_database("bench_1")      # fresh

Everything started is stopped and its temp dir removed on exit. CPU time of a server
(its process and children) is read with :func:`cpu_seconds`, so a bench can say where
the 2 cores went.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.servers.influxdb import InfluxDB1Server
from tests.servers.mosquitto import MosquittoServer
from tests.servers.postgres import PostgresServer

__all__ = ["Servers", "machine_cpu", "process_cpu", "sqlite_urls"]


_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields from 3 (state) on


def process_cpu(pid: int | None, *, children: bool = True) -> float:
    """User + system CPU seconds of ``pid`` (and its live descendants), 0 when gone."""
    if pid is None:
        return 0.0
    own = _stat(pid)
    if own is None:
        return 0.0
    total = (int(own[11]) + int(own[12])) / _TICKS
    if children:
        parents = {pid}
        stats = [(int(f[1]), int(f[11]) + int(f[12]), int(name))
                 for name in os.listdir("/proc") if name.isdigit()
                 if (f := _stat(int(name))) is not None]
        grew = True
        while grew:  # descendants at any depth
            grew = False
            for ppid, _ticks, child in stats:
                if ppid in parents and child not in parents:
                    parents.add(child)
                    grew = True
        total += sum(ticks for _ppid, ticks, child in stats
                     if child in parents and child != pid) / _TICKS
    return total


def machine_cpu() -> dict[str, float]:
    """CPU seconds of the whole machine (all cores): busy, idle, steal (``/proc/stat``)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(v) / _TICKS for v in [*fields, "0", "0", "0", "0"][:8])
    return {"busy": user + nice + system + irq + softirq, "idle": idle + iowait,
            "steal": steal}


def _postmaster_pid(server: PostgresServer) -> int | None:
    try:
        return int((server.data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class Servers:
    """Start the servers asked for; stop them all on exit."""

    def __init__(self, *, mosquitto: bool = False, postgres: bool = False,
                 influx: bool = False, max_queued_messages: int = 2_000_000,
                 max_inflight_messages: int = 1000) -> None:
        self._want = (mosquitto, postgres, influx)
        self._max_queued = max_queued_messages
        self._max_inflight = max_inflight_messages
        self.mosquitto: MosquittoServer | None = None
        self.postgres: PostgresServer | None = None
        self.influx: InfluxDB1Server | None = None

    def __enter__(self) -> Self:
        mosquitto, postgres, influx = self._want
        try:
            if mosquitto:
                # persistence is on (MosquittoServer); a deep queue so a burst is never
                # dropped, and a wide in-flight window towards the subscribers.
                self.mosquitto = MosquittoServer(
                    max_queued_messages=self._max_queued,
                    max_inflight_messages=self._max_inflight,
                    extra_config="max_queued_bytes 0",
                ).start()
            if postgres:
                self.postgres = PostgresServer().start()
            if influx:
                self.influx = InfluxDB1Server().start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for server in (self.influx, self.postgres, self.mosquitto):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.close()

    # -- fresh databases ----------------------------------------------------------
    def postgres_database(self, name: str) -> str:
        """A fresh PostgreSQL database, migrated to the current schema; its URL."""
        from cloud.db import migrate

        assert self.postgres is not None, "PostgreSQL was not started"
        self.postgres.drop_database(name)
        self.postgres.create_database(name)
        url = self.postgres.sqlalchemy_url_for(name)
        migrate(url)
        return url

    def influx_database(self, name: str) -> str:
        """A fresh InfluxDB database; its name."""
        assert self.influx is not None, "InfluxDB was not started"
        with contextlib.suppress(Exception):
            self.influx.drop_database(name)
        return self.influx.create_database(name)

    # -- CPU accounting -----------------------------------------------------------
    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each running server."""
        out: dict[str, float] = {}
        if self.mosquitto is not None:
            out["mosquitto"] = process_cpu(self.mosquitto.pid)
        if self.postgres is not None:
            out["postgres"] = process_cpu(_postmaster_pid(self.postgres))
        if self.influx is not None:
            out["influxd"] = process_cpu(self.influx.pid)
        return out


def sqlite_urls(folder: Path, tag: str) -> tuple[str, Path]:
    """A relational SQLite URL (migrated) and a time-series SQLite path in ``folder``."""
    from cloud.db import migrate

    url = f"sqlite:///{folder / f'{tag}-cloud.db'}"
    migrate(url)
    return url, folder / f"{tag}-ts.db"
