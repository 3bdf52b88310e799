"""schemathesis against ``/api/v1/openapi.json``, in-process on the WSGI app with the real desk (SQLite)
and a test identity: no server error, every answer's status, content type, headers and body as documented.

The examples in the document name a case this fixture registers (with an attachment), so the generated
requests reach real cases as well as unknown ones. Examples per operation are bounded (``max_examples``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from contracts import load_code_lists
from gateway.web import create_web_app
from gateway.web.openapi import EXAMPLE_CASE_ID, OPERATIONS
from tests.unit.deskkit import CORE, DESK_UNIT, HANDLER, Gateway, board_payload, register_payload
from tests.unit.web_fakes import PNG, FixedIdentity

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture
def api_schema(tmp_path: Path) -> Iterator[Any]:
    gw = Gateway(f"sqlite:///{tmp_path / 'gateway.db'}", tmp_path)
    payload = register_payload(EXAMPLE_CASE_ID)
    attachment = payload.makeelement(f"{{{payload.nsmap[None]}}}attachment")
    payload.append(attachment)
    for name, value in (
        ("attachmentId", "a1"),
        ("fileName", "bild.png"),
        ("mimeType", "image/png"),
        ("data", base64.b64encode(PNG).decode()),
    ):
        attachment.append(attachment.makeelement(f"{CORE}{name}"))
        attachment[-1].text = value
    gw.call(payload, DESK_UNIT)
    gw.call(board_payload("1177-CASE-0002"), "SE2321000016-PN01")
    gw.register("1177-CASE-0003")
    gw.desk.grant("SE2321000016-ADM1", HANDLER, "SE2321000016-R001", "handler")
    app = create_web_app(
        gw.config,
        gw.desk,
        FixedIdentity(HANDLER),
        secret_key=b"s" * 32,
        code_lists=load_code_lists(),
        unit_choices=lambda: [(DESK_UNIT, "Vårdcentralen Desk")],
    )
    yield schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    gw.close()


VARIANTS = [
    pytest.param(GenerationMode.POSITIVE, True, id="valid-example-case"),
    pytest.param(GenerationMode.POSITIVE, False, id="valid"),
    pytest.param(GenerationMode.NEGATIVE, False, id="invalid"),
]


@pytest.mark.parametrize(("method", "path"), [(op.method.upper(), op.path) for op in OPERATIONS])
@pytest.mark.parametrize(("mode", "example_case"), VARIANTS)
def test_the_api_answers_as_documented(
    api_schema: Any, method: str, path: str, mode: GenerationMode, example_case: bool
) -> None:
    described = next(op for op in OPERATIONS if op.path == path and op.method.upper() == method)
    if example_case and "{caseId}" not in path:
        pytest.skip("no case in this operation's address: the valid variant covers it")
    if mode is GenerationMode.NEGATIVE and not (described.parameters or described.body):
        pytest.skip("takes no input, so nothing invalid can be sent")
    operation = api_schema[path][method]
    fixed = {"caseId": EXAMPLE_CASE_ID} if example_case and "{caseId}" in path else None
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)

    @given(case=strategy)
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def run(case: Any) -> None:
        response = case.call()
        case.validate_response(response, checks=CHECKS if mode is GenerationMode.NEGATIVE else CHECKS[:-1])

    run()
