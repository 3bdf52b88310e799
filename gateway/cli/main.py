"""The ``gateway`` command line: the parser of every verb family and the one place errors become exit codes.

Every command exits non-zero with a one-line reason on failure and takes ``--json`` where it prints data.
``main(argv)`` is testable in-process. Errors from below are translated here, at the boundary, most
specific first: the gateway's own errors print their message; a database driver's connection failure
becomes ``DatabaseError`` naming the host (never the password); a reader that closed the pipe ends the
command quietly with 141. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from sqlalchemy.exc import DatabaseError as SqlDatabaseError

from gateway import __version__
from gateway.cli.calls import add_call_parsers
from gateway.cli.certs import add_certs_parser
from gateway.cli.common import DEFAULT_CONFIG, config_of, loaded_config, open_engine
from gateway.cli.db import add_db_parser
from gateway.cli.desk import add_desk_parser
from gateway.cli.outbox import add_outbox_parser
from gateway.cli.receive import add_receive_parser
from gateway.cli.routes import add_routes_parser
from gateway.cli.serve import add_serve_parsers
from gateway.cli.stats import add_stats_parser
from gateway.config import Config
from gateway.errors import DatabaseError, GatewayError
from routing.errors import RoutingError

__all__ = ["build_parser", "main"]

CONFIG_HELP = f"TOML configuration file (env GATEWAY_CONFIG; default ./{DEFAULT_CONFIG} if present)"

EPILOG = """\
Only 'db upgrade', 'serve' and 'routes bootstrap' change the database schema; every other command
refuses a schema that is not current ("run gateway db upgrade", exit 4) and changes nothing.

Exit codes: 0 success, 1 the operation failed, 2 usage or configuration, 3 nothing matched,
4 database unreachable or schema not current, 5 cannot listen on a port, 6 TLS material unusable,
7 not permitted (desk), 8 changed since read (desk), 130 interrupted, 141 the reader of the output
went away (a closed pipe)."""


def _run_routes(args: argparse.Namespace, func: Callable[..., int]) -> int:
    from gateway.cli.routes import _store

    config = config_of(args)
    store = _store(config, migrate=bool(getattr(args, "migrates", False)))
    try:
        return func(args, store, config)
    finally:
        store.engine.dispose()


def _run_outbox(args: argparse.Namespace, func: Callable[..., int]) -> int:
    from gateway.delivery import build_store

    config = config_of(args)
    store = build_store(config, open_engine(config))
    try:
        return func(args, store)
    finally:
        store.engine.dispose()


def _each_parser(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield from _each_parser(child)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="RIV-TA SOAP gateway for 1177 complaints and feedback",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    parser.add_argument("--config", help=CONFIG_HELP)
    sub: Any = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_serve_parsers(sub)
    add_db_parser(sub)
    add_certs_parser(sub)
    add_routes_parser(sub, _run_routes)
    add_outbox_parser(sub, _run_outbox)
    add_desk_parser(sub)
    add_call_parsers(sub)
    add_receive_parser(sub)
    add_stats_parser(sub)
    # --config after the command too (gateway serve --config FILE); SUPPRESS keeps a value given before
    # the command when it is not repeated after it
    for child in _each_parser(parser):
        if child is not parser:
            child.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
    return parser


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _database_error(exc: SqlDatabaseError | InterfaceError, config: Config | None) -> DatabaseError:
    """One line for a driver's failure: where the database is (host and database, never the password),
    the driver's own first line, and what to check."""
    # the driver's own message without SQLAlchemy's "(Background on this error at: …)" and the SQL
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    reason = lines[0].strip() if lines else type(exc).__name__
    url = None
    if config is not None:
        try:
            url = make_url(config.database.url)
        except ArgumentError:
            url = None
    if url is not None and url.password:
        reason = reason.replace(str(url.password), "***")
    if url is not None and url.get_backend_name() == "sqlite":
        return DatabaseError(f"database {url.database or ':memory:'}: {reason}")
    # psycopg: 'connection failed: connection to server at "h", port p failed: <the cause>'
    cause = reason.rsplit("failed: ", 1)[-1].strip() or reason
    where = "the database"
    if url is not None:
        where = f"the database at {url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"
    if reason.startswith(("connection", "could not connect")) or isinstance(exc, InterfaceError):
        return DatabaseError(
            f"cannot reach {where}: {cause}: check database.url and that the database server runs"
        )
    return DatabaseError(f"{where} failed: {cause}")


@contextmanager
def _translated(args: argparse.Namespace) -> Iterator[None]:
    """Foreign errors that an operator can cause, as the gateway's own (most specific first)."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise _database_error(exc, loaded_config(args)) from exc
    except SqlDatabaseError as exc:
        # only the base class itself: SQLite's "file is not a database"; its subclasses (integrity,
        # data, programming errors) are bugs and keep their traceback
        if type(exc) is not SqlDatabaseError:
            raise
        raise _database_error(exc, loaded_config(args)) from exc


def _stdout_gone() -> int:
    """The reader of our output went away: say nothing (nobody reads it) and make sure the interpreter's
    final flush of stdout does not complain ("Exception ignored ... BrokenPipeError") either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return 141


def main(argv: Sequence[str] | None = None) -> int:
    # Everything the gateway writes (database, routing snapshot, keys, anything under var/) holds or
    # protects health data: readable by the gateway's user alone (0600, directories 0700), whatever the
    # umask of the shell or service manager. Files are also created with explicit modes where they are made.
    os.umask(0o077)
    args = build_parser().parse_args(argv)
    try:
        with _translated(args):
            code: int = args.func(args)
        sys.stdout.flush()  # inside the handlers: a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        return _stdout_gone()
    except (GatewayError, RoutingError) as exc:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            return _stdout_gone()
        print(f"gateway: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
