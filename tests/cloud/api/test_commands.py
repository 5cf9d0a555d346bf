"""Commands: role check, audit, the command request, what the sender gets, the outcome."""

from __future__ import annotations

from cloud.db import Database, list_audit, list_commands, record_reply
from tests.cloud.api.support import T0_MS, AsUser, FakeClock, RecordingSender, assert_error
from towerwatch.contract import Command, CommandReply, command_topic, decode, parse_topic

COMMANDS = "/api/v1/sites/alpha/gateways/gw1/commands"
WRITE = {"op": "write", "device": "pump-1", "point": "setpoint", "value": 4.5, "ttl_s": 20}


async def test_a_viewer_may_not_command(
    as_user: AsUser, sender: RecordingSender, database: Database
) -> None:
    viewer = await as_user("viewer-a")
    assert_error(await viewer.post(COMMANDS, json=WRITE), 403, "forbidden")
    guard = await as_user("guard-a")
    assert_error(await guard.post(COMMANDS, json={"op": "ping"}), 403, "forbidden")
    assert sender.sent == []
    with database.transaction() as session:
        assert list_audit(session) == []
        assert list_commands(session, "alpha") == []


async def test_an_engineer_commands_a_write(
    as_user: AsUser, sender: RecordingSender, database: Database
) -> None:
    engineer = await as_user("engineer-a")
    response = await engineer.post(COMMANDS, json=WRITE)
    assert response.status_code == 202, response.text
    body = response.json()
    request_id = body["request_id"]
    assert body["status"] == "pending"
    assert (body["site"], body["gateway"], body["op"], body["device"], body["point"],
            body["value"], body["user"]) == (
        "alpha", "gw1", "write", "pump-1", "setpoint", 4.5, "engineer-a")
    assert (body["created"], body["expires"]) == (T0_MS, T0_MS + 20_000)
    assert response.headers["Location"] == f"{COMMANDS}/{request_id}"

    # the sender got a valid command for the right topic
    [sent] = sender.sent
    assert (sent.site, sent.gateway, sent.request_id) == ("alpha", "gw1", request_id)
    command = decode(Command, sent.payload)
    assert command == Command(op="write", device="pump-1", point="setpoint", value=4.5,
                              expires=T0_MS + 20_000)
    topic = parse_topic(command_topic(sent.site, sent.gateway, sent.request_id))
    assert (topic.site, topic.gateway, topic.request_id) == ("alpha", "gw1", request_id)
    assert command_topic("alpha", "gw1", request_id) == f"tw/v1/alpha/gw1/cmd/{request_id}"

    # on record: the audit entry and the command request
    with database.transaction() as session:
        [entry] = list_audit(session)
        assert (entry.ts_ms, entry.username, entry.action, entry.site_id, entry.target) == (
            T0_MS, "engineer-a", "command.write", "alpha", "gw1/pump-1/setpoint")
        assert entry.detail["request_id"] == request_id and entry.detail["value"] == 4.5
        [row] = list_commands(session, "alpha")
        assert (row.request_id, row.status) == (request_id, "pending")

    status = await engineer.get(f"{COMMANDS}/{request_id}")
    assert status.json()["status"] == "pending"


async def test_the_status_follows_the_reply(as_user: AsUser, database: Database) -> None:
    engineer, viewer = await as_user("engineer-a"), await as_user("viewer-a")
    ok_id = (await engineer.post(COMMANDS, json=WRITE)).json()["request_id"]
    bad_id = (await engineer.post(COMMANDS, json={**WRITE, "value": 99})).json()["request_id"]
    with database.transaction() as session:
        record_reply(session, ok_id, CommandReply(ok=True, ts=T0_MS + 50), received_ms=T0_MS + 60)
        record_reply(session, bad_id, CommandReply(ok=False, error="value out of range",
                                                   ts=T0_MS + 70), received_ms=T0_MS + 80)
    ok = (await viewer.get(f"{COMMANDS}/{ok_id}")).json()
    assert (ok["status"], ok["error"], ok["replied"]) == ("ok", None, T0_MS + 60)
    failed = (await viewer.get(f"{COMMANDS}/{bad_id}")).json()
    assert (failed["status"], failed["error"]) == ("failed", "value out of range")
    listed = (await viewer.get("/api/v1/sites/alpha/commands")).json()
    assert {c["request_id"]: c["status"] for c in listed} == {ok_id: "ok", bad_id: "failed"}


