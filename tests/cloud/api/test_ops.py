"""healthz, readyz, metrics, the OpenAPI document, ingest health, the audit log, and the
error shape of framework errors."""

from __future__ import annotations

import asyncio
import math
from dataclasses import asdict, fields
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from cloud.api import create_app
from cloud.db import Database, MessageKey, add_dead_letter, claim_messages, record_seq_gaps
from cloud.db.audit import record_audit
from cloud.ingest.metrics import INGEST_COUNTERS, PendingCollector
from cloud.ingest.pending import record_pending
from cloud.ingest.pipeline import IngestStats
from cloud.settings import ApiSettings, CloudSettings
from cloud.timeseries import SqliteStore
from tests.cloud.api.support import (
    PASSWORD,
    T0_MS,
    AsUser,
    FakeClock,
    RecordingSender,
    assert_error,
    bearer,
)
from towerwatch.contract import Event

BAD_DATABASE = "postgresql+psycopg://towerwatch@127.0.0.1:1/nothing"


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_when_migrated(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "timeseries": "ok"},
    }


async def _readyz(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get("/readyz")


def _app(api: ApiSettings, db: Database, store: SqliteStore) -> FastAPI:
    return create_app(CloudSettings(api=api), db=db, store=store, commands=RecordingSender(),
                      clock=FakeClock())


async def test_readyz_is_503_when_the_database_is_unreachable(
    api_settings: ApiSettings, store: SqliteStore
) -> None:
    db = Database.from_url(BAD_DATABASE)
    try:
        response = await _readyz(_app(api_settings, db, store))
    finally:
        db.dispose()
    error = assert_error(response, 503, "not_ready")
    assert error["details"] == {"checks": {"database": "unreachable", "migrations": "unknown",
                                           "timeseries": "ok"}}
    assert "127.0.0.1" not in response.text  # details go to the log, not to the caller


async def test_readyz_is_503_when_migrations_are_behind(
    api_settings: ApiSettings, store: SqliteStore, tmp_path: Path
) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        response = await _readyz(_app(api_settings, db, store))
    finally:
        db.dispose()
    error = assert_error(response, 503, "not_ready")
    assert error["details"]["checks"]["migrations"].startswith("behind")


async def test_readyz_is_503_when_the_timeseries_store_is_closed(
    api_settings: ApiSettings, database: Database, tmp_path: Path
) -> None:
    closed = SqliteStore(tmp_path / "closed.db")
    await closed.close()
    error = assert_error(await _readyz(_app(api_settings, database, closed)), 503, "not_ready")
    assert error["details"]["checks"]["timeseries"] == "unavailable"


async def test_a_database_that_goes_away_is_503_on_api_routes(
    api_settings: ApiSettings, store: SqliteStore
) -> None:
    db = Database.from_url(BAD_DATABASE)
    try:
        app = _app(api_settings, db, store)
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post("/api/v1/auth/login",
                                         json={"username": "admin", "password": "whatever it is"})
    finally:
        db.dispose()
    assert_error(response, 503, "database_unavailable")


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    await client.get("/api/v1/sites/alpha/gateways")  # 401
    await client.get("/no/such/path")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'towerwatch_api_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert ('towerwatch_api_requests_total{method="GET",route="/api/v1/sites/{site}/gateways",'
            'status="401"} 1.0') in text
    assert 'route="<unmatched>",status="404"' in text
    assert "towerwatch_api_request_duration_seconds_bucket" in text
    assert "alpha" not in text


def _sample(text: str, name: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[-1])


async def test_metrics_count_the_pending_events(database: Database,
                                                client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    assert _sample(text, "towerwatch_pending_events") == 0.0
    assert _sample(text, "towerwatch_pending_events_oldest_age_seconds") == 0.0
    events = [(MessageKey.of("alpha", "gw1", "boot-0001", seq), "alpha", "gw1", "pump-1",
               Event(seq=seq, boot_id="boot-0001", ts=T0_MS - 90_000, event_id=f"e-{seq}",
                     kind="alarm", name="pump1_tripped", state="active", severity="high"),
               T0_MS - 90_000 + seq * 1000)
              for seq in (1, 2)]
    with database.transaction() as session:
        record_pending(session, events, claimed_ms=T0_MS - 60_000, due_ms=T0_MS)
    text = (await client.get("/metrics")).text
    assert _sample(text, "towerwatch_pending_events") == 2.0
    assert _sample(text, "towerwatch_pending_events_oldest_age_seconds") == 89.0


async def test_metrics_say_nan_when_the_outbox_cannot_be_read(
    api_settings: ApiSettings, store: SqliteStore
) -> None:
    db = Database.from_url(BAD_DATABASE)
    try:
        transport = httpx.ASGITransport(_app(api_settings, db, store))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/metrics")
    finally:
        db.dispose()
    assert response.status_code == 200
    assert math.isnan(_sample(response.text, "towerwatch_pending_events"))


async def test_a_count_that_hangs_is_not_queued_behind(api_settings: ApiSettings,
                                                       database: Database,
                                                       store: SqliteStore) -> None:
    # A database that stops answering: one count waits; scrapes meanwhile report NaN
    # without starting another (each would hold a thread of the loop's executor).
    metrics = _app(api_settings, database, store).state.context.metrics
    started, release = 0, asyncio.Event()

    async def hanging() -> tuple[int, int | None]:
        nonlocal started
        started += 1
        await release.wait()
        return 3, T0_MS

    for _ in range(3):
        await metrics.count_pending(hanging, 0.05, T0_MS)
        assert math.isnan(_sample(metrics.render()[0].decode(), "towerwatch_pending_events"))
    assert started == 1
    release.set()
    await asyncio.sleep(0)
    await metrics.count_pending(hanging, 1.0, T0_MS + 2000)
    text = metrics.render()[0].decode()
    assert started == 2 and _sample(text, "towerwatch_pending_events") == 3.0
    assert _sample(text, "towerwatch_pending_events_oldest_age_seconds") == 2.0


def test_the_ingest_only_collector_counts_one_at_a_time(database: Database) -> None:
    collector = PendingCollector(database, clock=lambda: T0_MS / 1000)
    counted = {m.name: m.samples[0].value for m in collector.collect()}
    assert counted["towerwatch_pending_events"] == 0.0
    with collector._counting:  # another scrape is counting
        busy = {m.name: m.samples[0].value for m in collector.collect()}
    assert math.isnan(busy["towerwatch_pending_events"])


async def test_metrics_show_the_ingest_workers_of_the_process(
    api_settings: ApiSettings, database: Database, store: SqliteStore
) -> None:
    stats = {"ingest-1": IngestStats(received=12, samples=500, dead_letters=1),
             "ingest-2": IngestStats()}
    app = create_app(CloudSettings(api=api_settings), db=database, store=store,
                     commands=RecordingSender(), clock=FakeClock(),
                     ingest=lambda: [(name, name == "ingest-1", asdict(s))
                                     for name, s in stats.items()])
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        text = (await client.get("/metrics")).text
        stats["ingest-2"].received = 3  # read at each scrape
        again = (await client.get("/metrics")).text
    assert 'towerwatch_ingest_connected{worker="ingest-1"} 1.0' in text
    assert 'towerwatch_ingest_connected{worker="ingest-2"} 0.0' in text
    assert 'towerwatch_ingest_received_total{worker="ingest-1"} 12.0' in text
    assert 'towerwatch_ingest_samples_total{worker="ingest-1"} 500.0' in text
    assert 'towerwatch_ingest_dead_letters_total{worker="ingest-1"} 1.0' in text
    assert 'towerwatch_ingest_received_total{worker="ingest-2"} 0.0' in text
    assert 'towerwatch_ingest_received_total{worker="ingest-2"} 3.0' in again
    assert {name for name in INGEST_COUNTERS} == {f.name for f in fields(IngestStats)}


async def test_metrics_are_per_app(api_settings: ApiSettings, database: Database,
                                   store: SqliteStore, client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    other = _app(api_settings, database, store)
    transport = httpx.ASGITransport(other)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as fresh:
        text = (await fresh.get("/metrics")).text
    assert 'route="/healthz"' not in text


async def test_the_openapi_document(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/v1/openapi.json")).json()
    assert schema["info"]["title"] == "Towerwatch API"
    assert {t["name"] for t in schema["tags"]} == {"auth", "sites", "telemetry", "commands",
                                                    "admin", "ops", "alarms", "work-orders",
                                                    "patrols"}
    schemes = schema["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    series = schema["paths"]["/api/v1/sites/{site}/devices/{gateway}/{device}/points/{point}"
                             "/series"]["get"]
    assert series["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"}
    assert "422" in series["responses"] and series["tags"] == ["telemetry"]
    docs = await client.get("/api/v1/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_framework_errors_have_the_error_shape(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/v1/nothing"), 404, "not_found")
    assert_error(await client.delete("/healthz"), 405, "method_not_allowed")
    assert_error(await client.get("/api/v1/auth/login"), 405, "method_not_allowed")


async def test_ingest_health_of_a_site(as_user: AsUser, database: Database) -> None:
    with database.transaction() as session:
        add_dead_letter(session, topic="tw/v1/alpha/gw1/telemetry/pump-1", payload=b"{not json",
                        reason="invalid JSON", received_ms=T0_MS - 2000)
        add_dead_letter(session, topic="tw/v1/alpha/gw1/event/pump-1", payload=b"\xff\xfe",
                        reason="not UTF-8", received_ms=T0_MS - 1000)
        add_dead_letter(session, topic="tw/v1/beta/gw9/telemetry/m", payload=b"{}",
                        reason="missing seq", received_ms=T0_MS - 500)
        add_dead_letter(session, topic="tw/v1/alpha_x/gw/telemetry/d", payload=b"{}",
                        reason="a_ is not a wildcard", received_ms=T0_MS - 400)
        add_dead_letter(session, topic="garbage", payload=b"", reason="not a Towerwatch topic",
                        received_ms=T0_MS - 100)
        keys = [MessageKey("alpha/gw1", "boot-0001", seq) for seq in (1, 2, 5, 6)]
        accepted = claim_messages(session, keys, now_ms=T0_MS - 3000)
        record_seq_gaps(session, accepted, now_ms=T0_MS - 3000)
    supervisor = await as_user("supervisor-a")
    response = await supervisor.get("/api/v1/sites/alpha/ingest", params={"recent": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["site"] == "alpha" and body["dead_letters"] == 2
    [letter] = body["recent_dead_letters"]
    assert (letter["topic"], letter["reason"], letter["payload_size"]) == (
        "tw/v1/alpha/gw1/event/pump-1", "not UTF-8", 2)
    assert letter["payload_preview"] == "\ufffd\ufffd"
    gw1 = {g["gateway"]: g for g in body["gateways"]}["gw1"]
    assert (gw1["messages"], gw1["gaps"], gw1["missing"], gw1["late"]) == (4, 1, 2, 0)
    assert gw1["streams"][0]["boot_id"] == "boot-0001"
    everything = (await (await as_user("admin")).get("/api/v1/ingest")).json()
    assert everything["site"] is None and everything["dead_letters"] == 5
    assert [g["gateway"] for g in everything["gateways"]] == ["alpha/gw1"]


async def test_the_audit_log(as_user: AsUser, database: Database) -> None:
    with database.transaction() as session:
        record_audit(session, ts_ms=T0_MS - 3000, user="engineer-a", action="alarm.acknowledge",
                     site="alpha", target="pump-1/low-pressure")
        record_audit(session, ts_ms=T0_MS - 2000, user="admin", action="user.create",
                     target="viewer-b")
        record_audit(session, ts_ms=T0_MS - 1000, user="engineer-a", action="command.ping",
                     site="beta", target="gw9")
    supervisor = await as_user("supervisor-a")
    site_log = (await supervisor.get("/api/v1/sites/alpha/audit")).json()
    assert [(e["action"], e["user"], e["target"]) for e in site_log] == [
        ("alarm.acknowledge", "engineer-a", "pump-1/low-pressure")]
    admin = await as_user("admin")
    full = (await admin.get("/api/v1/audit")).json()
    assert [e["action"] for e in full] == ["command.ping", "user.create", "alarm.acknowledge"]
    filtered = await admin.get("/api/v1/audit", params={
        "user": "Engineer-A", "since": T0_MS - 3000, "until": "2025-06-15T13:59:59.001Z"})
    assert [e["action"] for e in filtered.json()] == ["command.ping", "alarm.acknowledge"]
    error = assert_error(await admin.get("/api/v1/audit", params={"since": "soon"}), 400,
                         "validation_failed")
    assert error["details"][0]["path"] == "query.since"


@pytest.mark.parametrize("path", ["/api/v1/ingest", "/api/v1/audit"])
async def test_admin_listings_refuse_bad_limits(as_user: AsUser, path: str) -> None:
    admin = await as_user("admin")
    param = "recent" if path.endswith("ingest") else "limit"
    assert_error(await admin.get(path, params={param: 5000}), 400, "validation_failed")


async def test_an_unavailable_timeseries_store_is_503(
    as_user: AsUser, store: SqliteStore
) -> None:
    viewer = await as_user("viewer-a")
    await store.close()
    for path in ("/api/v1/sites/alpha/devices/gw1/pump-1",
                 "/api/v1/sites/alpha/devices/gw1/pump-1/points/pressure/series",
                 "/api/v1/sites/alpha/latest?points=gw1/pump-1/pressure"):
        assert_error(await viewer.get(path), 503, "timeseries_unavailable")


async def test_an_unexpected_failure_is_a_500_in_the_error_shape(
    app: FastAPI, client: httpx.AsyncClient, store: SqliteStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*_args: object) -> dict[str, object]:
        raise RuntimeError("a bug")

    token = (await client.post("/api/v1/auth/login", json={
        "username": "viewer-a", "password": PASSWORD})).json()["token"]
    monkeypatch.setattr(store, "latest_for_device", broken)
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as quiet:
        response = await quiet.get("/api/v1/sites/alpha/devices/gw1/pump-1",
                                   headers=bearer(token))
    error = assert_error(response, 500, "internal_error")
    assert "a bug" not in error["message"]
    metrics = (await client.get("/metrics")).text
    assert 'route="/api/v1/sites/{site}/devices/{gateway}/{device}",status="500"' in metrics
