"""A real VictoriaMetrics (single node) on a free loopback port, in a temp dir."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tests.servers import binaries
from tests.servers.httpclient import request
from tests.servers.ports import wait_for_http
from tests.servers.process import ServerProcess

__all__ = ["VictoriaMetricsServer"]

# Test-friendly defaults: keep old timestamps, and make fresh points queryable at once
# (the default latency offset hides the last 30 s from /api/v1/query).
DEFAULT_ARGS = (
    "-retentionPeriod=100y",
    "-search.latencyOffset=0s",
    "-search.disableCache",
    "-loggerLevel=WARN",
)


class VictoriaMetricsServer(ServerProcess):
    """``victoria-metrics -storageDataPath=DIR -httpListenAddr=127.0.0.1:PORT``.

    Only the HTTP listener is enabled (graphite/influx/opentsdb listeners are off unless
    their ``-*ListenAddr`` flags are given); influx line protocol goes to ``/write`` or
    ``/api/v2/write`` on the HTTP port.
    """

    name = "victoria"

    def __init__(
        self,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        base_dir: Path | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        super().__init__(port=port, base_dir=base_dir, startup_timeout=startup_timeout)
        self.data_dir = self.workdir / "data"
        self.extra_args = tuple(extra_args)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _argv(self) -> list[str]:
        return [
            str(binaries.require("victoria-metrics")),
            f"-storageDataPath={self.data_dir}",
            f"-httpListenAddr={self.host}:{self.port}",
            *DEFAULT_ARGS,
            *self.extra_args,
        ]

    def _wait_ready(self) -> None:
        wait_for_http(f"{self.url}/health", self.startup_timeout, alive=self._alive)

    def flush(self) -> None:
        """Make just-written data searchable now (``/internal/force_flush``).

        Without it a *new* series shows up in queries/exports only after ~10 s.
        """
        resp = request("GET", f"{self.url}/internal/force_flush")
        if not resp.ok:
            raise RuntimeError(f"force_flush: HTTP {resp.status} {resp.text}")
