"""Clients built on zeep from the ``wsdl/`` files: the independent implementation of the wire format.

Used by ``gateway ping`` and ``gateway send``, and by the tests to prove that what the gateway serves is what
the WSDL promises. zeep never reaches the network for contract files (they are loaded from disk), never
trusts environment CA bundles (``trust_env = False``), and always has an operation timeout.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from lxml import etree
from zeep import Client, Settings
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import Fault
from zeep.helpers import serialize_object
from zeep.transports import Transport

from contracts.registry import Contract, load_registry
from gateway.errors import ClientError
from outbox.causes import call_failure

__all__ = ["ClientTls", "SoapClient", "SoapFaultInfo"]


@dataclass(frozen=True)
class ClientTls:
    trust_store: Path
    certificate: Path | None = None
    private_key: Path | None = None


@dataclass(frozen=True)
class SoapFaultInfo:
    code: str
    message: str


class _LocalOnlyTransport(Transport):
    """Loads contract files from disk; any attempt to fetch a document over HTTP is refused."""

    def load(self, url: str) -> bytes:
        if url.startswith(("http://", "https://")):
            raise ClientError(f"refusing to fetch {url}: contract files are loaded from wsdl/ only")
        return super().load(url)  # type: ignore[no-any-return]


class SoapClient:
    def __init__(
        self, base_url: str, tls: ClientTls, *, timeout: float = 30.0, plugins: list[Any] | None = None
    ) -> None:
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE and proxies from the environment must not apply
        session.verify = str(tls.trust_store)
        if tls.certificate is not None:
            session.cert = (str(tls.certificate), str(tls.private_key or tls.certificate))
        self.session = session
        self.timeout = timeout
        self.transport = _LocalOnlyTransport(session=session, timeout=timeout, operation_timeout=timeout)
        self.base_url = base_url.rstrip("/")
        self.registry = load_registry()
        self._clients: dict[str, Client] = {}
        self._plugins = plugins or []

    def _client(self, contract: Contract) -> Client:
        client = self._clients.get(contract.operation)
        if client is None:
            client = Client(
                wsdl=str(contract.wsdl_file),
                transport=self.transport,
                plugins=self._plugins,
                settings=Settings(strict=True, xml_huge_tree=True, forbid_dtd=True, forbid_entities=True),
            )
            self._clients[contract.operation] = client
        return client

    def service(self, operation: str, url: str | None = None) -> Any:
        contract = self.registry.by_operation(operation)
        client = self._client(contract)
        binding = next(iter(client.wsdl.bindings))
        return client.create_service(binding, url or (self.base_url + contract.url_path))

    def call(
        self, operation: str, logical_address: str, payload: etree._Element, url: str | None = None
    ) -> Any:
        """Send a request element (read from a file, say) through zeep; returns zeep's response object."""
        contract = self.registry.by_operation(operation)
        if payload.tag != contract.request.text:
            raise ClientError(f"the file holds {payload.tag}, not {contract.request.text}")
        client = self._client(contract)
        element = client.get_element(contract.request.text)
        value = element.parse(payload, client.wsdl.types)
        kwargs = {name: value[name] for name in value}
        return self.invoke(operation, logical_address, kwargs, url=url)

    def invoke(
        self, operation: str, logical_address: str, kwargs: dict[str, Any], url: str | None = None
    ) -> Any:
        service = self.service(operation, url)
        target = url or (self.base_url + self.registry.by_operation(operation).url_path)
        where = urlsplit(target).netloc or target
        try:
            return getattr(service, operation)(_soapheaders={"LogicalAddress": logical_address}, **kwargs)
        except Fault as fault:
            raise ClientError(f"SOAP fault {fault.code}: {fault.message}") from None
        except requests.exceptions.Timeout as exc:
            what = "connect" if isinstance(exc, requests.exceptions.ConnectTimeout) else "read"
            raise ClientError(f"calling {where}: {what} timeout after {self.timeout:g} s") from None
        except requests.exceptions.RequestException as exc:
            cause = call_failure(exc) or f"transport error: {exc.__class__.__name__}"
            raise ClientError(f"calling {where}: {cause}") from None
        except (ssl.SSLError, OSError) as exc:  # our own certificate or key, loaded for the first call
            cause = (call_failure(exc) if isinstance(exc, ssl.SSLError) else None) or exc.strerror or str(exc)
            raise ClientError(f"our client certificate or key cannot be used: {cause}") from None
        except ZeepError as exc:
            raise ClientError(f"SOAP client error: {exc}") from exc


def as_dict(response: Any) -> dict[str, Any]:
    data = serialize_object(response, target_cls=dict)
    return data if isinstance(data, dict) else {"value": data}
