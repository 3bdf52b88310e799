"""One rule for relative paths: from the TOML file, relative to its directory (the SQLite URL included);
from the environment, and the defaults without a file, relative to the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import load_config, resolve_database_url
from gateway.errors import ConfigError


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory that is not the config file's."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def _config_file(tmp_path: Path, text: str) -> Path:
    directory = tmp_path / "etc"
    directory.mkdir(exist_ok=True)
    path = directory / "gateway.toml"
    path.write_text(text)
    return path


def test_sqlite_url_in_the_file_is_relative_to_the_file(tmp_path: Path, elsewhere: Path) -> None:
    path = _config_file(tmp_path, '[database]\nurl = "sqlite:///var/gateway.db"\n')
    config = load_config(path, env={})
    assert config.database.url == f"sqlite:///{tmp_path / 'etc' / 'var' / 'gateway.db'}"


def test_sqlite_url_with_parent_steps_and_driver(tmp_path: Path, elsewhere: Path) -> None:
    path = _config_file(tmp_path, '[database]\nurl = "sqlite+pysqlite:///../data/gw.db?timeout=5"\n')
    config = load_config(path, env={})
    assert config.database.url == f"sqlite+pysqlite:///{tmp_path / 'etc' / '..' / 'data' / 'gw.db'}?timeout=5"


def test_default_url_with_a_file_is_relative_to_the_file(tmp_path: Path, elsewhere: Path) -> None:
    path = _config_file(tmp_path, "[server]\nworkers = 1\n")
    config = load_config(path, env={})
    assert config.database.url == f"sqlite:///{tmp_path / 'etc' / 'var' / 'gateway.db'}"
    assert config.routing.snapshot_file == tmp_path / "etc" / "var" / "routing-snapshot.json"
    assert config.tls.certificate == tmp_path / "etc" / "server.pem"


def test_url_from_the_environment_is_relative_to_the_working_directory(
    tmp_path: Path, elsewhere: Path
) -> None:
    path = _config_file(tmp_path, '[database]\nurl = "sqlite:///var/gateway.db"\n')
    config = load_config(path, env={"GATEWAY_DATABASE_URL": "sqlite:///mine.db"})
    assert config.database.url == f"sqlite:///{elsewhere / 'mine.db'}"


def test_paths_from_the_environment_are_relative_to_the_working_directory(
    tmp_path: Path, elsewhere: Path
) -> None:
    path = _config_file(tmp_path, '[tls]\ncertificate = "certs/s.pem"\n')
    config = load_config(path, env={"GATEWAY_TLS_CERTIFICATE": "here.pem"})
    assert config.tls.certificate == elsewhere / "here.pem"


def test_defaults_without_a_file_are_relative_to_the_working_directory(elsewhere: Path) -> None:
    config = load_config(None, env={})
    assert config.database.url == f"sqlite:///{elsewhere / 'var' / 'gateway.db'}"
    assert config.routing.snapshot_file == elsewhere / "var" / "routing-snapshot.json"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////srv/gateway/gateway.db",  # absolute
        "sqlite:///:memory:",
        "sqlite://",  # in memory too
        "sqlite:///file:gw.db?mode=ro&uri=true",  # a SQLite URI file name: SQLite resolves it
        "postgresql+psycopg://gw:secret@db.example:5432/gateway",
    ],
)
def test_urls_left_as_they_are(url: str, tmp_path: Path, elsewhere: Path) -> None:
    path = _config_file(tmp_path, f'[database]\nurl = "{url}"\n')
    assert load_config(path, env={}).database.url == url
    assert resolve_database_url(url, tmp_path) == url


def test_an_unreadable_sqlite_url_is_one_line(tmp_path: Path) -> None:
    path = _config_file(tmp_path, '[database]\nurl = "sqlite:x:y"\n')
    with pytest.raises(ConfigError, match=r"database\.url"):
        load_config(path, env={})


def test_cli_from_another_directory_opens_the_same_database(
    tmp_path: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The finding: a CLI run from another directory silently opened a new empty database under ./var."""
    monkeypatch.delenv("GATEWAY_DATABASE_URL", raising=False)
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    path = _config_file(tmp_path, '[database]\nurl = "sqlite:///var/gateway.db"\n')
    monkeypatch.chdir(path.parent)
    assert main(["--config", str(path), "db", "upgrade"]) == 0
    assert main(["--config", str(path), "routes", "add-component", "SE2321000016-DEV1", "--author", "t"]) == 0
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["--config", f"../etc/{path.name}", "routes", "list", "--json"]) == 0
    assert '"hsa_id": "SE2321000016-DEV1"' in capsys.readouterr().out
    assert list(elsewhere.iterdir()) == []  # no ./var, no new database
