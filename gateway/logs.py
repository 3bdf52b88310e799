"""Logging: human lines on a terminal, JSON lines for machines, and never personal data in either.

Formats (``log.format``): ``text`` is one line per event for a person::

    2026-12-03 07:15:02.123 WARNING soap: soap request logId=... consumer=SE5565594230-1177 outcome=VP007

(local time with milliseconds, level, short logger name, message, ``key=value`` fields); ``json`` is one
object per line (``ts`` in UTC, ``level``, ``logger``, ``pid``, ``msg``, then the fields); ``auto`` (the
default) is ``text`` when stderr is a terminal and ``json`` otherwise. gunicorn's own lines go through the
same handler (``GunicornLogger``); its access log stays off.

What a line may carry. Callers pass facts as ``extra={"fields": {...}}``: identifiers (log ids, HSA-ids of
systems and units, case and message ids) and outcomes, never names, free text, payloads or secrets. A value
from a request is logged only after its format check, else as a pseudonym (``gateway.redact``); and every
message and field is scrubbed of anything shaped like a personal identity number, whatever logged it.

Exceptions. A line logged with ``exc_info`` gets ``error`` (the exception type) and, when it is known to be
safe, ``cause``: the first line of the message of the gateway's own exceptions, the driver's error class
and SQLSTATE (or SQLite's error name), an OSError's errno name and text, a TLS error's reason. Foreign
exception messages are left out (a driver's message may quote statement parameters, an XML parser's the
document). Tracebacks are written only at ``log.level = DEBUG``, and then only as frames (file, line,
function, source line of our code), never with exception messages.

Repeated failures. A record logged with ``extra={"repeat": KEY}`` is written the first time; identical
ones (same logger, key and cause) are counted instead, and every ``log.repeat_seconds`` the next one is
written with "(repeated N times in the last 30 s)". A record with ``extra={"recovered": KEY}`` from the
same logger is written once the failure stops, with how long it lasted. Libraries only set the keys; the
filter is installed with the handler (``RepeatFilter``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from gunicorn.glogging import Logger as _GunicornBaseLogger

from gateway import redact
from gateway.config import LogConfig
from gateway.errors import ConfigError
from gateway.redact import is_pseudonym, pseudonym, safe_hsa_id, safe_id, scrub

__all__ = [
    "GunicornLogger",
    "JsonFormatter",
    "RepeatFilter",
    "TextFormatter",
    "configure_from",
    "configure_logging",
    "describe_exception",
]

# -- causes ----------------------------------------------------------------------------------------------

_OWN_PACKAGES = frozenset({"gateway", "routing", "outbox", "contracts"})


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _driver_cause(orig: BaseException) -> str:
    name = type(orig).__name__
    sqlite_name = getattr(orig, "sqlite_errorname", None)
    if sqlite_name:
        # SQLite's messages name tables, columns and constraints, never a bound value
        return f"sqlite3.{name} {sqlite_name}: {_first_line(str(orig))}"
    if type(orig).__module__.startswith("psycopg"):
        state = getattr(orig, "sqlstate", None)
        if state:
            return f"psycopg.{name} SQLSTATE {state}"
        # no SQLSTATE: raised by libpq on the client side (connection lost or refused), whose messages
        # describe the connection, never a statement
        return f"psycopg.{name}: {_first_line(str(orig))}"
    return f"{type(orig).__module__.split('.')[0]}.{name}"


def _cause_of(exc: BaseException) -> str | None:
    module = type(exc).__module__.split(".")[0]
    orig = getattr(exc, "orig", None)
    if module == "sqlalchemy" and isinstance(orig, BaseException):
        return _driver_cause(orig)  # a DBAPIError: its own text carries the statement and parameters
    if module in _OWN_PACKAGES:
        return _first_line(str(exc)) or None
    if module in ("sqlite3", "psycopg"):
        return _driver_cause(exc)
    reason = getattr(exc, "reason", None)
    if module == "ssl" and isinstance(reason, str):
        verify = getattr(exc, "verify_message", None)
        return f"{reason}: {verify}" if verify else reason
    if isinstance(exc, OSError) and exc.errno:
        return f"{errno.errorcode.get(exc.errno, str(exc.errno))} {os.strerror(exc.errno)}"
    return None


def describe_exception(exc: BaseException) -> tuple[str, str | None]:
    """The exception's type name and a cause that is safe to log (or None), looking through its chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        cause = _cause_of(current)
        if cause:
            inner = "" if current is exc else f"{type(current).__name__}: "
            return type(exc).__name__, inner + cause
        current = current.__cause__ or current.__context__
    return type(exc).__name__, None


