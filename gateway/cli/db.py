"""``gateway db upgrade|current``: the database schema (Alembic migrations).

``upgrade`` is one of the three commands that change the schema (with ``serve`` and ``routes bootstrap``);
``current`` only reads it, and exits 4 when it is not this version's newest.
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.common import config_of, emit, open_engine

__all__ = ["add_db_parser"]


def cmd_db(args: argparse.Namespace) -> int:
    from gateway import migrate

    config = config_of(args)
    upgrade = args.db_command == "upgrade"
    engine = open_engine(config, check=False, create=upgrade)
    try:
        before = migrate.current_revision(engine)
        if upgrade:
            migrate.upgrade(engine)
        current, head = migrate.current_revision(engine), migrate.head_revision()
        data: dict[str, Any] = {"current": current, "head": head, "upToDate": current == head}
        line = f"schema at {current} (newest {head})"
        if upgrade:
            data = {"action": "upgrade", "from": before, **data, "upgraded": before != current}
            if before != current:
                line = f"schema upgraded from {before or 'nothing'} to {current}"
            emit(args, data, line)
            return 0
        if current == head:
            emit(args, data, line)
            return 0
        if getattr(args, "json", False):
            emit(args, data, "")
        migrate.require_current(engine)  # raises the one line that says what to run
        return 1  # pragma: no cover - require_current raised
    finally:
        engine.dispose()


def add_db_parser(sub: Any) -> None:
    p = sub.add_parser(
        "db",
        help="database schema: upgrade (migrates) or current (reads only; exit 4 when not current)",
    )
    p.add_argument(
        "db_command",
        choices=["upgrade", "current"],
        help="upgrade: migrate the schema to this version's newest; current: show it, exit 4 if older",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_db)
