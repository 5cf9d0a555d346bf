"""Grid scheduling of Modbus poll cycles (:meth:`edge.modbus_poller.ModbusDevice.advance`).

Cycles fall on ``(k + phase) x interval`` of the monotonic clock: a cycle that runs a
little late does not push the next one, and cycles missed altogether are skipped, never
queued. The clock is passed in, so days of cycles run in a moment.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_profiles.loader import ProfileSet, load_profiles
from device_profiles.schema import ModbusProfile
from edge.config import DeviceConfig, PollingConfig
from edge.messages import MessageBuilder
from edge.metrics import GatewayMetrics
from edge.modbus_poller import CYCLE_COST, SPREAD_ABOVE, ModbusDevice
from edge.outbox import Outbox
from edge.runtime import GatewayContext

PROFILE = "water-meter-modbus"  # poll groups: normal 5 s, slow 60 s
T0 = 1_000_000.0
"""A monotonic-clock reading far from 0, as on a machine that has been up a while."""


@pytest.fixture(scope="module")
def profiles() -> ProfileSet:
    return load_profiles()


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[GatewayContext]:
    outbox = Outbox(tmp_path / "outbox.db", max_messages=1000, overflow="refuse_new")
    try:
        yield GatewayContext(MessageBuilder("s1", "g1", version="test"), outbox,
                             GatewayMetrics(), PollingConfig(), rng=random.Random(11))
    finally:
        outbox.close()


def _device(ctx: GatewayContext, profiles: ProfileSet, n: int = 1) -> ModbusDevice:
    profile = profiles.get(PROFILE)
    assert isinstance(profile, ModbusProfile)
    config = DeviceConfig(id=f"meter-{n}", profile=PROFILE,
                          modbus={"host": "127.0.0.1", "unit": n})
    device = ModbusDevice(config, profile, ctx)
    device.next_due = dict.fromkeys(device.next_due, T0)  # as if built at T0
    return device


def _on_grid(at: float, interval: float, phase: float = 0.0) -> bool:
    k = (at - phase * interval) / interval
    return math.isclose(k, round(k), abs_tol=1e-9)


def test_the_first_cycle_is_at_once(ctx: GatewayContext, profiles: ProfileSet) -> None:
    device = _device(ctx, profiles)
    assert set(device.next_due) == {"normal", "slow"}
    assert set(device.due(T0)) == {"normal", "slow"}


def test_cycles_stay_on_the_grid_when_they_run_late(ctx: GatewayContext,
                                                    profiles: ProfileSet) -> None:
    device = _device(ctx, profiles)
    jitter = random.Random(5)
    now = T0 + 0.3
    seen: dict[str, list[float]] = {"normal": [], "slow": []}
    for _ in range(2000):  # about 3 hours of 5 s cycles
        groups = device.due(now)
        if groups:
            lateness = device.advance(groups, now)
            assert 0.0 <= lateness < 1.0
            for group in groups:
                seen[group].append(device.next_due[group])
        now = min(device.next_due.values()) + jitter.uniform(0.0, 0.9)  # woken late
    for group, interval in (("normal", 5.0), ("slow", 60.0)):
        times = seen[group]
        assert len(times) > 10
        assert all(_on_grid(t, interval) for t in times), group
        steps = {round(b - a, 6) for a, b in itertools.pairwise(times)}
        assert steps == {interval}, (group, steps)  # never pushed by the lateness


def test_missed_cycles_are_skipped_not_queued(ctx: GatewayContext,
                                              profiles: ProfileSet) -> None:
    device = _device(ctx, profiles)
    device.advance(["normal"], T0)
    due = device.next_due["normal"]
    assert due == pytest.approx(T0 + 5.0)
    stalled = due + 3 * 5.0 + 1.7  # the loop was blocked for three and a bit intervals
    lateness = device.advance(["normal"], stalled)
    assert lateness == pytest.approx(stalled - due)
    after = device.next_due["normal"]
    assert after == pytest.approx(due + 4 * 5.0)  # the next grid point after now
    assert after > stalled and _on_grid(after, 5.0)
    assert "normal" not in device.due(stalled + 0.01)  # no backlog to work off


def test_a_late_cycle_landing_on_a_grid_point_takes_the_next(ctx: GatewayContext,
                                                             profiles: ProfileSet) -> None:
    device = _device(ctx, profiles)
    device.advance(["normal"], T0)
    exactly = T0 + 3 * 5.0  # two grid points missed, woken exactly on the third
    device.advance(["normal"], exactly)
    assert device.next_due["normal"] == pytest.approx(exactly + 5.0)


def test_few_devices_share_phase_zero(ctx: GatewayContext, profiles: ProfileSet) -> None:
    devices = [_device(ctx, profiles, n) for n in range(1, 4)]
    for device in devices:
        device.advance(["normal"], T0 + 0.01 * device.unit)
    assert {d.next_due["normal"] for d in devices} == {T0 + 5.0}


def test_many_devices_spread_over_the_interval(ctx: GatewayContext,
                                               profiles: ProfileSet) -> None:
    needed = math.ceil(SPREAD_ABOVE * 5.0 / CYCLE_COST) + 1
    devices = [_device(ctx, profiles, n % 247 + 1) for n in range(needed)]
    assert ctx.devices_at(5.0) * CYCLE_COST / 5.0 > SPREAD_ABOVE
    for device in devices:
        device.advance(["normal"], T0)
    firsts = [d.next_due["normal"] for d in devices]
    assert all(T0 < t <= T0 + 5.0 for t in firsts)
    offsets = sorted(t - T0 for t in firsts)
    assert offsets[len(offsets) // 10] < 1.0 and offsets[-len(offsets) // 10] > 4.0  # spread
    sample = devices[:50]
    for device in sample:  # each keeps its own phase, one interval apart
        first = device.next_due["normal"]
        device.advance(["normal"], first + 0.2)
        assert device.next_due["normal"] == pytest.approx(first + 5.0)
