"""Request size limits derived from the contracts (gateway.soap.limits), checked before anything is stored
(gateway.soap.reader).

Three layers: the limits as read from the XSD files and the configuration; the incremental reader with
small limits (exact accounting whatever the chunking, early refusal, the same tree as the fast path); and
a data-driven table of real-size requests (attachments of 20 MiB, 32 MiB of junk, 8 million elements) sent
through the WSGI application with the default limits, on SQLite and PostgreSQL, each refusal leaving every
table as it was. Bodies are generated here (tests/large_requests.py), never committed.
"""

from __future__ import annotations

import functools
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import Engine

from contracts.registry import ContractFileError, load_registry, wsdl_root
from gateway.config import SoapConfig, load_config
from gateway.db import make_engine
from gateway.errors import ConfigError, InvalidRequestError, ServerFault
from gateway.migrate import upgrade
from gateway.soap.app import SoapApp, create_app
from gateway.soap.envelope import parse_xml
from gateway.soap.limits import BodyLimits, LargeRequestSlots, base64_text_cap, binary_slots
from gateway.soap.reader import CHUNK, IncrementalParser, RequestReader
from routing import Catalogue, CatalogueStore
from tests.large_requests import (
    MiB,
    PartsStream,
    Request,
    base64_text,
    empty_elements,
    junk_text,
    pdf_content,
    register_case,
    update_case,
)
from tests.unit.test_hostile_corpus import (
    CATALOGUE,
    HOSTILE,
    MANIFEST,
    _check_fault,
    _FixedIdentity,
    _result,
    _row_counts,
)

REGISTER_NS = "urn:riv-application:supportprocess:logistics:complaintsandfeedback:RegisterCaseResponder:1"
UPDATE_NS = "urn:riv-application:supportprocess:logistics:complaintsandfeedback:UpdateCaseResponder:1"
CORE_NS = "urn:riv-application:supportprocess:logistics:complaintsandfeedback:1"


# -- the limits as derived ------------------------------------------------------------------------------
def test_attachment_counts_come_from_the_contract_files() -> None:
    by_operation = {c.operation: binary_slots(c) for c in load_registry().contracts()}
    assert by_operation["PingForConfiguration"] == ()
    (register,) = by_operation["RegisterCase"]
    (update,) = by_operation["UpdateCase"]
    assert (register.element, register.data, register.max_count) == (
        f"{{{REGISTER_NS}}}attachment",
        f"{{{CORE_NS}}}data",
        5,
    )
    assert (update.element, update.data, update.max_count) == (
        f"{{{UPDATE_NS}}}attachment",
        f"{{{CORE_NS}}}data",
        10,
    )


def _contracts_with(tmp_path: Path, max_occurs: str) -> Path:
    root = tmp_path / "wsdl"
    shutil.copytree(wsdl_root(), root)
    schema = next(root.rglob("RegisterCaseResponder_1.0.xsd"))
    text = schema.read_text(encoding="utf-8")
    assert 'maxOccurs="5"' in text
    schema.write_text(text.replace('maxOccurs="5"', f'maxOccurs="{max_occurs}"'), encoding="utf-8")
    return root


def test_a_changed_contract_changes_the_limit(tmp_path: Path) -> None:
    """Official contract files with another maxOccurs need no code change: the limit follows the XSD."""
    registry = load_registry(_contracts_with(tmp_path, "7"))
    limits = BodyLimits.from_config(SoapConfig(), registry)
    assert limits.describe()["RegisterCase"] == 1 * MiB + 7 * base64_text_cap(20 * MiB)


def test_an_unbounded_attachment_count_is_refused_at_start(tmp_path: Path) -> None:
    registry = load_registry(_contracts_with(tmp_path, "unbounded"))
    with pytest.raises(ContractFileError, match="maxOccurs='unbounded'"):
        BodyLimits.from_config(SoapConfig(), registry)


def test_default_limits_as_derived() -> None:
    limits = BodyLimits.from_config(SoapConfig(), load_registry())
    text = base64_text_cap(20 * MiB)
    assert text == 28_835_842  # 27 962 028 base64 characters and a CRLF every 64 of them
    assert limits.describe() == {
        "RegisterCase": 1 * MiB + 5 * text,  # 145 227 786 bytes
        "UpdateCase": 1 * MiB + 10 * text,  # 289 406 996 bytes
        "PingForConfiguration": 1 * MiB,
    }
    assert limits.largest_body == 289_406_996
    assert (limits.max_elements, limits.max_depth) == (10_000, 64)


