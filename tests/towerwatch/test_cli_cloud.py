"""``towerwatch cloud migrate|create-admin`` and settings errors, as an operator meets them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.db import Database, authenticate
from cloud.settings import load_settings
from towerwatch.cli.main import main
from towerwatch.sourced_yaml import SourceError


def _settings(tmp_path: Path) -> Path:
    path = tmp_path / "cloud.yaml"
    path.write_text(f"database_url: sqlite:///{tmp_path / 'cloud.db'}\n"
                    f"timeseries: {{backend: sqlite, sqlite_path: {tmp_path / 'ts.db'}}}\n")
    return path


def test_migrate_then_create_admin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _settings(tmp_path)
    assert main(["cloud", "migrate", "--config", str(config)]) == 0
    assert "Database migrated" in capsys.readouterr().out
    secret = tmp_path / "pw"
    secret.write_text("a long enough password\n")
    args = ["cloud", "create-admin", "alice", "--config", str(config),
            "--password-file", str(secret)]
    assert main(args) == 0
    assert "'alice' created" in capsys.readouterr().out
    assert main(args) == 1  # never silently resets an existing user
    assert "alice" in capsys.readouterr().err
    db = Database.from_url(f"sqlite:///{tmp_path / 'cloud.db'}")
    try:
        with db.transaction() as session:
            assert authenticate(session, "alice", "a long enough password").username == "alice"
    finally:
        db.dispose()


def test_migrate_in_chinese(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--lang", "zh", "cloud", "migrate", "--config", str(_settings(tmp_path))]) == 0
    assert "数据库已迁移" in capsys.readouterr().out


def test_serve_refuses_an_unmigrated_database(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cloud", "ingest", "--config", str(_settings(tmp_path))]) == 1
    assert "towerwatch cloud migrate" in capsys.readouterr().err


def test_settings_errors_name_file_and_line(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("database_url: sqlite:///x.db\n"
                   "mqtt:\n"
                   "  url: mqtt://127.0.0.1:1883\n"
                   "  pasword_file: /etc/x\n"
                   "ingest: {batch_size: 0}\n")
    with pytest.raises(SourceError) as caught:
        load_settings(bad)
    found = {(i.location.line, i.path) for i in caught.value.issues}
    assert found == {(4, "mqtt.pasword_file"), (5, "ingest.batch_size")}
    assert main(["cloud", "migrate", "--config", str(bad)]) == 2
    assert "bad.yaml:4" in capsys.readouterr().err


def test_inline_secrets_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mqtt:\n  password: hunter2\n")
    with pytest.raises(SourceError, match="must not be written"):
        load_settings(bad)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TW_TIMESERIES__BACKEND", "influx")
    monkeypatch.setenv("TW_DATABASE_URL", "sqlite:///other.db")
    settings = load_settings(_settings(tmp_path))
    assert settings.timeseries.backend == "influx"
    assert settings.database_url == "sqlite:///other.db"
