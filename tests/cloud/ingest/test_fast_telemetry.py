"""The ingest hot path's telemetry decoder against the contract's decoder.

:func:`cloud.ingest.pipeline.fast_telemetry` may decline anything (``None``: the
pipeline then asks the contract), but what it accepts the contract must accept too,
with the same values of the same types; and on the common payload (identifiers,
ASCII text, numbers, booleans, nulls that are not good) it must not decline.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.ingest.pipeline import fast_telemetry
from tests.cloud.ingest.strategies import boot_ids, identifiers, points, qualities
from towerwatch.contract import TS_MAX, TS_MIN, PayloadError, Telemetry, decode, encode

BOOT = "3f2b9c1e-8d4a-4e7b-9a61-0c5d2e7f1a90"
TS = 1_763_900_000_000


def _contract(raw: bytes) -> Telemetry | None:
    try:
        return decode(Telemetry, raw)
    except PayloadError:
        return None


def _typed(message: Telemetry) -> tuple[Any, ...]:
    """A message with every value's type and exact text (``True`` is not ``1``)."""
    values = {k: (type(v).__name__, repr(v)) for k, v in message.values.items()}
    return message.seq, message.boot_id, message.ts, values, dict(message.quality)


def _agree(raw: bytes) -> Telemetry | None:
    """fast_telemetry's answer, checked against the contract's; the fast answer."""
    fast = fast_telemetry(raw)
    if fast is not None:
        slow = _contract(raw)
        assert slow is not None, f"fast path accepted what the contract refuses: {raw!r}"
        assert _typed(fast) == _typed(slow), raw
    return fast


def _payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"seq": 7, "boot_id": BOOT, "ts": TS,
                               "values": {"pressure": 0.42, "running": True, "starts": 12,
                                          "mode": "auto"},
                               "quality": {"starts": "stale"}}
    payload.update(changes)
    return payload


def _raw(payload: Any) -> bytes:
    return json.dumps(payload, allow_nan=True).encode()


# -- accepted, and the same as the contract's ----------------------------------------

ACCEPTED: list[tuple[str, bytes]] = [
    ("plain", _raw(_payload())),
    ("compact, as the edge writes it", encode(Telemetry.model_validate(_payload()))),
    ("empty values and quality", _raw(_payload(values={}, quality={}))),
    ("null that is stale", _raw(_payload(values={"a": None}, quality={"a": "stale"}))),
    ("null that is bad", _raw(_payload(values={"a": None}, quality={"a": "bad"}))),
    ("quality of a point without a value", _raw(_payload(values={}, quality={"b": "bad"}))),
    ("good quality said out loud", _raw(_payload(values={"a": 1}, quality={"a": "good"}))),
    ("huge integers", _raw(_payload(values={"big": 2**100, "neg": -(2**100)}))),
    ("huge seq", _raw(_payload(seq=2**80))),
    ("seq zero", _raw(_payload(seq=0))),
    ("first ts", _raw(_payload(ts=TS_MIN))),
    ("last ts", _raw(_payload(ts=TS_MAX))),
    ("booleans stay booleans", _raw(_payload(values={"t": True, "f": False}))),
    ("negative zero", b'{"seq":1,"boot_id":"%s","ts":%d,"values":{"z":-0.0},"quality":{}}'
     % (BOOT.encode(), TS)),
    ("an integer in float form is a float", _raw(_payload(values={"x": 1.0, "y": 1e2}))),
    ("largest floats", _raw(_payload(values={"x": 1.7976931348623157e308, "y": 5e-324}))),
    ("escaped ASCII text", _raw(_payload(values={"s": 'quote " back \\ line\n\u0041'}))),
    ("identifier of 64 characters", _raw(_payload(values={"a" * 64: 1}))),
    ("identifier with _ and -", _raw(_payload(values={"0pump_1-a": 1}))),
    ("a repeated key: the last wins, as in the contract",
     b'{"seq":1,"boot_id":"%s","ts":%d,"values":{"a":1,"a":"x"},"quality":{}}'
     % (BOOT.encode(), TS)),
    ("spaces around", b' \n' + _raw(_payload()) + b'\n '),
]


