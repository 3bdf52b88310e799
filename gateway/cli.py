"""The ``gateway`` command line: serve, check-config, db, certs, ping, send.

Every command exits non-zero with a one-line reason on failure and takes ``--json`` where it prints data.
``main(argv)`` is testable in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.config import Config, load_config, validate
from gateway.errors import GatewayError
from gateway.outbox_cli import add_outbox_parser
from gateway.routes_cli import add_routes_parser
from routing.errors import RoutingError

__all__ = ["main"]

DEFAULT_CONFIG = "gateway.toml"


def _config(args: argparse.Namespace) -> Config:
    path = args.config or os.environ.get("GATEWAY_CONFIG")
    if path is None and Path(DEFAULT_CONFIG).is_file():
        path = DEFAULT_CONFIG
    return load_config(path)


def _print(args: argparse.Namespace, data: dict[str, Any], line: str) -> None:
    print(json.dumps(data, indent=2, default=str) if getattr(args, "json", False) else line)


# -- commands ---------------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging
    from gateway.server import serve

    config = _config(args)
    validate(config, check_files=True)
    configure_logging(config.log.level, config.log.format)
    return serve(
        config, with_ops=not args.no_ops, with_worker=config.outbox.run_in_serve and not args.no_worker
    )


def cmd_worker(args: argparse.Namespace) -> int:
    from gateway.delivery import run_worker
    from gateway.logs import configure_logging

    config = _config(args)
    validate(config, check_files=True)
    configure_logging(config.log.level, config.log.format)
    return run_worker(config, threads=args.threads)


def cmd_ops(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging
    from gateway.ops import serve_ops

    config = _config(args)
    configure_logging(config.log.level, config.log.format)
    return serve_ops(config, parent_pid=args.parent)


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _config(args)
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
    _print(args, data, f"configuration OK ({data['source'] or 'defaults and environment'})")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from gateway import migrate
    from gateway.db import make_engine

    config = _config(args)
    engine = make_engine(config.database.url, pool_size=1)
    try:
        if args.db_command == "upgrade":
            migrate.upgrade(engine)
        current, head = migrate.current_revision(engine), migrate.head_revision()
    finally:
        engine.dispose()
    _print(args, {"current": current, "head": head}, f"schema at {current} (newest {head})")
    return 0


def cmd_certs(args: argparse.Namespace) -> int:
    from gateway.certs import generate_example_pki

    pki = generate_example_pki(Path(args.out), force=args.force)
    data = {
        "directory": str(pki.directory),
        "ca": str(pki.ca_cert),
        "server": str(pki.server.cert),
        "clients": {name: ident.hsa_id for name, ident in pki.clients.items()},
    }
    _print(args, data, f"example certificates in {pki.directory}")
    return 0


def _client(args: argparse.Namespace, config: Config) -> Any:
    from gateway.client import ClientTls, SoapClient

    trust = Path(args.ca) if args.ca else config.tls.trust_store
    tls = ClientTls(trust, Path(args.cert) if args.cert else None, Path(args.key) if args.key else None)
    return SoapClient(args.url or config.server.public_url, tls, timeout=args.timeout)


def _result_line(result: dict[str, Any]) -> str:
    code = result.get("resultCode")
    parts = [str(code)]
    if result.get("errorCode"):
        parts.append(f"{result['errorCode']}" + (f"/{result['subCode']}" if result.get("subCode") else ""))
    if result.get("message"):
        parts.append(str(result["message"]))
    parts.append(f"(logId {result.get('logId')})")
    return " ".join(parts)


def cmd_ping(args: argparse.Namespace) -> int:
    from gateway.client import as_dict

    config = _config(args)
    client = _client(args, config)
    namespace = args.contract_namespace or client.registry.by_operation("RegisterCase").responder_namespace
    address = args.logical_address or config.gateway.case_service_address
    response = as_dict(
        client.invoke(
            "PingForConfiguration",
            address,
            {"serviceContractNamespace": namespace, "logicalAddress": address},
        )
    )
    settings = {c["name"]: c["value"] for c in response.get("configuration") or []}
    line = f"version {response.get('version')} at {response.get('pingDateTime')}: " + " ".join(
        f"{k}={v}" for k, v in settings.items()
    )
    _print(args, {**response, "configuration": settings}, line)
    return 0 if settings.get("ready") == "true" else 1


def cmd_send(args: argparse.Namespace) -> int:
    from lxml import etree

    from gateway.client import as_dict

    operation = {"register-case": "RegisterCase", "update-case": "UpdateCase"}[args.kind]
    config = _config(args)
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
        payload = etree.parse(args.file, parser).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        raise GatewayError(f"cannot read {args.file}: {exc}") from None
    address = args.logical_address
    if address is None:
        if operation == "RegisterCase":
            found = payload.xpath(
                "string(*[local-name()='recipient']/*[local-name()='unit']/*[local-name()='unitId'])"
            )
            address = str(found) or None
        else:
            address = config.gateway.case_service_address
    if not address:
        raise GatewayError("no --logical-address given and none found in the file")
    client = _client(args, config)
    response = as_dict(client.call(operation, address, payload))
    result = response.get("result") or {}
    _print(args, result, _result_line(result))
    return 0 if result.get("resultCode") in ("OK", "INFO") else 1


def _run_routes(args: argparse.Namespace, func: Any) -> int:
    from gateway.routes_cli import _store

    config = _config(args)
    store = _store(config)
    try:
        code: int = func(args, store, config)
        return code
    finally:
        store.engine.dispose()


def _run_outbox(args: argparse.Namespace, func: Any) -> int:
    from gateway import migrate
    from gateway.delivery import build_store

    config = _config(args)
    store = build_store(config)
    try:
        migrate.upgrade(store.engine)
        code: int = func(args, store)
        return code
    finally:
        store.engine.dispose()


# -- parser -----------------------------------------------------------------------------------------------
def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="base URL of the gateway (default: server.public_url)")
    parser.add_argument("--logical-address", help="LogicalAddress header value")
    parser.add_argument("--cert", help="client certificate (PEM) presented in the TLS handshake")
    parser.add_argument("--key", help="private key of --cert (PEM)")
    parser.add_argument("--ca", help="CA bundle that signs the server certificate (default: tls.trust_store)")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for the answer (default 30)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description="RIV-TA SOAP gateway for 1177 complaints and feedback"
    )
    parser.add_argument(
        "--config",
        help=f"TOML configuration file (env GATEWAY_CONFIG; default ./{DEFAULT_CONFIG} if present)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="serve SOAP over mutual TLS, the operations listener and delivery")
    p.add_argument("--no-ops", action="store_true", help="do not start the operations listener")
    p.add_argument("--no-worker", action="store_true", help="do not start delivery (run `gateway worker`)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="deliver queued messages (any number of processes may run)")
    p.add_argument("--threads", type=int, help="concurrent deliveries (default outbox.threads)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("ops", help="run only the operations listener (started by serve)")
    p.add_argument("--parent", type=int, default=None)
    p.set_defaults(func=cmd_ops)

    p = sub.add_parser("check-config", help="validate the configuration and the files it names")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("db", help="database schema (Alembic migrations)")
    p.add_argument("db_command", choices=["upgrade", "current"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("certs", help="demo certificates")
    p.add_argument("certs_command", choices=["example"])
    p.add_argument("--out", default="certs-example/out", help="output directory (default certs-example/out)")
    p.add_argument("--force", action="store_true", help="regenerate even if the directory has certificates")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_certs)

    add_routes_parser(sub, _run_routes)
    add_outbox_parser(sub, _run_outbox)

    p = sub.add_parser("ping", help="call PingForConfiguration (zeep client)")
    p.add_argument("--contract-namespace", help="serviceContractNamespace to ask about")
    _client_options(p)
    p.set_defaults(func=cmd_ping)

    p = sub.add_parser("send", help="send a request file with the zeep client")
    p.add_argument("kind", choices=["register-case", "update-case"])
    p.add_argument("file", help="XML file whose root is the request element")
    _client_options(p)
    p.set_defaults(func=cmd_send)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (GatewayError, RoutingError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