async def test_a_command_without_a_reply_expires(
    as_user: AsUser, clock: FakeClock
) -> None:
    engineer = await as_user("engineer-a")
    request_id = (await engineer.post(COMMANDS, json={"op": "ping", "ttl_s": 5})).json()[
        "request_id"]
    clock.advance(4.999)
    assert (await engineer.get(f"{COMMANDS}/{request_id}")).json()["status"] == "pending"
    clock.advance(0.001)
    assert (await engineer.get(f"{COMMANDS}/{request_id}")).json()["status"] == "expired"


async def test_ping_and_reload(as_user: AsUser, sender: RecordingSender) -> None:
    supervisor = await as_user("supervisor-a")
    for op in ("ping", "reload"):
        response = await supervisor.post(COMMANDS, json={"op": op})
        assert response.status_code == 202, response.text
    assert [decode(Command, s.payload).op for s in sender.sent] == ["ping", "reload"]
    assert decode(Command, sender.sent[0].payload).expires == T0_MS + 30_000  # default ttl


async def test_invalid_commands_are_400_with_field_paths(
    as_user: AsUser, sender: RecordingSender
) -> None:
    engineer = await as_user("engineer-a")
    cases = [
        ({"op": "write", "device": "pump-1"}, ["body.point", "body.value"]),
        ({"op": "ping", "point": "setpoint"}, ["body.point"]),
        ({"op": "explode"}, ["body.op"]),
        ({**WRITE, "ttl_s": 0}, ["body.ttl_s"]),
        ({**WRITE, "value": [1, 2]}, ["body.value"]),
        ({**WRITE, "device": "Pump 1"}, ["body.device"]),
        ({**WRITE, "extra": 1}, ["body.extra"]),
    ]
    for body, paths in cases:
        error = assert_error(await engineer.post(COMMANDS, json=body), 400, "validation_failed")
        assert [d["path"] for d in error["details"]] == paths, body
    assert sender.sent == []


async def test_writes_the_registry_knows_to_be_impossible_are_refused(
    as_user: AsUser, sender: RecordingSender
) -> None:
    engineer = await as_user("engineer-a")
    error = assert_error(await engineer.post(COMMANDS, json={**WRITE, "point": "pressure"}),
                         422, "point_not_writable")
    assert error["details"] == {"gateway": "gw1", "device": "pump-1", "point": "pressure"}
    assert_error(await engineer.post(COMMANDS, json={**WRITE, "point": "nothing"}), 404,
                 "point_not_found")
    # a device whose points the registry does not know: the gateway decides
    unknown = {**WRITE, "device": "pump-9"}
    assert (await engineer.post(COMMANDS, json=unknown)).status_code == 202
    assert len(sender.sent) == 1


async def test_an_unknown_gateway_or_command_is_404(as_user: AsUser) -> None:
    engineer = await as_user("engineer-a")
    response = await engineer.post("/api/v1/sites/alpha/gateways/gw7/commands", json=WRITE)
    error = assert_error(response, 404, "gateway_not_found")
    assert error["details"] == {"site": "alpha", "gateway": "gw7"}
    request_id = (await engineer.post(COMMANDS, json=WRITE)).json()["request_id"]
    assert_error(await engineer.get(f"{COMMANDS}/nope"), 404, "command_not_found")
    elsewhere = f"/api/v1/sites/alpha/gateways/gw2/commands/{request_id}"
    assert_error(await engineer.get(elsewhere), 404, "command_not_found")


async def test_a_command_the_broker_refuses_is_503_and_failed(
    as_user: AsUser, sender: RecordingSender, database: Database
) -> None:
    engineer = await as_user("engineer-a")
    sender.failure = ConnectionError("broker unreachable")
    error = assert_error(await engineer.post(COMMANDS, json=WRITE), 503, "command_not_sent")
    request_id = error["details"]["request_id"]
    status = (await engineer.get(f"{COMMANDS}/{request_id}")).json()
    assert (status["status"], status["error"]) == ("failed", "not sent: broker unreachable")
    with database.transaction() as session:
        assert [e.action for e in list_audit(session)] == ["command.write"]
