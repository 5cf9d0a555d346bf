"""The contract's error tree.

::

    ContractError (ValueError)
    ├── IdentifierError   a site, gateway, device, point or request id is malformed
    ├── TopicError        a topic cannot be built or parsed; names the bad part
    └── PayloadError      a payload is not valid; lists every field-level problem
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

ROOT_PATH = ""
"""The path of a problem with the payload as a whole (bad JSON, not an object)."""


class ContractError(ValueError):
    """Something does not follow the Towerwatch wire contract."""


class IdentifierError(ContractError):
    """An identifier is malformed."""


class TopicError(ContractError):
    """A topic is malformed; ``part`` names the bad level (``root``, ``site``, ``device``, …)."""

    def __init__(self, part: str, message: str, topic: str | None = None) -> None:
        self.part = part
        self.message = message
        self.topic = topic
        where = f"topic {topic!r}: " if topic is not None else ""
        super().__init__(f"{where}{part}: {message}")


class FieldIssue(NamedTuple):
    """One problem in a payload: the field path (``values.temp``, ``devices[0].id``) and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(payload)'}: {self.message}"


class PayloadError(ContractError):
    """A payload is invalid; ``errors`` lists every field-level problem found."""

    def __init__(self, errors: Iterable[FieldIssue | tuple[str, str]], what: str = "") -> None:
        self.errors = [FieldIssue(*issue) for issue in errors]
        self.what = what
        prefix = f"invalid {what} payload: " if what else ""
        super().__init__(prefix + "; ".join(str(issue) for issue in self.errors))
