"""Real servers (Mosquitto, PostgreSQL, InfluxDB 1.x, VictoriaMetrics) for integration tests.

Each runs on free loopback ports in its own temp dir; see ``tests.servers.plugin`` for the
pytest fixtures.
"""

from tests.servers.binaries import ServerUnavailable
from tests.servers.influxdb import InfluxDB1Server
from tests.servers.mosquitto import MosquittoServer
from tests.servers.postgres import PostgresServer
from tests.servers.process import ServerStartError
from tests.servers.tls import CertificateAuthority, KeyPair
from tests.servers.victoria import VictoriaMetricsServer

__all__ = [
    "CertificateAuthority",
    "InfluxDB1Server",
    "KeyPair",
    "MosquittoServer",
    "PostgresServer",
    "ServerStartError",
    "ServerUnavailable",
    "VictoriaMetricsServer",
]
