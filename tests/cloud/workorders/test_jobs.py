"""The periodic job: counters from the time-series store, due maintenance, SLA breaches."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from cloud.assets.register import create_asset
from cloud.db import Database
from cloud.maintenance.plans import create_plan
from cloud.notify import Notification
from cloud.timeseries import SqliteStore
from cloud.timeseries.base import Sample, SeriesKey
from cloud.workorders.breaches import NotifyEscalation
from cloud.workorders.jobs import PeriodicResult, run_periodic
from cloud.workorders.service import create_work_order
from cloud.workorders.tables import SlaBreach
from tests.cloud.api.support import T0_MS

M = 60_000


async def test_run_periodic(seeded: Database, tmp_path: Path) -> None:
    with seeded.transaction() as session:
        pump = create_asset(session, site="alpha", name="Pump 1", asset_class="pump",
                            now_ms=T0_MS, user=None)
        create_plan(session, site="alpha", name="Pump service", level="quarterly",
                    asset_id=pump.id, trigger="counter", counter_gateway="gw1",
                    counter_device="pump-1", counter_point="run_hours",
                    counter_interval=500.0, now_ms=T0_MS, user=None)
        create_work_order(session, site="alpha", category="water", priority="urgent",
                          title="Pump set down", source="manual", now_ms=T0_MS, actor=None)
    async with SqliteStore(tmp_path / "ts.db") as store:
        await store.write([Sample(SeriesKey("alpha", "gw1", "pump-1", "run_hours"), T0_MS,
                                  510.0, "good")])
        assert await run_periodic(seeded, store, T0_MS) == PeriodicResult(1, 0)
        # 31 minutes later the urgent order missed respond and arrive (30 min each)
        assert await run_periodic(seeded, store, T0_MS + 31 * M) == PeriodicResult(0, 2)
        assert await run_periodic(seeded, store, T0_MS + 32 * M) == PeriodicResult(0, 0)


async def test_breaches_reach_the_notifier_after_commit(seeded: Database, tmp_path: Path) -> None:
    with seeded.transaction() as session:
        order = create_work_order(session, site="alpha", category="water", priority="urgent",
                                  title="Pump set down", source="manual", now_ms=T0_MS,
                                  actor=None)
    sent: list[Notification] = []

    class Recorder:
        def submit(self, notification: Notification) -> bool:
            with seeded.transaction() as session:  # committed: another session sees it
                kinds = {b.kind for b in session.scalars(select(SlaBreach))}
            assert notification.alarm["kind"] in kinds
            sent.append(notification)
            return True

        def close(self) -> None:
            return None

    escalation = NotifyEscalation(Recorder())
    async with SqliteStore(tmp_path / "ts.db") as store:
        assert await run_periodic(seeded, store, T0_MS + 31 * M, escalation) == \
            PeriodicResult(0, 2)
        assert await run_periodic(seeded, store, T0_MS + 32 * M, escalation) == \
            PeriodicResult(0, 0)
    assert sorted(n.alarm["kind"] for n in sent) == ["arrive", "respond"]
    assert {n.kind for n in sent} == {"sla_breach"} and escalation.pending == []
    body = sent[0].payload()
    assert body["work_order"]["work_order"] == order.id and "alarm" not in body
    assert "SLA BREACH" in body["text_en"] and "工单超时" in body["text_zh"]
