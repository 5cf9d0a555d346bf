"""pytest fixtures that run real servers; enable with ``pytest_plugins = ["tests.servers.plugin"]``.

A missing server binary skips the test, except with ``CI=true`` where it fails; and with
``CI=true`` any skipped integration test makes the session exit non-zero.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, TypeVar, Unpack

import pytest

from tests.servers.binaries import ServerUnavailable, require
from tests.servers.influxdb import InfluxDB1Server
from tests.servers.mosquitto import BrokerOptions, MosquittoServer
from tests.servers.postgres import PostgresServer
from tests.servers.process import ManagedServer, make_workdir
from tests.servers.tls import CertificateAuthority
from tests.servers.victoria import VictoriaMetricsServer

__all__ = [
    "DEFAULT_MQTT_AUTH",
    "InfluxDatabase",
    "MosquittoFactory",
    "MqttAuthSpec",
    "PostgresDatabase",
    "in_ci",
    "tool",
    "unavailable",
]

T = TypeVar("T")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it when ``CI=true`` (a skipped integration test is a CI failure)."""
    if in_ci():
        pytest.fail(f"{reason} [CI=true: missing servers fail instead of skipping]", pytrace=False)
    pytest.skip(reason)


def tool(name: str) -> str:
    """The path of command ``name``; unavailable (skip, or fail in CI) when not installed."""
    try:
        return str(require(name))
    except ServerUnavailable as err:
        unavailable(str(err))


def _or_unavailable(make: Callable[[], T]) -> T:
    try:
        return make()
    except ServerUnavailable as err:
        unavailable(str(err))


S = TypeVar("S", bound=ManagedServer)


def _serve(make: Callable[[], S]) -> Iterator[S]:
    """A session fixture's body: make and start the server, close it at the end."""
    server = _or_unavailable(make)
    try:
        yield _or_unavailable(server.start)
    finally:
        server.close()


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


# -- TLS ------------------------------------------------------------------------------
@pytest.fixture
def make_ca() -> Iterator[Callable[[str], CertificateAuthority]]:
    """Factory for fresh, mutually unrelated CAs: ``make_ca("name")``."""
    workdir = make_workdir("ca")
    count = 0

    def make(name: str = "Towerwatch Test CA") -> CertificateAuthority:
        nonlocal count
        count += 1
        directory = workdir / f"ca{count}"
        return _or_unavailable(lambda: CertificateAuthority(directory, name))

    try:
        yield make
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def wrong_ca(make_ca: Callable[[str], CertificateAuthority]) -> CertificateAuthority:
    """A CA unrelated to any server's: TLS verification against it must fail."""
    return make_ca("Unrelated Wrong CA")


# -- Mosquitto ------------------------------------------------------------------------
@dataclass(frozen=True)
class MqttAuthSpec:
    """Users (name → password) and ACL text for ``mosquitto_auth``."""

    users: Mapping[str, str]
    acl: str | None = None


DEFAULT_MQTT_AUTH = MqttAuthSpec(
    users={"admin": "admin-secret", "gateway": "gateway-secret", "reader": "reader-secret"},
    acl=(
        "user admin\ntopic readwrite #\n\n"
        "user gateway\ntopic readwrite towerwatch/#\n\n"
        "user reader\ntopic read towerwatch/#\n"
    ),
)


@dataclass
class MosquittoFactory:
    """``mosquitto_factory(tls=..., users=..., acl=..., ...)`` → a started broker.

    Accepts the keyword arguments of :class:`MosquittoServer`; every broker made is
    stopped and its temp dir removed at teardown.
    """

    servers: list[MosquittoServer] = field(default_factory=list)

    def __call__(self, **options: Unpack[BrokerOptions]) -> MosquittoServer:
        def make() -> MosquittoServer:
            server = MosquittoServer(**options)
            self.servers.append(server)
            return server.start()

        return _or_unavailable(make)

    def close_all(self) -> None:
        errors: list[BaseException] = []
        for server in reversed(self.servers):
            try:
                server.close()
            except Exception as err:  # pragma: no cover - keep closing the others
                errors.append(err)
        self.servers.clear()
        if errors:
            raise errors[0]


