"""MQTT subscription filters for the wire contract, and filter matching."""

from __future__ import annotations

from towerwatch.contract.errors import IdentifierError, TopicError
from towerwatch.contract.ids import check_identifier
from towerwatch.contract.topics import ROOT, gateway_root

ALL_TOPICS = f"{ROOT}/#"
"""Every Towerwatch topic: ``tw/v1/#``."""

INGEST_GROUP = "tw-ingest"
"""The shared-subscription group of the cloud ingest workers."""

SHARE_PREFIX = "$share/"


def shared_filter(group: str = INGEST_GROUP, topic_filter: str = ALL_TOPICS) -> str:
    """``$share/{group}/{topic_filter}``: one copy of each message per group (MQTT 5)."""
    try:
        check_identifier(group, "share group")
    except IdentifierError as exc:
        raise TopicError("group", str(exc), topic_filter) from exc
    check_filter(topic_filter)
    return f"{SHARE_PREFIX}{group}/{topic_filter}"


def site_filter(site: str) -> str:
    """``tw/v1/{site}/#``: everything from one site."""
    try:
        check_identifier(site, "site")
    except IdentifierError as exc:
        raise TopicError("site", str(exc)) from exc
    return f"{ROOT}/{site}/#"


def gateway_filter(site: str, gateway: str) -> str:
    """``tw/v1/{site}/{gateway}/#``: everything from one gateway."""
    return f"{gateway_root(site, gateway)}/#"


def command_filter(site: str, gateway: str) -> str:
    """``tw/v1/{site}/{gateway}/cmd/+``: the commands one gateway subscribes to."""
    return f"{gateway_root(site, gateway)}/cmd/+"


def command_reply_filter(site: str, gateway: str) -> str:
    """``tw/v1/{site}/{gateway}/cmd-reply/+``: one gateway's command replies."""
    return f"{gateway_root(site, gateway)}/cmd-reply/+"


def check_filter(topic_filter: str) -> str:
    """Return ``topic_filter`` if its wildcards are well placed, else raise :class:`TopicError`."""
    if not topic_filter:
        raise TopicError("filter", "empty", topic_filter)
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise TopicError("filter", "'#' must be a whole level and the last one", topic_filter)
        if "+" in level and level != "+":
            raise TopicError("filter", "'+' must be a whole level", topic_filter)
    return topic_filter


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` by MQTT rules (``$share/{group}/`` allowed)."""
    if topic_filter.startswith(SHARE_PREFIX):
        parts = topic_filter.split("/", 2)
        if len(parts) < 3 or not parts[1]:
            raise TopicError("filter", "a shared filter is $share/{group}/{filter}", topic_filter)
        topic_filter = parts[2]
    check_filter(topic_filter)
    wanted = topic_filter.split("/")
    levels = topic.split("/")
    if topic.startswith("$") and wanted[0] in ("+", "#"):
        return False
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(levels) or level not in ("+", levels[index]):
            return False
    return len(wanted) == len(levels)
