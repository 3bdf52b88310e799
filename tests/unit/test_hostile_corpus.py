"""The hostile-request corpus in ``tests/data/hostile``: every file is sent through the WSGI application.

Each entry of ``manifest.json`` names a request file and the answer the contracts and the code call for:
a SOAP 1.1 Fault (HTTP 500, faultcode, platform code, a log id in faultstring and detail) or a business
result (HTTP 200, resultCode / errorCode / subCode, a log id). Whatever the answer, it never carries a stack
trace or text from the request, and a request that is not accepted leaves every table as it was. Some
entries must be accepted, to show the rules are not over-strict; each stores one inbox row (a repeat: none).

While a case runs, a resolver on the gateway's request parser records (and refuses) every external resource
libxml2 asks for: the gateway must never load a DTD, an entity or anything else named by a request.

Every case runs on SQLite and, when ``GATEWAY_TEST_POSTGRES_URL`` is set, on PostgreSQL, with a fresh
database and application per test and a small published routing catalogue (``CATALOGUE``). The caller's TLS
identity is faked here; it is tested over real handshakes elsewhere.

Manifest entry keys: ``file``, ``category``, ``what`` (one line), ``expect``, and optionally
``content_type`` (null: no header), ``content_length`` (null: none, as with chunked transfer),
``soap_action``, ``caller`` (the HSA-id the request comes from, default ``CALLER``; setup files always
come from ``CALLER``), ``setup`` (files in ``setup/`` sent first, each answered OK), ``generate`` (a generator
in ``GENERATORS`` that transforms the file, e.g. to pad it past the body limit), ``secrets`` (more strings
the answer must not contain), ``hazard`` (why the case is skipped when the resolver spy cannot be attached)
and ``xfail`` (a known gateway bug, described in the reason).
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import Engine, func, select

import gateway.cases.inbox  # registers inbox_message on the shared metadata
import gateway.soap.envelope
import routing.store  # noqa: F401 - registers the routing tables on the shared metadata
from contracts import registercase, updatecase
from contracts.db import metadata
from contracts.model import CAF_CORE_NS
from gateway.config import load_config
from gateway.db import make_engine
from gateway.migrate import upgrade
from gateway.soap.app import SoapApp, create_app
from gateway.soap.envelope import FAULT_DETAIL_NS, SOAP_ENV_NS
from routing import Catalogue, CatalogueStore

REPO = Path(__file__).resolve().parents[2]
HOSTILE = REPO / "tests" / "data" / "hostile"
SETUP = HOSTILE / "setup"
MANIFEST: list[dict[str, Any]] = json.loads((HOSTILE / "manifest.json").read_text(encoding="utf-8"))

MAX_ENVELOPE = 200_000
MAX_ATTACHMENT = 1_000
CALLER = "SE5565594230-1177"
#: 1177 as the gateway knows it: the component of the endpoint that UpdateCase at the case service address
#: routes to. Not CALLER, so that CALLER stays the handling system of the corpus's cases; entries with
#: ``"caller": CITIZEN_SERVICE`` send the citizen's messages.
CITIZEN_SERVICE = "SE5565594230-CAFS"
DEFAULT_CONTENT_TYPE = "text/xml; charset=utf-8"
#: personal data and free text used throughout the corpus; no answer may contain any of it
SENSITIVE = (
    "191212121212",
    "Exempelsson",
    "070-1740605",
    "ryggsmärta",
    "återkoppling",
    "återuppringning",
    "dröjsmålet",
    "root:x:0:0",  # /etc/passwd, should an entity or XInclude ever be resolved
)
MAX_SECONDS = 10.0

# The addresses the corpus uses: every unit is routed and open to the caller, except NO_ROUTE (permitted,
# no route: VP004) and NO_ACCESS (routed, no permission: VP007). Units route to an endpoint of the caller's
# own system, so the caller may also answer those cases; OTHER_UNIT is handled in the case desk (only the
# desk may answer). UpdateCase is permitted everywhere; it is routed at 1177's case service (to 1177's
# endpoint) and, for the citizen's messages, at UNIT (the caller's system) and OTHER_UNIT (the desk).
UNIT, OTHER_UNIT, BOARD = "SE2321000016-7Q6X", "SE2321000016-9Z9Z", "SE2321000016-PN01"
CASE_SERVICE, NO_ROUTE, NO_ACCESS = "SE5565594230-CAF1", "SE2321000016-NORT", "SE2321000016-NOAC"
CATALOGUE = {
    "components": [
        {"hsa_id": CALLER, "description": "the caller of every test, unless an entry names another"},
        {"hsa_id": CITIZEN_SERVICE, "description": "1177's case service"},
    ],
    "endpoints": [
        {"name": "caller-system", "component": CALLER, "url": "https://localhost:9/never-called"},
        {"name": "citizen-service", "component": CITIZEN_SERVICE, "url": "https://localhost:9/never-called"},
    ],
    "contracts": [
        {"namespace": registercase.NAMESPACE, "name": "RegisterCase"},
        {"namespace": updatecase.NAMESPACE, "name": "UpdateCase"},
    ],
    "addresses": [{"address": a} for a in (UNIT, OTHER_UNIT, BOARD, CASE_SERVICE, NO_ROUTE, NO_ACCESS)],
    "routes": [
        *(
            {"contract": registercase.NAMESPACE, "address": a, "target": "caller-system"}
            for a in (UNIT, BOARD, NO_ACCESS)
        ),
        {"contract": registercase.NAMESPACE, "address": OTHER_UNIT, "target": "internal"},
        {"contract": updatecase.NAMESPACE, "address": CASE_SERVICE, "target": "citizen-service"},
        {"contract": updatecase.NAMESPACE, "address": UNIT, "target": "caller-system"},
        {"contract": updatecase.NAMESPACE, "address": OTHER_UNIT, "target": "internal"},
    ],
    "permissions": [
        *(
            {"consumer": CALLER, "contract": registercase.NAMESPACE, "address": a}
            for a in (UNIT, OTHER_UNIT, BOARD, NO_ROUTE)
        ),
        {"consumer": CALLER, "contract": updatecase.NAMESPACE, "address": "*"},
        {"consumer": CITIZEN_SERVICE, "contract": updatecase.NAMESPACE, "address": "*"},
    ],
}

ENTRY_KEYS = {
    "file",
    "caller",
    "category",
    "what",
    "content_type",
    "content_length",
    "soap_action",
    "setup",
    "generate",
    "secrets",
    "hazard",
    "xfail",
    "expect",
}
FAULT_EXPECT_KEYS = {"http", "faultcode", "platform"}
RESULT_EXPECT_KEYS = {"http", "resultCode", "errorCode", "subCode", "inbox_rows_added"}
_LOG_ID = re.compile(r"\(logId ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\)")
_SECURE = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _oversize(data: bytes) -> bytes:
    """Replace the file's padding marker with a foreign extension element that pushes it past the limit
    on what a request may hold outside attachment data (soap.max_envelope_bytes)."""
    marker = b"<!--PAD-->"
    assert data.count(marker) == 1, "an oversize file needs exactly one <!--PAD--> marker"
    pad = b'<ext:pad xmlns:ext="urn:example:padding:1">' + b"A" * MAX_ENVELOPE + b"</ext:pad>"
    return data.replace(marker, pad)


def _elements(data: bytes) -> bytes:
    """Replace the padding marker with an extension element holding more elements than soap.max_elements."""
    marker = b"<!--PAD-->"
    assert data.count(marker) == 1, "an elements file needs exactly one <!--PAD--> marker"
    pad = b'<ext:pad xmlns:ext="urn:example:padding:1">' + b"<ext:e/>" * 20_000 + b"</ext:pad>"
    return data.replace(marker, pad)


GENERATORS: dict[str, Callable[[bytes], bytes]] = {"oversize": _oversize, "elements": _elements}


class _ExternalLoadSpy(etree.Resolver):
    """Records every external resource the parser asks for and refuses it (an empty document instead)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        self.urls.append(system_url)
        return self.resolve_string("", context)


