"""Webhook delivery against a real HTTP server on a loopback port: signed payloads that
verify, retry with backoff after 500, give up on 4xx, a bounded queue; and the texts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cloud.notify import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    LogNotifier,
    Notification,
    WebhookNotifier,
    WebhookSettings,
    verify,
)

SECRET = b"webhook-secret-for-tests"
NOW_MS = 1_749_996_000_000


class Receiver(ThreadingHTTPServer):
    """Answers each POST with the next status of ``statuses`` (then 200), keeping requests."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.statuses: list[int] = []
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        with self.server.lock:
            status = self.server.statuses.pop(0) if self.server.statuses else 200
            self.server.requests.append((dict(self.headers.items()), body, status))
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def note(kind: str = "escalated", level: int = 1, alarm_id: int = 7) -> Notification:
    return Notification(kind, level, NOW_MS, {  # type: ignore[arg-type]
        "id": alarm_id, "site": "alpha", "gateway": "gw1", "device": "lift-1",
        "priority": "emergency", "text_en": "PASSENGER TRAPPED", "text_zh": "电梯困人"})


def notifier(receiver: Receiver, **settings: Any) -> WebhookNotifier:
    config = WebhookSettings(url=receiver.url, backoff=0.05, **settings)
    return WebhookNotifier(config, SECRET, clock=lambda: NOW_MS / 1000)


def test_payload_is_signed_and_verifies(receiver: Receiver) -> None:
    hook = notifier(receiver)
    try:
        assert hook.submit(note())
        assert hook.wait_idle(10)
    finally:
        hook.close()
    (headers, body, _), = receiver.requests
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered[TIMESTAMP_HEADER.lower()]
    signature = lowered[SIGNATURE_HEADER.lower()]
    assert timestamp == str(NOW_MS) and signature.startswith("sha256=")
    assert verify(SECRET, timestamp, body, signature, now_ms=NOW_MS)
    assert not verify(SECRET, timestamp, body + b" ", signature, now_ms=NOW_MS)
    assert not verify(b"other", timestamp, body, signature, now_ms=NOW_MS)
    assert not verify(SECRET, timestamp, body, signature, now_ms=NOW_MS + 600_000)
    payload = json.loads(body)
    assert payload["kind"] == "escalated" and payload["level"] == 1
    assert payload["text_zh"] == "已升级至第1级：alpha/gw1/lift-1 的紧急报警未确认：电梯困人"
    assert payload["alarm"]["id"] == 7
    assert hook.delivered == 1 and hook.outcomes[-1].ok


def test_500_is_retried_with_backoff_and_4xx_is_not(receiver: Receiver) -> None:
    receiver.statuses = [500, 503, 200, 400]
    hook = notifier(receiver, attempts=4)
    try:
        hook.submit(note(alarm_id=1))
        hook.submit(note(alarm_id=2))
        assert hook.wait_idle(10)
    finally:
        hook.close()
    assert [status for _, _, status in receiver.requests] == [500, 503, 200, 400]
    first, second = hook.outcomes
    assert (first.alarm_id, first.ok, first.attempts) == (1, True, 3)
    assert (second.alarm_id, second.ok, second.attempts, second.status) == (2, False, 1, 400)
    assert (hook.delivered, hook.failed) == (1, 1)


def test_gives_up_after_the_last_attempt_and_on_a_closed_port(receiver: Receiver) -> None:
    receiver.statuses = [500] * 3
    hook = notifier(receiver, attempts=3)
    try:
        hook.submit(note())
        assert hook.wait_idle(10)
    finally:
        hook.close()
    assert len(receiver.requests) == 3 and hook.failed == 1
    receiver.shutdown()
    receiver.server_close()
    dead = notifier(receiver, attempts=2)
    try:
        dead.submit(note())
        assert dead.wait_idle(10)
    finally:
        dead.close()
    outcome = dead.outcomes[-1]
    assert (outcome.ok, outcome.attempts, outcome.status) == (False, 2, None)
    assert outcome.error is not None and "ConnectError" in outcome.error


def test_the_queue_is_bounded_and_levels_filter(receiver: Receiver) -> None:
    gate = threading.Event()
    receiver.statuses = []
    original = _Handler.do_POST

    def slow(self: _Handler) -> None:
        gate.wait(10)
        original(self)

    _Handler.do_POST = slow  # type: ignore[method-assign]
    hook = notifier(receiver, queue_size=2, min_level=1)
    try:
        assert not hook.submit(note(level=0))  # below min_level
        accepted = [hook.submit(note(alarm_id=n)) for n in range(5)]
        assert accepted.count(False) >= 2 and hook.dropped == accepted.count(False)
        gate.set()
        assert hook.wait_idle(10)
    finally:
        _Handler.do_POST = original  # type: ignore[method-assign]
        hook.close()
    assert hook.delivered == accepted.count(True)


def test_log_notifier_writes_both_languages(caplog: pytest.LogCaptureFixture) -> None:
    log = LogNotifier()
    assert log.submit(note("raised", 0))
    assert "New emergency alarm at alpha/gw1/lift-1: PASSENGER TRAPPED" in caplog.text
    assert "alpha/gw1/lift-1 新紧急报警：电梯困人" in caplog.text
