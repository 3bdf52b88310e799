"""Group commit: the write transactions of concurrent requests share one commit (one flush to disk).

Every accepted request must be durable before it is acknowledged, and a durable commit costs a flush of
the write-ahead log: with one transaction per request, a burst of requests queues behind that flush (and,
on SQLite, behind the database's single write lock). Here a request thread hands its unit of work to
``GroupCommit.run``. If no transaction is being built, the thread becomes the leader: it takes every unit
waiting at that moment (its own included), runs them one after another in one transaction, commits, and
wakes their threads. Units that arrive meanwhile wait for the next leader, the first of them, which is
promoted when the current batch is done. With one request at a time this is exactly one transaction per
request; under load the batch grows with the queue.

A unit of work must only touch the database through the connection it is given, must decide whether to
refuse before it writes anything (a refusal is just its return value), and must be safe to run again: if
any unit of a batch raises, or the commit fails, the batch is rolled back and each of its units runs again
in a transaction of its own (on a fresh connection from the pool), so one bad request cannot fail or hold
back the others, and a connection broken while idle costs no request. Nothing is
acknowledged before the transaction that holds it has committed.

Units of the same kind can also share their statements: ``run_shared(shared, item)`` queues ``item`` for
``shared``, a function that stores a whole list of items with one statement per table and returns one
result per item. A batch runs its plain units first, then each shared function once with all its items.
The leader takes its batch only once this process holds the database's write lock (see ``WriterLock``), so
requests that arrive while another process writes join the batch instead of waiting for the next one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine

from gateway.db import WriterLock

__all__ = ["GroupCommit"]

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - the item type of a shared unit
#: stores a list of items in the caller's transaction, one result per item in the same order
Shared = Callable[[Connection, list[I]], list[T]]


class _Unit(Generic[T]):
    __slots__ = ("done", "error", "item", "lead", "shared", "value", "work")

    def __init__(
        self,
        work: Callable[[Connection], T] | None,
        shared: Shared[Any, T] | None = None,
        item: Any = None,
    ) -> None:
        self.work = work
        self.shared = shared
        self.item = item
        self.done = threading.Event()
        self.lead = False
        self.value: T | None = None
        self.error: BaseException | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class GroupCommit:
    def __init__(self, engine: Engine, max_batch: int = 64) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.writer_lock = WriterLock(engine)
        # The leaders' connection: one leader at a time uses it, so a batch does not pay for a pool
        # checkout and check-in. Dropped (and replaced on the next batch) after any failure.
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self._queue: list[_Unit[Any]] = []
        self._leading = False
        #: batches committed and units in them, for metrics and tests
        self.batches = 0
        self.units = 0

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a committed transaction (possibly shared) and return its result or raise."""
        return self._submit(_Unit(work))

    def run_shared(self, shared: Shared[I, T], item: I) -> T:
        """Store ``item`` with ``shared`` together with the other items for it in the batch; its result."""
        return self._submit(_Unit(None, shared, item))

    def _submit(self, unit: _Unit[T]) -> T:
        with self._lock:
            self._queue.append(unit)
            follower = self._leading
            self._leading = True
        if follower:
            unit.done.wait()
            if not unit.lead:
                return unit.outcome()
        self._lead()
        return unit.outcome()

    def _take(self) -> list[_Unit[Any]]:
        with self._lock:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        return batch

    def _lead(self) -> None:
        batch: list[_Unit[Any]] = []
        try:
            try:
                self.writer_lock.__enter__()
            except BaseException as exc:  # noqa: BLE001 - the batch fails with it, and every unit hears so
                batch = self._take()
                for unit in batch:
                    unit.error = exc
                return
            try:
                batch = self._take()
                self._execute(batch)
            finally:
                self.writer_lock.__exit__()
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.done.set()
                else:
                    self._leading = False
            for unit in batch:
                unit.done.set()

    def _execute(self, batch: list[_Unit[Any]]) -> None:
        try:
            conn = self._conn
            if conn is None or conn.closed or conn.invalidated:
                conn = self._conn = self.engine.connect()
            with conn.begin():
                self._run_units(conn, batch)
            self.batches += 1
            self.units += len(batch)
            return
        except BaseException:  # noqa: BLE001 - every unit runs again alone, below
            # also when the batch is a single unit: the leaders' connection may have died while idle (a
            # database restart), and the pool's fresh, pinged connection then gets the unit through
            self._drop_connection()
        for unit in batch:  # each again on its own, so only a faulty one fails
            unit.value = unit.error = None
            try:
                with self.engine.begin() as conn:
                    self._run_units(conn, [unit])
                self.batches += 1
                self.units += 1
            except BaseException as exc:  # noqa: BLE001 - the unit's own error, raised in its thread
                unit.value = None
                unit.error = exc

    @staticmethod
    def _run_units(conn: Connection, units: list[_Unit[Any]]) -> None:
        shared: dict[Shared[Any, Any], list[_Unit[Any]]] = {}
        for unit in units:
            if unit.work is not None:
                unit.value = unit.work(conn)
            else:
                assert unit.shared is not None
                shared.setdefault(unit.shared, []).append(unit)
        for store, members in shared.items():
            results = store(conn, [unit.item for unit in members])
            for unit, value in zip(members, results, strict=True):
                unit.value = value

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()  # its state after a failure is unknown: never back into the pool
                conn.close()
            except Exception:  # noqa: BLE001, S110 - closing a broken connection may fail as well
                pass

    def close(self) -> None:
        """Give the leaders' connection back (when the process shuts down or the engine is disposed)."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
