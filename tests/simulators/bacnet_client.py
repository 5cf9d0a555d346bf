"""A plain bacpypes3 client, not the gateway's, for tests of the simulated BACnet devices.

It binds ``127.0.0.1/8`` on a free UDP port other than the devices' (a packet to 127.x
on the sender's own port loops back into its own stack) and remembers every I-Am.
"""

from __future__ import annotations

from typing import Any

from bacpypes3.app import Application
from bacpypes3.local.device import DeviceObject
from bacpypes3.local.networkport import NetworkPortObject

from tests.servers.ports import free_udp_port


class PlainClient(Application):  # type: ignore[misc]
    """A bacpypes3 application that remembers every I-Am it hears (``i_ams``)."""

    i_ams: dict[int, Any]

    async def do_IAmRequest(self, apdu: Any) -> None:
        self.i_ams[int(apdu.iAmDeviceIdentifier[1])] = apdu.pduSource
        await super().do_IAmRequest(apdu)


def plain_client(instance: int, *, timeout_ms: int, retries: int) -> Any:
    """A started client with device ``instance``; close it with ``client.close()``."""
    device = DeviceObject(objectIdentifier=("device", instance), objectName="test-client",
                          apduTimeout=timeout_ms, numberOfApduRetries=retries)
    port = NetworkPortObject(f"127.0.0.1/8:{free_udp_port()}",
                             objectIdentifier=("network-port", 1), objectName="test-port")
    client = PlainClient.from_object_list([device, port])
    client.i_ams = {}
    return client
