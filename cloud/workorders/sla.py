"""SLA arithmetic (pure): default terms, which terms apply, deadlines, pauses, breaches.

The defaults are the response and repair norms of the industry (DOMAIN.md):

==========  ================  =======  ========================  =======  =========
priority    category          respond  arrive                    resolve  follow-up
==========  ================  =======  ========================  =======  =========
emergency   any               5 min    30 min (entrapment)       4 h      24 h
emergency   fire              5 min    3 min (micro fire station) 4 h     24 h
urgent      any               30 min   30 min                    4 h      24 h
normal      any               2 h      none                      24 h     24 h
low         any               24 h     none                      72 h     24 h
==========  ================  =======  ========================  =======  =========

Which terms apply to ``(category, priority)``: the most specific row wins, and at equal
specificity the site's own row beats the default: site ``(category, priority)``, default
``(category, priority)``, site ``(*, priority)``, default ``(*, priority)``.

Milestones: *respond* is met when the assignee accepts, *arrive* when they are on site,
*resolve* when the work order is resolved, *follow-up* when the 回访 is recorded (due
``follow_up_minutes`` after resolution). While a work order is on hold the clock stops:
an unmet deadline moves with the clock (``due + (now - hold_since)``) and, on resume, each
unmet deadline is shifted by the time spent on hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

__all__ = [
    "AT_RISK_FRACTION",
    "DEFAULT_TERMS",
    "WILDCARD",
    "Deadlines",
    "Milestones",
    "SlaStatus",
    "SlaTerms",
    "breaches",
    "deadlines",
    "effective",
    "shift",
    "sla_status",
    "terms_for",
]

MINUTE_MS: Final = 60_000
WILDCARD: Final = "*"
AT_RISK_FRACTION: Final = 0.25
"""A deadline is at risk when less than this share of its span is left."""


@dataclass(frozen=True)
class SlaTerms:
    """Minutes from creation to each deadline (``None``: no such deadline)."""

    respond_minutes: int | None
    arrive_minutes: int | None
    resolve_minutes: int | None
    follow_up_minutes: int = 24 * 60

    def __post_init__(self) -> None:
        for name in ("respond_minutes", "arrive_minutes", "resolve_minutes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or absent, got {value}")
        if self.follow_up_minutes <= 0:
            raise ValueError(f"follow_up_minutes must be positive, got {self.follow_up_minutes}")


DEFAULT_TERMS: Final[Mapping[tuple[str, str], SlaTerms]] = {
    (WILDCARD, "emergency"): SlaTerms(5, 30, 4 * 60),
    ("fire", "emergency"): SlaTerms(5, 3, 4 * 60),
    (WILDCARD, "urgent"): SlaTerms(30, 30, 4 * 60),
    (WILDCARD, "normal"): SlaTerms(2 * 60, None, 24 * 60),
    (WILDCARD, "low"): SlaTerms(24 * 60, None, 72 * 60),
}


def terms_for(
    category: str, priority: str, site: Mapping[tuple[str, str], SlaTerms] | None = None
) -> SlaTerms:
    """The terms that apply (see the module docstring for the order)."""
    site = site or {}
    for table, key in ((site, (category, priority)), (DEFAULT_TERMS, (category, priority)),
                       (site, (WILDCARD, priority)), (DEFAULT_TERMS, (WILDCARD, priority))):
        if key in table:
            return table[key]
    raise ValueError(f"no SLA terms for priority {priority!r}")


@dataclass(frozen=True)
class Deadlines:
    respond: int | None
    arrive: int | None
    resolve: int | None


@dataclass(frozen=True)
class Milestones:
    """When each milestone was met (``None``: not yet)."""

    responded: int | None = None
    arrived: int | None = None
    resolved: int | None = None


def deadlines(start_ms: int, terms: SlaTerms) -> Deadlines:
    def at(minutes: int | None) -> int | None:
        return None if minutes is None else start_ms + minutes * MINUTE_MS

    return Deadlines(at(terms.respond_minutes), at(terms.arrive_minutes),
                     at(terms.resolve_minutes))


def _pairs(due: Deadlines, met: Milestones) -> tuple[tuple[str, int | None, int | None], ...]:
    return (("respond", due.respond, met.responded), ("arrive", due.arrive, met.arrived),
            ("resolve", due.resolve, met.resolved))


def shift(due: Deadlines, met: Milestones, paused_ms: int) -> Deadlines:
    """``due`` with every unmet deadline moved ``paused_ms`` later (on resume)."""
    if paused_ms < 0:
        raise ValueError(f"a pause cannot be negative: {paused_ms}")
    moved = {kind: (d + paused_ms if d is not None and m is None else d)
             for kind, d, m in _pairs(due, met)}
    return replace(due, **moved)


def effective(due: Deadlines, met: Milestones, now_ms: int, hold_since_ms: int | None) -> Deadlines:
    """The deadlines as they stand at ``now_ms`` (moved along while on hold)."""
    if hold_since_ms is None:
        return due
    return shift(due, met, max(0, now_ms - hold_since_ms))


def breaches(
    due: Deadlines, met: Milestones, now_ms: int, hold_since_ms: int | None = None
) -> list[tuple[str, int]]:
    """``(kind, effective due)`` of each deadline missed by ``now_ms``: unmet and past, or
    met after it was due."""
    current = effective(due, met, now_ms, hold_since_ms)
    missed = []
    for kind, d, m in _pairs(current, met):
        if d is not None and (m if m is not None else now_ms) > d:
            missed.append((kind, d))
    return missed


class SlaStatus(StrEnum):
    NONE = "none"
    """No deadlines at all."""
    OK = "ok"
    AT_RISK = "at_risk"
    BREACHED = "breached"
    PAUSED = "paused"
    MET = "met"


def sla_status(
    start_ms: int, due: Deadlines, met: Milestones, now_ms: int, hold_since_ms: int | None
) -> SlaStatus:
    """One word for lists: breached beats paused beats at-risk beats ok; met when every
    deadline was met in time."""
    if all(d is None for d in (due.respond, due.arrive, due.resolve)):
        return SlaStatus.NONE
    if breaches(due, met, now_ms, hold_since_ms):
        return SlaStatus.BREACHED
    if hold_since_ms is not None:
        return SlaStatus.PAUSED
    pending = [d for _kind, d, m in _pairs(due, met) if d is not None and m is None]
    if not pending:
        return SlaStatus.MET
    nearest = min(pending)
    span = max(1, nearest - start_ms)
    return SlaStatus.AT_RISK if nearest - now_ms < span * AT_RISK_FRACTION else SlaStatus.OK
