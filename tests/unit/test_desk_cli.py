"""``gateway desk …`` in-process (``main(argv)``) on SQLite and PostgreSQL, and the whole family once as
subprocesses: grants, the list, a case, actions with a file, export, hand-over; --json everywhere; the
exit code of each kind of refusal; the audit names the login and the person."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.cli import main
from gateway.desk.schema import desk_audit
from tests.unit.deskkit import DESK_UNIT, HANDLER, HANDLER2, READER, ROOT, Gateway

PDF = b"%PDF-1.4\n% svar\n%%EOF\n"
Run = Callable[..., str]


@pytest.fixture
def gw(db_url: str, tmp_path: Path) -> Iterator[Gateway]:
    gateway = Gateway(db_url, tmp_path)
    try:
        yield gateway
    finally:
        gateway.close()


@pytest.fixture
def cli(
    gw: Gateway,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Run:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", db_url)
    monkeypatch.setenv("USER", "anna")
    monkeypatch.delenv("SUDO_USER", raising=False)
    monkeypatch.chdir(tmp_path)

    def run(*argv: str, code: int = 0) -> str:
        capsys.readouterr()
        assert main(list(argv)) == code, capsys.readouterr()
        out = capsys.readouterr()
        return out.out + out.err

    return run


def test_a_handlers_session(cli: Run, gw: Gateway, tmp_path: Path) -> None:
    assert "is handler on" in cli("desk", "grant", HANDLER, DESK_UNIT, "handler")
    assert "is handler on" in cli("desk", "grant", HANDLER, DESK_UNIT, "handler")  # again: no error
    cli("desk", "grant", READER, DESK_UNIT, "reader")
    grants = json.loads(cli("desk", "access", "--json"))
    assert [(g["person"], g["role"], g["granted_by"]) for g in grants] == [
        (HANDLER, "handler", "cli:anna"),
        (READER, "reader", "cli:anna"),
    ]
    gw.register("CLI-1")
    listed = json.loads(cli("desk", "cases", "--as", HANDLER, "--json"))
    assert [c["case_id"] for c in listed["items"]] == ["CLI-1"] and listed["total"] == 1  # noqa: PT018
    assert "CLI-1" in cli("desk", "cases", "--as", HANDLER, "--status", "RECEIVED", "--from", "2020-01-01")
    assert "no cases" in cli("desk", "cases", "--as", HANDLER, "--status", "CLOSED")
    shown = json.loads(cli("desk", "show", "CLI-1", "--as", HANDLER, "--json"))
    assert (shown["version"], shown["status"]) == (1, "RECEIVED")
    assert "ANSWER" in shown["actions"]
    assert "you may: IN_PROGRESS" in cli("desk", "show", "CLI-1", "--as", HANDLER)
    assert "read only" in cli("desk", "show", "CLI-1", "--as", READER)

    letter = tmp_path / "svar.pdf"
    letter.write_bytes(PDF)
    done = json.loads(
        cli(
            "desk",
            "act",
            "CLI-1",
            "PARTIAL_ANSWER",
            "--version",
            "1",
            "--text",
            "Vi återkommer.",
            "--as",
            HANDLER,
            "--json",
        )
    )
    assert done == {"caseId": "CLI-1", "action": "PARTIAL_ANSWER", "version": 2}
    stale = cli("desk", "act", "CLI-1", "IN_PROGRESS", "--version", "1", "--as", HANDLER, code=8)
    assert "har ändrats sedan du öppnade det" in stale
    out = cli(
        "desk",
        "act",
        "CLI-1",
        "ANSWER",
        "--version",
        "2",
        "--standard-answer",
        "1",
        "--attach",
        str(letter),
        "--as",
        HANDLER,
    )
    assert "ANSWER done; its version is now 3" in out
    cli("desk", "act", "CLI-1", "ALLOW_ATTACHMENTS", "--version", "3", "--allow", "yes", "--as", HANDLER)
    cli(
        "desk",
        "act",
        "CLI-1",
        "CORRECT_STATISTICS",
        "--version",
        "4",
        "--code",
        "businessArea=6",
        "--as",
        HANDLER,
    )
    view = json.loads(cli("desk", "show", "CLI-1", "--as", HANDLER, "--json"))
    sent = [a for a in view["attachments"] if a["direction"] == "to-citizen"]
    assert [a["file_name"] for a in sent] == ["svar.pdf"]
    cli("desk", "attachment", "CLI-1", sent[0]["ref"], "--out", "copy.pdf", "--as", READER)
    assert (tmp_path / "copy.pdf").read_bytes() == PDF
    cli("desk", "export", "CLI-1", "--out", "case.zip", "--as", HANDLER)
    assert (tmp_path / "case.zip").stat().st_mode & 0o077 == 0  # health data: the owner's alone
    assert "registercase.xml" in zipfile.ZipFile(io.BytesIO((tmp_path / "case.zip").read_bytes())).namelist()
    cli("desk", "act", "CLI-1", "CLOSED", "--version", "5", "--as", HANDLER)
    assert json.loads(cli("desk", "show", "CLI-1", "--as", HANDLER, "--json"))["status"] == "CLOSED"

    with gw.engine.connect() as conn:
        actors = conn.execute(
            select(desk_audit.c.actor, desk_audit.c.action)
            .where(desk_audit.c.case_id == "CLI-1")
            .order_by(desk_audit.c.id)
        ).all()
    assert [tuple(a) for a in actors] == [
        (f"cli:anna:{HANDLER}", "PARTIAL_ANSWER"),
        (f"cli:anna:{HANDLER}", "ANSWER"),
        (f"cli:anna:{HANDLER}", "ALLOW_ATTACHMENTS"),
        (f"cli:anna:{HANDLER}", "CORRECT_STATISTICS"),
        (f"cli:anna:{HANDLER}", "EXPORT"),
        (f"cli:anna:{HANDLER}", "CLOSED"),
    ]


def test_each_kind_of_refusal_has_its_exit_code(cli: Run, gw: Gateway) -> None:
    cli("desk", "grant", HANDLER, DESK_UNIT, "handler")
    cli("desk", "grant", READER, DESK_UNIT, "reader")
    gw.register("CLI-2")
    assert "gateway: Inget ärende NOPE" in cli("desk", "show", "NOPE", "--as", HANDLER, code=3)
    assert "behörighet" in cli("desk", "show", "CLI-2", "--as", HANDLER2, code=7)
    assert "behörighet" in cli(
        "desk", "act", "CLI-2", "IN_PROGRESS", "--version", "1", "--as", READER, code=7
    )
    cli("desk", "act", "CLI-2", "IN_PROGRESS", "--version", "1", "--as", HANDLER)
    assert "har ändrats" in cli("desk", "act", "CLI-2", "CLOSED", "--version", "1", "--as", HANDLER, code=8)
    moved = cli(
        "desk",
        "act",
        "CLI-2",
        "MOVE",
        "--version",
        "2",
        "--unit",
        "SE2321000016-7Q6X",
        "--as",
        HANDLER,
        code=1,
    )
    explanation = "Ärendet kan inte flyttas i ärendehanteringen; ett integrerat system kan skicka det vidare"
    assert moved.strip() == f"gateway: {explanation}"
    assert "--as PERSON" in cli("desk", "show", "CLI-2", code=2)
    assert "no longer" in cli("desk", "revoke", READER, DESK_UNIT, "reader")
    assert "no active grant" in cli("desk", "revoke", READER, DESK_UNIT, "reader", code=3)
    assert "routed to the case desk" in cli("desk", "hand-over", "--unit", DESK_UNIT, code=1)
    for output in (cli("desk", "show", "CLI-2", "--as", HANDLER2, code=7),):
        assert "Traceback" not in output and len(output.strip().splitlines()) == 1  # noqa: PT018


def test_the_desk_family_in_subprocesses(db_url: str, tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_") or k.startswith("GATEWAY_TEST")
    }
    env.update(GATEWAY_DATABASE_URL=db_url, GATEWAY_ROUTING_SNAPSHOT_FILE=str(tmp_path / "snap.json"))
    cmd = [sys.executable, "-m", "gateway.cli"]

    def run(*argv: str, code: int = 0) -> str:
        done = subprocess.run(
            [*cmd, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == code, done.stderr
        assert "Traceback" not in done.stderr
        return done.stdout + done.stderr

    run("routes", "bootstrap", str(ROOT / "examples" / "routing.yaml"), "--author", "test")
    run("desk", "grant", HANDLER, DESK_UNIT, "handler")
    gw = Gateway(db_url, tmp_path)
    try:
        gw.register("SUB-1")
    finally:
        gw.close()
    assert json.loads(run("desk", "cases", "--as", HANDLER, "--json"))["total"] == 1
    run("desk", "act", "SUB-1", "CLOSED", "--version", "1", "--as", HANDLER)
    assert "case SUB-1 (COMPLAINT), status CLOSED, version 2" in run("desk", "show", "SUB-1", "--as", HANDLER)
    assert "Ärendet är avslutat" in run(
        "desk", "act", "SUB-1", "ANSWER", "--version", "2", "--text", "x", "--as", HANDLER, code=1
    )
    assert json.loads(run("desk", "hand-over", "--unit", "SE2321000016-7Q6X", "--json")) == {
        "unit": "SE2321000016-7Q6X",
        "cases": [],
    }
