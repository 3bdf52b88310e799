"""The log formats, levels, causes, repeated failures and what a line may show of a request (gateway.logs).

Formatters are tested on real records through the handler ``configure_logging`` installs; gunicorn's lines
through a real ``GunicornLogger``; the repeated-failure filter with an injected clock, and once more on a
real RoutingHolder polling a database that fails and comes back.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gunicorn.config import Config as GunicornConfig
from sqlalchemy import create_engine, text

from gateway.errors import ConfigError, NoRouteError
from gateway.logs import (
    GunicornLogger,
    JsonFormatter,
    RepeatFilter,
    TextFormatter,
    configure_logging,
    describe_exception,
)
from gateway.redact import looks_like_personal_number, pseudonym, safe_hsa_id, safe_id, scrub
from routing.holder import RoutingHolder
from tests.integration.envelopes import envelope
from tests.unit.test_hostile_corpus import (
    NO_ACCESS,
    REPO,
    UNIT,
    _send,
    gateway_app,  # noqa: F401 - the corpus' in-process app (a fixture)
)

TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[a-z_]+: \S.*$"
)
MARKERS = ("191212121212", "19121212-1212", "1212121212", "121212-1212")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    gunicorn_error = logging.getLogger("gunicorn.error")
    saved = (gunicorn_error.handlers[:], gunicorn_error.propagate, gunicorn_error.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    gunicorn_error.handlers[:], gunicorn_error.propagate, gunicorn_error.level = saved
    logging.getLogger("gunicorn.access").disabled = False


def _record(level: int = logging.INFO, msg: str = "soap request", **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("gateway.soap.app", level, __file__, 1, msg, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


# -- formats ---------------------------------------------------------------------------------------------


def test_text_line_has_local_time_level_short_logger_message_and_fields() -> None:
    record = _record(
        logging.WARNING,
        fields={"logId": "0b9d", "outcome": "VP007", "reason": "not authorised here", "ms": 1.5, "x": None},
    )
    line = TextFormatter().format(record)
    assert TEXT_LINE.match(line), line
    assert " WARNING soap: soap request logId=0b9d outcome=VP007 " in line
    assert 'reason="not authorised here" ms=1.5' in line
    assert "x=" not in line  # fields without a value are left out
    stamp = line[:23]
    assert stamp.count(":") == 2
    assert "T" not in stamp


def test_json_line_keeps_its_keys() -> None:
    entry = json.loads(JsonFormatter().format(_record(fields={"logId": "a", "ms": 2})))
    assert list(entry)[:5] == ["ts", "level", "logger", "pid", "msg"]
    assert entry["level"] == "info"
    assert entry["logger"] == "gateway.soap.app"
    assert entry["ms"] == 2
    assert entry["ts"].endswith("+00:00")


@pytest.mark.parametrize(
    ("fmt", "stream", "expect"),
    [
        ("auto", _Tty(), "text"),
        ("auto", io.StringIO(), "json"),
        ("json", _Tty(), "json"),
        ("text", io.StringIO(), "text"),
    ],
)
def test_auto_format_is_text_on_a_terminal_only(
    restore_logging: None, fmt: str, stream: io.StringIO, expect: str
) -> None:
    configure_logging("INFO", fmt, stream=stream)
    logging.getLogger("gateway.ops").info("operations listener started", extra={"fields": {"bind": "x:1"}})
    line = stream.getvalue().strip()
    if expect == "json":
        assert json.loads(line)["msg"] == "operations listener started"
    else:
        assert TEXT_LINE.match(line)
        assert line.endswith("INFO    ops: operations listener started bind=x:1")


def _gunicorn_logger() -> GunicornLogger:
    cfg = GunicornConfig()
    cfg.set("errorlog", "-")
    cfg.set("loglevel", "debug")
    cfg.set("logger_class", GunicornLogger)
    return GunicornLogger(cfg)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_gunicorn_lines_go_through_the_gateways_formatter(restore_logging: None, fmt: str) -> None:
    stream = io.StringIO()
    configure_logging("INFO", fmt, stream=stream)
    glog = _gunicorn_logger()
    glog.info("Booting worker with pid: %s", 4242)
    glog.debug("Closing connection.")  # gunicorn's per-connection chatter is never written
    glog.access(None, None, {}, None)  # the access log stays off
    glog.warning("Invalid request from ip=127.0.0.1: Invalid HTTP request line: 'GET /191212121212 HTTP/9'")
    try:
        raise RuntimeError("boom 19121212-1212")
    except RuntimeError:
        glog.exception("Error handling request %s", "/complaints/191212121212?x=1212121212")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3, lines
    if fmt == "json":
        entries = [json.loads(line) for line in lines]
        assert entries[0]["logger"] == "gunicorn.error"
        assert entries[0]["msg"] == "Booting worker with pid: 4242"
        assert entries[1]["level"] == "warning"
        assert entries[1]["msg"].startswith(
            "Invalid request from ip=127.0.0.1: Invalid HTTP request line (h:"
        )
        assert entries[2]["error"] == "RuntimeError"
        assert "cause" not in entries[2]
    else:
        assert all(TEXT_LINE.match(line) for line in lines), lines
        assert lines[0].endswith("INFO    gunicorn: Booting worker with pid: 4242")
    for marker in MARKERS:
        assert marker not in stream.getvalue()


# -- causes ----------------------------------------------------------------------------------------------


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001 - the test wants the raised object
        return caught


def _sqlalchemy_error() -> BaseException:
    engine = create_engine("sqlite://")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT * FROM nowhere WHERE a = :a"), {"a": "191212121212"})
    except Exception as exc:  # noqa: BLE001
        return exc
    raise AssertionError("no error")  # pragma: no cover


class _PsycopgLike(Exception):
    """Stands in for a psycopg server error: it carries a SQLSTATE and quotes a value in its message."""

    __module__ = "psycopg.errors"
    sqlstate = "23505"


@pytest.mark.parametrize(
    ("make", "error", "cause"),
    [
        (
            _sqlalchemy_error,
            "OperationalError",
            "sqlite3.OperationalError SQLITE_ERROR: no such table: nowhere",
        ),
        (
            lambda: _raised(_PsycopgLike('duplicate key: Key (id)=(191212121212) "x"')),
            "_PsycopgLike",
            "psycopg._PsycopgLike SQLSTATE 23505",
        ),
        (lambda: _raised(ConnectionRefusedError(111, "Connection refused")), "ConnectionRefusedError", None),
        (
            lambda: _raised(NoRouteError("No route for RegisterCase at SE1\nsecond line")),
            "NoRouteError",
            None,
        ),
        (lambda: _raised(ValueError("invalid literal 191212121212")), "ValueError", None),
        (lambda: _raised(sqlite3.OperationalError("database is locked")), "OperationalError", None),
    ],
)
def test_causes_are_kept_without_payload_text(make: Any, error: str, cause: str | None) -> None:
    exc = make()
    name, described = describe_exception(exc)
    assert name == error
    if cause is not None:
        assert described == cause
    if isinstance(exc, ConnectionRefusedError):
        assert described == "ECONNREFUSED Connection refused"
    if isinstance(exc, NoRouteError):
        assert described == "No route for RegisterCase at SE1"  # our own: the first line
    if isinstance(exc, ValueError):
        assert described is None  # a foreign message may quote anything
    assert "191212121212" not in (described or "")


def test_exception_chain_gives_the_underlying_cause() -> None:
    outer = KeyError("caseId 191212121212")
    outer.__cause__ = _raised(FileNotFoundError(2, "No such file or directory", "/var/x"))
    expected = ("KeyError", "FileNotFoundError: ENOENT No such file or directory")
    assert describe_exception(outer) == expected


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_tracebacks_only_at_debug_and_only_frames(restore_logging: None, level: str) -> None:
    stream = io.StringIO()
    configure_logging(level, "json", stream=stream)
    secret = "".join(["Exem", "pelsson ", "1912", "12121212"])  # not on the raising line itself
    try:
        raise ValueError(secret)
    except ValueError:
        logging.getLogger("gateway.soap").error("unhandled", exc_info=True)
    entry = json.loads(stream.getvalue())
    assert entry["error"] == "ValueError"
    if level == "DEBUG":
        assert 'File "' in entry["traceback"]
        assert "test_tracebacks_only_at_debug" in entry["traceback"]
    else:
        assert "traceback" not in entry
    assert "Exempelsson" not in stream.getvalue()
    assert "191212121212" not in stream.getvalue()


# -- levels of the request line (in-process SoapApp of the hostile corpus) -------------------------------

REGISTER = (REPO / "examples" / "register-case.xml").read_bytes()


def _request_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "soap request"]


def test_request_levels_ok_info_refusal_and_error_result_warning_internal_error(
    request: pytest.FixtureRequest, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app, _engine = request.getfixturevalue("gateway_app")
    caplog.set_level(logging.INFO)
    register = REGISTER.replace(b"1177-CASE-0001", b"LEVELS-1")
    _send(app, envelope(register, UNIT))  # OK
    _send(app, envelope(register.replace(b"COMPLAINT", b"FEEDBACK"), UNIT))  # ERROR/INVALID_REQUEST (reuse)
    _send(app, envelope(register.replace(UNIT.encode(), NO_ACCESS.encode()), NO_ACCESS))  # VP007
    _send(app, b"<not xml")  # VP015

    def boom(_ctx: Any) -> bytes:
        raise sqlite3.OperationalError("disk I/O error")

    app.handlers.by_operation["RegisterCase"] = boom
    _send(app, envelope(REGISTER, UNIT))  # internal error
    lines = _request_lines(caplog)
    outcomes = [(r.levelname, r.fields["outcome"]) for r in lines]  # type: ignore[attr-defined]
    assert outcomes == [
        ("INFO", "OK"),
        ("WARNING", "ERROR"),
        ("WARNING", "VP007"),
        ("WARNING", "VP015"),
        ("ERROR", "VP009"),
    ]
    internal = lines[-1].exc_info
    assert internal is not None
    assert internal[1] is not None
    assert describe_exception(internal[1]) == ("OperationalError", "sqlite3.OperationalError")
    assert lines[1].fields["subCode"] == "ID_REUSED"  # type: ignore[attr-defined]


# -- repeated failures -----------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _failure(key: str = "routing-poll", exc: BaseException | None = None) -> logging.LogRecord:
    exc = exc or _raised(sqlite3.OperationalError("database is locked"))
    record = logging.LogRecord(
        "routing.holder", logging.WARNING, __file__, 1, "routing poll failed; keeping version %s", (3,), None
    )
    record.exc_info = (type(exc), exc, exc.__traceback__)
    record.repeat = key
    return record


def test_repeated_failure_is_written_once_then_counted_then_recovered() -> None:
    clock = _Clock()
    repeats = RepeatFilter(30, clock)
    written = []
    for _ in range(170):  # the routing poll every 0.2 s for 34 s while the database is down
        record = _failure()
        if repeats.filter(record):
            written.append(record.getMessage())
        clock.now += 0.2
    assert written[0] == "routing poll failed; keeping version 3"
    assert written[1] == "routing poll failed; keeping version 3 (repeated 150 times in the last 30 s)"
    assert len(written) == 2
    other = _failure(exc=_raised(ConnectionRefusedError(111, "Connection refused")))
    assert repeats.filter(other)  # another cause is news: written at once
    assert not repeats.filter(_failure(exc=_raised(ConnectionRefusedError(111, "Connection refused"))))
    clock.now += 12
    done = logging.LogRecord("routing.holder", logging.INFO, __file__, 1, "routing poll recovered", (), None)
    done.recovered = "routing-poll"
    assert repeats.filter(done)
    assert done.getMessage() == "routing poll recovered after 46 s (172 failures)"
    assert done.fields == {"failures": 172}  # type: ignore[attr-defined]
    again = logging.LogRecord("routing.holder", logging.INFO, __file__, 1, "routing poll recovered", (), None)
    again.recovered = "routing-poll"
    assert repeats.filter(again)
    assert again.getMessage() == "routing poll recovered"
    assert repeats.filter(_failure())  # a new outage starts over


def test_unmarked_records_pass_untouched() -> None:
    repeats = RepeatFilter(30, _Clock())
    records = [_record(logging.WARNING) for _ in range(5)]
    assert all(repeats.filter(r) for r in records)


class _FailingStore:
    """A catalogue store whose database is down for the first ``failures`` polls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.polls = 0
        self.done = threading.Event()

    def active_version(self) -> tuple[int, str] | None:
        self.polls += 1
        if self.polls <= self.failures:
            raise sqlite3.OperationalError("unable to open database file")
        self.done.set()
        return None


