"""``gateway ping`` and ``gateway send``: call a gateway with the zeep client built from ``wsdl/``.

``send`` checks its file before it connects: readable, well-formed XML without a DOCTYPE, the request
element of the contract named on the command line, and valid against that contract's schema. Each
failure is one line naming the file and the first problem (exit 2); nothing is sent.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from gateway.cli.common import config_of, emit
from gateway.config import Config
from gateway.errors import ConfigError

__all__ = ["add_call_parsers"]

_NAMESPACE = re.compile(r"\{[^}]*\}")  # {urn:…}name → name: the file's namespaces are the contract's


def _given_file(option: str, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"{option}: no such file: {path}")
    return path


def _client(args: argparse.Namespace, config: Config) -> Any:
    from gateway.soap.client import ClientTls, SoapClient

    for option, value in (("--ca", args.ca), ("--cert", args.cert), ("--key", args.key)):
        _given_file(option, value)
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


def _request_file(path: Path, operation: str) -> Any:
    """The request element in ``path``, checked against the contract's schema (``ConfigError`` if not)."""
    from lxml import etree

    from contracts import SchemaValidator, load_registry

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    # attachments may be 20 MB (27 MB in base64): a single text node beyond lxml's default limit
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
    try:
        document = etree.fromstring(data, parser).getroottree()
    except etree.XMLSyntaxError as exc:
        line = f" (line {exc.lineno})" if exc.lineno else ""
        reason = str(exc.msg).split(",")[0] if exc.msg else "not well-formed"
        raise ConfigError(f"{path}: not an XML document{line}: {reason}") from None
    if document.docinfo.doctype:
        raise ConfigError(f"{path}: has a DOCTYPE, which no RIV-TA request may carry")
    payload = document.getroot()
    contract = load_registry().by_operation(operation)
    if payload.tag != contract.request.text:
        raise ConfigError(
            f"{path}: the root element is {payload.tag}, not {operation} of {contract.request.namespace}: "
            "check the file or the command (register-case or update-case)"
        )
    errors = SchemaValidator().errors(contract, payload)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        first = _NAMESPACE.sub("", errors[0])
        raise ConfigError(f"{path}: not a valid {operation} request: {first}{more}")
    return payload


def cmd_send(args: argparse.Namespace) -> int:
    from zeep.exceptions import Error as ZeepError

    from gateway.soap.client import as_dict

    operation = {"register-case": "RegisterCase", "update-case": "UpdateCase"}[args.kind]
    config = config_of(args)
    path = Path(args.file)
    payload = _request_file(path, operation)
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
        raise ConfigError("no --logical-address given and none found in the file")
    client = _client(args, config)
    try:
        response = as_dict(client.call(operation, address, payload))
    except ZeepError as exc:
        # the call maps transport and fault errors itself: what escapes is zeep reading the file
        raise ConfigError(
            f"{path}: zeep cannot read it as {operation}: {' '.join(str(exc).split())}"
        ) from None
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
    p.add_argument(
        "--contract-namespace", help="serviceContractNamespace to ask about (default: RegisterCase's)"
    )
    _client_options(p)
    p.set_defaults(func=cmd_ping)

    p = sub.add_parser("send", help="send a request file with the zeep client")
    p.add_argument("kind", choices=["register-case", "update-case"], help="which contract the file is")
    p.add_argument("file", help="XML file whose root is the request element")
    _client_options(p)
    p.set_defaults(func=cmd_send)
