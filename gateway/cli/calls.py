"""``gateway ping`` and ``gateway send``: call a gateway with the zeep client built from ``wsdl/``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.cli.common import config_of, emit
from gateway.config import Config
from gateway.errors import GatewayError

__all__ = ["add_call_parsers"]


def _client(args: argparse.Namespace, config: Config) -> Any:
    from gateway.soap.client import ClientTls, SoapClient

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
    from gateway.soap.client import as_dict

    config = config_of(args)
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
    emit(args, {**response, "configuration": settings}, line)
    return 0 if settings.get("ready") == "true" else 1


def cmd_send(args: argparse.Namespace) -> int:
    from lxml import etree

    from gateway.soap.client import as_dict

    operation = {"register-case": "RegisterCase", "update-case": "UpdateCase"}[args.kind]
    config = config_of(args)
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
    emit(args, result, _result_line(result))
    return 0 if result.get("resultCode") in ("OK", "INFO") else 1


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


def add_call_parsers(sub: Any) -> None:
    p = sub.add_parser("ping", help="call PingForConfiguration (zeep client)")
    p.add_argument("--contract-namespace", help="serviceContractNamespace to ask about")
    _client_options(p)
    p.set_defaults(func=cmd_ping)

    p = sub.add_parser("send", help="send a request file with the zeep client")
    p.add_argument("kind", choices=["register-case", "update-case"], help="which contract the file is")
    p.add_argument("file", help="XML file whose root is the request element")
    _client_options(p)
    p.set_defaults(func=cmd_send)
