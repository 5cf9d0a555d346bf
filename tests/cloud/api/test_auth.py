"""Logging in, token expiry and tampering, the failed-login limit, and the API secret."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from cloud.api import ApiConfigError, create_app
from cloud.db import Database, get_user, grant_role, revoke_role, set_active, set_password
from cloud.security.passwords import PasswordHasher
from cloud.settings import ApiSettings, CloudSettings
from cloud.timeseries import SqliteStore
from tests.cloud.api.support import (
    PASSWORD,
    SECRET,
    T0_MS,
    AsUser,
    FakeClock,
    RecordingSender,
    assert_error,
    bearer,
    login,
)

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"


async def test_login_returns_a_token_its_expiry_and_the_roles(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(LOGIN, json={"username": "Engineer-A", "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"].startswith("v1.") and body["token"].count(".") == 2
    assert body["token_type"] == "bearer"
    assert body["expires"] == T0_MS + 3600 * 1000
    assert body["user"] == {
        "username": "engineer-a",
        "display_name": "",
        "roles": [{"role": "engineer", "site": "alpha"}],
    }
    me = await client.get(ME, headers=bearer(body["token"]))
    assert me.status_code == 200
    assert me.json()["username"] == "engineer-a"
    assert me.json()["token_expires"] == body["expires"]


async def test_admin_roles_are_for_every_site(client: httpx.AsyncClient) -> None:
    token = await login(client, "admin")
    me = (await client.get(ME, headers=bearer(token))).json()
    assert me["roles"] == [{"role": "admin", "site": None}]


async def test_wrong_password_and_unknown_user_get_the_same_answer(
    client: httpx.AsyncClient,
) -> None:
    wrong = await client.post(LOGIN, json={"username": "viewer-a", "password": "not it at all"})
    unknown = await client.post(LOGIN, json={"username": "nobody", "password": PASSWORD})
    invalid_name = await client.post(LOGIN, json={"username": "NO SUCH!", "password": PASSWORD})
    for response in (wrong, unknown, invalid_name):
        assert_error(response, 401, "invalid_credentials")
    assert wrong.json() == unknown.json() == invalid_name.json()


async def test_a_malformed_login_is_a_400_naming_the_fields_without_echoing_them(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(LOGIN, json={"username": "viewer-a", "pasword": "s3cret-typo"})
    error = assert_error(response, 400, "validation_failed")
    assert [d["path"] for d in error["details"]] == ["body.password"]
    assert "s3cret-typo" not in response.text
    not_json = await client.post(LOGIN, content=b"{", headers={"content-type": "application/json"})
    assert_error(not_json, 400, "validation_failed")


async def test_failed_logins_are_limited_then_allowed_again_after_the_window(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    bad = {"username": "viewer-a", "password": "wrong password!"}
    good = {"username": "viewer-a", "password": PASSWORD}
    for _ in range(3):  # login_attempts = 3 in a 60 s window
        assert_error(await client.post(LOGIN, json=bad), 401, "invalid_credentials")
        clock.advance(1)
    refused = await client.post(LOGIN, json=good)  # even the right password
    error = assert_error(refused, 429, "too_many_attempts")
    assert refused.headers["Retry-After"] == "57"  # the first failure leaves at +60 s
    assert error["details"] == {"retry_after": 57}
    # Another user from the same address is not affected; nor is the name's case a way out.
    assert (await client.post(LOGIN, json={**good, "username": "engineer-a"})).status_code == 200
    upper = await client.post(LOGIN, json={**good, "username": "VIEWER-A"})
    assert_error(upper, 429, "too_many_attempts")
    clock.advance(56)
    assert_error(await client.post(LOGIN, json=good), 429, "too_many_attempts")
    clock.advance(1)  # the first failure is now 60 s old: one attempt may go ahead
    assert (await client.post(LOGIN, json=good)).status_code == 200


async def test_a_successful_login_clears_the_failures(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    bad = {"username": "viewer-a", "password": "wrong password!"}
    for _ in range(2):
        assert_error(await client.post(LOGIN, json=bad), 401, "invalid_credentials")
    await login(client, "viewer-a")
    for _ in range(2):
        assert_error(await client.post(LOGIN, json=bad), 401, "invalid_credentials")
    await login(client, "viewer-a")


async def test_the_limit_is_per_client_address(app: FastAPI, client: httpx.AsyncClient) -> None:
    bad = {"username": "viewer-a", "password": "wrong password!"}
    for _ in range(3):
        await client.post(LOGIN, json=bad)
    assert_error(await client.post(LOGIN, json=bad), 429, "too_many_attempts")
    elsewhere = httpx.ASGITransport(app, client=("192.0.2.7", 40000))
    async with httpx.AsyncClient(transport=elsewhere, base_url="http://testserver") as other:
        assert_error(await other.post(LOGIN, json=bad), 401, "invalid_credentials")


async def test_a_token_expires(client: httpx.AsyncClient, clock: FakeClock) -> None:
    token = await login(client, "viewer-a")
    clock.advance(3599.999)
    assert (await client.get(ME, headers=bearer(token))).status_code == 200
    clock.advance(0.001)
    response = await client.get(ME, headers=bearer(token))
    assert_error(response, 401, "token_expired")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="token_expired"'


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _payload(token: str) -> dict[str, object]:
    part = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


async def test_tampered_and_malformed_tokens_are_refused(client: httpx.AsyncClient) -> None:
    token = await login(client, "viewer-a")
    admin = await login(client, "admin")
    version, _, signature = token.split(".")
    claims = _payload(token)
    forged = [
        # another user id under the viewer's signature
        f"{version}.{_b64(json.dumps({**claims, 'uid': _payload(admin)['uid']}).encode())}"
        f".{signature}",
        # a longer life
        f"{version}.{_b64(json.dumps({**claims, 'exp': 2**53}).encode())}.{signature}",
        # one signature character changed
        token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1],
        # the admin's signature on the viewer's payload
        f"{version}.{token.split('.')[1]}.{admin.split('.')[2]}",
        "v2" + token[2:],
        token + ".extra",
        "not-a-token",
        "v1.%%%.###",
        "v1." + "A" * 3000 + ".sig",
    ]
    for bad in forged:
        response = await client.get(ME, headers=bearer(bad))
        assert_error(response, 401, "invalid_token")
    assert (await client.get(ME, headers=bearer(token))).status_code == 200


async def test_missing_or_non_bearer_credentials_are_401(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic dmlld2VyLWE6eA=="}, {"Authorization": ""}):
        response = await client.get(ME, headers=headers)
        assert_error(response, 401, "unauthenticated")
        assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_new_password_ends_the_old_tokens(
    client: httpx.AsyncClient, database: Database, hasher: PasswordHasher
) -> None:
    token = await login(client, "viewer-a")
    with database.transaction() as session:
        set_password(session, get_user(session, "viewer-a"), "a brand new password", hasher=hasher)
    assert_error(await client.get(ME, headers=bearer(token)), 401, "invalid_token")
    await login(client, "viewer-a", "a brand new password")


async def test_a_disabled_user_can_do_nothing(
    client: httpx.AsyncClient, database: Database
) -> None:
    token = await login(client, "viewer-a")
    with database.transaction() as session:
        set_active(session, get_user(session, "viewer-a"), False)
    assert_error(await client.get(ME, headers=bearer(token)), 401, "invalid_token")
    refused = await client.post(LOGIN, json={"username": "viewer-a", "password": PASSWORD})
    assert_error(refused, 401, "invalid_credentials")


async def test_role_changes_apply_to_existing_tokens(
    as_user: AsUser, database: Database
) -> None:
    viewer = await as_user("viewer-a")
    assert (await viewer.get("/api/v1/sites/alpha/gateways")).status_code == 200
    assert_error(await viewer.get("/api/v1/sites/beta/gateways"), 403, "forbidden")
    with database.transaction() as session:
        user = get_user(session, "viewer-a")
        revoke_role(session, user, "viewer", "alpha")
        grant_role(session, user, "viewer", "beta")
    assert_error(await viewer.get("/api/v1/sites/alpha/gateways"), 403, "forbidden")
    assert (await viewer.get("/api/v1/sites/beta/gateways")).status_code == 200


# -- the secret -----------------------------------------------------------------------
def _app(api: ApiSettings, database: Database, store: SqliteStore, clock: FakeClock,
         hasher: PasswordHasher) -> FastAPI:
    return create_app(CloudSettings(api=api), db=database, store=store,
                      commands=RecordingSender(), clock=clock, hasher=hasher)


async def test_replicas_with_the_same_secret_accept_each_others_tokens(
    monkeypatch: pytest.MonkeyPatch, database: Database, store: SqliteStore, clock: FakeClock,
    hasher: PasswordHasher, client: httpx.AsyncClient,
) -> None:
    monkeypatch.setenv("TW_TEST_API_SECRET", SECRET)
    token = await login(client, "viewer-a")  # signed with the secret file's secret
    replica = _app(ApiSettings(secret_env="TW_TEST_API_SECRET"), database, store, clock, hasher)
    transport = httpx.ASGITransport(replica)
    async with httpx.AsyncClient(transport=transport, base_url="http://replica") as other:
        assert (await other.get(ME, headers=bearer(token))).status_code == 200


async def test_without_a_secret_one_is_made_up_and_the_log_says_so(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, database: Database,
    store: SqliteStore, clock: FakeClock, hasher: PasswordHasher, client: httpx.AsyncClient,
) -> None:
    monkeypatch.delenv("TW_API_SECRET", raising=False)
    token = await login(client, "viewer-a")
    with caplog.at_level(logging.WARNING, logger="cloud.api.auth"):
        fresh = _app(ApiSettings(), database, store, clock, hasher)
    assert "will not survive a restart" in caplog.text
    transport = httpx.ASGITransport(fresh)
    async with httpx.AsyncClient(transport=transport, base_url="http://fresh") as other:
        assert_error(await other.get(ME, headers=bearer(token)), 401, "invalid_token")
        assert (await other.get(ME, headers=bearer(await login(other, "viewer-a")))).is_success


def test_unusable_secrets_stop_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: Database, store: SqliteStore,
    clock: FakeClock, hasher: PasswordHasher,
) -> None:
    monkeypatch.delenv("TW_NO_SUCH_SECRET", raising=False)
    short = tmp_path / "short"
    short.write_text("too short", encoding="utf-8")
    cases = {
        "TW_NO_SUCH_SECRET": ApiSettings(secret_env="TW_NO_SUCH_SECRET"),
        "at least 32 bytes": ApiSettings(secret_file=short),
        "missing": ApiSettings(secret_file=tmp_path / "missing"),
    }
    for message, api in cases.items():
        with pytest.raises(ApiConfigError, match=message):
            _app(api, database, store, clock, hasher)
