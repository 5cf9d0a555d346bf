"""Patrol API on SQLite and PostgreSQL: enrolment, SUN taps (good, replayed, forged),
roles, idempotent offline batches with clock skew, closing exceptions with a comment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cloud.api.routes.patrol_common import install_patrols
from cloud.patrols.escalation import RecordingEscalation
from cloud.patrols.runtime import PatrolRuntime
from cloud.patrols.settings import PatrolSettings
from simulators.patrol.ntag import SimTag
from tests.cloud.api.support import AsUser, FakeClock, assert_error

BASE = "/api/v1/sites/alpha/patrol"
UIDS = ["04A00000000001", "04A00000000002", "04A00000000003"]


@pytest.fixture
def escalation() -> RecordingEscalation:
    return RecordingEscalation()


@pytest.fixture
def patrol_app(app: FastAPI, tmp_path: Path, escalation: RecordingEscalation) -> FastAPI:
    key = tmp_path / "patrol-master-key"
    key.write_text("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n")
    settings = PatrolSettings(master_key_file=key, master_key_env=None, skew_tolerance=120.0)
    install_patrols(app, PatrolRuntime.from_settings(settings, escalation))
    return app


@pytest.fixture
async def supervisor(patrol_app: FastAPI, as_user: AsUser) -> httpx.AsyncClient:
    return await as_user("supervisor-a")


@pytest.fixture
async def guard(patrol_app: FastAPI, as_user: AsUser) -> httpx.AsyncClient:
    return await as_user("guard-a")


async def enrol_tags(supervisor: httpx.AsyncClient) -> list[SimTag]:
    tags = []
    for index, uid in enumerate(UIDS, 1):
        response = await supervisor.post(f"{BASE}/checkpoints", json={
            "code": f"cp-{index}", "name": f"Checkpoint {index}", "tag_type": "ntag424_sun",
            "uid": uid, "lat": 31.2300 + index * 0.0005, "lon": 121.4700})
        assert response.status_code == 201, response.text
        keys = response.json()["keys"]
        tags.append(SimTag(bytes.fromhex(uid), bytes.fromhex(keys["meta_read"]),
                           bytes.fromhex(keys["file_read"])))
    listed = (await supervisor.get(f"{BASE}/checkpoints")).json()
    assert all(c["keys"] is None and c["assurance"] == "strong" for c in listed)
    return tags


def scan(tag: SimTag, index: int, scan_id: str, device_ms: int) -> dict[str, Any]:
    tap = tag.read()
    return {"scan_id": scan_id, "device_time": device_ms, "method": "ntag424_sun",
            "checkpoint": f"cp-{index}", "picc_data": tap.picc_data, "cmac": tap.cmac}


async def exceptions(supervisor: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await supervisor.get(f"{BASE}/exceptions", params=params)
    assert response.status_code == 200, response.text
    return list(response.json())


async def test_tap_url_accepts_then_rejects_its_replay(
    supervisor: httpx.AsyncClient, guard: httpx.AsyncClient, clock: FakeClock,
    escalation: RecordingEscalation,
) -> None:
    tags = await enrol_tags(supervisor)
    tap = tags[0].read()
    url = f"{BASE}/tap/cp-1?{tap.query()}"
    first = await guard.get(url)
    assert first.status_code == 200, first.text
    assert first.json()["result"] == "accepted" and first.json()["assurance"] == "strong"
    again = await guard.get(url)  # a browser reload is the same scan, not a replay
    assert again.json()["repeated"] is True and again.json()["result"] == "accepted"

    newer = tags[0].read()
    assert (await guard.get(f"{BASE}/tap/cp-1?{newer.query()}")).status_code == 200
    # The older URL, captured and submitted again, under another scan id: a replay.
    clock.advance(60)
    replay = await guard.post(f"{BASE}/scans", json={"scans": [{
        "scan_id": "copied-1", "device_time": clock.ms, "method": "ntag424_sun",
        "checkpoint": "cp-1", "picc_data": tap.picc_data, "cmac": tap.cmac}]})
    result = replay.json()["results"][0]
    assert (result["result"], result["exceptions"]) == ("replay", ["replay"])
    [row] = await exceptions(supervisor, kind="replay")
    assert row["escalation"] == "alarm" and row["detail"]["scan_id"] == "copied-1"
    [request] = [r for r in escalation.requests if r.kind == "replay"]
    assert request.priority == "high" and "重放" in request.text_zh


async def test_forged_mac_is_rejected_and_raises_bad_mac(
    supervisor: httpx.AsyncClient, guard: httpx.AsyncClient, clock: FakeClock,
) -> None:
    tags = await enrol_tags(supervisor)
    tap = tags[1].read()
    forged = tap.cmac[:-1] + ("0" if tap.cmac[-1] != "0" else "1")
    response = await guard.get(f"{BASE}/tap/cp-2?picc_data={tap.picc_data}&cmac={forged}")
    error = assert_error(response, 422, "tap_rejected")
    assert error["details"]["result"] == "bad_mac"
    # Another tag's genuine tap presented as cp-2: its keys do not fit either.
    other = tags[2].read()
    response = await guard.get(f"{BASE}/tap/cp-2?{other.query()}")
    assert assert_error(response, 422, "tap_rejected")["details"]["result"] == "bad_mac"
    html = await guard.get(f"{BASE}/tap/cp-2?picc_data={tap.picc_data}&cmac=00",
                           headers={"accept": "text/html"})
    assert html.status_code == 422 and "未被接受" in html.text
    assert [e["kind"] for e in await exceptions(supervisor)] == ["bad_mac"] * 3
    # The genuine tap still works: a forgery does not burn the counter.
    ok = await guard.get(f"{BASE}/tap/cp-2?{tap.query()}")
    assert ok.json()["result"] == "accepted"


async def test_roles(supervisor: httpx.AsyncClient, guard: httpx.AsyncClient,
                     as_user: AsUser) -> None:
    await enrol_tags(supervisor)
    assert_error(await guard.get(f"{BASE}/checkpoints"), 403, "forbidden")
    assert_error(await guard.get(f"{BASE}/exceptions"), 403, "forbidden")
    response = await supervisor.post(f"{BASE}/scans", json={"scans": [{
        "scan_id": "s1", "device_time": 1, "method": "qr", "qr": "x"}]})
    assert_error(response, 403, "forbidden")
    viewer = await as_user("viewer-a")
    assert_error(await viewer.get(f"{BASE}/due"), 403, "forbidden")
    other = await as_user("viewer-b")
    assert_error(await other.get("/api/v1/sites/alpha/patrol/tours"), 403, "forbidden")


async def test_offline_batch_keeps_device_times_and_flags_skew_beyond_tolerance(
    supervisor: httpx.AsyncClient, guard: httpx.AsyncClient, clock: FakeClock,
) -> None:
    tags = await enrol_tags(supervisor)
    walked = clock.ms
    batch = [scan(tags[i], i + 1, f"off-{i}", walked + i * 120_000) for i in range(3)]
    clock.advance(45 * 60)  # uploaded 45 minutes later, phone clock 90 s behind
    response = await guard.post(f"{BASE}/scans", json={
        "batch_id": "b1", "sent_at": clock.ms - 90_000, "scans": batch})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["result"] for r in results] == ["accepted"] * 3
    assert [r["time"] for r in results] == [walked + i * 120_000 for i in range(3)]
    assert await exceptions(supervisor, kind="clock_skew") == []
    retry = await guard.post(f"{BASE}/scans", json={"batch_id": "b1", "scans": batch})
    assert [r["repeated"] for r in retry.json()["results"]] == [True] * 3

    # Another phone 10 minutes fast: flagged once, scans placed at corrected times.
    skewed = [scan(tags[i], i + 1, f"fast-{i}", clock.ms + 600_000 + i * 60_000)
              for i in range(2)]
    response = await guard.post(f"{BASE}/scans", json={
        "batch_id": "b2", "sent_at": clock.ms + 600_000 + 120_000, "scans": skewed})
    results = response.json()["results"]
    assert [r["time"] for r in results] == [clock.ms - 120_000, clock.ms - 60_000]
    [flag] = await exceptions(supervisor, kind="clock_skew")
    assert flag["detail"]["skew_ms"] == -720_000 and flag["guard"] == "guard-a"


async def test_batch_validation_names_the_field(
    supervisor: httpx.AsyncClient, guard: httpx.AsyncClient, clock: FakeClock,
) -> None:
    tags = await enrol_tags(supervisor)
    future = scan(tags[0], 1, "f1", clock.ms + 3_600_000)
    response = await guard.post(f"{BASE}/scans", json={"sent_at": clock.ms, "scans": [future]})
    error = assert_error(response, 400, "validation_failed")
    assert error["details"][0]["path"] == "body.scans[0].device_time"
    response = await guard.post(f"{BASE}/scans", json={"scans": [{**future, "picc_data": "zz"}]})
    assert assert_error(response, 400, "validation_failed")["details"][0]["path"].startswith(
        "body.scans[0].picc_data")


async def test_exceptions_close_only_with_a_comment(
    supervisor: httpx.AsyncClient, guard: httpx.AsyncClient, clock: FakeClock,
) -> None:
    response = await guard.post(f"{BASE}/scans", json={"scans": [{
        "scan_id": "u1", "device_time": clock.ms, "method": "uid", "uid": "04FFFFFFFFFFFF"}]})
    assert response.json()["results"][0]["result"] == "unknown_tag"
    [row] = await exceptions(supervisor, status="open")
    url = f"{BASE}/exceptions/{row['id']}/close"
    assert_error(await supervisor.post(url, json={"comment": "   "}), 400, "validation_failed")
    assert_error(await supervisor.post(url, json={}), 400, "validation_failed")
    closed = await supervisor.post(url, json={"comment": "contractor's test tag"})
    assert closed.json()["status"] == "closed" and closed.json()["closed_by"] == "supervisor-a"
    assert_error(await supervisor.post(url, json={"comment": "again"}), 409, "conflict")
    assert_error(await supervisor.post(f"{BASE}/exceptions/999/close", json={"comment": "x"}),
                 404, "patrol_exception_not_found")


async def test_tap_cookie_login_lets_a_browser_tap(
    patrol_app: FastAPI, supervisor: httpx.AsyncClient, clock: FakeClock,
) -> None:
    tags = await enrol_tags(supervisor)
    transport = httpx.ASGITransport(patrol_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        page = await browser.get(f"{BASE}/login")
        assert page.status_code == 200 and "用户名" in page.text
        assert_error(await browser.get(f"{BASE}/tap/cp-1?{tags[0].read().query()}"),
                     401, "unauthenticated")
        bad = await browser.post(f"{BASE}/login", content="username=guard-a&password=nope",
                                 headers={"content-type": "application/x-www-form-urlencoded"})
        assert bad.status_code == 401
        ok = await browser.post(
            f"{BASE}/login", content="username=guard-a&password=correct+horse+battery+staple",
            headers={"content-type": "application/x-www-form-urlencoded"})
        assert ok.status_code == 200 and "guard-a" in ok.text
        assert "httponly" in ok.headers["set-cookie"].lower()
        tapped = await browser.get(f"{BASE}/tap/cp-1?{tags[0].read().query()}",
                                   headers={"accept": "text/html"})
        assert tapped.status_code == 200 and "已于" in tapped.text
