"""Shared fixtures: example PKI, databases (SQLite always, PostgreSQL when configured), real servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from gateway import migrate
from gateway.certs import ExamplePki, generate_example_pki
from gateway.db import make_engine

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL")
POSTGRES_SKIP = "PostgreSQL tests need GATEWAY_TEST_POSTGRES_URL (CI sets it; .ci/run exports it)"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ExamplePki:
    return generate_example_pki(tmp_path_factory.mktemp("pki"))


def _postgres_schema_url(base: str) -> Iterator[str]:
    """A throw-away schema in the test database, selected through the connection's search_path."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    # NullPool: a fresh connection for the drop, even if a test restarted the server meanwhile
    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test runs once on SQLite and once on PostgreSQL (skipped with a reason when not configured)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gateway.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP)
    yield from _postgres_schema_url(POSTGRES_URL)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'gateway.db'}"


@pytest.fixture
def migrated_engine(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url`` with the schema from the migrations (room for a worker's threads)."""
    engine = make_engine(db_url, pool_size=6)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()