@pytest.fixture
def external_loads() -> Iterator[list[str] | None]:
    """What the request parser asked to load during the test, or None if that parser cannot be reached."""
    make_parser = getattr(gateway.soap.envelope, "_parser", None)
    if make_parser is None:
        yield None
        return
    parser = make_parser()  # per thread, cached: the WSGI call in the test runs in this thread and uses it
    spy = _ExternalLoadSpy()
    parser.resolvers.add(spy)
    try:
        yield spy.urls
    finally:
        parser.resolvers.remove(spy)


class _FixedIdentity:
    """Stands in for CallerIdentity: every request comes from ``hsa_id`` (CALLER unless a test changes it)."""

    hsa_id = CALLER

    def caller(self, environ: dict[str, Any]) -> str:
        return self.hsa_id


def _params() -> list[Any]:
    params = []
    for entry in MANIFEST:
        marks = [pytest.mark.xfail(reason=entry["xfail"], strict=True)] if entry.get("xfail") else []
        params.append(pytest.param(entry, id=entry["file"], marks=marks))
    return params


@pytest.fixture
def gateway_app(db_url: str, tmp_path: Path) -> Iterator[tuple[SoapApp, Engine]]:
    env = {
        "GATEWAY_DATABASE_URL": db_url,
        "GATEWAY_SOAP_MAX_ENVELOPE_BYTES": str(MAX_ENVELOPE),
        "GATEWAY_SOAP_MAX_ATTACHMENT_BYTES": str(MAX_ATTACHMENT),
        "GATEWAY_ROUTING_SNAPSHOT_FILE": str(tmp_path / "routing-snapshot.json"),
    }
    config = load_config(None, env=env)
    engine = make_engine(db_url, pool_size=1)
    upgrade(engine)
    store = CatalogueStore(engine)
    store.replace_draft(Catalogue.from_dict(CATALOGUE), "hostile-corpus")
    store.publish("hostile-corpus", "routes and permissions of the hostile corpus")
    app = create_app(config, start_routing=False)
    app.identity = _FixedIdentity()  # type: ignore[assignment]
    try:
        yield app, engine
    finally:
        app.close()
        engine.dispose()


