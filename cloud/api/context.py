"""What every request handler reaches through ``app.state.context``: the stores, the
command sender, the clock, the token signer, the login limiter and the metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sqlalchemy.orm import Session

from cloud.api.auth import LoginLimiter, TokenSigner
from cloud.api.metrics import ApiMetrics
from cloud.db.engine import Database
from cloud.security.passwords import PasswordHasher
from cloud.settings import ApiSettings
from cloud.timeseries.base import TimeSeriesStore

__all__ = ["ApiContext", "CommandSender", "Readiness"]

T = TypeVar("T")


class CommandSender(Protocol):
    """Publishes an encoded :class:`~towerwatch.contract.Command` to a gateway.

    The implementation publishes ``payload`` on ``command_topic(site, gateway, request_id)``
    at QoS 1 and returns once the broker has it; it raises (any exception) when it cannot,
    and it returns or raises within a bounded time (the API request waits for it). After
    an exception the API records the command as ``failed`` ("not sent"), so a sender must
    not raise for a message it may still deliver.
    """

    async def send(self, site: str, gateway: str, request_id: str, payload: bytes) -> None: ...


@dataclass
class Readiness:
    """The last readiness verdict, so a change is logged once rather than every probe."""

    ready: bool | None = None


@dataclass(frozen=True)
class ApiContext:
    settings: ApiSettings
    db: Database
    store: TimeSeriesStore
    commands: CommandSender
    clock: Callable[[], float]
    """Seconds since the epoch (``time.time``); tests inject their own."""
    tokens: TokenSigner
    limiter: LoginLimiter
    metrics: ApiMetrics
    hasher: PasswordHasher
    readiness: Readiness = field(default_factory=Readiness)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one transaction on a worker thread (sessions are synchronous and
        never shared between threads); committed if it returns, rolled back if it raises."""
        return await self.db.run(work)
