"""Per-thread schema validators built at the same moment: the first burst of requests after a start.

libxml2 is not safe against two schema builds at once: when the first builds of a process overlap, that
process can build no schema any more (XMLSchemaParseError on every later build; about one fresh process in
seven, seen as a gateway worker answering requests with server faults). Builds are therefore serialised
across the process, while each thread still validates with its own schema objects.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from lxml import etree

from contracts import SchemaValidator, load_registry
from tests.conftest import ROOT


def test_schema_builds_never_overlap_and_every_thread_gets_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    build = etree.XMLSchema
    state = {"running": 0, "most": 0}
    guard = threading.Lock()

    def watched(*args: Any, **kwargs: Any) -> etree.XMLSchema:
        with guard:
            state["running"] += 1
            state["most"] = max(state["most"], state["running"])
        time.sleep(0.005)  # widen the window in which an overlap would show
        try:
            return build(*args, **kwargs)
        finally:
            with guard:
                state["running"] -= 1

    monkeypatch.setattr(etree, "XMLSchema", watched)
    registry = load_registry()
    register = registry.by_operation("RegisterCase")
    payload = etree.parse(str(ROOT / "examples" / "register-case.xml")).getroot()
    validator = SchemaValidator()
    start = threading.Barrier(8)
    outcomes: list[object] = []
    schemas: list[etree.XMLSchema] = []

    def first_requests() -> None:
        start.wait()
        try:
            for contract in registry.contracts():
                validator.errors(contract, payload)
            result: object = validator.errors(register, payload)
            schemas.append(validator._schema(register))
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            result = exc
        outcomes.append(result)

    threads = [threading.Thread(target=first_requests) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [[]] * 8
    assert state["most"] == 1
    assert len({id(schema) for schema in schemas}) == 8
