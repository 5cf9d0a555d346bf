"""The vocabulary of patrols: tag types, route modes, tour states, scan results and
exception kinds (string enums stored as they are spelled here)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = [
    "CLOSED_TOUR_STATES",
    "OPEN_TOUR_STATES",
    "Assurance",
    "ExceptionKind",
    "ExceptionStatus",
    "KeyMode",
    "RouteMode",
    "ScanResult",
    "Severity",
    "TagType",
    "TourStatus",
]


class TagType(StrEnum):
    SUN = "ntag424_sun"
    """NTAG 424 DNA with Secure Unique NFC: every tap is authenticated and fresh."""
    UID = "uid"
    """Any NFC tag read by its UID: copyable, so weaker assurance."""
    QR = "qr"
    """A printed code: photographable, so weaker assurance."""


class Assurance(StrEnum):
    STRONG = "strong"
    """A verified, fresh SUN tap: the tag was physically present."""
    WEAK = "weak"
    """A UID or QR read: proves that someone knew the tag's identity, not that it was there."""


class KeyMode(StrEnum):
    STORED = "stored"
    DERIVED = "derived"


class RouteMode(StrEnum):
    ORDERED = "ordered"
    """Every required stop, in route order."""
    ANY_ORDER = "any_order"
    """Every required stop, in any order."""
    PARTIAL = "partial"
    """Any order; at least ``min_stops`` of the stops (the rest are not missed)."""


class TourStatus(StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    COMPLETED_WITH_EXCEPTIONS = "completed_with_exceptions"
    ABANDONED = "abandoned"
    MISSED = "missed"


OPEN_TOUR_STATES: Final = frozenset({TourStatus.SCHEDULED, TourStatus.IN_PROGRESS})
CLOSED_TOUR_STATES: Final = frozenset(TourStatus) - OPEN_TOUR_STATES


class ScanResult(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    """Authentic, but the checkpoint was already visited on this tour."""
    UNKNOWN_TAG = "unknown_tag"
    BAD_MAC = "bad_mac"
    REPLAY = "replay"


class ExceptionKind(StrEnum):
    MISSED_CHECKPOINT = "missed_checkpoint"
    LATE = "late"
    EARLY = "early"
    OUT_OF_ORDER = "out_of_order"
    TOO_FAST = "too_fast"
    DUPLICATE_SCAN = "duplicate_scan"
    UNKNOWN_TAG = "unknown_tag"
    BAD_MAC = "bad_mac"
    REPLAY = "replay"
    CLOCK_SKEW = "clock_skew"
    TOUR_NOT_STARTED = "tour_not_started"
    TOUR_OVERDUE = "tour_overdue"
    INCIDENT = "incident"
    """A finding a guard reported on a round (it becomes a work order by policy)."""


class ExceptionStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    """Closed by a supervisor, with a comment."""
    WITHDRAWN = "withdrawn"
    """Disproved by data that arrived later (an offline batch filled a missed checkpoint)."""


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    EMERGENCY = "emergency"
