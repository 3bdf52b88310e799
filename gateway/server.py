"""``gateway serve``: gunicorn with gthread workers and mutual TLS, plus the operations listener.

gunicorn terminates TLS (1.2+, client certificate required, optional CRL) with a context from
``gateway.soap.tls``; each worker builds its own application, engine and schema validators after the fork, so
no connection or lxml object is shared between processes. Migrations run once, in the master, before any
worker starts. The operations listener (health, status) runs as a child process on plain HTTP, bound to
loopback by default.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication
from sqlalchemy.exc import OperationalError

from gateway.config import Config
from gateway.logs import GunicornLogger
from gateway.soap.tls import ServerContextFactory

__all__ = ["GatewayServer", "serve"]

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
        factory = ServerContextFactory(cfg.tls)

        def ssl_context(_conf: Any, _default: Any) -> Any:
            return factory()

        settings: dict[str, Any] = {
            "bind": [cfg.server.bind],
            "workers": cfg.server.workers,
            "worker_class": "gthread",
            "threads": cfg.server.threads,
            "timeout": cfg.server.timeout,
            "graceful_timeout": cfg.server.graceful_timeout,
            "keepalive": cfg.server.keepalive,
            "backlog": cfg.server.backlog,
            "certfile": str(cfg.tls.certificate),
            "keyfile": str(cfg.tls.private_key),
            "ca_certs": str(cfg.tls.trust_store),
            "cert_reqs": 2,  # ssl.CERT_REQUIRED
            "ssl_context": ssl_context,
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
        return create_app(self.gateway_config)


def _close_app(_server: Any, worker: Any) -> None:
    """gunicorn's worker_exit hook: a worker that stops gives its database connections back cleanly."""
    close = getattr(getattr(worker, "wsgi", None), "close", None)
    if callable(close):
        close()


def _child(config: Config, *command: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "gateway.cli"]
    if config.source is not None:
        argv += ["--config", str(config.source)]
    # PR_SET_PDEATHSIG is not reachable from Python; children watch their parent instead (ops) or are
    # stopped here when gunicorn's master returns.
    return subprocess.Popen([*argv, *command])


def serve(config: Config, *, with_ops: bool = True, with_worker: bool = True) -> int:
    from gateway import migrate
    from gateway.db import make_engine

    engine = make_engine(config.database.url, pool_size=1)
    try:
        migrate.upgrade(engine)
    except OperationalError:
        # Serve anyway: monitoring and routing work from the local snapshot, and requests that must be
        # stored fail with a retryable fault until the database is back (nothing is acknowledged unstored).
        log.error("database unreachable at start: schema not checked; routing from the local snapshot")
    finally:
        engine.dispose()
    children = []
    if with_ops:
        children.append(_child(config, "ops", "--parent", str(os.getpid())))
    if with_worker:
        children.append(_child(config, "worker"))
    try:
        GatewayServer(config).run()
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=config.server.graceful_timeout + 35)
            except subprocess.TimeoutExpired:
                child.kill()
    return 0
