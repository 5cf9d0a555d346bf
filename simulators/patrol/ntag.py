"""A simulated NTAG 424 DNA tag with Secure Unique NFC mirroring (the tag's side of NXP
AN12196): each read increments the 24-bit read counter, encrypts
``0xC7 ‖ UID ‖ counter (LSB first) ‖ random padding`` with the SDM meta read key (AES-128,
CBC, zero IV) and MACs the empty input with the session key ``CMAC(file key, SV2)``,
keeping the 8 odd-indexed bytes. The URL it produces is what a phone opens on a tap.

Independent of the cloud's verifier on purpose (the simulator imports no cloud code), so
each checks the other; both are checked against AN12196's published vectors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

__all__ = ["SimTag", "SunTap"]

_PICC_TAG: Final = 0xC7
_SV2: Final = bytes.fromhex("3CC300010080")


@dataclass(frozen=True, slots=True)
class SunTap:
    """One read: the mirrored hex fields and the counter that produced them."""

    picc_data: str
    cmac: str
    counter: int

    def query(self) -> str:
        return f"picc_data={self.picc_data}&cmac={self.cmac}"


@dataclass
class SimTag:
    uid: bytes
    meta_key: bytes
    file_key: bytes
    counter: int = 0
    """The last counter used (a new tag starts at 0; the first read mirrors 1)."""
    padding: bytes = field(default_factory=lambda: os.urandom(5))

    def __post_init__(self) -> None:
        if len(self.uid) != 7 or len(self.meta_key) != 16 or len(self.file_key) != 16:
            raise ValueError("a tag needs a 7-byte UID and two 16-byte keys")

    def read(self) -> SunTap:
        """A tap: the counter moves on and a fresh SUN message is produced."""
        if self.counter >= 0xFFFFFF:
            raise RuntimeError("read counter exhausted")
        self.counter += 1
        return self.message(self.counter)

    def message(self, counter: int) -> SunTap:
        """The SUN message the tag produces at ``counter`` (the padding is the tag's)."""
        ctr = counter.to_bytes(3, "little")
        plain = bytes([_PICC_TAG]) + self.uid + ctr + self.padding
        encryptor = Cipher(algorithms.AES(self.meta_key), modes.CBC(bytes(16))).encryptor()
        picc = encryptor.update(plain) + encryptor.finalize()
        session = _cmac(self.file_key, _SV2 + self.uid + ctr)
        mac = _cmac(session, b"")[1::2]
        return SunTap(picc.hex().upper(), mac.hex().upper(), counter)

    def url(self, base: str) -> str:
        """A tap as the URL the tag's NDEF record opens (``base`` ends at the path)."""
        return f"{base}?{self.read().query()}"


def _cmac(key: bytes, data: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()
