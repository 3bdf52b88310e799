"""The JSON API under ``/api/v1/``: the desk's reads and actions for programs, as ``openapi.OPERATIONS`` says.

Why no CSRF token here, unlike the pages: a browser sends the person's client certificate to any request
for this origin, so what protects a write is that another site cannot make the browser send it. Every
write is a POST whose body must be ``Content-Type: application/json`` (anything else is refused with 415
before it is read); a cross-origin request with that type is not a "simple request", so the browser first
sends a CORS preflight, and this API never answers one with ``Access-Control-Allow-*``, so the POST is never
sent. No cookie is set or read, so nothing else ambient could stand in for the certificate; fetch metadata
(``Sec-Fetch-Site: cross-site``) is refused as well (``gateway.web.security``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from gateway.desk import AttachmentRef, CaseSummary, CaseView, Grant, PersonView, TimelineEvent
from gateway.web.actions import ALLOWED_TYPES, InvalidInput, action_from_json
from gateway.web.app import SWEDEN, error_json, state
from gateway.web.filters import API_NAMES, parse_filters
from gateway.web.openapi import OPERATIONS, document, flask_rule
from gateway.web.pages import download, safe_file_name

__all__ = ["api"]

api = Blueprint("api", __name__)


def _time(value: datetime | None) -> str | None:
    """RFC 3339; a time without a zone is the contract's Swedish local time."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=SWEDEN)
    return value.isoformat()


def _day(value: date) -> str:
    return value.isoformat()


def _grant(grant: Grant) -> dict[str, Any]:
    return {
        "person": grant.person,
        "scope": grant.scope,
        "role": grant.role,
        "grantedBy": grant.granted_by,
        "grantedAt": _time(grant.granted_at),
    }


def _summary(item: CaseSummary) -> dict[str, Any]:
    return {
        "caseId": item.case_id,
        "category": item.category,
        "status": item.status,
        "handlingUnit": item.handling_unit,
        "unitName": item.unit_name,
        "receivedAt": _time(item.received_at),
        "waitingSince": _time(item.waiting_since),
        "handlerTurn": item.handler_turn,
        "subject": item.subject,
        "version": item.version,
    }


def _attachment(ref: AttachmentRef) -> dict[str, Any]:
    return {
        "ref": ref.ref,
        "fileName": ref.file_name,
        "mimeType": ref.mime_type,
        "size": ref.size,
        "direction": ref.direction,
    }


def _event(event: TimelineEvent) -> dict[str, Any]:
    return {
        "at": _time(event.at),
        "direction": event.direction,
        "kind": event.kind,
        "actor": event.actor,
        "text": event.text,
        "standardAnswer": event.standard_answer,
        "attachments": [_attachment(a) for a in event.attachments],
        "delivery": event.delivery,
    }


def _person(person: PersonView | None) -> dict[str, Any] | None:
    if person is None:
        return None
    return {
        "givenName": person.given_name,
        "familyName": person.family_name,
        "personId": person.person_id,
        "phone": person.phone,
        "email": person.email,
    }


def case_json(view: CaseView) -> dict[str, Any]:
    return {
        "caseId": view.case_id,
        "category": view.category,
        "status": view.status,
        "version": view.version,
        "channel": view.channel,
        "recipientType": view.recipient_type,
        "handlingUnit": view.handling_unit,
        "unitName": view.unit_name,
        "patientBoard": view.patient_board,
        "locationDescription": view.location_description,
        "concernedUnit": view.concerned_unit,
        "concernedUnitName": view.concerned_unit_name,
        "eventDate": _day(view.event_date),
        "submittedAt": _time(view.submitted_at),
        "receivedAt": _time(view.received_at),
        "closedAt": _time(view.closed_at),
        "reporterRole": view.reporter_role,
        "reporter": _person(view.reporter),
        "subject": _person(view.subject),
        "description": view.description,
        "codes": {name: {"code": c.code, "text": c.text} for name, c in view.codes.items()},
        "replyWanted": view.reply_wanted,
        "contactChannel": view.contact_channel,
        "attachmentsAllowed": view.attachments_allowed,
        "openQuestion": view.open_question,
        "handlerTurn": view.handler_turn,
        "waitingSince": _time(view.waiting_since),
        "attachments": [_attachment(a) for a in view.attachments],
        "timeline": [_event(e) for e in view.timeline],
        "actions": list(view.actions),
        "roles": sorted(view.roles),
    }


def me() -> Response:
    st, person = state(), g.person
    return jsonify(
        {
            "person": person,
            "grants": [_grant(x) for x in st.desk.grants(person)],
            "units": [{"hsaId": hsa_id, "name": name} for hsa_id, name in st.desk.units(person)],
        }
    )


def list_cases() -> Response:
    filters, problems = parse_filters(request.args, API_NAMES, strict=True)
    if problems:
        field = next(iter(problems))
        return error_json(400, "BAD_REQUEST", f"{API_NAMES[field]}: {problems[field]}")
    result = state().desk.cases(g.person, **filters.as_kwargs())
    return jsonify(
        {
            "items": [_summary(c) for c in result.items],
            "total": result.total,
            "page": result.page,
            "perPage": result.per_page,
        }
    )


def get_case(case_id: str) -> Response:
    return jsonify(case_json(state().desk.case(g.person, case_id)))


def get_attachment(case_id: str, ref: str) -> Response:
    name, mime_type, data = state().desk.attachment(g.person, case_id, ref)
    shown = mime_type if mime_type in ALLOWED_TYPES else "application/octet-stream"
    return download(data, safe_file_name(name, "bilaga"), shown)


def act(case_id: str) -> Response:
    if request.mimetype != "application/json":
        return error_json(
            415, "UNSUPPORTED_MEDIA_TYPE", "Skicka åtgärden som JSON (Content-Type: application/json)."
        )
    body = request.get_json(silent=True)
    if body is None:
        raise InvalidInput("Förfrågan är inte giltig JSON.")
    version, action = action_from_json(body)
    new_version = state().desk.act(g.person, case_id, version, action)
    return jsonify({"version": new_version})


def export_case(case_id: str) -> Response:
    data = state().desk.export(g.person, case_id)
    return download(data, safe_file_name(f"arende-{case_id}.zip", "arende.zip"), "application/zip")


def standard_answers() -> Response:
    answers = state().desk.standard_answers()
    return jsonify([{"code": c, "displayName": n, "text": t} for c, n, t in answers])


def openapi() -> Response:
    return jsonify(document(request.script_root + "/api/v1"))


_VIEWS: dict[str, Callable[..., Response]] = {
    "me": me,
    "list_cases": list_cases,
    "get_case": get_case,
    "get_attachment": get_attachment,
    "act": act,
    "export_case": export_case,
    "standard_answers": standard_answers,
    "openapi": openapi,
}

for _op in OPERATIONS:
    api.add_url_rule(
        flask_rule(_op.path),
        endpoint=_op.operation_id,
        view_func=_VIEWS[_op.operation_id],
        methods=[_op.method.upper()],
    )
