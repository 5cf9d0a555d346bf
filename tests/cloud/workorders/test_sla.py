"""SLA arithmetic with pauses (pure, table-driven)."""

from __future__ import annotations

import pytest

from cloud.workorders.sla import (
    Deadlines,
    Milestones,
    SlaStatus,
    SlaTerms,
    breaches,
    deadlines,
    effective,
    shift,
    sla_status,
    terms_for,
)

M = 60_000
T0 = 1_750_000_000_000


@pytest.mark.parametrize(
    ("category", "priority", "site", "expected"),
    [
        ("elevator", "emergency", {}, SlaTerms(5, 30, 240)),
        ("fire", "emergency", {}, SlaTerms(5, 3, 240)),
        ("water", "urgent", {}, SlaTerms(30, 30, 240)),
        ("general", "normal", {}, SlaTerms(120, None, 1440)),
        ("general", "low", {}, SlaTerms(1440, None, 4320)),
        # a site's (category, priority) row beats everything
        ("fire", "emergency", {("fire", "emergency"): SlaTerms(2, 2, 60)}, SlaTerms(2, 2, 60)),
        # a site's (*, priority) row does not beat the specific default for fire…
        ("fire", "emergency", {("*", "emergency"): SlaTerms(10, 60, 480)}, SlaTerms(5, 3, 240)),
        # …but does beat the general default for other trades
        ("elevator", "emergency", {("*", "emergency"): SlaTerms(10, 60, 480)},
         SlaTerms(10, 60, 480)),
    ],
)
def test_terms_for(
    category: str, priority: str, site: dict[tuple[str, str], SlaTerms], expected: SlaTerms
) -> None:
    assert terms_for(category, priority, site) == expected


def test_terms_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="arrive_minutes"):
        SlaTerms(5, 0, 10)
    with pytest.raises(ValueError, match="priority"):
        terms_for("general", "whenever")


def test_entrapment_arrival_deadline_is_30_minutes() -> None:
    due = deadlines(T0, terms_for("elevator", "emergency"))
    assert due == Deadlines(T0 + 5 * M, T0 + 30 * M, T0 + 240 * M)


def test_normal_work_has_no_arrival_deadline() -> None:
    assert deadlines(T0, terms_for("general", "normal")).arrive is None


DUE = Deadlines(T0 + 5 * M, T0 + 30 * M, T0 + 240 * M)

# (milestones, now, hold_since, expected breaches)
BREACH_CASES = [
    (Milestones(), T0 + 4 * M, None, []),
    (Milestones(), T0 + 6 * M, None, [("respond", T0 + 5 * M)]),
    (Milestones(responded=T0 + 4 * M), T0 + 6 * M, None, []),
    (Milestones(responded=T0 + 6 * M), T0 + 7 * M, None, [("respond", T0 + 5 * M)]),
    (Milestones(responded=T0 + M), T0 + 31 * M, None, [("arrive", T0 + 30 * M)]),
    # on hold since minute 2: the clock stops, nothing is missed at minute 100
    (Milestones(), T0 + 100 * M, T0 + 2 * M, []),
    # on hold since minute 10: respond was already missed, arrival is not
    (Milestones(), T0 + 100 * M, T0 + 10 * M, [("respond", T0 + 5 * M + 90 * M)]),
    (Milestones(T0 + M, T0 + 2 * M, T0 + 241 * M), T0 + 300 * M, None,
     [("resolve", T0 + 240 * M)]),
]


@pytest.mark.parametrize(("met", "now", "hold", "expected"), BREACH_CASES)
def test_breaches(
    met: Milestones, now: int, hold: int | None, expected: list[tuple[str, int]]
) -> None:
    assert breaches(DUE, met, now, hold) == expected


def test_hold_and_resume_shift_only_unmet_deadlines() -> None:
    met = Milestones(responded=T0 + 3 * M)
    held = effective(DUE, met, T0 + 20 * M, hold_since_ms=T0 + 10 * M)
    assert held == Deadlines(T0 + 5 * M, T0 + 40 * M, T0 + 250 * M)
    resumed = shift(DUE, met, 25 * M)
    assert resumed == Deadlines(T0 + 5 * M, T0 + 55 * M, T0 + 265 * M)
    # two holds add up
    assert shift(resumed, met, 5 * M) == Deadlines(T0 + 5 * M, T0 + 60 * M, T0 + 270 * M)
    with pytest.raises(ValueError, match="negative"):
        shift(DUE, met, -1)


@pytest.mark.parametrize(
    ("met", "now", "hold", "expected"),
    [
        (Milestones(), T0 + M, None, SlaStatus.OK),
        (Milestones(), T0 + 4 * M, None, SlaStatus.AT_RISK),
        (Milestones(), T0 + 6 * M, None, SlaStatus.BREACHED),
        (Milestones(), T0 + 60 * M, T0 + 2 * M, SlaStatus.PAUSED),
        (Milestones(T0 + M, T0 + 2 * M, T0 + 3 * M), T0 + 600 * M, None, SlaStatus.MET),
        (Milestones(T0 + M), T0 + 2 * M, None, SlaStatus.OK),
    ],
)
def test_status(met: Milestones, now: int, hold: int | None, expected: SlaStatus) -> None:
    assert sla_status(T0, DUE, met, now, hold) is expected


def test_no_deadlines_is_none() -> None:
    assert sla_status(T0, Deadlines(None, None, None), Milestones(), T0, None) is SlaStatus.NONE
