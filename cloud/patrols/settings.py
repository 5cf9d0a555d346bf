"""Settings of the patrol service (the ``patrols:`` section of the cloud settings).

The master key that seals and derives tag keys comes from ``master_key_file`` or the
environment variable ``master_key_env`` (default ``TW_PATROL_MASTER_KEY``), never from the
YAML itself. Without one, UID and QR checkpoints work, SUN checkpoints cannot be enrolled
or verified (the API says so with 503 ``patrol_keys_unavailable``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from cloud.patrols.errors import PatrolConfigError
from cloud.patrols.keys import KeyVault, parse_master_key
from device_profiles.durations import Duration
from towerwatch.secrets import read_secret

__all__ = ["PatrolSettings"]


class PatrolSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    master_key_file: Path | None = None
    master_key_env: str | None = "TW_PATROL_MASTER_KEY"
    skew_tolerance: Duration = 120.0
    """A phone clock further off than this (judged when a scan or batch arrives) is flagged
    ``clock_skew``, and its scans are placed at the corrected time."""
    max_offline_age: Duration = 7 * 86400.0
    """Oldest device time accepted in an offline batch."""
    max_walk_speed: Annotated[float, Field(gt=0, le=50)] = 2.5
    """Metres per second between checkpoints with known positions; faster is ``too_fast``."""
    planning_horizon: Duration = 6 * 3600.0
    """How far ahead scheduled tours are created (guards see what is coming)."""
    max_batch: Annotated[int, Field(ge=1, le=10_000)] = 500
    cookie_ttl: Duration = 12 * 3600.0
    """Life of the browser cookie a guard's phone gets from the tap login page."""

    def master_key(self) -> bytes | None:
        """The master secret, or ``None`` when none is configured."""
        try:
            text = read_secret(self.master_key_file, None, "patrols.master_key")
        except OSError as exc:
            raise PatrolConfigError(
                f"patrols.master_key_file {self.master_key_file}: {exc.strerror}") from exc
        where = f"patrols.master_key_file {self.master_key_file}"
        if text is None and self.master_key_env is not None:
            text = os.environ.get(self.master_key_env)
            where = f"${self.master_key_env}"
            if text is None and "master_key_env" in self.model_fields_set:
                raise PatrolConfigError(f"patrols.master_key_env names ${self.master_key_env},"
                                        " but it is not set in the environment")
        return None if text is None else parse_master_key(text, where)

    def vault(self) -> KeyVault | None:
        """The key vault of the configured master key (``None`` without one)."""
        master = self.master_key()
        return None if master is None else KeyVault(master)
