"""The server fixtures start real servers that really work (checked with their own CLIs)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.servers.httpclient import request
from tests.servers.influxdb import InfluxDB1Server
from tests.servers.mosquitto import MosquittoServer
from tests.servers.plugin import (
    InfluxDatabase,
    MosquittoFactory,
    MqttAuthSpec,
    PostgresDatabase,
    tool,
)
from tests.servers.postgres import PostgresServer
from tests.servers.process import ServerStartError
from tests.servers.tls import CertificateAuthority
from tests.servers.victoria import VictoriaMetricsServer

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


# -- MQTT CLI helpers -----------------------------------------------------------------
def _conn_args(
    server: MosquittoServer,
    user: str | None = None,
    cafile: Path | None = None,
    cert: tuple[Path, Path] | None = None,
) -> list[str]:
    args = ["-h", server.host, "-p", str(server.port), "-V", "mqttv311"]
    if user is not None:
        args += ["-u", user, "-P", server.users.get(user, "")]
    if server.tls or cafile is not None:
        args += ["--cafile", str(cafile or server.ca_path)]
    if cert is not None:
        args += ["--cert", str(cert[0]), "--key", str(cert[1])]
    return args


def _pub(
    conn: Sequence[str], topic: str, message: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("mosquitto_pub"), *conn, "-t", topic, "-m", message, "-q", "1", *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=15,
    )


def _sub_once(conn: Sequence[str], topic: str, *extra: str, wait: float = 5) -> str:
    """Receive one message (retained or not) on ``topic``; return its payload."""
    result = subprocess.run(
        [tool("mosquitto_sub"), *conn, "-t", topic, "-C", "1", "-W", str(int(wait)), *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=wait + 10,
    )
    assert result.returncode == 0, f"mosquitto_sub failed: {result.stderr}"
    return result.stdout.strip()


def _retained_topics(conn: Sequence[str], topic_filter: str) -> set[str]:
    """All retained topics under ``topic_filter`` (waits one second for them)."""
    result = subprocess.run(
        [tool("mosquitto_sub"), *conn, "-t", topic_filter, "-v", "--retained-only", "-W", "1"],
        capture_output=True,
        text=True,
        check=False,
        timeout=15,
    )
    return {line.split(" ", 1)[0] for line in result.stdout.splitlines() if line}


def _pub_sub_roundtrip(conn: Sequence[str], topic: str, message: str) -> str:
    """Start a subscriber, publish (repeatedly, until it is subscribed) and return what
    it received."""
    sub_argv = [tool("mosquitto_sub"), *conn, "-t", topic, "-C", "1", "-W", "10"]
    with subprocess.Popen(
        sub_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as sub:
        deadline = time.monotonic() + 10
        while sub.poll() is None and time.monotonic() < deadline:
            assert _pub(conn, topic, message).returncode == 0
            time.sleep(0.1)
        out, err = sub.communicate(timeout=10)
    assert sub.returncode == 0, err
    return out.strip()


# -- Mosquitto ------------------------------------------------------------------------
def test_mosquitto_publish_and_receive(mosquitto: MosquittoServer) -> None:
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    assert _pub_sub_roundtrip(_conn_args(mosquitto), "towerwatch/t", "hello") == "hello"


def test_mosquitto_restart_same_port_keeps_retained(mosquitto: MosquittoServer) -> None:
    conn = _conn_args(mosquitto)
    assert _pub(conn, "towerwatch/retained", "kept", "-r").returncode == 0
    port = mosquitto.port
    mosquitto.restart()
    assert mosquitto.port == port
    assert mosquitto.running
    assert _sub_once(conn, "towerwatch/retained") == "kept"
    assert (mosquitto.persistence_dir / "mosquitto.db").exists()


def test_mosquitto_startup_error_shows_log(mosquitto_factory: MosquittoFactory) -> None:
    with pytest.raises(ServerStartError, match="bogus_option"):
        mosquitto_factory(extra_config="bogus_option 1")


def test_mosquitto_tls_right_and_wrong_ca(
    mosquitto_tls: MosquittoServer, wrong_ca: CertificateAuthority
) -> None:
    assert mosquitto_tls.url.startswith("mqtts://127.0.0.1:")
    good = _pub(_conn_args(mosquitto_tls), "towerwatch/tls", "ok")
    assert good.returncode == 0, good.stderr
    bad = _pub(_conn_args(mosquitto_tls, cafile=wrong_ca.cert_path), "towerwatch/tls", "no")
    assert bad.returncode != 0
    plain = _pub(["-h", mosquitto_tls.host, "-p", str(mosquitto_tls.port)], "towerwatch/tls", "x")
    assert plain.returncode != 0


def test_mosquitto_mutual_tls(mosquitto_factory: MosquittoFactory) -> None:
    server = mosquitto_factory(tls=True, require_client_cert=True)
    assert server.ca is not None
    client = server.ca.issue_client("gateway-1")
    ok = _pub(_conn_args(server, cert=(client.cert_path, client.key_path)), "t/m", "ok")
    assert ok.returncode == 0, ok.stderr
    assert _pub(_conn_args(server), "t/m", "no-cert").returncode != 0


def test_mosquitto_auth_password_and_acl(mosquitto_auth: MosquittoServer) -> None:
    admin = _conn_args(mosquitto_auth, "admin")
    wrong = [*_conn_args(mosquitto_auth), "-u", "gateway", "-P", "not-the-password"]
    refused = _pub(wrong, "towerwatch/x", "x")
    assert refused.returncode != 0
    assert "not authori" in (refused.stderr + refused.stdout).lower()
    assert _pub(_conn_args(mosquitto_auth), "towerwatch/x", "anon").returncode != 0

    # ACL: gateway may write towerwatch/#, not other/#; reader may only read.
    gateway = _conn_args(mosquitto_auth, "gateway")
    reader = _conn_args(mosquitto_auth, "reader")
    for conn, topic in (
        (gateway, "towerwatch/acl/gateway"),
        (gateway, "other/acl/gateway"),
        (reader, "towerwatch/acl/reader"),
    ):
        assert _pub(conn, topic, "v", "-r").returncode == 0  # denials are silent in 3.1.1
    assert _retained_topics(admin, "#") == {"towerwatch/acl/gateway"}
    assert _retained_topics(reader, "towerwatch/#") == {"towerwatch/acl/gateway"}


@pytest.mark.parametrize(
    "mosquitto_auth",
    [MqttAuthSpec(users={"solo": "pw"}, acl="user solo\ntopic readwrite solo/#\n")],
    indirect=True,
)
def test_mosquitto_auth_custom_spec(mosquitto_auth: MosquittoServer) -> None:
    conn = _conn_args(mosquitto_auth, "solo")
    assert _pub(conn, "solo/a", "1", "-r").returncode == 0
    assert _sub_once(conn, "solo/a") == "1"


# -- PostgreSQL -----------------------------------------------------------------------
def _psql(dsn: str, sql: str) -> str:
    result = subprocess.run(
        [tool("psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", sql],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_postgres_select_1(postgres: PostgresServer) -> None:
    assert postgres.dsn == f"postgresql://postgres@127.0.0.1:{postgres.port}/towerwatch"
    assert postgres.sqlalchemy_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    assert _psql(postgres.dsn, "SELECT 1") == "1"


def test_postgres_db_is_fresh(postgres_db: PostgresDatabase) -> None:
    assert _psql(postgres_db.dsn, "SELECT current_database()") == postgres_db.name
    _psql(postgres_db.dsn, "CREATE TABLE t (x int); INSERT INTO t VALUES (42)")
    assert _psql(postgres_db.dsn, "SELECT x FROM t") == "42"
    assert postgres_db.sqlalchemy_url.endswith(f"/{postgres_db.name}")


# -- InfluxDB 1.x ---------------------------------------------------------------------
def test_influxdb_write_and_query(influx_db: InfluxDatabase) -> None:
    now = time.time_ns()
    lines = f"pump,site=a,device=p1 pressure=2.5 {now}\npump,site=a,device=p2 pressure=3.5 {now}"
    resp = request("POST", f"{influx_db.url}/write", params={"db": influx_db.database}, data=lines)
    assert resp.status == 204, resp.text
    resp = request(
        "GET",
        f"{influx_db.url}/query",
        params={"db": influx_db.database, "q": 'SELECT sum("pressure") FROM "pump"'},
    )
    assert resp.ok, resp.text
    series = resp.json()["results"][0]["series"][0]
    assert series["values"][0][1] == pytest.approx(6.0)


def test_influxdb_two_servers_at_once(influxdb: InfluxDB1Server) -> None:
    with InfluxDB1Server(database="second") as other:
        assert other.port != influxdb.port
        names = other.query("SHOW DATABASES")["results"][0]["series"][0]["values"]
        assert ["second"] in names


# -- VictoriaMetrics ------------------------------------------------------------------
def _poll(fetch: Callable[[], str], timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = fetch()
        if text or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


@pytest.mark.parametrize("path", ["/write", "/api/v2/write?bucket=towerwatch"])
def test_victoria_influx_write_and_export(victoria: VictoriaMetricsServer, path: str) -> None:
    metric = "meter_v1" if path == "/write" else "meter_v2"
    now_ms = int(time.time() * 1000)
    resp = request(
        "POST", f"{victoria.url}{path}", data=f"{metric},site=b energy=12.5 {now_ms * 1_000_000}"
    )
    assert resp.ok, resp.text

    def export() -> str:
        victoria.flush()
        selector = f'{{__name__="{metric}_energy"}}'
        return request("GET", f"{victoria.url}/api/v1/export", params={"match[]": selector}).text

    text = _poll(export)
    assert '"site":"b"' in text
    assert '"values":[12.5]' in text
    assert f'"timestamps":[{now_ms}]' in text


# -- CI policy: a skipped integration test is a failure -------------------------------
INNER_TESTS = textwrap.dedent(
    """
    import pytest

    from tests.servers import binaries


    @pytest.fixture
    def no_binaries(monkeypatch):
        def require(name):
            raise binaries.ServerUnavailable(f"{name!r} missing (simulated)")

        monkeypatch.setattr(binaries, "require", require)


    @pytest.mark.integration
    def test_skipped():
        pytest.skip("deliberately skipped")


    def test_missing_binary(no_binaries, mosquitto):
        pass
    """
)


@pytest.mark.parametrize("ci", [False, True])
def test_ci_turns_skips_into_failure(tmp_path: Path, ci: bool) -> None:
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    integration: real servers\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    if ci:
        env["CI"] = "true"
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "tests.servers.plugin", "-p", "no:cacheprovider",
            "-p", "no:asyncio", "-q", "-rs", str(tmp_path),
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    out = result.stdout + result.stderr
    if ci:
        assert result.returncode == 1, out
        assert "1 skipped, 1 error" in out
        assert "'mosquitto' missing (simulated)" in out
        assert "CI=true and 1 integration test(s) were skipped" in out
    else:
        assert result.returncode == 0, out
        assert "2 skipped" in out
