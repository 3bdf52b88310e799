"""Delivery workers: claim due messages, call their endpoints on a thread pool, record each outcome.

Any number of worker processes (on any number of machines sharing PostgreSQL) can run side by side: the
database decides who holds which message. A heartbeat keeps the leases of running calls alive; a worker
that stops (SIGTERM) claims nothing more, waits for its calls up to the longest read timeout plus 2 s, and
gives back what it could not finish, so another worker continues without waiting for a lease to expire.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from outbox.policy import Delivery, Kind
from outbox.store import Claimed, OutboxStore
from outbox.transport import EndpointSpec, SoapTransport

__all__ = ["Worker"]

log = logging.getLogger("outbox.worker")
PREFETCH = 4
CLAIM_BATCH = 50


class Worker:
    def __init__(
        self,
        store: OutboxStore,
        endpoints: Callable[[str], EndpointSpec | None],
        transport: SoapTransport,
        *,
        threads: int = 8,
        poll_ms: int = 100,
        owner: str | None = None,
        failpoints: dict[str, set[str]] | None = None,
    ) -> None:
        self.store = store
        self.endpoints = endpoints
        self.transport = transport
        self.threads = threads
        self.poll_ms = poll_ms
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self._inflight: dict[int, Claimed] = {}
        self._acks: queue.Queue[tuple[Claimed, Delivery, int] | None] = queue.Queue()
        self._wake = threading.Event()  # set when a slot frees up
        self._lock = threading.Lock()
        self.stop_event = threading.Event()
        self.delivered = 0
        # Fault injection for the crash tests only: {"kill-before-send" | "kill-after-send": {case ids}}.
        self.failpoints = failpoints or {}

    # -- one message ----------------------------------------------------------------------------------------
    def call(self, message: Claimed) -> tuple[Claimed, Delivery, int]:
        started = self.store.clock()
        endpoint = self.endpoints(message.destination)
        if endpoint is None:
            return (
                message,
                Delivery(Kind.TRANSIENT, f"endpoint {message.destination} is not in the catalogue"),
                started,
            )
        self._failpoint("kill-before-send", message)
        outcome = self.transport.deliver(endpoint, message)
        self._failpoint("kill-after-send", message)
        return message, outcome, started

    def process(self, message: Claimed) -> None:
        """Deliver one message and hand its outcome to the acknowledger."""
        self._acks.put(self.call(message))

    def record(self, results: list[tuple[Claimed, Delivery, int]]) -> None:
        """Record outcomes in one transaction, then log them and forget the messages."""
        try:
            accepted = self.store.complete_many(results, self.owner)
        except Exception:
            log.exception("could not record delivery outcomes", extra={"fields": {"count": len(results)}})
            accepted = set()
        now = self.store.clock()
        with self._lock:
            for message, _outcome, _started in results:
                self._inflight.pop(message.id, None)
        self._wake.set()
        for message, outcome, started in results:
            fields = {
                "message": message.id,
                "case": message.stream,
                "seq": message.seq,
                "destination": message.destination,
                "attempt": message.attempts,
                "outcome": outcome.kind.value,
                "detail": outcome.detail,
                "ms": now - started,
            }
            if message.id not in accepted:
                log.warning("outcome refused: lease lost", extra={"fields": fields})
                continue
            if outcome.kind is Kind.SUCCESS:
                self.delivered += 1
            log.info("delivery", extra={"fields": fields})

    def _acknowledger(self) -> None:
        """Group commits: every outcome waiting is recorded in one transaction."""
        while True:
            first = self._acks.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < 500:
                try:
                    item = self._acks.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self.record(batch)
            if stop:
                return

    def _failpoint(self, name: str, message: Claimed) -> None:
        if message.stream in self.failpoints.get(name, ()):
            log.warning(
                "failpoint: killing this worker", extra={"fields": {"failpoint": name, "message": message.id}}
            )
            os.kill(os.getpid(), signal.SIGKILL)

    def drain_once(self) -> int:
        """Claim and deliver one batch in the calling thread (tests, benchmarks)."""
        claimed = self.store.claim(self.owner, self.threads, suspects=True)
        with self._lock:
            for message in claimed:
                self._inflight[message.id] = message
        if claimed:
            self.record([self.call(message) for message in claimed])
        return len(claimed)

    # -- the loop -------------------------------------------------------------------------------------------
    def _heartbeat(self) -> None:
        interval = self.store.lease_ms / 3000
        while not self.stop_event.wait(interval):
            with self._lock:
                leases = [(m.id, m.lease_token) for m in self._inflight.values()]
            try:
                lost = self.store.heartbeat(leases)
            except Exception:  # noqa: BLE001 - the next beat tries again
                log.warning("heartbeat failed")
                continue
            with self._lock:
                lost &= set(self._inflight)  # ignore messages recorded since the snapshot
            if lost:
                log.warning("leases lost", extra={"fields": {"messages": sorted(lost)}})

    def run(self) -> None:
        """Deliver until ``stop_event`` is set, then finish or give back what is in flight."""
        beat = threading.Thread(target=self._heartbeat, name="outbox-heartbeat", daemon=True)
        beat.start()
        acker = threading.Thread(target=self._acknowledger, name="outbox-ack", daemon=True)
        acker.start()
        self._acker = acker
        pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="outbox-call")
        futures: set[Future[None]] = set()
        log.info("outbox worker started", extra={"fields": {"owner": self.owner, "threads": self.threads}})
        try:
            while not self.stop_event.is_set():
                futures = {f for f in futures if not f.done()}
                with self._lock:
                    suspect_running = any(m.lease_expiries for m in self._inflight.values())
                    holding = len(self._inflight)
                # Up to PREFETCH messages per thread are leased ahead, so one claim serves many calls.
                free = 0 if suspect_running else min(self.threads * PREFETCH - holding, CLAIM_BATCH)
                claimed: list[Claimed] = []
                if free > 0:
                    try:
                        claimed = self.store.claim(self.owner, free, suspects=holding == 0)
                    except Exception:  # noqa: BLE001 - database trouble: wait and try again
                        log.warning("claim failed; retrying", exc_info=False)
                        self.stop_event.wait(1.0)
                        continue
                for message in claimed:
                    with self._lock:
                        self._inflight[message.id] = message
                    futures.add(pool.submit(self.process, message))
                if not claimed:
                    self._wake.wait(self.poll_ms / 1000)
                    self._wake.clear()
        finally:
            self._shutdown(pool, futures)

    def _shutdown(self, pool: ThreadPoolExecutor, futures: set[Future[None]]) -> None:
        with self._lock:
            longest = max((self._timeout_of(m) for m in self._inflight.values()), default=0.0)
        deadline = time.monotonic() + longest + 2.0
        for future in futures:
            future.cancel()  # prefetched calls not started yet are given back below, not made
        pending = {f for f in futures if not f.done()}
        if pending:
            wait(pending, timeout=max(0.0, deadline - time.monotonic()))
        self._acks.put(None)  # record what finished, then stop the acknowledger
        self._acker.join(timeout=max(1.0, deadline - time.monotonic()))
        with self._lock:
            left = list(self._inflight.values())
        for message in left:
            try:
                self.store.release(message)
            except Exception:  # noqa: BLE001 - its lease will expire instead
                log.warning("could not release message", extra={"fields": {"message": message.id}})
        pool.shutdown(wait=False, cancel_futures=True)
        self.transport.close()
        log.info("outbox worker stopped", extra={"fields": {"owner": self.owner, "released": len(left)}})

    def _timeout_of(self, message: Claimed) -> float:
        endpoint = self.endpoints(message.destination)
        return (endpoint.connect_timeout + endpoint.read_timeout) if endpoint else 0.0
