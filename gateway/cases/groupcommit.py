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

No request waits longer than ``lock_timeout_ms`` for a write lock (another process may hold one for as long
as it likes: a ``sqlite3`` shell inside ``BEGIN IMMEDIATE``, a stuck gateway process). Each unit has a
deadline from the moment it is submitted, and waits for its outcome until then; a unit that no batch has
taken by its deadline leaves the queue with ``DatabaseBusyError`` (VP009, retryable), having stored
nothing. A leader takes the writers' lock only if it is free; if another process holds it, the lead passes
to a thread of this process that waits for the lock in the kernel (``flock`` has no timeout) and then runs
the batch exactly as a leader would, so the uncontended path is unchanged and the contended one wakes one
thread, as before. The database's own lock wait (SQLite's busy timeout, PostgreSQL's ``lock_timeout``) is
cut to what is left of the oldest unit's deadline when that is noticeably less than the bound (by more than
a tenth of it, at most 0.5 s: by that much a request may overrun), and a batch that failed because a lock
was not granted in time is not run again unit by unit (each would wait once more): every unit in it fails
with the same fault.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine

from gateway.db import DEFAULT_LOCK_TIMEOUT_MS, WriterLock, is_lock_timeout, set_lock_wait
from gateway.errors import DatabaseBusyError

__all__ = ["GroupCommit"]

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - the item type of a shared unit
#: stores a list of items in the caller's transaction, one result per item in the same order
Shared = Callable[[Connection, list[I]], list[T]]


class _Unit(Generic[T]):
    __slots__ = ("deadline", "done", "error", "item", "lead", "shared", "value", "work")

    def __init__(
        self,
        deadline: float,
        work: Callable[[Connection], T] | None,
        shared: Shared[Any, T] | None = None,
        item: Any = None,
    ) -> None:
        self.deadline = deadline
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


class _LockWaiter:
    """A thread that holds the lead while another process holds the writers' lock: it blocks in ``flock``
    (no bound is possible there) and, once it has the lock, runs the batch like any leader. Leading from
    here costs no more than from a request thread: one thread wakes when the lock comes free."""

    def __init__(self, commits: GroupCommit) -> None:
        self.pid = os.getpid()
        self._commits = commits
        self._asked = threading.Event()
        threading.Thread(target=self._run, name="groupcommit-lock-waiter", daemon=True).start()

    def wake(self) -> None:
        self._asked.set()

    def _run(self) -> None:
        commits = self._commits
        while True:
            self._asked.wait()
            self._asked.clear()
            try:
                commits.writer_lock.acquire()
            except BaseException as exc:  # noqa: BLE001 - the queued units fail with it, and hear so
                batch = commits._take()
                for unit in batch:
                    unit.error = exc
                commits._finish(batch)
                continue
            commits._run_batch()