def _frames(exc: BaseException) -> str:
    """The traceback's frames of ``exc`` and its chain, without any exception message."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name, cause = describe_exception(current)
        parts.append(
            "".join(traceback.format_tb(current.__traceback__)) + name + (f": {cause}" if cause else "")
        )
        current = current.__cause__ or current.__context__
    return "\n--- raised while handling ---\n".join(reversed(parts))


# -- formatters ------------------------------------------------------------------------------------------


def short_name(logger: str) -> str:
    """``gateway.soap.app`` → ``soap``, ``outbox.worker`` → ``outbox``, ``gunicorn.error`` → ``gunicorn``."""
    parts = logger.split(".")
    if parts[0] == "gateway" and len(parts) > 1:
        return parts[1]
    return parts[0]


#: fields that hold values from requests, whoever logs them (the outbox logs a message's case as "case"),
#: and the format check each must pass to be shown; the request line checks them already (soap.app)
_CHECKED_FIELDS = {
    "caseId": safe_id,
    "case": safe_id,
    "messageId": safe_id,
    "correlationId": safe_id,
    "consumer": safe_hsa_id,
    "logicalAddress": safe_hsa_id,
    "originalConsumer": safe_hsa_id,
}
#: made by the gateway itself: never request data, and a scrub could garble them
_TRUSTED_FIELDS = frozenset({"logId", "hash", "owner"})


def _facts(record: logging.LogRecord, with_traceback: bool) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    fields = getattr(record, "fields", None)
    if isinstance(fields, dict):
        for key, value in fields.items():  # every request line passes here: kept to cached calls
            if isinstance(value, str):
                check = _CHECKED_FIELDS.get(key)
                if check is not None:
                    value = value if is_pseudonym(value) else check(value)
                elif key not in _TRUSTED_FIELDS:
                    value = scrub(value)
            facts[key] = value
    if record.exc_info and record.exc_info[1] is not None:
        name, cause = describe_exception(record.exc_info[1])
        facts["error"] = name
        if cause:
            facts["cause"] = scrub(cause)
        if with_traceback:
            facts["traceback"] = scrub(_frames(record.exc_info[1]))
    return facts


#: one encoder for every line (json.dumps builds a new one per call when given options)
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


class JsonFormatter(logging.Formatter):
    """One JSON object per line; tracebacks (frames only) when ``tracebacks`` is set (log level DEBUG)."""

    def __init__(self, *, tracebacks: bool = False) -> None:
        super().__init__()
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": scrub(record.getMessage()),
        }
        entry.update(_facts(record, self.tracebacks))
        return _encode(entry)


_BARE = re.compile(r"[^\s\"'=\\]+")


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if _BARE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``2026-12-03 07:15:02.123 WARNING soap: message key=value ...`` in local time."""

    def __init__(self, *, tracebacks: bool = False) -> None:
        super().__init__()
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        head = f"{stamp}.{int(record.msecs):03d} {record.levelname:<7} {short_name(record.name)}: "
        facts = _facts(record, self.tracebacks)
        frames = facts.pop("traceback", None)
        pairs = " ".join(f"{key}={_text_value(value)}" for key, value in facts.items() if value is not None)
        line = (head + scrub(record.getMessage()) + (" " + pairs if pairs else "")).replace("\n", " ")
        return line + ("\n" + frames if frames else "")


# -- repeated failures -----------------------------------------------------------------------------------


