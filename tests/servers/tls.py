"""Throw-away certificate authorities for TLS tests, made with the ``openssl`` CLI.

(The ``cryptography`` package is not a dependency of this project, so the CLI is used.)
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.servers import binaries

__all__ = ["CertificateAuthority", "KeyPair"]

_DAYS = "2"


@dataclass(frozen=True)
class KeyPair:
    cert_path: Path
    key_path: Path


def _openssl(*args: str) -> None:
    openssl = str(binaries.require("openssl"))
    result = subprocess.run(
        [openssl, *args], capture_output=True, text=True, check=False, timeout=30
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {result.stderr.strip()}")


def _new_key(path: Path) -> None:
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path)
    )
    path.chmod(0o600)


def _subject_alt_names(hosts: Sequence[str]) -> str:
    names = []
    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            names.append(f"DNS:{host}")
        else:
            names.append(f"IP:{host}")
    return ",".join(names)


class CertificateAuthority:
    """A self-signed CA in ``directory`` that can issue server and client certificates.

    Two ``CertificateAuthority`` objects are unrelated: use a second one as the
    "wrong CA" in negative TLS tests.
    """

    def __init__(self, directory: Path, name: str = "Towerwatch Test CA") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.name = name
        self.cert_path = directory / "ca.crt"
        self.key_path = directory / "ca.key"
        self._serial = 1
        _new_key(self.key_path)
        _openssl(
            "req", "-x509", "-new", "-key", str(self.key_path), "-out", str(self.cert_path),
            "-days", _DAYS, "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip

    def issue(
        self,
        common_name: str,
        hosts: Sequence[str] = (),
        *,
        client: bool = False,
        stem: str | None = None,
    ) -> KeyPair:
        """Issue a leaf certificate (server by default, ``client=True`` for mTLS)."""
        stem = stem or common_name.replace("/", "_").replace(" ", "_")
        key = self.directory / f"{stem}.key"
        csr = self.directory / f"{stem}.csr"
        cert = self.directory / f"{stem}.crt"
        ext = self.directory / f"{stem}.ext"
        lines = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}",
        ]
        if hosts:
            lines.append(f"subjectAltName={_subject_alt_names(hosts)}")
        ext.write_text("\n".join(lines) + "\n")
        _new_key(key)
        _openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", f"/CN={common_name}")
        self._serial += 1
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.cert_path),
            "-CAkey", str(self.key_path), "-set_serial", str(self._serial),
            "-out", str(cert), "-days", _DAYS, "-extfile", str(ext),
        )  # fmt: skip
        csr.unlink()
        ext.unlink()
        return KeyPair(cert, key)

    def issue_server(self, hosts: Sequence[str] = ("127.0.0.1", "localhost")) -> KeyPair:
        return self.issue(hosts[0] if hosts else "server", hosts, stem="server")

    def issue_client(self, common_name: str) -> KeyPair:
        return self.issue(common_name, client=True, stem=f"client-{common_name}")
