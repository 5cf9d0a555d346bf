"""Roles, actions and the permission matrix (pure; no database).

A user holds roles per site, or for all sites (:data:`ALL_SITES`, stored as a ``NULL``
site). An action is allowed on a site when any role held for that site or for all sites
grants it. Actions that are not about one site (managing users) are checked with
``site=None`` and only roles held for all sites count. Inactive users may do nothing.

=============  ======  ========  ==========  =====  =====
action         viewer  engineer  supervisor  guard  admin
=============  ======  ========  ==========  =====  =====
read             ✓        ✓          ✓                ✓
acknowledge               ✓          ✓                ✓
command                   ✓          ✓                ✓
manage                               ✓                ✓
patrol                                         ✓      ✓
administer                                            ✓
=============  ======  ========  ==========  =====  =====

- ``read``: sites, gateways, devices, points, telemetry, alarms, work orders, reports.
- ``acknowledge``: acknowledge alarms, record outcomes, progress assigned work orders.
- ``command``: writes and other commands to the edge (the edge still checks its allow-list).
- ``manage``: shelve alarms, assign and close work orders, SLA policies, patrol routes and
  schedules, site settings, the site's audit log.
- ``patrol``: start tours, scan checkpoints, report patrol findings (guards see only that).
- ``administer``: users, role assignments, gateway registry, dead letters, everything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from enum import StrEnum
from typing import Final

__all__ = ["ALL_SITES", "PERMISSIONS", "Action", "Role", "allowed"]

ALL_SITES: Final = "*"
"""Key of :func:`cloud.db.users.roles_for` for roles held on every site."""


class Role(StrEnum):
    VIEWER = "viewer"
    ENGINEER = "engineer"
    SUPERVISOR = "supervisor"
    GUARD = "guard"
    ADMIN = "admin"


class Action(StrEnum):
    READ = "read"
    ACKNOWLEDGE = "acknowledge"
    COMMAND = "command"
    MANAGE = "manage"
    PATROL = "patrol"
    ADMINISTER = "administer"


_VIEWER: Final = frozenset({Action.READ})
_ENGINEER: Final = _VIEWER | {Action.ACKNOWLEDGE, Action.COMMAND}
_SUPERVISOR: Final = _ENGINEER | {Action.MANAGE}

PERMISSIONS: Final[Mapping[Role, frozenset[Action]]] = {
    Role.VIEWER: _VIEWER,
    Role.ENGINEER: _ENGINEER,
    Role.SUPERVISOR: _SUPERVISOR,
    Role.GUARD: frozenset({Action.PATROL}),
    Role.ADMIN: frozenset(Action),
}
"""What each role may do (the table in this module's docstring)."""


def allowed(roles: Mapping[str, Set[Role]], action: Action, site: str | None) -> bool:
    """Whether ``roles`` (site or :data:`ALL_SITES` → roles) allow ``action`` on ``site``.

    ``site=None`` asks about an action that spans sites: only all-sites roles count.
    """
    scopes = [ALL_SITES] if site is None else [ALL_SITES, site]
    return any(action in PERMISSIONS[role] for scope in scopes for role in roles.get(scope, ()))