@pytest.fixture
def mosquitto_factory() -> Iterator[MosquittoFactory]:
    factory = MosquittoFactory()
    try:
        yield factory
    finally:
        factory.close_all()


@pytest.fixture
def mosquitto(mosquitto_factory: MosquittoFactory) -> MosquittoServer:
    """A plain anonymous broker on ``mosquitto.url`` (``mqtt://127.0.0.1:PORT``)."""
    return mosquitto_factory()


@pytest.fixture
def mosquitto_tls(mosquitto_factory: MosquittoFactory) -> MosquittoServer:
    """A TLS-only broker (``mqtts://``); trust ``mosquitto_tls.ca_path``."""
    return mosquitto_factory(tls=True)


@pytest.fixture
def mosquitto_auth(
    request: pytest.FixtureRequest, mosquitto_factory: MosquittoFactory
) -> MosquittoServer:
    """A broker with password file + ACL; passwords in ``mosquitto_auth.users``.

    Default spec: :data:`DEFAULT_MQTT_AUTH`. Override per test with
    ``@pytest.mark.parametrize("mosquitto_auth", [MqttAuthSpec(...)], indirect=True)``.
    """
    spec: MqttAuthSpec = getattr(request, "param", DEFAULT_MQTT_AUTH)
    return mosquitto_factory(users=spec.users, acl=spec.acl)


# -- PostgreSQL -----------------------------------------------------------------------
@dataclass(frozen=True)
class PostgresDatabase:
    name: str
    dsn: str
    sqlalchemy_url: str
    server: PostgresServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster per session (database ``towerwatch``)."""
    yield from _serve(PostgresServer)


@pytest.fixture
def postgres_db(postgres: PostgresServer) -> Iterator[PostgresDatabase]:
    """A fresh, empty database for this test (dropped afterwards)."""
    name = postgres.create_database(_unique("test"))
    try:
        yield PostgresDatabase(
            name, postgres.dsn_for(name), postgres.sqlalchemy_url_for(name), postgres
        )
    finally:
        postgres.drop_database(name)


# -- InfluxDB 1.x ---------------------------------------------------------------------
@dataclass(frozen=True)
class InfluxDatabase:
    url: str
    database: str
    server: InfluxDB1Server


@pytest.fixture(scope="session")
def influxdb() -> Iterator[InfluxDB1Server]:
    """One InfluxDB 1.x per session (database ``towerwatch``)."""
    yield from _serve(InfluxDB1Server)


@pytest.fixture
def influx_db(influxdb: InfluxDB1Server) -> Iterator[InfluxDatabase]:
    """A fresh database on the session InfluxDB (dropped afterwards)."""
    name = influxdb.create_database(_unique("test"))
    try:
        yield InfluxDatabase(influxdb.url, name, influxdb)
    finally:
        influxdb.drop_database(name)


# -- VictoriaMetrics ------------------------------------------------------------------
@pytest.fixture(scope="session")
def victoria() -> Iterator[VictoriaMetricsServer]:
    """One VictoriaMetrics per session: use unique metric names/labels per test."""
    yield from _serve(VictoriaMetricsServer)


# -- CI: a skipped integration test is a failure --------------------------------------
def _is_integration(report: pytest.TestReport) -> bool:
    path = Path(report.nodeid.split("::", 1)[0])
    return "integration" in report.keywords or "integration" in path.parts


class CiSkipGuard:
    """With ``CI=true``, any skipped integration test turns the exit status non-zero."""

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail") and _is_integration(report):
            self.skipped.append(report.nodeid)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.skipped and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.skipped:
            return
        terminalreporter.section("CI: skipped integration tests", sep="=", red=True, bold=True)
        terminalreporter.line(
            f"CI=true and {len(self.skipped)} integration test(s) were skipped; "
            "exit status set to 1:",
            red=True,
        )
        for nodeid in self.skipped:
            terminalreporter.line(f"  {nodeid}")


def pytest_configure(config: pytest.Config) -> None:
    if in_ci() and not config.pluginmanager.has_plugin("towerwatch-ci-skip-guard"):
        config.pluginmanager.register(CiSkipGuard(), "towerwatch-ci-skip-guard")
