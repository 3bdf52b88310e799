"""``gateway db upgrade|current``: the database schema (Alembic migrations)."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.common import config_of, emit

__all__ = ["add_db_parser"]


def cmd_db(args: argparse.Namespace) -> int:
    from gateway import migrate
    from gateway.db import make_engine

    config = config_of(args)
    engine = make_engine(config.database.url, pool_size=1)
    try:
        before = migrate.current_revision(engine)
        if args.db_command == "upgrade":
            migrate.upgrade(engine)
        current, head = migrate.current_revision(engine), migrate.head_revision()
    finally:
        engine.dispose()
    data: dict[str, Any] = {"current": current, "head": head}
    line = f"schema at {current} (newest {head})"
    if args.db_command == "upgrade":
        data = {"action": "upgrade", "from": before, **data, "upgraded": before != current}
        line = f"schema upgraded from {before or 'nothing'} to {current}" if before != current else line
    emit(args, data, line)
    return 0


def add_db_parser(sub: Any) -> None:
    p = sub.add_parser("db", help="database schema (Alembic migrations)")
    p.add_argument("db_command", choices=["upgrade", "current"], help="upgrade to the newest, or show")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_db)
