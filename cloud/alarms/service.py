"""The alarm service: raise, clear, acknowledge, shelve, comment: one session at a time.

Every method works inside the caller's transaction and never commits. Each change
writes an :class:`~cloud.alarms.tables.AlarmHistory` row and then calls every
:class:`AlarmObserver` in the same transaction. Notifications (a new alarm of a notified
priority, a re-alarm, an escalation) are held on the session and submitted to the
notifier only after the transaction commits (dropped on rollback).

Raising is safe under concurrent workers: the open alarm is read ``FOR UPDATE``
(PostgreSQL); when none is open, the new row is inserted with ``ON CONFLICT DO NOTHING``,
and if another worker's insert won the race (``ux_alarms_open`` holds its row) the
winner's row is read and the occurrence attached to it. Within a transaction the open
alarm of a key is read once (:meth:`AlarmService.prepare` reads a whole batch's, locked
in key order) and kept up to date in the transaction's memo as alarms open and close.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from cloud.alarms import lifecycle
from cloud.alarms.broadcast import COMMITTED, ChangeBroadcaster
from cloud.alarms.commits import after_commit, transaction_memo
from cloud.alarms.describe import describe
from cloud.alarms.errors import InvalidAlarm, InvalidTransition, ShelveRefused, UnknownAlarm
from cloud.alarms.lookups import insert_unless_taken, memoized
from cloud.alarms.settings import AlarmSettings, effective
from cloud.alarms.tables import (
    NAME_LENGTH,
    SITE_LEVEL,
    Alarm,
    AlarmHistory,
    AlarmPolicyRow,
    AlarmState,
    Change,
    Priority,
    Source,
    rank_of,
)
from cloud.db.audit import record_audit
from cloud.notify.base import LogNotifier, Notification, Notifier

__all__ = [
    "AlarmObserver",
    "AlarmService",
    "AlarmSpec",
    "MaintenanceCoverage",
    "NoCoverage",
    "describe",
]

log = logging.getLogger(__name__)
_PENDING = "tw_alarm_notifications"
_OPEN = "open_alarm"
AlarmKey = tuple[str, str, str, str]


class AlarmObserver(Protocol):
    """Told of every raise and transition, in the same transaction; keep it cheap.

    An observer may also have ``prepare(session, keys)``: called by
    :meth:`AlarmService.prepare` before a batch, with the batch's alarm keys, to read
    what it will need for all of them at once."""

    def alarm_changed(self, session: Session, alarm: Alarm, change: Change) -> None: ...


class MaintenanceCoverage(Protocol):
    """Whether an open maintenance work order covers the asset (alarms go out of service).
    It may have ``prepare(session, keys)`` too (see :class:`AlarmObserver`)."""

    def covers(self, session: Session, site: str, gateway: str, device: str,
               now_ms: int) -> bool: ...


class NoCoverage:
    """No maintenance coverage: nothing is ever out of service."""

    def covers(self, session: Session, site: str, gateway: str, device: str,
               now_ms: int) -> bool:
        return False


@dataclass(frozen=True)
class AlarmSpec:
    """What is raised: the key (site, gateway, device, name) and how it is shown."""

    site: str
    gateway: str
    device: str
    name: str
    source: str
    priority: str
    category: str
    text_en: str
    text_zh: str
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("site", "gateway", "device", "name", "category", "text_en", "text_zh"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise InvalidAlarm(name, "must be a non-empty string")
        if len(self.name) > NAME_LENGTH:
            raise InvalidAlarm("name", f"at most {NAME_LENGTH} characters")
        if self.priority not in {p.value for p in Priority}:
            raise InvalidAlarm("priority", f"{self.priority!r} is not one of "
                               "emergency, high, medium, low")
        if self.source not in {s.value for s in Source}:
            raise InvalidAlarm("source", f"{self.source!r} is not one of edge, rule, patrol")


class AlarmService:
    """The lifecycle's operations (see the module docstring)."""

    def __init__(self, settings: AlarmSettings | None = None, *,
                 observers: Iterable[AlarmObserver] = (),
                 coverage: MaintenanceCoverage | None = None,
                 notifier: Notifier | None = None,
                 clock: Callable[[], float] = time.time,
                 broadcaster: ChangeBroadcaster = COMMITTED) -> None:
        self.settings = settings or AlarmSettings()
        self.observers = list(observers)
        self.coverage: MaintenanceCoverage = coverage or NoCoverage()
        self.notifier: Notifier = notifier or LogNotifier()
        self.clock = clock
        self.broadcaster = broadcaster

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def add_observer(self, observer: AlarmObserver) -> None:
        self.observers.append(observer)

    def settings_for(self, session: Session, site: str) -> AlarmSettings:
        """The settings with the site's stored policy applied (read once per transaction)."""
        def load() -> AlarmSettings:
            row = session.get(AlarmPolicyRow, site)
            return self.settings if row is None else effective(self.settings, row.policy)

        return memoized(session, ("alarm_settings", id(self), site), load)

    def prepare(self, session: Session, keys: Collection[AlarmKey]) -> None:
        """Before a batch of raises and clears of ``keys`` (site, gateway, device, name):
        lock their open alarms in key order with one query, and let the coverage and the
        observers read what they need for the batch's devices at once."""
        memo = transaction_memo(session)
        wanted = sorted({k for k in keys if (_OPEN, *k) not in memo})
        if wanted:
            columns = (Alarm.site_id, Alarm.gateway_id, Alarm.device_id, Alarm.name)
            found = {(a.site_id, a.gateway_id, a.device_id, a.name): a
                     for a in session.scalars(
                         select(Alarm).where(tuple_(*columns).in_(wanted),
                                             Alarm.closed_ms.is_(None))
                         .order_by(*columns).with_for_update())}
            for key in wanted:
                memo[(_OPEN, *key)] = found.get(key)
        for part in (self.coverage, *self.observers):
            prepare = getattr(part, "prepare", None)
            if prepare is not None:  # optional: ``prepare(session, keys)``
                prepare(session, wanted or sorted(set(keys)))

    # -- reading ------------------------------------------------------------------------
    def get(self, session: Session, alarm_id: int, *, site: str | None = None,
            lock: bool = False) -> Alarm:
        query = select(Alarm).where(Alarm.id == alarm_id)
        if lock:
            query = query.with_for_update()
        alarm = session.scalars(query).first()
        if alarm is None or (site is not None and alarm.site_id != site):
            raise UnknownAlarm(alarm_id)
        return alarm

    def open_alarm(self, session: Session, site: str, gateway: str, device: str,
                   name: str) -> Alarm | None:
        """The open alarm of this key, locked for update on PostgreSQL (as
        :meth:`prepare` found it, or as this transaction left it)."""
        memo = transaction_memo(session)
        key = (_OPEN, site, gateway, device, name)
        if key in memo:
            return memo[key]  # type: ignore[no-any-return]
        alarm = session.scalars(
            select(Alarm).where(Alarm.site_id == site, Alarm.gateway_id == gateway,
                                Alarm.device_id == device, Alarm.name == name,
                                Alarm.closed_ms.is_(None)).with_for_update()).first()
        memo[key] = alarm
        return alarm

    # -- the condition ------------------------------------------------------------------
    def raise_(self, session: Session, spec: AlarmSpec, now_ms: int, *,
               suppressed: str | None = None) -> Alarm:
        """The condition is active: open a new alarm, or reactivate/attach to the open one."""
        alarm = self.open_alarm(session, spec.site, spec.gateway, spec.device, spec.name)
        if alarm is None:
            alarm = self._insert(session, spec, now_ms, suppressed)
            if alarm is not None:
                return alarm
            transaction_memo(session).pop((_OPEN, spec.site, spec.gateway, spec.device,
                                           spec.name), None)
            alarm = self.open_alarm(session, spec.site, spec.gateway, spec.device, spec.name)
            if alarm is None:  # pragma: no cover - the winner closed it in between
                raise RuntimeError(f"open alarm {spec.name} vanished during a raise")
        step = lifecycle.condition(AlarmState(alarm.state), True)
        if alarm.active:
            return alarm  # a repeat of the same raise (redelivery, edge restart)
        settings = self.settings_for(session, alarm.site_id)
        alarm.state, alarm.active = step.state.value, True
        alarm.last_active_ms = alarm.changed_ms = now_ms
        alarm.occurrences += 1
        alarm.detail = {**(alarm.detail or {}), **spec.detail}
        self.arm(alarm, settings, since_ms=now_ms)
        self.record(session, alarm, Change.REACTIVATED, now_ms)
        return alarm

    def _insert(self, session: Session, spec: AlarmSpec, now_ms: int,
                suppressed: str | None) -> Alarm | None:
        settings = self.settings_for(session, spec.site)
        out_of_service = spec.device != SITE_LEVEL and self.coverage.covers(
            session, spec.site, spec.gateway, spec.device, now_ms)
        alarm = Alarm(
            site_id=spec.site, gateway_id=spec.gateway, device_id=spec.device, name=spec.name,
            source=spec.source, category=spec.category, priority=spec.priority,
            rank=rank_of(spec.category, spec.priority), state=AlarmState.UNACK_ACTIVE.value,
            active=True, text_en=spec.text_en, text_zh=spec.text_zh, detail=dict(spec.detail),
            raised_ms=now_ms, last_active_ms=now_ms, changed_ms=now_ms, occurrences=1,
            suppressed_reason=suppressed, out_of_service=out_of_service, escalation_level=0)
        self.arm(alarm, settings, since_ms=now_ms)
        inserted = insert_unless_taken(session, alarm)
        if inserted is None:
            log.debug("another worker opened %s/%s/%s first", spec.site, spec.device, spec.name)
            return None
        alarm = inserted
        transaction_memo(session)[(_OPEN, spec.site, spec.gateway, spec.device,
                                   spec.name)] = alarm
        self.record(session, alarm, Change.RAISED, now_ms)
        if spec.priority in settings.notify_priorities:
            self.announce(session, alarm, "raised", now_ms)
        return alarm

    def clear(self, session: Session, site: str, gateway: str, device: str, name: str,
              now_ms: int) -> Alarm | None:
        """The condition is gone; ``None`` when no alarm of this key is open."""
        alarm = self.open_alarm(session, site, gateway, device, name)
        if alarm is None or not alarm.active:
            return alarm
        step = lifecycle.condition(AlarmState(alarm.state), False)
        alarm.active, alarm.state = False, step.state.value
        alarm.cleared_ms = alarm.changed_ms = now_ms
        alarm.next_realarm_ms = alarm.next_escalation_ms = None
        self.record(session, alarm, Change.CLEARED, now_ms)
        if step.state is AlarmState.NORMAL:
            self._close(session, alarm, now_ms)
        return alarm

    # -- operator actions ---------------------------------------------------------------
    def acknowledge(self, session: Session, alarm_id: int, *, site: str, user: str,
                    comment: str | None, now_ms: int) -> Alarm:
        alarm = self.get(session, alarm_id, site=site, lock=True)
        step = lifecycle.acknowledge(AlarmState(alarm.state))
        if step is None:
            raise InvalidTransition(alarm_id, "acknowledge", alarm.state)
        alarm.state, alarm.changed_ms = step.state.value, now_ms
        alarm.acked_by, alarm.acked_ms, alarm.ack_comment = user, now_ms, comment
        alarm.next_realarm_ms = alarm.next_escalation_ms = None
        self._audit(session, alarm, "alarm.acknowledge", user, now_ms, comment=comment)
        self.record(session, alarm, Change.ACKNOWLEDGED, now_ms, user=user, comment=comment)
        if step.state is AlarmState.NORMAL:
            self._close(session, alarm, now_ms)
        return alarm

    def shelve(self, session: Session, alarm_id: int, *, site: str, user: str, reason: str,
               until_ms: int, now_ms: int) -> Alarm:
        """Shelve an open alarm until ``until_ms`` (reason required, bounded duration)."""
        if not reason or not reason.strip():
            raise ShelveRefused("reason", "a shelve needs a reason")
        limit_ms = int(self.settings_for(session, site).max_shelve * 1000)
        if until_ms <= now_ms:
            raise ShelveRefused("until", "the shelve must end in the future")
        if until_ms - now_ms > limit_ms:
            raise ShelveRefused("until", f"a shelve lasts at most {limit_ms // 60_000} min")
        alarm = self.get(session, alarm_id, site=site, lock=True)
        if alarm.closed_ms is not None:
            raise InvalidTransition(alarm_id, "shelve", alarm.state)
        alarm.shelved_by, alarm.shelved_ms = user, now_ms
        alarm.shelve_reason, alarm.shelved_until_ms = reason.strip(), until_ms
        alarm.next_realarm_ms = alarm.next_escalation_ms = None
        alarm.changed_ms = now_ms
        detail = {"until": until_ms}
        self._audit(session, alarm, "alarm.shelve", user, now_ms, comment=reason, **detail)
        self.record(session, alarm, Change.SHELVED, now_ms, user=user, comment=reason,
                    detail=detail)
        return alarm

    def unshelve(self, session: Session, alarm_id: int, *, site: str, user: str | None,
                 now_ms: int, expired: bool = False) -> Alarm:
        """End a shelve (``user=None, expired=True``: the shelve ran out)."""
        alarm = self.get(session, alarm_id, site=site, lock=True)
        if alarm.shelved_until_ms is None:
            raise InvalidTransition(alarm_id, "unshelve", "not shelved")
        alarm.shelved_until_ms, alarm.changed_ms = None, now_ms
        change = Change.SHELVE_EXPIRED if expired else Change.UNSHELVED
        self.arm(alarm, self.settings_for(session, site), since_ms=now_ms, resume=True)
        self._audit(session, alarm, f"alarm.{change.value}", user, now_ms)
        self.record(session, alarm, change, now_ms, user=user)
        return alarm

    def comment(self, session: Session, alarm_id: int, *, site: str, user: str, text: str,
                now_ms: int) -> AlarmHistory:
        if not text or not text.strip():
            raise InvalidAlarm("comment", "must not be empty")
        alarm = self.get(session, alarm_id, site=site)
        self._audit(session, alarm, "alarm.comment", user, now_ms, comment=text)
        return self.record(session, alarm, Change.COMMENT, now_ms, user=user, comment=text)

    # -- overlays set by the periodic job -----------------------------------------------
    def set_suppressed(self, session: Session, alarm: Alarm, reason: str | None,
                       now_ms: int) -> bool:
        """Suppress (``reason``) or release (``None``); whether anything changed."""
        if alarm.suppressed_reason == reason:
            return False
        alarm.suppressed_reason, alarm.changed_ms = reason, now_ms
        if reason is None:
            self.arm(alarm, self.settings_for(session, alarm.site_id), since_ms=now_ms,
                     resume=True)
        else:
            alarm.next_realarm_ms = alarm.next_escalation_ms = None
        change = Change.UNSUPPRESSED if reason is None else Change.SUPPRESSED
        self.record(session, alarm, change, now_ms, detail={"reason": reason})
        return True

    def set_out_of_service(self, session: Session, alarm: Alarm, covered: bool,
                           now_ms: int) -> bool:
        if alarm.out_of_service == covered:
            return False
        alarm.out_of_service, alarm.changed_ms = covered, now_ms
        if covered:
            alarm.next_realarm_ms = alarm.next_escalation_ms = None
        else:
            self.arm(alarm, self.settings_for(session, alarm.site_id), since_ms=now_ms,
                     resume=True)
        self.record(session, alarm, Change.OUT_OF_SERVICE if covered else Change.IN_SERVICE,
                    now_ms)
        return True

    # -- shared steps -------------------------------------------------------------------
    @staticmethod
    def annunciating(alarm: Alarm) -> bool:
        """Unacknowledged, active, and neither shelved, suppressed nor out of service."""
        return (alarm.state == AlarmState.UNACK_ACTIVE.value and alarm.closed_ms is None
                and alarm.shelved_until_ms is None and alarm.suppressed_reason is None
                and not alarm.out_of_service)

    def arm(self, alarm: Alarm, settings: AlarmSettings, *, since_ms: int,
            resume: bool = False) -> None:
        """Set the re-alarm and escalation timers of an annunciating alarm (else clear them).

        ``resume``: the alarm was hidden (shelved, suppressed, out of service) and keeps its
        escalation level; the next level is due after the ladder's remaining step."""
        alarm.next_realarm_ms = alarm.next_escalation_ms = None
        if not self.annunciating(alarm):
            return
        interval = settings.realarm_ms(alarm.priority)
        if interval is not None:
            alarm.next_realarm_ms = since_ms + interval
        ladder = settings.ladder(alarm.priority)
        level = alarm.escalation_level
        base = since_ms
        if resume and 0 < level <= len(ladder):
            base = since_ms - int(ladder[level - 1] * 1000)
        alarm.next_escalation_ms = lifecycle.escalation_due(ladder, level, base)

    def record(self, session: Session, alarm: Alarm, change: Change, now_ms: int, *,
               user: str | None = None, comment: str | None = None,
               detail: Mapping[str, Any] | None = None) -> AlarmHistory:
        """Write the history row and tell the observers."""
        entry = AlarmHistory(alarm_id=alarm.id, site_id=alarm.site_id, ts_ms=now_ms,
                             kind=change.value, state=alarm.state, username=user,
                             comment=comment, detail=dict(detail or {}))
        session.add(entry)
        session.flush()
        self.broadcaster.on_commit(session)
        for observer in self.observers:
            observer.alarm_changed(session, alarm, change)
        return entry

    def announce(self, session: Session, alarm: Alarm, kind: str, now_ms: int) -> None:
        """Queue a notification, submitted when the session's transaction commits."""
        if alarm.suppressed_reason is not None or alarm.out_of_service:
            return
        pending = after_commit(session, _PENDING, self._submit)
        pending.append(Notification(kind, alarm.escalation_level, now_ms,  # type: ignore[arg-type]
                                    describe(alarm)))

    def _submit(self, notes: list[Notification]) -> None:
        for note in notes:
            self.notifier.submit(note)

    def _close(self, session: Session, alarm: Alarm, now_ms: int) -> None:
        alarm.closed_ms = now_ms
        transaction_memo(session)[(_OPEN, alarm.site_id, alarm.gateway_id, alarm.device_id,
                                   alarm.name)] = None
        alarm.shelved_until_ms = alarm.next_realarm_ms = alarm.next_escalation_ms = None
        self.record(session, alarm, Change.CLOSED, now_ms)

    def _audit(self, session: Session, alarm: Alarm, action: str, user: str | None,
               now_ms: int, *, comment: str | None = None, **detail: Any) -> None:
        record_audit(session, ts_ms=now_ms, user=user, action=action, site=alarm.site_id,
                     target=alarm.target,
                     detail={"alarm_id": alarm.id, "state": alarm.state, "comment": comment,
                             **detail})
