"""Database engines for SQLite (embedded default) and PostgreSQL, configured for durability.

SQLite runs in WAL mode with ``synchronous=FULL`` so a commit survives power loss, and every transaction
starts with ``BEGIN IMMEDIATE`` so read-then-write sequences cannot interleave between processes (pysqlite
would otherwise defer the write lock). Engines are created from configuration, never at import time.

Waits for a write lock are bounded (``database.lock_timeout_ms``): SQLite's busy timeout and PostgreSQL's
``lock_timeout`` give up after it, and so does a request waiting for ``WriterLock`` (through the group
commit), so a request held up by another process gets its answer (VP009, retryable) before the national
platform's 29 s timeout. ``is_lock_timeout`` tells such a failure from others.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

__all__ = [
    "DEFAULT_LOCK_TIMEOUT_MS",
    "WriterLock",
    "is_lock_timeout",
    "make_engine",
    "ping",
    "private_directory",
    "set_lock_wait",
    "tighten",
]

log = logging.getLogger("gateway.db")

#: the default bound of a wait for a write lock (database.lock_timeout_ms)
DEFAULT_LOCK_TIMEOUT_MS = 10_000
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
_PG_LOCK_NOT_AVAILABLE = "55P03"


def make_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int = 10,
    wait_for_flush: bool = True,
    read_only: bool = False,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
) -> Engine:
    """An engine for ``url``; every commit waits for its flush to disk unless ``wait_for_flush`` is False.

    A statement waits at most ``lock_timeout_ms`` for a lock another connection holds (SQLite's busy
    timeout, PostgreSQL's ``lock_timeout``), then fails with an error that ``is_lock_timeout`` recognises.

    ``read_only`` is for probes and reports that must answer while a writer holds the database (health,
    status, metrics): on SQLite its transactions never ask for the write lock (no ``BEGIN IMMEDIATE``;
    ``PRAGMA query_only``), so a long write elsewhere cannot stall them; on PostgreSQL its sessions are
    read-only (``default_transaction_read_only``).

    ``wait_for_flush=False`` is for bookkeeping whose loss only repeats work (the delivery worker's leases
    and outcomes, see docs/adr/0003-outbox-bookkeeping-commits.md): on PostgreSQL its commits return before
    the WAL flush (``synchronous_commit=off``; a server crash can lose the last few hundred milliseconds of
    them, never corrupt anything, and a crash of our process loses nothing). SQLite keeps
    ``synchronous=FULL`` either way (ADR 0003 says why).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            _private_database_file(Path(database))
        engine = create_engine(
            parsed,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"timeout": lock_timeout_ms / 1000, "check_same_thread": False},
        )
        _sqlite_durability(engine, lock_timeout_ms, read_only=read_only)
        return engine
    # A transaction left open (a crashed handler) must not hold locks or bloat the queue tables.
    options = f"-c idle_in_transaction_session_timeout=60000 -c lock_timeout={int(lock_timeout_ms)}"
    if not wait_for_flush:
        options += " -c synchronous_commit=off"
    if read_only:
        options += " -c default_transaction_read_only=on"
    given = parsed.query.get("options")
    if given:
        options = f"{given if isinstance(given, str) else ' '.join(given)} {options}"
        parsed = parsed.difference_update_query(["options"])
    connect_args: dict[str, Any] = {"options": options, "connect_timeout": 5}
    return create_engine(
        parsed,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


#: what SQLite keeps beside a database file; it creates them with the database file's own mode
_SIDE_FILES = ("-wal", "-shm", "-journal", "-writers.lock")


def _private_database_file(path: Path) -> None:
    """Make sure the database file exists readable by its owner alone before SQLite opens it.

    The cases in it are health data. SQLite creates a new file with mode 0644 less the umask, and gives
    its -wal and -shm files the mode of the database file, so the file is created here with 0600 and
    SQLite's own files follow it. A directory made for it is 0700; an existing file that others may read
    is tightened, with a warning.
    """
    private_directory(path.parent)
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        return
    except FileExistsError:
        pass
    except OSError:
        return  # not creatable here: SQLite reports the cause when it opens the file
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in _SIDE_FILES)):
        tighten(candidate)


