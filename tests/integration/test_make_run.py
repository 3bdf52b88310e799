"""`make run` on this checkout serves on 8443/8081, and the README's send command prints OK against it."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _port_busy(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _readme_command(kind: str) -> list[str]:
    text = (ROOT / "README.md").read_text().replace("\\\n", " ")
    match = re.search(rf"^(\.venv/bin/gateway --config examples/gateway\.toml send {kind} .*)$", text, re.M)
    assert match, f"README shows no 'send {kind}' command"
    return shlex.split(match.group(1))


def test_make_run_serves_and_readme_example_prints_ok(tmp_path: Path) -> None:
    if _port_busy(8443) or _port_busy(8081):
        pytest.skip("ports 8443/8081 are in use on this machine (is `make run` already running?)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_DATABASE_URL"] = f"sqlite:///{tmp_path / 'run.db'}"
    log = (tmp_path / "make-run.log").open("wb")
    proc = subprocess.Popen(
        ["make", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        ready = False
        while time.monotonic() < deadline and not ready:
            assert proc.poll() is None, (tmp_path / "make-run.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen("http://127.0.0.1:8081/health/ready", timeout=2) as response:
                    ready = response.status == 200
            except OSError:
                time.sleep(0.3)
        assert ready, (tmp_path / "make-run.log").read_text()[-3000:]
        assert (ROOT / "certs-example" / "out" / "ca.pem").is_file()
        result = subprocess.run(
            _readme_command("register-case"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("OK (logId "), result.stdout
        update = subprocess.run(
            _readme_command("update-case"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert update.returncode == 0, update.stderr
        assert update.stdout.startswith("OK (logId "), update.stdout
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
