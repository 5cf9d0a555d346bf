"""A simulated NTAG 424 DNA tag with Secure Unique NFC mirroring (the tag's side of NXP
AN12196): each read increments the 24-bit read counter, encrypts
``0xC7 ‖ UID ‖ counter (LSB first) ‖ padding`` with the SDM meta read key (AES-128, CBC,
zero IV) and MACs the empty input with the session key ``CMAC(file key, SV2)``, keeping the
8 odd-indexed bytes. The URL it produces is what a phone opens on a tap.

The crypto is :mod:`towerwatch.ntag424`, the one the cloud verifies with; it reproduces
AN12196's published vectors (``tests/towerwatch/test_ntag424.py``), so the simulator and
the verifier cannot drift apart unnoticed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from towerwatch.ntag424 import COUNTER_MAX, encrypt_picc_data, sdm_mac, session_mac_key

__all__ = ["SimTag", "SunTap"]


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
        if self.counter >= COUNTER_MAX:
            raise RuntimeError("read counter exhausted")
        self.counter += 1
        return self.message(self.counter)

    def message(self, counter: int) -> SunTap:
        """The SUN message the tag produces at ``counter`` (the padding is the tag's)."""
        picc = encrypt_picc_data(self.meta_key, self.uid, counter, self.padding)
        mac = sdm_mac(session_mac_key(self.file_key, self.uid, counter))
        return SunTap(picc.hex().upper(), mac.hex().upper(), counter)

    def url(self, base: str) -> str:
        """A tap as the URL the tag's NDEF record opens (``base`` ends at the path)."""
        return f"{base}?{self.read().query()}"
