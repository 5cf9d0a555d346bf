"""Commissioning: which Modbus unit ids answer on one TCP endpoint (or RS-485 gateway).

Sequential on one connection with a short timeout. A unit is there when it answers
anything: data, or an exception other than a gateway's 0x0A/0x0B (which a gateway
sends *for* a device that did not answer). A timeout means nobody is there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from device_profiles.schema import ModbusTable
from edge.config import ModbusTcp
from edge.drivers.modbus import GatewayNoResponse, ModbusClient
from edge.errors import DeviceError, DeviceException, DeviceTimeout, DeviceUnreachable

log = logging.getLogger(__name__)

MIN_UNIT = 1
MAX_UNIT = 255
"""Unit 0 is the broadcast address (nobody answers it); 248-255 are reserved on serial lines
but used by some TCP devices (255 especially), so a scan may ask them."""


@dataclass(frozen=True, slots=True)
class ScanHit:
    """What one unit id did when asked."""

    unit: int
    answered: bool
    detail: str
    """What it answered (``holding 0 = 1234``, ``holding 0: illegal data address (2)``),
    or why we think nobody is there (``no answer in 0.3 s``)."""
    identity: dict[str, str] | None = None
    """FC43 basic device identification (vendor_name, product_code, revision), if given."""
    elapsed: float = 0.0
    """Seconds spent on this unit."""

    def __post_init__(self) -> None:
        if not MIN_UNIT <= self.unit <= MAX_UNIT:
            raise ValueError(f"unit {self.unit} is outside {MIN_UNIT}..{MAX_UNIT}")
        if self.identity is not None and not self.answered:
            raise ValueError("a unit that did not answer has no identity")


def parse_units(text: str) -> list[int]:
    """``"1-10,15,20-22"`` -> ``[1, ..., 10, 15, 20, 21, 22]`` (sorted, no repeats)."""
    units: set[int] = set()
    if not text.strip():
        raise ValueError("no unit ids given; expected e.g. '1-247' or '1,2,5-9'")
    for part in text.split(","):
        token = part.strip()
        low_text, dash, high_text = token.partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if dash else low
        except ValueError:
            raise ValueError(f"{token!r} is not a unit id or a range like 1-247") from None
        if low > high:
            raise ValueError(f"range {token!r} runs backwards")
        if low < MIN_UNIT or high > MAX_UNIT:
            raise ValueError(f"{token!r}: unit ids are {MIN_UNIT}..{MAX_UNIT} "
                             "(0 is broadcast and never answers)")
        units.update(range(low, high + 1))
    return sorted(units)


async def scan_modbus(host: str, port: int, units: Iterable[int], *,
                      timeout: float = 0.3,  # noqa: ASYNC109 - per request, not the scan's
                      framing: Literal["socket", "rtu"] = "socket") -> list[ScanHit]:
    """Ask every unit in turn; one :class:`ScanHit` per unit, in the order given.

    ``timeout`` bounds each request, so an empty address costs about that much.

    Raises DeviceUnreachable when the endpoint itself cannot be reached.
    """
    wanted = list(units)
    for unit in wanted:
        if not MIN_UNIT <= unit <= MAX_UNIT:
            raise ValueError(f"unit {unit} is outside {MIN_UNIT}..{MAX_UNIT}")
    endpoint = ModbusTcp(host=host, port=port, framing=framing)
    client = ModbusClient(endpoint, timeout=timeout, name=f"scan {host}:{port}")
    started = time.perf_counter()
    hits: list[ScanHit] = []
    try:
        await client.connect()
        for unit in wanted:
            hits.append(await _probe(client, unit))
    finally:
        await client.close()
    elapsed = time.perf_counter() - started
    found = [h.unit for h in hits if h.answered]
    log.info("scanned %d unit(s) on %s:%d in %.2f s; answered: %s", len(hits), host, port,
             elapsed, found or "none")
    return hits


async def _probe(client: ModbusClient, unit: int) -> ScanHit:
    started = time.perf_counter()
    details: list[str] = []
    answered = False
    for table in (ModbusTable.HOLDING, ModbusTable.INPUT):
        try:
            value = (await client.read(unit, table, 0, 1))[0]
        except DeviceException as exc:
            answered = True
            details.append(f"{table.value} 0: {_reason(exc)}")
            continue
        except GatewayNoResponse as exc:  # the gateway answers at once: cheap to ask again
            details.append(_reason(exc))
            continue
        except DeviceTimeout as exc:
            details.append(_reason(exc))
            break  # a real timeout: asking again would only cost another
        except DeviceUnreachable:
            raise
        except DeviceError as exc:  # a reply we could not make sense of: still a reply
            answered = True
            details.append(f"{table.value} 0: {_reason(exc)}")
            continue
        answered = True
        details.append(f"{table.value} 0 = {value}")
        break
    identity = await _identify(client, unit) if answered else None
    if not answered:
        details = [details[-1]] if details else ["no answer"]
    return ScanHit(unit, answered, "; ".join(details), identity,
                   time.perf_counter() - started)


async def _identify(client: ModbusClient, unit: int) -> dict[str, str] | None:
    try:
        identity = await client.identify(unit)
    except DeviceUnreachable:
        raise
    except DeviceError:
        return None
    return identity or None


def _reason(exc: DeviceError) -> str:
    """The error's message without the ``device: what:`` prefixes."""
    return str(exc).rsplit(": ", 1)[-1]
