"""deploy/ against real servers: the Mosquitto ACL keeps each gateway in its own subtree,
the broker config runs as shipped, the example site config loads, the unit verifies."""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edge.config import Bacnet, ModbusSerial, ModbusTcp
from edge.loading import load_config
from tests.servers.mosquitto import MosquittoServer
from tests.servers.plugin import MosquittoFactory, tool, unavailable
from tests.servers.ports import LOOPBACK, free_port, wait_for_port
from tests.servers.process import chown_tree

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ACL = DEPLOY / "mosquitto" / "acl"
CONF = DEPLOY / "mosquitto" / "towerwatch.conf"
ADD_GATEWAY = DEPLOY / "mosquitto" / "add-gateway"
UNIT = DEPLOY / "systemd" / "towerwatch-edge.service"
SITE = DEPLOY / "edge" / "site.example.yaml"

PASSWORDS = {"tw-cloud": "cloud-secret", "demo-tower.gw-1": "gw1-secret",
             "demo-tower.gw-2": "gw2-secret", "other-site.gw-1": "other-secret"}
A = "tw/v1/demo-tower/gw-1"   # gateway A's subtree
B = "tw/v1/demo-tower/gw-2"   # gateway B's subtree
QUIET = 0.3                   # after a later control message has arrived
WAIT = 5.0
NOT_AUTHORIZED = 135          # MQTT 5 PUBACK reason code 0x87
ACCEPTED = (0, 16)            # success, or "no matching subscribers"


