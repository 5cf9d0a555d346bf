"""The alarm lifecycle (ISA-18.2): raising from edge events and cloud rules, acknowledge,
shelve, suppression, out of service, re-alarm and escalation, alarm-load figures.

Public API (for work orders, patrols, benchmarks and scenario tests):

- ``raise_alarm(session, *, site, gateway, device, name, source, priority, category,
  text_en, text_zh, now_ms, detail=None) -> Alarm``: the condition is active; opens the
  alarm or attaches to the open one (one open alarm per (site, gateway, device, name), by
  the database). ``gateway``/``device`` ``None`` mean a site-level alarm.
- ``clear_alarm(session, *, site, gateway, device, name, now_ms) -> Alarm | None``.
- :class:`AlarmService` (acknowledge, shelve, unshelve, comment; ``raise_``/``clear`` with an
  :class:`AlarmSpec`), :class:`AlarmObserver` (``alarm_changed(session, alarm, change)``,
  called in the same transaction after every change), :class:`MaintenanceCoverage`
  (``covers(session, site, gateway, device, now_ms)``: out of service).
- :func:`install` makes a service (with its observers, coverage and notifier) the one
  ``raise_alarm``/``clear_alarm`` use; :func:`current_service` returns it.
- :class:`AlarmEventSink` (ingest → alarms), :class:`CloudRules` and :func:`run_timers`
  (the periodic job), :func:`alarm_load` (EEMUA 191 figures), :func:`list_alarms`.
- Tables :class:`Alarm`, :class:`AlarmHistory`; :class:`AlarmState`, :class:`Change`,
  :data:`SITE_LEVEL`; settings :class:`AlarmSettings`.

Every function takes the caller's session and never commits; ``now_ms`` is UTC epoch ms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from cloud.alarms.catalogue import AlarmCatalogue
from cloud.alarms.errors import (
    AlarmError,
    InvalidAlarm,
    InvalidTransition,
    ShelveRefused,
    UnknownAlarm,
)
from cloud.alarms.load import AlarmLoad, alarm_load
from cloud.alarms.queries import AlarmFilter, alarm_history, list_alarms
from cloud.alarms.rules import CloudRules
from cloud.alarms.service import (
    AlarmObserver,
    AlarmService,
    AlarmSpec,
    MaintenanceCoverage,
    NoCoverage,
    describe,
)
from cloud.alarms.settings import AlarmPolicy, AlarmSettings, SuppressionRule
from cloud.alarms.sink import AlarmEventSink
from cloud.alarms.tables import SITE_LEVEL, Alarm, AlarmHistory, AlarmState, Change
from cloud.alarms.timers import TimerReport, run_timers

__all__ = [
    "SITE_LEVEL",
    "Alarm",
    "AlarmCatalogue",
    "AlarmError",
    "AlarmEventSink",
    "AlarmFilter",
    "AlarmHistory",
    "AlarmLoad",
    "AlarmObserver",
    "AlarmPolicy",
    "AlarmService",
    "AlarmSettings",
    "AlarmSpec",
    "AlarmState",
    "Change",
    "CloudRules",
    "InvalidAlarm",
    "InvalidTransition",
    "MaintenanceCoverage",
    "NoCoverage",
    "ShelveRefused",
    "SuppressionRule",
    "TimerReport",
    "UnknownAlarm",
    "alarm_history",
    "alarm_load",
    "clear_alarm",
    "current_service",
    "describe",
    "install",
    "list_alarms",
    "raise_alarm",
    "run_timers",
]

_installed: list[AlarmService] = []


def install(service: AlarmService) -> None:
    """Make ``service`` the one :func:`raise_alarm` and :func:`clear_alarm` use."""
    _installed[:] = [service]


def current_service() -> AlarmService:
    """The installed service (a default one, with no observers, until one is installed)."""
    if not _installed:
        _installed.append(AlarmService())
    return _installed[0]


def _part(value: str | None) -> str:
    return SITE_LEVEL if value is None else value


def raise_alarm(session: Session, *, site: str, gateway: str | None, device: str | None,
                name: str, source: str, priority: str, category: str, text_en: str,
                text_zh: str, now_ms: int, detail: Mapping[str, Any] | None = None) -> Alarm:
    """Raise (or re-raise) an alarm; see the module docstring."""
    spec = AlarmSpec(site, _part(gateway), _part(device), name, source, priority, category,
                     text_en, text_zh, dict(detail or {}))
    return current_service().raise_(session, spec, now_ms)


def clear_alarm(session: Session, *, site: str, gateway: str | None, device: str | None,
                name: str, now_ms: int) -> Alarm | None:
    """Clear an alarm's condition; ``None`` when none of this key is open."""
    return current_service().clear(session, site, _part(gateway), _part(device), name, now_ms)
