"""``towerwatch edge scan bacnet``: which BACnet/IP devices answer, and what they are.

A Who-Is (broadcast, or to one address), then one read-property-multiple per device
that answered, of its device object's name, vendor, model and firmware, so an
installer can match what answered to the site config.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from edge.config import BacnetClientConfig
from edge.drivers.bacnet import BacnetClient, IAm, PropertyRef
from edge.errors import DeviceError, DeviceException

_DESCRIBE = {"name": "object-name", "vendor_name": "vendor-name", "model_name": "model-name",
             "firmware": "firmware-revision"}


@dataclass(frozen=True, slots=True)
class ScanResult:
    """One device that answered; ``error`` says why its description could not be read."""

    instance: int
    address: str
    vendor_id: int
    name: str | None = None
    vendor_name: str | None = None
    model_name: str | None = None
    firmware: str | None = None
    error: str | None = None

    def __str__(self) -> str:
        """One line for an installer: instance, address, name, vendor, model, firmware."""
        parts = [f"device {self.instance}", self.address, repr(self.name or "?"),
                 self.vendor_name or f"vendor {self.vendor_id}", self.model_name or "?",
                 f"firmware {self.firmware or '?'}"]
        return "  ".join(parts) + (f"  ({self.error})" if self.error else "")


async def _describe(client: BacnetClient, i_am: IAm) -> ScanResult:
    device = f"device {i_am.instance}"
    refs = {field: PropertyRef(f"device,{i_am.instance}", prop)
            for field, prop in _DESCRIBE.items()}
    try:
        values = await client.read_multiple(device, i_am.address, list(refs.values()))
    except DeviceError as exc:
        return ScanResult(i_am.instance, i_am.address, i_am.vendor_id, error=str(exc))
    texts = {field: value for field, ref in refs.items()
             if isinstance(value := values.get(ref), str)}
    missing = [f"{ref.prop}: {value.code}" for ref in refs.values()
               if isinstance(value := values.get(ref), DeviceException)]
    return ScanResult(i_am.instance, i_am.address, i_am.vendor_id,
                      error="; ".join(missing) or None, **texts)


async def scan_bacnet(client_config: BacnetClientConfig, *, address: str | None,
                      wait: float, request_timeout: float = 1.0
                      ) -> list[ScanResult]:
    """Every device answering a Who-Is within ``wait`` s, described, by instance.

    ``address`` is one device (``host[:port]``) or a broadcast address; None broadcasts
    on the gateway's own network. Raises DeviceUnreachable when the gateway's BACnet/IP
    address cannot be bound.
    """
    client = BacnetClient(client_config, timeout=request_timeout, retries=1)
    await client.start()
    try:
        found = await client.who_is(address=address, wait=wait)
        return list(await asyncio.gather(*(_describe(client, i_am) for i_am in found)))
    finally:
        await client.close()
