"""Delivery workers: claim due messages, call their endpoints on a set of call threads, record each outcome.

Any number of worker processes (on any number of machines sharing PostgreSQL) can run side by side: the
database decides who holds which message. A heartbeat keeps the leases of running calls alive; a worker
that stops (SIGTERM) claims nothing more, waits for its calls up to the longest read timeout plus 2 s, and
gives back what it could not finish, so another worker continues without waiting for a lease to expire.

Three kinds of threads share the work, each doing one thing: the claimer (``run``) leases batches of
messages into a local queue when it runs low, the call threads take them from it one at a time, and the
acknowledger records every finished outcome that is waiting in one transaction. Claims and acknowledgements
stay large under load (one claim and one commit serve tens of messages), and the call threads never wait
for the database: they only wait when there is nothing to deliver.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

from outbox.policy import Delivery, Kind
from outbox.store import Claimed, OutboxStore
from outbox.transport import EndpointSpec, SoapTransport

__all__ = ["Worker"]

log = logging.getLogger("outbox.worker")
#: the claimer refills the local queue when fewer than this many messages per call thread wait in it
PREFETCH = 4
#: most messages leased by one claim
CLAIM_BATCH = 50
#: delivered messages that may wait for their outcome to be committed before claims pause
ACK_BACKLOG = 500
#: while calls are running, the acknowledger waits up to this long for this many outcomes per commit
ACK_LINGER_S = 0.02
ACK_BATCH = 50
#: while it holds messages, a worker looks this often for a suspect waiting to be delivered alone
SUSPECT_CHECK_S = 1.0


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
        # claimed and not recorded yet: waiting in _ready, being called, or waiting for the acknowledger
        self._inflight: dict[int, Claimed] = {}
        self._ready: deque[Claimed] = deque()  # claimed, not started
        self._calling = 0  # messages taken from _ready whose call has not finished
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # call threads wait here for messages
        self._closing = False  # set (under _lock) when the call threads must start nothing more
        self._acks: queue.Queue[tuple[Claimed, Delivery, int] | None] = queue.Queue()
        self._wake = threading.Event()  # wakes the claimer: the local queue runs low or a slot freed up
        self.stop_event = threading.Event()
        self.delivered = 0
        self._suspect_checked = 0.0  # monotonic time of the last look for a waiting suspect
        self._suspect_seen = False
        self._record_failing = False  # the last commit of outcomes failed (for its recovery line)
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
        """Forget the messages, record their outcomes in one transaction, then log them.

        They are forgotten first so the heartbeat does not take a lease that this commit ends for a lost
        one; if the commit fails, their leases expire and they are delivered again.
        """
        with self._lock:
            for message, _outcome, _started in results:
                self._inflight.pop(message.id, None)
        try:
            accepted = self.store.complete_many(results, self.owner)
        except Exception:
            self._record_failing = True
            log.error(
                "could not record delivery outcomes",
                exc_info=True,
                extra={"fields": {"count": len(results)}, "repeat": "outbox-record"},
            )
            accepted = set()
        else:
            if self._record_failing:
                self._record_failing = False
                log.info("recording delivery outcomes recovered", extra={"recovered": "outbox-record"})
        now = self.store.clock()
        self._wake.set()
        logging_all = log.isEnabledFor(logging.INFO)
        for message, outcome, started in results:
            ok = message.id in accepted
            if ok and outcome.kind is Kind.SUCCESS:
                self.delivered += 1
            if ok and not logging_all:
                continue
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
            if ok:
                log.info("delivery", extra={"fields": fields})
            else:
                log.warning("outcome refused: lease lost", extra={"fields": fields})

    def _acknowledger(self) -> None:
        """Group commits: every outcome waiting is recorded in one transaction.

        Each commit costs several round trips whatever its size, so while more calls are running it waits
        a little (ACK_LINGER_S) for a fuller batch. Only the next message of the same case waits for it.
        """
        while True:
            first = self._acks.get()
            if first is None:
                return
            batch = [first]
            stop = False
            until = time.monotonic() + ACK_LINGER_S
            while len(batch) < ACK_BACKLOG:
                try:
                    item = self._acks.get_nowait()
                except queue.Empty:
                    left = until - time.monotonic()
                    if len(batch) >= ACK_BATCH or left <= 0 or not self._calling:
                        break
                    try:
                        item = self._acks.get(timeout=left)
                    except queue.Empty:
                        break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self.record(batch)
            if stop:
                return

    def _caller(self) -> None:
        """One call thread: deliver the next leased message until the worker closes."""
        low = self.threads * PREFETCH
        called = False
        while True:
            with self._work:
                if called:
                    self._calling -= 1
                while not self._ready and not self._closing:
                    self._work.wait()
                if self._closing:
                    return  # messages not started are given back by _shutdown
                message = self._ready.popleft()
                self._calling += 1
                running_low = len(self._ready) < low
            if running_low:
                self._wake.set()
            self.process(message)
            called = True

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
        failing = False
        while not self.stop_event.wait(interval):
            with self._lock:
                leases = [(m.id, m.lease_token) for m in self._inflight.values()]
            try:
                lost = self.store.heartbeat(leases)
            except Exception:  # the next beat tries again
                failing = True
                log.warning("heartbeat failed", exc_info=True, extra={"repeat": "outbox-heartbeat"})
                continue
            if failing:
                failing = False
                log.info("heartbeat recovered", extra={"recovered": "outbox-heartbeat"})
            with self._lock:
                lost &= set(self._inflight)  # ignore messages recorded since the snapshot
            if lost:
                log.warning("leases lost", extra={"fields": {"messages": sorted(lost)}})

    def _free(self) -> tuple[int, bool]:
        """How many messages to claim now, and whether a suspect may be among them."""
        with self._lock:
            holding = len(self._inflight)
            ahead = len(self._ready) + self._calling
            if len(self._ready) >= self.threads * PREFETCH:
                return 0, False  # enough to do for a while: a claim takes tens of ms on a busy machine
            if any(m.lease_expiries for m in self._inflight.values()):
                return 0, False  # a suspect is being delivered alone
        if holding and self._suspect_waits():
            return 0, False  # let what is in flight finish, then take the suspect alone
        # Messages not called yet are leased ahead up to PREFETCH per thread plus one claim, so claims are
        # large and the call threads do not run dry while one is made. Outcomes waiting for their commit
        # do not hold claims back (a busy acknowledger commits larger batches instead) until ACK_BACKLOG
        # of them wait.
        limit = self.threads * PREFETCH + CLAIM_BATCH
        return min(CLAIM_BATCH, limit - ahead, limit + ACK_BACKLOG - holding), holding == 0

    def _suspect_waits(self) -> bool:
        """Whether a suspect waits for a worker with nothing in flight (looked up at most every second)."""
        now = time.monotonic()
        if now - self._suspect_checked >= SUSPECT_CHECK_S:
            self._suspect_checked = now
            try:
                self._suspect_seen = self.store.suspect_waiting()
            except Exception:  # noqa: BLE001 - database trouble: the claim path reports it
                self._suspect_seen = False
        return self._suspect_seen

    def run(self) -> None:
        """Deliver until ``stop_event`` is set, then finish or give back what is in flight."""
        beat = threading.Thread(target=self._heartbeat, name="outbox-heartbeat", daemon=True)
        beat.start()
        acker = threading.Thread(target=self._acknowledger, name="outbox-ack", daemon=True)
        acker.start()
        callers = [
            threading.Thread(target=self._caller, name=f"outbox-call-{n}", daemon=True)
            for n in range(self.threads)
        ]
        for thread in callers:
            thread.start()
        log.info("outbox worker started", extra={"fields": {"owner": self.owner, "threads": self.threads}})
        claim_failing = False
        try:
            while not self.stop_event.is_set():
                self._wake.clear()  # before looking, so a wake-up from now on is not lost
                free, suspects = self._free()
                claimed: list[Claimed] = []
                if free > 0:
                    try:
                        claimed = self.store.claim(self.owner, free, suspects=suspects)
                    except Exception:  # database trouble: wait and try again
                        # "repeat": written once with its cause, then counted (gateway.logs.RepeatFilter)
                        claim_failing = True
                        log.warning("claim failed; retrying", exc_info=True, extra={"repeat": "outbox-claim"})
                        self.stop_event.wait(1.0)
                        continue
                    if claim_failing:
                        claim_failing = False
                        log.info("claims recovered", extra={"recovered": "outbox-claim"})
                if claimed:
                    with self._work:
                        for message in claimed:
                            self._inflight[message.id] = message
                        self._ready.extend(claimed)
                        self._work.notify(len(claimed))
                if len(claimed) < free or free <= 0:
                    # nothing more due now, or no room: wait for a slot, a low local queue, or the next poll
                    self._wake.wait(self.poll_ms / 1000)
        finally:
            self._shutdown(callers, acker)

    def _shutdown(self, callers: list[threading.Thread], acker: threading.Thread) -> None:
        with self._lock:
            longest = max((self._timeout_of(m) for m in self._inflight.values()), default=0.0)
            self._closing = True  # prefetched messages not started yet are given back below, not called
            self._work.notify_all()
        deadline = time.monotonic() + longest + 2.0
        for thread in callers:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._acks.put(None)  # record what finished, then stop the acknowledger
        acker.join(timeout=max(1.0, deadline - time.monotonic()))
        with self._lock:
            left = list(self._inflight.values())
        for message in left:
            try:
                self.store.release(message)
            except Exception:  # noqa: BLE001 - its lease will expire instead
                log.warning("could not release message", extra={"fields": {"message": message.id}})
        self.transport.close()
        log.info("outbox worker stopped", extra={"fields": {"owner": self.owner, "released": len(left)}})

    def _timeout_of(self, message: Claimed) -> float:
        endpoint = self.endpoints(message.destination)
        return (endpoint.connect_timeout + endpoint.read_timeout) if endpoint else 0.0