class GroupCommit:
    def __init__(
        self, engine: Engine, max_batch: int = 64, lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS
    ) -> None:
        """``lock_timeout_ms`` must be the one ``engine`` was made with (``make_engine``)."""
        self.engine = engine
        self.max_batch = max_batch
        self.lock_timeout = lock_timeout_ms / 1000
        # A lock wait is cut to the time left only when at least this much of it is spent: waiting in the
        # queue behind this process's own batches (milliseconds) costs no statement on the hot path.
        self._cut_after = min(0.5, self.lock_timeout / 10)
        self.writer_lock = WriterLock(engine)
        # The leaders' connection: one leader at a time uses it, so a batch does not pay for a pool
        # checkout and check-in. Dropped (and replaced on the next batch) after any failure.
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self._queue: list[_Unit[Any]] = []
        self._leading = False
        self._waiter: _LockWaiter | None = None
        #: batches committed and units in them, for metrics and tests
        self.batches = 0
        self.units = 0

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a committed transaction (possibly shared) and return its result or raise."""
        return self._submit(_Unit(time.monotonic() + self.lock_timeout, work))

    def run_shared(self, shared: Shared[I, T], item: I) -> T:
        """Store ``item`` with ``shared`` together with the other items for it in the batch; its result."""
        return self._submit(_Unit(time.monotonic() + self.lock_timeout, None, shared, item))

    def _submit(self, unit: _Unit[T]) -> T:
        with self._lock:
            self._queue.append(unit)
            leading = not self._leading
            self._leading = True
        while True:
            if leading:
                self._lead()  # runs a batch with this unit in it, or hands the lead to the lock waiter
            self._wait(unit)
            if not unit.lead:
                return unit.outcome()
            # promoted: this thread leads the next batch (the unit is still queued)
            unit.lead = False
            unit.done.clear()
            leading = True

    def _wait(self, unit: _Unit[Any]) -> None:
        """Until the unit's outcome is known or it is promoted. At its deadline, if it is still queued (no
        batch took it: the write lock did not come in time), it leaves with ``DatabaseBusyError``."""
        if unit.done.wait(max(0.0, unit.deadline - time.monotonic())):
            return
        with self._lock:
            if not unit.done.is_set() and unit in self._queue:
                self._queue.remove(unit)
                unit.error = self._busy()
                unit.done.set()
                return
        # in a batch that runs now: its lock waits are cut to the oldest unit's deadline, so it ends soon
        unit.done.wait()

    def _take(self) -> list[_Unit[Any]]:
        with self._lock:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        return batch

    def _busy(self) -> DatabaseBusyError:
        return DatabaseBusyError(
            f"Database busy: no write lock within {self.lock_timeout:g} s (another process holds it); "
            "nothing was stored, try again"
        )

    def _lead(self) -> None:
        """As the leader: take the writers' lock if it is free and run a batch; else hand the lead over."""
        try:
            locked = self.writer_lock.try_acquire()
        except BaseException as exc:  # noqa: BLE001 - the batch fails with it, and every unit hears so
            batch = self._take()
            for unit in batch:
                unit.error = exc
            self._finish(batch)
            return
        if locked:
            self._run_batch()
            return
        # Another process writes. A thread of ours waits for the lock in the kernel and then runs the
        # batch itself, as this thread would have; the requests meanwhile wait until their deadlines.
        waiter = self._waiter
        if waiter is None or waiter.pid != os.getpid():
            waiter = self._waiter = _LockWaiter(self)
        waiter.wake()

    def _run_batch(self) -> None:
        """With the writers' lock held: take the waiting units, run them, release the lock, pass the lead."""
        batch: list[_Unit[Any]] = []
        try:
            try:
                batch = self._take()
                if batch:
                    self._execute(batch, min(unit.deadline for unit in batch))
            finally:
                self.writer_lock.release()
        finally:
            self._finish(batch)

    def _finish(self, batch: list[_Unit[Any]]) -> None:
        with self._lock:
            if self._queue:
                successor = self._queue[0]
                successor.lead = True
                successor.done.set()
            else:
                self._leading = False
        for unit in batch:
            unit.done.set()

    def _bounded(self, conn: Connection, deadline: float) -> bool:
        """Cut the connection's lock wait to what is left until ``deadline``; True when it was changed.

        Only when the wait for the writers' lock took noticeably long (or a unit runs again late): in the
        common case no statement is spent on it.
        """
        left = deadline - time.monotonic()
        if left > self.lock_timeout - self._cut_after:
            return False
        set_lock_wait(conn, int(left * 1000))
        return True

    def _run_bounded(self, conn: Connection, units: list[_Unit[Any]], deadline: float) -> None:
        bounded = self._bounded(conn, deadline)
        try:
            with conn.begin():
                self._run_units(conn, units)
        finally:
            if bounded and not conn.invalidated:
                try:
                    set_lock_wait(conn, int(self.lock_timeout * 1000))
                except Exception:  # noqa: BLE001 - a connection that cannot take it back is not reused
                    conn.invalidate()

    def _execute(self, batch: list[_Unit[Any]], deadline: float) -> None:
        try:
            conn = self._conn
            if conn is None or conn.closed or conn.invalidated:
                conn = self._conn = self.engine.connect()
            self._run_bounded(conn, batch, deadline)
            self.batches += 1
            self.units += len(batch)
            return
        except BaseException as exc:  # noqa: BLE001 - every unit runs again alone, below
            # also when the batch is a single unit: the leaders' connection may have died while idle (a
            # database restart), and the pool's fresh, pinged connection then gets the unit through
            self._drop_connection()
            if is_lock_timeout(exc):
                # every unit has waited its share; running each again would make it wait once more
                for unit in batch:
                    unit.value = None
                    unit.error = self._busy()
                return
        busy = False
        for unit in batch:  # each again on its own, so only a faulty one fails
            unit.value = unit.error = None
            if busy:
                unit.error = self._busy()
                continue
            try:
                with self.engine.connect() as conn:
                    self._run_bounded(conn, [unit], unit.deadline)
                self.batches += 1
                self.units += 1
            except BaseException as exc:  # noqa: BLE001 - the unit's own error, raised in its thread
                unit.value = None
                busy = is_lock_timeout(exc)
                unit.error = self._busy() if busy else exc

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
