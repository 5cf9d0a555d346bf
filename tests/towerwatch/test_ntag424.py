"""NTAG 424 DNA SUN messages (both sides) against NXP's published vectors.

Sources of the vectors:

- NXP AN12196 "NTAG 424 DNA and NTAG 424 DNA TagTamper features and hints":
  §3.3 Table 1 (SDM session key generation), §3.4.2.1 Table 2 (PICCData decryption),
  §3.4.4.2.1 (SUN MAC over an empty input) and the page-18 example with encrypted file
  data (``picc_data=FD91…&enc=CEE9…&cmac=ECC1…``).
- The same examples as NXP's reference back end answers them (github.com/nfc-developer/
  sdm-backend, ``tests/test_libsdm.py``), including its plain mirror
  ``uid=041E3C8A2D6B80&ctr=000006&cmac=4B00064004B0B3D3``.
"""

from __future__ import annotations

import pytest

from towerwatch.ntag424 import (
    MalformedSun,
    SunNotAuthentic,
    aes_cmac,
    decrypt_file_data,
    decrypt_picc_data,
    encrypt_picc_data,
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
TABLE2_PICC = H("EF963FF7828658A599F3041510671E88")


def test_an12196_table1_session_keys() -> None:
    key = H("5ACE7E50AB65D5D51FD5BF5A16B8205B")
    uid = H("04C767F2066180")
    # SV1/SV2 carry SDMReadCtr 0x000001 LSB first: 01 00 00.
    assert aes_cmac(key, H("C33C0001008004C767F2066180010000")) == H(
        "66DA61797E23DECA5D8ECA13BBADF7A9")
    assert session_enc_key(key, uid, 1) == H("66DA61797E23DECA5D8ECA13BBADF7A9")
    assert session_mac_key(key, uid, 1) == H("3A3E8110E05311F7A3FCF0D969BF2B48")


def test_an12196_table2_picc_data_both_ways() -> None:
    reading = decrypt_picc_data(ZERO, TABLE2_PICC)
    assert reading.tag == 0xC7
    assert reading.uid_hex == "04DE5F1EACC040"
    assert reading.counter == 61  # 3D 00 00, LSB first
    # the tag's side: the padding NXP's tag produced was DA5CF60941
    assert encrypt_picc_data(ZERO, reading.uid, 61, H("DA5CF60941")) == TABLE2_PICC
    with pytest.raises(ValueError, match="padding"):
        encrypt_picc_data(ZERO, reading.uid, 61, b"")
    with pytest.raises(ValueError, match="SDMReadCtr"):
        encrypt_picc_data(ZERO, reading.uid, 1 << 24, H("DA5CF60941"))


def test_an12196_sun_mac_over_empty_input() -> None:
    uid = H("04DE5F1EACC040")
    session = session_mac_key(ZERO, uid, 61)
    assert session == H("3FB5F6E3A807A03D5E3570ACE393776F")
    assert sdm_mac(session) == H("94EED9EE65337086")
    reading = verify_sun(meta_key=ZERO, file_key=ZERO, picc_data=TABLE2_PICC,
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
    with pytest.raises(SunNotAuthentic):  # the MAC covers the mirrored file data
        verify_sun(meta_key=ZERO, file_key=ZERO, picc_data=picc, cmac=cmac,
                   mac_input=b"CEE9A53E3E463EF1F459635736738963&cmac=")
    with pytest.raises(MalformedSun) as caught:
        decrypt_file_data(ZERO, reading, H(enc)[:15])
    assert caught.value.field == "enc"


def test_plain_mirror_vector() -> None:
    reading = verify_plain_sun(file_key=ZERO, uid=H("041E3C8A2D6B80"), counter=6,
                               cmac=H("4B00064004B0B3D3"))
    assert reading.counter == 6
    with pytest.raises(SunNotAuthentic):
        verify_plain_sun(file_key=ZERO, uid=H("041E3C8A2D6B80"), counter=7,
                         cmac=H("4B00064004B0B3D3"))


def test_forged_mac_is_not_authentic() -> None:
    for cmac in ("94EED9EE65337087", "0000000000000000", "14EED9EE65337086"):
        with pytest.raises(SunNotAuthentic):
            verify_sun(meta_key=ZERO, file_key=ZERO, picc_data=TABLE2_PICC, cmac=H(cmac))
    other = H("000102030405060708090A0B0C0D0E0F")
    with pytest.raises(SunNotAuthentic):  # the right PICC data, the wrong file key
        verify_sun(meta_key=ZERO, file_key=other, picc_data=TABLE2_PICC,
                   cmac=H("94EED9EE65337086"))
    with pytest.raises(SunNotAuthentic, match="PICCDataTag"):  # wrong meta key: noise
        verify_sun(meta_key=other, file_key=ZERO, picc_data=TABLE2_PICC,
                   cmac=H("94EED9EE65337086"))


def test_malformed_input_names_the_field() -> None:
    with pytest.raises(MalformedSun, match="picc_data: is not hexadecimal"):
        parse_hex("XYZ", 16, "picc_data")
    with pytest.raises(MalformedSun, match=r"cmac: must be 8 bytes \(16 hex digits\), got 7"):
        parse_hex("94EED9EE653370", 8, "cmac")
    with pytest.raises(MalformedSun) as caught:
        verify_sun(meta_key=ZERO, file_key=ZERO, picc_data=TABLE2_PICC, cmac=H("94EE"))
    assert caught.value.field == "cmac"
    with pytest.raises(MalformedSun, match="uid"):
        verify_plain_sun(file_key=ZERO, uid=H("041E3C8A2D6B"), counter=6,
                         cmac=H("4B00064004B0B3D3"))


def test_truncation_keeps_odd_bytes() -> None:
    assert truncate_mac(bytes(range(16))) == bytes([1, 3, 5, 7, 9, 11, 13, 15])
