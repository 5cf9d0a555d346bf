"""Errors of the alarm lifecycle.

::

    AlarmError
    ├── UnknownAlarm        no alarm with this id (on this site)
    ├── InvalidTransition   the alarm's state does not allow this action (acknowledge twice)
    ├── ShelveRefused       a shelve without a reason, past the longest allowed, or not open
    └── InvalidAlarm        raise_alarm was given a bad field (named in ``field``)
"""

from __future__ import annotations


class AlarmError(Exception):
    """Base of every error the alarm lifecycle raises on purpose."""


class UnknownAlarm(AlarmError):
    def __init__(self, alarm_id: int) -> None:
        self.alarm_id = alarm_id
        super().__init__(f"no alarm {alarm_id}")


class InvalidTransition(AlarmError):
    def __init__(self, alarm_id: int, action: str, state: str) -> None:
        self.alarm_id, self.action, self.state = alarm_id, action, state
        super().__init__(f"alarm {alarm_id} is {state}: cannot {action} it")


class ShelveRefused(AlarmError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class InvalidAlarm(AlarmError, ValueError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")
