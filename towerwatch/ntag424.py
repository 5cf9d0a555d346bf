"""NTAG 424 DNA Secure Unique NFC (SUN) messages, after NXP AN12196: both sides, pure
functions, shared by the cloud's verifier (:mod:`cloud.patrols.sun`) and the simulated tag
(:mod:`simulators.patrol.ntag`).

A tag configured for Secure Dynamic Messaging rewrites its NDEF URL on every read:

``…?picc_data=<32 hex>&cmac=<16 hex>``
    ``picc_data`` is ``PICCDataTag ‖ UID(7) ‖ SDMReadCtr(3, LSB first) ‖ padding``, encrypted
    with AES-128 in CBC mode with a zero IV under the *SDM meta read key*
    (:func:`encrypt_picc_data`, :func:`decrypt_picc_data`).
``cmac``
    ``SDMMAC``: the session MAC key is ``CMAC(SDM file read key, SV2)`` with
    ``SV2 = 3C C3 00 01 00 80 ‖ UID ‖ SDMReadCtr``; the tag MACs the bytes of the URL from
    ``SDMMACInputOffset`` up to the MAC itself (nothing, when only PICC data and the CMAC
    are mirrored) and keeps the 8 odd-indexed bytes of the 16-byte CMAC (:func:`sdm_mac`).

Optionally the tag mirrors encrypted file data (``enc=``); it is decrypted with the session
encryption key (``SV1 = C3 3C 00 01 00 80 ‖ UID ‖ SDMReadCtr``) in CBC mode, the IV being
``AES(session key, SDMReadCtr ‖ 0…0)``; its hex text is then part of the MAC input.

The MAC is compared in constant time. Replay protection (a counter must rise) belongs to
whoever keeps the last counter: the cloud.

Errors::

    SunError            a SUN message that proves nothing
    ├── MalformedSun    not well formed (``field`` names the input: picc_data, cmac, enc, uid)
    └── SunNotAuthentic well formed, but the PICCDataTag or the MAC does not verify

A key or counter of the wrong size is a programming error: :class:`ValueError`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

__all__ = [
    "COUNTER_MAX",
    "PICC_DATA_TAG",
    "UID_LENGTH",
    "MalformedSun",
    "SunError",
    "SunNotAuthentic",
    "SunReading",
    "aes_cmac",
    "decrypt_file_data",
    "decrypt_picc_data",
    "encrypt_picc_data",
    "parse_hex",
    "sdm_mac",
    "session_enc_key",
    "session_mac_key",
    "truncate_mac",
    "verify_plain_sun",
    "verify_sun",
]

KEY_LENGTH: Final = 16
UID_LENGTH: Final = 7
COUNTER_MAX: Final = 0xFFFFFF
"""SDMReadCtr is 3 bytes."""
PICC_DATA_TAG: Final = 0xC7
"""UID and read counter mirrored, 7-byte UID."""
_PADDING: Final = 16 - 1 - UID_LENGTH - 3
_ZERO_IV: Final = bytes(16)
_SV2_PREFIX: Final = bytes.fromhex("3CC300010080")
_SV1_PREFIX: Final = bytes.fromhex("C33C00010080")
_UID_MIRRORED: Final = 0x80
_COUNTER_MIRRORED: Final = 0x40
_UID_LENGTH_MASK: Final = 0x0F


class SunError(Exception):
    """A SUN message that proves nothing."""


class MalformedSun(SunError):
    """The message is not well formed; ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}")


class SunNotAuthentic(SunError):
    """The PICCDataTag or the MAC does not verify: forged, damaged, or the wrong keys."""


@dataclass(frozen=True, slots=True)
class SunReading:
    """What a verified tap proves: this tag (``uid``) was read for the ``counter``-th time."""

    uid: bytes
    counter: int
    tag: int
    """PICCDataTag (``0xC7``: UID and counter mirrored, 7-byte UID); ``0`` for plain mirrors."""

    @property
    def uid_hex(self) -> str:
        return self.uid.hex().upper()


