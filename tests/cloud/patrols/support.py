"""Helpers of the patrol service-layer tests: a runtime with a master key, a site with SUN
checkpoints (simulated tags), a route with a schedule, and recording taps in one
transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from cloud.db import Database, upsert_site
from cloud.patrols.catalog import RouteSpec, ScheduleSpec, StopSpec, put_route, put_schedule
from cloud.patrols.escalation import PatrolEscalation, RecordingEscalation
from cloud.patrols.model import RouteMode, TagType
from cloud.patrols.runtime import PatrolRuntime
from cloud.patrols.scans import ScanIn, ScanOutcome, record_scans
from cloud.patrols.settings import PatrolSettings
from cloud.patrols.tags import CheckpointSpec, Tap, enrol
from simulators.patrol.ntag import SimTag

MASTER = "5ACE7E50AB65D5D51FD5BF5A16B8205B5ACE7E50AB65D5D51FD5BF5A16B8205B"
GUARD = "guard-a"
SITE = "tower"
TZ = "Asia/Shanghai"


def local_ms(hour: int, minute: int = 0, second: int = 0) -> int:
    """15 June 2025, ``hour:minute:second`` at the site (UTC epoch ms)."""
    when = datetime(2025, 6, 15, hour, minute, second, tzinfo=ZoneInfo(TZ))
    return int(when.timestamp() * 1000)


def runtime(tmp_path: Path, escalation: PatrolEscalation | None = None) -> PatrolRuntime:
    key = tmp_path / "patrol-master-key"
    key.write_text(MASTER)
    return PatrolRuntime.from_settings(
        PatrolSettings(master_key_file=key, master_key_env=None, max_batch=1000),
        escalation or RecordingEscalation())


@dataclass
class Tag:
    code: str
    checkpoint_id: int
    sim: SimTag

    def scan(self, scan_id: str, device_ms: int) -> ScanIn:
        """A fresh tap of the tag (its counter moves on)."""
        tap = self.sim.read()
        return ScanIn(scan_id=scan_id, device_ms=device_ms,
                      tap=Tap(TagType.SUN, self.code, tap.picc_data, tap.cmac))


def site_with_tags(db: Database, rt: PatrolRuntime, site: str, timezone: str, count: int,
                   now_ms: int = 0) -> list[Tag]:
    """A site with ``count`` enrolled NTAG 424 DNA checkpoints ``cp-1`` … (derived keys)."""
    tags = []
    with db.transaction() as session:
        upsert_site(session, site, name=site.title(), timezone=timezone)
        for index in range(1, count + 1):
            uid = bytes.fromhex(f"04C0{index:010X}")
            row, keys = enrol(session, rt, site, CheckpointSpec(
                code=f"cp-{index}", name=f"Checkpoint {index}", tag_type=TagType.SUN,
                uid=uid.hex()), now_ms)
            assert keys is not None
            tags.append(Tag(row.code, row.id, SimTag(uid, keys.meta_read, keys.file_read)))
    return tags


def route_with_schedule(db: Database, site: str, tags: list[Tag],
                        recurrence: dict[str, object] | None, now_ms: int, *,
                        preset: str | None = None, mode: RouteMode = RouteMode.ORDERED) -> int:
    """Route ``night`` over ``tags`` and schedule ``night`` (created at ``now_ms``: 15 min
    window and grace, 30 min rounds, unless ``preset`` names them); the schedule's id."""
    minutes = None if preset else 15
    with db.transaction() as session:
        put_route(session, site, RouteSpec("night", "Night round", mode,
                                           [StopSpec(t.code) for t in tags]), now_ms, create=True)
        return put_schedule(session, site, ScheduleSpec(
            "night", "Night round", "night", preset=preset, recurrence=recurrence,
            window_min=minutes, grace_min=minutes, duration_min=None if preset else 30),
            now_ms, create=True).id


def record(db: Database, rt: PatrolRuntime, site: str, scans: list[ScanIn], now_ms: int,
           *, batch_id: str | None = None, guard: str = GUARD) -> list[ScanOutcome]:
    """Record ``scans`` as one batch sent at ``now_ms``, in one transaction."""
    with db.transaction() as session:
        return record_scans(session, rt, site=site, guard=guard, scans=scans, sent_ms=now_ms,
                            batch_id=batch_id, now_ms=now_ms)
