"""Supervision of the processes ``gateway serve`` runs: the SOAP server, the delivery worker, operations.

``serve`` is a small parent that does no request work itself: it starts each child (``python -m ...``),
restarts one that stops with a growing pause (``RestartPolicy``), logs every exit and restart with the
child's role, process id, exit code or signal and the next pause, and stops them all gracefully on SIGTERM
or SIGINT (a second signal stops them at once). gunicorn's master is one of the children and supervises its
own HTTP workers. The supervisor is not a thread in gunicorn's master because that master reaps every child
of its process with ``waitpid(-1)``: it would take the exit status of our children (the signal that killed
a worker is what an operator needs to see), and it forks HTTP workers while such a thread could hold a lock.

The state of the children is published in a small JSON file (``state_path``, mode 0600, replaced
atomically at each change and every few seconds) that the operations listener reads for readiness,
``/status`` and ``/metrics``::

    {"format": 1, "supervisorPid": 4711, "writtenMs": 1764150000000, "stopping": false,
     "children": {"worker": {"role": "worker", "pid": 4713, "state": "running", "sinceMs": 1764149990000,
                             "restarts": 2, "lastExit": "killed by SIGKILL", "restartAtMs": null}, ...}}

``state`` is ``starting`` | ``running`` | ``restarting`` | ``stopping`` | ``stopped``; ``restartAtMs`` is set
while ``restarting``. A child that stops before it ever came up at the gateway's start (a port taken, a
broken installation) is not restarted: ``serve`` stops and says which child failed. Nothing here reads or
writes the database.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from gateway.config import Config
from gateway.errors import GatewayError

__all__ = [
    "CHECK_NAMES",
    "ChildSpec",
    "RestartPolicy",
    "Supervisor",
    "describe_child",
    "read_state",
    "state_path",
]

log = logging.getLogger("gateway.supervisor")

FORMAT = 1
#: readiness check names of the children (the operations listener does not report on itself)
CHECK_NAMES = {"soap": "soapServer", "worker": "deliveryWorker", "ops": "operationsListener"}
#: a child without a port to probe counts as up once it has run this long
ALIVE_S = 1.0
#: the state file is rewritten at least this often, so a reader can tell a live supervisor from a stale file
REFRESH_S = 5.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class RestartPolicy:
    """Pause before a child is started again: ``delay_ms`` doubling per exit in a row up to ``max_delay_ms``;
    a child that ran ``reset_ms`` before it stopped counts as stable, and its next pause is ``delay_ms``."""

    delay_ms: int = 1_000
    max_delay_ms: int = 30_000
    reset_ms: int = 60_000

    def pause_ms(self, exits_in_a_row: int) -> int:
        return int(min(self.max_delay_ms, self.delay_ms * 2 ** min(max(exits_in_a_row - 1, 0), 30)))


@dataclass(frozen=True)
class ChildSpec:
    role: str
    argv: tuple[str, ...]
    #: (host, port) that accepts connections once the child is up; None: up once alive for ALIVE_S
    port: tuple[str, int] | None = None


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    state: str = "starting"
    since_ms: int = 0
    started: float = 0.0  # monotonic
    restarts: int = 0
    exits_in_a_row: int = 0
    last_exit: str | None = None
    restart_at: float = 0.0  # monotonic
    restart_at_ms: int | None = None
    came_up: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.spec.role,
            "pid": self.process.pid if self.process is not None else None,
            "state": self.state,
            "sinceMs": self.since_ms,
            "restarts": self.restarts,
            "lastExit": self.last_exit,
            "restartAtMs": self.restart_at_ms if self.state == "restarting" else None,
        }


def state_path(config: Config) -> Path:
    """Where ``serve`` publishes its children's state for the operations listener."""
    return config.server.runtime_dir / "serve.json"


def read_state(path: Path) -> dict[str, Any] | None:
    """The published state, or None when there is none (or it cannot be read)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def describe_child(child: dict[str, Any], now_ms: int) -> str:
    """One phrase for a readiness check: "ok", "starting (pid 12)", "restarting in 4 s (killed by SIGKILL,
    2 restarts)", ..."""
    state = child.get("state")
    restarts = int(child.get("restarts") or 0)
    if state == "running":
        return "ok"
    if state == "restarting":
        left = max(0, round(((child.get("restartAtMs") or now_ms) - now_ms) / 1000))
        return f"restarting in {left} s ({child.get('lastExit')}, {restarts} restarts)"
    if state == "starting":
        return f"starting (pid {child.get('pid')}, {restarts} restarts)"
    return str(state)