def _send(
    app: SoapApp,
    body: bytes,
    *,
    content_type: str | None = DEFAULT_CONTENT_TYPE,
    content_length: str | None = "",
    soap_action: str | None = None,
) -> tuple[int, bytes]:
    """POST ``body`` through the WSGI callable; ``content_length=""`` means the true length."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/complaintsandfeedback/RegisterCase/1/rivtabp21",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
    }
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    if content_length is not None:
        environ["CONTENT_LENGTH"] = content_length or str(len(body))
    if soap_action is not None:
        environ["HTTP_SOAPACTION"] = soap_action
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    data = b"".join(app(environ, start_response))
    assert answer["headers"]["Content-Type"].startswith("text/xml")
    assert int(answer["headers"]["Content-Length"]) == len(data)
    return int(answer["status"].split()[0]), data


def _row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in metadata.sorted_tables
        }


def _body_child(data: bytes) -> etree._Element:
    root = etree.fromstring(data, _SECURE)
    assert root.tag == f"{{{SOAP_ENV_NS}}}Envelope"
    body = root.find(f"{{{SOAP_ENV_NS}}}Body")
    assert body is not None
    children = [c for c in body if isinstance(c.tag, str)]
    assert len(children) == 1
    return children[0]


def _result(data: bytes) -> dict[str, str | None]:
    response = _body_child(data)
    assert etree.QName(response).localname.endswith("Response"), response.tag
    result = response.find(f"{{{etree.QName(response).namespace}}}result")
    assert result is not None, "response without result"
    core = f"{{{CAF_CORE_NS}}}"
    return {
        name: result.findtext(core + name)
        for name in ("resultCode", "errorCode", "subCode", "logId", "message")
    }


def _check_fault(data: bytes, expect: dict[str, Any]) -> None:
    fault = _body_child(data)
    assert fault.tag == f"{{{SOAP_ENV_NS}}}Fault"
    faultcode = fault.findtext("faultcode") or ""
    assert faultcode == expect["faultcode"]
    prefix = faultcode.partition(":")[0]
    assert fault.nsmap.get(prefix) == SOAP_ENV_NS, "faultcode prefix must be bound to SOAP 1.1"
    faultstring = fault.findtext("faultstring") or ""
    assert faultstring.startswith(expect["platform"] + " "), faultstring
    info = fault.find(f"detail/{{{FAULT_DETAIL_NS}}}gatewayFault")
    assert info is not None, "fault without gateway detail"
    assert info.findtext(f"{{{FAULT_DETAIL_NS}}}code") == expect["platform"]
    log_id = info.findtext(f"{{{FAULT_DETAIL_NS}}}logId") or ""
    assert str(uuid.UUID(log_id)) == log_id
    match = _LOG_ID.search(faultstring)
    assert match is not None, f"faultstring without logId: {faultstring}"
    assert match.group(1) == log_id


def _check_result(data: bytes, expect: dict[str, Any]) -> None:
    result = _result(data)
    assert result["resultCode"] == expect["resultCode"], result
    assert result["errorCode"] == expect.get("errorCode"), result
    assert result["subCode"] == expect.get("subCode"), result
    log_id = result["logId"] or ""
    assert str(uuid.UUID(log_id)) == log_id


def _request_body(entry: dict[str, Any]) -> bytes:
    data = (HOSTILE / entry["file"]).read_bytes()
    generate = entry.get("generate")
    return GENERATORS[generate](data) if generate else data


@pytest.mark.parametrize("entry", _params())
def test_hostile_request(
    entry: dict[str, Any], gateway_app: tuple[SoapApp, Engine], external_loads: list[str] | None
) -> None:
    if entry.get("hazard") and external_loads is None:
        pytest.skip(f"no resolver spy on the request parser: {entry['hazard']}")
    app, engine = gateway_app
    for name in entry.get("setup", []):
        status, data = _send(app, (SETUP / name).read_bytes())
        assert status == 200, data
        assert _result(data)["resultCode"] == "OK", f"setup file {name} was not accepted: {data!r}"
    before = _row_counts(engine)
    app.identity.hsa_id = entry.get("caller", CALLER)  # type: ignore[attr-defined]

    started = time.monotonic()
    status, data = _send(
        app,
        _request_body(entry),
        content_type=entry.get("content_type", DEFAULT_CONTENT_TYPE),
        content_length=entry.get("content_length", ""),
        soap_action=entry.get("soap_action"),
    )
    assert time.monotonic() - started < MAX_SECONDS
    assert not external_loads, f"the gateway asked to load external resources: {external_loads}"

    expect = entry["expect"]
    text = data.decode("utf-8")
    assert status == expect["http"], text
    assert "Traceback" not in text
    assert 'File "' not in text
    for secret in (*SENSITIVE, *entry.get("secrets", ())):
        assert secret.lower() not in text.lower(), f"the answer echoes request text {secret!r}: {text}"
    if "faultcode" in expect:
        _check_fault(data, expect)
    else:
        _check_result(data, expect)

    added = expect.get("inbox_rows_added", 1 if expect.get("resultCode") == "OK" else 0)
    after = _row_counts(engine)
    assert after["inbox_message"] == before["inbox_message"] + added
    if added == 0:
        assert after == before  # refused or a repeat: nothing anywhere
    else:  # accepted: only the inbox, the case record and the outbox grow
        grown = {table for table in after if after[table] != before[table]}
        assert grown <= {"inbox_message", "case_record", "outbox_message"}


def test_manifest_matches_folder() -> None:
    assert len(MANIFEST) >= 45
    files = [entry["file"] for entry in MANIFEST]
    assert len(files) == len(set(files)), "a file is listed twice"
    on_disk = {p.name for p in HOSTILE.iterdir() if p.is_file()} - {"manifest.json"}
    assert set(files) == on_disk
    setup_used = {name for entry in MANIFEST for name in entry.get("setup", [])}
    assert setup_used == {p.name for p in SETUP.iterdir() if p.is_file()}
    assert {p.name for p in HOSTILE.iterdir() if p.is_dir()} == {"setup"}


def test_manifest_entries_are_well_formed() -> None:
    for entry in MANIFEST:
        name = entry["file"]
        assert set(entry) <= ENTRY_KEYS, f"{name}: unknown keys {set(entry) - ENTRY_KEYS}"
        assert name.endswith((".xml", ".bin")), name
        assert entry["what"].strip(), name
        assert "\n" not in entry["what"], name
        assert entry.get("generate") in (None, *GENERATORS), name
        expect = entry["expect"]
        if "faultcode" in expect:
            assert set(expect) == FAULT_EXPECT_KEYS, name
            assert expect["http"] == 500, name
            assert expect["faultcode"] in (
                "soap:Client",
                "soap:Server",
                "soap:VersionMismatch",
                "soap:MustUnderstand",
            )
            assert re.fullmatch(r"VP0\d\d", expect["platform"]), name
        else:
            assert set(expect) <= RESULT_EXPECT_KEYS, name
            assert expect["http"] == 200, name
            assert expect["resultCode"] in ("OK", "INFO", "ERROR"), name
            assert ("errorCode" in expect) == (expect["resultCode"] == "ERROR"), name
        if name.endswith(".bin"):
            continue
        data = _request_body(entry)
        assert len(data) <= MAX_ENVELOPE or entry.get("generate") in GENERATORS, name
        if entry.get("generate") not in GENERATORS:
            assert len(data) < 100_000, f"{name}: generate big files in the test"
    accepted = [e for e in MANIFEST if e["expect"].get("resultCode") == "OK"]
    assert len(accepted) >= 4, "the corpus must show that valid variants are accepted"


def test_corpus_covers_every_domain_rule() -> None:
    """Every subCode the handlers can answer appears in the corpus (a new rule needs a hostile file)."""
    source = (REPO / "gateway" / "soap" / "handlers.py").read_text(encoding="utf-8")
    sub_codes = set(re.findall(r'RuleViolation\(\s*"([A-Z_]+)"', source))
    assert sub_codes, "no RuleViolation found in gateway/soap/handlers.py"
    covered = {e["expect"].get("subCode") for e in MANIFEST}
    assert sub_codes <= covered, f"no hostile file for {sorted(sub_codes - covered)}"
