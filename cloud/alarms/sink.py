"""The alarm service behind ingest: an :class:`~cloud.ingest.pipeline.EventSink`.

- ``kind: alarm`` events raise (``state: active``) or clear (any other state) the alarm
  ``(site, gateway, device, name)``. Priority, category and texts come from the device's
  profile in the :class:`~cloud.alarms.catalogue.AlarmCatalogue`; alarms the catalogue does
  not know (``comm_loss``) use the event's ``severity`` and ``detail`` texts.
- ``kind: state`` events named ``counter_backwards`` raise and at once clear the one-shot
  alarm ``counter_backwards:<point>`` (it stays open, ``unack_rtn``, until acknowledged).
- Other events (access decisions, write outcomes) are not alarms and are ignored here.

Times are the cloud's receive times (the edge's ``ts`` is kept in ``detail.edge_ts``), so
re-alarm and escalation run on one clock. A new alarm is born suppressed when its device is
offline (``device_offline``) or a suppression rule holds (the rule id); the periodic job
keeps that up to date afterwards. A batch is applied in one transaction, which first reads
what every event of it needs (devices, gateways, open alarms, maintenance coverage,
assets, open work orders) with one query each; if the batch fails, it is applied event
by event, so one bad event costs only itself.

Events from ingest are pending (:mod:`cloud.ingest.pending`) until applied: the
transaction that applies one also deletes its row, and an event whose row is already
gone was applied before and is skipped, so the replay of an event never applies it
twice. :meth:`AlarmEventSink.handle` returns the events it did not apply, which stay
pending for the replay: those that failed, and a clear that would find nothing to clear
while an earlier event of its alarm is still pending (it waits for that event, so the
replay applies them in order). An event older than what its alarm already shows (a
clear received before the alarm's latest raise, a raise received before its latest
clear) changes nothing: a replay, or a worker that fell behind, does not turn the clock
back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.alarms.catalogue import AlarmCatalogue
from cloud.alarms.lookups import device_profile, prefetch_devices
from cloud.alarms.rules import BACKWARDS as COUNTER_BACKWARDS
from cloud.alarms.rules import backwards_texts
from cloud.alarms.service import AlarmService, AlarmSpec
from cloud.alarms.settings import AlarmSettings
from cloud.alarms.suppression import DeviceKey, LatestValues, design_suppression, latest_values
from cloud.alarms.tables import Alarm
from cloud.db.dedupe import MessageKey
from cloud.db.engine import Database, in_thread
from cloud.ingest.pending import earlier_pending, forget_pending, take_pending
from cloud.ingest.pipeline import IngestedEvent
from cloud.timeseries.base import TimeSeriesStore

__all__ = ["AlarmEventSink"]

log = logging.getLogger(__name__)


class AlarmEventSink:
    """Turns accepted edge events into alarm changes (see the module docstring)."""

    def __init__(self, db: Database, service: AlarmService, catalogue: AlarmCatalogue, *,
                 store: TimeSeriesStore | None = None) -> None:
        self.db, self.service, self.catalogue, self.store = db, service, catalogue, store
        self.raised = self.cleared = self.failed = 0
        self.skipped = 0
        """Events that changed nothing: applied before, or older than their alarm's state."""

    async def handle(self, events: Sequence[IngestedEvent]) -> list[IngestedEvent]:
        """Apply the alarm events of ``events``; return those not applied (see the module
        docstring). Other events are of no use here: applied, as far as ingest is concerned."""
        relevant = [e for e in events if e.event.kind == "alarm"
                    or (e.event.kind == "state" and e.event.name == COUNTER_BACKWARDS)]
        if not relevant:
            return []
        # Key order (stable in time per key): two workers lock open alarms in one order.
        relevant.sort(key=lambda e: (e.site, e.gateway, e.device, e.event.name, e.received_ms,
                                     e.event.ts))
        values: LatestValues = {}
        if self.store is not None:
            wanted = {(e.site, e.gateway, e.device) for e in relevant
                      if e.event.state == "active"
                      and _may_suppress(self.service.settings, e.event.name)}
            values = await latest_values(self.store, wanted)
        try:
            return await in_thread(self._apply, relevant, values)
        except Exception:
            log.exception("alarm batch of %d event(s) failed; applying one by one",
                          len(relevant))
        left: list[IngestedEvent] = []
        for item in relevant:
            try:
                left += await in_thread(self._apply, [item], values)
            except Exception:
                self.failed += 1
                left.append(item)
                log.exception("alarm event %s/%s/%s %s (seq %d) not applied; %s", item.site,
                              item.gateway, item.device, item.event.name, item.event.seq,
                              "pending for the replay" if item.pending else "lost")
        return left

    def _apply(self, events: Sequence[IngestedEvent], values: LatestValues,
               ) -> list[IngestedEvent]:
        """Apply ``events`` in one transaction; return those that wait (left pending)."""
        with self.db.transaction() as session:
            keys = [item.key if item.pending else None for item in events]
            taken = take_pending(session, {k for k in keys if k is not None})
            self.prepare(session, events)
            waiting: list[IngestedEvent] = []
            done: set[MessageKey] = set()
            for item, key in zip(events, keys, strict=True):
                if key is not None and key not in taken:
                    self.skipped += 1  # applied already (a replay raced its hand-over)
                    continue
                if self._waits(session, item, done if key is None else done | {key}):
                    waiting.append(item)
                    continue
                if self._stale(session, item):
                    self.skipped += 1
                else:
                    self.apply(session, item, values)
                if key is not None:
                    done.add(key)
            forget_pending(session, done)
        return waiting

    def _waits(self, session: Session, item: IngestedEvent, besides: set[MessageKey]) -> bool:
        """A clear that finds its alarm not active while an earlier event of the alarm is
        pending (failed, or its worker died): applied now it would change nothing, and
        the earlier raise, replayed later, would leave the alarm active."""
        e = item.event
        if e.kind != "alarm" or e.state == "active":
            return False
        alarm = self.service.open_alarm(session, item.site, item.gateway, item.device, e.name)
        if alarm is not None and alarm.active:
            return False
        return earlier_pending(session, item.site, item.gateway, item.device, e.name,
                               before_ms=item.received_ms, besides=besides)

    def _stale(self, session: Session, item: IngestedEvent) -> bool:
        """Whether the alarm already shows a later change than this event (by receive time):
        a clear received before its latest raise, a raise received before its latest clear
        (for a replayed raise also the clear of a closed alarm of the key)."""
        e = item.event
        if e.kind != "alarm":
            return False
        now = item.received_ms
        alarm = self.service.open_alarm(session, item.site, item.gateway, item.device, e.name)
        if e.state != "active":
            return alarm is not None and alarm.active and alarm.last_active_ms > now
        if alarm is not None:
            return not alarm.active and alarm.cleared_ms is not None and alarm.cleared_ms > now
        if not item.replayed:
            return False
        later = session.scalars(
            select(Alarm.id).where(Alarm.site_id == item.site, Alarm.gateway_id == item.gateway,
                                   Alarm.device_id == item.device, Alarm.name == e.name,
                                   Alarm.cleared_ms > now).limit(1)).first()
        return later is not None

    def prepare(self, session: Session, events: Sequence[IngestedEvent]) -> None:
        """Read what the batch needs with a few queries, not a few per event."""
        prefetch_devices(session, {(e.site, e.gateway, e.device) for e in events})
        self.service.prepare(session, [(e.site, e.gateway, e.device, _alarm_name(e))
                                       for e in events])

    def apply(self, session: Session, item: IngestedEvent, values: LatestValues) -> None:
        e = item.event
        now = item.received_ms
        if e.kind == "state":  # counter_backwards: a one-shot alarm
            spec = self._spec(session, item, _alarm_name(item), values)
            self.service.raise_(session, spec, now,
                                suppressed=self._suppressed(session, item, spec.name, values))
            self.service.clear(session, item.site, item.gateway, item.device, spec.name, now)
            self.raised += 1
            return
        if e.state == "active":
            spec = self._spec(session, item, e.name, values)
            self.service.raise_(session, spec, now,
                                suppressed=self._suppressed(session, item, e.name, values))
            self.raised += 1
        else:
            self.service.clear(session, item.site, item.gateway, item.device, e.name, now)
            self.cleared += 1

    def _spec(self, session: Session, item: IngestedEvent, name: str,
              values: LatestValues) -> AlarmSpec:
        e = item.event
        profile = _profile(session, item)
        info = self.catalogue.lookup(profile, e.name)
        detail: dict[str, Any] = {"edge_ts": e.ts, "event_id": e.event_id}
        if e.value is not None:
            detail["value"] = e.value
        detail.update({k: v for k, v in e.detail.items() if not k.startswith("text_")})
        if info is not None:
            return AlarmSpec(item.site, item.gateway, item.device, name, "edge", info.priority,
                             info.category, info.text_en, info.text_zh, detail)
        en, zh = _fallback(name, item.device, detail)
        text_en = _text(e.detail, "text_en") or en
        text_zh = _text(e.detail, "text_zh") or zh
        category = _text(e.detail, "category") or self.catalogue.category_of(profile)
        priority = e.severity or "medium"
        return AlarmSpec(item.site, item.gateway, item.device, name, "edge", priority,
                         category, text_en, text_zh, detail)

    def _suppressed(self, session: Session, item: IngestedEvent, name: str,
                    values: LatestValues) -> str | None:
        settings: AlarmSettings = self.service.settings_for(session, item.site)
        key: DeviceKey = (item.site, item.gateway, item.device)
        return design_suppression(session, settings, key, _profile(session, item), name,
                                  values.get(key, {}))


def _may_suppress(settings: AlarmSettings, name: str) -> bool:
    return any(rule.matches_alarm(name) for rule in settings.suppression)


def _profile(session: Session, item: IngestedEvent) -> str | None:
    return device_profile(session, (item.site, item.gateway, item.device))


def _alarm_name(item: IngestedEvent) -> str:
    if item.event.kind == "state":  # counter_backwards: one alarm per counter point
        return f"{COUNTER_BACKWARDS}:{item.event.detail.get('point', 'counter')}"
    return item.event.name


def _text(detail: Mapping[str, Any], key: str) -> str | None:
    value = detail.get(key)
    return value if isinstance(value, str) and value.strip() else None


def _fallback(name: str, device: str, detail: Mapping[str, Any]) -> tuple[str, str]:
    if name.startswith(COUNTER_BACKWARDS):
        return backwards_texts(device, str(detail.get("point", "?")), detail.get("previous"),
                               detail.get("value", "?"))
    return f"{device}: {name.replace('_', ' ')}", f"{device}：{name}"
