"""Which commits wait for the disk: the delivery worker's bookkeeping does not on PostgreSQL, all else does.

docs/adr/0003-outbox-bookkeeping-commits.md explains why losing the worker's last commits in a database server
crash loses no message.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from gateway.config import load_config
from gateway.db import make_engine
from gateway.delivery import build_store, worker_engine


def _commit_waits(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                return int(conn.execute(text("PRAGMA synchronous")).scalar_one()) == 2  # FULL
            return str(conn.execute(text("SHOW synchronous_commit")).scalar_one()) == "on"
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("make", "waits_on"),
    [
        pytest.param(lambda url: make_engine(url), {"sqlite": True, "postgresql": True}, id="default"),
        pytest.param(
            lambda url: build_store(load_config(None, env={"GATEWAY_DATABASE_URL": url})).engine,
            {"sqlite": True, "postgresql": True},
            id="operators' outbox commands",
        ),
        pytest.param(
            lambda url: worker_engine(url, 2), {"sqlite": True, "postgresql": False}, id="delivery worker"
        ),
    ],
)
def test_only_the_delivery_workers_postgresql_commits_skip_the_flush(
    db_url: str, make: Callable[[str], Engine], waits_on: dict[str, bool]
) -> None:
    engine = make(db_url)
    assert _commit_waits(engine) is waits_on[engine.dialect.name]
