"""Payload validation against the contract schemas, with one ``lxml.etree.XMLSchema`` per thread.

A schema object shared between threads answers valid/invalid correctly but garbles its error log under load,
so every thread builds its own (about 0.4 ms, once). Building is serialised: libxml2's schema parser is not
safe to run in two threads at once (concurrent builds fail with XMLSchemaParseError, which answered the first
burst of requests after a start with server faults). Error messages returned here describe the schema rule
that failed and the element path; they never echo element text, which may be health data.
"""

from __future__ import annotations

import re
import threading

from lxml import etree

from contracts.registry import Contract

__all__ = ["SchemaValidator"]

_BUILDING = threading.Lock()  # one schema build at a time in the process, whichever validator asks

_ELEMENT = re.compile(r"^Element '([^']+)'")
# Content-model errors name elements only (XML names cannot hold an apostrophe or a value), so their
# libxml2 text is passed on. Every other error may quote the offending value, which may be health data:
# those are rewritten from the error type alone.
_STRUCTURAL = frozenset(
    {
        "SCHEMAV_ELEMENT_CONTENT",
        "SCHEMAV_CVC_COMPLEX_TYPE_2_3",
        "SCHEMAV_CVC_COMPLEX_TYPE_2_4",
        "SCHEMAV_CVC_ELT_1",
    }
)
_PHRASES = (
    ("ENUMERATION", "is not one of the allowed values"),
    ("PATTERN", "does not have the required format"),
    ("MAXLENGTH", "is too long"),
    ("MINLENGTH", "is too short"),
    ("LENGTH", "has the wrong length"),
    ("MININCLUSIVE", "is below the allowed minimum"),
    ("MAXINCLUSIVE", "is above the allowed maximum"),
    ("DATATYPE", "is not a valid value of its type"),
)


def _describe(type_name: str, message: str) -> str:
    if type_name in _STRUCTURAL:
        return message.strip()
    match = _ELEMENT.match(message)
    where = f"Element '{match.group(1)}'" if match else "A value"
    phrase = next((text for key, text in _PHRASES if key in type_name), "is not valid here")
    return f"{where}: value {phrase}"


class SchemaValidator:
    def __init__(self) -> None:
        self._local = threading.local()

    def _schema(self, contract: Contract) -> etree.XMLSchema:
        cache: dict[str, etree.XMLSchema] | None = getattr(self._local, "schemas", None)
        if cache is None:
            cache = self._local.schemas = {}
        schema = cache.get(contract.operation)
        if schema is None:
            parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
            with _BUILDING:
                schema = etree.XMLSchema(etree.parse(str(contract.schema_file), parser))
            cache[contract.operation] = schema
        return schema

    def errors(self, contract: Contract, payload: etree._Element) -> list[str]:
        """An empty list when ``payload`` is valid; otherwise short, value-free messages."""
        schema = self._schema(contract)
        if schema.validate(payload):
            return []
        messages = []
        for error in schema.error_log:
            text = _describe(error.type_name, error.message)
            messages.append(f"{error.path}: {text}" if error.path else text)
        return messages or ["schema validation failed"]
