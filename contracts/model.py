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
    "PersonId",
    "Result",
    "Unit",
    "parse_date",
    "parse_timestamp",
]

CAF_PREFIX = "urn:riv-application:supportprocess:logistics:complaintsandfeedback"
CAF_CORE_NS = f"{CAF_PREFIX}:1"


class Reader:
    """Small helper to read child elements of one namespace from a validated element."""

    __slots__ = ("ns",)

    def __init__(self, namespace: str) -> None:
        self.ns = "{" + namespace + "}"

    def child(self, el: etree._Element, name: str) -> etree._Element | None:
        return el.find(self.ns + name)

    def children(self, el: etree._Element, name: str) -> list[etree._Element]:
        found: list[etree._Element] = el.findall(self.ns + name)
        return found

    def text(self, el: etree._Element, name: str) -> str | None:
        found = el.find(self.ns + name)
        return None if found is None else (found.text or "")

    def req(self, el: etree._Element, name: str) -> str:
        value = self.text(el, name)
        if value is None:  # pragma: no cover - the schema guarantees presence
            raise ValueError(f"missing {name}")
        return value


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
        return cls(core.req(el, "code"), core.req(el, "codeSystem"), core.text(el, "displayName"))


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
        return cls(
            core.req(el, "unitId"),
            core.text(el, "unitName"),
            core.text(el, "careProviderId"),
            core.text(el, "regionCode"),
        )


@dataclass(frozen=True)
class PersonId:
    id: str
    type: str

    @classmethod
    def parse(cls, el: etree._Element) -> PersonId:
        return cls(core.req(el, "id"), core.req(el, "type"))

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
        data = el.find(core.ns + "data")
        assert data is not None
        return cls(core.req(el, "attachmentId"), core.req(el, "fileName"), core.req(el, "mimeType"), data)

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
    return datetime.strptime(value, "%Y%m%d%H%M%S")


def parse_date(value: str) -> date:
    return datetime.strptime(value, "%Y%m%d").date()