def _die_with_parent() -> Callable[[], None] | None:
    """A child of a supervisor killed with SIGKILL gets SIGTERM (Linux), so no child outlives ``serve``."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def in_child() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return in_child


def _spawn(argv: Sequence[str]) -> subprocess.Popen[bytes]:
    # Their own process group: a Ctrl-C in the terminal reaches the supervisor alone, which stops the
    # children in order (gunicorn takes SIGINT as "stop now" and would cut requests short).
    return subprocess.Popen(list(argv), process_group=0, preexec_fn=_die_with_parent())


def _accepts(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=0.5):
            return True
    except OSError:
        return False


def _ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Supervisor:
    specs: Sequence[ChildSpec]
    policy: RestartPolicy
    state_file: Path
    #: how long stopping children may take before they are killed
    grace_s: float = 45.0
    tick_s: float = 0.1
    spawn: Callable[[Sequence[str]], subprocess.Popen[bytes]] = _spawn
    #: stop on SIGTERM and SIGINT (only the main thread can install handlers; tests stop by request_stop)
    handle_signals: bool = True
    children: list[_Child] = field(default_factory=list, init=False)
    _stop: bool = field(default=False, init=False)
    _hurry: bool = field(default=False, init=False)
    _failed: str | None = field(default=None, init=False)
    _written: float = field(default=0.0, init=False)

    def request_stop(self, *_args: object) -> None:
        if self._stop:
            self._hurry = True
        self._stop = True

    def run(self) -> int:
        """Start the children and keep them running until SIGTERM or SIGINT; 0 after a clean stop."""
        signals = (signal.SIGTERM, signal.SIGINT) if self.handle_signals else ()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in signals}
        self.children = [_Child(spec) for spec in self.specs]
        try:
            for child in self.children:
                self._start(child)
            self._write()
            while not self._stop:
                changed = False
                for child in self.children:
                    changed |= self._check(child)
                if changed or time.monotonic() - self._written >= REFRESH_S:
                    self._write()
                time.sleep(self.tick_s)
            self._shutdown()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            with contextlib.suppress(OSError):
                self.state_file.unlink()
        if self._failed is not None:
            raise GatewayError(self._failed)
        return 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("stopping the gateway", extra={"fields": {"signal": signal.Signals(signum).name}})
        self.request_stop()

    def _start(self, child: _Child) -> None:
        child.process = self.spawn(child.spec.argv)
        child.state = "starting"
        child.started = time.monotonic()
        child.since_ms = _ms()
        child.restart_at_ms = None

    def _check(self, child: _Child) -> bool:
        """Follow one child; True when its state changed."""
        now = time.monotonic()
        if child.process is None:
            if child.state == "restarting" and now >= child.restart_at:
                child.restarts += 1
                self._start(child)
                assert child.process is not None
                log.warning(
                    "child process restarted",
                    extra={
                        "fields": {
                            "role": child.spec.role,
                            "childPid": child.process.pid,
                            "restarts": child.restarts,
                        }
                    },
                )
                return True
            return False
        returncode = child.process.poll()
        if returncode is None:
            if child.state == "starting" and self._up(child, now):
                child.state = "running"
                child.came_up = True
                child.since_ms = _ms()
                return True
            return False
        pid, ran = child.process.pid, now - child.started
        child.process = None
        child.last_exit = describe_exit(returncode)
        fields: dict[str, Any] = {
            "role": child.spec.role,
            "childPid": pid,
            "exit": child.last_exit,
            "ranSeconds": round(ran, 1),
        }
        if not child.came_up:
            child.state = "stopped"
            self._failed = (
                f"the {child.spec.role} process {child.last_exit} before it came up; its own lines above"
                " say why"
            )
            log.error("child process failed to start; stopping the gateway", extra={"fields": fields})
            self._stop = True
            return True
        stable = ran * 1000 >= self.policy.reset_ms
        child.exits_in_a_row = 1 if stable else child.exits_in_a_row + 1
        pause = self.policy.pause_ms(child.exits_in_a_row)
        child.state = "restarting"
        child.restart_at = now + pause / 1000
        child.restart_at_ms = _ms() + pause
        child.since_ms = _ms()
        fields.update(restartInSeconds=round(pause / 1000, 1), restarts=child.restarts)
        log.error("child process exited; restarting it", extra={"fields": fields})
        return True

    def _up(self, child: _Child, now: float) -> bool:
        if child.spec.port is None:
            return now - child.started >= ALIVE_S
        return _accepts(child.spec.port)

    def _shutdown(self) -> None:
        running = [c for c in self.children if c.process is not None]
        for child in self.children:
            child.state = "stopping" if child.process is not None else "stopped"
        self._write(stopping=True)
        for child in running:
            assert child.process is not None
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        while any(c.process is not None and c.process.poll() is None for c in running):
            if self._hurry or time.monotonic() >= deadline:
                for child in running:
                    if child.process is not None and child.process.poll() is None:
                        log.warning(
                            "child process killed while stopping",
                            extra={"fields": {"role": child.spec.role, "childPid": child.process.pid}},
                        )
                        child.process.kill()
                break
            time.sleep(self.tick_s)
        for child in running:
            assert child.process is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=5)
            child.state = "stopped"
        log.info("gateway stopped", extra={"fields": {"children": len(running)}})

    def _write(self, *, stopping: bool = False) -> None:
        data = {
            "format": FORMAT,
            "supervisorPid": os.getpid(),
            "writtenMs": _ms(),
            "stopping": stopping or self._stop,
            "children": {c.spec.role: c.as_dict() for c in self.children},
        }
        try:
            self.state_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(data, out)
            os.replace(tmp, self.state_file)
        except OSError as exc:
            log.warning(
                "cannot write the children's state file",
                extra={"fields": {"path": str(self.state_file), "error": exc.strerror or type(exc).__name__}},
            )
        self._written = time.monotonic()
