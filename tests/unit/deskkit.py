"""A small in-process gateway for the desk's unit tests: the SOAP app (WSGI, no sockets) on a migrated
database with the example routing catalogue, a caller identity the test chooses, and a ``Desk`` on the
same database. Fakes stop at the caller's TLS identity; everything else is the real code."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy import Engine, select

from contracts import load_code_lists
from contracts.model import CAF_CORE_NS
from gateway.cases.records import case_record
from gateway.config import Config, load_config
from gateway.db import make_engine
from gateway.desk import Desk
from gateway.migrate import upgrade
from gateway.soap.app import SoapApp, create_app
from routing import CatalogueStore, RoutingHolder
from routing.io import load

ROOT = Path(__file__).resolve().parents[2]
REGISTER = ROOT / "examples" / "register-case.xml"
UPDATE = ROOT / "examples" / "update-case.xml"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
ADDRESSING = "urn:riv:itintegration:registry:1"
CORE = "{" + CAF_CORE_NS + "}"

INERA = "SE5565594230-1177"
DEV1 = "SE2321000016-DEV1"
DESK_UNIT = "SE2321000016-9K2M"
OTHER_UNIT = "SE2321000016-7Q6X"  # routed to deviation-a
BOARD = "SE2321000016-PN01"  # routed to deviation-b
CARE_PROVIDER = "SE2321000016-VG01"
REGION = "SE2321000016-R001"
CASE_SERVICE = "SE5565594230-CAF1"
HANDLER = "SE2321000016-HND1"
HANDLER2 = "SE2321000016-HND2"
READER = "SE2321000016-RDR1"


class _Caller:
    def __init__(self) -> None:
        self.hsa_id = INERA

    def caller(self, environ: dict[str, Any]) -> str:
        return self.hsa_id


def register_payload(case_id: str, unit: str = DESK_UNIT, **changes: str) -> etree._Element:
    root = etree.parse(str(REGISTER)).getroot()
    for name, value in {"caseId": case_id, "unitId": unit, **changes}.items():
        el = root.find(f".//{{*}}{name}")
        assert el is not None, name
        el.text = value
    return root


def board_payload(case_id: str) -> etree._Element:
    root = register_payload(case_id, BOARD, recipientType="PATIENT_BOARD")
    incident = root.find("{*}incident")
    assert incident is not None
    description = incident.find(f"{CORE}description")
    assert description is not None
    location = etree.Element(f"{CORE}locationDescription")
    location.text = "Akuten, natten till fredag"
    description.addnext(location)
    return root


def update_payload(case_id: str, update_type: str, sequence: int, **extra: Any) -> etree._Element:
    root = etree.parse(str(UPDATE)).getroot()
    root.find("{*}caseId").text = case_id
    root.find("{*}messageId").text = str(uuid.uuid4())
    root.find("{*}sequenceNumber").text = str(sequence)
    root.find("{*}updateType").text = update_type
    if update_type not in ("ANSWER", "PARTIAL_ANSWER", "QUESTION"):
        message = root.find("{*}message")
        assert message is not None
        root.remove(message)
    ns = "{" + etree.QName(root).namespace + "}"
    if update_type == "CLOSED":
        etree.SubElement(root, ns + "closedAt").text = "20261127120000"
    if "handling_unit" in extra:
        unit = etree.Element(ns + "handlingUnit")
        etree.SubElement(unit, CORE + "unitId").text = extra["handling_unit"]
        created = root.find("{*}createdAt")
        assert created is not None
        created.addnext(unit)
    return root


def envelope(payload: etree._Element, address: str) -> bytes:
    env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soap": SOAP, "add": ADDRESSING})
    header = etree.SubElement(env, f"{{{SOAP}}}Header")
    etree.SubElement(header, f"{{{ADDRESSING}}}LogicalAddress").text = address
    etree.SubElement(env, f"{{{SOAP}}}Body").append(payload)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


class Gateway:
    """The SOAP app and a desk on one database."""

    def __init__(self, db_url: str, tmp: Path, catalogue: Path | None = None) -> None:
        env = {
            "GATEWAY_DATABASE_URL": db_url,
            "GATEWAY_ROUTING_SNAPSHOT_FILE": str(tmp / "routing-snapshot.json"),
        }
        self.config: Config = load_config(None, env=env)
        self.engine: Engine = make_engine(db_url, pool_size=8)
        upgrade(self.engine)
        store = CatalogueStore(self.engine)
        if store.active_version() is None:
            store.replace_draft(load(catalogue or ROOT / "examples" / "routing.yaml"), "test")
            store.publish("test", "desk tests", force=True)
        self.app: SoapApp = create_app(self.config, start_routing=False)
        self.identity = _Caller()
        self.app.identity = self.identity  # type: ignore[assignment]
        self.routing = RoutingHolder(self.engine, None)
        self.routing.load()
        self.desk = Desk(self.engine, self.routing, self.config, load_code_lists())

    def close(self) -> None:
        self.desk.close()
        self.app.close()
        self.engine.dispose()

    def call(self, payload: etree._Element, address: str, caller: str = INERA) -> dict[str, str | None]:
        """POST one request through the WSGI app; the result's fields (a fault raises)."""
        self.identity.hsa_id = caller
        body = envelope(payload, address)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/complaintsandfeedback/RegisterCase/1/rivtabp21",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "8443",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "https",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(),
            "CONTENT_TYPE": "text/xml; charset=utf-8",
            "CONTENT_LENGTH": str(len(body)),
        }
        status: list[str] = []
        data = b"".join(self.app(environ, lambda s, h, e=None: status.append(s)))
        assert status[0].startswith("200"), data
        root = etree.fromstring(data)
        result = root.find(f"{{{SOAP}}}Body/*/{{*}}result")
        assert result is not None, data
        return {
            name: result.findtext(CORE + name) for name in ("resultCode", "errorCode", "subCode", "message")
        }

    def register(self, case_id: str, unit: str = DESK_UNIT) -> None:
        result = self.call(register_payload(case_id, unit), unit)
        assert result["resultCode"] == "OK", result

    def record(self, case_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return dict(
                conn.execute(select(case_record).where(case_record.c.case_id == case_id)).one()._mapping
            )


@contextmanager
def gateway(db_url: str, tmp: Path) -> Iterator[Gateway]:
    gw = Gateway(db_url, tmp)
    try:
        yield gw
    finally:
        gw.close()


def utc_now() -> datetime:
    return datetime.now(UTC)
