"""Operator mistakes, as an operator makes them: each row of tests/data/cli_mistakes.yaml is one subprocess.

For every row: the documented exit code, exactly one line on stderr that names the cause and what to do
(none for a closed pipe: nobody reads it), no traceback anywhere, no password printed, the database
exactly as the setup left it, and a bounded run (time, and memory for the import caps).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from gateway import migrate
from gateway.certs import ExamplePki
from gateway.db import make_engine
from tests.integration.harness import ROOT, GatewayProcess, free_port

pytestmark = pytest.mark.slow

TABLE = ROOT / "tests" / "data" / "cli_mistakes.yaml"
ROWS: list[dict[str, Any]] = yaml.safe_load(TABLE.read_text())
PASSWORD = "s3cret-pw"
MiB = 1024 * 1024
#: a command whose caps hold stays far below this (without them: past 2 GiB)
MEMORY_BOUND_MIB = 400


@dataclass
class Scene:
    """What a row's setup made: environment, placeholders, and a picture of the database to compare."""

    workdir: Path
    env: dict[str, str]
    values: dict[str, str] = field(default_factory=dict)
    picture: Callable[[], Any] = lambda: None
    cleanup: list[Callable[[], None]] = field(default_factory=list)


def _base_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["HOME"] = str(workdir)
    return env


def _schema_picture(url: str) -> Callable[[], Any]:
    """Tables and revision of the database at ``url`` (a SQLite file that does not exist: None)."""

    def picture() -> Any:
        if url.startswith("sqlite"):
            path = Path(url.removeprefix("sqlite:///"))
            if not path.exists():
                return None
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                tables = sorted(inspect(conn).get_table_names())
                revision = migrate.current_revision(engine) if "alembic_version" in tables else None
            return tables, revision
        finally:
            engine.dispose()

    return picture


