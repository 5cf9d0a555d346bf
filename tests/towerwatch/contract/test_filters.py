from __future__ import annotations

from collections.abc import Callable

import pytest

from towerwatch.contract import (
    ALL_TOPICS,
    TopicError,
    command_filter,
    command_reply_filter,
    gateway_filter,
    shared_filter,
    site_filter,
)
from towerwatch.contract.filters import check_filter, topic_matches


def test_filter_builders() -> None:
    assert ALL_TOPICS == "tw/v1/#"
    assert shared_filter() == "$share/tw-ingest/tw/v1/#"
    assert shared_filter("other", "tw/v1/s/#") == "$share/other/tw/v1/s/#"
    assert site_filter("s") == "tw/v1/s/#"
    assert gateway_filter("s", "g") == "tw/v1/s/g/#"
    assert command_filter("s", "g") == "tw/v1/s/g/cmd/+"
    assert command_reply_filter("s", "g") == "tw/v1/s/g/cmd-reply/+"


@pytest.mark.parametrize(
    ("build", "part"),
    [
        (lambda: shared_filter("a/b"), "group"),
        (lambda: shared_filter("+"), "group"),
        (lambda: shared_filter("grp", "tw/#/x"), "filter"),
        (lambda: site_filter("S"), "site"),
        (lambda: command_filter("s", "G"), "gateway"),
    ],
)
def test_filter_builders_reject_bad_parts(build: Callable[[], str], part: str) -> None:
    with pytest.raises(TopicError) as caught:
        build()
    assert caught.value.part == part


@pytest.mark.parametrize("topic_filter", ["", "tw/#/x", "tw/v1#", "tw/v1/a+", "tw/v1/##"])
def test_bad_filters_rejected(topic_filter: str) -> None:
    with pytest.raises(TopicError):
        check_filter(topic_filter)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("tw/v1/#", "tw/v1/s/g/status", True),
        ("tw/v1/#", "tw/v1", True),
        ("tw/v1/#", "tw/v2/s/g/status", False),
        ("$share/tw-ingest/tw/v1/#", "tw/v1/s/g/telemetry/d", True),
        ("tw/v1/s/g/cmd/+", "tw/v1/s/g/cmd/r1", True),
        ("tw/v1/s/g/cmd/+", "tw/v1/s/g/cmd-reply/r1", False),
        ("tw/v1/s/g/cmd/+", "tw/v1/s/g/cmd/r1/x", False),
        ("tw/v1/s/g/cmd/+", "tw/v1/s/other/cmd/r1", False),
        ("tw/v1/+/+/status", "tw/v1/s/g/status", True),
        ("tw/v1/+/+/status", "tw/v1/s/g/event/d", False),
        ("#", "$SYS/broker/uptime", False),
        ("+/v1/#", "$SYS/v1/x", False),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected
