"""Payload validation against the contract schemas, with one ``lxml.etree.XMLSchema`` per thread.

A schema object shared between threads answers valid/invalid correctly but garbles its error log under load,
so every thread builds its own (about 0.4 ms, once). Building is serialised: libxml2's schema parser is not
safe to run in two threads at once (concurrent builds fail with XMLSchemaParseError, which answered the first
burst of requests after a start with server faults). Error messages returned here describe the schema rule
that failed and the element path; they never echo element text, which may be health data, nor the name of
an element or a namespace prefix that the contract does not declare (a caller's extension element may be
named anything): such an element is "an extension element" (another namespace) or "an element the contract
does not declare" (the contract's namespace), and a path shows positions only (``/*/*[2]``).
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from contracts.registry import Contract

__all__ = ["SchemaValidator"]

_BUILDING = threading.Lock()  # one schema build at a time in the process, whichever validator asks

_XS = "{http://www.w3.org/2001/XMLSchema}"
_QUALIFIED = re.compile(r"##other\{[^{}]*\}\*|\{[^{}]*\}[^\s'(),{}]+")
_PATH_STEP = re.compile(r"\*(\[[0-9]+\])?")
_UNKNOWN = "an element the contract does not declare"
_FOREIGN = "an extension element"
_NO_NAMESPACE = "an element without a namespace"
# Content-model errors say which element is wrong and which were expected; of their libxml2 text only these
# phrases are kept, and of the names only the contract's own (an element name is the caller's choice and may
# be anything, a personal identity number included). Every other error may quote the offending value, which
# may be health data: those are rewritten from the error type alone.
_STRUCTURAL = frozenset(
    {
        "SCHEMAV_ELEMENT_CONTENT",
        "SCHEMAV_CVC_COMPLEX_TYPE_2_3",
        "SCHEMAV_CVC_COMPLEX_TYPE_2_4",
        "SCHEMAV_CVC_ELT_1",
    }
)
_STRUCTURAL_PHRASES = (
    "This element is not expected.",
    "Missing child element(s).",
    "Character content other than whitespace is not allowed because the content type is 'element-only'.",
    "No matching global declaration available for the validation root.",
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


@dataclass(frozen=True)
class _Names:
    """What a contract's schema files declare: the only names an error message may repeat."""

    namespaces: frozenset[str]
    elements: frozenset[str]  # Clark notation


@functools.cache
def _declared(schema_file: Path) -> _Names:
    namespaces: set[str] = set()
    elements: set[str] = set()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    pending, seen = [schema_file.resolve()], set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        root = etree.parse(str(path), parser).getroot()
        tns = root.get("targetNamespace", "")
        namespaces.add(tns)
        elements.update(f"{{{tns}}}{el.get('name')}" for el in root.iter(f"{_XS}element") if el.get("name"))
        for tag in ("import", "include"):
            for ref in root.iter(f"{_XS}{tag}"):
                location = ref.get("schemaLocation")
                if location:
                    pending.append((path.parent / location).resolve())
    return _Names(frozenset(namespaces), frozenset(elements))


def _name(clark: str, names: _Names) -> str:
    if clark.startswith("##other{"):  # a wildcard of the schema: ##other{its own namespace}*
        return clark if clark[len("##other{") : -len("}*")] in names.namespaces else _FOREIGN
    if clark in names.elements:
        return f"'{clark}'"
    namespace = clark[1:].partition("}")[0] if clark.startswith("{") else ""
    return _UNKNOWN if namespace in names.namespaces else _FOREIGN


def _element_of(message: str, names: _Names) -> str:
    """The element the message is about, when it is one of the contract's; else what kind it is."""
    if message.startswith("Element '"):
        for clark in names.elements:  # only errors reach here, and a contract declares a few hundred names
            if message.startswith(f"Element '{clark}'"):
                return f"Element '{clark}'"
        inner = message[len("Element '") :]
        if inner.startswith("{"):
            namespace = inner[1:].partition("}")[0]
            kind = _UNKNOWN if namespace in names.namespaces else _FOREIGN
        else:
            kind = _NO_NAMESPACE  # never the contract's: its schemas qualify every element
        return kind[0].upper() + kind[1:]
    return "A value"


def _path(path: str | None) -> str:
    """The element path with positions only: a step such as ``x:name`` quotes a caller's prefix and name."""
    if not path:
        return ""
    steps = path.split("/")
    return "/".join(step if not step or _PATH_STEP.fullmatch(step) else "*" for step in steps)


def _describe(type_name: str, message: str, names: _Names) -> str:
    where = _element_of(message, names)
    if type_name in _STRUCTURAL:
        phrase = next((p for p in _STRUCTURAL_PHRASES if p in message), "This element is not valid here.")
        text = f"{where}: {phrase}"
        _, marker, expected = message.partition("Expected is")
        if marker:
            kept = [_name(token, names) for token in _QUALIFIED.findall(expected)]
            shown = list(dict.fromkeys(k.strip("'") for k in kept if k.startswith(("'", "##"))))
            if shown:
                text += f" Expected is {'one of ' if len(kept) > 1 else ''}( {', '.join(shown)} )."
        return text
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
        names = _declared(contract.schema_file)
        messages = []
        for error in schema.error_log:
            text = _describe(error.type_name, error.message, names)
            path = _path(error.path)
            messages.append(f"{path}: {text}" if path else text)
        return messages or ["schema validation failed"]
