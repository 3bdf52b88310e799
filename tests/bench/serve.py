"""Serve a benchmark app with exactly the gateway's gunicorn and TLS settings: python -m tests.bench.serve."""

from __future__ import annotations

import argparse

from gateway.config import load_config
from gateway.server import GatewayServer
from tests.bench.apps import baseline_app, durable_app, receiver_app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--app", choices=["baseline", "durable", "receiver"], required=True)
    args = parser.parse_args()
    config = load_config(args.config)
    factory = {"baseline": baseline_app, "durable": durable_app, "receiver": receiver_app}[args.app]
    GatewayServer(config, app_factory=factory).run()


if __name__ == "__main__":
    main()
