"""Serve a benchmark app with exactly the gateway's gunicorn and TLS settings: python -m tests.bench.serve."""

from __future__ import annotations

import argparse

from gateway.config import load_config
from gateway.server import GatewayServer
from tests.bench.apps import baseline_app, receiver_app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--app", choices=["baseline", "receiver"], required=True)
    args = parser.parse_args()
    config = load_config(args.config)
    GatewayServer(config, app_factory=baseline_app if args.app == "baseline" else receiver_app).run()


if __name__ == "__main__":
    main()
