"""Configuration: TOML plus GATEWAY_<SECTION>_<KEY> overrides, validated with one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import load_config, validate
from gateway.errors import ConfigError


def test_defaults_without_file() -> None:
    config = load_config(None, env={})
    assert config.server.bind == "0.0.0.0:8443"
    assert config.ops.bind == "127.0.0.1:8081"
    assert config.tls.minimum_version == "1.2"
    assert config.database.url.startswith("sqlite:///")
    # a held write lock is answered well before the national platform's 29 s
    assert config.database.lock_timeout_ms == 10_000
    assert (config.tls.expiry_warning_days, config.tls.crl_warning_days) == (30, 1)


def test_file_and_environment(tmp_path: Path) -> None:
    (tmp_path / "gw.toml").write_text('[server]\nworkers = 3\n[tls]\ncertificate = "certs/s.pem"\n')
    env = {
        "GATEWAY_SERVER_THREADS": "16",
        "GATEWAY_DATABASE_URL": "postgresql+psycopg://u@h/db",
        "GATEWAY_PROXY_TRUSTED_CIDRS": "10.0.0.0/8, 192.168.1.0/24",
        "GATEWAY_TEST_POSTGRES_URL": "ignored",
        "UNRELATED": "x",
    }
    config = load_config(tmp_path / "gw.toml", env=env)
    assert config.server.workers == 3
    assert config.server.threads == 16
    assert config.database.url == "postgresql+psycopg://u@h/db"
    assert config.proxy.trusted_cidrs == ("10.0.0.0/8", "192.168.1.0/24")
    assert config.tls.certificate == tmp_path / "certs" / "s.pem"  # relative to the file
    assert "u@h" not in repr(config)  # the database URL may hold a password: masked


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("[server]\nworkers = 'two'\n", {}, "config: server.workers: expected an integer"),
        ("[nope]\n", {}, "config: unknown section [nope]"),
        ("[server]\nwrkers = 2\n", {}, "config: unknown key server.wrkers"),
        (
            "",
            {"GATEWAY_SERVER_WRKERS": "2"},
            "config: unknown key server.wrkers (from GATEWAY_SERVER_WRKERS)",
        ),
        ("[server]\nbind = 'localhost'\n", {}, "config: server.bind: expected HOST:PORT"),
        ("[server]\npublic_url = 'ftp://x'\n", {}, "config: server.public_url: expected an http(s) URL"),
        ("[tls]\nminimum_version = '1.1'\n", {}, "config: tls.minimum_version: must be 1.2 or 1.3"),
        ("[proxy]\nenabled = true\n", {}, "config: proxy.enabled needs proxy.trusted_cidrs"),
        ("[proxy]\ntrusted_cidrs = ['10.0.0.300/8']\n", {}, "config: proxy.trusted_cidrs: not a network"),
        ("[database]\nurl = 'mysql://x'\n", {}, "config: database.url: expected a sqlite://"),
        (
            "[database]\nlock_timeout_ms = 30000\n",
            {},
            "config: database.lock_timeout_ms: must be between 100 and 20000 (a caller must get its answer",
        ),
        (
            "[database]\nlock_timeout_ms = 15000\n[soap]\nlarge_request_wait_ms = 12000\n",
            {},
            "config: database.lock_timeout_ms + soap.large_request_wait_ms: must not exceed 25000",
        ),
        ("[log]\nformat = 'xml'\n", {}, "config: log.format: must be auto, json or text"),
        ("[log]\nrepeat_seconds = 0\n", {}, "config: log.repeat_seconds: must be at least 1"),
        ("", {"GATEWAY_TLS_EXPIRY_WARNING_DAYS": "-1"}, "config: tls.expiry_warning_days: must be 0 or more"),
        ("[soap]\nmax_depth = 1000\n", {}, "config: soap.max_depth: must be between 8 and 256"),
        ("[server]\nrestart_delay_ms = 0\n", {}, "config: server.restart_delay_ms: must be at least 1"),
        (
            "[server]\nrestart_delay_ms = 5000\nrestart_max_delay_ms = 1000\n",
            {},
            "config: server.restart_max_delay_ms: must not be below server.restart_delay_ms",
        ),
        (
            "[outbox]\nquarantine_deaths = 0\n",
            {},
            "config: outbox.quarantine_deaths: must be between 1 and 20",
        ),
        (
            "[outbox]\nquarantine_window_ms = 60000\n",
            {},
            "config: outbox.quarantine_window_ms: 3 deaths in a row take at least 200000 ms",
        ),
        ("[server\n", {}, "invalid TOML"),
        ("", {"GATEWAY_PROXY_ENABLED": "maybe"}, "config: proxy.enabled: expected true or false"),
    ],
)
def test_invalid_configuration_is_one_line(
    tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_tls_files_are_reported(tmp_path: Path) -> None:
    config = load_config(None, env={"GATEWAY_TLS_CERTIFICATE": str(tmp_path / "none.pem")})
    with pytest.raises(ConfigError, match=r"config: tls.certificate: file not found: .*none.pem"):
        validate(config, check_files=True)


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gw.toml"
    path.write_text("[server]\nworkers = 0\n")
    assert main(["--config", str(path), "check-config"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "gateway: config: server.workers: must be at least 1"
