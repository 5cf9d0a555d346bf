"""What a notification is, the :class:`Notifier` interface, and the log notifier.

A notifier takes a :class:`Notification` without blocking (``submit`` returns at once;
delivery happens elsewhere) and says whether it accepted it. Alarm raises, re-alarms and
escalations are submitted after their transaction commits, so nothing is announced that
the database does not hold.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

__all__ = ["LogNotifier", "MultiNotifier", "Notification", "Notifier", "render"]

log = logging.getLogger(__name__)

Kind = Literal["raised", "realarmed", "escalated", "sla_breach"]

_TEMPLATES: Final[Mapping[str, tuple[str, str]]] = {
    "raised": ("New {priority} alarm at {where}: {text}", "{where} 新{priority_zh}报警：{text}"),
    "realarmed": ("Still unacknowledged {priority} alarm at {where}: {text}",
                  "{where} 的{priority_zh}报警仍未确认：{text}"),
    "escalated": ("ESCALATED to level {level}: unacknowledged {priority} alarm at {where}: "
                  "{text}", "已升级至第{level}级：{where} 的{priority_zh}报警未确认：{text}"),
    "sla_breach": ("{text}", "{text}"),
}
_PRIORITY_ZH: Final = {"emergency": "紧急", "high": "高级", "medium": "中级", "low": "低级"}


@dataclass(frozen=True)
class Notification:
    """One announcement: ``alarm`` is the alarm as the API shows it; for ``sla_breach`` it
    is the work order's breach (``site``, ``work_order``, ``kind``, ``due``, ``text_en``,
    ``text_zh``), sent to webhooks under ``work_order``."""

    kind: Kind
    level: int
    ts_ms: int
    alarm: Mapping[str, Any] = field(default_factory=dict)

    def text(self, lang: Literal["en", "zh"]) -> str:
        return render(self, lang)

    def payload(self) -> dict[str, Any]:
        """The JSON body a webhook receives."""
        subject = "work_order" if self.kind == "sla_breach" else "alarm"
        return {"kind": self.kind, "level": self.level, "ts": self.ts_ms,
                "text_en": self.text("en"), "text_zh": self.text("zh"),
                subject: dict(self.alarm)}


def render(n: Notification, lang: Literal["en", "zh"]) -> str:
    """The notification's message in English or Simplified Chinese."""
    alarm = n.alarm
    where = "/".join(str(p) for p in (alarm.get("site"), alarm.get("gateway"),
                                      alarm.get("device")) if p)
    en, zh = _TEMPLATES[n.kind]
    priority = str(alarm.get("priority", ""))
    text = str(alarm.get("text_zh" if lang == "zh" else "text_en", ""))
    return (zh if lang == "zh" else en).format(
        priority=priority, priority_zh=_PRIORITY_ZH.get(priority, priority), where=where,
        text=text, level=n.level)


class Notifier(Protocol):
    """Delivers notifications; ``submit`` never blocks and returns whether it was accepted."""

    def submit(self, notification: Notification) -> bool: ...

    def close(self) -> None: ...


class LogNotifier:
    """Writes every notification to the log (English and Chinese), and keeps a count."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or log
        self.count = 0

    def submit(self, notification: Notification) -> bool:
        self.count += 1
        self.log.warning("%s | %s", notification.text("en"), notification.text("zh"))
        return True

    def close(self) -> None:
        return None


class MultiNotifier:
    """Submits to several notifiers; accepted when any accepted."""

    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self.notifiers = list(notifiers)

    def submit(self, notification: Notification) -> bool:
        results = [n.submit(notification) for n in self.notifiers]
        return any(results)

    def close(self) -> None:
        for notifier in self.notifiers:
            notifier.close()
