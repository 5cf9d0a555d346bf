"""Tag keys: encrypted at rest under a master key, or derived per tag from it.

One master secret (from a file or an environment variable, see
:mod:`cloud.patrols.settings`) yields two independent keys by HMAC-SHA256 with fixed
labels: a 256-bit *vault key* that seals stored tag keys with AES-GCM, and a 128-bit
*diversification key* for derived tag keys.

Key modes of a SUN checkpoint:

``stored``
    The SDM meta read key and file read key were programmed by someone else's tool and
    handed over; each is sealed with AES-256-GCM (random 96-bit nonce) and authenticated
    data naming its site, checkpoint and role, so a sealed key copied to another row does
    not open.
``derived``
    Keys are diversified per tag with the NXP AN10922 AES-128 method (CMAC with the
    AN10922 padding rule) from the diversification key: diversification input
    ``key number ‖ UID ‖ SHA-256(site)[:16]``. Nothing secret is stored; the keys to
    program are shown once at enrolment. ``key_version`` lets a site rotate the master
    secret's derived keys tag by tag. The vault keeps the derived keys of the last
    :data:`DERIVED_CACHE` tags it was asked about (the master secret is in memory anyway),
    so verifying a tap costs no diversification.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cloud.patrols.errors import PatrolConfigError

__all__ = [
    "DERIVED_CACHE",
    "MIN_MASTER_BYTES",
    "KeyVault",
    "TagKeys",
    "an10922_diversify",
    "parse_master_key",
]

MIN_MASTER_BYTES: Final = 16
DERIVED_CACHE: Final = 8192
"""How many tags' derived keys a vault keeps (least recently used go first)."""
META_KEY_NO: Final = 1
FILE_KEY_NO: Final = 2
_VAULT_LABEL: Final = b"towerwatch patrol key vault v1"
_KDF_LABEL: Final = b"towerwatch patrol tag kdf v1"
_NONCE_BYTES: Final = 12
_BLOCK: Final = 16
_RB: Final = 0x87


@dataclass(frozen=True, slots=True)
class TagKeys:
    """The two AES-128 keys the server needs to verify a tag's SUN messages."""

    meta_read: bytes
    file_read: bytes

    def __post_init__(self) -> None:
        for name, key in (("meta_read", self.meta_read), ("file_read", self.file_read)):
            if len(key) != 16:
                raise ValueError(f"{name} key must be 16 bytes, got {len(key)}")


def parse_master_key(text: str, where: str) -> bytes:
    """The master secret from its hex or text form (at least 16 bytes)."""
    text = text.strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = text.encode("utf-8")
    if len(raw) < MIN_MASTER_BYTES:
        raise PatrolConfigError(
            f"{where}: the patrol master key must be at least {MIN_MASTER_BYTES} bytes "
            "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')")
    return raw


# -- AN10922 ---------------------------------------------------------------------------
def _shift_left(block: bytes) -> bytes:
    value = int.from_bytes(block, "big") << 1
    return (value & ((1 << 128) - 1)).to_bytes(_BLOCK, "big")


def _subkeys(key: bytes) -> tuple[bytes, bytes]:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    l_block = encryptor.update(bytes(_BLOCK)) + encryptor.finalize()
    k1 = _shift_left(l_block)
    if l_block[0] & 0x80:
        k1 = k1[:-1] + bytes([k1[-1] ^ _RB])
    k2 = _shift_left(k1)
    if k1[0] & 0x80:
        k2 = k2[:-1] + bytes([k2[-1] ^ _RB])
    return k1, k2


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def an10922_diversify(master: bytes, data: bytes) -> bytes:
    """AN10922 AES-128 key diversification of ``master`` with input ``data`` (1–31 bytes).

    ``D = 0x01 ‖ data`` is padded with ``80 00…`` to 32 bytes when shorter (then the last
    block is XORed with CMAC subkey K2, else with K1) and CBC-MACed under ``master``.
    """
    if len(master) != 16:
        raise ValueError(f"the AN10922 master key must be 16 bytes, got {len(master)}")
    if not 1 <= len(data) <= 31:
        raise ValueError(f"AN10922 diversification input must be 1..31 bytes, got {len(data)}")
    k1, k2 = _subkeys(master)
    message = b"\x01" + data
    if len(message) < 2 * _BLOCK:
        message = message + b"\x80" + bytes(2 * _BLOCK - len(message) - 1)
        last_key = k2
    else:
        last_key = k1
    message = message[:_BLOCK] + _xor(message[_BLOCK:], last_key)
    encryptor = Cipher(algorithms.AES(master), modes.CBC(bytes(_BLOCK))).encryptor()
    return (encryptor.update(message) + encryptor.finalize())[-_BLOCK:]


# -- the vault -------------------------------------------------------------------------
class KeyVault:
    """Seals stored tag keys and derives per-tag keys, from one master secret."""

    def __init__(self, master: bytes) -> None:
        if len(master) < MIN_MASTER_BYTES:
            raise PatrolConfigError(
                f"the patrol master key must be at least {MIN_MASTER_BYTES} bytes")
        self._aead = AESGCM(hmac.new(master, _VAULT_LABEL, hashlib.sha256).digest())
        self._kdf = hmac.new(master, _KDF_LABEL, hashlib.sha256).digest()[:16]
        self._derived = functools.lru_cache(maxsize=DERIVED_CACHE)(self._derive)

    def seal(self, key: bytes, aad: str) -> bytes:
        """``nonce ‖ ciphertext ‖ tag`` of ``key``, bound to ``aad``."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, key, aad.encode("utf-8"))

    def open(self, sealed: bytes, aad: str) -> bytes:
        """The key sealed by :meth:`seal` with the same ``aad``; :class:`PatrolConfigError`
        when it does not open (another master key, or a row copied elsewhere)."""
        try:
            return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:],
                                      aad.encode("utf-8"))
        except (InvalidTag, ValueError):
            raise PatrolConfigError(f"stored tag key {aad!r} does not open with this "
                                    "master key") from None

    def derive(self, site: str, uid: bytes, *, version: int = 1) -> TagKeys:
        """AN10922-diversified keys of the tag ``uid`` on ``site`` (key ``version``)."""
        return self._derived(site, bytes(uid), version)

    def _derive(self, site: str, uid: bytes, version: int) -> TagKeys:
        system = hashlib.sha256(f"{site}\0{version}".encode()).digest()[:16]
        return TagKeys(
            meta_read=an10922_diversify(self._kdf, bytes([META_KEY_NO]) + uid + system),
            file_read=an10922_diversify(self._kdf, bytes([FILE_KEY_NO]) + uid + system),
        )
