"""The README's quick start, exactly as written, on this checkout: `make run` (terminal 1), the README's
`receive` command (terminal 2) and its `send` commands (terminal 3). The receiver must print the example
case's arrival at deviation-a and the update's at 1177's case service, in the form the README shows.

It uses the fixed ports of the example (8443, 8444, 8081, 9444-9446) and skips when any of them is in use."""

from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
PKI = ROOT / "certs-example" / "out"
PORTS = (8443, 8444, 8081, 9444, 9445, 9446)
COMMAND = r"\.venv/bin/gateway --config examples/gateway\.toml"


def _port_busy(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _readme() -> str:
    return (ROOT / "README.md").read_text().replace("\\\n", " ")


def _readme_command(action: str) -> list[str]:
    match = re.search(rf"^({COMMAND} {action}\b.*)$", _readme(), re.M)
    assert match, f"README shows no '{action}' command"
    return shlex.split(match.group(1))


def _readme_arrival(marker: str) -> re.Pattern[str]:
    """The receiver's line the README shows (containing ``marker``), with each … matching anything."""
    line = next((x for x in _readme().splitlines() if marker in x and not x.startswith(".venv")), None)
    assert line, f"README shows no receiver line with {marker!r}"
    return re.compile(".+".join(re.escape(part) for part in line.split("…")))


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))


def _wait_line(lines: queue.Queue[str], seen: list[str], pattern: re.Pattern[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if pattern.fullmatch(line):
            return line
    raise AssertionError(f"no line like {pattern.pattern!r} within {timeout} s; got {seen}")


def test_readme_quick_start_delivers_the_example_case(tmp_path: Path) -> None:
    busy = [port for port in PORTS if _port_busy(port)]
    if busy:
        pytest.skip(f"ports {busy} are in use on this machine (is `make run` or `gateway receive` running?)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_DATABASE_URL"] = f"sqlite:///{tmp_path / 'run.db'}"
    log = (tmp_path / "make-run.log").open("wb")
    run = subprocess.Popen(
        ["make", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    receive: subprocess.Popen[str] | None = None
    try:
        deadline = time.monotonic() + 120
        ready = False
        while time.monotonic() < deadline and not ready:
            assert run.poll() is None, (tmp_path / "make-run.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen("http://127.0.0.1:8081/health/ready", timeout=2) as response:
                    ready = response.status == 200
            except OSError:
                time.sleep(0.3)
        assert ready, (tmp_path / "make-run.log").read_text()[-3000:]
        assert (ROOT / "certs-example" / "out" / "ca.pem").is_file()

        receive = subprocess.Popen(
            _readme_command("receive"),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out: queue.Queue[str] = queue.Queue()
        notes: queue.Queue[str] = queue.Queue()
        assert receive.stdout is not None and receive.stderr is not None  # noqa: PT018
        pumps = [
            threading.Thread(target=_lines, args=(receive.stdout, out), daemon=True),
            threading.Thread(target=_lines, args=(receive.stderr, notes), daemon=True),
        ]
        for pump in pumps:
            pump.start()
        noted: list[str] = []
        _wait_line(notes, noted, re.compile(r"gateway receive: .*Ctrl-C stops"), 60)
        assert [n for n in noted if "receiving as" in n] == [
            f"gateway receive: receiving as {name} on https://localhost:{port} (routing version 1)"
            for name, port in (
                ("deviation-a, deviation-a-update-case", 9444),
                ("deviation-b, deviation-b-update-case", 9445),
                ("1177-case-service, 1177-register-case", 9446),
            )
        ]

        seen: list[str] = []
        result = subprocess.run(
            _readme_command("send register-case"),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("OK (logId "), result.stdout
        _wait_line(out, seen, _readme_arrival(" deviation-a RegisterCase case 1177-CASE-0001 "), 60)

        update = subprocess.run(
            _readme_command("send update-case"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert update.returncode == 0, update.stderr
        assert update.stdout.startswith("OK (logId "), update.stdout
        _wait_line(out, seen, _readme_arrival(" 1177-case-service UpdateCase case 1177-CASE-0001 "), 60)

        # the case desk section: a case to the desk unit gets RECEIVED at once, and the demo handler sees it
        desk = re.search(
            r"^\s*(\S*gateway .*send register-case examples/register-case-desk\.xml.*)$", _readme(), re.M
        )
        assert desk, "README shows no command that sends the desk example"
        sent = subprocess.run(
            shlex.split(desk.group(1)), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert sent.returncode == 0, sent.stderr
        _wait_line(
            out, seen, re.compile(r".* 1177-case-service UpdateCase case 1177-CASE-0002 .* RECEIVED .*"), 60
        )
        page = requests.get(
            "https://localhost:8444/cases",
            cert=(str(PKI / "handler.pem"), str(PKI / "handler.key")),
            verify=str(PKI / "ca.pem"),
            timeout=30,
        )
        assert page.status_code == 200, page.text[:500]
        assert "1177-CASE-0002" in page.text

        receive.send_signal(signal.SIGINT)  # Ctrl-C in terminal 2
        assert receive.wait(timeout=20) == 130
        for pump in pumps:
            pump.join(timeout=5)
        rest = list(noted)
        while not notes.empty():
            rest.append(notes.get())
        assert rest[-1] == "gateway receive: stopped after 3 arrival(s)"
        assert not any("Traceback" in n for n in rest)
    finally:
        if receive is not None:
            if receive.poll() is None:
                receive.kill()
                receive.wait(timeout=10)
            for stream in (receive.stdout, receive.stderr):
                if stream is not None:
                    stream.close()
        os.killpg(run.pid, signal.SIGTERM)
        try:
            run.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
        log.close()
