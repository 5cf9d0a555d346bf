from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tests.towerwatch.contract import samples
from towerwatch.contract import (
    Birth,
    Command,
    CommandReply,
    DeviceState,
    Event,
    Payload,
    PayloadError,
    Telemetry,
    TopicKind,
    Will,
    decode,
    encode,
)

KIND_OF: dict[type[BaseModel], TopicKind] = {
    Birth: TopicKind.STATUS,
    Will: TopicKind.STATUS,
    Telemetry: TopicKind.TELEMETRY,
    Event: TopicKind.EVENT,
    DeviceState: TopicKind.DEVICE_STATE,
    Command: TopicKind.COMMAND,
    CommandReply: TopicKind.COMMAND_REPLY,
}


@pytest.mark.parametrize("model", samples.ALL.values(), ids=samples.ALL.keys())
def test_encode_decode_round_trip(model: Payload) -> None:
    raw = encode(model)
    compact = json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False)
    assert raw == compact.encode("utf-8")
    assert decode(type(model), raw) == model
    assert decode(KIND_OF[type(model)], raw) == model


@pytest.mark.parametrize("model", samples.ALL.values(), ids=samples.ALL.keys())
def test_encoded_fields_are_the_contract_names(model: Payload) -> None:
    assert list(json.loads(encode(model))) == list(type(model).model_fields)


def test_status_union_picks_by_state() -> None:
    assert type(decode(TopicKind.STATUS, encode(samples.BIRTH))) is Birth
    assert type(decode(TopicKind.STATUS, encode(samples.WILL))) is Will


def test_models_are_frozen() -> None:
    with pytest.raises(ValidationError):
        samples.DEVICE_STATE.online = True  # type: ignore[misc]


def test_quality_of_defaults_to_good() -> None:
    assert samples.TELEMETRY.quality_of("mode") == "good"
    assert samples.TELEMETRY.quality_of("load") == "stale"


def test_command_expiry() -> None:
    assert not samples.PING.expired(samples.TS)
    assert samples.PING.expired(samples.PING.expires)


def _with(model: BaseModel, **changes: Any) -> bytes:
    data = json.loads(encode(model))
    for key, value in changes.items():
        if value is _DROP:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data).encode()


_DROP = object()
NAN = float("nan")

# (name, model class, raw payload, expected field path, fragment of the message)
INVALID: list[tuple[str, type[BaseModel], bytes, str, str]] = [
    ("seq negative", Telemetry, _with(samples.TELEMETRY, seq=-1), "seq", "greater than"),
    ("seq string", Telemetry, _with(samples.TELEMETRY, seq="1"), "seq", "integer"),
    ("seq float", Telemetry, _with(samples.TELEMETRY, seq=1.0), "seq", "integer"),
    ("seq bool", Telemetry, _with(samples.TELEMETRY, seq=True), "seq", "integer"),
    ("seq missing", Telemetry, _with(samples.TELEMETRY, seq=_DROP), "seq", "missing"),
    ("ts in seconds", Telemetry, _with(samples.TELEMETRY, ts=1_700_000_000), "ts", "seconds"),
    ("ts too late", Telemetry, _with(samples.TELEMETRY, ts=8_000_000_000_000), "ts", "2200"),
    ("boot_id short", Telemetry, _with(samples.TELEMETRY, boot_id="abc"), "boot_id", "8-64"),
    ("boot_id chars", Telemetry, _with(samples.TELEMETRY, boot_id="abc_defgh"), "boot_id", "8-64"),
    ("unknown field", Telemetry, _with(samples.TELEMETRY, extra=1), "extra", "unknown field"),
    ("value list", Telemetry, _with(samples.TELEMETRY, values={"t": [1]}), "values.t", "number"),
    ("value object", Telemetry, _with(samples.TELEMETRY, values={"t": {}}), "values.t", "number"),
    ("value nan", Telemetry, _with(samples.TELEMETRY, values={"t": NAN}), "values.t", "finite"),
    (
        "value inf",
        Telemetry,
        _with(samples.TELEMETRY, values={"t": float("inf")}),
        "values.t",
        "finite",
    ),
    (
        "null value, good quality",
        Telemetry,
        _with(samples.TELEMETRY, values={"t": None}, quality={"t": "good"}),
        "values.t",
        "stale",
    ),
    (
        "null value, no quality",
        Telemetry,
        _with(samples.TELEMETRY, values={"t": None}, quality={}),
        "values.t",
        "stale",
    ),
    ("point id", Telemetry, _with(samples.TELEMETRY, values={"T": 1}), "values.T", "bad key"),
    ("quality", Telemetry, _with(samples.TELEMETRY, quality={"t": "ok"}), "quality.t", "'good'"),
    ("event kind", Event, _with(samples.EVENT, kind="fault"), "kind", "'alarm'"),
    ("event name", Event, _with(samples.EVENT, name="Entrapment"), "name", "lowercase"),
    ("event severity", Event, _with(samples.EVENT, severity="critical"), "severity", "'low'"),
    ("event state", Event, _with(samples.EVENT, state=""), "state", "at least 1"),
    ("event id", Event, _with(samples.EVENT, event_id="a b"), "event_id", "pattern"),
    ("event id long", Event, _with(samples.EVENT, event_id="e" * 129), "event_id", "at most"),
    ("detail null", Event, _with(samples.EVENT, detail={"x": None}), "detail.x", "not null"),
    ("detail list", Event, _with(samples.EVENT, detail={"x": [1]}), "detail.x", "not list"),
    ("device online", DeviceState, _with(samples.DEVICE_STATE, online=1), "online", "boolean"),
    ("device since", DeviceState, _with(samples.DEVICE_STATE, since=None), "since", "integer"),
    (
        "birth device id",
        Birth,
        _with(samples.BIRTH, devices=[{"id": "Lift", "profile": "p"}]),
        "devices[0].id",
        "lowercase",
    ),
    (
        "birth device extra",
        Birth,
        _with(samples.BIRTH, devices=[{"id": "l", "profile": "p", "ip": "10.0.0.1"}]),
        "devices[0].ip",
        "unknown field",
    ),
    (
        "birth duplicate device",
        Birth,
        _with(samples.BIRTH, devices=[{"id": "l", "profile": "p"}, {"id": "l", "profile": "q"}]),
        "devices[1].id",
        "duplicate",
    ),
    ("birth state", Birth, _with(samples.BIRTH, state="offline"), "state", "'online'"),
    ("will state", Will, _with(samples.WILL, state="online"), "state", "'offline'"),
    ("write no device", Command, _with(samples.WRITE, device=None), "device", "required"),
    ("write no point", Command, _with(samples.WRITE, point=_DROP), "point", "required"),
    ("write null value", Command, _with(samples.WRITE, value=None), "value", "required"),
    ("write nan value", Command, _with(samples.WRITE, value=NAN), "value", "finite"),
    ("ping with point", Command, _with(samples.PING, point="p"), "point", "not allowed"),
    ("reload with value", Command, _with(samples.RELOAD, value=1), "value", "not allowed"),
    ("unknown op", Command, _with(samples.PING, op="reboot"), "op", "'write'"),
    ("expires missing", Command, _with(samples.PING, expires=_DROP), "expires", "missing"),
    ("reply no error", CommandReply, _with(samples.REPLY_FAILED, error=None), "error", "required"),
    ("reply ok error", CommandReply, _with(samples.REPLY_OK, error="x"), "error", "null"),
    ("reply ok string", CommandReply, _with(samples.REPLY_OK, ok="true"), "ok", "boolean"),
]


