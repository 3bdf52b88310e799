"""Structured logging: one JSON object per line, with a log id on every request line.

Callers pass facts as ``extra={"fields": {...}}``. Only identifiers (log ids, HSA-ids of systems and units,
case ids, message ids) and outcomes go into logs: never personal identity numbers, names, free text or
payloads, and never secrets.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

__all__ = ["configure_logging"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type and message only: a traceback may quote request data.
            entry["error"] = f"{record.exc_info[0].__name__}"
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        extra = " ".join(f"{k}={v}" for k, v in fields.items()) if isinstance(fields, dict) else ""
        return f"{record.levelname:<7} {record.name}: {record.getMessage()} {extra}".rstrip()


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    # Every request writes a line: skip what the formatters never show (the logging HOWTO's
    # "Optimization" section). The caller's file and line are found by walking the stack on each call.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Alembic reports every context set-up at INFO; only its warnings matter in the gateway's log.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
