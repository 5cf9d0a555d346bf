"""The simulated tag produces AN12196's published message and what the cloud verifies."""

from __future__ import annotations

import pytest

from cloud.patrols.errors import ReplayedTap
from cloud.patrols.sun import check_fresh, verify_sun
from simulators.patrol.ntag import SimTag

ZERO = bytes(16)


def test_reproduces_the_an12196_example() -> None:
    # AN12196 §3.4.2.1 / §3.4.4.2.1: UID 04DE5F1EACC040, counter 61, the padding NXP's tag
    # produced (DA5CF60941), all-zero keys.
    tag = SimTag(bytes.fromhex("04DE5F1EACC040"), ZERO, ZERO, padding=bytes.fromhex("DA5CF60941"))
    tap = tag.message(61)
    assert tap.picc_data == "EF963FF7828658A599F3041510671E88"
    assert tap.cmac == "94EED9EE65337086"


def test_every_read_verifies_and_only_once() -> None:
    meta, file = bytes(range(16)), bytes(range(16, 32))
    tag = SimTag(bytes.fromhex("04A1B2C3D4E5F6"), meta, file)
    last: int | None = None
    for expected in (1, 2, 3):
        tap = tag.read()
        reading = verify_sun(meta_key=meta, file_key=file, picc_data=bytes.fromhex(tap.picc_data),
                             cmac=bytes.fromhex(tap.cmac))
        assert (reading.uid_hex, reading.counter) == ("04A1B2C3D4E5F6", expected)
        check_fresh(reading.counter, last)
        last = reading.counter
    with pytest.raises(ReplayedTap):
        check_fresh(tap.counter, last)
    assert tag.url("https://x/t").startswith("https://x/t?picc_data=")
