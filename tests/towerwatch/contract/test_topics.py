from __future__ import annotations

from collections.abc import Callable

import pytest

from towerwatch.contract import (
    Delivery,
    Topic,
    TopicError,
    TopicKind,
    command_reply_topic,
    command_topic,
    delivery,
    device_state_topic,
    event_topic,
    gateway_root,
    parse_topic,
    status_topic,
    telemetry_topic,
)

RID = "0f8fad5b-d9cb-469f-a165-70867728950e"

ROUND_TRIPS: list[tuple[str, Topic]] = [
    ("tw/v1/tower-a/gw1/status", Topic(TopicKind.STATUS, "tower-a", "gw1")),
    (
        "tw/v1/tower-a/gw1/telemetry/lift-1",
        Topic(TopicKind.TELEMETRY, "tower-a", "gw1", device="lift-1"),
    ),
    ("tw/v1/tower-a/gw1/event/door_3", Topic(TopicKind.EVENT, "tower-a", "gw1", device="door_3")),
    (
        "tw/v1/tower-a/gw1/device/pump-2/state",
        Topic(TopicKind.DEVICE_STATE, "tower-a", "gw1", device="pump-2"),
    ),
    (f"tw/v1/tower-a/gw1/cmd/{RID}", Topic(TopicKind.COMMAND, "tower-a", "gw1", request_id=RID)),
    (
        "tw/v1/tower-a/gw1/cmd-reply/Req_1",
        Topic(TopicKind.COMMAND_REPLY, "tower-a", "gw1", request_id="Req_1"),
    ),
]


@pytest.mark.parametrize(("name", "topic"), ROUND_TRIPS, ids=[t.kind for _, t in ROUND_TRIPS])
def test_parse_and_format_round_trip(name: str, topic: Topic) -> None:
    assert parse_topic(name) == topic
    assert str(topic) == name


BUILDERS: list[tuple[Callable[[], str], Topic]] = [
    (lambda: status_topic("s1", "gw"), Topic(TopicKind.STATUS, "s1", "gw")),
    (lambda: telemetry_topic("s1", "gw", "m1"), Topic(TopicKind.TELEMETRY, "s1", "gw", "m1")),
    (lambda: event_topic("s1", "gw", "m1"), Topic(TopicKind.EVENT, "s1", "gw", "m1")),
    (
        lambda: device_state_topic("s1", "gw", "m1"),
        Topic(TopicKind.DEVICE_STATE, "s1", "gw", "m1"),
    ),
    (
        lambda: command_topic("s1", "gw", RID),
        Topic(TopicKind.COMMAND, "s1", "gw", request_id=RID),
    ),
    (
        lambda: command_reply_topic("s1", "gw", RID),
        Topic(TopicKind.COMMAND_REPLY, "s1", "gw", request_id=RID),
    ),
]


@pytest.mark.parametrize(("build", "expected"), BUILDERS, ids=[t.kind for _, t in BUILDERS])
def test_builders_parse_back_to_the_same_parts(build: Callable[[], str], expected: Topic) -> None:
    name = build()
    assert name.startswith("tw/v1/s1/gw/")
    assert parse_topic(name) == expected


def test_every_kind_has_a_round_trip_and_a_builder() -> None:
    assert {t.kind for _, t in ROUND_TRIPS} == set(TopicKind)
    assert {t.kind for _, t in BUILDERS} == set(TopicKind)


MALFORMED = [
    ("", "topic"),
    ("xx/v1/s/g/status", "root"),
    ("/tw/v1/s/g/status", "root"),
    ("$share/grp/tw/v1/s/g/status", "root"),
    ("tw", "version"),
    ("tw/v2/s/g/status", "version"),
    ("tw/V1/s/g/status", "version"),
    ("tw/v1", "site"),
    ("tw/v1/S/g/status", "site"),
    ("tw/v1//g/status", "site"),
    ("tw/v1/+/g/status", "site"),
    ("tw/v1/s", "gateway"),
    ("tw/v1/s/#", "gateway"),
    ("tw/v1/s/g", "kind"),
    ("tw/v1/s/g/", "kind"),
    ("tw/v1/s/g/metrics", "kind"),
    ("tw/v1/s/g/telemetry", "device"),
    ("tw/v1/s/g/telemetry/", "device"),
    ("tw/v1/s/g/event/Lift", "device"),
    ("tw/v1/s/g/device", "device"),
    ("tw/v1/s/g/device/d", "state"),
    ("tw/v1/s/g/device/d/status", "state"),
    ("tw/v1/s/g/cmd", "request_id"),
    ("tw/v1/s/g/cmd/a.b", "request_id"),
    ("tw/v1/s/g/cmd-reply/+", "request_id"),
    ("tw/v1/s/g/status/x", "extra levels"),
    ("tw/v1/s/g/status/", "extra levels"),
    ("tw/v1/s/g/telemetry/d/x", "extra levels"),
    ("tw/v1/s/g/device/d/state/x", "extra levels"),
    ("tw/v1/s/g/cmd/r/x", "extra levels"),
]


@pytest.mark.parametrize(("name", "part"), MALFORMED)
def test_malformed_topics_name_the_bad_part(name: str, part: str) -> None:
    with pytest.raises(TopicError) as caught:
        parse_topic(name)
    assert caught.value.part == part
    assert caught.value.topic == name
    assert part in str(caught.value)


BAD_BUILDS: list[tuple[Callable[[], object], str]] = [
    (lambda: status_topic("Site", "gw"), "site"),
    (lambda: status_topic("s", "g/w"), "gateway"),
    (lambda: telemetry_topic("s", "g", "+"), "device"),
    (lambda: event_topic("s", "g", ""), "device"),
    (lambda: device_state_topic("s", "g", "#"), "device"),
    (lambda: command_topic("s", "g", "a/b"), "request_id"),
    (lambda: command_reply_topic("s", "g", ""), "request_id"),
    (lambda: gateway_root("s", "-g"), "gateway"),
    (lambda: Topic(TopicKind.TELEMETRY, "s", "g"), "device"),
    (lambda: Topic(TopicKind.STATUS, "s", "g", device="d"), "device"),
    (lambda: Topic(TopicKind.COMMAND, "s", "g"), "request_id"),
    (lambda: Topic(TopicKind.EVENT, "s", "g", "d", request_id="r"), "request_id"),
]


@pytest.mark.parametrize(("build", "part"), BAD_BUILDS)
def test_builders_reject_bad_parts(build: Callable[[], object], part: str) -> None:
    with pytest.raises(TopicError) as caught:
        build()
    assert caught.value.part == part


@pytest.mark.parametrize(
    ("kind", "retain"),
    [
        (TopicKind.STATUS, True),
        (TopicKind.TELEMETRY, False),
        (TopicKind.EVENT, False),
        (TopicKind.DEVICE_STATE, True),
        (TopicKind.COMMAND, False),
        (TopicKind.COMMAND_REPLY, False),
    ],
)
def test_delivery_follows_the_table(kind: TopicKind, retain: bool) -> None:
    assert delivery(kind) == Delivery(qos=1, retain=retain)


def test_topic_knows_its_delivery() -> None:
    assert parse_topic("tw/v1/s/g/device/d/state").delivery.retain is True
