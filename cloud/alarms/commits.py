"""What lives as long as a session's transaction: work that waits for its commit
(notifications, stream wakes) and a memo of what it has looked up.

:func:`after_commit` queues a callback on the session: it runs once the outermost
transaction commits, with the items queued under its key in that transaction. A rollback
of the transaction drops them; the rollback or release of a savepoint (``begin_nested``)
does neither, because SQLAlchemy reports a savepoint's release as a commit too.

:func:`transaction_memo` is a dict that lives until the transaction ends (commit or
rollback). Lookups of facts that a transaction raising alarms does not change (a device's
profile, a site's alarm policy and SLA terms, the assets a device watches) keep their
answers there, so a batch of events asks the database once, not once per event (the
session's identity map holds rows only weakly, and not at all a row that is absent).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

__all__ = ["after_commit", "forget", "transaction_memo"]

_HOOKS: Final = "tw_after_commit"
_MEMO: Final = "tw_transaction_memo"
Hook = Callable[[list[Any]], None]


def after_commit(session: Session, key: str, callback: Hook) -> list[Any]:
    """The list of items ``callback`` gets when the transaction commits (one callback per
    ``key`` and transaction: the first one given); append to it."""
    hooks = _hooks(session)
    entry = hooks.get(key)
    if entry is None:
        entry = hooks[key] = (callback, [])
    return entry[1]


def transaction_memo(session: Session) -> dict[Any, Any]:
    """A dict kept until the session's transaction commits or rolls back."""
    memo: dict[Any, Any] | None = session.info.get(_MEMO)
    if memo is None:
        _hooks(session)
        memo = session.info[_MEMO] = {}
    return memo


def forget(session: Session, kind: str) -> None:
    """Drop the memo's answers of one kind (keys ``(kind, …)``): the transaction has
    changed what they were read from."""
    memo: dict[Any, Any] = session.info.get(_MEMO, {})
    for key in [k for k in memo if isinstance(k, tuple) and k and k[0] == kind]:
        del memo[key]


def _hooks(session: Session) -> dict[str, tuple[Hook, list[Any]]]:
    hooks: dict[str, tuple[Hook, list[Any]]] | None = session.info.get(_HOOKS)
    if hooks is None:
        hooks = session.info[_HOOKS] = {}
        event.listen(session, "after_commit", _committed)
        event.listen(session, "after_soft_rollback", _rolled_back)
    return hooks


def _committed(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint was released, not the transaction
        return
    session.info.pop(_MEMO, None)
    hooks: dict[str, tuple[Hook, list[Any]]] = session.info.get(_HOOKS, {})
    due = list(hooks.values())
    hooks.clear()
    for callback, items in due:
        callback(items)


def _rolled_back(session: Session, previous: SessionTransaction) -> None:
    if not previous.nested:
        session.info.get(_HOOKS, {}).clear()
        session.info.pop(_MEMO, None)