def add_gateway(acl: Path, passwd: Path, site: str, gateway: str,
                password: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run deploy/mosquitto/add-gateway on these files."""
    tools = Path(tool("mosquitto_passwd")).parent
    env = {**os.environ, "TW_MQTT_ACL": str(acl), "TW_MQTT_PASSWD": str(passwd),
           "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("TW_GATEWAY_PASSWORD", None)
    if password is not None:
        env["TW_GATEWAY_PASSWORD"] = password
    return subprocess.run(["sh", str(ADD_GATEWAY), site, gateway], env=env, capture_output=True,
                          text=True, check=False, timeout=30)


def rendered_acl(workdir: Path) -> str:
    """The shipped ACL plus the blocks add-gateway writes for gw-2 and other-site's gw-1."""
    acl, passwd = workdir / "acl", workdir / "passwd"
    shutil.copy(ACL, acl)
    for user in ("demo-tower.gw-2", "other-site.gw-1"):
        site, gateway = user.split(".")
        result = add_gateway(acl, passwd, site, gateway, PASSWORDS[user])
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == PASSWORDS[user]
    return acl.read_text()


class Peer:
    """One paho MQTT client on its own network thread; received messages are queued."""

    def __init__(self, port: int, user: str, password: str | None, *, ca: Path | None = None,
                 client_id: str | None = None,
                 protocol: MQTTProtocolVersion = mqtt.MQTTv5) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol,
                                  client_id=client_id or f"test-{uuid.uuid4().hex[:8]}")
        self.port = port
        if password is not None:
            self.client.username_pw_set(user, password)
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca))
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.seen: list[tuple[str, bytes]] = []
        self.connacks: queue.Queue[int] = queue.Queue()
        self.subacks: queue.Queue[list[int]] = queue.Queue()
        self.pubacks: dict[int, int] = {}
        self.disconnects = 0
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subacks.put(
            [code.value for code in codes])
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, client: Any, userdata: Any, flags: Any, code: Any, props: Any) -> None:
        self.connacks.put(code.value)

    def _on_publish(self, client: Any, userdata: Any, mid: int, code: Any, props: Any) -> None:
        self.pubacks[mid] = code.value

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, code: Any,
                       props: Any) -> None:
        self.disconnects += 1

    def connect(self) -> int:
        """The CONNACK reason code (0: accepted)."""
        self.client.connect(LOOPBACK, self.port, keepalive=30)
        self.client.loop_start()
        return self.connacks.get(timeout=WAIT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        assert self.subacks.get(timeout=WAIT) == [1]

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """Publish at QoS 1, wait for the PUBACK, return its reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(WAIT)
        assert info.is_published()
        return self.pubacks[info.mid]

    def expect(self, topic: str, payload: bytes) -> None:
        """Wait until this message arrives (everything received meanwhile is kept in seen)."""
        while True:
            message = self.messages.get(timeout=WAIT)
            self.seen.append(message)
            if message == (topic, payload):
                return

    def received(self, quiet: float = QUIET) -> list[tuple[str, bytes]]:
        """Everything received so far, after ``quiet`` more seconds."""
        try:
            while True:
                self.seen.append(self.messages.get(timeout=quiet))
        except queue.Empty:
            return list(self.seen)


@pytest.fixture
def broker(mosquitto_factory: MosquittoFactory, tmp_path: Path) -> MosquittoServer:
    """A Mosquitto with the shipped ACL (plus add-gateway blocks) and the test users."""
    return mosquitto_factory(users=PASSWORDS, acl=rendered_acl(tmp_path))


@pytest.fixture
def peers(broker: MosquittoServer) -> Iterator[dict[str, Peer]]:
    """Connected clients: gateway A (demo-tower.gw-1), gateway B (gw-2), cloud, other site."""
    made: dict[str, Peer] = {}
    try:
        for name, user in (("a", "demo-tower.gw-1"), ("b", "demo-tower.gw-2"),
                           ("cloud", "tw-cloud"), ("other", "other-site.gw-1")):
            made[name] = Peer(broker.port, user, PASSWORDS[user])
            assert made[name].connect() == 0
        yield made
    finally:
        for peer in made.values():
            peer.close()


# -- the ACL ------------------------------------------------------------------------------
def test_gateway_publishes_in_its_subtree_and_cloud_receives(peers: dict[str, Peer]) -> None:
    cloud, a = peers["cloud"], peers["a"]
    cloud.subscribe("$share/tw-ingest/tw/v1/#")
    for topic in (f"{A}/telemetry/booster", f"{A}/event/door-lobby",
                  f"{A}/device/booster/state", f"{A}/cmd-reply/r-1", f"{A}/status"):
        assert a.publish(topic, b"from-a") in ACCEPTED
        cloud.expect(topic, b"from-a")


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["mqtt5", "mqtt311"])
def test_gateway_cannot_publish_under_another_gateway(broker: MosquittoServer,
                                                      peers: dict[str, Peer],
                                                      protocol: MQTTProtocolVersion) -> None:
    cloud, b = peers["cloud"], peers["b"]
    a = Peer(broker.port, "demo-tower.gw-1", PASSWORDS["demo-tower.gw-1"], protocol=protocol)
    try:
        assert a.connect() == 0
        cloud.subscribe("tw/v1/#")
        forged = [f"{B}/telemetry/booster", f"{B}/event/door-lobby", f"{B}/status",
                  f"{B}/device/booster/state", f"{B}/cmd-reply/r-1",
                  "tw/v1/other-site/gw-1/telemetry/meter",  # same gateway id, other site
                  "tw/v1/demo-tower/status", "tw/v1/other/x"]
        for topic in forged:
            code = a.publish(topic, b"forged-by-a")
            if protocol == mqtt.MQTTv5:
                assert code == NOT_AUTHORIZED, topic
        assert b.publish(f"{B}/telemetry/booster", b"control-from-b") in ACCEPTED
        cloud.expect(f"{B}/telemetry/booster", b"control-from-b")
        assert not [m for m in cloud.received() if m[1] == b"forged-by-a"]
    finally:
        a.close()


def test_forged_retained_status_does_not_replace_the_real_one(broker: MosquittoServer,
                                                               peers: dict[str, Peer]) -> None:
    assert peers["b"].publish(f"{B}/status", b"b-online", retain=True) in ACCEPTED
    assert peers["a"].publish(f"{B}/status", b"b-offline-forged", retain=True) == NOT_AUTHORIZED
    late = Peer(broker.port, "tw-cloud", PASSWORDS["tw-cloud"])
    try:
        assert late.connect() == 0
        late.subscribe(f"{B}/status")
        late.expect(f"{B}/status", b"b-online")
        assert late.received() == [(f"{B}/status", b"b-online")]
    finally:
        late.close()


def test_gateway_cannot_read_another_gateways_topics(peers: dict[str, Peer]) -> None:
    a, b, cloud = peers["a"], peers["b"], peers["cloud"]
    a.subscribe(f"{B}/cmd/+")   # Mosquitto 2.0 grants it, then delivers nothing
    a.subscribe("tw/v1/#")
    b.subscribe(f"{B}/cmd/+")
    assert cloud.publish(f"{B}/cmd/req-b", b"cmd-for-b") in ACCEPTED
    assert b.publish(f"{B}/telemetry/booster", b"telemetry-of-b") in ACCEPTED
    b.expect(f"{B}/cmd/req-b", b"cmd-for-b")
    assert cloud.publish(f"{A}/cmd/req-a", b"cmd-for-a") in ACCEPTED
    a.expect(f"{A}/cmd/req-a", b"cmd-for-a")   # the control: A does receive its own
    assert [topic for topic, _ in a.received()] == [f"{A}/cmd/req-a"]


def test_cloud_commands_gateways_but_cannot_forge_their_data(peers: dict[str, Peer]) -> None:
    a, cloud = peers["a"], peers["cloud"]
    a.subscribe(f"{A}/#")
    for topic in (f"{A}/telemetry/booster", f"{A}/status", f"{A}/event/x", f"{A}/cmd-reply/r"):
        assert cloud.publish(topic, b"forged-by-cloud") == NOT_AUTHORIZED
    assert cloud.publish(f"{A}/cmd/req-1", b'{"op":"ping"}') in ACCEPTED
    a.expect(f"{A}/cmd/req-1", b'{"op":"ping"}')
    assert [m for m in a.received() if m[1] == b"forged-by-cloud"] == []


def test_unknown_user_and_wrong_password_are_refused(broker: MosquittoServer) -> None:
    for user, password in (("demo-tower.gw-1", "wrong"), ("demo-tower.gw-9", "x"),
                           ("anonymous", None)):
        peer = Peer(broker.port, user, password)
        try:
            assert peer.connect() in (134, 135), user  # bad user name or password / not authorized
        finally:
            peer.close()


# -- add-gateway --------------------------------------------------------------------------
def test_add_gateway_writes_one_exact_block(tmp_path: Path) -> None:
    acl, passwd = tmp_path / "acl", tmp_path / "passwd"
    shutil.copy(ACL, acl)
    result = add_gateway(acl, passwd, "plant-7", "gw_a")
    assert result.returncode == 0, result.stderr
    password = result.stdout.strip()
    assert len(password) >= 20
    assert acl.read_text().endswith("\nuser plant-7.gw_a\ntopic readwrite tw/v1/plant-7/gw_a/#\n")
    assert passwd.read_text().startswith("plant-7.gw_a:")
    assert password not in passwd.read_text()  # stored hashed
    again = add_gateway(acl, passwd, "plant-7", "gw_a")
    assert again.returncode == 1 and "already" in again.stderr
    for site, gateway in (("Plant", "gw"), ("plant", "gw/x"), ("plant", "-gw"), ("", "gw"),
                          ("plant", "gw.1"), ("plant", "#")):
        bad = add_gateway(acl, passwd, site, gateway)
        assert bad.returncode == 2, (site, gateway)
        assert "not an identifier" in bad.stderr
    assert acl.read_text().count("user plant-7.gw_a") == 1


# -- the shipped broker config ------------------------------------------------------------
class DeployedMosquitto(MosquittoServer):
    """Mosquitto run with deploy/mosquitto/towerwatch.conf as shipped, except for file
    paths, ports and the log destination; accounts made as mosquitto/README.md says."""

    def __init__(self) -> None:
        self.cloud_port = free_port()
        self.gw2_password = ""
        super().__init__(tls=True)

    def _write_files(self) -> None:
        assert self.ca is not None and self.server_cert is not None
        tls = self.workdir / "tls"
        tls.mkdir()
        for src, name in ((self.ca.cert_path, "ca.crt"), (self.server_cert.cert_path,
                          "server.crt"), (self.server_cert.key_path, "server.key")):
            shutil.copy(src, tls / name)
        self.persistence_dir.mkdir(exist_ok=True)
        acl, passwd = self.workdir / "towerwatch.acl", self.workdir / "towerwatch.passwd"
        shutil.copy(ACL, acl)
        passwd_tool = tool("mosquitto_passwd")
        for index, user in enumerate(("tw-cloud", "demo-tower.gw-1")):
            create = ["-c"] if index == 0 else []
            subprocess.run([passwd_tool, *create, "-b", str(passwd), user, PASSWORDS[user]],
                           check=True, capture_output=True, timeout=30)
        added = add_gateway(acl, passwd, "demo-tower", "gw-2")
        assert added.returncode == 0, added.stderr
        self.gw2_password = added.stdout.strip()
        values = {"cafile": tls / "ca.crt", "certfile": tls / "server.crt",
                  "keyfile": tls / "server.key", "password_file": passwd, "acl_file": acl,
                  "persistence_location": f"{self.persistence_dir}/", "log_dest": "stderr"}
        listeners = iter([f"{self.port} {LOOPBACK}", f"{self.cloud_port} {LOOPBACK}"])
        lines = []
        for line in CONF.read_text().splitlines():
            key = line.split(" ", 1)[0]
            if key == "listener":
                line = f"listener {next(listeners)}"
            elif key in values:
                line = f"{key} {values[key]}"
            lines.append(line)
        assert next(listeners, None) is None, "towerwatch.conf has fewer listeners than expected"
        self.config_path.write_text("\n".join(lines) + "\n")
        for path in self.workdir.rglob("*"):
            if path.is_file():
                path.chmod(0o600)
        chown_tree(self.workdir, "mosquitto")

    def _wait_ready(self) -> None:
        super()._wait_ready()
        wait_for_port(self.host, self.cloud_port, self.startup_timeout, alive=self._alive)


@pytest.fixture
def deployed() -> Iterator[DeployedMosquitto]:
    tool("mosquitto")
    with DeployedMosquitto() as server:
        yield server


def test_shipped_broker_config_with_tls_and_accounts(deployed: DeployedMosquitto) -> None:
    ca = deployed.ca_path
    gw2 = Peer(deployed.port, "demo-tower.gw-2", deployed.gw2_password, ca=ca)
    cloud = Peer(deployed.cloud_port, "tw-cloud", PASSWORDS["tw-cloud"], ca=ca)
    try:
        assert gw2.connect() == 0
        assert cloud.connect() == 0
        cloud.subscribe("$share/tw-ingest/tw/v1/#")
        assert gw2.publish(f"{B}/telemetry/booster", b"over-tls") in ACCEPTED
        cloud.expect(f"{B}/telemetry/booster", b"over-tls")
        assert gw2.publish(f"{A}/telemetry/booster", b"forged") == NOT_AUTHORIZED
        assert cloud.publish(f"{B}/cmd/r-1", b"cmd") in ACCEPTED
        assert cloud.publish(f"{B}/telemetry/booster", b"forged") == NOT_AUTHORIZED
    finally:
        gw2.close()
        cloud.close()
    for port in (deployed.port, deployed.cloud_port):
        anonymous = Peer(port, "", None, ca=ca)
        try:
            assert anonymous.connect() in (134, 135)
        finally:
            anonymous.close()


def test_shipped_broker_config_refuses_plaintext(deployed: DeployedMosquitto) -> None:
    # MQTT 3.1.1 CONNECT, clean session, keepalive 30, client id "p", no credentials.
    connect = bytes([0x10, 13, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 30, 0, 1]) + b"p"
    for port in (deployed.port, deployed.cloud_port):
        with socket.create_connection((LOOPBACK, port), timeout=WAIT) as sock:
            sock.sendall(connect)
            try:
                answer = sock.recv(64)
            except ConnectionResetError:
                answer = b""
        assert not answer.startswith(b"\x20"), "a plaintext CONNECT got a CONNACK"


def test_a_gateway_cannot_take_over_another_gateways_session(
        deployed: DeployedMosquitto) -> None:
    ca = deployed.ca_path
    gw1 = Peer(deployed.port, "demo-tower.gw-1", PASSWORDS["demo-tower.gw-1"], ca=ca,
               client_id="demo-tower.gw-1")
    thief = Peer(deployed.port, "demo-tower.gw-2", deployed.gw2_password, ca=ca,
                 client_id="demo-tower.gw-1")  # use_username_as_clientid ignores this
    cloud = Peer(deployed.cloud_port, "tw-cloud", PASSWORDS["tw-cloud"], ca=ca)
    try:
        assert gw1.connect() == 0
        gw1.subscribe(f"{A}/cmd/+")
        assert thief.connect() == 0
        assert cloud.connect() == 0
        assert cloud.publish(f"{A}/cmd/r-2", b"still-there") in ACCEPTED
        gw1.expect(f"{A}/cmd/r-2", b"still-there")
        assert gw1.disconnects == 0
    finally:
        for peer in (gw1, thief, cloud):
            peer.close()


# -- the example site config and the unit -------------------------------------------------
def test_example_site_config_is_valid_and_complete() -> None:
    loaded = load_config(SITE)
    cfg = loaded.config
    assert (cfg.site, cfg.gateway) == ("demo-tower", "gw-1")
    assert cfg.mqtt.tls and cfg.mqtt.ca_file and cfg.mqtt.password_file
    assert cfg.mqtt.username == f"{cfg.site}.{cfg.gateway}"  # the broker's naming scheme
    assert f"user {cfg.mqtt.username}\n" in ACL.read_text()
    assert str(cfg.outbox.path).startswith("/var/lib/towerwatch/")
    assert cfg.http.listen
    connections = {type(d.modbus or d.bacnet) for d in cfg.devices}
    assert connections == {ModbusTcp, ModbusSerial, Bacnet}
    assert {d.profile for d in cfg.devices} == set(loaded.profiles.ids())
    assert any(d.writable for d in cfg.devices)


def _unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_systemd_unit(tmp_path: Path) -> None:
    unit = _unit_settings()
    expected = {
        "Type": "simple", "User": "towerwatch", "Restart": "always", "RestartSec": "2",
        "ExecStart": "/opt/towerwatch/.venv/bin/towerwatch edge run "
                     "--config /etc/towerwatch/edge.yaml",
        "StateDirectory": "towerwatch", "ReadWritePaths": "/var/lib/towerwatch",
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
        "StartLimitIntervalSec": "0",
    }
    assert {key: unit.get(key, [""])[-1] for key in expected} == expected
    assert int(unit["LimitNOFILE"][-1]) >= 4096
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze is not installed")
    # verify checks that ExecStart exists: point it at an executable that does.
    text = UNIT.read_text().replace("/opt/towerwatch/.venv/bin/towerwatch", "/bin/true")
    (tmp_path / UNIT.name).write_text(text)
    result = subprocess.run([analyze, "verify", "--man=no", UNIT.name], cwd=tmp_path,
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