def private_directory(directory: Path) -> None:
    """Create ``directory`` and each missing parent with mode 0700 (``mkdir -p`` would use the umask)."""
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)


def tighten(path: Path) -> None:
    """Make an existing file readable by its owner alone (with a warning when others could read it)."""
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
            log.warning(
                "%s was readable by others (mode %04o); now by its owner only (%04o)",
                path,
                mode,
                mode & 0o700,
                extra={"fields": {"file": str(path)}},
            )
    except FileNotFoundError:
        return
    except OSError as exc:  # e.g. owned by another user; said in one line (commands may not set up logging)
        log.warning(
            "could not make %s private: %s", path, exc.strerror, extra={"fields": {"file": str(path)}}
        )


def _sqlite_durability(engine: Engine, lock_timeout_ms: int, *, read_only: bool = False) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's begin event below (the documented pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(lock_timeout_ms)}")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    if read_only:
        return  # reads run in autocommit: in WAL mode they never wait for a writer

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # straight on the driver connection: every write transaction starts here, and SQLAlchemy's
        # statement execution around it costs more than the statement itself
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE")


class WriterLock:
    """A queue for the write lock of a SQLite database file, shared by every process that writes to it.

    SQLite lets one transaction write at a time. A process that finds the database locked sleeps in
    SQLite's busy handler, in growing steps up to 100 ms, whether the lock is freed after 1 ms or not:
    under load that sleep, not the work, is the tail latency. Writers that take this ``flock`` first wait
    in the kernel instead, and are woken the moment the holder is done. On PostgreSQL (row locks, no
    database-wide write lock) and for in-memory databases it is a no-op.

    ``flock`` cannot time out, and a request must not wait longer than ``database.lock_timeout_ms``:
    ``try_acquire`` takes the lock only if it is free (one system call, as a plain ``flock``), and the
    group commit lets a thread of its own wait in ``acquire`` while the requests wait with deadlines
    (``gateway.cases.groupcommit``). The context manager form waits without a bound (the delivery worker,
    which answers nobody in time).
    """

    def __init__(self, engine: Engine) -> None:
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self.path = f"{database}-writers.lock" if database and database != ":memory:" else None
        self._fd: int | None = None
        self._pid = 0

    def _descriptor(self) -> int:
        # flock belongs to the open file: a descriptor inherited across fork would be one lock for both
        # processes, so each process opens its own
        if self._fd is None or self._pid != os.getpid():
            assert self.path is not None
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    def try_acquire(self) -> bool:
        """Take the lock if no other process holds it; False (at once) if one does."""
        if self.path is None:
            return True
        try:
            fcntl.flock(self._descriptor(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def acquire(self) -> None:
        """Take the lock, waiting in the kernel for as long as another process holds it."""
        if self.path is not None:
            fcntl.flock(self._descriptor(), fcntl.LOCK_EX)

    def release(self) -> None:
        if self.path is not None:
            fcntl.flock(self._descriptor(), fcntl.LOCK_UN)

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_lock_timeout(exc: BaseException) -> bool:
    """True for a driver error that says a lock was not granted in time (SQLite busy or locked, PostgreSQL
    lock_timeout), also when SQLAlchemy wraps it."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return getattr(orig, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE


def set_lock_wait(conn: Connection, ms: int) -> None:
    """Set how long the statements of ``conn`` wait for a lock; call it outside a transaction.

    On SQLite straight on the driver connection: through SQLAlchemy it would begin the transaction, and
    with it ``BEGIN IMMEDIATE``, the very wait this bounds. On PostgreSQL the session's ``lock_timeout``.
    The setting stays with the connection: set it back before the connection goes back to its pool.
    """
    ms = max(1, int(ms))
    if conn.dialect.name == "sqlite":
        driver: Any = conn.connection.driver_connection
        driver.execute(f"PRAGMA busy_timeout={ms}")
    else:
        conn.exec_driver_sql(f"SET lock_timeout = {ms}")
        conn.commit()


def ping(engine: Engine) -> bool:
    """True when the database answers a trivial query."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any driver failure means "not reachable"
        return False
