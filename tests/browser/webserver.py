"""The web listener alone, as a real gunicorn with the gateway's serving worker and mutual TLS, for the
browser tests while ``gateway serve`` does not start the ``[web]`` listener itself.

``python -m tests.browser.webserver --config gateway.toml`` serves ``gateway.web.web_listener_app`` on
``web.bind`` with the web port's TLS settings (the gateway's server certificate, the people's trust store
and CRL, client certificate required).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from gateway.config import load_config, web_tls
from gateway.server import GatewayServer
from gateway.web import web_listener_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.browser.webserver")
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    # its own runtime directory: the serving processes' state files there are the SOAP port's to report
    server = dataclasses.replace(
        config.server,
        bind=config.web.bind,
        public_url=config.web.public_url,
        workers=1,
        runtime_dir=config.server.runtime_dir / "web-listener",
    )
    serving = dataclasses.replace(config, server=server, tls=web_tls(config))
    GatewayServer(serving, app_factory=lambda _: web_listener_app(config)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
