"""Identifiers on the wire: sites, gateways, devices, points, request ids and boot ids."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

from towerwatch.contract.errors import IdentifierError

IDENTIFIER_PATTERN = r"[a-z0-9][a-z0-9_-]*"
IDENTIFIER_MAX = 64
REQUEST_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
BOOT_ID_PATTERN = r"[A-Za-z0-9-]{8,64}"

_IDENTIFIER_RE = re.compile(IDENTIFIER_PATTERN)
_REQUEST_ID_RE = re.compile(REQUEST_ID_PATTERN)
_BOOT_ID_RE = re.compile(BOOT_ID_PATTERN)


def check_identifier(value: str, what: str = "identifier") -> str:
    """Return ``value`` if it is an identifier, else raise :class:`IdentifierError`."""
    if not isinstance(value, str) or not value:
        raise IdentifierError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > IDENTIFIER_MAX:
        raise IdentifierError(f"{what} is {len(value)} characters long (at most {IDENTIFIER_MAX})")
    if _IDENTIFIER_RE.fullmatch(value) is None:
        raise IdentifierError(
            f"{what} {value!r} must be lowercase letters, digits, '_' and '-',"
            " starting with a letter or digit"
        )
    return value


def check_request_id(value: str, what: str = "request id") -> str:
    """Return ``value`` if it is a request id (1-64 of ``A-Z a-z 0-9 _ -``), else raise."""
    if not isinstance(value, str) or _REQUEST_ID_RE.fullmatch(value) is None:
        raise IdentifierError(
            f"{what} {value!r} must be 1-64 characters of letters, digits, '_' and '-'"
        )
    return value


def check_boot_id(value: str, what: str = "boot id") -> str:
    """Return ``value`` if it is a boot id (8-64 of ``A-Z a-z 0-9 -``), else raise."""
    if not isinstance(value, str) or _BOOT_ID_RE.fullmatch(value) is None:
        raise IdentifierError(
            f"{what} {value!r} must be 8-64 characters of letters, digits and '-'"
        )
    return value


def new_request_id() -> str:
    """A fresh random request id (uuid4 hex)."""
    return uuid.uuid4().hex


def new_boot_id() -> str:
    """A fresh random boot id (uuid4 with dashes)."""
    return str(uuid.uuid4())


def _schema(pattern: str, **extra: int) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": f"^{pattern}$", **extra})


Identifier = Annotated[
    str,
    AfterValidator(check_identifier),
    _schema(IDENTIFIER_PATTERN, maxLength=IDENTIFIER_MAX),
]
"""A site, gateway, device, point or name: ``[a-z0-9][a-z0-9_-]*``, at most 64 characters."""

RequestId = Annotated[str, AfterValidator(check_request_id), _schema(REQUEST_ID_PATTERN)]
"""A command's request id: 1-64 of ``A-Z a-z 0-9 _ -`` (uuid hex or dashed form fit)."""

BootId = Annotated[str, AfterValidator(check_boot_id), _schema(BOOT_ID_PATTERN)]
"""One run of a gateway process: 8-64 of ``A-Z a-z 0-9 -``."""
