"""Wiring of the outbox for this gateway: policies from configuration, endpoints from the routing catalogue.

``gateway worker`` runs ``run_worker``; ``gateway serve`` starts it as a child process by default, so one
command runs the whole gateway. SIGTERM or SIGINT stop a worker gracefully.
"""

from __future__ import annotations

import logging
import random
import signal
from types import FrameType

from sqlalchemy import Engine, Select, select

from contracts import load_registry
from gateway.cases.records import case_record
from gateway.cases.state import CLOSED
from gateway.catalogue import routing_holder
from gateway.config import Config
from gateway.db import WriterLock, make_engine
from outbox import (
    BreakerPolicy,
    ClientIdentity,
    EndpointSpec,
    OutboxStore,
    QuarantinePolicy,
    RetryPolicy,
    SoapTransport,
    Worker,
)
from routing import RoutingHolder

__all__ = ["build_store", "build_worker", "open_cases", "run_worker", "worker_engine"]

log = logging.getLogger("gateway.delivery")


def worker_engine(url: str, threads: int) -> Engine:
    """The delivery worker's engine: its commits do not wait for the flush on PostgreSQL.

    Everything it writes (leases, outcomes, attempt log, dead letters) may be lost in a database server
    crash without losing a message: the message rows were committed durably when they were accepted, and
    a lost lease or outcome only makes a message be delivered again (receivers deduplicate by the
    idempotency key, as after a worker crash). docs/adr/0003-outbox-bookkeeping-commits.md.
    """
    return make_engine(url, pool_size=threads + 2, wait_for_flush=False)


def build_store(config: Config, engine: Engine | None = None) -> OutboxStore:
    """The outbox store of ``config``; on ``engine`` or, by default, on an engine whose commits wait for the
    flush (operators' retries, skips and purges are durable)."""
    eng = (
        engine
        if engine is not None
        else make_engine(config.database.url, pool_size=config.outbox.threads + 2)
    )
    ob = config.outbox
    return OutboxStore(
        eng,
        lease_ms=ob.lease_ms,
        retry=RetryPolicy(
            base_ms=ob.retry_base_ms,
            cap_ms=ob.retry_cap_ms,
            max_attempts=ob.max_attempts,
            max_age_ms=ob.max_age_hours * 3600 * 1000,
            rng=random.Random(),
        ),
        breaker=BreakerPolicy(
            threshold=ob.breaker_threshold, open_ms=ob.breaker_open_ms, max_open_ms=ob.breaker_max_open_ms
        ),
        quarantine=QuarantinePolicy(
            backoff_ms=ob.quarantine_backoff_ms,
            max_backoff_ms=ob.quarantine_max_backoff_ms,
            deaths=ob.quarantine_deaths,
            window_ms=ob.quarantine_window_ms,
        ),
        # on SQLite, queue with the accepting processes for the write lock instead of the busy handler
        writers=WriterLock(eng),
        kept_streams=open_cases,
    )


def open_cases() -> Select[tuple[str]]:
    """The cases that are not closed: ``outbox purge`` keeps their messages, which are the timeline of a
    case in the case desk (the retention of closed cases is another matter)."""
    return select(case_record.c.case_id).where(case_record.c.status != CLOSED)


def build_worker(config: Config, *, threads: int | None = None) -> tuple[Worker, RoutingHolder]:
    store = build_store(config, worker_engine(config.database.url, config.outbox.threads))
    routing = routing_holder(config)  # on a read-only engine of its own (gateway.catalogue)
    routing.start()

    def endpoints(name: str) -> EndpointSpec | None:
        endpoint = routing.table.endpoint(name)
        if endpoint is None:
            return None
        return EndpointSpec(
            name=endpoint.name,
            url=endpoint.url,
            connect_timeout=endpoint.connect_timeout,
            read_timeout=endpoint.read_timeout,
            client_certificate=endpoint.client_certificate,
            client_key=endpoint.client_key,
            trust_store=endpoint.trust_store,
            verify_hostname=endpoint.verify_hostname,
        )

    ob = config.outbox
    identity = ClientIdentity(ob.client_certificate, ob.client_key, ob.trust_store or config.tls.trust_store)
    actions = {c.operation: c.soap_action for c in load_registry().contracts()}
    failpoints: dict[str, set[str]] = {}
    for part in filter(None, ob.failpoints.split(";")):
        name, _, cases = part.partition("=")
        failpoints[name.strip()] = {c.strip() for c in cases.split(",") if c.strip()}
    if failpoints:
        log.warning(
            "fault injection enabled: this worker will kill itself",
            extra={"fields": {"at": sorted(failpoints)}},
        )
    worker = Worker(
        store,
        endpoints,
        SoapTransport(identity, actions),
        threads=threads or ob.threads,
        poll_ms=ob.poll_ms,
        failpoints=failpoints,
    )
    return worker, routing


def run_worker(config: Config, *, threads: int | None = None) -> int:
    worker, routing = build_worker(config, threads=threads)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping outbox worker", extra={"fields": {"signal": signum}})
        worker.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        worker.run()
    finally:
        routing.stop()
        worker.store.engine.dispose()
        routing.store.engine.dispose()
    return 0
