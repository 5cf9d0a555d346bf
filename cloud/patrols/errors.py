"""Errors of the patrol service.

::

    PatrolError
    ├── PatrolConfigError     settings or keys cannot be used (no master key, a short key)
    ├── TapRejected           a tap that proves nothing; ``kind`` is the exception it raises
    │   ├── MalformedTap      the SUN/UID/QR data is not well formed (``field`` names it)
    │   ├── UnknownTag        no enrolled checkpoint has this tag (UID, QR code, checkpoint)
    │   ├── BadMac            the SUN CMAC does not match: forged, or the wrong keys
    │   └── ReplayedTap       the read counter is not above the last accepted one
    ├── PatrolNotFound        no checkpoint / route / schedule / tour / exception with this id
    ├── PatrolConflict        the request contradicts the stored state (a code in use, a
    │                         closed tour, a scan id reused with other content)
    └── PatrolInvalid         a request that is well-formed but not acceptable (``field``)

Tap errors carry the :class:`~cloud.patrols.model.ExceptionKind` they are recorded as,
so the scan service can turn a rejected tap into a patrol exception without a mapping.
"""

from __future__ import annotations

__all__ = [
    "BadMac",
    "MalformedTap",
    "PatrolConfigError",
    "PatrolConflict",
    "PatrolError",
    "PatrolInvalid",
    "PatrolNotFound",
    "ReplayedTap",
    "TapRejected",
    "UnknownTag",
]


class PatrolError(Exception):
    """Base of every error the patrol service raises on purpose."""


class PatrolConfigError(PatrolError):
    """The patrol settings or key material cannot be used; the message says what to fix."""


class TapRejected(PatrolError):
    """A tap was refused; ``kind`` is the patrol exception kind it is recorded as, and
    ``checkpoint_id`` the checkpoint it claimed to be (when known)."""

    kind = "rejected"
    checkpoint_id: int | None = None


class MalformedTap(TapRejected):
    """The tap data is not well formed; ``field`` names the offending input."""

    kind = "bad_mac"

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class UnknownTag(TapRejected):
    """No enrolled checkpoint carries this tag."""

    kind = "unknown_tag"


class BadMac(TapRejected):
    """The SUN message authentication code does not verify."""

    kind = "bad_mac"


class ReplayedTap(TapRejected):
    """The tag's read counter is not above the last accepted one: a copied or replayed URL."""

    kind = "replay"

    def __init__(self, counter: int, last: int) -> None:
        self.counter = counter
        self.last = last
        super().__init__(f"read counter {counter} is not above the last accepted {last}")


class PatrolNotFound(PatrolError):
    """No such checkpoint, route, schedule, tour or exception (``what`` and ``key``)."""

    def __init__(self, what: str, key: object) -> None:
        self.what = what
        self.key = key
        super().__init__(f"no {what} {key!r}")


class PatrolConflict(PatrolError):
    """The request contradicts what is stored."""


class PatrolInvalid(PatrolError):
    """The request is well formed but not acceptable; ``field`` says where."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")
