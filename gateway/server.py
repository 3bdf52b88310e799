"""``gateway serve``: gunicorn with the gateway's serving workers and mutual TLS, beside the delivery worker
and the operations listener, all supervised (``gateway.supervisor``).

The serving workers (``gateway.httpworker``: gthread's event loop and threads, with the TLS handshake and
request reading moved before a thread, under deadlines) terminate TLS (1.2+, client certificate required,
optional CRL) with a context from ``gateway.soap.tls``; each worker builds its own application, engine and
schema validators after the fork, so no connection or lxml object is shared between processes. Migrations
run once, in ``serve``, before any child starts. gunicorn's master runs as a child of ``serve``
(``python -m gateway.server``); the operations listener (health, status, metrics) runs on plain HTTP, bound
to loopback by default.
"""

from __future__ import annotations

import argparse
import errno
import functools
import logging
import os
import socket
import sys
import uuid
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication
from sqlalchemy.exc import OperationalError

from contracts import load_registry
from gateway.config import Config, web_tls
from gateway.errors import GatewayError, InvalidRequestError, ListenError
from gateway.framing import Verdict
from gateway.httpworker import ConnectionLimits, Listener, guarded_worker_class
from gateway.logs import GunicornLogger
from gateway.soap.envelope import fault_envelope
from gateway.soap.limits import BodyLimits
from gateway.soap.tls import ServerContextFactory
from gateway.supervisor import ChildSpec, RestartPolicy, Supervisor, state_path

__all__ = ["ByPort", "GatewayServer", "check_listen", "main", "serve"]

log = logging.getLogger("gateway.server")


class GatewayServer(BaseApplication):  # type: ignore[misc]
    """gunicorn configured from the gateway's configuration.

    ``app_factory`` replaces the gateway application (benchmarks serve a baseline app with exactly the same
    server and TLS settings); it is called in each worker after the fork.
    """

    def __init__(self, config: Config, app_factory: Callable[[Config], Any] | None = None) -> None:
        self.gateway_config = config
        self.app_factory = app_factory
        super().__init__()

    def load_config(self) -> None:
        cfg = self.gateway_config
        server = cfg.server
        limits = ConnectionLimits(
            handshake_timeout=server.handshake_timeout_ms / 1000,
            head_timeout=server.head_timeout_ms / 1000,
            min_body_rate=server.min_body_rate,
            body_grace=server.body_grace_ms / 1000,
            max_connections=server.max_connections,
            max_per_peer=server.max_connections_per_peer,
            write_timeout=server.write_timeout_ms / 1000,
            keepalive=float(server.keepalive),
        )
        # a body announced larger than every contract allows is refused at its head, before it is read
        largest = BodyLimits.from_config(cfg.soap, load_registry()).largest_body
        soap = Listener(
            ServerContextFactory(cfg.tls), largest, functools.partial(soap_refusal, largest=largest)
        )
        # the people's web app: its own port and TLS context (personal certificates may come from another CA)
        # (not for an app_factory: benchmarks serve one app on the SOAP port alone)
        listeners = {_address(server.bind)[1]: soap}
        binds = [server.bind]
        if self.app_factory is None:
            listeners[_address(cfg.web.bind)[1]] = Listener(
                ServerContextFactory(web_tls(cfg)), cfg.web.max_body_bytes
            )
            binds.append(cfg.web.bind)
        settings: dict[str, Any] = {
            "bind": binds,
            "workers": server.workers,
            # gthread's loop, threads and keep-alive, with TLS and request reading before a thread
            # (gateway.httpworker, docs/adr/0004); TLS is the worker's: gunicorn's ssl settings stay off
            "worker_class": guarded_worker_class(listeners, limits, server.runtime_dir),
            "worker_connections": server.max_connections + server.threads,
            "threads": server.threads,
            "timeout": server.timeout,
            "graceful_timeout": server.graceful_timeout,
            "keepalive": server.keepalive,
            "backlog": server.backlog,
            # never sendfile: the socket is TLS, whatever gunicorn's own ssl settings say
            "sendfile": False,
            "accesslog": None,
            "errorlog": "-",
            # gunicorn's own lines go through the gateway's handler and formatter (gateway.logs)
            "logger_class": GunicornLogger,
            "loglevel": cfg.log.level.lower(),
            "proc_name": "caf-gateway",
            # Request line and header limits stay at gunicorn's defaults; the body limit is ours (soap).
            "limit_request_line": 8190,
            # gunicorn 25+ opens a control socket at a fixed path shared by every instance; we have no use
            # for it and several gateways (tests, blue/green) on one host would collide.
            "control_socket_disable": True,
            "worker_exit": _close_app,
        }
        for key, value in settings.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> Any:
        from gateway.logs import configure_from
        from gateway.soap.app import create_app

        configure_from(self.gateway_config.log)
        if self.app_factory is not None:
            return self.app_factory(self.gateway_config)
        from gateway.web.listener import web_listener_app

        cfg = self.gateway_config
        return ByPort(
            {_address(cfg.server.bind)[1]: create_app(cfg), _address(cfg.web.bind)[1]: web_listener_app(cfg)}
        )


