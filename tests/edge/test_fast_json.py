"""The edge's telemetry fast path writes, byte for byte, what the contract's encoder writes.

:meth:`edge.messages.MessageBuilder.telemetry` writes common payloads with :mod:`json`
instead of the contract model. Whatever it writes must equal
``encode(Telemetry(...))`` of the same message, and whatever the model refuses must
still be refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edge.messages import MessageBuilder, now_ms
from tests.cloud.ingest.strategies import identifiers, points, qualities
from towerwatch.contract import Telemetry, encode

BOOT = "0b7c2d1e-5f3a-4c8b-9d2e-7a6f1c0e3b54"
NOW = 1_763_900_000.123


def _builder() -> MessageBuilder:
    return MessageBuilder("tower-a", "gw-1", version="test", boot_id=BOOT, seq_start=41)


def _model_bytes(builder: MessageBuilder, values: Mapping[str, Any],
                 quality: Mapping[str, str], now: float) -> bytes:
    """What the contract's encoder writes for the message the builder just numbered."""
    return encode(Telemetry(seq=builder.seq, boot_id=builder.boot_id, ts=now_ms(now),
                            values=dict(values), quality=dict(quality)))  # type: ignore[arg-type]


def _check(values: Mapping[str, Any], quality: Mapping[str, str],
           now: float = NOW) -> bool:
    """Build the message; compare with the model's bytes, or see both refuse it.
    Returns whether the fast path wrote it."""
    builder = _builder()
    fast = builder._plain(values, quality)
    try:
        Telemetry(seq=1, boot_id=BOOT, ts=now_ms(now), values=dict(values),
                  quality=dict(quality))  # type: ignore[arg-type]
    except ValidationError:
        assert not fast, (values, quality)
        with pytest.raises(ValidationError):
            builder.telemetry("pump-1", values, quality, now=now)
        return False
    item = builder.telemetry("pump-1", values, quality, now=now)
    assert item.payload == _model_bytes(builder, values, quality, now)
    assert item.topic == "tw/v1/tower-a/gw-1/telemetry/pump-1"
    return fast


FAST: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    ("numbers", {"pressure": 0.42, "starts": 12, "big": 2**100, "neg": -(2**70)}, {}),
    ("booleans are not numbers", {"t": True, "f": False, "one": 1, "zero": 0}, {}),
    ("floats at the plain edge", {"a": 1e-4, "b": -1e-4, "c": 0.0, "d": -0.0}, {}),
    ("large floats", {"a": 1e16, "b": 1.5e300, "c": 1.7976931348623157e308,
                      "d": 123456789012345678.0}, {}),
    ("printable ASCII text", {"mode": "auto", "q": 'say "hi" \\ /'}, {}),
    ("nulls that are not good", {"a": None, "b": None}, {"a": "stale", "b": "bad"}),
    ("quality of a point without a value", {}, {"gone": "bad"}),
    ("good said out loud", {"a": 1}, {"a": "good"}),
    ("nothing", {}, {}),
]


@pytest.mark.parametrize(("case", "values", "quality"), FAST, ids=[c for c, _, _ in FAST])
def test_common_payloads_take_the_fast_path_and_match(case: str, values: dict[str, Any],
                                                      quality: dict[str, str]) -> None:
    assert _check(values, quality), case


SLOW: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    ("tiny floats have an exponent in Python", {"a": 1e-5, "b": -2.5e-7, "c": 5e-324}, {}),
    ("text that is not ASCII", {"zone": "三号防区"}, {}),
    ("text with a control character", {"a": "tab\there", "b": "del\x7f", "c": "\n"}, {}),
    ("a float subclass", {"a": type("F", (float,), {})(1.5)}, {}),
]


@pytest.mark.parametrize(("case", "values", "quality"), SLOW, ids=[c for c, _, _ in SLOW])
def test_other_valid_payloads_go_through_the_model(case: str, values: dict[str, Any],
                                                   quality: dict[str, str]) -> None:
    assert not _check(values, quality), case


REFUSED: list[tuple[str, dict[str, Any], dict[str, str], float]] = [
    ("NaN", {"a": math.nan}, {}, NOW),
    ("infinity", {"a": math.inf}, {}, NOW),
    ("null of good quality", {"a": None}, {}, NOW),
    ("null said to be good", {"a": None}, {"a": "good"}, NOW),
    ("a point id with capitals", {"Pressure": 1}, {}, NOW),
    ("a point id too long", {"a" * 65: 1}, {}, NOW),
    ("a quality key that is no identifier", {}, {"a b": "bad"}, NOW),
    ("an unknown quality", {"a": 1}, {"a": "unknown"}, NOW),
    ("a clock before 2000", {"a": 1}, {}, 0.0),
    ("a list value", {"a": [1]}, {}, NOW),
]


@pytest.mark.parametrize(("case", "values", "quality", "now"), REFUSED,
                         ids=[c for c, _, _, _ in REFUSED])
def test_what_the_model_refuses_is_still_refused(case: str, values: dict[str, Any],
                                                 quality: dict[str, str], now: float) -> None:
    builder = _builder()
    with pytest.raises(ValidationError):
        builder.telemetry("pump-1", values, quality, now=now)


def test_seq_counts_on_in_both_paths() -> None:
    builder = _builder()
    first = builder.telemetry("pump-1", {"a": 1}, {}, now=NOW)
    second = builder.telemetry("pump-1", {"a": 1e-9}, {}, now=NOW)
    assert b'"seq":42,' in first.payload and b'"seq":43,' in second.payload


plain_values = st.one_of(
    st.booleans(), st.integers(),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f == 0 or abs(f) >= 1e-4),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20))


@settings(max_examples=300, deadline=None)
@given(points(plain_values), st.floats(946_684_800.0, 7_258_118_399.0))
def test_every_plain_message_is_written_fast_and_alike(
        message: tuple[dict[str, Any], dict[str, str]], now: float) -> None:
    assert _check(*message, now=now)


any_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12))
any_keys = st.one_of(identifiers, st.text(max_size=70))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(any_keys, any_values, max_size=8),
       st.dictionaries(any_keys, qualities | st.text(max_size=6), max_size=4))
def test_any_message_is_written_alike_or_refused(values: dict[str, Any],
                                                 quality: dict[str, str]) -> None:
    _check(values, quality)
