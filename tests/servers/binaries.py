"""Locate server binaries; a missing one raises :class:`ServerUnavailable`."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

__all__ = ["DEBIAN_PACKAGES", "ServerUnavailable", "find_binary", "require"]


class ServerUnavailable(RuntimeError):
    """A server (or a tool needed to run it) is not installed on this machine."""


#: Debian package that provides each binary we may need.
DEBIAN_PACKAGES: dict[str, str] = {
    "mosquitto": "mosquitto",
    "mosquitto_passwd": "mosquitto",
    "mosquitto_pub": "mosquitto-clients",
    "mosquitto_sub": "mosquitto-clients",
    "initdb": "postgresql",
    "pg_ctl": "postgresql",
    "psql": "postgresql-client",
    "influxd": "influxdb",
    "influx": "influxdb-client",
    "victoria-metrics": "victoria-metrics",
    "openssl": "openssl",
    "mbpoll": "mbpoll",
    "socat": "socat",
    "runuser": "util-linux",
}

_POSTGRES_TOOLS = frozenset({"initdb", "pg_ctl", "postgres", "psql", "createdb", "pg_isready"})
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def _postgres_bin_dirs() -> list[str]:
    """``/usr/lib/postgresql/<version>/bin``, newest version first."""

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    return sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)


def find_binary(name: str) -> Path | None:
    """Return the path of executable ``name`` or ``None``.

    PostgreSQL tools are looked up in ``/usr/lib/postgresql/*/bin`` first (``initdb`` and
    ``pg_ctl`` are not on PATH on Debian; ``/usr/bin/psql`` is only a wrapper), then PATH,
    then the sbin directories (which a non-login root shell may lack).
    """
    dirs: list[str] = []
    if name in _POSTGRES_TOOLS:
        dirs.extend(_postgres_bin_dirs())
    dirs.extend(os.environ.get("PATH", os.defpath).split(os.pathsep))
    dirs.extend(_SBIN_DIRS)
    found = shutil.which(name, path=os.pathsep.join(d for d in dirs if d))
    return Path(found) if found else None


def require(name: str) -> Path:
    """Return the path of ``name`` or raise :class:`ServerUnavailable` naming its package."""
    path = find_binary(name)
    if path is None:
        package = DEBIAN_PACKAGES.get(name, name)
        raise ServerUnavailable(
            f"{name!r} not found on PATH or in /usr/sbin, /usr/lib/postgresql/*/bin; "
            f"install the Debian package {package!r} (apt-get install {package})"
        )
    return path
