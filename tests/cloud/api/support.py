"""Helpers of the API tests: an injectable clock, a recording command sender, the seeded
registry and users, and assertions on the error shape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from sqlalchemy.orm import Session

from cloud.db import (
    PointSpec,
    create_admin,
    create_user,
    grant_role,
    learn_birth,
    learn_device_state,
    learn_will,
    set_device_details,
    upsert_site,
)
from cloud.security.passwords import PasswordHasher
from towerwatch.contract import Birth, DeviceDescriptor, DeviceState, Will

T0_MS: Final = 1_749_996_000_000
"""The tests' "now": 2025-06-15T14:00:00Z, a whole hour."""
PASSWORD: Final = "correct horse battery staple"
SECRET: Final = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
BOOT: Final = "boot-0001"

PUMP_POINTS: Final = (
    PointSpec("pressure", "Outlet pressure", "出水压力", unit="bar"),
    PointSpec("running", "Running", "运行", unit="none", kind="bool"),
    PointSpec("setpoint", "Pressure setpoint", "压力设定值", unit="bar", writable=True),
)
PANEL_POINTS: Final = (PointSpec("fire", "Fire alarm", "火警", unit="none", kind="bool"),)
PROFILES: Final = {"booster-pump": PUMP_POINTS, "fire-panel": PANEL_POINTS}

USERS: Final = {
    # username: (role, site) — site None: every site
    "admin": ("admin", None),
    "viewer-a": ("viewer", "alpha"),
    "engineer-a": ("engineer", "alpha"),
    "supervisor-a": ("supervisor", "alpha"),
    "guard-a": ("guard", "alpha"),
    "viewer-b": ("viewer", "beta"),
}


AsUser = Callable[[str], Awaitable[httpx.AsyncClient]]
"""The ``as_user`` fixture: a client carrying that user's token."""


class FakeClock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self, now_ms: int = T0_MS) -> None:
        self.now = now_ms / 1000

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    @property
    def ms(self) -> int:
        return int(self.now * 1000)


@dataclass(frozen=True)
class Sent:
    site: str
    gateway: str
    request_id: str
    payload: bytes


@dataclass
class RecordingSender:
    """A :class:`~cloud.api.CommandSender` that keeps what it was given (or fails)."""

    sent: list[Sent] = field(default_factory=list)
    failure: Exception | None = None

    async def send(self, site: str, gateway: str, request_id: str, payload: bytes) -> None:
        if self.failure is not None:
            raise self.failure
        self.sent.append(Sent(site, gateway, request_id, payload))


def seed(session: Session, hasher: PasswordHasher) -> None:
    """Sites alpha (gateways gw1 online, gw2 offline) and beta (gw9), and :data:`USERS`."""
    upsert_site(session, "alpha", name="Alpha Tower", timezone="Asia/Shanghai")
    upsert_site(session, "beta", name="Beta Estate")
    birth = Birth(
        boot_id=BOOT, version="1.0.0", ts=T0_MS - 600_000,
        devices=[DeviceDescriptor(id="pump-1", profile="booster-pump", name="Booster pump 1"),
                 DeviceDescriptor(id="panel-1", profile="fire-panel")],
    )
    learn_birth(session, "alpha", "gw1", birth, received_ms=T0_MS - 599_000, profiles=PROFILES)
    learn_device_state(session, "alpha", "gw1", "pump-1",
                       DeviceState(online=True, since=T0_MS - 590_000))
    learn_device_state(session, "alpha", "gw1", "panel-1",
                       DeviceState(online=False, since=T0_MS - 580_000, reason="timeout"))
    set_device_details(session, "alpha", "gw1", "pump-1", building="A", floor="B2",
                       room="Pump room")
    learn_birth(session, "alpha", "gw2", Birth(boot_id="boot-0002", version="1.0.0",
                                                ts=T0_MS - 900_000, devices=[]),
                received_ms=T0_MS - 900_000)
    learn_will(session, "alpha", "gw2", Will(boot_id="boot-0002", ts=T0_MS - 300_000,
                                             reason="connection lost"))
    learn_birth(session, "beta", "gw9", Birth(
        boot_id=BOOT, version="1.0.0", ts=T0_MS - 600_000,
        devices=[DeviceDescriptor(id="meter-1", profile="meter")]), received_ms=T0_MS - 600_000)
    for username, (role, site) in USERS.items():
        if role == "admin":
            create_admin(session, username, PASSWORD, now_ms=T0_MS, hasher=hasher)
            continue
        user = create_user(session, username, PASSWORD, now_ms=T0_MS, hasher=hasher)
        grant_role(session, user, role, site)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an error of ``status`` and ``code`` in the API's one shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])
