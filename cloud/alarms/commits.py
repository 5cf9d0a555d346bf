"""Work that waits for a session's transaction to commit (notifications, stream wakes).

:func:`after_commit` queues a callback on the session: it runs once the outermost
transaction commits, with the items queued under its key in that transaction. A rollback
of the transaction drops them; the rollback or release of a savepoint (``begin_nested``)
does neither, because SQLAlchemy reports a savepoint's release as a commit too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

__all__ = ["after_commit"]

_HOOKS: Final = "tw_after_commit"
Hook = Callable[[list[Any]], None]


def after_commit(session: Session, key: str, callback: Hook) -> list[Any]:
    """The list of items ``callback`` gets when the transaction commits (one callback per
    ``key`` and transaction: the first one given); append to it."""
    hooks: dict[str, tuple[Hook, list[Any]]] | None = session.info.get(_HOOKS)
    if hooks is None:
        hooks = session.info[_HOOKS] = {}
        event.listen(session, "after_commit", _committed)
        event.listen(session, "after_soft_rollback", _rolled_back)
    entry = hooks.get(key)
    if entry is None:
        entry = hooks[key] = (callback, [])
    return entry[1]


def _committed(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint was released, not the transaction
        return
    hooks: dict[str, tuple[Hook, list[Any]]] = session.info.get(_HOOKS, {})
    due = list(hooks.values())
    hooks.clear()
    for callback, items in due:
        callback(items)


def _rolled_back(session: Session, previous: SessionTransaction) -> None:
    if not previous.nested:
        session.info.get(_HOOKS, {}).clear()