def _database(scene: Scene, url: str, revision: str | None) -> None:
    """``url`` at ``revision`` (None: created but empty), named by GATEWAY_DATABASE_URL."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        sqlite3.connect(path).close()
        os.chmod(path, 0o600)  # as the gateway makes it: a wider file gets a warning line of its own
    if revision is not None:
        engine = make_engine(url, pool_size=1)
        try:
            migrate.upgrade(engine, revision)
        finally:
            engine.dispose()
    scene.env["GATEWAY_DATABASE_URL"] = url
    scene.picture = _schema_picture(url)


def _hold_port(scene: Scene) -> int:
    port = free_port()
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    scene.cleanup.append(sock.close)
    return port


def _serve_config(scene: Scene, pki: ExamplePki, db_url: str, busy: str) -> None:
    process = GatewayProcess(pki, db_url, scene.workdir, catalogue=None)
    port = _hold_port(scene)
    other = free_port()
    process.port, process.ops_port = (port, other) if busy == "server" else (other, port)
    process.web_port = free_port()
    config = scene.workdir / "gateway.toml"
    config.write_text(process.config_text())
    scene.values.update(config=str(config), port=str(port))
    scene.picture = _schema_picture(db_url)


def setup_scene(name: str, scene: Scene, pki: ExamplePki, db_url: str) -> None:
    head = migrate.head_revision() or ""
    if name == "none":
        return
    if name == "postgres-unreachable":
        scene.env["GATEWAY_DATABASE_URL"] = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:1/x"
    elif name == "missing-database":
        url = f"sqlite:///{scene.workdir / 'var' / 'gateway.db'}"
        scene.env["GATEWAY_DATABASE_URL"] = url
        scene.picture = lambda: sorted(p.name for p in scene.workdir.iterdir())
    elif name == "empty-database":
        _database(scene, db_url, None)
    elif name == "old-schema":
        _database(scene, db_url, "0001")
    elif name in ("current-schema", "big-catalogue"):
        _database(scene, db_url, head)
        if name == "big-catalogue":
            units = scene.workdir / "units.csv"
            units.write_text(
                "address,target\n" + "".join(f"SE2321000016-U{i:05d},internal\n" for i in range(3000))
            )
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "gateway.cli",
                    "routes",
                    "import",
                    str(units),
                    "--contract",
                    "RegisterCase",
                ],
                env=scene.env,
                cwd=scene.workdir,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
    elif name in ("busy-port", "busy-ops-port"):
        _serve_config(scene, pki, db_url, "server" if name == "busy-port" else "ops")
    elif name == "running-gateway":
        gateway = GatewayProcess(pki, db_url, scene.workdir)
        gateway.start()
        scene.cleanup.append(gateway.stop)
        scene.values.update(config=str(scene.workdir / "gateway.toml"), port=str(gateway.port))
        scene.picture = _schema_picture(db_url)
    else:  # pragma: no cover - a typo in the table
        raise AssertionError(f"unknown setup {name!r}")


# -- generated inputs -------------------------------------------------------------------------------------
def _register_case() -> str:
    return (ROOT / "examples" / "register-case.xml").read_text()


def _alias_bomb() -> str:
    """Ten levels of nine aliases each, inside a field a catalogue has: 9**10 strings once expanded."""
    lines = ["components:", "- hsa_id: SE2321000016-DEV1", "  description:"]
    lines.append('  - &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]')
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"  - &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


FILES: dict[str, Callable[[], str | bytes]] = {
    "register-case-without-category": lambda: _register_case().replace(
        "<caseCategory>COMPLAINT</caseCategory>", ""
    ),
    "register-case-with-extra": lambda: _register_case().replace(
        "</caseCategory>", "</caseCategory><notInTheContract>1</notInTheContract>"
    ),
    "not-xml": lambda: "caseId,caseCategory\n1,COMPLAINT\n",
    "doctype": lambda: '<!DOCTYPE RegisterCase [<!ENTITY x "y">]><RegisterCase/>',
    "alias-bomb.yaml": _alias_bomb,
    "huge.yaml": lambda: b"- x\n" * (50 * MiB // 4),
    "many-values.yaml": lambda: "hsa: [" + "1, " * 600_000 + "1]\n",
    "deep.yaml": lambda: "[" * 50_000 + "]" * 50_000 + "\n",
    "deep.json": lambda: "[" * 50_000 + "]" * 50_000,
    "latin1.yaml": lambda: "components:\n- hsa_id: SE2321000016-DEV1\n  description: Vårdcentral\n".encode(
        "latin-1"
    ),
    "latin1.csv": lambda: "address,target,description\nSE2321000016-U0001,internal,Vårdcentral\n".encode(
        "latin-1"
    ),
    "list-entry.yaml": lambda: "components:\n- [SE2321000016-DEV1]\n",
    "mapping-section.yaml": lambda: "routes: {contract: RegisterCase}\n",
    "number-id.yaml": lambda: "components:\n- hsa_id: 5\n",
    "top-list.json": lambda: '[{"components": []}]',
    "long-description.yaml": lambda: (
        f"components:\n- hsa_id: SE2321000016-DEV1\n  description: {'x' * 600}\n"
    ),
    "big-field.csv": lambda: (
        "address,target,description\nSE2321000016-U0001,internal," + "x" * 200_000 + "\n"
    ),
    "big-field-hsa.csv": lambda: (
        "hsa_id,parent,kind,name\nSE2321000016-U0001,SE,unit," + "x" * 200_000 + "\n"
    ),
}


# -- running a command --------------------------------------------------------------------------------------
@dataclass
class Outcome:
    code: int
    out: str
    err: str
    max_rss_mib: float
    seconds: float


# Linux carries a process's peak RSS across exec (``signal->maxrss``), so a command forked straight from
# this test process would report the pytest process's size as its own. A small launcher forks the command
# instead, waits for it and writes the command's own peak (KiB) to a file.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "gateway.cli", *sys.argv[2:]])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def run_cli(argv: list[str], scene: Scene, pipe: str | None, timeout: float = 90.0) -> Outcome:
    """``python -m gateway.cli ARGV`` with its own peak memory, stdout to a file or a pipe."""
    err_path, out_path = scene.workdir.parent / "stderr.txt", scene.workdir.parent / "stdout.txt"
    rss_path = scene.workdir.parent / "maxrss.txt"
    rss_path.unlink(missing_ok=True)
    started = time.monotonic()
    with err_path.open("wb") as err, out_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(rss_path), *argv],
            cwd=scene.workdir,
            env=scene.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipe else out,
            stderr=err,
            start_new_session=True,
        )
    head = b""
    if pipe == "closed":
        assert proc.stdout is not None
        proc.stdout.close()  # the reader is gone before the command writes anything
    elif pipe == "head":
        assert proc.stdout is not None
        head = proc.stdout.readline()  # `| head -1`
        proc.stdout.close()
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            os.killpg(proc.pid, 9)
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise AssertionError(f"{argv} did not end within {timeout} s")
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = head.decode(errors="replace") + out_path.read_text(errors="replace")
    return Outcome(
        proc.returncode,
        text,
        err_path.read_text(errors="replace"),
        int(rss_path.read_text() or 0) / 1024 if rss_path.exists() else usage.ru_maxrss / 1024,
        time.monotonic() - started,
    )


def _params() -> Iterator[Any]:
    for row in ROWS:
        databases = ["sqlite", "postgresql"] if row.get("database") == "both" else ["sqlite"]
        for database in databases:
            marks = [pytest.mark.postgres] if database == "postgresql" else []
            yield pytest.param(row, database, id=f"{row['name']}-{database}", marks=marks)


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


@pytest.mark.parametrize(("row", "db_url"), list(_params()), indirect=["db_url"])
def test_operator_mistake(row: dict[str, Any], db_url: str, pki: ExamplePki, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    scene = Scene(workdir, _base_env(workdir))
    scene.values.update(root=str(ROOT), head=migrate.head_revision() or "")
    try:
        setup_scene(row["setup"], scene, pki, db_url)
        if "file" in row:
            path = workdir / row["file"]
            content = FILES[row["file"]]()
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
            scene.values["file"] = str(path.name)
        argv = [_fill(a, scene.values).replace("examples/", f"{ROOT}/examples/") for a in row["argv"]]
        before = scene.picture()
        outcome = run_cli(argv, scene, row.get("pipe"))
        after = scene.picture()
    finally:
        for undo in reversed(scene.cleanup):
            undo()

    shown = f"exit {outcome.code}\nstdout: {outcome.out[-2000:]}\nstderr: {outcome.err[-3000:]}"
    assert "Traceback" not in outcome.out + outcome.err, shown
    assert "Exception ignored" not in outcome.err, shown
    assert PASSWORD not in outcome.out + outcome.err, shown
    assert outcome.code == row["exit"], shown
    lines = outcome.err.splitlines()
    if row["line"] is None:
        assert lines == [], shown
    else:
        assert len(lines) == 1, shown
        assert _fill(row["line"], scene.values) in lines[0], shown
    assert after == before, "the command changed the database"
    if row["argv"][:2] == ["routes", "import"]:
        assert outcome.max_rss_mib < MEMORY_BOUND_MIB, f"{outcome.max_rss_mib:.0f} MiB"


def test_the_table_covers_every_finding() -> None:
    """The findings of issue 12 this table holds, by the setup or input that shows each."""
    setups = {row["setup"] for row in ROWS}
    files = {row.get("file") for row in ROWS}
    assert {"postgres-unreachable", "busy-port", "running-gateway", "old-schema", "empty-database"} <= setups
    assert {"alias-bomb.yaml", "huge.yaml", "deep.yaml", "deep.json", "latin1.yaml", "big-field.csv"} <= files
    assert {"list-entry.yaml", "number-id.yaml", "register-case-without-category", "not-xml"} <= files
    assert {row.get("pipe") for row in ROWS} >= {"head", "closed"}
    assert any("/dev/zero" in row["argv"] for row in ROWS)
    assert len({row["name"] for row in ROWS}) == len(ROWS)
