"""``gateway serve``, ``worker``, ``ops`` and ``check-config``: running the gateway's processes.

``serve`` checks that it can listen on every port it needs before it migrates or starts anything
(``gateway.server.check_listen``), so a second ``make run`` ends with one line (exit 5) instead of
gunicorn retrying and logging for five seconds. ``serve`` migrates the database schema; ``check-config``
reads only.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gateway.cli.common import config_of, emit
from gateway.config import validate

__all__ = ["add_serve_parsers"]


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.logs import configure_from
    from gateway.server import serve

    config = config_of(args)
    validate(config, check_files=True)
    configure_from(config.log)
    return serve(
        config, with_ops=not args.no_ops, with_worker=config.outbox.run_in_serve and not args.no_worker
    )


def cmd_worker(args: argparse.Namespace) -> int:
    from gateway.delivery import run_worker
    from gateway.logs import configure_from

    config = config_of(args)
    validate(config, check_files=True)
    configure_from(config.log)
    return run_worker(config, threads=args.threads)


def cmd_ops(args: argparse.Namespace) -> int:
    from gateway.logs import configure_from
    from gateway.ops import serve_ops
    from gateway.server import check_listen

    config = config_of(args)
    check_listen("ops.bind", config.ops.bind)
    configure_from(config.log)
    return serve_ops(config, parent_pid=args.parent)


def cmd_check_config(args: argparse.Namespace) -> int:
    config = config_of(args)
    validate(config, check_files=True)
    from contracts import load_code_lists, load_registry
    from gateway.tlscheck import check_tls_material

    registry = load_registry()
    load_code_lists(config.gateway.code_lists)
    tls = check_tls_material(config)
    for finding in tls.warnings:
        print(f"warning: {finding.line}", file=sys.stderr)
    data = {
        "source": str(config.source) if config.source else None,
        "bind": config.server.bind,
        "publicUrl": config.server.public_url,
        "ops": config.ops.bind,
        "contracts": sorted(c.operation for c in registry.contracts()),
        "tls": [finding.as_dict() for finding in tls.findings],
    }
    if getattr(args, "json", False) or not tls.errors:
        emit(args, data, f"configuration OK ({data['source'] or 'defaults and environment'})")
    tls.raise_for_errors()
    return 0


def add_serve_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve SOAP over mutual TLS, the operations listener and delivery (migrates the database "
        "schema first)",
    )
    p.add_argument("--no-ops", action="store_true", help="do not start the operations listener")
    p.add_argument("--no-worker", action="store_true", help="do not start delivery (run `gateway worker`)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="deliver queued messages (any number of processes may run)")
    p.add_argument("--threads", type=int, help="concurrent deliveries (default outbox.threads)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("ops", help="run only the operations listener (started by serve)")
    p.add_argument("--parent", type=int, default=None, help="exit when this process id is gone")
    p.set_defaults(func=cmd_ops)

    p = sub.add_parser(
        "check-config", help="validate the configuration and the files it names (changes nothing)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_check_config)
