"""What a patrol exception sets off: an alarm, a work order, or nothing (by policy).

:class:`EscalationPolicy` maps each exception kind to a :class:`Rule`; the defaults raise
security alarms for forged, replayed and unknown taps, rounds not started, overdue and
missed checkpoints, record timing findings only, and turn incidents into work orders
(priority by the incident's severity). A :class:`PatrolEscalation` carries the request out:

- :class:`PlatformEscalation` calls ``cloud.alarms.raise_alarm`` and
  ``cloud.workorders.create_work_order`` (in the caller's transaction);
- :class:`RecordingEscalation` keeps the requests (tests, and sites that only want the
  patrol records).

Alarms are site-level, named ``patrol.<kind>.<checkpoint or route code>`` (:func:`alarm_name`):
one open alarm per checkpoint and kind, however many rounds miss it. Category ``general``
(the work-order trades have no security queue). When the last open exception behind an
alarm is closed or withdrawn, the escalation is *resolved*: the alarm's condition clears
(``cloud.alarms.clear_alarm``; an unacknowledged alarm stays on the board until it is
acknowledged). A work order is not touched: it has its own lifecycle.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from sqlalchemy.orm import Session

from cloud.patrols.model import ExceptionKind, Severity

__all__ = [
    "DEFAULT_RULES",
    "EscalationPolicy",
    "EscalationRequest",
    "PatrolEscalation",
    "PlatformEscalation",
    "RecordingEscalation",
    "Resolution",
    "Rule",
    "Target",
    "alarm_name",
    "default_escalation",
]

log = logging.getLogger(__name__)

Target = Literal["alarm", "work_order", "none"]
CATEGORY: Final = "general"
WORK_ORDER_PRIORITY: Final[Mapping[str, str]] = {
    Severity.EMERGENCY: "emergency", Severity.HIGH: "urgent",
    Severity.MEDIUM: "normal", Severity.LOW: "low",
}


@dataclass(frozen=True, slots=True)
class Rule:
    target: Target
    priority: Severity = Severity.MEDIUM


DEFAULT_RULES: Final[Mapping[ExceptionKind, Rule]] = {
    ExceptionKind.BAD_MAC: Rule("alarm", Severity.HIGH),
    ExceptionKind.REPLAY: Rule("alarm", Severity.HIGH),
    ExceptionKind.UNKNOWN_TAG: Rule("alarm", Severity.MEDIUM),
    ExceptionKind.TOUR_NOT_STARTED: Rule("alarm", Severity.HIGH),
    ExceptionKind.TOUR_OVERDUE: Rule("alarm", Severity.MEDIUM),
    ExceptionKind.MISSED_CHECKPOINT: Rule("alarm", Severity.MEDIUM),
    ExceptionKind.INCIDENT: Rule("work_order", Severity.MEDIUM),
    ExceptionKind.LATE: Rule("none"),
    ExceptionKind.EARLY: Rule("none"),
    ExceptionKind.OUT_OF_ORDER: Rule("none"),
    ExceptionKind.TOO_FAST: Rule("none"),
    ExceptionKind.DUPLICATE_SCAN: Rule("none"),
    ExceptionKind.CLOCK_SKEW: Rule("none"),
}


@dataclass(frozen=True)
class EscalationPolicy:
    rules: Mapping[ExceptionKind, Rule] = field(default_factory=lambda: dict(DEFAULT_RULES))

    def rule(self, kind: ExceptionKind, severity: Severity | None = None) -> Rule:
        """The rule for ``kind``; an incident's own severity sets its priority."""
        rule = self.rules.get(kind, Rule("none"))
        return Rule(rule.target, severity) if severity is not None else rule


@dataclass(frozen=True, slots=True)
class EscalationRequest:
    target: Target
    site: str
    subject: str
    """Checkpoint or route code the alarm is about (``-`` for the site)."""
    kind: ExceptionKind
    priority: Severity
    text_en: str
    text_zh: str
    now_ms: int
    actor: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Resolution:
    """Nothing open is behind an escalation any more (its exceptions were closed or
    withdrawn)."""

    target: Target
    site: str
    subject: str
    kind: ExceptionKind
    ref: str
    now_ms: int


