"""The ``gateway`` command's surface: help for everything, --version, --config anywhere, and the errors
from below (gunicorn, database drivers) translated at the boundary into one line each."""

from __future__ import annotations

import argparse
import errno
from collections.abc import Iterator
from pathlib import Path

import pytest

import gateway
from gateway.cli import main
from gateway.cli.main import build_parser


def _walk(parser: argparse.ArgumentParser, path: str = "gateway") -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                yield f"{path} {choice.dest}", choice
            for name, child in action.choices.items():
                yield from _walk(child, f"{path} {name}")
        else:
            yield path, action


def test_every_option_positional_and_command_has_help() -> None:
    missing = [
        f"{where}: {action.option_strings or action.dest}"
        for where, action in _walk(build_parser())
        if not action.help or action.help == argparse.SUPPRESS
    ]
    assert missing == []


def test_the_walk_sees_the_whole_tree() -> None:
    seen = {where for where, _ in _walk(build_parser())}
    assert {"gateway serve", "gateway routes import", "gateway outbox retry", "gateway send"} <= seen


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"gateway {gateway.__version__}"


def test_help_says_which_commands_migrate(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Only 'db upgrade', 'serve' and 'routes bootstrap' change the database schema" in text
    assert "4 database unreachable or schema not current" in text
    with pytest.raises(SystemExit):
        main(["routes", "--help"])
    assert "migrates the database schema first" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "{c}", "routes", "list"],
        ["routes", "list", "--config", "{c}"],
        ["routes", "--config", "{c}", "list"],
        ["serve", "--config", "{c}"],
        ["outbox", "status", "--config", "{c}"],
        ["--config", "elsewhere.toml", "db", "current", "--config", "{c}"],  # the later one wins
    ],
)
def test_config_before_or_after_the_command(argv: list[str], tmp_path: Path) -> None:
    config = str(tmp_path / "gw.toml")
    args = build_parser().parse_args([a.replace("{c}", config) for a in argv])
    assert args.config == config


def test_config_absent_everywhere_is_none() -> None:
    assert build_parser().parse_args(["routes", "list"]).config is None


def test_config_after_the_command_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "gw.toml"
    config.write_text("[server]\nworkers = 'two'\n")
    assert main(["check-config", "--config", str(config)]) == 2
    assert "config: server.workers: expected an integer" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        (errno.EACCES, "not permitted (ports below 1024 need privileges)"),
        (errno.EADDRNOTAVAIL, "the host is not an address of this machine"),
    ],
)
def test_listen_problems_name_the_cause(code: int, fragment: str) -> None:
    from gateway.server import _listen_problem

    problem = _listen_problem("server.bind", "10.9.9.9:443", OSError(code, "x"))
    assert problem.exit_code == 5
    assert str(problem).startswith("cannot listen on 10.9.9.9:443 (server.bind): ")
    assert fragment in str(problem)


class _DriverError(Exception):
    pass


@pytest.mark.parametrize(
    ("url", "message", "expected"),
    [
        (
            "postgresql+psycopg://gw:pw-123@db.example:6543/gateway",
            'connection failed: connection to server at "10.0.0.5", port 6543 failed: '
            "Connection refused\n\tIs...",
            "cannot reach the database at db.example:6543/gateway: Connection refused: "
            "check database.url and that the database server runs",
        ),
        (
            "postgresql+psycopg://gw:pw-123@db.example/gateway",
            'connection failed: connection to server at "10.0.0.5", port 5432 failed: FATAL:  password '
            'authentication failed for user "gw" (password pw-123)',
            "cannot reach the database at db.example:5432/gateway: FATAL:  password authentication "
            'failed for user "gw" (password ***): check database.url and that the database server runs',
        ),
        (
            "postgresql+psycopg://gw@db.example/gateway",
            "terminating connection due to administrator command",
            "the database at db.example:5432/gateway failed: "
            "terminating connection due to administrator command",
        ),
        (
            "sqlite:////srv/gw.db",
            "unable to open database file",
            "database /srv/gw.db: unable to open database file",
        ),
    ],
)
def test_driver_failures_become_one_line_without_the_password(url: str, message: str, expected: str) -> None:
    from sqlalchemy.exc import OperationalError

    from gateway.cli.main import _database_error
    from gateway.config import load_config

    config = load_config(None, env={"GATEWAY_DATABASE_URL": url})
    error = _database_error(OperationalError("SELECT 1", {}, _DriverError(message)), config)
    assert str(error) == expected
    assert "pw-123" not in str(error)
    assert error.exit_code == 4