@pytest.mark.parametrize(("case", "raw"), ACCEPTED, ids=[c for c, _ in ACCEPTED])
def test_the_common_payload_is_taken_and_equals_the_contracts(case: str, raw: bytes) -> None:
    fast = _agree(raw)
    assert fast is not None, case
    assert isinstance(fast, Telemetry)


def test_values_keep_their_types() -> None:
    fast = fast_telemetry(_raw(_payload(values={"t": True, "i": 1, "f": 1.0, "s": "1"})))
    assert fast is not None
    assert [type(v) for v in fast.values.values()] == [bool, int, float, str]
    assert fast.quality_of("t") == "good"


# -- declined: the contract has the last word ------------------------------------------

FALLBACK: list[tuple[str, bytes]] = [
    ("non-ASCII text", _raw(_payload(values={"zone": "三号防区"}))),
    ("escaped non-ASCII text", _raw(_payload(values={"zone": "caf\u00e9"}))),
]


@pytest.mark.parametrize(("case", "raw"), FALLBACK, ids=[c for c, _ in FALLBACK])
def test_valid_payloads_outside_the_subset_fall_back(case: str, raw: bytes) -> None:
    assert fast_telemetry(raw) is None, case
    assert _contract(raw) is not None, case


REFUSED: list[tuple[str, bytes]] = [
    # seq
    ("seq true", _raw(_payload(seq=True))),
    ("seq 1.0", _raw(_payload(seq=1.0))),
    ("seq negative", _raw(_payload(seq=-1))),
    ("seq text", _raw(_payload(seq="7"))),
    ("seq null", _raw(_payload(seq=None))),
    # ts
    ("ts true", _raw(_payload(ts=True))),
    ("ts float", _raw(_payload(ts=float(TS)))),
    ("ts before 2000", _raw(_payload(ts=TS_MIN - 1))),
    ("ts after 2200", _raw(_payload(ts=TS_MAX + 1))),
    ("ts in seconds", _raw(_payload(ts=TS // 1000))),
    ("ts huge", _raw(_payload(ts=2**70))),
    # boot id
    ("boot id too short", _raw(_payload(boot_id="abc"))),
    ("boot id with _", _raw(_payload(boot_id="abc_defgh"))),
    ("boot id too long", _raw(_payload(boot_id="a" * 65))),
    ("boot id a number", _raw(_payload(boot_id=12345678))),
    # shapes
    ("values a list", _raw(_payload(values=[1, 2]))),
    ("values null", _raw(_payload(values=None))),
    ("quality a list", _raw(_payload(quality=["good"]))),
    ("quality a string", _raw(_payload(quality="good"))),
    ("an extra field", _raw({**_payload(), "extra": 1})),
    ("no quality", _raw({k: v for k, v in _payload().items() if k != "quality"})),
    ("no values", _raw({k: v for k, v in _payload().items() if k != "values"})),
    ("no seq", _raw({k: v for k, v in _payload().items() if k != "seq"})),
    ("a list", _raw([_payload()])),
    ("a string", _raw("telemetry")),
    ("a number", b"7"),
    ("null", b"null"),
    ("empty", b""),
    ("broken JSON", _raw(_payload())[:-1]),
    ("trailing garbage", _raw(_payload()) + b"x"),
    ("not UTF-8", b'{"seq":1,"boot_id":"\xff\xfe"}'),
    # values
    ("NaN", _raw(_payload(values={"x": math.nan}))),
    ("Infinity", _raw(_payload(values={"x": math.inf}))),
    ("-Infinity", _raw(_payload(values={"x": -math.inf}))),
    ("a number too big for a float", _raw(_payload()).replace(b"0.42", b"1e400")),
    ("an object value", _raw(_payload(values={"x": {"y": 1}}))),
    ("a list value", _raw(_payload(values={"x": [1]}))),
    ("null of good quality", _raw(_payload(values={"a": None}, quality={"a": "good"}))),
    ("null without quality", _raw(_payload(values={"a": None}, quality={}))),
    # qualities
    ("quality GOOD", _raw(_payload(quality={"a": "GOOD"}))),
    ("quality unknown", _raw(_payload(quality={"a": "unknown"}))),
    ("quality null", _raw(_payload(quality={"a": None}))),
    ("quality a number", _raw(_payload(quality={"a": 1}))),
    # identifiers
    ("point with capitals", _raw(_payload(values={"Pressure": 1}))),
    ("point starting with -", _raw(_payload(values={"-a": 1}))),
    ("point starting with _", _raw(_payload(values={"_a": 1}))),
    ("empty point id", _raw(_payload(values={"": 1}))),
    ("point id of 65", _raw(_payload(values={"a" * 65: 1}))),
    ("point id with a dot", _raw(_payload(values={"a.b": 1}))),
    ("point id with a space", _raw(_payload(values={"a b": 1}))),
    ("point id not ASCII", _raw(_payload(values={"压力": 1}))),
    ("quality key with capitals", _raw(_payload(quality={"Pressure": "bad"}))),
    ("quality key of 65", _raw(_payload(quality={"a" * 65: "bad"}))),
]


@pytest.mark.parametrize(("case", "raw"), REFUSED, ids=[c for c, _ in REFUSED])
def test_invalid_payloads_are_declined_and_refused_by_the_contract(case: str,
                                                                    raw: bytes) -> None:
    assert fast_telemetry(raw) is None, case
    assert _contract(raw) is None, case


def test_odd_inputs_are_declined() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert fast_telemetry(deep) is None
    assert fast_telemetry(b"\xef\xbb\xbf" + _raw(_payload())) is None  # a byte-order mark
    assert fast_telemetry(_raw(_payload()).replace(b'"seq"', b'"\\ud800"')) is None


# -- properties ----------------------------------------------------------------------

plain_values = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(max_codepoint=127), max_size=30),
)


@st.composite
def plain_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """Payloads in the subset the fast path takes."""
    values, quality = draw(points(plain_values))
    return {"seq": draw(st.integers(min_value=0)), "boot_id": draw(boot_ids),
            "ts": draw(st.integers(TS_MIN, TS_MAX)), "values": values, "quality": quality}


@settings(max_examples=300, deadline=None)
@given(plain_payloads(), st.booleans())
def test_every_plain_payload_is_taken(payload: dict[str, Any], compact: bool) -> None:
    raw = json.dumps(payload, separators=(",", ":") if compact else None).encode()
    fast = _agree(raw)
    assert fast is not None, raw


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6)
"""Any JSON value, NaN and infinities included (``json`` writes them as literals)."""
keys = st.one_of(identifiers, st.text(max_size=70), st.sampled_from(
    ["A", "-a", "_a", "", "a" * 65, "seq", "ts"]))


