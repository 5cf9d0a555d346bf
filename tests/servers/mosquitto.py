"""A real Mosquitto broker on a free loopback port, in a temp dir."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TypedDict

from tests.servers import binaries
from tests.servers.ports import wait_for_port
from tests.servers.process import ServerProcess, chown_tree
from tests.servers.tls import CertificateAuthority, KeyPair

__all__ = ["BrokerOptions", "MosquittoServer"]


class BrokerOptions(TypedDict, total=False):
    """What a test asks of a broker: :class:`MosquittoServer`'s keyword arguments but the
    work dir and the start-up timeout (``mosquitto_factory`` takes the same)."""

    tls: bool | CertificateAuthority
    users: Mapping[str, str] | None
    acl: str | os.PathLike[str] | None
    allow_anonymous: bool | None
    require_client_cert: bool
    port: int | None
    max_queued_messages: int
    max_inflight_messages: int | None
    extra_config: str


class MosquittoServer(ServerProcess):
    """``mosquitto -c CONF`` with persistence in its temp dir.

    * ``tls``: ``True`` makes a fresh CA (see :attr:`ca`, :attr:`ca_path`); pass a
      :class:`CertificateAuthority` to have the server certificate issued by it.
    * ``users``: ``{name: password}`` written with ``mosquitto_passwd -b``; anonymous
      access is then refused unless ``allow_anonymous=True``.
    * ``acl``: ACL text (``str``) or the path of an ACL file (``os.PathLike``).
    * ``require_client_cert``: mTLS; issue client certs with ``server.ca.issue_client``.

    ``restart()`` reuses the same port and persistence file (broker-outage tests).
    """

    name = "mosquitto"
    owner = "mosquitto"

    def __init__(
        self,
        *,
        tls: bool | CertificateAuthority = False,
        users: Mapping[str, str] | None = None,
        acl: str | os.PathLike[str] | None = None,
        allow_anonymous: bool | None = None,
        require_client_cert: bool = False,
        port: int | None = None,
        max_queued_messages: int = 100_000,
        max_inflight_messages: int | None = None,
        extra_config: str = "",
        base_dir: Path | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        super().__init__(port=port, base_dir=base_dir, startup_timeout=startup_timeout)
        self.users = dict(users or {})
        self.allow_anonymous = not self.users if allow_anonymous is None else allow_anonymous
        self.persistence_dir = self.workdir / "data"
        self.config_path = self.workdir / "mosquitto.conf"
        self.ca: CertificateAuthority | None = None
        self.server_cert: KeyPair | None = None
        if require_client_cert and not tls:
            raise ValueError("require_client_cert needs tls")
        if tls:
            self.ca = (
                tls
                if isinstance(tls, CertificateAuthority)
                else CertificateAuthority(self.workdir / "ca", "Towerwatch Mosquitto Test CA")
            )
            self.server_cert = self.ca.issue_server()
        self._acl_text = Path(acl).read_text() if isinstance(acl, os.PathLike) else acl
        self._require_client_cert = require_client_cert
        self._max_queued = max_queued_messages
        self._max_inflight = max_inflight_messages
        self._extra_config = extra_config
        self._write_files()

    # -- properties ---------------------------------------------------------------
    @property
    def tls(self) -> bool:
        return self.ca is not None

    @property
    def ca_path(self) -> Path:
        """The CA certificate a client must trust (only with ``tls``)."""
        if self.ca is None:
            raise AttributeError("this broker has no TLS")
        return self.ca.cert_path

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    # -- files --------------------------------------------------------------------
    def _write_files(self) -> None:
        self.persistence_dir.mkdir(exist_ok=True)
        lines = [
            "per_listener_settings false",
            f"listener {self.port} {self.host}",
        ]
        if self.server_cert is not None:
            assert self.ca is not None
            # Copies inside our dir: the broker reads them as the mosquitto user.
            tls_dir = self.workdir / "tls"
            tls_dir.mkdir(exist_ok=True)
            for src, dst in (
                (self.ca.cert_path, "ca.crt"),
                (self.server_cert.cert_path, "server.crt"),
                (self.server_cert.key_path, "server.key"),
            ):
                (tls_dir / dst).write_bytes(src.read_bytes())
            lines += [
                f"cafile {tls_dir / 'ca.crt'}",
                f"certfile {tls_dir / 'server.crt'}",
                f"keyfile {tls_dir / 'server.key'}",
                f"require_certificate {str(self._require_client_cert).lower()}",
            ]
        lines.append(f"allow_anonymous {str(self.allow_anonymous).lower()}")
        if self.users:
            password_file = self.workdir / "passwd"
            self._write_passwords(password_file)
            lines.append(f"password_file {password_file}")
        if self._acl_text is not None:
            acl_file = self.workdir / "acl"
            acl_file.write_text(self._acl_text.rstrip("\n") + "\n")
            lines.append(f"acl_file {acl_file}")
        lines += [
            "persistence true",
            f"persistence_location {self.persistence_dir}/",
            f"max_queued_messages {self._max_queued}",
        ]
        if self._max_inflight is not None:
            lines.append(f"max_inflight_messages {self._max_inflight}")
        lines += [
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %H:%M:%S",
        ]
        if self._extra_config:
            lines.append(self._extra_config)
        self.config_path.write_text("\n".join(lines) + "\n")
        for path in self.workdir.rglob("*"):
            if path.is_file():
                path.chmod(0o600)
        chown_tree(self.workdir, "mosquitto")

    def _write_passwords(self, path: Path) -> None:
        tool = str(binaries.require("mosquitto_passwd"))
        for index, (user, password) in enumerate(self.users.items()):
            create = ["-c"] if index == 0 else []
            result = subprocess.run(
                [tool, *create, "-b", str(path), user, password],
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
            if result.returncode != 0:
                raise RuntimeError(f"mosquitto_passwd failed: {result.stderr or result.stdout}")

    # -- lifecycle ----------------------------------------------------------------
    def _argv(self) -> list[str]:
        return [str(binaries.require("mosquitto")), "-c", str(self.config_path)]

    def _wait_ready(self) -> None:
        wait_for_port(self.host, self.port, self.startup_timeout, alive=self._alive)

    def restart(self, *, kill: bool = False) -> MosquittoServer:
        """Stop (SIGTERM saves the persistence DB; ``kill=True`` crashes) and start again
        on the same port with the same config and persistence."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()
