"""Start a real ``gateway serve`` process (gunicorn, mutual TLS) on free loopback ports for a test."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway import migrate
from gateway.certs import ExamplePki
from gateway.db import make_engine
from routing import CatalogueStore
from routing.io import load

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def publish_catalogue(db_url: str, path: Path, comment: str = "test catalogue") -> int:
    """Import ``path`` into the draft and publish it, unless a version is already active."""
    engine = make_engine(db_url, pool_size=1)
    try:
        migrate.upgrade(engine)
        store = CatalogueStore(engine)
        active = store.active_version()
        if active is not None:
            return active[0]
        store.replace_draft(load(path), "test")
        return store.publish("test", comment, force=True).version
    finally:
        engine.dispose()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


@dataclass
class GatewayProcess:
    pki: ExamplePki
    db_url: str
    workdir: Path
    workers: int = 2
    threads: int = 4
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: catalogue published before start (when nothing is published yet); None publishes nothing
    catalogue: Path | None = ROOT / "examples" / "routing.yaml"
    port: int = 0
    ops_port: int = 0
    web_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.ops_port}"

    @property
    def log_file(self) -> Path:
        return self.workdir / "gateway.log"

    def config_text(self) -> str:
        sections: dict[str, dict[str, Any]] = {
            "server": {
                "bind": f"127.0.0.1:{self.port}",
                "public_url": self.url,
                "workers": self.workers,
                "threads": self.threads,
                "graceful_timeout": 5,
            },
            "tls": {
                "certificate": self.pki.server.cert,
                "private_key": self.pki.server.key,
                "trust_store": self.pki.ca_cert,
                "crl": self.pki.crl,
            },
            "ops": {"bind": f"127.0.0.1:{self.ops_port}"},
            "web": {"bind": f"127.0.0.1:{self.web_port}", "public_url": f"https://localhost:{self.web_port}"},
            "routing": {"snapshot_file": self.workdir / "routing-snapshot.json", "poll_interval_ms": 200},
            "database": {"url": self.db_url},
            "log": {"level": "INFO", "format": "json"},
        }
        for section, values in self.extra.items():
            sections.setdefault(section, {}).update(values)
        lines = []
        for section, values in sections.items():
            lines.append(f"[{section}]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 40.0, *, wait_ready: bool = True) -> GatewayProcess:
        if self.catalogue is not None:
            publish_catalogue(self.db_url, self.catalogue)
        self.port, self.ops_port, self.web_port = free_port(), free_port(), free_port()
        config = self.workdir / "gateway.toml"
        config.write_text(self.config_text())
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("GATEWAY_") or k.startswith("GATEWAY_TEST")
        }
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "--config", str(config), "serve"],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gateway exited with {self.process.returncode}:\n{self.log_text()[-3000:]}"
                )
            if self.ready() if wait_ready else self.live():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gateway not ready within {timeout}s:\n{self.log_text()[-3000:]}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.ops_url + "/health/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def live(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                pass
            with urllib.request.urlopen(self.ops_url + "/health/live", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
