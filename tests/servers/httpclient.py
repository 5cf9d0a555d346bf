"""A tiny stdlib HTTP client for talking to the servers in tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["HttpResponse", "form", "request"]


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def request(
    method: str,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    data: bytes | str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> HttpResponse:
    """Send a request; an HTTP error status is returned, not raised."""
    if params:
        url = f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(params)}"
    body = data.encode() if isinstance(data, str) else data
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return HttpResponse(resp.status, resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return HttpResponse(err.code, err.read())


def form(values: Mapping[str, str]) -> tuple[bytes, dict[str, str]]:
    """URL-encode ``values`` as a form body; returns ``(body, headers)``."""
    return (
        urllib.parse.urlencode(values).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
