"""Encode payload models to MQTT bytes and decode bytes back, with field-level errors."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar, overload

from pydantic import BaseModel, TypeAdapter, ValidationError

from towerwatch.contract.errors import ROOT_PATH, FieldIssue, PayloadError
from towerwatch.contract.payloads import (
    Command,
    CommandReply,
    DeviceState,
    Event,
    FieldRuleError,
    Payload,
    Status,
    Telemetry,
)
from towerwatch.contract.topics import Topic, TopicKind, parse_topic

M = TypeVar("M", bound=BaseModel)

PAYLOAD_TYPES: dict[TopicKind, Any] = {
    TopicKind.STATUS: Status,
    TopicKind.TELEMETRY: Telemetry,
    TopicKind.EVENT: Event,
    TopicKind.DEVICE_STATE: DeviceState,
    TopicKind.COMMAND: Command,
    TopicKind.COMMAND_REPLY: CommandReply,
}
"""The payload type of each topic kind (``Status`` is the Birth | Will union)."""

_ADAPTERS: dict[TopicKind, TypeAdapter[Payload]] = {
    kind: TypeAdapter(tp) for kind, tp in PAYLOAD_TYPES.items()
}
_STATUS_TAGS = frozenset({"online", "offline"})

RawPayload = bytes | bytearray | memoryview | str


def encode(model: BaseModel) -> bytes:
    """Compact UTF-8 JSON of a payload model."""
    return model.model_dump_json().encode("utf-8")


@overload
def decode(kind: type[M], payload: RawPayload) -> M: ...
@overload
def decode(kind: TopicKind, payload: RawPayload) -> Payload: ...
def decode(kind: type[M] | TopicKind, payload: RawPayload) -> M | Payload:
    """Validate JSON bytes as the model of a topic kind or as the given model class.

    Any problem raises :class:`PayloadError` listing every bad field.
    """
    what = kind.value if isinstance(kind, TopicKind) else kind.__name__
    text = _text(payload, what)
    try:
        if isinstance(kind, TopicKind):
            return _ADAPTERS[kind].validate_json(text)
        return kind.model_validate_json(text)
    except ValidationError as exc:
        drop_tag = kind is TopicKind.STATUS
        raise PayloadError(list(field_issues(exc, drop_tag=drop_tag)), what) from exc


def decode_for_topic(topic: Topic | str, payload: RawPayload) -> Payload:
    """Decode a payload as the model its topic calls for (a string topic is parsed first)."""
    parsed = parse_topic(topic) if isinstance(topic, str) else topic
    return decode(parsed.kind, payload)


def _text(payload: RawPayload, what: str) -> str:
    if isinstance(payload, str):
        return payload
    try:
        return bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        issue = FieldIssue(ROOT_PATH, f"not UTF-8: {exc.reason} at byte {exc.start}")
        raise PayloadError([issue], what) from exc


def format_path(loc: Sequence[int | str]) -> str:
    """``('devices', 0, 'id')`` → ``devices[0].id``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _join(base: str, path: str) -> str:
    if not base:
        return path
    return f"{base}.{path}" if path else base


def field_issues(error: ValidationError, *, drop_tag: bool = False) -> Iterator[FieldIssue]:
    """Turn a pydantic validation error into field-level issues with readable paths.

    ``drop_tag`` leaves out the leading union tag (``online``/``offline``) of status errors.
    """
    for err in error.errors(include_url=False):
        loc = list(err["loc"])
        kind = err["type"]
        if drop_tag and loc and loc[0] in _STATUS_TAGS:
            loc = loc[1:]
        message = err["msg"].removeprefix("Value error, ")
        if loc and loc[-1] == "[key]":
            loc, message = loc[:-1], f"bad key: {message}"
        path = format_path(loc)
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, FieldRuleError):
            for issue in cause.issues:
                yield FieldIssue(_join(path, issue.path), issue.message)
            continue
        if kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "missing":
            message = "required field is missing"
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            path = "state"
            message = "must be 'online' or 'offline'"
        yield FieldIssue(path, message)
