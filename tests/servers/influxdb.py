"""A real InfluxDB 1.x (``influxd``) on free loopback ports, in a temp dir."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.servers import binaries
from tests.servers.httpclient import form, request
from tests.servers.ports import LOOPBACK, free_port, wait_for_http
from tests.servers.process import ServerProcess

__all__ = ["InfluxDB1Server", "rewrite_config"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECTION = re.compile(r"^\s*\[\[?([^\]]+)\]\]?\s*$")
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_-]+)\s*=")
# Listener sections that bind a port by default or when enabled: all disabled, and
# their bind-address moved to a free loopback port anyway.
_DISABLED = frozenset({"graphite", "collectd", "opentsdb", "udp", "ifql"})


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rewrite_config(default: str, workdir: Path, http_port: int) -> str:
    """Rewrite ``influxd config`` output so everything lives in ``workdir``/loopback."""
    wanted: dict[tuple[str, str], str] = {
        ("", "reporting-enabled"): "false",
        ("", "bind-address"): _quote(f"{LOOPBACK}:{free_port()}"),  # RPC (backup) service
        ("meta", "dir"): _quote(str(workdir / "meta")),
        ("data", "dir"): _quote(str(workdir / "data")),
        ("data", "wal-dir"): _quote(str(workdir / "wal")),
        ("monitor", "store-enabled"): "false",
        ("http", "bind-address"): _quote(f"{LOOPBACK}:{http_port}"),
        ("http", "unix-socket-enabled"): "false",
        ("http", "bind-socket"): _quote(str(workdir / "influxdb.sock")),
    }
    required = {key for key in wanted if key[1] != "bind-socket"}
    seen: set[tuple[str, str]] = set()
    section = ""
    out: list[str] = []
    for line in default.splitlines():
        if match := _SECTION.match(line):
            section = match.group(1).strip()
            out.append(line)
            continue
        match = _KEY.match(line)
        if match is None:
            out.append(line)
            continue
        indent, key = match.groups()
        value: str | None = wanted.get((section, key))
        if section in _DISABLED and key == "enabled":
            value = "false"
        elif section in _DISABLED and key == "bind-address":
            value = _quote(f"{LOOPBACK}:{free_port()}")
        if value is None:
            out.append(line)
        else:
            seen.add((section, key))
            out.append(f"{indent}{key} = {value}")
    missing = required - seen
    if missing:
        raise RuntimeError(f"influxd config lacks expected settings: {sorted(missing)}")
    return "\n".join(out) + "\n"


class InfluxDB1Server(ServerProcess):
    """``influxd -config CONF`` with HTTP on ``url`` and a database ``database``."""

    name = "influxdb"

    def __init__(
        self,
        *,
        database: str = "towerwatch",
        port: int | None = None,
        base_dir: Path | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(port=port, base_dir=base_dir, startup_timeout=startup_timeout)
        self.database = database
        self.config_path = self.workdir / "influxdb.conf"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _write_config(self) -> None:
        if self.config_path.exists():
            return
        result = subprocess.run(
            [str(binaries.require("influxd")), "config"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
            cwd=self.workdir,
            env=self._env(),
        )
        if result.returncode != 0 or "[http]" not in result.stdout:
            raise RuntimeError(f"influxd config failed: {result.stderr}")
        self.config_path.write_text(rewrite_config(result.stdout, self.workdir, self.port))

    def _env(self) -> Mapping[str, str]:
        # INFLUXDB_* variables would override the config file.
        return {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}

    def _argv(self) -> list[str]:
        self._write_config()
        return [str(binaries.require("influxd")), "-config", str(self.config_path)]

    def _wait_ready(self) -> None:
        wait_for_http(f"{self.url}/ping", self.startup_timeout, alive=self._alive)
        self.create_database(self.database)

    # -- HTTP API -----------------------------------------------------------------
    def query(self, q: str, database: str | None = None, *, post: bool = False) -> Any:
        """Run InfluxQL; return the decoded JSON (raises on HTTP or statement errors)."""
        params = {"q": q}
        if database:
            params["db"] = database
        if post:
            body, headers = form(params)
            resp = request("POST", f"{self.url}/query", data=body, headers=headers)
        else:
            resp = request("GET", f"{self.url}/query", params=params)
        if not resp.ok:
            raise RuntimeError(f"InfluxQL {q!r}: HTTP {resp.status} {resp.text}")
        result = resp.json()
        errors = [r["error"] for r in result.get("results", []) if "error" in r]
        if errors:
            raise RuntimeError(f"InfluxQL {q!r}: {errors}")
        return result

    def write(self, lines: str, database: str | None = None, precision: str = "ns") -> None:
        """Write line protocol to ``/write?db=``."""
        resp = request(
            "POST",
            f"{self.url}/write",
            params={"db": database or self.database, "precision": precision},
            data=lines,
        )
        if resp.status != 204:
            raise RuntimeError(f"influx write: HTTP {resp.status} {resp.text}")

    def create_database(self, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(f"invalid database name {name!r}")
        self.query(f'CREATE DATABASE "{name}"', post=True)
        return name

    def drop_database(self, name: str) -> None:
        if not _NAME.match(name):
            raise ValueError(f"invalid database name {name!r}")
        self.query(f'DROP DATABASE "{name}"', post=True)