def _close_app(_server: Any, worker: Any) -> None:
    """gunicorn's worker_exit hook: a worker that stops gives its database connections back cleanly and
    withdraws its published state."""
    close = getattr(getattr(worker, "wsgi", None), "close", None)
    if callable(close):
        close()
    withdraw = getattr(worker, "withdraw_state", None)
    if callable(withdraw):
        withdraw()


class ByPort:
    """One WSGI app per listening port (SOAP on server.bind, the people's web app on web.bind): the local
    port of the connection picks the app, so each port answers only with its own."""

    def __init__(self, apps: dict[int, Any]) -> None:
        self.apps = apps
        self.first = next(iter(apps.values()))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        sock = environ.get("gunicorn.socket")
        app: Any = self.first
        try:
            if sock is not None:
                app = self.apps.get(int(sock.getsockname()[1]), self.first)
        except OSError:
            pass
        return app(environ, start_response)

    def close(self) -> None:
        for app in self.apps.values():
            close = getattr(app, "close", None)
            if callable(close):
                close()


_REFUSED = {
    400: "Request is not valid HTTP/1.1 ({reason})",
    413: "Request body exceeds the limit",
    431: "Request head (request line and headers) is too large",
    501: "Transfer-Encoding other than chunked is not supported",
}


def soap_refusal(verdict: Verdict, largest: int) -> bytes:
    """The SOAP port's answer to a request refused while it was read: a VP015 fault with a log id."""
    log_id = str(uuid.uuid4())
    text = _REFUSED.get(verdict.status, _REFUSED[400]).format(reason=verdict.reason)
    if verdict.length is not None:  # the wording of gateway.soap.reader, which refuses the same in the app
        text = (
            f"Request body of {verdict.length} bytes exceeds the largest request the contracts allow: "
            f"{largest} bytes"
        )
    fault = InvalidRequestError(text)
    log.warning(
        "soap request refused before it was read whole",
        extra={"fields": {"logId": log_id, "platformCode": fault.platform_code, "reason": verdict.reason}},
    )
    body = fault_envelope(fault, log_id)
    head = (
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/xml; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _command(config: Config, module: str, *args: str) -> tuple[str, ...]:
    argv = [sys.executable, "-m", module]
    if config.source is not None:
        argv += ["--config", str(config.source)]
    return (*argv, *args)


def _address(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    host = "127.0.0.1" if host in ("0.0.0.0", "", "*") else host.strip("[]")  # noqa: S104 - a probe
    return host, int(port)


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


def serve(config: Config, *, with_ops: bool = True, with_worker: bool = True) -> int:
    from gateway import migrate
    from gateway.db import make_engine
    from gateway.tlscheck import check_before_start

    # every port first: a second `make run` ends here in one line, before it migrates or starts anything
    check_listen("server.bind", config.server.bind)
    check_listen("web.bind", config.web.bind)
    if with_ops:
        check_listen("ops.bind", config.ops.bind)
    # TLS material that cannot work would fail every handshake while the gateway looked healthy
    check_before_start(config, log)
    engine = make_engine(config.database.url, pool_size=1)
    try:
        migrate.upgrade(engine)
    except OperationalError:
        # Serve anyway: monitoring and routing work from the local snapshot, and requests that must be
        # stored fail with a retryable fault until the database is back (nothing is acknowledged unstored).
        log.error("database unreachable at start: schema not checked; routing from the local snapshot")
    finally:
        engine.dispose()
    specs = [ChildSpec("soap", _command(config, "gateway.server"), _address(config.server.bind))]
    if with_worker:
        specs.append(ChildSpec("worker", _command(config, "gateway.cli", "worker")))
    if with_ops:
        specs.append(
            ChildSpec(
                "ops",
                _command(config, "gateway.cli", "ops", "--parent", str(os.getpid())),
                _address(config.ops.bind),
            )
        )
    policy = RestartPolicy(
        delay_ms=config.server.restart_delay_ms,
        max_delay_ms=config.server.restart_max_delay_ms,
        reset_ms=config.server.restart_reset_ms,
    )
    # the worker finishes its running calls (up to an endpoint's read timeout) before it stops
    grace = config.server.graceful_timeout + 35.0
    return Supervisor(specs, policy, state_path(config), grace_s=grace).run()


def main(argv: list[str] | None = None) -> int:
    """The SOAP server alone (gunicorn's master and its workers), as ``gateway serve`` starts it."""
    from gateway.config import load_config
    from gateway.logs import configure_from

    parser = argparse.ArgumentParser(
        prog="python -m gateway.server", description="run the SOAP server alone (started by gateway serve)"
    )
    parser.add_argument("--config", help="configuration file (TOML)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except GatewayError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return exc.exit_code
    configure_from(config.log)
    GatewayServer(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