def test_routing_poll_while_the_database_is_down_logs_its_cause_once(
    restore_logging: None, tmp_path: Path
) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", repeat_seconds=30, stream=stream)
    holder = RoutingHolder(create_engine("sqlite://"), tmp_path / "snapshot.json", poll_interval=0.01)
    store = _FailingStore(failures=60)
    holder.store = store  # type: ignore[assignment]
    holder._thread = threading.Thread(target=holder._run, daemon=True)
    holder._thread.start()
    assert store.done.wait(30)
    holder.stop()
    holder._thread.join(5)
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert next(e["msg"] for e in entries) == "routing poll failed; keeping version 0"
    assert entries[0]["cause"] == "sqlite3.OperationalError"
    assert entries[0]["level"] == "warning"
    assert entries[0]["error"] == "OperationalError"
    assert len(entries) == 2, entries  # 60 failures: one line with the cause, one for the recovery
    assert re.fullmatch(r"routing poll recovered after \d+ s \(60 failures\)", entries[1]["msg"])


# -- values from requests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "personal"),
    [
        ("191212121212", True),
        ("19121212-1212", True),
        ("1212121212", True),
        ("121212-1212", True),
        ("121212+1212", True),  # over 100 years old
        ("197001611234", True),  # samordningsnummer: day + 60
        ("caseX191212121212Y", True),
        ("SE191212121212", True),  # shaped like an HSA-id, holds a personal number
        ("0191212121212", True),  # inside a longer run of digits
        ("SE2321000016-7Q6X", False),  # organisation numbers have a month of 20 and up
        ("SE165565594230-1000", False),
        ("SE5565594230-CAF1", False),
        ("1177-CASE-0001", False),
        ("20261203071502", True),  # a timestamp reads as a 12-digit number too: pseudonymised, not lost
        ("0b9d4c8e-5a1f-4c33-9f7e-2d6a1e0c4b71", False),
        ("12345", False),
        ("991399991234", False),  # no month 13
    ],
)
def test_personal_number_shapes(value: str, personal: bool) -> None:
    assert looks_like_personal_number(value) is personal
    assert (scrub(value) != value) is personal


