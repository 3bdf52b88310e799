"""The ``gateway`` command line: the parser of every verb family and the one place errors become exit codes.

Every command exits non-zero with a one-line reason on failure and takes ``--json`` where it prints data.
``main(argv)`` is testable in-process.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from gateway.cli.calls import add_call_parsers
from gateway.cli.certs import add_certs_parser
from gateway.cli.common import DEFAULT_CONFIG, config_of
from gateway.cli.db import add_db_parser
from gateway.cli.outbox import add_outbox_parser
from gateway.cli.receive import add_receive_parser
from gateway.cli.routes import add_routes_parser
from gateway.cli.serve import add_serve_parsers
from gateway.errors import GatewayError
from routing.errors import RoutingError

__all__ = ["build_parser", "main"]


def _run_routes(args: argparse.Namespace, func: Callable[..., int]) -> int:
    from gateway.cli.routes import _store

    config = config_of(args)
    store = _store(config)
    try:
        return func(args, store, config)
    finally:
        store.engine.dispose()


def _run_outbox(args: argparse.Namespace, func: Callable[..., int]) -> int:
    from gateway import migrate
    from gateway.delivery import build_store

    config = config_of(args)
    store = build_store(config)
    try:
        migrate.upgrade(store.engine)
        return func(args, store)
    finally:
        store.engine.dispose()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description="RIV-TA SOAP gateway for 1177 complaints and feedback"
    )
    parser.add_argument(
        "--config",
        help=f"TOML configuration file (env GATEWAY_CONFIG; default ./{DEFAULT_CONFIG} if present)",
    )
    sub: Any = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_serve_parsers(sub)
    add_db_parser(sub)
    add_certs_parser(sub)
    add_routes_parser(sub, _run_routes)
    add_outbox_parser(sub, _run_outbox)
    add_call_parsers(sub)
    add_receive_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Everything the gateway writes (database, routing snapshot, keys, anything under var/) holds or
    # protects health data: readable by the gateway's user alone (0600, directories 0700), whatever the
    # umask of the shell or service manager. Files are also created with explicit modes where they are made.
    os.umask(0o077)
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (GatewayError, RoutingError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