@st.composite
def mutated_payloads(draw: st.DrawFn) -> Any:
    """A plain payload with a few things broken: a field replaced, added or dropped,
    a value, quality or key swapped for anything."""
    payload: Any = draw(plain_payloads())
    for _ in range(draw(st.integers(1, 3))):
        if not isinstance(payload, dict):
            break
        where = draw(st.sampled_from(["field", "extra", "drop", "value", "quality", "key",
                                      "whole"]))
        inner_name = "values" if where in ("value", "key") else "quality"
        inner = payload.get(inner_name)
        if where == "field":
            payload[draw(st.sampled_from(sorted(payload) or ["seq"]))] = draw(json_values)
        elif where == "extra":
            payload[draw(keys)] = draw(json_values)
        elif where == "drop" and payload:
            payload.pop(draw(st.sampled_from(sorted(payload))))
        elif where == "whole":
            payload = draw(json_values)
        elif isinstance(inner, dict):
            if where == "key":
                inner[draw(keys)] = draw(plain_values)
            elif where == "value":
                inner[draw(keys | st.sampled_from(sorted(inner) or ["a"]))] = draw(
                    json_values | st.sampled_from([math.nan, math.inf, -math.inf, None]))
            else:
                inner[draw(keys)] = draw(json_values | qualities)
    return payload


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_payloads())
def test_whatever_the_fast_path_takes_the_contract_takes_alike(payload: Any) -> None:
    _agree(json.dumps(payload, allow_nan=True).encode())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_declined_or_agreed(raw: bytes) -> None:
    _agree(raw)
