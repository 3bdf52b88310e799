"""The case list's filters, read from a query string (the page's form and the API share the rules)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from gateway.web import texts

__all__ = ["API_NAMES", "PAGE_NAMES", "CaseFilters", "parse_filters"]

MAX_PER_PAGE = 100
MAX_WAITING_DAYS = 3650
MAX_PAGE = 100_000

#: query parameter of each filter, on the page (short, Swedish-free) and in the API (as in the OpenAPI)
PAGE_NAMES = {
    "unit": "unit",
    "status": "status",
    "category": "category",
    "received_from": "from",
    "received_to": "to",
    "waiting_days": "waiting",
    "case_id": "case",
    "page": "page",
    "per_page": "per_page",
}
API_NAMES = {
    "unit": "unit",
    "status": "status",
    "category": "category",
    "received_from": "receivedFrom",
    "received_to": "receivedTo",
    "waiting_days": "waitingDays",
    "case_id": "caseId",
    "page": "page",
    "per_page": "perPage",
}


@dataclass(frozen=True)
class CaseFilters:
    unit: str | None = None
    status: str | None = None
    category: str | None = None
    received_from: date | None = None
    received_to: date | None = None
    waiting_days: int | None = None
    case_id: str | None = None
    page: int = 1
    per_page: int = 25

    def as_kwargs(self) -> dict[str, Any]:
        return asdict(self)

    def active(self) -> bool:
        return any(v is not None for k, v in asdict(self).items() if k not in ("page", "per_page"))


def _integer(value: str, low: int, high: int) -> int | None:
    value = value.strip()
    if not value.isdigit() or len(value) > 9:
        return None
    number = int(value)
    return number if low <= number <= high else None


def parse_filters(
    args: Mapping[str, str], names: Mapping[str, str], *, strict: bool = False
) -> tuple[CaseFilters, dict[str, str]]:
    """The filters, and the problems by field (Swedish, for the page's error summary).

    The page's form sends every field, empty ones meaning "any", and a person may type spaces; the API
    (``strict``) takes a parameter only as documented: present means a value, exactly as written.
    """
    problems: dict[str, str] = {}
    found: dict[str, Any] = {}
    if strict:
        for field, name in names.items():
            value = args.get(name)
            if value is not None and (not value or value != value.strip()):
                problems[field] = "Värdet är tomt eller har mellanslag före eller efter."

    def raw(field: str) -> str:
        return (args.get(names[field]) or "").strip()

    if raw("unit"):
        if len(raw("unit")) > 64:
            problems["unit"] = "Enheten finns inte."
        else:
            found["unit"] = raw("unit")
    for field, table, message in (
        ("status", texts.STATUSES, "Välj en status ur listan."),
        ("category", texts.CATEGORIES, "Välj klagomål eller synpunkt."),
    ):
        if raw(field):
            if raw(field) in table:
                found[field] = raw(field)
            else:
                problems[field] = message
    for field in ("received_from", "received_to"):
        if raw(field):
            try:
                found[field] = date.fromisoformat(raw(field))
            except ValueError:
                problems[field] = "Skriv datumet som ÅÅÅÅ-MM-DD, till exempel 2026-03-01."
    if "received_from" in found and "received_to" in found and found["received_from"] > found["received_to"]:
        problems["received_to"] = "Slutdatumet kan inte vara före startdatumet."
    if raw("waiting_days"):
        days = _integer(raw("waiting_days"), 0, MAX_WAITING_DAYS)
        if days is None:
            problems["waiting_days"] = f"Skriv ett antal dagar mellan 0 och {MAX_WAITING_DAYS}."
        else:
            found["waiting_days"] = days
    if raw("case_id"):
        if len(raw("case_id")) > 64:
            problems["case_id"] = "Ett ärende-id är högst 64 tecken."
        else:
            found["case_id"] = raw("case_id")
    if raw("page"):
        number = _integer(raw("page"), 1, MAX_PAGE)
        if number is None:
            problems["page"] = "Sidnumret finns inte."
        else:
            found["page"] = number
    if raw("per_page"):
        number = _integer(raw("per_page"), 1, MAX_PER_PAGE)
        if number is None:
            problems["per_page"] = f"Visa mellan 1 och {MAX_PER_PAGE} ärenden per sida."
        else:
            found["per_page"] = number
    return CaseFilters(**found), problems