def parse_hex(text: str, size: int | None, field: str) -> bytes:
    """``text`` as bytes; :class:`MalformedSun` naming ``field`` unless it is hex of ``size``."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise MalformedSun(field, "is not hexadecimal") from None
    if size is not None and len(raw) != size:
        raise MalformedSun(field, f"must be {size} bytes ({2 * size} hex digits), "
                                  f"got {len(raw)}")
    return raw


def _check_key(key: bytes, what: str) -> None:
    if len(key) != KEY_LENGTH:
        raise ValueError(f"{what} must be {KEY_LENGTH} bytes, got {len(key)}")


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (NIST SP 800-38B) of ``data`` under the 16-byte ``key``."""
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def _ecb_encrypt(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _cbc(key: bytes, iv: bytes, data: bytes, *, decrypt: bool) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
    context = cipher.decryptor() if decrypt else cipher.encryptor()
    return context.update(data) + context.finalize()


def truncate_mac(full: bytes) -> bytes:
    """The 8 odd-indexed bytes of a 16-byte CMAC (NXP's truncation)."""
    return full[1::2]


def _counter_bytes(counter: int) -> bytes:
    if not 0 <= counter <= COUNTER_MAX:
        raise ValueError(f"SDMReadCtr must be within 0..{COUNTER_MAX}, got {counter}")
    return counter.to_bytes(3, "little")


def session_mac_key(file_key: bytes, uid: bytes, counter: int) -> bytes:
    """``KSesSDMFileReadMAC = CMAC(file_key, SV2)``."""
    _check_key(file_key, "SDM file read key")
    return aes_cmac(file_key, _SV2_PREFIX + uid + _counter_bytes(counter))


def session_enc_key(file_key: bytes, uid: bytes, counter: int) -> bytes:
    """``KSesSDMFileReadENC = CMAC(file_key, SV1)``."""
    _check_key(file_key, "SDM file read key")
    return aes_cmac(file_key, _SV1_PREFIX + uid + _counter_bytes(counter))


def sdm_mac(session_key: bytes, mac_input: bytes = b"") -> bytes:
    """The 8-byte SDMMAC of ``mac_input`` under the session MAC key."""
    return truncate_mac(aes_cmac(session_key, mac_input))


def encrypt_picc_data(meta_key: bytes, uid: bytes, counter: int, padding: bytes) -> bytes:
    """The tag's side: ``PICCDataTag ‖ UID ‖ SDMReadCtr ‖ padding`` (5 bytes the tag
    chooses), encrypted under the SDM meta read key."""
    _check_key(meta_key, "SDM meta read key")
    if len(uid) != UID_LENGTH or len(padding) != _PADDING:
        raise ValueError(f"a {UID_LENGTH}-byte UID and {_PADDING} bytes of padding are needed")
    plain = bytes([PICC_DATA_TAG]) + uid + _counter_bytes(counter) + padding
    return _cbc(meta_key, _ZERO_IV, plain, decrypt=False)


def decrypt_picc_data(meta_key: bytes, picc_data: bytes) -> SunReading:
    """Decrypt the 16-byte encrypted PICCData; :class:`SunNotAuthentic` if it does not hold
    a mirrored 7-byte UID and read counter (a wrong meta key usually lands here)."""
    _check_key(meta_key, "SDM meta read key")
    if len(picc_data) != 16:
        raise MalformedSun("picc_data", f"must be 16 bytes, got {len(picc_data)}")
    plain = _cbc(meta_key, _ZERO_IV, picc_data, decrypt=True)
    tag = plain[0]
    if not tag & _UID_MIRRORED or not tag & _COUNTER_MIRRORED:
        raise SunNotAuthentic(f"PICCDataTag {tag:#04x} does not mirror both UID and read "
                              "counter")
    if tag & _UID_LENGTH_MASK != UID_LENGTH:
        raise SunNotAuthentic(f"PICCDataTag {tag:#04x} announces a UID of {tag & 0x0F} "
                              "bytes, not 7")
    uid = plain[1:1 + UID_LENGTH]
    counter = int.from_bytes(plain[1 + UID_LENGTH:4 + UID_LENGTH], "little")
    return SunReading(uid=uid, counter=counter, tag=tag)


def _check_mac(session_key: bytes, cmac: bytes, mac_input: bytes) -> None:
    if len(cmac) != 8:
        raise MalformedSun("cmac", f"must be 8 bytes, got {len(cmac)}")
    if not hmac.compare_digest(sdm_mac(session_key, mac_input), cmac):
        raise SunNotAuthentic("the SUN CMAC does not verify")


def verify_sun(
    *, meta_key: bytes, file_key: bytes, picc_data: bytes, cmac: bytes, mac_input: bytes = b""
) -> SunReading:
    """Decrypt ``picc_data`` and verify ``cmac`` over ``mac_input``; the reading, or
    :class:`SunNotAuthentic` / :class:`MalformedSun`. Freshness is the caller's."""
    reading = decrypt_picc_data(meta_key, picc_data)
    _check_mac(session_mac_key(file_key, reading.uid, reading.counter), cmac, mac_input)
    return reading


def verify_plain_sun(
    *, file_key: bytes, uid: bytes, counter: int, cmac: bytes, mac_input: bytes = b""
) -> SunReading:
    """Verify a tag that mirrors UID and counter in the clear (``uid=…&ctr=…&cmac=…``)."""
    if len(uid) != UID_LENGTH:
        raise MalformedSun("uid", f"must be {UID_LENGTH} bytes, got {len(uid)}")
    _check_mac(session_mac_key(file_key, uid, counter), cmac, mac_input)
    return SunReading(uid=uid, counter=counter, tag=0)


def decrypt_file_data(file_key: bytes, reading: SunReading, enc: bytes) -> bytes:
    """Decrypt mirrored ``SDMENCFileData`` (a multiple of 16 bytes) of a verified reading."""
    if not enc or len(enc) % 16:
        raise MalformedSun("enc", f"must be a non-empty multiple of 16 bytes, got {len(enc)}")
    key = session_enc_key(file_key, reading.uid, reading.counter)
    iv = _ecb_encrypt(key, _counter_bytes(reading.counter) + bytes(13))
    return _cbc(key, iv, enc, decrypt=True)
