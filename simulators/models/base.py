"""What every simulated device is: a behaviour model stepped by the building's clock.

A model keeps its state in engineering units and exposes it by point id, using the
same point ids as the device profiles it drives. The register image and the protocol
servers (Modbus, BACnet) are built from the profile, so the simulator and the gateway
agree on addresses by construction; a model never deals with registers.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from simulators.clock import SimClock

Value = bool | int | float | str
EventRecord = dict[str, Value]
"""One record of an event-log point, e.g. ``{"seq": 7, "ts": 1700000000, "event": "granted"}``."""


class SimError(Exception):
    """Base of the simulator's errors."""


class UnknownFault(SimError):
    """A scenario asked a model for a fault it does not know."""


class WriteRefused(SimError):
    """A client wrote a point the device does not accept writes on, or a bad value."""


@dataclass
class SimContext:
    """What a model may use from its building: the clock and a seeded random source."""

    clock: SimClock
    rng: random.Random = field(default_factory=lambda: random.Random(0))


class DeviceModel(ABC):
    """Base class of behaviour models.

    Subclasses set ``profiles`` (profile ids they can drive; the point ids they
    produce must exist in each) and ``faults`` (names accepted by :meth:`inject`).
    ``options`` come from the site file (e.g. ``floors: 20``) and are checked by the
    model's constructor, which raises ``ValueError`` naming a bad option.
    """

    profiles: ClassVar[tuple[str, ...]] = ()
    faults: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, device_id: str, ctx: SimContext, options: Mapping[str, Any]) -> None:
        self.device_id = device_id
        self.ctx = ctx
        self.options = dict(options)

    @abstractmethod
    def step(self, now: float, dt: float) -> None:
        """Advance the behaviour by ``dt`` simulated seconds, ending at ``now`` (epoch s)."""

    @abstractmethod
    def values(self) -> dict[str, Value]:
        """Current value of every point the model drives, by point id (engineering units)."""

    def events(self) -> list[EventRecord]:
        """Event-log records, oldest first (only devices with an event log override this)."""
        return []

    def inject(self, fault: str, args: Mapping[str, Any]) -> None:
        """Start a fault; ``args`` narrow it (e.g. ``{"zone": 3}``)."""
        raise UnknownFault(f"{type(self).__name__} has no fault {fault!r}")

    def clear(self, fault: str, args: Mapping[str, Any]) -> None:
        """End a fault (a reset, a repair); unknown faults raise :class:`UnknownFault`."""
        raise UnknownFault(f"{type(self).__name__} has no fault {fault!r}")

    def write(self, point_id: str, value: Value) -> None:
        """A client wrote a point; refuse with :class:`WriteRefused` unless it is writable."""
        raise WriteRefused(f"{self.device_id}: point {point_id!r} is not writable")

    def _check_fault(self, fault: str) -> None:
        if fault not in self.faults:
            known = ", ".join(sorted(self.faults)) or "none"
            raise UnknownFault(f"{self.device_id}: no fault {fault!r} (known: {known})")
