"""The desk's pages: the case list, the case, its actions as forms, attachments, export, access and help.

Views call the desk and render templates; they hold no rules of their own beyond reading the forms
(``gateway.web.actions``) and the filters (``gateway.web.filters``). A successful action answers with a
redirect to the case (post/redirect/get), so reloading the page never sends a message twice.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, g, redirect, render_template, request, send_file, url_for

from gateway.desk import CaseView, Conflict, Refused
from gateway.web import texts
from gateway.web.actions import ALLOWED_TYPES, CODE_FIELDS, InvalidInput, action_from_form
from gateway.web.app import desk_message, state
from gateway.web.filters import PAGE_NAMES, CaseFilters, parse_filters

__all__ = ["download", "pages", "safe_file_name"]

pages = Blueprint("pages", __name__)

#: what the case page says after an action went through
DONE: Mapping[str, str] = {
    "RECEIVED": "Ärendet är markerat som mottaget. Anmälaren får en bekräftelse i sin inkorg på 1177.",
    "IN_PROGRESS": "Ärendet är markerat som under handläggning.",
    "PARTIAL_ANSWER": "Delsvaret är skickat till anmälaren.",
    "QUESTION": "Motfrågan är skickad till anmälaren.",
    "ANSWER": "Slutsvaret är skickat till anmälaren.",
    "CLOSED": "Ärendet är avslutat.",
    "ALLOW_ATTACHMENTS": "Inställningen för bilagor från anmälaren är sparad.",
    "CORRECT_STATISTICS": "Statistikkoderna är rättade.",
    "SET_CONCERNED_UNIT": "Enheten där händelsen inträffade är sparad.",
}


def _render(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render_template(template, **context), status=status, mimetype="text/html")


def _days_since(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return max(0, (datetime.now(UTC) - value).days)


@pages.get("/")
def home() -> Response:
    return redirect(url_for("pages.case_list"), 303)  # type: ignore[return-value]


def _page_link(filters: CaseFilters, page: int) -> str:
    values = {
        PAGE_NAMES[k]: (v.isoformat() if hasattr(v, "isoformat") else str(v))
        for k, v in filters.as_kwargs().items()
        if v is not None and k != "page"
    }
    if values.get("per_page") == "25":
        values.pop("per_page")
    values["page"] = str(page)
    return url_for("pages.case_list") + "?" + urlencode(values)


@pages.get("/cases")
def case_list() -> Response:
    st, person = state(), g.person
    filters, problems = parse_filters(request.args, PAGE_NAMES)
    units = st.desk.units(person)
    result = None if problems else st.desk.cases(person, **filters.as_kwargs())
    pages_total = 1
    if result is not None:
        pages_total = max(1, -(-result.total // result.per_page))
    return _render(
        "cases.html",
        status=400 if problems else 200,
        filters=filters,
        raw=request.args,
        names=PAGE_NAMES,
        problems=problems,
        units=units,
        result=result,
        pages_total=pages_total,
        page_link=lambda number: _page_link(filters, number),
        days_since=_days_since,
    )


def _code_choices() -> dict[str, Any]:
    lists = state().code_lists
    problem = lists.for_field("mainProblem")
    mains = [(c, t) for c, t in problem.display.items() if problem.parent[c] is None]
    subs = [
        (main, name, [(c, t) for c, t in problem.display.items() if problem.parent[c] == main])
        for main, name in mains
    ]
    return {
        "mainProblem": mains,
        "subProblem": [group for group in subs if group[2]],
        "experiencedProblem": list(lists.for_field("experiencedProblem").display.items()),
        "businessArea": list(lists.for_field("businessArea").display.items()),
    }


def _case_page(view: CaseView, status: int = 200, **context: Any) -> Response:
    st = state()
    return _render(
        "case.html",
        status=status,
        view=view,
        standard_answers=st.desk.standard_answers() if "ANSWER" in view.actions else [],
        code_choices=_code_choices() if "CORRECT_STATISTICS" in view.actions else {},
        code_fields=CODE_FIELDS,
        unit_choices=list(st.unit_choices()) if "SET_CONCERNED_UNIT" in view.actions else [],
        days_since=_days_since,
        **context,
    )


@pages.get("/cases/<case_id>")
def case_page(case_id: str) -> Response:
    view = state().desk.case(g.person, case_id)
    done = request.args.get("done", "")
    return _case_page(view, done=DONE.get(done), error=None, posted={})


@pages.post("/cases/<case_id>/actions/<kind>")
def act(case_id: str, kind: str) -> Response:
    st, person = state(), g.person
    version_text = request.form.get("version", "")
    if not version_text.isdigit() or len(version_text) > 12:
        raise InvalidInput()
    posted = {"kind": kind, "text": request.form.get("text", ""), **request.form.to_dict()}
    posted.pop("csrf_token", None)
    try:
        action = action_from_form(kind, request.form, request.files)
        st.desk.act(person, case_id, int(version_text), action)
    except Conflict as exc:
        g.refusal = "Conflict"
        return _render(
            "conflict.html",
            status=409,
            case_id=case_id,
            message=exc.message,
            text=posted.get("text", ""),
        )
    except Refused as exc:
        g.refusal = f"Refused {exc.sub_code}"
        view = st.desk.case(person, case_id)
        return _case_page(view, status=422, done=None, error=desk_message(exc), posted=posted)
    target = url_for("pages.case_page", case_id=case_id, done=kind)
    return redirect(target + "#meddelande", 303)  # type: ignore[return-value]


def safe_file_name(name: str, fallback: str) -> str:
    cleaned = "".join(
        "_" if unicodedata.category(c).startswith("C") or c in '/\\"' else c for c in name
    ).strip(" .")
    return cleaned[:200] or fallback


def download(data: bytes, file_name: str, mime_type: str) -> Response:
    """A file to save, never to show: ``Content-Disposition: attachment`` and its declared type."""
    return send_file(
        io.BytesIO(data),
        mimetype=mime_type,
        as_attachment=True,
        download_name=file_name,
        max_age=0,
        etag=False,
        conditional=False,
    )


@pages.get("/cases/<case_id>/attachments/<ref>")
def attachment(case_id: str, ref: str) -> Response:
    name, mime_type, data = state().desk.attachment(g.person, case_id, ref)
    shown = mime_type if mime_type in ALLOWED_TYPES else "application/octet-stream"
    return download(data, safe_file_name(name, "bilaga"), shown)


@pages.get("/cases/<case_id>/export")
def export(case_id: str) -> Response:
    data = state().desk.export(g.person, case_id)
    return download(data, safe_file_name(f"arende-{case_id}.zip", "arende.zip"), "application/zip")


@pages.get("/me")
def me() -> Response:
    st, person = state(), g.person
    return _render("me.html", grants=st.desk.grants(person), units=st.desk.units(person))


@pages.get("/help")
def help_page() -> Response:
    return _render("help.html", statuses=texts.STATUSES, status_help=texts.STATUS_HELP)
