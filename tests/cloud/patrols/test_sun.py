"""NTAG 424 DNA SUN verification against NXP's published vectors.

Sources of the vectors:

- NXP AN12196 "NTAG 424 DNA and NTAG 424 DNA TagTamper features and hints":
  §3.3 Table 1 (SDM session key generation), §3.4.2.1 Table 2 (PICCData decryption),
  §3.4.4.2.1 (SUN MAC over an empty input) and the page-18 example with encrypted file
  data (``picc_data=FD91…&enc=CEE9…&cmac=ECC1…``).
- The same examples as NXP's reference back end answers them (github.com/nfc-developer/
  sdm-backend, ``tests/test_libsdm.py``), including its plain mirror
  ``uid=041E3C8A2D6B80&ctr=000006&cmac=4B00064004B0B3D3``.
- NXP AN10922 "Symmetric key diversifications" §2.2.1 (AES-128 example).
"""

from __future__ import annotations

import pytest

from cloud.patrols.errors import BadMac, MalformedTap, ReplayedTap
from cloud.patrols.keys import an10922_diversify
from cloud.patrols.sun import (
    aes_cmac,
    check_fresh,
    decrypt_file_data,
    decrypt_picc_data,
    parse_hex,
    sdm_mac,
    session_enc_key,
    session_mac_key,
    truncate_mac,
    verify_plain_sun,
    verify_sun,
)

ZERO = bytes(16)
H = bytes.fromhex


def test_an12196_table1_session_keys() -> None:
    key = H("5ACE7E50AB65D5D51FD5BF5A16B8205B")
    uid = H("04C767F2066180")
    # SV1/SV2 carry SDMReadCtr 0x000001 LSB first: 01 00 00.
    assert aes_cmac(key, H("C33C0001008004C767F2066180010000")) == H(
        "66DA61797E23DECA5D8ECA13BBADF7A9")
    assert session_enc_key(key, uid, 1) == H("66DA61797E23DECA5D8ECA13BBADF7A9")
    assert session_mac_key(key, uid, 1) == H("3A3E8110E05311F7A3FCF0D969BF2B48")


def test_an12196_table2_picc_data_decryption() -> None:
    reading = decrypt_picc_data(ZERO, H("EF963FF7828658A599F3041510671E88"))
    assert reading.tag == 0xC7
    assert reading.uid_hex == "04DE5F1EACC040"
    assert reading.counter == 61  # 3D 00 00, LSB first


def test_an12196_sun_mac_over_empty_input() -> None:
    uid = H("04DE5F1EACC040")
    session = session_mac_key(ZERO, uid, 61)
    assert session == H("3FB5F6E3A807A03D5E3570ACE393776F")
    assert sdm_mac(session) == H("94EED9EE65337086")
    reading = verify_sun(meta_key=ZERO, file_key=ZERO,
                         picc_data=H("EF963FF7828658A599F3041510671E88"),
                         cmac=H("94EED9EE65337086"))
    assert (reading.uid_hex, reading.counter) == ("04DE5F1EACC040", 61)


def test_an12196_encrypted_file_data_and_mac_input() -> None:
    picc, enc, cmac = (H("FD91EC264309878BE6345CBE53BADF40"),
                       "CEE9A53E3E463EF1F459635736738962", H("ECC1E7F6C6C73BF6"))
    reading = verify_sun(meta_key=ZERO, file_key=ZERO, picc_data=picc, cmac=cmac,
                         mac_input=f"{enc}&cmac=".encode("ascii"))
    assert (reading.uid_hex, reading.counter) == ("04958CAA5C5E80", 8)
    assert session_mac_key(ZERO, reading.uid, 8) == H("3ED0920E5E6A0320D823D5987FEAFBB1")
    assert decrypt_file_data(ZERO, reading, H(enc)) == b"x" * 16
    with pytest.raises(BadMac):  # the MAC covers the mirrored file data
        verify_sun(meta_key=ZERO, file_key=ZERO, picc_data=picc, cmac=cmac,
                   mac_input=b"CEE9A53E3E463EF1F459635736738963&cmac=")


def test_plain_mirror_vector() -> None:
    reading = verify_plain_sun(file_key=ZERO, uid=H("041E3C8A2D6B80"), counter=6,
                               cmac=H("4B00064004B0B3D3"))
    assert reading.counter == 6
    with pytest.raises(BadMac):
        verify_plain_sun(file_key=ZERO, uid=H("041E3C8A2D6B80"), counter=7,
                         cmac=H("4B00064004B0B3D3"))


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


def test_forged_mac_is_bad_mac() -> None:
    picc = H("EF963FF7828658A599F3041510671E88")
    for cmac in ("94EED9EE65337087", "0000000000000000", "94EED9EE6533708" + "7"):
        with pytest.raises(BadMac):
            verify_sun(meta_key=ZERO, file_key=ZERO, picc_data=picc, cmac=H(cmac))
    other = H("000102030405060708090A0B0C0D0E0F")
    with pytest.raises(BadMac):  # the right PICC data, the wrong file key
        verify_sun(meta_key=ZERO, file_key=other, picc_data=picc, cmac=H("94EED9EE65337086"))
    with pytest.raises(BadMac, match="PICCDataTag"):  # the wrong meta key decrypts to noise
        verify_sun(meta_key=other, file_key=ZERO, picc_data=picc, cmac=H("94EED9EE65337086"))


def test_malformed_input_names_the_field() -> None:
    with pytest.raises(MalformedTap, match="picc_data: is not hexadecimal"):
        parse_hex("XYZ", 16, "picc_data")
    with pytest.raises(MalformedTap, match=r"cmac: must be 8 bytes \(16 hex digits\), got 7"):
        parse_hex("94EED9EE653370", 8, "cmac")
    with pytest.raises(MalformedTap, match="cmac"):
        verify_sun(meta_key=ZERO, file_key=ZERO,
                   picc_data=H("EF963FF7828658A599F3041510671E88"), cmac=H("94EE"))


def test_truncation_keeps_odd_bytes() -> None:
    assert truncate_mac(bytes(range(16))) == bytes([1, 3, 5, 7, 9, 11, 13, 15])


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