def test_pseudonyms_are_stable_short_and_keyed() -> None:
    assert pseudonym("191212121212") == pseudonym("191212121212")
    assert re.fullmatch(r"h:[0-9a-f]{8}", pseudonym("191212121212"))
    import hashlib

    assert pseudonym("191212121212")[2:] != hashlib.sha256(b"191212121212").hexdigest()[:8]


@pytest.mark.parametrize(
    ("check", "value", "shown"),
    [
        (safe_hsa_id, "SE2321000016-7Q6X", True),
        (safe_hsa_id, "SE191212121212", False),
        (safe_hsa_id, "191212121212", False),
        (safe_hsa_id, "se2321000016", False),
        (safe_hsa_id, "SE2321000016-7Q6X\n", False),
        (safe_hsa_id, "Kim Exempelsson", False),
        (safe_id, "1177-CASE-0001", True),
        (safe_id, "0b9d4c8e-5a1f-4c33-9f7e-2d6a1e0c4b71", True),
        (safe_id, "CASE 19121212-1212", False),
        (safe_id, "x" * 65, False),
        (safe_id, "ärende", False),
    ],
)
def test_request_values_are_shown_only_after_their_format_check(check: Any, value: str, shown: bool) -> None:
    result = check(value)
    assert (result == value) is shown
    if not shown:
        assert result == pseudonym(value)


def test_unreadable_hash_key_file_is_one_line(restore_logging: None, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config: log.hash_key_file: cannot read .*: ENOENT"):
        configure_logging("INFO", "json", hash_key_file=tmp_path / "missing", stream=io.StringIO())