def alarm_name(kind: ExceptionKind, subject: str) -> str:
    """The alarm a patrol exception raises: ``patrol.<kind>.<checkpoint or route code>``."""
    return f"patrol.{kind.value}.{subject}"[:128]


class PatrolEscalation(Protocol):
    """Carries out an escalation in the caller's transaction; returns a reference to the
    alarm or work order (``None`` if nothing was created). :meth:`resolve` is told when
    nothing open is behind it any more."""

    def escalate(self, session: Session, request: EscalationRequest) -> str | None: ...

    def resolve(self, session: Session, resolution: Resolution) -> None: ...


@dataclass
class RecordingEscalation:
    """Keeps every request and resolution; answers ``alarm-1``, ``work_order-2``, …"""

    requests: list[EscalationRequest] = field(default_factory=list)
    resolved: list[Resolution] = field(default_factory=list)

    def escalate(self, session: Session, request: EscalationRequest) -> str | None:
        self.requests.append(request)
        return f"{request.target}-{len(self.requests)}"

    def resolve(self, session: Session, resolution: Resolution) -> None:
        self.resolved.append(resolution)


def _ref(result: Any) -> str:
    value = getattr(result, "id", result)
    return str(value)[:64]


class PlatformEscalation:
    """Raises and clears alarms and creates work orders through the cloud's own services."""

    def __init__(self, raise_alarm: Callable[..., Any], create_work_order: Callable[..., Any],
                 clear_alarm: Callable[..., Any]) -> None:
        self._raise_alarm = raise_alarm
        self._create_work_order = create_work_order
        self._clear_alarm = clear_alarm

    def escalate(self, session: Session, request: EscalationRequest) -> str | None:
        if request.target == "alarm":
            return _ref(self._raise_alarm(
                session, site=request.site, gateway=None, device=None,
                name=alarm_name(request.kind, request.subject), source="patrol",
                priority=request.priority.value, category=CATEGORY,
                text_en=request.text_en, text_zh=request.text_zh, now_ms=request.now_ms,
                detail=request.detail))
        if request.target == "work_order":
            return _ref(self._create_work_order(
                session, site=request.site, category=CATEGORY,
                priority=WORK_ORDER_PRIORITY[request.priority], title=request.text_en,
                description=f"{request.text_en}\n{request.text_zh}", source="patrol",
                now_ms=request.now_ms, actor=request.actor))
        return None

    def resolve(self, session: Session, resolution: Resolution) -> None:
        if resolution.target == "alarm":
            self._clear_alarm(session, site=resolution.site, gateway=None, device=None,
                              name=alarm_name(resolution.kind, resolution.subject),
                              now_ms=resolution.now_ms)


def default_escalation() -> PatrolEscalation:
    """:class:`PlatformEscalation` when the alarm and work-order services export their entry
    points (``raise_alarm``, ``clear_alarm``, ``create_work_order``), else a
    :class:`RecordingEscalation` (and a warning: nothing is escalated)."""
    try:
        alarms = importlib.import_module("cloud.alarms")
        raise_alarm = getattr(alarms, "raise_alarm", None)
        clear_alarm = getattr(alarms, "clear_alarm", None)
        create = getattr(importlib.import_module("cloud.workorders"), "create_work_order", None)
    except ImportError:  # pragma: no cover - both packages ship with the cloud
        raise_alarm = clear_alarm = create = None
    if raise_alarm is None or clear_alarm is None or create is None:
        log.warning("cloud.alarms.raise_alarm / clear_alarm / cloud.workorders."
                    "create_work_order not available: patrol exceptions are recorded but "
                    "not escalated")
        return RecordingEscalation()
    return PlatformEscalation(raise_alarm, create, clear_alarm)
