"""Ports for simulated endpoints: never handed out twice, held until served."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from device_profiles.loader import ProfileSet, load_profiles
from simulators.building import SimBuilding
from simulators.clock import SimClock
from simulators.ports import claim_port
from simulators.site import load_site

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def profiles() -> ProfileSet:
    return load_profiles()


def _free_run(length: int) -> int:
    """The first port of ``length`` consecutive ports nobody listens on now."""
    with claim_port(HOST) as anchor:
        base = anchor.port
    while True:
        claims = [claim_port(HOST, base)]
        claims += [claim_port(HOST, claims[-1].port + 1) for _ in range(length - 1)]
        ports = [c.port for c in claims]
        for claim in claims:
            claim.release()
        if ports == list(range(ports[0], ports[0] + length)):
            return ports[0]
        base = ports[-1] + 1


def test_claims_of_any_port_never_repeat_while_held() -> None:
    claims = [claim_port(HOST) for _ in range(300)]
    try:
        assert len({c.port for c in claims}) == 300
        assert all(c.held for c in claims)
    finally:
        for claim in claims:
            claim.release()
    assert not any(c.held for c in claims)


def test_a_wanted_port_already_claimed_is_passed_over_until_released() -> None:
    base = _free_run(3)
    first = claim_port(HOST, base)
    second = claim_port(HOST, base)
    try:
        assert (first.port, second.port) == (base, base + 1)
        first.release()
        first.release()  # twice is harmless
        with claim_port(HOST, base) as again:
            assert again.port == base
    finally:
        second.release()


def test_a_held_port_cannot_be_bound_by_another_program() -> None:
    with claim_port(HOST) as claim:
        other = socket.socket()
        try:
            with pytest.raises(OSError, match="in use"):
                other.bind((HOST, claim.port))
        finally:
            other.close()
        with claim_port(HOST, claim.port) as next_one:
            assert next_one.port != claim.port


async def test_a_server_binds_beside_the_claim_and_then_owns_the_port() -> None:
    claim = claim_port(HOST)
    server = await asyncio.get_running_loop().create_server(
        asyncio.Protocol, HOST, claim.port, reuse_address=True)
    try:
        claim.release()
        with claim_port(HOST, claim.port) as after:
            assert after.port != claim.port  # the listening server keeps it
        _, writer = await asyncio.open_connection(HOST, claim.port)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


def _meters_site(folder: Path, name: str, count: int, base_port: int) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"site: {name}\n"
                    f"modbus: {{host: {HOST}, base_port: {base_port}}}\n"
                    "devices:\n"
                    f"  - {{id: 'm-{{n}}', count: {count}, profile: water-meter-modbus}}\n")
    return path


async def test_buildings_started_at_once_get_distinct_ports(profiles: ProfileSet,
                                                            tmp_path: Path) -> None:
    """Every building claims its ports before its first endpoint binds; started together
    from the same base port, each must still be handed ports no other endpoint has."""
    count, buildings = 12, []
    base = _free_run(count)
    for name in ("east", "west", "north", "south"):
        site, raw = load_site(_meters_site(tmp_path, name, count, base))
        clock = SimClock(start=1_800_000_000, speed=0, timezone=site.timezone)
        buildings.append(SimBuilding(site, profiles, clock=clock, site_raw=raw))
    try:
        await asyncio.gather(*(b.start() for b in buildings))
        ports = [d.port for b in buildings for d in b.devices.values()]
        assert len(ports) == 4 * count and len(set(ports)) == len(ports)
        assert all(base <= p < base + 2000 for p in ports if p is not None)
        for building in buildings:
            for device in building.devices.values():
                assert device.port is not None
                client = AsyncModbusTcpClient(HOST, port=device.port, timeout=2, retries=0)
                await client.connect()
                try:
                    reply = await client.read_holding_registers(0, count=1, device_id=1)
                    assert not reply.isError(), (building.site.site, device.id)
                finally:
                    client.close()
    finally:
        for building in buildings:
            await building.stop()
