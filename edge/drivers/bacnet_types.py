"""The BACnet driver's plain values: property references, I-Am answers, counters.

No bacpypes3 here; import them from :mod:`edge.drivers.bacnet`, the driver's one module
for callers.
"""

from __future__ import annotations

from dataclasses import dataclass

from device_profiles.schema import parse_object_id


@dataclass(frozen=True, slots=True)
class PropertyRef:
    """One property of one object: ``analog-input,3`` ``present-value`` [index]."""

    object_id: str
    prop: str = "present-value"
    index: int | None = None

    def __post_init__(self) -> None:
        kind, instance = parse_object_id(self.object_id)  # ValueError names the problem
        object.__setattr__(self, "object_id", f"{kind},{instance}")
        if not self.prop or not all(part.isalnum() for part in self.prop.split("-")):
            raise ValueError(f"BACnet property must be like 'present-value', got {self.prop!r}")
        if self.index is not None and self.index < 0:
            raise ValueError(f"array index must be >= 0, got {self.index}")

    def __str__(self) -> str:
        index = "" if self.index is None else f"[{self.index}]"
        return f"{self.object_id} {self.prop}{index}"


@dataclass(frozen=True, slots=True)
class IAm:
    """One device that answered a Who-Is."""

    instance: int
    address: str
    """``host:port``"""
    vendor_id: int
    max_apdu: int
    segmentation: str


@dataclass(slots=True)
class BacnetStats:
    """Counters for metrics; only ever incremented."""

    requests: int = 0
    errors: int = 0
    timeouts: int = 0
    values: int = 0
    cov_notifications: int = 0
    cov_renewals: int = 0
    cov_failures: int = 0
