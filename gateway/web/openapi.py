"""The JSON API's one table: every operation (method, path, parameters, body, answers) and its schemas.

``gateway.web.api`` registers its views from ``OPERATIONS`` and ``document()`` renders the same table as the
OpenAPI 3.1 document served at ``/api/v1/openapi.json``, so the two cannot drift apart; schemathesis checks
the answers against it (tests/unit/test_web_schemathesis.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway import __version__
from gateway.desk import ACTION_KINDS, ROLES
from gateway.web import texts
from gateway.web.actions import ALLOWED_TYPES, CODE_FIELDS, MAX_ATTACHMENTS, MAX_TEXT
from gateway.web.filters import MAX_PAGE, MAX_PER_PAGE, MAX_WAITING_DAYS

__all__ = ["EXAMPLE_CASE_ID", "OPERATIONS", "Operation", "document", "flask_rule"]

#: the case the document's examples name (the example RegisterCase's caseId)
EXAMPLE_CASE_ID = "1177-CASE-0001"

_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_TIME = {"type": "string", "format": "date-time"}
_OPT_TIME = {"type": ["string", "null"], "format": "date-time"}
_OPT_TEXT = {"type": ["string", "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: Mapping[str, Any], required: tuple[str, ...] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": list(properties if required is None else required),
        "additionalProperties": False,
    }


SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {
            "error": _object(
                {
                    "status": {"type": "integer"},
                    "code": {"type": "string", "description": "stable, for programs (e.g. CONFLICT)"},
                    "subCode": {"type": "string", "description": "the desk rule that refused (422)"},
                    "message": {
                        "type": "string",
                        "description": "the reason in Swedish, as the pages say it",
                    },
                    "logId": {"type": "string", "description": "repeated in the gateway's log line"},
                },
                required=("status", "code", "message", "logId"),
            )
        }
    ),
    "Grant": _object(
        {
            "person": {"type": "string"},
            "scope": {"type": "string", "description": "unit, care provider or region HSA-id, or SE"},
            "role": {"type": "string", "enum": list(ROLES)},
            "grantedBy": {"type": "string"},
            "grantedAt": _TIME,
        }
    ),
    "Unit": _object({"hsaId": {"type": "string"}, "name": {"type": "string"}}),
    "Me": _object(
        {
            "person": {"type": "string", "description": "HSA-id from the client certificate"},
            "grants": {"type": "array", "items": _ref("Grant")},
            "units": {"type": "array", "items": _ref("Unit")},
        }
    ),
    "CaseSummary": _object(
        {
            "caseId": {"type": "string"},
            "category": {"type": "string"},
            "status": {"type": "string"},
            "handlingUnit": {"type": "string"},
            "unitName": {"type": "string"},
            "receivedAt": _TIME,
            "waitingSince": _OPT_TIME,
            "handlerTurn": {"type": "boolean"},
            "subject": {"type": "string"},
            "version": {"type": "integer"},
        }
    ),
    "CasePage": _object(
        {
            "items": {"type": "array", "items": _ref("CaseSummary")},
            "total": {"type": "integer", "minimum": 0},
            "page": {"type": "integer", "minimum": 1},
            "perPage": {"type": "integer", "minimum": 1},
        }
    ),
    "AttachmentRef": _object(
        {
            "ref": {"type": "string"},
            "fileName": {"type": "string"},
            "mimeType": {"type": "string"},
            "size": {"type": "integer", "minimum": 0},
            "direction": {"type": "string", "enum": ["from-citizen", "to-citizen"]},
        }
    ),
    "TimelineEvent": _object(
        {
            "at": _TIME,
            "direction": {"type": "string", "enum": ["in", "out", "desk"]},
            "kind": {"type": "string"},
            "actor": {"type": "string"},
            "text": _OPT_TEXT,
            "standardAnswer": _OPT_TEXT,
            "attachments": {"type": "array", "items": _ref("AttachmentRef")},
            "delivery": _OPT_TEXT,
        }
    ),
    "CodeText": _object({"code": {"type": "string"}, "text": {"type": "string"}}),
    "Person": _object(
        {
            "givenName": _OPT_TEXT,
            "familyName": _OPT_TEXT,
            "personId": _OPT_TEXT,
            "phone": _OPT_TEXT,
            "email": _OPT_TEXT,
        }
    ),
    "Case": _object(
        {
            "caseId": {"type": "string"},
            "category": {"type": "string"},
            "status": {"type": "string"},
            "version": {"type": "integer", "description": "send it back with an action (optimistic locking)"},
            "channel": {"type": "string"},
            "recipientType": {"type": "string"},
            "handlingUnit": {"type": "string"},
            "unitName": {"type": "string"},
            "patientBoard": {"type": "boolean"},
            "locationDescription": _OPT_TEXT,
            "concernedUnit": _OPT_TEXT,
            "concernedUnitName": _OPT_TEXT,
            "eventDate": {"type": "string", "format": "date"},
            "submittedAt": _TIME,
            "receivedAt": _TIME,
            "closedAt": _OPT_TIME,
            "reporterRole": {"type": "string"},
            "reporter": {"oneOf": [_ref("Person"), {"type": "null"}], "description": "handlers only"},
            "subject": {"oneOf": [_ref("Person"), {"type": "null"}]},
            "description": {"type": "string"},
            "codes": {"type": "object", "additionalProperties": _ref("CodeText")},
            "replyWanted": {"type": "boolean"},
            "contactChannel": _OPT_TEXT,
            "attachmentsAllowed": {"type": "boolean"},
            "openQuestion": _OPT_TEXT,
            "handlerTurn": {"type": "boolean"},
            "waitingSince": _OPT_TIME,
            "attachments": {"type": "array", "items": _ref("AttachmentRef")},
            "timeline": {"type": "array", "items": _ref("TimelineEvent")},
            "actions": {"type": "array", "items": {"type": "string", "enum": list(ACTION_KINDS)}},
            "roles": {"type": "array", "items": {"type": "string"}},
        }
    ),
    "StandardAnswer": _object(
        {"code": {"type": "string"}, "displayName": {"type": "string"}, "text": {"type": "string"}}
    ),
    "NewAttachment": _object(
        {
            "fileName": {"type": "string", "minLength": 1, "maxLength": 255},
            "mimeType": {"type": "string", "enum": list(ALLOWED_TYPES)},
            "data": {"type": "string", "contentEncoding": "base64", "description": "at most 20 MB decoded"},
        }
    ),
    "ActionRequest": {
        "type": "object",
        "required": ["kind", "version"],
        "additionalProperties": False,
        "properties": {
            "kind": {"type": "string", "enum": list(ACTION_KINDS)},
            "version": {"type": "integer", "minimum": 1, "description": "the case's version as you read it"},
            "text": {"type": "string", "maxLength": MAX_TEXT},
            "standardAnswer": {"type": "string", "description": "ANSWER: a code of /standard-answers"},
            "attachments": {"type": "array", "maxItems": MAX_ATTACHMENTS, "items": _ref("NewAttachment")},
            "allow": {"type": "boolean", "description": "ALLOW_ATTACHMENTS"},
            "codes": {
                "type": "object",
                "description": "CORRECT_STATISTICS",
                "properties": {f: {"type": "string"} for f in CODE_FIELDS},
                "additionalProperties": False,
            },
            "unit": {"type": "string", "description": "SET_CONCERNED_UNIT: a unit of the HSA tree"},
        },
    },
    "ActionResult": _object({"version": {"type": "integer", "description": "the case's new version"}}),
}

_FILE_TYPES = (*ALLOWED_TYPES, "application/octet-stream")


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    words = {
        400: "the request is not what this document describes",
        401: "no client certificate with an HSA-id",
        403: "the person may not see or do this (audited), or another site caused the request",
        404: "no such case or attachment in the desk",
        409: "the case changed since the given version: read it again",
        413: "the body is too large",
        415: "the body must be application/json",
        422: "the desk refused the action (subCode names the rule)",
    }
    return {str(s): _json("Error", words[s]) for s in (401, 403, *statuses)}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str, description: str, example: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": _ID,
        "description": description,
        "example": example,
    }


_CASE_ID = _path("caseId", "1177's id of the case", EXAMPLE_CASE_ID)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    responses: dict[str, Any]
    parameters: tuple[dict[str, Any], ...] = ()
    body: str | None = None
    tags: tuple[str, ...] = field(default=("desk",))


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "get",
        "/me",
        "me",
        "Who is signed in: the HSA-id, its grants and the units whose cases it may see",
        {"200": _json("Me", "the person"), **_errors()},
    ),
    Operation(
        "get",
        "/cases",
        "list_cases",
        "The desk cases the person may see, newest first, filtered and paged",
        {"200": _json("CasePage", "one page of cases"), **_errors(400)},
        (
            _query("unit", _ID, "HSA-id of one of the person's units"),
            _query("status", {"type": "string", "enum": list(texts.STATUSES)}, "case status"),
            _query("category", {"type": "string", "enum": list(texts.CATEGORIES)}, "case category"),
            _query("receivedFrom", {"type": "string", "format": "date"}, "received on or after (YYYY-MM-DD)"),
            _query("receivedTo", {"type": "string", "format": "date"}, "received on or before (YYYY-MM-DD)"),
            _query(
                "waitingDays",
                {"type": "integer", "minimum": 0, "maximum": MAX_WAITING_DAYS},
                "waiting for the handler longer than this many days",
            ),
            _query("caseId", _ID, "one case by its id"),
            _query("page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, "page number, from 1"),
            _query("perPage", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE}, "cases per page"),
        ),
    ),
    Operation(
        "get",
        "/cases/{caseId}",
        "get_case",
        "One case as filed, its codes in words, attachments, timeline and the actions the person may take",
        {"200": _json("Case", "the case"), **_errors(404)},
        (_CASE_ID,),
    ),
    Operation(
        "get",
        "/cases/{caseId}/attachments/{ref}",
        "get_attachment",
        "One attachment's content, as a download with its declared type",
        {
            "200": {
                "description": "the file (Content-Disposition: attachment)",
                "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in _FILE_TYPES},
            },
            **_errors(404),
        },
        (_CASE_ID, _path("ref", "the attachment's ref from the case", "in-1-1")),
    ),
    Operation(
        "post",
        "/cases/{caseId}/actions",
        "act",
        "Act on the case as read at `version`: one transaction that ends in an UpdateCase to 1177",
        {"200": _json("ActionResult", "done"), **_errors(400, 404, 409, 413, 415, 422)},
        (_CASE_ID,),
        body="ActionRequest",
    ),
    Operation(
        "get",
        "/cases/{caseId}/export",
        "export_case",
        "The case as one ZIP (RegisterCase as received, timeline, attachments); audited",
        {
            "200": {
                "description": "the ZIP (Content-Disposition: attachment)",
                "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            },
            **_errors(404),
        },
        (_CASE_ID,),
    ),
    Operation(
        "get",
        "/standard-answers",
        "standard_answers",
        "The fixed national standard answers (their text is sent as is)",
        {
            "200": {
                "description": "every standard answer",
                "content": {
                    "application/json": {"schema": {"type": "array", "items": _ref("StandardAnswer")}}
                },
            },
            **_errors(),
        },
    ),
    Operation(
        "get",
        "/openapi.json",
        "openapi",
        "This document",
        {
            "200": {
                "description": "OpenAPI 3.1",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            **_errors(),
        },
        tags=("meta",),
    ),
)


def flask_rule(path: str) -> str:
    """``/cases/{caseId}`` as a Flask rule: ``/cases/<case_id>``."""
    return re.sub(
        r"\{(\w+)\}", lambda m: "<" + re.sub(r"(?<!^)([A-Z])", r"_\1", m.group(1)).lower() + ">", path
    )


def document(server_url: str = "/api/v1") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": list(op.tags),
            "responses": op.responses,
        }
        if op.parameters:
            entry["parameters"] = list(op.parameters)
        if op.body:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(op.body)}},
            }
        paths.setdefault(op.path, {})[op.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Case desk API (1177 complaints and feedback gateway)",
            "version": __version__,
            "description": (
                "The case desk's actions for programs. The caller is the person in the client certificate "
                "(HSA-id in the subject serialNumber) on the web port's mutual TLS. No cookies and no CSRF "
                "token: every write is a POST with Content-Type application/json, which no other site can "
                "make a browser send without a CORS preflight, which this API never grants. Times are "
                "RFC 3339; messages in errors are Swedish, `code` and `subCode` are for programs."
            ),
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
