"""Site config validation: every mistake its own issue, at its line, with its path.

Each case is a whole config file; the line marked ``# <-`` is where the issue must point.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from edge.config import MqttConfig, SiteConfig
from edge.errors import ConfigError
from edge.loading import ConfigIssue, issue_text, load_config
from edge.tls import tls_context
from tests.servers.tls import CertificateAuthority
from towerwatch.sourced_yaml import SourceIssue

PROFILES = Path(__file__).resolve().parents[2] / "device_profiles" / "profiles"
HEAD = "site: s1\ngateway: g1\n"
BOOSTER = ("  - id: booster\n    profile: booster-pumpset-modbus\n"
           "    modbus: {host: 10.0.0.1}\n")

# (name, file body after HEAD, path of the issue, words of its message)
CASES = [
    ("unknown profile", """devices:
  - id: m1
    profile: no-such-meter  # <-
    modbus: {host: 10.0.0.1}
""", "devices[0].profile", "unknown profile 'no-such-meter'; known: booster-pumpset-modbus"),
    ("duplicate id", f"""devices:
{BOOSTER}  - id: booster  # <-
    profile: water-meter-modbus
    modbus: {{host: 10.0.0.2}}
""", "devices[1].id", "device id 'booster' is used twice"),
    ("writable point not writable in its profile", """devices:
  - id: booster
    profile: booster-pumpset-modbus
    modbus: {host: 10.0.0.1}
    writable:
      - pressure_setpoint
      - outlet_pressure  # <-
""", "devices[0].writable[1]", "point 'outlet_pressure' is not writable in "
     "'booster-pumpset-modbus'"),
    ("fire-panel point on the allow-list", """devices:
  - id: fire
    profile: fire-panel-modbus
    modbus: {host: 10.0.0.1}
    writable: [zone1_state]  # <-
""", "devices[0].writable[0]", "Fire_Alarm_Control_Panel points are never writable"),
    ("unknown point on the allow-list", """devices:
  - id: booster
    profile: booster-pumpset-modbus
    modbus: {host: 10.0.0.1}
    writable: [turbo_boost]  # <-
""", "devices[0].writable[0]", "profile 'booster-pumpset-modbus' has no point 'turbo_boost'"),
    ("disabled point that does not exist", """devices:
  - id: lift
    profile: elevator-ctl-modbus
    modbus: {host: 10.0.0.1}
    disabled_points:
      - trip_count
      - hover_height  # <-
""", "devices[0].disabled_points[1]", "profile 'elevator-ctl-modbus' has no point "
     "'hover_height'"),
    ("poll group override unknown", """devices:
  - id: lift
    profile: elevator-ctl-modbus
    modbus: {host: 10.0.0.1}
    poll:
      fast: 2s
      glacial: 1h  # <-
""", "devices[0].poll.glacial", "has no poll group 'glacial' (known: fast, normal, slow)"),
    ("serial bus with mismatched baud", """devices:
  - id: sump
    profile: sump-pump-modbus
    modbus: {serial: /dev/ttyUSB0, baud: 19200, unit: 1}
  - id: water
    profile: water-meter-modbus
    modbus:
      serial: /dev/ttyUSB0
      baud: 9600  # <-
      unit: 2
""", "devices[1].modbus.baud", "serial line /dev/ttyUSB0 runs at 19200 8E1 (device 'sump'), "
     "here 9600 8E1"),
    ("serial bus with mismatched parity", """devices:
  - id: sump
    profile: sump-pump-modbus
    modbus: {serial: /dev/ttyUSB0, unit: 1}
  - id: water
    profile: water-meter-modbus
    modbus: {serial: /dev/ttyUSB0, parity: N, unit: 2}  # <-
""", "devices[1].modbus.parity", "runs at 19200 8E1 (device 'sump'), here 19200 8N1"),
    ("one host:port with two framings", """devices:
  - id: sump
    profile: sump-pump-modbus
    modbus: {host: 10.0.0.9, port: 4001, unit: 1, framing: rtu}
  - id: water
    profile: water-meter-modbus
    modbus: {host: 10.0.0.9, port: 4001, unit: 2}  # <-
""", "devices[1].modbus.framing", "10.0.0.9:4001 is read with rtu framing (device 'sump'), "
     "here socket"),
    ("two devices at one address", f"""devices:
{BOOSTER}  - id: booster-2
    profile: booster-pumpset-modbus
    modbus: {{host: 10.0.0.1}}  # <-
""", "devices[1].modbus", "same address as device 'booster'"),
    ("profile of the other protocol", """devices:
  - id: lift
    profile: elevator-mon-bacnet
    modbus: {host: 10.0.0.1}  # <-
