"""The supervisor of `gateway serve` with tiny stand-in children (`python -c ...`): restarts with a growing
pause and their log lines, the published state file, a child that fails at start, a clean stop."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import GatewayError, ListenError
from gateway.server import check_listen
from gateway.supervisor import (
    ChildSpec,
    RestartPolicy,
    Supervisor,
    describe_child,
    read_state,
)

SLEEPER = (sys.executable, "-c", "import time; time.sleep(60)")
#: stays up long enough to count as started, then exits with code 3
SHORT_LIVED = (sys.executable, "-c", "import time, sys; time.sleep(1.3); sys.exit(3)")
FAILS_AT_ONCE = (sys.executable, "-c", "import sys; sys.exit(7)")


def _run(supervisor: Supervisor) -> tuple[threading.Thread, dict[str, Any]]:
    """Run the supervisor in a thread (it installs no signal handlers there); the test stops it."""
    supervisor.handle_signals = False
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["code"] = supervisor.run()
        except GatewayError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def _wait_for(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _state(path: Path) -> dict[str, Any] | None:
    return read_state(path)


def test_restart_policy_doubles_to_the_cap() -> None:
    policy = RestartPolicy(delay_ms=1000, max_delay_ms=30_000, reset_ms=60_000)
    assert [policy.pause_ms(n) for n in range(1, 8)] == [1000, 2000, 4000, 8000, 16000, 30000, 30000]


def test_describe_child_for_readiness() -> None:
    now = 1_000_000
    assert describe_child({"state": "running"}, now) == "ok"
    restarting = {
        "state": "restarting",
        "restartAtMs": now + 4_200,
        "lastExit": "killed by SIGKILL",
        "restarts": 2,
    }
    assert describe_child(restarting, now) == "restarting in 4 s (killed by SIGKILL, 2 restarts)"
    assert (
        describe_child({"state": "starting", "pid": 12, "restarts": 1}, now)
        == "starting (pid 12, 1 restarts)"
    )


def test_a_child_that_stops_is_restarted_with_a_growing_pause(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.supervisor")
    state_file = tmp_path / "run" / "serve.json"
    supervisor = Supervisor(
        [ChildSpec("worker", SHORT_LIVED), ChildSpec("ops", SLEEPER)],
        RestartPolicy(delay_ms=200, max_delay_ms=400, reset_ms=60_000),
        state_file,
        grace_s=5,
    )
    thread, outcome = _run(supervisor)
    try:
        _wait_for(lambda: (s := _state(state_file)) and s["children"]["worker"]["restarts"] >= 3)
        state = _state(state_file)
        assert state is not None
        assert state["supervisorPid"] == os.getpid()
        assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(state_file.parent.stat().st_mode) == 0o700
        assert state["children"]["ops"]["restarts"] == 0
        assert state["children"]["worker"]["lastExit"] == "exited with code 3"
    finally:
        supervisor.request_stop()
        thread.join(timeout=20)
    assert outcome == {"code": 0}
    assert not state_file.exists()  # removed after a clean stop
    exits = [r for r in caplog.records if r.getMessage() == "child process exited; restarting it"]
    pauses = [r.fields["restartInSeconds"] for r in exits]  # type: ignore[attr-defined]
    assert pauses[:3] == [0.2, 0.4, 0.4]  # doubling to the cap
    assert all(r.levelname == "ERROR" and r.fields["role"] == "worker" for r in exits)  # type: ignore[attr-defined]
    assert all(r.fields["exit"] == "exited with code 3" for r in exits)  # type: ignore[attr-defined]
    restarts = [r for r in caplog.records if r.getMessage() == "child process restarted"]
    assert restarts
    assert all(r.levelname == "WARNING" for r in restarts)


def test_a_child_killed_by_a_signal_is_named_by_it(tmp_path: Path) -> None:
    state_file = tmp_path / "serve.json"
    supervisor = Supervisor(
        [ChildSpec("worker", SLEEPER)], RestartPolicy(delay_ms=3000, max_delay_ms=3000), state_file
    )
    thread, _outcome = _run(supervisor)
    try:
        first = _wait_for(
            lambda: (s := _state(state_file)) and s["children"]["worker"]["state"] == "running" and s
        )
        os.kill(first["children"]["worker"]["pid"], signal.SIGKILL)
        down = _wait_for(
            lambda: (s := _state(state_file)) and s["children"]["worker"]["state"] == "restarting" and s
        )
        worker = down["children"]["worker"]
        assert worker["lastExit"] == "killed by SIGKILL"
        assert worker["pid"] is None
        assert describe_child(worker, worker["restartAtMs"] - 2500).startswith("restarting in 2 s (killed by")
        up = _wait_for(
            lambda: (s := _state(state_file)) and s["children"]["worker"]["state"] == "running" and s
        )
        assert up["children"]["worker"]["restarts"] == 1
        assert up["children"]["worker"]["pid"] != first["children"]["worker"]["pid"]
    finally:
        supervisor.request_stop()
        thread.join(timeout=20)


def test_a_child_that_fails_at_start_stops_the_gateway(tmp_path: Path) -> None:
    supervisor = Supervisor(
        [ChildSpec("soap", FAILS_AT_ONCE), ChildSpec("ops", SLEEPER)],
        RestartPolicy(delay_ms=100),
        tmp_path / "serve.json",
        grace_s=5,
    )
    thread, outcome = _run(supervisor)
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert outcome == {
        "error": "the soap process exited with code 7 before it came up; its own lines above say why"
    }
    assert [c.state for c in supervisor.children] == ["stopped", "stopped"]


def test_no_restart_while_stopping_and_a_stubborn_child_is_killed(tmp_path: Path) -> None:
    stubborn = (
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
    )
    supervisor = Supervisor(
        [ChildSpec("worker", stubborn)], RestartPolicy(delay_ms=100), tmp_path / "serve.json", grace_s=1.5
    )
    thread, outcome = _run(supervisor)
    _wait_for(lambda: supervisor.children and supervisor.children[0].state == "running")
    process = supervisor.children[0].process
    assert process is not None
    started = time.monotonic()
    supervisor.request_stop()
    thread.join(timeout=20)
    assert outcome == {"code": 0}
    assert 1.0 <= time.monotonic() - started < 10
    assert process.returncode == -signal.SIGKILL
    assert supervisor.children[0].restarts == 0


def test_state_file_format(tmp_path: Path) -> None:
    state_file = tmp_path / "serve.json"
    supervisor = Supervisor([ChildSpec("worker", SLEEPER)], RestartPolicy(), state_file)
    thread, _outcome = _run(supervisor)
    try:
        state = _wait_for(lambda: _state(state_file))
        assert set(state) == {"format", "supervisorPid", "writtenMs", "stopping", "children"}
        assert set(state["children"]["worker"]) == {
            "role",
            "pid",
            "state",
            "sinceMs",
            "restarts",
            "lastExit",
            "restartAtMs",
        }
        json.dumps(state)
        (tmp_path / "other.json").write_text('{"format": 99}')
        assert read_state(tmp_path / "other.json") is None
        assert read_state(tmp_path / "missing.json") is None
    finally:
        supervisor.request_stop()
        thread.join(timeout=20)


def test_serve_refuses_a_port_in_use_with_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError) as info:
            check_listen("server.bind", f"127.0.0.1:{port}")
    assert str(info.value) == (
        f"cannot listen on 127.0.0.1:{port} (server.bind): port {port} is in use"
        " (is another gateway running?): stop it or change server.bind"
    )
    assert info.value.exit_code == 5
    check_listen("server.bind", f"127.0.0.1:{port}")  # free again
