"""Fixtures that start real gateway processes and talk to them over mutual TLS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, func, select

from gateway.cases.inbox import inbox_message
from gateway.certs import ExamplePki
from tests.integration.harness import GatewayProcess

ROOT = Path(__file__).resolve().parents[2]
REGISTER_EXAMPLE = ROOT / "examples" / "register-case.xml"
UPDATE_EXAMPLE = ROOT / "examples" / "update-case.xml"

pytestmark = pytest.mark.slow


@pytest.fixture
def start_gateway(pki: ExamplePki, tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    started: list[GatewayProcess] = []

    def start(db_url: str, **extra: dict[str, Any]) -> GatewayProcess:
        workdir = tmp_path / f"gw{len(started)}"
        workdir.mkdir()
        gateway = GatewayProcess(pki, db_url, workdir, extra=extra)
        started.append(gateway)
        return gateway.start()

    yield start
    for gateway in started:
        gateway.stop()


def session_for(pki: ExamplePki, client: str | None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(pki.ca_cert)
    if client is not None:
        identity = pki.clients[client]
        session.cert = (str(identity.cert), str(identity.key))
    return session


def inbox_count(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(inbox_message)).scalar_one())
    finally:
        engine.dispose()