@pytest.mark.parametrize(("width", "newline"), [(76, b"\n"), (76, b"\r\n"), (64, b"\r\n"), (10**9, b"")])
def test_the_largest_attachment_fits_any_usual_wrapping(width: int, newline: bytes) -> None:
    text = base64_text(pdf_content(20 * MiB), width=width, newline=newline)
    assert len(text) <= base64_text_cap(20 * MiB)


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        (
            "[soap]\nmax_body_bytes = 67108864\n",
            {},
            "config: soap.max_body_bytes is no longer used: the body limit is now derived from the contracts",
        ),
        (
            "",
            {"GATEWAY_SOAP_MAX_BODY_BYTES": "1"},
            "config: soap.max_body_bytes (from GATEWAY_SOAP_MAX_BODY_BYTES) is no longer used",
        ),
        ("[soap]\nmax_envelope_bytes = 1000\n", {}, "config: soap.max_envelope_bytes: must be between"),
        ("[soap]\nmax_elements = 10\n", {}, "config: soap.max_elements: must be between 100 and 1000000"),
        ("[soap]\nmax_attachment_bytes = 0\n", {}, "config: soap.max_attachment_bytes: must be between"),
        ("[soap]\nmax_large_requests = 0\n", {}, "config: soap.max_large_requests: must be at least 1"),
        (
            "[soap]\nlarge_request_wait_ms = 20000\n",
            {},
            "config: soap.large_request_wait_ms: must be between",
        ),
    ],
)
def test_size_settings_are_checked(tmp_path: Path, toml: str, env: dict[str, str], message: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_size_settings_defaults_and_overrides() -> None:
    assert load_config(None, env={}).soap == SoapConfig(
        max_envelope_bytes=1 * MiB,
        max_elements=10_000,
        max_depth=64,
        max_attachment_bytes=20 * MiB,
        max_large_requests=2,
        large_request_wait_ms=5_000,
    )
    soap = load_config(
        None, env={"GATEWAY_SOAP_MAX_ENVELOPE_BYTES": "65536", "GATEWAY_SOAP_MAX_LARGE_REQUESTS": "4"}
    ).soap
    assert (soap.max_envelope_bytes, soap.max_large_requests) == (65536, 4)


# -- the incremental reader, with small limits ------------------------------------------------------------
SMALL = BodyLimits.from_config(
    SoapConfig(max_envelope_bytes=16_384, max_elements=200, max_attachment_bytes=3_000), load_registry()
)
SMALL_TEXT = base64_text(pdf_content(3_000))  # 4 052 characters: just within base64_text_cap(3 000)


def _chunked(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _units(data: bytes) -> int:
    """Length as an XML parser holds it: a CRLF becomes one line feed."""
    return len(data) - data.count(b"\r\n")


def _envelope_bytes(body: bytes, texts: list[bytes]) -> int:
    return _units(body) - sum(_units(t) for t in texts)


SMALL_TEXT_CRLF = base64_text(pdf_content(3_000), width=64, newline=b"\r\n")


def _padded_register(envelope: int, text: bytes = SMALL_TEXT, filler: bytes = b"A") -> bytes:
    """A RegisterCase with two attachments and exactly ``envelope`` bytes outside their data."""
    base = register_case(attachments=2, text=text, extension=[b""], case_id="PAD").join()
    pad = envelope - _envelope_bytes(base, [text] * 2)
    padding = filler * (pad // _units(filler)) + b"A" * (pad % _units(filler))
    body = register_case(attachments=2, text=text, extension=[padding], case_id="PAD").join()
    assert _envelope_bytes(body, [text] * 2) == envelope
    return body


@pytest.mark.parametrize(
    ("text", "filler"),
    [(SMALL_TEXT, b"A"), (SMALL_TEXT_CRLF, b"AAAAAAA\r\n"), (SMALL_TEXT_CRLF, b"\r\n")],
    ids=["LF", "CRLF", "CRLF-only-padding"],
)
@pytest.mark.parametrize("chunk", [1, 7, 1000, 65_536])
def test_bytes_outside_attachment_data_are_counted_exactly(chunk: int, text: bytes, filler: bytes) -> None:
    """At the cap a body is read whatever its chunking and line ends; one byte more is refused, naming
    the limit. A CRLF counts as one byte (the parser keeps one line feed of it)."""
    IncrementalParser(SMALL, None).parse(_chunked(_padded_register(16_384, text, filler), chunk))
    with pytest.raises(InvalidRequestError, match=r"more than 16384 bytes outside attachment data"):
        IncrementalParser(SMALL, None).parse(_chunked(_padded_register(16_385, text, filler), chunk))


@pytest.mark.parametrize("chunk", [1, 7, 1000, 65_536])
def test_attachment_text_is_counted_exactly(chunk: int) -> None:
    cap = base64_text_cap(3_000)
    at_cap = SMALL_TEXT + b"\n" * (cap - len(SMALL_TEXT))
    IncrementalParser(SMALL, None).parse(_chunked(register_case(attachments=1, text=at_cap).join(), chunk))
    over = register_case(attachments=1, text=at_cap + b"\n").join()
    with pytest.raises(InvalidRequestError, match=rf"attachment 1: data of more than {cap} characters"):
        IncrementalParser(SMALL, None).parse(_chunked(over, chunk))


def _accepted_corpus_files() -> list[Path]:
    files = [HOSTILE / e["file"] for e in MANIFEST if e["expect"].get("resultCode") == "OK"]
    return [*files, *sorted((HOSTILE / "setup").iterdir())]


@pytest.mark.parametrize("path", _accepted_corpus_files(), ids=lambda p: p.name)
def test_the_incremental_reader_builds_the_tree_the_fast_path_builds(path: Path) -> None:
    data = path.read_bytes()
    fast = parse_xml(data, max_depth=64)
    for chunk in (1, 13, 4096):
        slow = IncrementalParser(SMALL, None).parse(_chunked(data, chunk))
        assert etree.tostring(slow, method="c14n") == etree.tostring(fast, method="c14n")


def _text(n: int) -> bytes:
    return base64_text(pdf_content(n))


# (name, body, declared Content-Length ("" = true length, None = chunked), refusal or None, bytes the
#  client sends before it waits for the answer)
READER_CASES: list[tuple[str, bytes, str | None, str | None, int]] = [
    ("small body: fast path", register_case().join(), "", None, 10**9),
    (
        "two attachments at the size cap",
        register_case(attachments=2, text=SMALL_TEXT).join(),
        "",
        None,
        10**9,
    ),
    ("chunked, small", register_case().join(), None, None, 10**9),
    ("chunked, large and legal", register_case(attachments=5, text=SMALL_TEXT).join(), None, None, 10**9),
    (
        "Content-Length above the largest of any contract: not a byte read",
        register_case().join(),
        str(SMALL.largest_body + 1),
        "exceeds the largest request the contracts allow",
        0,
    ),
    (
        "Content-Length above the largest RegisterCase: refused at its Body element",
        register_case(attachments=5, text=SMALL_TEXT).join(),
        str(SMALL.describe()["RegisterCase"] + 1),
        "exceeds the largest RegisterCase request",
        2 * CHUNK,
    ),
    (
        "a sixth attachment",
        register_case(attachments=6, text=SMALL_TEXT).join(),
        "",
        "RegisterCase allows at most 5 attachment elements",
        10**9,
    ),
    (
        "an attachment far above the cap: refused while it is read (chunked)",
        register_case(attachments=1, text=_text(3_000_000)).join(),
        None,
        "attachment 1: data of more than",
        base64_text_cap(3_000) + 2 * CHUNK + 16_384,
    ),
    (
        "junk in an extension element, within the largest body",
        register_case(extension=[b"A" * 18_000]).join(),
        "",
        "bytes outside attachment data",
        10**9,
    ),
    (
        "junk in an extension element, chunked",
        register_case(extension=junk_text(4 * MiB)).join(),
        None,
        "bytes outside attachment data",
        16_384 + 2 * CHUNK,
    ),
    (
        "many empty elements in a small body",
        register_case(extension=empty_elements(1_000)).join(),
        "",
        "more than 200 elements",
        10**9,
    ),
    (
        "many empty elements in a large body (chunked)",
        register_case(extension=empty_elements(500_000)).join(),
        None,
        "more than 200 elements",
        2 * CHUNK,
    ),
    (
        "an element inside attachment data",
        register_case(attachments=1, text=SMALL_TEXT + b"<b/>" + SMALL_TEXT * 3).join(),
        "",
        "attachment 1: data must be text only",
        10**9,
    ),
    (
        "nesting deeper than max_depth in a large body",
        register_case(extension=[b"<x:n xmlns:x='urn:x'>" * 70, b"A" * 20_000, b"</x:n>" * 70]).join(),
        "",
        "Element nesting deeper than 64 levels",
        10**9,
    ),
    (
        "DOCTYPE in a large body",
        register_case(attachments=5, text=SMALL_TEXT)
        .join()
        .replace(b"?>", b'?><!DOCTYPE x [<!ENTITY a "b">]>', 1),
        "",
        "DOCTYPE declarations are not allowed",
        CHUNK,
    ),
    (
        "not well-formed, large",
        register_case(attachments=5, text=SMALL_TEXT).join()[:-30],
        "",
        "not well-formed",
        10**9,
    ),
]


@pytest.mark.parametrize(
    ("body", "content_length", "refusal", "most_read"),
    [pytest.param(*case[1:], id=case[0]) for case in READER_CASES],
)
def test_reader(body: bytes, content_length: str | None, refusal: str | None, most_read: int) -> None:
    reader = RequestReader(SMALL, LargeRequestSlots(1, 1000))
    # a client that sends ``most_read`` bytes and then waits for the answer (a read beyond times out)
    stream = PartsStream([body], available=most_read)
    environ: dict[str, Any] = {"wsgi.input": stream}
    if content_length is not None:
        environ["CONTENT_LENGTH"] = content_length or str(len(body))
    with reader.admission() as admission:
        if refusal is None:
            root = reader.read(environ, admission)
            assert etree.QName(root).localname == "Envelope"
        else:
            with pytest.raises(InvalidRequestError, match=refusal):
                reader.read(environ, admission)
        assert admission.held == (len(body) > SMALL.envelope_bytes and stream.consumed > 0)


# -- large-request slots ---------------------------------------------------------------------------------
def test_a_large_request_without_a_free_slot_is_answered_vp009_within_the_wait() -> None:
    slots = LargeRequestSlots(1, wait_ms=200)
    with slots.admission() as first:
        first.take()
        first.take()  # idempotent: one request holds at most one slot
        with slots.admission() as second:
            started = time.monotonic()
            with pytest.raises(ServerFault) as info:
                second.take()
            waited = time.monotonic() - started
            assert not second.held
    assert info.value.platform_code == "VP009"
    assert info.value.retryable
    assert "1 per process" in info.value.message
    assert waited < 20  # bounded (the wait is 0.2 s; generous for a shared machine)
    with slots.admission() as third:
        third.take()  # released on exit of the first
        assert third.held


def test_a_slot_frees_while_another_waits() -> None:
    slots = LargeRequestSlots(1, wait_ms=20_000)
    holder = slots.admission()
    holder.take()
    got = threading.Event()

    def wait_for_slot() -> None:
        with slots.admission() as waiting:
            waiting.take()
            got.set()

    thread = threading.Thread(target=wait_for_slot)
    thread.start()
    time.sleep(0.1)
    assert not got.is_set()
    holder.release()
    thread.join(timeout=20)
    assert got.is_set()


# -- real-size requests through the application ----------------------------------------------------------
@functools.cache
def _attachment_text(size: int, width: int = 76, newline: bytes = b"\n") -> bytes:
    return base64_text(pdf_content(size), width=width, newline=newline)


def _small_attachment() -> bytes:
    return _attachment_text(1_000)


@dataclass(frozen=True)
class Case:
    build: Callable[[str], Request]  # given the caseId of the setup case
    expect: str  # "OK", "ERROR/<subCode>" or a platform code
    reason: str = ""  # part of the faultstring (the limit it names)
    chunked: bool = False
    setup: bool = False  # register a small case first (UpdateCase needs one)
    declared_length: int | None = None
    #: bytes of the body sent before the client waits for the answer (None: all of it)
    sent: int | None = None


TEXT_CAP = base64_text_cap(20 * MiB)
SIZE_CASES: dict[str, Case] = {
    "RegisterCase with 5 attachments of 20 MiB": Case(
        lambda _: register_case(attachments=5, text=_attachment_text(20 * MiB)), "OK"
    ),
    "UpdateCase with 10 attachments of 20 MiB (CRLF every 64), chunked": Case(
        lambda case: update_case(case, attachments=10, text=_attachment_text(20 * MiB, 64, b"\r\n")),
        "OK",
        chunked=True,
        setup=True,
    ),
    "RegisterCase with 6 attachments": Case(
        lambda _: register_case(attachments=6, text=_small_attachment()), "VP015", "does not validate"
    ),
    "UpdateCase with 11 attachments": Case(
        lambda case: update_case(case, attachments=11, text=_small_attachment()),
        "VP015",
        "does not validate",
        setup=True,
    ),
    "RegisterCase with 6 attachments of 20 MiB": Case(
        lambda _: register_case(attachments=6, text=_attachment_text(20 * MiB)),
        "VP015",
        "exceeds the largest RegisterCase request: 145227786 bytes (5 attachments of 20971520 bytes",
        sent=2 * CHUNK,
    ),
    "an attachment of 20 MiB and one byte": Case(
        lambda _: register_case(attachments=1, text=_attachment_text(20 * MiB + 1)),
        "ERROR/ATTACHMENT_TOO_LARGE",
    ),
    "an attachment of 30 MB": Case(
        lambda _: register_case(attachments=1, text=_attachment_text(30_000_000)),
        "VP015",
        f"attachment 1: data of more than {TEXT_CAP} characters, larger than the 20971520 bytes",
        sent=TEXT_CAP + 1 * MiB + 2 * CHUNK,
    ),
    "32 MiB in an extension element": Case(
        lambda _: register_case(extension=junk_text(32 * MiB)),
        "VP015",
        "more than 1048576 bytes outside attachment data (soap.max_envelope_bytes)",
        sent=1 * MiB + 2 * CHUNK,
    ),
    "32 MiB in an extension element, chunked": Case(
        lambda _: register_case(extension=junk_text(32 * MiB)),
        "VP015",
        "more than 1048576 bytes outside attachment data",
        chunked=True,
        sent=1 * MiB + 2 * CHUNK,
    ),
    "8 million empty elements in an extension element": Case(
        lambda _: register_case(extension=empty_elements(8_000_000)),
        "VP015",
        "more than 10000 elements (soap.max_elements)",
        sent=2 * CHUNK,
    ),
    "a Content-Length above the largest legal body": Case(
        lambda _: register_case(),
        "VP015",
        "exceeds the largest request the contracts allow: 289406996 bytes (UpdateCase with 10 attachments",
        declared_length=289_406_997,
        sent=0,
    ),
}


@pytest.fixture
def default_app(db_url: str, tmp_path: Path) -> Iterator[tuple[SoapApp, Engine]]:
    """The application with the default limits and the hostile corpus' catalogue."""
    env = {"GATEWAY_DATABASE_URL": db_url, "GATEWAY_ROUTING_SNAPSHOT_FILE": str(tmp_path / "snapshot.json")}
    config = load_config(None, env=env)
    engine = make_engine(db_url, pool_size=1)
    upgrade(engine)
    store = CatalogueStore(engine)
    store.replace_draft(Catalogue.from_dict(CATALOGUE), "size-limits")
    store.publish("size-limits", "routes and permissions of the hostile corpus")
    app = create_app(config, start_routing=False)
    app.identity = _FixedIdentity()  # type: ignore[assignment]
    try:
        yield app, engine
    finally:
        app.close()
        engine.dispose()


def _post(
    app: SoapApp, request: Request, *, chunked: bool, declared: int | None, sent: int | None = None
) -> tuple[int, bytes, int]:
    stream = request.stream(sent)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/complaintsandfeedback/RegisterCase/1/rivtabp21",
        "CONTENT_TYPE": "text/xml; charset=utf-8",
        "wsgi.input": stream,
    }
    if not chunked:
        environ["CONTENT_LENGTH"] = str(declared if declared is not None else request.length)
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer["status"] = status

    data = b"".join(app(environ, start_response))
    return int(answer["status"].split()[0]), data, stream.consumed


@pytest.mark.parametrize("case", [pytest.param(c, id=name) for name, c in SIZE_CASES.items()])
def test_real_size_requests(case: Case, default_app: tuple[SoapApp, Engine]) -> None:
    app, engine = default_app
    case_id = "SIZE-SETUP-0001"
    if case.setup:
        status, data, _ = _post(app, register_case(case_id=case_id), chunked=False, declared=None)
        assert status == 200
        assert _result(data)["resultCode"] == "OK"
    before = _row_counts(engine)
    request = case.build(case_id)
    status, data, consumed = _post(
        app, request, chunked=case.chunked, declared=case.declared_length, sent=case.sent
    )
    after = _row_counts(engine)
    if case.expect == "OK":
        assert status == 200, data[-600:]
        assert _result(data)["resultCode"] == "OK"
        assert after["inbox_message"] == before["inbox_message"] + 1
        assert consumed == request.length
        return
    if case.expect.startswith("ERROR/"):
        assert status == 200
        result = _result(data)
        assert (result["resultCode"], result["subCode"]) == ("ERROR", case.expect.partition("/")[2])
    else:
        _check_fault(data, {"http": 500, "faultcode": "soap:Client", "platform": case.expect})
        assert case.reason in etree.fromstring(data).findtext(".//faultstring", "")
    assert after == before  # nothing stored anywhere
