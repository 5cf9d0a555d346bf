"""Every work-order, asset, plan and SLA route needs a token, and another site's users get
403 from each of them."""

from __future__ import annotations

import re

import httpx

from tests.cloud.api.support import AsUser, assert_error

PARAMS = {"site": "alpha", "order_id": "1", "photo_id": "1", "alarm_id": "1", "asset_id": "1",
          "plan_id": "1", "category": "fire", "priority": "emergency", "gateway": "gw1",
          "device": "pump-1"}
OURS = re.compile(r"/(work-orders|assets|pm-plans|sla-policies|sla-breaches)(/|$)")


async def _our_routes(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    paths = (await client.get("/api/v1/openapi.json")).json()["paths"]
    routes = [(method.upper(), re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], template))
              for template, operations in paths.items() if OURS.search(template)
              for method in operations]
    assert len(routes) >= 25
    return routes


async def test_every_route_needs_a_token(client: httpx.AsyncClient) -> None:
    for method, path in await _our_routes(client):
        response = await client.request(method, path)
        assert_error(response, 401, "unauthenticated")


async def test_other_sites_are_forbidden(client: httpx.AsyncClient, as_user: AsUser) -> None:
    outsider = await as_user("viewer-b")
    for method, path in await _our_routes(client):
        response = await outsider.request(method, path)
        assert_error(response, 403, "forbidden")
