"""Free loopback ports and readiness waits (stdlib only)."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

__all__ = ["BACNET_PORT", "LOOPBACK", "free_port", "free_udp_port", "http_status",
           "wait_for_http", "wait_for_port"]

LOOPBACK = "127.0.0.1"
BACNET_PORT = 47808
"""The simulated BACnet devices' UDP port: a client bound to it would hear itself."""

# Ports already handed out in this process: the kernel may offer a port again once
# the probe socket is closed, before the server that was given it has bound it.
_handed_out: set[int] = set()


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that is free now (bind to port 0, then close)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port found on {host}")


def free_udp_port(host: str = LOOPBACK) -> int:
    """Return a UDP port on ``host`` that is free now, never :data:`BACNET_PORT`."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port != BACNET_PORT:
            return port


def _check_alive(alive: Callable[[], bool] | None, what: str) -> None:
    if alive is not None and not alive():
        raise RuntimeError(f"process exited while waiting for {what}")


def wait_for_port(
    host: str,
    port: int,
    timeout: float = 10.0,
    *,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Wait until a TCP connect to ``host:port`` succeeds.

    ``alive`` (e.g. ``lambda: proc.poll() is None``) makes the wait fail at once when the
    server process has died. Raises ``TimeoutError`` or ``RuntimeError``.
    """
    deadline = time.monotonic() + timeout
    what = f"{host}:{port}"
    while True:
        _check_alive(alive, what)
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not accepting connections after {timeout:.1f} s")
        time.sleep(0.05)


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """GET ``url`` and return the HTTP status, or ``None`` when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as err:
        err.close()
        return err.code
    except (urllib.error.URLError, OSError):
        return None


def wait_for_http(
    url: str,
    timeout: float = 10.0,
    *,
    alive: Callable[[], bool] | None = None,
) -> int:
    """Wait until a GET of ``url`` answers 2xx; return that status."""
    deadline = time.monotonic() + timeout
    last: int | None = None
    while True:
        _check_alive(alive, url)
        last = http_status(url)
        if last is not None and 200 <= last < 300:
            return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{url} did not answer 2xx within {timeout:.1f} s (last: {last})")
        time.sleep(0.05)
