"""The site config of one edge gateway: where to publish, and which devices to poll.

Read with :func:`load_config`, which checks the file *and* every profile it names and
raises :class:`~edge.errors.ConfigError` listing every problem with file:line.
Secrets never live in this file: MQTT passwords come from ``password_file`` or
``password_env``; TLS material from files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from device_profiles.durations import Duration
from device_profiles.schema import ByteOrder, Identifier
from towerwatch.secrets import read_secret

Port = Annotated[int, Field(ge=1, le=65535)]
Unit = Annotated[int, Field(ge=0, le=255)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _field_error(model: str, field: str, value: Any, message: str) -> NoReturn:
    """Fail a model check at ``field`` (not at the whole model), so that a config error
    points at the line of the setting that is wrong."""
    error = PydanticCustomError("value_error", message)
    raise ValidationError.from_exception_data(
        model, [InitErrorDetails(type=error, loc=(field,), input=value)])


class Location(_Strict):
    building: str | None = None
    floor: str | None = None
    room: str | None = None


class ModbusTcp(_Strict):
    """Modbus TCP, or RTU framing over TCP (a serial server / RS-485 gateway)."""

    host: str
    port: Port = 502
    unit: Unit = 1
    framing: Literal["socket", "rtu"] = "socket"


class ModbusSerial(_Strict):
    """Modbus RTU on a serial line; devices naming the same ``port`` share one bus."""

    serial: str
    baud: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 19200
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    unit: Annotated[int, Field(ge=1, le=247)] = 1


class Bacnet(_Strict):
    address: str
    """``host`` or ``host:port`` of the device (default port 47808)."""
    instance: Annotated[int, Field(ge=0, le=4194302)]


MODBUS_TAGS = ("modbus-tcp", "modbus-serial")
"""Names of the two kinds of Modbus connection in validation errors (left out of paths)."""


def _modbus_kind(data: Any) -> str:
    """A connection with ``serial`` is a serial line; anything else is TCP (so a typo
    is reported against one kind only, not against both)."""
    has_serial = "serial" in data if isinstance(data, dict) else isinstance(data, ModbusSerial)
    return MODBUS_TAGS[1] if has_serial else MODBUS_TAGS[0]


ModbusConnection = Annotated[
    Annotated[ModbusTcp, Tag(MODBUS_TAGS[0])] | Annotated[ModbusSerial, Tag(MODBUS_TAGS[1])],
    Discriminator(_modbus_kind)]


class DeviceConfig(_Strict):
    id: Identifier
    name: str | None = None
    location: Location = Location()
    profile: Identifier
    modbus: ModbusConnection | None = None
    bacnet: Bacnet | None = None
    enabled: bool = True
    poll: dict[Identifier, Duration] = {}
    """Per poll-group interval overrides, e.g. ``{fast: 2s}``."""
    disabled_points: list[Identifier] = []
    byte_order: ByteOrder | None = None
    """Overrides the profile's default byte order (a device configured differently)."""
    max_registers: Annotated[int, Field(ge=1, le=125)] | None = None
    writable: list[Identifier] = []
    """Allow-list of points the cloud may write (they must be writable in the profile too)."""

    @model_validator(mode="after")
    def _one_connection(self) -> DeviceConfig:
        if (self.modbus is None) == (self.bacnet is None):
            raise ValueError("a device has exactly one of 'modbus' or 'bacnet'")
        return self

    @property
    def protocol(self) -> Literal["modbus", "bacnet"]:
        return "modbus" if self.modbus is not None else "bacnet"


class MqttConfig(_Strict):
    url: str = "mqtt://127.0.0.1:1883"
    """``mqtt://host:port`` or ``mqtts://host:port`` (TLS, verified, never downgraded)."""
    client_id: str | None = None
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 30
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    max_inflight: Annotated[int, Field(ge=1, le=1000)] = 100

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str) -> str:
        expected = f"expected mqtt://host:port or mqtts://host:port, got {url!r}"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{expected}: {exc}") from None
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(expected)
        if parts.username is not None or parts.password is not None:
            raise ValueError("credentials do not belong in the url; use mqtt.username and "
                             "mqtt.password_file or mqtt.password_env")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{expected} (no path or query)")
        if port == 0:
            raise ValueError(f"{expected}: port 0")
        return url

    @model_validator(mode="after")
    def _tls_and_secrets(self) -> MqttConfig:
        if self.password_file is not None and self.password_env is not None:
            _field_error("MqttConfig", "password_env", self.password_env,
                         "give the password by password_file or password_env, not both")
        if (self.cert_file is None) != (self.key_file is None):
            given = "cert_file" if self.cert_file is not None else "key_file"
            _field_error("MqttConfig", given, str(getattr(self, given)),
                         "a client certificate needs both cert_file and key_file")
        if not self.tls:
            for name in ("ca_file", "cert_file", "key_file"):
                if getattr(self, name) is not None:
                    _field_error("MqttConfig", name, str(getattr(self, name)),
                                 "TLS files are given but the url is not mqtts://")
        return self

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        host = urlsplit(self.url).hostname
        assert host is not None  # checked by the validator
        return host

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)

    def password(self) -> str | None:
        """The password, read from its file or environment variable at connect time."""
        return read_secret(self.password_file, self.password_env, "mqtt password")


class OutboxConfig(_Strict):
    path: Path = Path("outbox.db")
    max_messages: Annotated[int, Field(ge=100)] = 1_000_000
    overflow: Literal["drop_oldest_telemetry", "refuse_new"] = "drop_oldest_telemetry"
    """When full: drop the oldest telemetry (events are kept), or refuse new telemetry."""


class PollingConfig(_Strict):
    timeout: Duration = 0.5
    """Per request; short, so one dead device costs little."""
    offline_after: Annotated[int, Field(ge=1, le=100)] = 3
    """Missed cycles before a device is published offline and its points go stale."""
    backoff_max: Duration = 60.0
    max_gap: Annotated[int, Field(ge=0, le=125)] | None = None
    """Overrides every profile's gap limit for block reads."""
    serial_gap_ms: Annotated[int, Field(ge=0, le=1000)] = 5
    """Silence between frames on a serial bus (on top of the profile's min_gap_ms)."""


class HttpConfig(_Strict):
    listen: str = "127.0.0.1:9105"
    """``host:port`` for /healthz, /metrics and the status page; ``""`` turns it off."""


class BacnetClientConfig(_Strict):
    address: str = "0.0.0.0:47809"
    """The gateway's own BACnet/IP address (``host/prefix:port``); not the devices' port."""
    instance: Annotated[int, Field(ge=0, le=4194302)] = 4194000
    cov_lifetime: Duration = 300.0


class SiteConfig(_Strict):
    site: Identifier
    gateway: Identifier
    timezone: str = "UTC"
    profiles: list[Path] = []
    """Extra profile folders (relative to this file); the shipped profiles are always read."""
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig = OutboxConfig()
    polling: PollingConfig = PollingConfig()
    http: HttpConfig = HttpConfig()
    bacnet: BacnetClientConfig = BacnetClientConfig()
    devices: list[DeviceConfig] = []

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: Any) -> Any:
        mqtt = data.get("mqtt") if isinstance(data, dict) else None
        if isinstance(mqtt, dict) and "password" in mqtt:
            raise ValueError("mqtt.password must not be written in the config; "
                             "use mqtt.password_file or mqtt.password_env")
        return data

    def device(self, device_id: str) -> DeviceConfig:
        for device in self.devices:
            if device.id == device_id:
                return device
        raise KeyError(f"no device {device_id!r} in gateway {self.gateway!r}")