""", "devices[0].modbus", "profile 'elevator-mon-bacnet' is bacnet, but the device is "
     "connected by modbus"),
    ("byte order of a BACnet device", """devices:
  - id: lift
    profile: elevator-mon-bacnet
    bacnet: {address: 10.0.1.1, instance: 7}
    byte_order: CDAB  # <-
""", "devices[0].byte_order", "byte_order applies to Modbus devices only"),
    ("inline password", """mqtt:
  url: mqtts://broker.example:8883
  username: s1.g1
  password: hunter2  # <-
""", "mqtt.password", "mqtt.password must not be written in the config"),
    ("no connection", """devices:
  - id: lift  # <-
    profile: elevator-ctl-modbus
""", "devices[0]", "a device has exactly one of 'modbus' or 'bacnet'"),
    ("misspelt field", """devices:
  - id: lift
    profile: elevator-ctl-modbus
    modbus: {host: 10.0.0.1, prot: 502}  # <-
""", "devices[0].modbus.prot", "unknown field (check the spelling)"),
    ("serial setting out of range", """devices:
  - id: sump
    profile: sump-pump-modbus
    modbus: {serial: /dev/ttyUSB0, baud: 1234}  # <-
""", "devices[0].modbus.baud", "Input should be 1200, 2400"),
    ("url scheme", """mqtt:
  url: http://broker.example  # <-
""", "mqtt.url", "expected mqtt://host:port or mqtts://host:port"),
    ("credentials in the url", """mqtt:
  url: mqtt://gw:hunter2@broker.example  # <-
""", "mqtt.url", "credentials do not belong in the url"),
    ("port out of range", """mqtt:
  url: mqtts://broker.example:88830  # <-
""", "mqtt.url", "expected mqtt://host:port or mqtts://host:port"),
    ("TLS files with a plaintext url", """mqtt:
  url: mqtt://broker.example
  ca_file: ca.crt  # <-
""", "mqtt.ca_file", "TLS files are given but the url is not mqtts://"),
    ("two password sources", """mqtt:
  url: mqtts://broker.example
  password_file: secret
  password_env: TW_PASSWORD  # <-
""", "mqtt.password_env", "give the password by password_file or password_env, not both"),
    ("a certificate without its key", """mqtt:
  url: mqtts://broker.example
  cert_file: gw.crt  # <-
""", "mqtt.cert_file", "a client certificate needs both cert_file and key_file"),
    ("bad duration", """devices:
  - id: lift
    profile: elevator-ctl-modbus
    modbus: {host: 10.0.0.1}
    poll: {fast: soon}  # <-
""", "devices[0].poll.fast", "soon"),
]


def _write(tmp_path: Path, body: str) -> tuple[Path, int]:
    text = HEAD + body
    path = tmp_path / "site.yaml"
    path.write_text(text.replace("  # <-", ""))
    marked = [n for n, line in enumerate(text.splitlines(), 1) if line.endswith("# <-")]
    assert len(marked) == 1, "mark exactly one line"
    return path, marked[0]


def _issues(path: Path) -> list[SourceIssue]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return list(caught.value.issues)


@pytest.mark.parametrize(("body", "where", "words"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_each_mistake_is_one_issue_at_its_line(tmp_path: Path, body: str, where: str,
                                               words: str) -> None:
    path, line = _write(tmp_path, body)
    (issue,) = _issues(path)
    assert (issue.location.file, issue.location.line) == (str(path), line), str(issue)
    assert issue.path == where
    assert words in issue.message
    assert str(issue).startswith(f"{path}:{line}: {where}: ")


def test_every_mistake_at_once_each_at_its_line(tmp_path: Path) -> None:
    """The gateway's own checks run together and report each mistake once."""
    path, _ = _write(tmp_path, """mqtt:
  url: mqtt://broker
  password: x  # <-
devices:
  - id: m1
    profile: no-such-meter
    modbus: {host: 10.0.0.1}
  - id: m1
    profile: fire-panel-modbus
    modbus: {host: 10.0.0.2}
    writable: [zone1_state]
    disabled_points: [zone1_state, zone99_state]
    poll: {glacial: 1h}
""")
    issues = _issues(path)
    assert [(i.location.line, i.path) for i in issues] == [
        (5, "mqtt.password"), (8, "devices[0].profile"), (10, "devices[1].id"),
        (13, "devices[1].writable[0]"), (14, "devices[1].disabled_points[1]"),
        (15, "devices[1].poll.glacial")]
    assert all(isinstance(i, ConfigIssue) for i in issues)


def test_schema_mistakes_are_all_reported_with_an_inline_password(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, "mqtt:\n  password: x  # <-\n  keepalive: 1\ngateway_x: 1\n")
    issues = _issues(path)
    assert [i.path for i in issues] == ["mqtt.password", "mqtt.keepalive", "gateway_x"]