@pytest.mark.parametrize(
    ("model_class", "raw", "path", "fragment"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_payload_names_the_field(
    model_class: type[BaseModel], raw: bytes, path: str, fragment: str
) -> None:
    targets: list[type[BaseModel] | TopicKind] = [model_class]
    if model_class not in (Birth, Will):  # through the status union, "state" picks the model
        targets.append(KIND_OF[model_class])
    for target in targets:
        with pytest.raises(PayloadError) as caught:
            decode(target, raw)
        messages = {p: m for p, m in caught.value.errors}
        assert path in messages, caught.value.errors
        assert fragment in messages[path]
        assert f"{path}: " in str(caught.value)


STATUS_INVALID = [
    ("state unknown", _with(samples.WILL, state="lost"), "state", "'offline'"),
    ("state missing", _with(samples.WILL, state=_DROP), "state", "'offline'"),
    ("will as birth", _with(samples.WILL, state="online"), "version", "missing"),
    (
        "birth device",
        _with(samples.BIRTH, devices=[{"id": "-a", "profile": "p"}]),
        "devices[0].id",
        "",
    ),
    ("will reason", _with(samples.WILL, reason=""), "reason", "at least 1"),
]


@pytest.mark.parametrize(
    ("raw", "path", "fragment"),
    [case[1:] for case in STATUS_INVALID],
    ids=[case[0] for case in STATUS_INVALID],
)
def test_invalid_status_names_the_field_without_the_union_tag(
    raw: bytes, path: str, fragment: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        decode(TopicKind.STATUS, raw)
    messages = {p: m for p, m in caught.value.errors}
    assert path in messages, caught.value.errors
    assert fragment in messages[path]


def test_every_problem_is_reported_at_once() -> None:
    raw = _with(samples.TELEMETRY, seq=-1, boot_id="x", extra=1, values={"T": 1})
    with pytest.raises(PayloadError) as caught:
        decode(Telemetry, raw)
    assert [p for p, _ in caught.value.errors] == ["seq", "boot_id", "values.T", "extra"]


def test_all_cross_field_problems_are_reported() -> None:
    with pytest.raises(PayloadError) as caught:
        decode(Command, b'{"op":"write","expires":1700000000000}')
    assert [p for p, _ in caught.value.errors] == ["device", "point", "value"]


def test_python_construction_validates_too() -> None:
    with pytest.raises(ValidationError, match="required when op is 'write'"):
        Command(op="write", expires=samples.TS)
    with pytest.raises(ValidationError, match="finite"):
        Telemetry(seq=0, boot_id=samples.BOOT, ts=samples.TS, values={"t": NAN}, quality={})
