"""The cloud's SUN adapter and key diversification.

The AN12196 vectors themselves are checked on the shared crypto in
``tests/towerwatch/test_ntag424.py``; here the same vectors go through
:mod:`cloud.patrols.sun`, which must answer with patrol tap errors (``BadMac``,
``MalformedTap`` naming the field) and keep the replay rule. AN10922 §2.2.1 (AES-128
example) checks the key diversification of :mod:`cloud.patrols.keys`.
"""

from __future__ import annotations

import pytest

from cloud.patrols.errors import BadMac, MalformedTap, ReplayedTap
from cloud.patrols.keys import an10922_diversify
from cloud.patrols.sun import (
    check_fresh,
    decrypt_file_data,
    decrypt_picc_data,
    parse_hex,
    verify_plain_sun,
    verify_sun,
)
from tests.towerwatch.test_ntag424 import TABLE2_PICC, ZERO
from towerwatch.ntag424 import aes_cmac

H = bytes.fromhex


def test_an12196_vectors_verify_through_the_adapter() -> None:
    reading = verify_sun(meta_key=ZERO, file_key=ZERO, picc_data=TABLE2_PICC,
                         cmac=H("94EED9EE65337086"))
    assert (reading.uid_hex, reading.counter) == ("04DE5F1EACC040", 61)
    assert decrypt_picc_data(ZERO, TABLE2_PICC) == reading
    enc = "CEE9A53E3E463EF1F459635736738962"
    with_file = verify_sun(meta_key=ZERO, file_key=ZERO,
                           picc_data=H("FD91EC264309878BE6345CBE53BADF40"),
                           cmac=H("ECC1E7F6C6C73BF6"), mac_input=f"{enc}&cmac=".encode())
    assert decrypt_file_data(ZERO, with_file, H(enc)) == b"x" * 16
    assert verify_plain_sun(file_key=ZERO, uid=H("041E3C8A2D6B80"), counter=6,
                            cmac=H("4B00064004B0B3D3")).counter == 6


def test_forged_and_malformed_taps_become_tap_errors() -> None:
    with pytest.raises(BadMac) as forged:
        verify_sun(meta_key=ZERO, file_key=ZERO, picc_data=TABLE2_PICC,
                   cmac=H("94EED9EE65337087"))
    assert forged.value.kind == "bad_mac"
    with pytest.raises(BadMac, match="PICCDataTag"):
        decrypt_picc_data(H("000102030405060708090A0B0C0D0E0F"), TABLE2_PICC)
    with pytest.raises(BadMac):
        verify_plain_sun(file_key=ZERO, uid=H("041E3C8A2D6B80"), counter=7,
                         cmac=H("4B00064004B0B3D3"))
    with pytest.raises(MalformedTap, match="picc_data: is not hexadecimal") as bad_hex:
        parse_hex("XYZ", 16, "picc_data")
    assert bad_hex.value.field == "picc_data"
    with pytest.raises(MalformedTap, match=r"cmac: must be 8 bytes, got 2"):
        verify_sun(meta_key=ZERO, file_key=ZERO, picc_data=TABLE2_PICC, cmac=H("94EE"))
    with pytest.raises(MalformedTap) as short:
        decrypt_file_data(ZERO, decrypt_picc_data(ZERO, TABLE2_PICC), bytes(15))
    assert short.value.field == "enc"


def test_an10922_aes128_example() -> None:
    master = H("00112233445566778899AABBCCDDEEFF")
    # M = UID 04782E21801D80 ‖ AID 3042F5 ‖ system identifier "NXP Abu".
    assert an10922_diversify(master, H("04782E21801D803042F54E585020416275")) == H(
        "A8DD63A3B89D54B37CA802473FDA9175")


@pytest.mark.parametrize("length", [1, 7, 14, 15, 16, 30, 31])
def test_an10922_full_blocks_equal_cmac(length: int) -> None:
    """AN10922 pads ``0x01 ‖ M`` to 32 bytes: for 17..32 bytes that is plain CMAC, for 16 or
    fewer it is not (CMAC would use one block)."""
    master = H("00112233445566778899AABBCCDDEEFF")
    data = bytes(range(1, length + 1))
    derived = an10922_diversify(master, data)
    if length >= 16:
        assert derived == aes_cmac(master, b"\x01" + data)
    else:
        assert derived != aes_cmac(master, b"\x01" + data)
    with pytest.raises(ValueError, match=r"1\.\.31"):
        an10922_diversify(master, bytes(32))


@pytest.mark.parametrize(("counter", "last", "fresh"), [
    (61, None, True), (61, 60, True), (61, 61, False), (61, 62, False), (0, None, True),
])
def test_replay_needs_a_strictly_higher_counter(
    counter: int, last: int | None, fresh: bool
) -> None:
    if fresh:
        check_fresh(counter, last)
    else:
        with pytest.raises(ReplayedTap) as caught:
            check_fresh(counter, last)
        assert caught.value.kind == "replay"
