"""The edge gateway's errors.

::

    EdgeError
    ├── ConfigError            a site config or a profile it names is wrong (carries every issue)
    ├── DeviceError            talking to one device failed; the daemon carries on
    │   ├── DeviceTimeout      no answer in time
    │   ├── DeviceUnreachable  no connection (refused, reset, no route, serial port gone)
    │   └── DeviceException    the device answered with a protocol exception / error
    ├── PublishError           the broker refused or dropped a publish
    │   └── BrokerUnavailable  cannot connect (refused, TLS verification failed, bad credentials)
    ├── OutboxError            the durable outbox cannot store a message
    └── CommandRefused         a command from the cloud is not allowed (reason in the message)

Foreign errors (pymodbus, bacpypes3, paho-mqtt, sqlite3) are converted where those
libraries are imported, with ``raise ... from exc``.
"""

from __future__ import annotations

from collections.abc import Sequence

from towerwatch.sourced_yaml import SourceIssue


class EdgeError(Exception):
    """Base of every error the edge gateway raises on purpose."""


class ConfigError(EdgeError):
    """The site config (or a profile it references) is not usable."""

    def __init__(self, issues: Sequence[SourceIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class DeviceError(EdgeError):
    """One device could not be read or written."""

    def __init__(self, device: str, message: str) -> None:
        self.device = device
        super().__init__(f"{device}: {message}")


class DeviceTimeout(DeviceError):
    """The device did not answer in time."""


class DeviceUnreachable(DeviceError):
    """No connection to the device (or its bus)."""


class DeviceException(DeviceError):
    """The device answered with an exception (Modbus code, BACnet error/reject/abort)."""

    def __init__(self, device: str, message: str, code: int | str) -> None:
        self.code = code
        super().__init__(device, message)

    @property
    def illegal_address(self) -> bool:
        """Modbus exception 2, or BACnet unknown-object / unknown-property."""
        return self.code in (2, "unknown-object", "unknown-property")


class PublishError(EdgeError):
    """A message could not be handed to the broker."""


class BrokerUnavailable(PublishError):
    """The broker cannot be reached, refused us, or failed TLS verification."""


class OutboxError(EdgeError):
    """The durable outbox cannot store or read messages."""


class CommandRefused(EdgeError):
    """A command from the cloud is not allowed; the message says why."""
