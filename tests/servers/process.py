"""Common plumbing: temp dirs owned by a service user, the lifecycle every test server
shares, and a managed child process."""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from tests.servers import binaries
from tests.servers.ports import LOOPBACK, free_port

__all__ = [
    "ManagedServer",
    "ServerProcess",
    "ServerStartError",
    "as_user",
    "chown_tree",
    "is_root",
    "make_workdir",
    "tail",
]

STOP_TIMEOUT = 5.0


class ServerStartError(RuntimeError):
    """A server binary exists but the server did not come up (log tail in the message)."""


def is_root() -> bool:
    return os.geteuid() == 0


def chown_tree(path: Path, user: str) -> None:
    """Give ``path`` and everything below it to ``user`` (no-op unless root)."""
    if not is_root():
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def make_workdir(prefix: str, owner: str | None = None, base_dir: Path | None = None) -> Path:
    """Create a private temp dir (under /tmp by default, which any user can traverse).

    pytest's ``tmp_path`` lives under a 0700 root-owned directory that a server which
    drops root (mosquitto, postgres) cannot reach, hence our own directory.
    """
    path = Path(tempfile.mkdtemp(prefix=f"towerwatch-{prefix}-", dir=base_dir))
    if owner is not None:
        chown_tree(path, owner)
    return path


def as_user(argv: Sequence[str], user: str) -> list[str]:
    """Prefix ``argv`` with ``runuser -u USER --`` when running as root."""
    if not is_root():
        return list(argv)
    return [str(binaries.require("runuser")), "-u", user, "--", *argv]


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        return f"<no log: {err}>"
    return "\n".join(text.splitlines()[-lines:])


_LIVE: set[ManagedServer] = set()


@atexit.register
def _stop_leftovers() -> None:  # safety net for servers used outside fixtures
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.close()


class ManagedServer(ABC):
    """A server on ``host:port`` (a free loopback port unless given) with its own temp
    dir, owned by ``owner`` and logging to ``workdir/server.log``.

    Subclasses implement ``start()``, ``stop()`` and ``running``, and call ``_track()``
    once a server may be running (``_untrack()`` once it is not), so that one left running
    is stopped when the interpreter exits. ``close()`` (stop + delete the temp dir),
    ``log_tail()`` and the context manager are shared.
    """

    name = "server"
    owner: str | None = None  # service user that must own the work dir

    def __init__(self, *, port: int | None = None, base_dir: Path | None = None,
                 startup_timeout: float = 20.0) -> None:
        self.host = LOOPBACK
        self.port = port if port is not None else free_port()
        self.workdir = make_workdir(self.name, self.owner, base_dir)
        self.log_path = self.workdir / "server.log"
        self.startup_timeout = startup_timeout

    @property
    @abstractmethod
    def running(self) -> bool: ...

    @abstractmethod
    def start(self) -> Self: ...

    @abstractmethod
    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Stop the server (its data stays in ``workdir``); the exit code when known."""

    def _track(self) -> None:
        _LIVE.add(self)

    def _untrack(self) -> None:
        _LIVE.discard(self)

    def startup_error(self, reason: str) -> ServerStartError:
        return ServerStartError(
            f"{self.name} failed to start: {reason}\n"
            f"--- {self.log_path} (tail) ---\n{tail(self.log_path)}"
        )

    def close(self) -> None:
        """Stop the server and delete its temp dir."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.host}:{self.port} dir={self.workdir}>"


class ServerProcess(ManagedServer):
    """A server run as a direct child process.

    Subclasses implement ``_argv()`` and ``_wait_ready()``; ``start()``, ``stop()`` and
    ``kill()`` are shared.
    """

    def __init__(self, *, port: int | None = None, base_dir: Path | None = None,
                 startup_timeout: float = 20.0) -> None:
        super().__init__(port=port, base_dir=base_dir, startup_timeout=startup_timeout)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- to override -------------------------------------------------------------
    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> Mapping[str, str] | None:
        return None

    def _wait_ready(self) -> None:
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _alive(self) -> bool:
        return self.running

    def start(self) -> Self:
        if self.running:
            return self
        argv = self._argv()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self._env(),
            )
        except BaseException:
            self._reap()
            raise
        self._track()
        try:
            self._wait_ready()
        except BaseException as err:
            code = self._terminate(signal.SIGKILL)
            if isinstance(err, Exception):
                raise self.startup_error(f"{err} (exit code {code})") from err
            raise
        return self

    def _terminate(self, sig: signal.Signals, timeout: float = STOP_TIMEOUT) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        code = proc.returncode
        self._reap()
        return code

    def _reap(self) -> None:
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        self._untrack()

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout``); return the exit code."""
        return self._terminate(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL: an abrupt crash, nothing is flushed."""
        return self._terminate(signal.SIGKILL)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} pid={self.pid} dir={self.workdir}>"
