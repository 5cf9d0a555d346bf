"""An alarm as the API, the event stream and notifications show it (plain JSON types)."""

from __future__ import annotations

from typing import Any

from cloud.alarms.tables import SITE_LEVEL, Alarm

__all__ = ["describe"]


def describe(alarm: Alarm) -> dict[str, Any]:
    """The alarm as the API and notifications show it (site-level parts are ``None``)."""
    return {
        "id": alarm.id, "site": alarm.site_id,
        "gateway": None if alarm.gateway_id == SITE_LEVEL else alarm.gateway_id,
        "device": None if alarm.device_id == SITE_LEVEL else alarm.device_id,
        "name": alarm.name, "source": alarm.source, "category": alarm.category,
        "priority": alarm.priority, "state": alarm.state, "active": alarm.active,
        "open": alarm.closed_ms is None, "text_en": alarm.text_en, "text_zh": alarm.text_zh,
        "detail": dict(alarm.detail or {}), "raised": alarm.raised_ms,
        "last_active": alarm.last_active_ms, "changed": alarm.changed_ms,
        "cleared": alarm.cleared_ms, "closed": alarm.closed_ms,
        "occurrences": alarm.occurrences, "acked_by": alarm.acked_by,
        "acked": alarm.acked_ms, "ack_comment": alarm.ack_comment,
        "shelved": alarm.shelved_until_ms is not None, "shelved_by": alarm.shelved_by,
        "shelve_reason": alarm.shelve_reason, "shelved_until": alarm.shelved_until_ms,
        "suppressed": alarm.suppressed_reason, "out_of_service": alarm.out_of_service,
        "escalation_level": alarm.escalation_level,
        "next_realarm": alarm.next_realarm_ms, "next_escalation": alarm.next_escalation_ms,
    }
