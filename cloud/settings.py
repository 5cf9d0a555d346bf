"""Settings of the cloud service: a YAML file, overridden by ``TW_*`` environment variables.

``TW_DATABASE_URL`` overrides ``database_url``; nested keys use ``__``
(``TW_TIMESERIES__BACKEND=influx``). Built in ``create_app()`` / the CLI, never at import.
Secrets come from files or environment variables, never from the YAML itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from cloud.alarms.settings import AlarmSettings
from cloud.notify.webhook import WebhookSettings
from cloud.patrols.settings import PatrolSettings
from device_profiles.durations import Duration
from towerwatch.secrets import read_secret
from towerwatch.sourced_yaml import SourceError, issues_from_validation, load_yaml


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TimeseriesSettings(_Section):
    backend: Literal["sqlite", "influx"] = "sqlite"
    sqlite_path: Path = Path("var/timeseries.db")
    influx_url: str = "http://127.0.0.1:8086"
    influx_write_api: Literal["v1", "v2"] = "v1"
    influx_database: str = "towerwatch"
    """v1 database (InfluxDB 1.x); also the database InfluxQL queries name."""
    influx_bucket: str | None = None
    influx_org: str | None = None
    influx_token_file: Path | None = None
    influx_token_env: str | None = None
    influx_query_url: str | None = None
    """Where InfluxQL ``/query`` is answered, if not at ``influx_url``."""
    retention: Duration = 400 * 86400.0


class MqttSettings(_Section):
    url: str = "mqtt://127.0.0.1:1883"
    client_id: str | None = None
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    ca_file: Path | None = None
    shared_group: str = "tw-ingest"
    shared: Literal["auto", "yes", "no"] = "auto"
    """MQTT 5 shared subscription; ``auto`` uses it when the broker speaks MQTT 5."""

    def password(self) -> str | None:
        return read_secret(self.password_file, self.password_env, "mqtt password")


class IngestSettings(_Section):
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 5000
    batch_wait: Duration = 0.2
    """Longest a received message waits before its batch is written."""
    skew_tolerance: Duration = 300.0
    """Edge clocks further off than this are flagged."""
    replay_after: Duration = 60.0
    """An accepted event the alarm service has not applied this long after its claim
    (its worker died, or applying it failed) is handed to it again by the replay job."""
    metrics_listen: str | None = None
    """``host:port`` where ``cloud ingest`` (workers without the API) serves Prometheus
    metrics; ``cloud serve`` shows them on the API's ``/metrics``."""

    @field_validator("metrics_listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _host, colon, port = value.rpartition(":")
        if not colon or not port.isdigit() or not 0 <= int(port) <= 65_535:
            raise ValueError(f"expected host:port (port 0-65535), got {value!r}")
        return value


class ApiSettings(_Section):
    listen: str = "127.0.0.1:8080"
    secret_file: Path | None = None
    secret_env: str | None = "TW_API_SECRET"
    token_ttl: Duration = 12 * 3600.0
    login_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    """Failed logins allowed per user and address in ``login_window`` before refusing."""
    login_window: Duration = 300.0
    max_points: Annotated[int, Field(ge=100, le=1_000_000)] = 100_000
    max_range: Duration = 400 * 86400.0
    photos_dir: Path = Path("var/photos")
    """Where work-order photos are kept (files named by their SHA-256)."""
    photo_max_bytes: Annotated[int, Field(ge=1024, le=100 * 1024 * 1024)] = 10 * 1024 * 1024


class CloudSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TW_", env_nested_delimiter="__",
                                      extra="forbid", frozen=True)

    database_url: str = "sqlite:///var/towerwatch.db"
    timeseries: TimeseriesSettings = TimeseriesSettings()
    mqtt: MqttSettings = MqttSettings()
    ingest: IngestSettings = IngestSettings()
    api: ApiSettings = ApiSettings()
    alarms: AlarmSettings = AlarmSettings()
    webhooks: tuple[WebhookSettings, ...] = ()
    patrols: PatrolSettings = PatrolSettings()

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for section, key in (("mqtt", "password"), ("api", "secret"),
                                 ("timeseries", "influx_token"), ("patrols", "master_key")):
                if isinstance(data.get(section), dict) and key in data[section]:
                    raise ValueError(f"{section}.{key} must not be written in the config; "
                                     f"use {section}.{key}_file or {section}.{key}_env")
        return data

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file (the file arrives as init values).
        return env_settings, init_settings


def load_settings(path: Path | str | None) -> CloudSettings:
    """Settings from ``path`` (or defaults) plus the environment; errors name file:line."""
    raw: Any = {}
    if path is not None:
        raw = load_yaml(path) or {}
    try:
        return CloudSettings(**raw)
    except ValidationError as exc:
        raise SourceError(issues_from_validation(exc, raw)) from exc
