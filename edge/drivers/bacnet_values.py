"""The BACnet driver's translation layer: bacpypes3 values to plain Python and back,
read-access specifications, and bacpypes3 errors as :mod:`edge.errors`.

Part of the BACnet adapter with :mod:`edge.drivers.bacnet` (the two modules that import
bacpypes3). Values come back as :func:`device_profiles.codec.decode_bacnet` takes them:
``float`` (Real), ``int`` (Unsigned, Integer, Enumerated), ``"active"`` / ``"inactive"``
(BinaryPV), ``str`` (CharacterString), ``bool``, a tuple of bits (status flags), a list
(arrays).
"""

from __future__ import annotations

from typing import Any

from bacpypes3.apdu import AbortPDU, ErrorPDU, ErrorRejectAbortNack
from bacpypes3.basetypes import BinaryPV, PropertyReference, ReadAccessSpecification
from bacpypes3.constructeddata import Array, SequenceOf
from bacpypes3.primitivedata import (
    Atomic,
    BitString,
    Boolean,
    Null,
    ObjectIdentifier,
    PropertyIdentifier,
    Unsigned,
)
from bacpypes3.vendor import get_vendor_info

from edge.drivers.bacnet_types import BacnetStats, PropertyRef
from edge.errors import DeviceError, DeviceException, DeviceTimeout

SPEC_CACHE_SIZE = 4096


def plain(value: Any) -> object:
    """A decoded bacpypes3 value as plain Python (see the module docstring)."""
    if value is None or isinstance(value, Null):
        return None
    if isinstance(value, Boolean):
        return bool(value)
    if isinstance(value, BinaryPV):
        return str(value)
    if isinstance(value, int):  # Unsigned, Integer, Enumerated
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, BitString):
        return tuple(int(bit) for bit in value)
    if isinstance(value, ObjectIdentifier):
        return f"{value[0]},{value[1]}"
    if isinstance(value, list):
        return [plain(item) for item in value]
    return str(value)


def device_error(device: str, what: str, exc: ErrorRejectAbortNack, budget: float
                 ) -> DeviceError:
    """A bacpypes3 error, reject or abort as one of our errors."""
    if isinstance(exc, AbortPDU) and str(exc.apduAbortRejectReason) == "no-response":
        return DeviceTimeout(device, f"{what}: no answer within {budget:g} s")
    if isinstance(exc, ErrorPDU):
        code = str(getattr(exc, "errorCode", None) or "error")
        return DeviceException(device, f"{what}: {getattr(exc, 'errorClass', 'error')}: {code}",
                               code)
    kind = "aborted" if isinstance(exc, AbortPDU) else "rejected"
    code = str(exc.apduAbortRejectReason)
    return DeviceException(device, f"{what}: {kind}: {code}", code)


class PropertyValues:
    """Decodes and encodes property values by the standard datatype of each property
    (looked up once per object type and property); counts decoded values in ``stats``."""

    def __init__(self, stats: BacnetStats) -> None:
        self.stats = stats
        self._types: dict[tuple[str, str, bool, bool], Any] = {}

    def datatype(self, ref: PropertyRef) -> Any:
        kind = ref.object_id.split(",", 1)[0]
        key = (kind, ref.prop, ref.index is None, ref.index == 0)
        if key not in self._types:
            object_class = get_vendor_info(0).get_object_class(ObjectIdentifier(f"{kind},0")[0])
            datatype = object_class.get_property_type(PropertyIdentifier(ref.prop)) \
                if object_class else None
            if datatype is not None and ref.index is not None and issubclass(datatype, Array):
                datatype = Unsigned if ref.index == 0 else datatype._subtype
            self._types[key] = datatype
        return self._types[key]

    def decode(self, device: str, ref: PropertyRef, value: Any) -> object:
        """The plain value, or the DeviceException of a value that cannot be decoded."""
        datatype = self.datatype(ref)
        try:
            if datatype is None:
                raise TypeError("no standard datatype")
            decoded = plain(value.cast_out(datatype, null=issubclass(datatype, Atomic)))
        except Exception as exc:  # any decoding failure of one value is that value's error
            return DeviceException(device, f"{ref}: cannot decode: {exc!r}", "decoding-error")
        self.stats.values += 1
        return decoded

    def encode(self, device: str, ref: PropertyRef, value: object) -> Any:
        """``value`` (as codec.encode_bacnet gives it; None relinquishes) as the
        property's datatype; DeviceException when it does not fit."""
        datatype = self.datatype(ref)
        try:
            if datatype is None:
                raise TypeError("no standard datatype")
            return Null(()) if value is None else (
                value if isinstance(value, datatype) else datatype(value))
        except (ValueError, TypeError) as exc:
            raise DeviceException(device, f"write {ref}: cannot encode {value!r}: {exc}",
                                  "invalid-data-type") from exc


class ReadSpecs:
    """The read access specifications of a chunk of properties, built once (about 1/8
    of a read's CPU) and kept for the next cycle."""

    def __init__(self) -> None:
        self._cache: dict[tuple[PropertyRef, ...], Any] = {}

    def of(self, chunk: list[PropertyRef]) -> Any:
        key = tuple(chunk)
        specs = self._cache.get(key)
        if specs is None:
            by_object: dict[str, list[Any]] = {}
            for ref in chunk:
                reference = PropertyReference(propertyIdentifier=PropertyIdentifier(ref.prop))
                if ref.index is not None:
                    reference.propertyArrayIndex = ref.index
                by_object.setdefault(ref.object_id, []).append(reference)
            specs = SequenceOf(ReadAccessSpecification)([
                ReadAccessSpecification(objectIdentifier=ObjectIdentifier(obj),
                                        listOfPropertyReferences=references)
                for obj, references in by_object.items()])
            if len(self._cache) >= SPEC_CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = specs
        return specs