@pytest.mark.parametrize(("key", "zh"), [
    ("config.duplicate_id", "设备编号 'booster' 重复使用"),
    ("config.inline_password", "配置文件中不得写入 mqtt.password"),
])
def test_issues_of_our_checks_speak_chinese(tmp_path: Path, key: str, zh: str) -> None:
    body = next(c[1] for c in CASES if c[3].startswith(
        "device id" if key == "config.duplicate_id" else "mqtt.password"))
    path, line = _write(tmp_path, body)
    (issue,) = _issues(path)
    assert isinstance(issue, ConfigIssue) and issue.key == key
    assert issue_text(issue, "zh").startswith(f"{path}:{line}: {issue.path}: ")
    assert zh in issue_text(issue, "zh")
    assert issue_text(issue, "en") == str(issue)


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    site = tmp_path / "etc"
    (site / "profiles").mkdir(parents=True)
    text = (PROFILES / "water-meter-modbus.yaml").read_text()
    (site / "profiles" / "my-meter.yaml").write_text(
        text.replace("id: water-meter-modbus", "id: my-meter", 1))
    (site / "secret").write_text("s3cret\n")
    (site / "site.yaml").write_text(HEAD + """profiles: [profiles]
mqtt:
  url: mqtts://broker.example
  password_file: secret
  ca_file: tls/ca.crt
  cert_file: /abs/gw.crt
  key_file: tls/gw.key
outbox: {path: state/outbox.db}
devices:
  - id: meter
    profile: my-meter
    modbus: {host: 10.0.0.1}
""")
    loaded = load_config(site / "site.yaml")
    cfg = loaded.config
    assert cfg.mqtt.password_file == site / "secret"
    assert cfg.mqtt.ca_file == site / "tls" / "ca.crt"
    assert cfg.mqtt.cert_file == Path("/abs/gw.crt")
    assert cfg.mqtt.key_file == site / "tls" / "gw.key"
    assert cfg.outbox.path == site / "state" / "outbox.db"
    assert cfg.profiles == [site / "profiles"]
    assert loaded.profile_of(cfg.devices[0]).id == "my-meter"
    assert cfg.mqtt.password() == "s3cret"


def test_an_unreadable_config_is_an_issue(tmp_path: Path) -> None:
    (issue,) = _issues(tmp_path / "missing.yaml")
    assert issue.location.line == 1 and "cannot read" in issue.message


# -- MQTT settings -----------------------------------------------------------------------
def test_password_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("  top secret \n")
    assert MqttConfig(password_file=secret).password() == "top secret"
    assert MqttConfig().password() is None


def test_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    config = MqttConfig(password_env="TW_TEST_CONFIG_PW")
    monkeypatch.delenv("TW_TEST_CONFIG_PW", raising=False)
    with pytest.raises(ValueError, match="TW_TEST_CONFIG_PW is not set"):
        config.password()
    monkeypatch.setenv("TW_TEST_CONFIG_PW", "from-env")
    assert config.password() == "from-env"


def test_the_password_is_read_when_it_is_needed(tmp_path: Path) -> None:
    """A rotated password file takes effect at the next connect, without a reload."""
    secret = tmp_path / "pw"
    secret.write_text("one")
    config = MqttConfig(password_file=secret)
    assert config.password() == "one"
    secret.write_text("two")
    assert config.password() == "two"


def test_inline_password_is_refused_by_the_model_too() -> None:
    with pytest.raises(ValueError, match="must not be written"):
        SiteConfig.model_validate({"site": "s", "gateway": "g", "mqtt": {"password": "x"}})


@pytest.mark.parametrize(("url", "host", "port", "tls"), [
    ("mqtt://broker", "broker", 1883, False),
    ("mqtts://broker", "broker", 8883, True),
    ("mqtts://broker.example:18883", "broker.example", 18883, True),
    ("mqtt://127.0.0.1:1884/", "127.0.0.1", 1884, False),
    ("mqtt://[::1]:1885", "::1", 1885, False),
    ("mqtts://[fd00::5]", "fd00::5", 8883, True),
])
def test_broker_url(url: str, host: str, port: int, tls: bool) -> None:
    config = MqttConfig(url=url)
    assert (config.host, config.port, config.tls) == (host, port, tls)


def test_mqtts_without_tls_files_verifies_against_the_system_store() -> None:
    ctx = tls_context(MqttConfig(url="mqtts://broker.example"))
    assert ctx.verify_mode is ssl.CERT_REQUIRED
    assert ctx.check_hostname is True
    assert ctx.cert_store_stats()["x509_ca"] > 0, "the system CA store was not loaded"


def test_mqtts_with_a_ca_file_trusts_that_ca_only(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "ca").cert_path
    ctx = tls_context(MqttConfig(url="mqtts://broker.example", ca_file=ca))
    assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname is True
    assert ctx.cert_store_stats()["x509_ca"] == 1, "more than the given CA is trusted"
