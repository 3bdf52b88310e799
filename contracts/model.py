"""Typed request objects parsed from validated XML, and response elements built with lxml.

The XSD files are the contract; these classes are a convenient, read-only view of a request that has
already passed schema validation, so parsing never has to re-check cardinality or patterns. One module
per contract keeps mapping code in one place when the official files arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from lxml import etree

__all__ = [
    "CAF_CORE_NS",
    "CV",
    "Attachment",
    "Fields",
    "PersonId",
    "Result",
    "Unit",
    "parse_date",
    "parse_timestamp",
]

CAF_PREFIX = "urn:riv-application:supportprocess:logistics:complaintsandfeedback"
CAF_CORE_NS = f"{CAF_PREFIX}:1"


class Fields:
    """The children of one element in one namespace, by local name (the first of each name).

    Built in one pass over the children: a validated request is read field by field, and one dictionary
    lookup per field is several times cheaper than an ElementPath search per field. Children in other
    namespaces (RIV-TA ``xs:any`` extensions) are not included.
    """

    __slots__ = ("_by_name",)

    def __init__(self, el: etree._Element, ns: str) -> None:
        by_name: dict[str, etree._Element] = {}
        cut = len(ns)
        for child in el:
            tag = child.tag
            if isinstance(tag, str) and tag.startswith(ns):
                by_name.setdefault(tag[cut:], child)
        self._by_name = by_name

    def child(self, name: str) -> etree._Element | None:
        return self._by_name.get(name)

    def text(self, name: str) -> str | None:
        found = self._by_name.get(name)
        return None if found is None else (found.text or "")

    def req(self, name: str) -> str:
        found = self._by_name.get(name)
        if found is None:  # pragma: no cover - the schema guarantees presence
            raise ValueError(f"missing {name}")
        return found.text or ""


class Reader:
    """Small helper to read child elements of one namespace from a validated element."""

    __slots__ = ("ns",)

    def __init__(self, namespace: str) -> None:
        self.ns = "{" + namespace + "}"

    def fields(self, el: etree._Element) -> Fields:
        return Fields(el, self.ns)

    def children(self, el: etree._Element, name: str) -> list[etree._Element]:
        """Every child of that name (for repeated elements; single ones are read through ``fields``)."""
        found: list[etree._Element] = el.findall(self.ns + name)
        return found


# Elements inside the core types are in the namespace of the document that declares them: with
# elementFormDefault="qualified", local elements of core types are in the core namespace.
core = Reader(CAF_CORE_NS)


@dataclass(frozen=True)
class CV:
    code: str
    code_system: str
    display_name: str | None = None

    @classmethod
    def parse(cls, el: etree._Element | None) -> CV | None:
        if el is None:
            return None
        f = core.fields(el)
        return cls(f.req("code"), f.req("codeSystem"), f.text("displayName"))


@dataclass(frozen=True)
class Unit:
    unit_id: str
    unit_name: str | None = None
    care_provider_id: str | None = None
    region_code: str | None = None

    @classmethod
    def parse(cls, el: etree._Element | None) -> Unit | None:
        if el is None:
            return None
        f = core.fields(el)
        return cls(f.req("unitId"), f.text("unitName"), f.text("careProviderId"), f.text("regionCode"))


@dataclass(frozen=True)
class PersonId:
    id: str
    type: str

    @classmethod
    def parse(cls, el: etree._Element) -> PersonId:
        f = core.fields(el)
        return cls(f.req("id"), f.req("type"))

    def __repr__(self) -> str:  # never show a personal identity number in logs or tracebacks
        return f"PersonId(type={self.type!r}, id=<redacted>)"


@dataclass(frozen=True)
class Attachment:
    attachment_id: str
    file_name: str
    mime_type: str
    data_element: etree._Element

    @classmethod
    def parse(cls, el: etree._Element) -> Attachment:
        f = core.fields(el)
        data = f.child("data")
        assert data is not None
        return cls(f.req("attachmentId"), f.req("fileName"), f.req("mimeType"), data)

    def decoded_size(self) -> int:
        """Size of the decoded content, computed without decoding it."""
        text = "".join((self.data_element.text or "").split())
        return len(text) * 3 // 4 - text[-2:].count("=")


@dataclass(frozen=True)
class Result:
    """ResultType: ``resultCode``, ``errorCode?``, ``subCode?``, ``logId``, ``message?``."""

    result_code: str
    log_id: str
    error_code: str | None = None
    sub_code: str | None = None
    message: str | None = None

    @classmethod
    def ok(cls, log_id: str, message: str | None = None) -> Result:
        return cls("OK", log_id, message=message)

    @classmethod
    def error(cls, error_code: str, log_id: str, message: str, sub_code: str | None = None) -> Result:
        return cls("ERROR", log_id, error_code=error_code, sub_code=sub_code, message=message)

    def element(self, parent: etree._Element) -> etree._Element:
        """Append ``result`` (in the parent's namespace, as the responder schemas declare it)."""
        result = etree.SubElement(parent, f"{{{etree.QName(parent).namespace}}}result")
        etree.SubElement(result, core.ns + "resultCode").text = self.result_code
        if self.error_code:
            etree.SubElement(result, core.ns + "errorCode").text = self.error_code
        if self.sub_code:
            etree.SubElement(result, core.ns + "subCode").text = self.sub_code
        etree.SubElement(result, core.ns + "logId").text = self.log_id
        if self.message:
            etree.SubElement(result, core.ns + "message").text = self.message
        return result


def parse_timestamp(value: str) -> datetime:
    """``YYYYMMDDhhmmss`` (Swedish local time, naive); raises ValueError for impossible instants."""
    if len(value) == 14 and value.isascii() and value.isdigit():  # the schema's form: no strptime needed
        return datetime(
            int(value[0:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[8:10]),
            int(value[10:12]),
            int(value[12:14]),
        )
    return datetime.strptime(value, "%Y%m%d%H%M%S")


def parse_date(value: str) -> date:
    """``YYYYMMDD``; raises ValueError for impossible dates."""
    if len(value) == 8 and value.isascii() and value.isdigit():
        return date(int(value[0:4]), int(value[4:6]), int(value[6:8]))
    return datetime.strptime(value, "%Y%m%d").date()
