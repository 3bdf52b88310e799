"""What every command family shares: reading the configuration, opening the database, printing text or JSON.

Opening the database is where the schema rule lives: only the commands that say so in their help
(``db upgrade``, ``serve``, ``routes bootstrap``) migrate; every other command checks that the schema is
this version's newest and refuses otherwise (exit 4), without creating or changing anything, not even an
empty SQLite file.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from gateway.config import Config, load_config
from gateway.errors import DatabaseError

__all__ = ["DEFAULT_CONFIG", "config_of", "emit", "loaded_config", "open_engine", "sqlite_file"]

DEFAULT_CONFIG = "gateway.toml"
_LOADED = "_gateway_config"


def config_of(args: argparse.Namespace) -> Config:
    """The configuration named by ``--config`` (before or after the command), ``GATEWAY_CONFIG``, or
    ``./gateway.toml`` when it exists; remembered on ``args`` so errors can name the database host."""
    path = getattr(args, "config", None) or os.environ.get("GATEWAY_CONFIG")
    if path is None and Path(DEFAULT_CONFIG).is_file():
        path = DEFAULT_CONFIG
    config = load_config(path)
    setattr(args, _LOADED, config)
    return config


def loaded_config(args: argparse.Namespace) -> Config | None:
    """The configuration ``config_of`` loaded for this command, if it got that far."""
    found = getattr(args, _LOADED, None)
    return found if isinstance(found, Config) else None


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if not database or database == ":memory:" or parsed.query.get("uri") == "true":
        return None
    return Path(database)


def open_engine(
    config: Config, *, migrate: bool = False, check: bool = True, create: bool = False, pool_size: int = 1
) -> Engine:
    """An engine on ``config.database.url`` whose schema is current: migrated there when ``migrate``,
    else checked (``DatabaseError``, exit 4, when it is old, empty, newer, or the SQLite file is missing;
    ``check=False`` leaves the schema check to the caller, ``create`` lets a missing SQLite file be
    made)."""
    from gateway import migrate as migrations
    from gateway.db import make_engine

    path = sqlite_file(config.database.url)
    if not (migrate or create) and path is not None and not path.exists():
        # make_engine would create the file (and its directory): an empty database in the wrong place
        raise DatabaseError(
            f"database file {path} does not exist: check --config and database.url, "
            "or create it with gateway db upgrade"
        )
    engine = make_engine(config.database.url, pool_size=pool_size)
    try:
        if migrate:
            migrations.upgrade(engine)
        elif check:
            migrations.require_current(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def emit(args: argparse.Namespace, data: Any, line: str) -> None:
    """``data`` as JSON with ``--json``, else the human ``line``."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        print(line)
