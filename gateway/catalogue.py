"""The routing catalogue as a serving process holds it: ``routing_holder(config)``.

Every process that serves or delivers (the SOAP app, the web listener, the delivery worker) reads the
catalogue on a small read-only engine of its own, in autocommit. On SQLite every transaction of the main
engine begins IMMEDIATE, so a write lock held by another process would otherwise keep a freshly started
worker from loading its routing (it would answer VP004 until the lock went). Whoever closes the process
disposes ``holder.store.engine`` with its own engines.
"""

from __future__ import annotations

from gateway.config import Config
from gateway.db import make_engine
from routing import RoutingHolder

__all__ = ["routing_holder"]


def routing_holder(config: Config) -> RoutingHolder:
    reads = make_engine(
        config.database.url,
        echo=config.database.echo,
        pool_size=2,
        read_only=True,
        lock_timeout_ms=config.database.lock_timeout_ms,
    )
    return RoutingHolder(reads, config.routing.snapshot_file, config.routing.poll_interval_ms / 1000)
