"""A gateway with separately started delivery workers and scripted receivers, for crash tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy import create_engine, func, select

from gateway.certs import ExamplePki
from outbox.schema import outbox_message
from tests.integration.conftest import REGISTER_EXAMPLE, session_for
from tests.integration.envelopes import envelope
from tests.integration.harness import ROOT, GatewayProcess
from tests.integration.receivers import ReceiverProcess, catalogue_for

UNIT = "SE2321000016-7Q6X"


@dataclass
class WorkerProcess:
    config: Path
    log: Path
    failpoints: str = ""
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("GATEWAY_") or k.startswith("GATEWAY_TEST")
        }
        if self.failpoints:
            env["GATEWAY_OUTBOX_FAILPOINTS"] = self.failpoints
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "--config", str(self.config), "worker"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive and self.process is not None:
            os.kill(self.process.pid, sig)

    def stop(self) -> None:
        if self.alive and self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.alive and self.process is not None:
            self.process.kill()
            self.process.wait()


@dataclass
class DeliverySystem:
    pki: ExamplePki
    db_url: str
    workdir: Path
    outbox: dict[str, Any] = field(default_factory=dict)
    gateway: GatewayProcess | None = None
    region: ReceiverProcess | None = None
    workers: list[WorkerProcess] = field(default_factory=list)

    def start(self) -> DeliverySystem:
        self.region = ReceiverProcess(self.pki, self.workdir, "deviation-a").start()
        catalogue = catalogue_for(self.workdir, {"deviation-a": self.region})
        self.gateway = GatewayProcess(
            self.pki,
            self.db_url,
            self.workdir,
            catalogue=catalogue,
            extra={
                "outbox": {
                    "run_in_serve": False,
                    "client_certificate": self.pki.clients["gateway"].cert,
                    "client_key": self.pki.clients["gateway"].key,
                    "poll_ms": 50,
                    "retry_base_ms": 200,
                    "retry_cap_ms": 2000,
                    **self.outbox,
                }
            },
        ).start()
        return self

    @property
    def config(self) -> Path:
        return self.workdir / "gateway.toml"

    def worker(self, failpoints: str = "") -> WorkerProcess:
        worker = WorkerProcess(
            self.config, self.workdir / f"worker{len(self.workers)}.log", failpoints
        ).start()
        self.workers.append(worker)
        return worker

    def submit(self, case_id: str) -> None:
        payload = etree.parse(str(REGISTER_EXAMPLE)).getroot()
        el = payload.find("{*}caseId")
        assert el is not None
        el.text = case_id
        assert self.gateway is not None
        with session_for(self.pki, "1177") as session:
            response = session.post(
                self.gateway.url + "/rc",
                data=envelope(payload, UNIT),
                headers={"Content-Type": "text/xml"},
                timeout=20,
            )
        assert response.status_code == 200, response.text
        assert b"<core:resultCode>OK</core:resultCode>" in response.content

    def counts(self) -> dict[str, int]:
        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return dict(
                    conn.execute(
                        select(outbox_message.c.status, func.count()).group_by(outbox_message.c.status)
                    ).all()
                )
        finally:
            engine.dispose()

    def wait_settled(self, total: int, timeout: float = 60.0) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            counts = self.counts()
            if counts.get("done", 0) + counts.get("dead", 0) + counts.get("skipped", 0) == total:
                return counts
            time.sleep(0.1)
        raise AssertionError(f"not settled within {timeout}s: {counts}")

    def stop(self) -> None:
        for worker in self.workers:
            worker.signal(signal.SIGCONT)
            worker.kill()
        if self.gateway is not None:
            self.gateway.stop()
        if self.region is not None:
            self.region.stop()
