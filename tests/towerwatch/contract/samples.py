"""Valid sample payloads shared by the contract tests."""

from __future__ import annotations

from towerwatch.contract import (
    Birth,
    Command,
    CommandReply,
    DeviceDescriptor,
    DeviceState,
    Event,
    Payload,
    Telemetry,
    Will,
)

TS = 1_700_000_000_000
BOOT = "3f2a9c1e-5b7d-4e0a-9c1f-2b3d4e5f6a7b"

BIRTH = Birth(
    boot_id=BOOT,
    version="0.1.0",
    ts=TS,
    devices=[
        DeviceDescriptor(id="lift-1", profile="kone-kcm831", name="Lift 1 (east core)"),
        DeviceDescriptor(id="fire_panel", profile="notifier-nfs2-3030"),
    ],
)
WILL = Will(boot_id=BOOT, ts=TS, reason="connection lost")
TELEMETRY = Telemetry(
    seq=42,
    boot_id=BOOT,
    ts=TS,
    values={"floor": 7, "door_open": False, "speed": 1.75, "mode": "normal", "load": None},
    quality={"floor": "good", "door_open": "good", "speed": "good", "load": "stale"},
)
EVENT = Event(
    seq=43,
    boot_id=BOOT,
    ts=TS,
    event_id="lift-1:43",
    kind="alarm",
    name="entrapment",
    state="active",
    severity="emergency",
    value=True,
    detail={"floor": 7, "car": "a", "load_kg": 412.5, "door_open": False},
)
ACCESS_EVENT = Event(
    seq=0,
    boot_id=BOOT,
    ts=TS,
    event_id="door-3:0",
    kind="access",
    name="badge",
    state="granted",
)
DEVICE_STATE = DeviceState(online=False, since=TS, reason="3 missed polls")
WRITE = Command(op="write", device="pump-2", point="run_cmd", value=True, expires=TS + 30_000)
PING = Command(op="ping", expires=TS + 30_000)
RELOAD = Command(op="reload", device="pump-2", expires=TS + 30_000)
REPLY_OK = CommandReply(ok=True, ts=TS)
REPLY_FAILED = CommandReply(ok=False, error="point run_cmd is not writable", ts=TS)

ALL: dict[str, Payload] = {
    "birth": BIRTH,
    "will": WILL,
    "telemetry": TELEMETRY,
    "event": EVENT,
    "access_event": ACCESS_EVENT,
    "device_state": DEVICE_STATE,
    "write": WRITE,
    "ping": PING,
    "reload": RELOAD,
    "reply_ok": REPLY_OK,
    "reply_failed": REPLY_FAILED,
}
