"""Start scripted receivers (tests/integration/receiver.py) and read what arrived."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from gateway.certs import ExamplePki
from tests.integration.harness import ROOT, free_port


@dataclass
class ReceiverProcess:
    pki: ExamplePki
    workdir: Path
    name: str
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def db(self) -> Path:
        return self.workdir / f"{self.name}-arrivals.db"

    @property
    def mode_file(self) -> Path:
        return self.workdir / f"{self.name}-mode.json"

    def url(self, operation: str) -> str:
        return f"https://localhost:{self.port}/complaintsandfeedback/{operation}/1/rivtabp21"

    def set_mode(self, **mode: Any) -> None:
        tmp = self.mode_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(mode))
        tmp.replace(self.mode_file)

    def start(self, port: int | None = None) -> ReceiverProcess:
        self.port = port or self.port or free_port()
        if not self.mode_file.exists():
            self.set_mode(mode="ok")
        with (self.workdir / f"{self.name}.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.integration.receiver",
                    "--port",
                    str(self.port),
                    "--db",
                    str(self.db),
                    "--mode-file",
                    str(self.mode_file),
                    "--cert",
                    str(self.pki.server.cert),
                    "--key",
                    str(self.pki.server.key),
                    "--ca",
                    str(self.pki.ca_cert),
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"receiver {self.name} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def arrivals(self) -> list[dict[str, Any]]:
        if not self.db.exists():
            return []
        with sqlite3.connect(self.db, timeout=10) as conn:
            conn.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in conn.execute("SELECT * FROM arrival ORDER BY id")]
            except sqlite3.OperationalError:
                return []

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.arrivals()
            if len(rows) >= count:
                return rows
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: {len(self.arrivals())} arrivals, expected {count}")


def catalogue_for(workdir: Path, receivers: dict[str, ReceiverProcess]) -> Path:
    """examples/routing.yaml with its endpoints pointed at the given receivers (by endpoint name).

    An endpoint not named takes the receiver of a named one at the same example address (a system's
    RegisterCase and UpdateCase endpoints share a port), so no endpoint is left at a fixed port of its own
    beside a receiver for the same system.
    """
    data = yaml.safe_load((ROOT / "examples" / "routing.yaml").read_text())
    by_port = {
        urlsplit(endpoint["url"]).netloc: receivers[endpoint["name"]]
        for endpoint in data["endpoints"]
        if endpoint["name"] in receivers
    }
    for endpoint in data["endpoints"]:
        receiver = receivers.get(endpoint["name"]) or by_port.get(urlsplit(endpoint["url"]).netloc)
        if receiver is not None:
            operation = "UpdateCase" if "UpdateCase" in endpoint["url"] else "RegisterCase"
            endpoint["url"] = receiver.url(operation)
            endpoint["read_timeout"] = 5.0
    path = workdir / "routing.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
