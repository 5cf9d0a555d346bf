"""Who may see what: no token → 401 (but for the open routes), other sites → 403."""

from __future__ import annotations

import re

import httpx

from tests.cloud.api.support import AsUser, assert_error

OPEN = {"/healthz", "/readyz", "/metrics", "/api/v1/auth/login"}
PARAMS = {"site": "alpha", "gateway": "gw1", "device": "pump-1", "point": "pressure",
          "request_id": "0123456789abcdef", "action": "assign", "checkpoint": "cp-1",
          "category": "elevator", "priority": "p1"}


def _param(name: str) -> str:
    """A plausible value for a path parameter (numeric ids for ``*_id``)."""
    return PARAMS.get(name) or ("1" if name.endswith("_id") else name.replace("_", "-"))


async def test_every_route_but_the_open_ones_needs_a_token(client: httpx.AsyncClient) -> None:
    schema = await client.get("/api/v1/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert len(paths) >= 20
    checked = 0
    for template, operations in paths.items():
        path = re.sub(r"\{(\w+)\}", lambda m: _param(m.group(1)), template)
        for method in operations:
            if template in OPEN:
                continue
            response = await client.request(method.upper(), path)
            error = assert_error(response, 401, "unauthenticated")
            assert response.headers["WWW-Authenticate"] == "Bearer", (method, template, error)
            checked += 1
    assert checked >= 16
    for path in ("/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/api/v1/docs"):
        assert (await client.get(path)).status_code == 200, path


async def test_a_viewer_sees_only_the_sites_of_their_roles(as_user: AsUser) -> None:
    viewer = await as_user("viewer-a")
    sites = (await viewer.get("/api/v1/sites")).json()
    assert sites == [{"id": "alpha", "name": "Alpha Tower", "timezone": "Asia/Shanghai",
                      "actions": ["read"]}]
    other = await as_user("viewer-b")
    assert [s["id"] for s in (await other.get("/api/v1/sites")).json()] == ["beta"]


async def test_another_sites_data_is_forbidden_everywhere(as_user: AsUser) -> None:
    viewer = await as_user("viewer-a")
    paths = [
        "/api/v1/sites/beta",
        "/api/v1/sites/beta/gateways",
        "/api/v1/sites/beta/devices",
        "/api/v1/sites/beta/devices/gw9/meter-1",
        "/api/v1/sites/beta/devices/gw9/meter-1/points",
        "/api/v1/sites/beta/devices/gw9/meter-1/points/energy/series",
        "/api/v1/sites/beta/latest?points=gw9/meter-1/energy",
        "/api/v1/sites/beta/commands",
        "/api/v1/sites/beta/gateways/gw9/commands/0123456789abcdef",
        "/api/v1/sites/beta/ingest",
        "/api/v1/sites/beta/audit",
        # a site that does not exist looks the same to someone without a role on it
        "/api/v1/sites/nowhere/gateways",
    ]
    for path in paths:
        assert_error(await viewer.get(path), 403, "forbidden")
    command = {"op": "ping"}
    assert_error(await viewer.post("/api/v1/sites/beta/gateways/gw9/commands", json=command),
                 403, "forbidden")


async def test_an_administrator_sees_every_site_and_gets_404_for_unknown_ones(
    as_user: AsUser,
) -> None:
    admin = await as_user("admin")
    sites = (await admin.get("/api/v1/sites")).json()
    assert [s["id"] for s in sites] == ["alpha", "beta"]
    assert sites[0]["actions"] == ["read", "acknowledge", "command", "manage", "patrol",
                                   "administer"]
    for path in ("/api/v1/sites/nowhere", "/api/v1/sites/nowhere/gateways",
                 "/api/v1/sites/nowhere/devices/gw/dev/points/p/series"):
        error = assert_error(await admin.get(path), 404, "site_not_found")
        assert error["details"] == {"site": "nowhere"}


async def test_a_guard_sees_the_site_but_not_its_equipment(as_user: AsUser) -> None:
    guard = await as_user("guard-a")
    sites = (await guard.get("/api/v1/sites")).json()
    assert [(s["id"], s["actions"]) for s in sites] == [("alpha", ["patrol"])]
    assert (await guard.get("/api/v1/sites/alpha")).status_code == 200
    assert_error(await guard.get("/api/v1/sites/alpha/devices"), 403, "forbidden")


async def test_ingest_health_and_audit_are_for_supervisors_and_administrators(
    as_user: AsUser,
) -> None:
    viewer, engineer = await as_user("viewer-a"), await as_user("engineer-a")
    supervisor, admin = await as_user("supervisor-a"), await as_user("admin")
    for path in ("/api/v1/sites/alpha/ingest", "/api/v1/sites/alpha/audit"):
        assert_error(await viewer.get(path), 403, "forbidden")
        assert_error(await engineer.get(path), 403, "forbidden")
        assert (await supervisor.get(path)).status_code == 200
        assert (await admin.get(path)).status_code == 200
    for path in ("/api/v1/ingest", "/api/v1/audit"):
        assert_error(await supervisor.get(path), 403, "forbidden")
        assert (await admin.get(path)).status_code == 200


async def test_invalid_identifiers_in_paths_are_400(as_user: AsUser) -> None:
    admin = await as_user("admin")
    error = assert_error(await admin.get("/api/v1/sites/Not_Valid/gateways"), 400,
                         "validation_failed")
    assert error["details"][0]["path"] == "path.site"
