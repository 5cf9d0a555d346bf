"""The permission matrix, table-driven (pure: no database)."""

from __future__ import annotations

from collections.abc import Mapping, Set

import pytest

from cloud.db import ALL_SITES, PERMISSIONS, Action, Role, allowed

R, A, C, M, P, X = (
    Action.READ,
    Action.ACKNOWLEDGE,
    Action.COMMAND,
    Action.MANAGE,
    Action.PATROL,
    Action.ADMINISTER,
)

MATRIX = {
    Role.VIEWER: {R},
    Role.ENGINEER: {R, A, C},
    Role.SUPERVISOR: {R, A, C, M},
    Role.GUARD: {P},
    Role.ADMIN: {R, A, C, M, P, X},
}


def test_matrix_is_as_documented() -> None:
    assert {role: set(actions) for role, actions in PERMISSIONS.items()} == MATRIX


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(Action))
def test_site_role_applies_to_its_site_only(role: Role, action: Action) -> None:
    roles = {"tower-a": {role}}
    assert allowed(roles, action, "tower-a") == (action in MATRIX[role])
    assert not allowed(roles, action, "tower-b")
    assert not allowed(roles, action, None)  # cross-site actions need an all-sites role


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(Action))
def test_all_sites_role_applies_everywhere(role: Role, action: Action) -> None:
    roles = {ALL_SITES: {role}}
    for site in ("tower-a", "tower-b", None):
        assert allowed(roles, action, site) == (action in MATRIX[role])


@pytest.mark.parametrize(
    ("roles", "action", "site", "expected"),
    [
        ({}, R, "tower-a", False),
        ({"tower-a": {Role.GUARD}, ALL_SITES: {Role.VIEWER}}, R, "tower-a", True),
        ({"tower-a": {Role.GUARD}, ALL_SITES: {Role.VIEWER}}, P, "tower-b", False),
        ({"tower-a": {Role.GUARD, Role.ENGINEER}}, C, "tower-a", True),
        ({"tower-a": {Role.GUARD, Role.ENGINEER}}, P, "tower-a", True),
        ({"tower-a": {Role.SUPERVISOR}, "tower-b": {Role.VIEWER}}, M, "tower-b", False),
        ({"tower-a": {Role.ADMIN}}, X, None, False),  # a site admin is not a global admin
        ({ALL_SITES: {Role.ADMIN}}, X, None, True),
    ],
)
def test_combinations(
    roles: Mapping[str, Set[Role]], action: Action, site: str | None, expected: bool
) -> None:
    assert allowed(roles, action, site) is expected
