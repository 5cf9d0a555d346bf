"""The cloud's side of NTAG 424 DNA SUN verification: the shared crypto of
:mod:`towerwatch.ntag424` (NXP AN12196) with its errors turned into patrol tap errors, and
the replay rule.

- :class:`towerwatch.ntag424.MalformedSun` becomes :class:`MalformedTap` (same ``field``);
- :class:`towerwatch.ntag424.SunNotAuthentic` becomes :class:`BadMac`;
- :func:`check_fresh`: a counter is fresh only when strictly above the last one accepted
  for that tag, else :class:`ReplayedTap`.

Key and MAC primitives (``aes_cmac``, ``session_mac_key``, …) are used from
:mod:`towerwatch.ntag424` directly: they raise nothing a tap could cause.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cloud.patrols.errors import BadMac, MalformedTap, ReplayedTap
from towerwatch import ntag424
from towerwatch.ntag424 import SunReading

__all__ = [
    "SunReading",
    "check_fresh",
    "decrypt_file_data",
    "decrypt_picc_data",
    "parse_hex",
    "verify_plain_sun",
    "verify_sun",
]


@contextmanager
def _as_tap_errors() -> Iterator[None]:
    try:
        yield
    except ntag424.MalformedSun as exc:
        raise MalformedTap(exc.field, exc.reason) from exc
    except ntag424.SunNotAuthentic as exc:
        raise BadMac(str(exc)) from exc


def parse_hex(text: str, size: int | None, field: str) -> bytes:
    """``text`` as bytes; :class:`MalformedTap` naming ``field`` unless it is hex of ``size``."""
    with _as_tap_errors():
        return ntag424.parse_hex(text, size, field)


def decrypt_picc_data(meta_key: bytes, picc_data: bytes) -> SunReading:
    """:func:`towerwatch.ntag424.decrypt_picc_data`, with tap errors."""
    with _as_tap_errors():
        return ntag424.decrypt_picc_data(meta_key, picc_data)


def verify_sun(
    *, meta_key: bytes, file_key: bytes, picc_data: bytes, cmac: bytes, mac_input: bytes = b""
) -> SunReading:
    """Decrypt ``picc_data`` and verify ``cmac`` over ``mac_input``; the reading, or
    :class:`BadMac` / :class:`MalformedTap`. Freshness is checked separately."""
    with _as_tap_errors():
        return ntag424.verify_sun(meta_key=meta_key, file_key=file_key, picc_data=picc_data,
                                  cmac=cmac, mac_input=mac_input)


def verify_plain_sun(
    *, file_key: bytes, uid: bytes, counter: int, cmac: bytes, mac_input: bytes = b""
) -> SunReading:
    """Verify a tag that mirrors UID and counter in the clear (``uid=…&ctr=…&cmac=…``)."""
    with _as_tap_errors():
        return ntag424.verify_plain_sun(file_key=file_key, uid=uid, counter=counter,
                                        cmac=cmac, mac_input=mac_input)


def decrypt_file_data(file_key: bytes, reading: SunReading, enc: bytes) -> bytes:
    """Decrypt mirrored ``SDMENCFileData`` (a multiple of 16 bytes) of a verified reading."""
    with _as_tap_errors():
        return ntag424.decrypt_file_data(file_key, reading, enc)


def check_fresh(counter: int, last: int | None) -> None:
    """:class:`ReplayedTap` unless ``counter`` is strictly above ``last`` (``None``: none yet)."""
    if last is not None and counter <= last:
        raise ReplayedTap(counter, last)
