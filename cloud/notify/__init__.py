"""Notifications: a notifier interface with webhook (signed, retried) and log delivery.

- :class:`Notification`, :class:`Notifier` (``submit`` without blocking, ``close``),
  :class:`LogNotifier`, :class:`MultiNotifier` — :mod:`cloud.notify.base`
- :class:`WebhookNotifier`, :func:`sign`, :func:`verify` — :mod:`cloud.notify.webhook`
"""

from cloud.notify.base import LogNotifier, MultiNotifier, Notification, Notifier, render
from cloud.notify.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryOutcome,
    WebhookNotifier,
    WebhookSettings,
    sign,
    verify,
)

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryOutcome",
    "LogNotifier",
    "MultiNotifier",
    "Notification",
    "Notifier",
    "WebhookNotifier",
    "WebhookSettings",
    "render",
    "sign",
    "verify",
]