@dataclass
class _Failing:
    since: float  # first occurrence
    window: float  # when the last line was written
    unwritten: int = 0  # occurrences since then
    total: int = 1


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class RepeatFilter(logging.Filter):
    """Writes the first of identical failures, then a count every ``interval`` seconds, then the recovery.

    Identical means the same logger, the same ``repeat`` key and the same cause (``describe_exception``):
    a failure whose cause changes is written at once. Thread-safe; ``clock`` is injectable for tests.
    """

    def __init__(self, interval: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._failing: dict[tuple[str, str], dict[str, _Failing]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = getattr(record, "repeat", None)
        if isinstance(key, str):
            return self._failure(record, key)
        done = getattr(record, "recovered", None)
        if isinstance(done, str):
            self._recovery(record, done)
        return True

    @staticmethod
    def _cause(record: logging.LogRecord) -> str:
        if record.exc_info and record.exc_info[1] is not None:
            name, cause = describe_exception(record.exc_info[1])
            return f"{name}: {cause}"
        return ""

    def _failure(self, record: logging.LogRecord, key: str) -> bool:
        cause = self._cause(record)
        now = self.clock()
        with self._lock:
            causes = self._failing.setdefault((record.name, key), {})
            state = causes.get(cause)
            if state is None:
                causes[cause] = _Failing(since=now, window=now)
                return True
            state.total += 1
            state.unwritten += 1
            if now - state.window < self.interval:
                return False
            count, span = state.unwritten, now - state.window
            state.window, state.unwritten = now, 0
        record.msg = f"{record.msg} (repeated {count} times in the last {_duration(span)})"
        record.fields = {**(getattr(record, "fields", None) or {}), "repeated": count}
        return True

    def _recovery(self, record: logging.LogRecord, key: str) -> None:
        now = self.clock()
        with self._lock:
            causes = self._failing.pop((record.name, key), None)
        if not causes:
            return
        since = min(state.since for state in causes.values())
        total = sum(state.total for state in causes.values())
        record.msg = f"{record.msg} after {_duration(now - since)} ({total} failures)"
        record.fields = {**(getattr(record, "fields", None) or {}), "failures": total}


# -- gunicorn --------------------------------------------------------------------------------------------


class GunicornLogger(_GunicornBaseLogger):  # type: ignore[misc]
    """gunicorn's logger, writing through the gateway's handler and formatter (``configure_logging``).

    gunicorn's error log propagates to the root logger instead of its own stderr handler; its access log
    stays off; its debug lines (one per connection) are not written. Request data that gunicorn puts in a
    line (the URI of a request that failed, the text of an unparsable request line or header) is replaced
    by a pseudonym.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in list(self.error_log.handlers):
            self.error_log.removeHandler(handler)
        self.error_log.propagate = True
        self.error_log.setLevel(max(logging.INFO, self.loglevel))
        for handler in list(self.access_log.handlers):
            self.access_log.removeHandler(handler)
        self.access_log.propagate = False
        self.access_log.disabled = True

    def access(self, *args: Any, **kwargs: Any) -> None:
        return

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        text = str(msg)
        if text.startswith("Invalid request from ip="):
            # "Invalid request from ip=ADDR: <gunicorn's error, which may quote the request line>"
            where, _, error = text.partition(": ")
            kind = re.match(r"[A-Za-z ]{3,60}", error)
            msg = f"{where}: {kind.group().strip() if kind else 'invalid request'} ({pseudonym(error)})"
        elif text.startswith("Exception during worker exit"):
            msg, args = "Exception during worker exit (traceback left out)", ()
        self.error_log.warning(msg, *args, **kwargs)

    def exception(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        if str(msg).startswith("Error handling request") and args:
            args = tuple(pseudonym(str(a)) for a in args)
        self.error_log.exception(msg, *args, **kwargs)


# -- set-up ----------------------------------------------------------------------------------------------


def _read_key(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes().strip() or None
    except OSError as exc:
        raise ConfigError(
            f"config: log.hash_key_file: cannot read {path}: {describe_exception(exc)[1]}"
        ) from None


def configure_logging(
    level: str = "INFO",
    fmt: str = "auto",
    *,
    repeat_seconds: float = 30.0,
    hash_key_file: Path | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Install the gateway's handler on the root logger (replacing any), and return it."""
    # Every request writes a line: skip what the formatters never show (the logging HOWTO's
    # "Optimization" section). The caller's file and line are found by walking the stack on each call.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    out = stream if stream is not None else sys.stderr
    numeric = logging.getLevelName(level.upper())
    tracebacks = numeric == logging.DEBUG
    if fmt == "auto":
        isatty = getattr(out, "isatty", None)
        fmt = "text" if callable(isatty) and isatty() else "json"
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        TextFormatter(tracebacks=tracebacks) if fmt == "text" else JsonFormatter(tracebacks=tracebacks)
    )
    handler.addFilter(RepeatFilter(repeat_seconds))
    key = _read_key(hash_key_file)
    if key is not None or not redact.keyed():
        redact.set_hash_key(key)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # Alembic reports every context set-up at INFO; only its warnings matter in the gateway's log.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    return handler


def configure_from(log: LogConfig) -> logging.Handler:
    """``configure_logging`` with the ``[log]`` section of the configuration."""
    return configure_logging(
        log.level, log.format, repeat_seconds=log.repeat_seconds, hash_key_file=log.hash_key_file
    )
