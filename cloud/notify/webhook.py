"""Webhook delivery: signed JSON POSTs, retried with exponential backoff, from a bounded queue.

Every request carries::

    X-Towerwatch-Timestamp: <UTC epoch ms>
    X-Towerwatch-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

A receiver recomputes the HMAC over the raw body with :func:`verify` and rejects old
timestamps (replays). Delivery runs on one thread per webhook: ``submit`` puts the
notification on a queue of ``queue_size`` and returns at once (``False``, counted and
logged, when the queue is full). A 2xx answer is delivered; 408, 429, 5xx and connection
errors are retried after ``backoff * 2**attempt`` seconds (capped at ``backoff_max``) up to
``attempts`` tries; other answers fail at once. Each outcome is logged and kept in
``outcomes`` (the latest 100).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final

import httpx
from pydantic import BaseModel, ConfigDict, Field

from cloud.notify.base import Notification
from device_profiles.durations import Duration

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryOutcome",
    "WebhookNotifier",
    "WebhookSettings",
    "sign",
    "verify",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "X-Towerwatch-Signature"
TIMESTAMP_HEADER: Final = "X-Towerwatch-Timestamp"
_RETRY_STATUS: Final = frozenset({408, 429})
_OUTCOMES_KEPT: Final = 100


class WebhookSettings(BaseModel):
    """One webhook: where, the secret's file or environment variable, what it receives."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    secret_file: Path | None = None
    secret_env: str | None = None
    min_level: Annotated[int, Field(ge=0)] = 0
    """Only notifications at this escalation level or higher (0: everything)."""
    timeout: Duration = 5.0
    attempts: Annotated[int, Field(ge=1, le=20)] = 5
    backoff: Duration = 1.0
    backoff_max: Duration = 60.0
    queue_size: Annotated[int, Field(ge=1, le=100_000)] = 1000


def sign(secret: bytes, timestamp_ms: int, body: bytes) -> str:
    """The signature header value of ``body`` sent at ``timestamp_ms``."""
    mac = hmac.new(secret, str(timestamp_ms).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str, *, now_ms: int,
           tolerance_ms: int = 300_000) -> bool:
    """Whether ``signature`` is right for ``body`` and ``timestamp`` is recent enough."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now_ms - ts) > tolerance_ms:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


@dataclass(frozen=True)
class DeliveryOutcome:
    kind: str
    alarm_id: object
    ok: bool
    attempts: int
    status: int | None
    error: str | None


class WebhookNotifier:
    """Delivers notifications to one URL on a thread of its own (see the module docstring).

    ``clock`` gives seconds (timestamps), ``sleep(seconds, stop)`` waits between retries
    and returns early when ``stop`` is set; tests inject both.
    """

    def __init__(self, settings: WebhookSettings, secret: str | bytes, *,
                 clock: Callable[[], float] = time.time,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not secret:
            raise ValueError(f"webhook {settings.url}: the signing secret is empty")
        self.settings = settings
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.clock = clock
        self.delivered = self.failed = self.dropped = 0
        self.outcomes: deque[DeliveryOutcome] = deque(maxlen=_OUTCOMES_KEPT)
        self._queue: queue.Queue[Notification | None] = queue.Queue(settings.queue_size)
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._busy = 0
        self._client = httpx.Client(timeout=settings.timeout, transport=transport)
        self._thread = threading.Thread(target=self._run, name=f"webhook {settings.url}",
                                        daemon=True)
        self._thread.start()

    def submit(self, notification: Notification) -> bool:
        if notification.level < self.settings.min_level:
            return False
        try:
            with self._idle:
                self._queue.put_nowait(notification)
                self._busy += 1
        except queue.Full:
            self.dropped += 1
            log.warning("webhook %s: queue full (%d), notification dropped", self.settings.url,
                        self.settings.queue_size)
            return False
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every submitted notification has been delivered or given up."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout=self.settings.timeout + 1)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            try:
                self._deliver(item)
            except Exception:  # never let one notification end the thread
                log.exception("webhook %s: delivery crashed", self.settings.url)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _deliver(self, notification: Notification) -> None:
        s = self.settings
        body = json.dumps(notification.payload(), ensure_ascii=False,
                          separators=(",", ":")).encode()
        status: int | None = None
        error: str | None = None
        attempt = 0
        while attempt < s.attempts and not self._stop.is_set():
            attempt += 1
            ts = int(self.clock() * 1000)
            headers = {"content-type": "application/json", TIMESTAMP_HEADER: str(ts),
                       SIGNATURE_HEADER: sign(self.secret, ts, body)}
            try:
                response = self._client.post(s.url, content=body, headers=headers)
                status, error = response.status_code, None
                if response.is_success:
                    return self._outcome(notification, True, attempt, status, None)
                retry = status in _RETRY_STATUS or status >= 500
            except httpx.HTTPError as exc:
                status, error, retry = None, f"{type(exc).__name__}: {exc}", True
            if not retry:
                break
            if attempt < s.attempts:
                self._stop.wait(min(s.backoff * 2 ** (attempt - 1), s.backoff_max))
        return self._outcome(notification, False, attempt, status, error)

    def _outcome(self, n: Notification, ok: bool, attempts: int, status: int | None,
                 error: str | None) -> None:
        outcome = DeliveryOutcome(n.kind, n.alarm.get("id"), ok, attempts, status, error)
        self.outcomes.append(outcome)
        if ok:
            self.delivered += 1
            log.info("webhook %s: %s of alarm %s delivered (attempt %d)", self.settings.url,
                     n.kind, outcome.alarm_id, attempts)
        else:
            self.failed += 1
            log.warning("webhook %s: %s of alarm %s failed after %d attempt(s): %s",
                        self.settings.url, n.kind, outcome.alarm_id, attempts,
                        error or f"HTTP {status}")
