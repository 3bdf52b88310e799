"""``gateway serve``, ``worker``, ``ops`` and ``check-config``: running the gateway's processes.

``serve`` checks that it can listen on every port it needs before it migrates or starts anything, so a
second ``make run`` ends with one line (exit 5) instead of gunicorn retrying and logging for five
seconds; if gunicorn still fails (another process took the port in between), its exit ends in one line
too. ``serve`` migrates the database schema; ``check-config`` reads only.
"""

from __future__ import annotations

import argparse
import errno
import socket
from typing import Any

from gateway.cli.common import config_of, emit
from gateway.config import Config, validate
from gateway.errors import GatewayError, ListenError

__all__ = ["add_serve_parsers"]


def _listen_problem(where: str, bind: str, exc: OSError) -> ListenError:
    port = bind.rpartition(":")[2]
    if exc.errno == errno.EADDRINUSE:
        reason = f"port {port} is in use (is another gateway running?): stop it or change {where}"
    elif exc.errno == errno.EACCES:
        reason = f"not permitted (ports below 1024 need privileges): choose another port in {where}"
    elif exc.errno == errno.EADDRNOTAVAIL:
        reason = f"the host is not an address of this machine: change {where}"
    else:
        reason = f"{exc.strerror or exc}: change {where}"
    return ListenError(f"cannot listen on {bind} ({where}): {reason}")


def check_listen(where: str, bind: str) -> None:
    """``ListenError`` unless a server could bind ``bind`` now (the socket is closed again at once)."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror:
        raise ListenError(
            f"cannot listen on {bind} ({where}): unknown host {host!r}: change {where}"
        ) from None
    with socket.socket(family, kind, proto) as sock:
        # as gunicorn and http.server do: a port whose old connections linger in TIME_WAIT is free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise _listen_problem(where, bind, exc) from None


def _binds(config: Config, *, with_ops: bool) -> list[tuple[str, str]]:
    binds = [("server.bind", config.server.bind)]
    if with_ops:
        binds.append(("ops.bind", config.ops.bind))
    return binds


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging
    from gateway.server import serve

    config = config_of(args)
    validate(config, check_files=True)
    binds = _binds(config, with_ops=not args.no_ops)
    for where, bind in binds:
        check_listen(where, bind)
    configure_logging(config.log.level, config.log.format)
    try:
        return serve(
            config, with_ops=not args.no_ops, with_worker=config.outbox.run_in_serve and not args.no_worker
        )
    except SystemExit as exc:
        # gunicorn's arbiter logs its reason and calls sys.exit: after a failed bind (the port was taken
        # after our check), a worker that could not boot, or an application that could not load
        if exc.code in (0, None):
            raise
        check_listen("server.bind", config.server.bind)  # gunicorn binds only this one
        raise GatewayError(
            f"the server stopped (gunicorn exit status {exc.code}): the log lines above say why"
        ) from None


def cmd_worker(args: argparse.Namespace) -> int:
    from gateway.delivery import run_worker
    from gateway.logs import configure_logging

    config = config_of(args)
    validate(config, check_files=True)
    configure_logging(config.log.level, config.log.format)
    return run_worker(config, threads=args.threads)


def cmd_ops(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging
    from gateway.ops import serve_ops

    config = config_of(args)
    check_listen("ops.bind", config.ops.bind)
    configure_logging(config.log.level, config.log.format)
    try:
        return serve_ops(config, parent_pid=args.parent)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise _listen_problem("ops.bind", config.ops.bind, exc) from None
        raise


def cmd_check_config(args: argparse.Namespace) -> int:
    config = config_of(args)
    validate(config, check_files=True)
    from contracts import load_code_lists, load_registry

    registry = load_registry()
    load_code_lists(config.gateway.code_lists)
    data = {
        "source": str(config.source) if config.source else None,
        "bind": config.server.bind,
        "publicUrl": config.server.public_url,
        "ops": config.ops.bind,
        "contracts": sorted(c.operation for c in registry.contracts()),
    }
    emit(args, data, f"configuration OK ({data['source'] or 'defaults and environment'})")
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
