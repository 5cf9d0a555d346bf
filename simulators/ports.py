"""TCP ports for simulated endpoints: each handed out once, and held until it is served.

A port that a probe found free stays free only while something holds it: once the probe
closes, the kernel may offer the same port to the next probe, and another program may
bind it, before the endpoint it was meant for has started. A :class:`PortClaim` therefore
keeps its probing socket bound until the endpoint listens, and a register of the claims
this process holds refuses to hand a claimed port out again until the claim is released.

The probing socket sets ``SO_REUSEADDR``, as the Modbus server does, so the server binds
beside it (Linux allows that while neither listens); once the server listens, nothing
else can bind the port, and the claim is released.
"""

from __future__ import annotations

import logging
import socket
import threading
from types import TracebackType

log = logging.getLogger(__name__)

SEARCH_SPAN = 2000
"""How many ports from the wanted one are tried before any free port is taken."""

_lock = threading.Lock()
_claimed: set[tuple[str, int]] = set()


class PortClaim:
    """A port held for one endpoint: bound, not listening, not handed out again."""

    def __init__(self, host: str, probe: socket.socket) -> None:
        self.host = host
        self.port: int = probe.getsockname()[1]
        self._probe: socket.socket | None = probe

    @property
    def held(self) -> bool:
        return self._probe is not None

    def release(self) -> None:
        """Close the probe and let the port be claimed again (idempotent)."""
        with _lock:
            probe, self._probe = self._probe, None
            if probe is None:
                return
            probe.close()
            _claimed.discard((self.host, self.port))

    def __enter__(self) -> PortClaim:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"PortClaim({self.host}:{self.port}, {'held' if self.held else 'released'})"


def claim_port(host: str, wanted: int = 0) -> PortClaim:
    """Claim ``wanted`` or the first free port after it; any free port when ``wanted`` is 0
    or nothing in the next :data:`SEARCH_SPAN` ports is free."""
    with _lock:
        if wanted:
            for port in range(wanted, min(wanted + SEARCH_SPAN, 65536)):
                if (host, port) in _claimed:
                    continue
                probe = _bind(host, port)
                if probe is not None:
                    if port != wanted:
                        log.info("port %d is taken; using %d", wanted, port)
                    return _register(host, probe)
        # The kernel never offers a port that a socket is bound to: while a claim holds
        # its probe, no other claim, here or in another process, is given its port.
        probe = _bind(host, 0)
        if probe is None:
            raise OSError(f"no free TCP port on {host}")
        return _register(host, probe)


def _register(host: str, probe: socket.socket) -> PortClaim:
    claim = PortClaim(host, probe)
    _claimed.add((host, claim.port))
    return claim


def _bind(host: str, port: int) -> socket.socket | None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, port))
    except OSError:
        probe.close()
        return None
    return probe
