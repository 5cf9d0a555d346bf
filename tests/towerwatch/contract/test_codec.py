from __future__ import annotations

import pytest

from tests.towerwatch.contract import samples
from towerwatch.contract import (
    PAYLOAD_TYPES,
    Birth,
    Command,
    Payload,
    PayloadError,
    Telemetry,
    TopicError,
    TopicKind,
    command_topic,
    decode,
    decode_for_topic,
    encode,
    parse_topic,
    status_topic,
    telemetry_topic,
)
from towerwatch.contract.errors import FieldIssue


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "Invalid JSON"),
        (b"{", "line 1 column 1"),
        (b'{"seq": 1,', "line 1 column 10"),
        (b"{'seq': 1}", "line 1 column 2"),
        (b'{"op":"ping"}\n{"op":"ping"}', "line 2 column 1"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[]", "object"),
        (b"null", "object"),
        (b"42", "object"),
    ],
)
def test_bad_json_is_a_payload_level_error_with_position(raw: bytes, fragment: str) -> None:
    with pytest.raises(PayloadError) as caught:
        decode(Command, raw)
    assert len(caught.value.errors) == 1
    path, message = caught.value.errors[0]
    assert path == ""
    assert fragment in message
    assert str(caught.value).startswith("invalid Command payload: (payload): ")


def test_json_nan_literal_is_rejected() -> None:
    with pytest.raises(PayloadError) as caught:
        decode(Telemetry, encode(samples.TELEMETRY).replace(b"1.75", b"NaN"))
    assert caught.value.errors == [("values.speed", "nan is not a finite number")]


def test_decode_accepts_str_bytearray_and_memoryview() -> None:
    raw = encode(samples.WRITE)
    for payload in (raw, raw.decode(), bytearray(raw), memoryview(raw)):
        assert decode(TopicKind.COMMAND, payload) == samples.WRITE


def test_decode_keeps_unicode() -> None:
    birth = samples.BIRTH.model_copy(update={"version": "1.0-β"})
    raw = encode(birth)
    assert "β".encode() in raw
    assert decode(Birth, raw) == birth


@pytest.mark.parametrize(
    ("topic", "model"),
    [
        (status_topic("s", "g"), samples.BIRTH),
        (status_topic("s", "g"), samples.WILL),
        (telemetry_topic("s", "g", "lift-1"), samples.TELEMETRY),
        ("tw/v1/s/g/event/lift-1", samples.EVENT),
        ("tw/v1/s/g/device/lift-1/state", samples.DEVICE_STATE),
        (command_topic("s", "g", "r1"), samples.WRITE),
        ("tw/v1/s/g/cmd-reply/r1", samples.REPLY_FAILED),
    ],
)
def test_decode_for_topic_picks_the_model(topic: str, model: Payload) -> None:
    assert decode_for_topic(topic, encode(model)) == model
    assert decode_for_topic(parse_topic(topic), encode(model)) == model


def test_decode_for_topic_rejects_a_payload_of_another_kind() -> None:
    with pytest.raises(PayloadError) as caught:
        decode_for_topic(status_topic("s", "g"), encode(samples.TELEMETRY))
    assert "state" in {path for path, _ in caught.value.errors}


def test_decode_for_topic_rejects_a_bad_topic() -> None:
    with pytest.raises(TopicError):
        decode_for_topic("tw/v1/s/g/nope", encode(samples.PING))


def test_every_topic_kind_has_a_payload_type() -> None:
    assert set(PAYLOAD_TYPES) == set(TopicKind)


def test_payload_error_lists_every_field() -> None:
    error = PayloadError([("seq", "too small"), FieldIssue("values.t", "not finite")], "telemetry")
    assert str(error) == "invalid telemetry payload: seq: too small; values.t: not finite"
    assert error.errors == [("seq", "too small"), ("values.t", "not finite")]
    assert isinstance(error, ValueError)
