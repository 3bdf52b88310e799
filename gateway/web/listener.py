"""``web_listener_app(config)``: the web app with everything it needs, built from configuration.

The serving worker calls it once per process after the fork (like ``gateway.soap.app.create_app``): its
own engine, routing holder (following published versions), code lists, desk, identity reader (the web
port's trust store and CRL, the same trusted-proxy rules as SOAP) and the CSRF key shared by every process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.config import Config, web_secret_key_file, web_tls

__all__ = ["web_listener_app"]


class _ClosingApp:
    """The Flask app, with ``close()`` for the worker's exit hook (gives the database connections back)."""

    def __init__(self, app: Any, close: Any) -> None:
        self.app = app
        self._close = close

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.app(environ, start_response)

    def close(self) -> None:
        self._close()


def web_listener_app(config: Config, *, start_routing: bool = True) -> Any:
    """A WSGI app for the ``[web]`` listener (``start_routing`` as in ``create_app``)."""
    from contracts import load_code_lists
    from gateway.catalogue import routing_holder
    from gateway.db import make_engine
    from gateway.desk import Desk
    from gateway.soap.identity import CallerIdentity
    from gateway.web.app import create_web_app
    from gateway.web.security import load_or_create_key

    lock_timeout_ms = config.database.lock_timeout_ms
    engine = make_engine(
        config.database.url,
        echo=config.database.echo,
        pool_size=config.server.threads,
        lock_timeout_ms=lock_timeout_ms,
    )
    routing = routing_holder(config)  # on a read-only engine of its own (gateway.catalogue)
    if start_routing:
        routing.start()
    else:
        routing.load()
    code_lists = load_code_lists(config.gateway.code_lists)
    desk = Desk(engine, routing, config, code_lists)
    identity = CallerIdentity(web_tls(config), config.proxy)

    def unit_choices() -> Sequence[tuple[str, str]]:
        nodes = routing.table.catalogue.hsa
        return sorted(((n.hsa_id, n.name) for n in nodes if n.kind == "unit"), key=lambda u: (u[1], u[0]))

    app = create_web_app(
        config,
        desk,
        identity,
        secret_key=load_or_create_key(web_secret_key_file(config)),
        code_lists=code_lists,
        unit_choices=unit_choices,
    )

    def close() -> None:
        routing.stop()
        desk.close()
        engine.dispose()
        routing.store.engine.dispose()

    return _ClosingApp(app, close)
