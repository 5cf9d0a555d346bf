"""Users, the first admin, login, role assignments and ``can``."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cloud.db import (
    ALL_SITES,
    Action,
    Database,
    InvalidCredentials,
    Role,
    RoleAssignment,
    UnknownSite,
    UnknownUser,
    User,
    UserExists,
    WeakPassword,
    authenticate,
    can,
    check_password,
    create_admin,
    create_user,
    get_user,
    grant_role,
    normalize_username,
    revoke_role,
    roles_for,
    set_active,
    set_password,
    upsert_site,
)
from cloud.security.passwords import PasswordHasher

T0 = 1_767_225_600_000
PASSWORD = "Tw-very-secret-1"


def test_create_admin(db: Database, hasher: PasswordHasher) -> None:
    with db.transaction() as session:
        admin = create_admin(session, " Root ", PASSWORD, now_ms=T0, hasher=hasher)
        assert (admin.username, admin.active, admin.created_ms) == ("root", True, T0)
        assert admin.password_hash != PASSWORD and hasher.verify(admin.password_hash, PASSWORD)
    with db.transaction() as session:
        admin = get_user(session, "ROOT")
        assert roles_for(admin) == {ALL_SITES: {Role.ADMIN}}
        assert can(admin, Action.ADMINISTER, None)
        assert can(admin, "command", "any-site")


def test_create_admin_refuses_an_existing_user(db: Database, hasher: PasswordHasher) -> None:
    with db.transaction() as session:
        create_user(session, "root", PASSWORD, hasher=hasher)
    with pytest.raises(UserExists, match="root"), db.transaction() as session:
        create_admin(session, "Root", "another-password-2", hasher=hasher)
    with db.transaction() as session:
        user = get_user(session, "root")
        assert roles_for(user) == {}  # not silently promoted
        assert hasher.verify(user.password_hash, PASSWORD)  # nor its password reset


@pytest.mark.parametrize(
    ("username", "password", "error"),
    [
        ("alice", "short", WeakPassword),
        ("alice", "x" * 1025, WeakPassword),
        ("alice-admin", "Alice-Admin", WeakPassword),
        ("", PASSWORD, ValueError),
        ("has space", PASSWORD, ValueError),
        ("x" * 65, PASSWORD, ValueError),
    ],
)
def test_password_and_username_policy(username: str, password: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        check_password(username, password)
    assert normalize_username(" Mixed.Case@site ") == "mixed.case@site"


def test_create_user_applies_the_policy(db: Database, hasher: PasswordHasher) -> None:
    def create(password: str) -> None:
        with db.transaction() as session:
            create_user(session, "alice", password, hasher=hasher)

    with pytest.raises(WeakPassword):
        create("short")
    create("long-enough-1")


def test_authenticate(db: Database, hasher: PasswordHasher) -> None:
    with db.transaction() as session:
        create_user(session, "alice", PASSWORD, display_name="Alice", hasher=hasher)
    with db.transaction() as session:
        assert authenticate(session, "Alice", PASSWORD, hasher=hasher).display_name == "Alice"
        for name, password in [("alice", "wrong-password"), ("bob", PASSWORD), ("", PASSWORD)]:
            with pytest.raises(InvalidCredentials, match="invalid username or password"):
                authenticate(session, name, password, hasher=hasher)
        set_active(session, get_user(session, "alice"), False)
        with pytest.raises(InvalidCredentials):
            authenticate(session, "alice", PASSWORD, hasher=hasher)
    with pytest.raises(UnknownUser), db.transaction() as session:
        get_user(session, "bob")


def test_login_rehashes_with_new_parameters(db: Database, hasher: PasswordHasher) -> None:
    with db.transaction() as session:
        create_user(session, "alice", PASSWORD, hasher=hasher)
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    with db.transaction() as session:
        authenticate(session, "alice", PASSWORD, hasher=stronger)
    with db.transaction() as session:
        stored = get_user(session, "alice").password_hash
        assert not stronger.needs_rehash(stored) and stronger.verify(stored, PASSWORD)
        set_password(session, get_user(session, "alice"), "a-new-password-3", hasher=hasher)
    with db.transaction() as session:
        authenticate(session, "alice", "a-new-password-3", hasher=hasher)


def test_roles_per_site(db: Database, hasher: PasswordHasher) -> None:
    with db.transaction() as session:
        upsert_site(session, "tower-a")
        upsert_site(session, "tower-b")
        user = create_user(session, "eng", PASSWORD, hasher=hasher)
        grant_role(session, user, Role.ENGINEER, "tower-a")
        grant_role(session, user, "engineer", "tower-a")  # idempotent
        grant_role(session, user, Role.GUARD, "tower-b")
        grant_role(session, user, Role.VIEWER)
        with pytest.raises(UnknownSite):
            grant_role(session, user, Role.VIEWER, "tower-z")
        with pytest.raises(ValueError, match="janitor"):
            grant_role(session, user, "janitor")
    with db.transaction() as session:
        user = get_user(session, "eng")
        assert roles_for(user) == {
            "tower-a": {Role.ENGINEER},
            "tower-b": {Role.GUARD},
            ALL_SITES: {Role.VIEWER},
        }
        table = [
            (Action.COMMAND, "tower-a", True),
            (Action.COMMAND, "tower-b", False),
            (Action.PATROL, "tower-b", True),
            (Action.PATROL, "tower-a", False),
            (Action.READ, "tower-c", True),
            (Action.MANAGE, "tower-a", False),
            (Action.ADMINISTER, None, False),
        ]
        assert [can(user, a, s) for a, s, _ in table] == [e for _, _, e in table]
        assert revoke_role(session, user, Role.ENGINEER, "tower-a")
        assert not revoke_role(session, user, Role.ENGINEER, "tower-a")
    with db.transaction() as session:
        user = get_user(session, "eng")
        assert not can(user, Action.COMMAND, "tower-a")
        set_active(session, user, False)
        assert roles_for(user) == {} and not can(user, Action.READ, "tower-a")
        assert len(list(session.scalars(select(RoleAssignment)))) == 2


def test_all_sites_roles_are_unique_in_the_database(db: Database, hasher: PasswordHasher) -> None:
    """NULL site ids would slip through a plain unique constraint: the partial index holds."""
    with db.transaction() as session:
        user_id = create_user(session, "eng", PASSWORD, hasher=hasher).id

    def add_twice() -> None:
        with db.transaction() as session:
            session.add_all([RoleAssignment(user_id=user_id, role="viewer") for _ in range(2)])

    with pytest.raises(IntegrityError):
        add_twice()


def test_deleting_a_user_deletes_their_roles(db: Database, hasher: PasswordHasher) -> None:
    with db.transaction() as session:
        create_admin(session, "root", PASSWORD, hasher=hasher)
    with db.transaction() as session:
        session.delete(get_user(session, "root"))
    with db.transaction() as session:
        assert list(session.scalars(select(User))) == []
        assert list(session.scalars(select(RoleAssignment))) == []
