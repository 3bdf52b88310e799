"""The people's web app: the case desk's pages and its JSON API, one Flask application.

``create_web_app(config, desk, identity)`` builds it around a ``gateway.desk.Desk`` (the only way to case
data) and an identity reader (``gateway.soap.identity.CallerIdentity``: the HSA-id in the subject
``serialNumber`` of the person's client certificate, or the trusted proxy's header). Every request except a
static file needs a person: without one the answer is a Swedish 403 page (401 JSON under ``/api/``), and the
request goes no further. Every response carries the security headers of ``gateway.web.security``; every POST
of a page form is checked for its CSRF token; no error shows a traceback, each names a log id that the log
line of the request repeats.

The log has one line per request: method, route, status, milliseconds, log id, the person's HSA-id and the
caseId when they pass their format checks (``gateway.redact``); never a query, form field, text or file.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from flask import Flask, Response, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from contracts.codelists import CodeLists
from gateway.config import Config
from gateway.desk import Desk, DeskError
from gateway.errors import IdentityError
from gateway.redact import safe_hsa_id, safe_id
from gateway.web import texts
from gateway.web.security import SECURITY_HEADERS, CsrfTokens, cross_site_refused

__all__ = ["PersonIdentity", "WebState", "create_web_app", "state"]

log = logging.getLogger("gateway.web")
SWEDEN = ZoneInfo("Europe/Stockholm")
_HERE = Path(__file__).resolve().parent
#: routes that are files, not pages: another site may never cause a request for them
_FILE_ENDPOINTS = frozenset({"pages.attachment", "pages.export"})


class PersonIdentity(Protocol):
    """Who is asking: an HSA-id, or ``IdentityError`` when no usable certificate came with the request."""

    def caller(self, environ: Mapping[str, Any]) -> str: ...


@dataclass(frozen=True)
class WebState:
    config: Config
    desk: Desk
    identity: PersonIdentity
    csrf: CsrfTokens
    code_lists: CodeLists
    #: (HSA-id, name) of the units of the HSA tree a patient board may name as where the event happened
    unit_choices: Callable[[], Sequence[tuple[str, str]]]


def state() -> WebState:
    """The web app's collaborators (inside a request)."""
    from flask import current_app

    found: WebState = current_app.extensions["gateway.web"]
    return found


def _local(value: datetime | date | None, with_time: bool = True) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(SWEDEN)
        return value.strftime("%Y-%m-%d %H:%M") if with_time else value.strftime("%Y-%m-%d")
    return value.isoformat()


def _size(value: int) -> str:
    if value < 1024:
        return f"{value} byte"
    if value < 1024 * 1024:
        return f"{value / 1024:.0f} kB".replace(".", ",")
    return f"{value / (1024 * 1024):.1f} MB".replace(".", ",")


def is_api() -> bool:
    return request.path.startswith("/api/")


def error_json(status: int, code: str, message: str, sub_code: str | None = None) -> Response:
    body: dict[str, Any] = {"status": status, "code": code, "message": message, "logId": g.get("log_id", "")}
    if sub_code:
        body["subCode"] = sub_code
    response = jsonify({"error": body})
    response.status_code = status
    return response


def error_page(status: int, title: str, message: str, **extra: Any) -> Response:
    html = render_template("error.html", status=status, title=title, message=message, **extra)
    return Response(html, status=status, mimetype="text/html")


_HTTP_TEXTS = {
    400: ("Felaktig förfrågan", "Förfrågan kunde inte läsas."),
    404: ("Sidan finns inte", "Det finns ingen sida med den adressen i ärendehanteringen."),
    405: ("Det går inte att göra så här", "Sidan tar inte emot den sortens förfrågan."),
    413: (
        "För mycket data",
        "Det som skickades var för stort. Bifoga högst 10 filer på högst 20 MB vardera.",
    ),
}
_HTTP_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "TOO_LARGE"}
_DESK_CODES = {403: "FORBIDDEN", 404: "NOT_FOUND", 409: "CONFLICT", 422: "REFUSED", 400: "BAD_REQUEST"}


def desk_message(exc: DeskError) -> str:
    """The reason to show: the desk's own one-line message is Swedish (``gateway.desk.errors``)."""
    return exc.message or "Åtgärden kunde inte göras."


def create_web_app(
    config: Config,
    desk: Desk,
    identity: PersonIdentity,
    *,
    secret_key: bytes,
    code_lists: CodeLists,
    unit_choices: Callable[[], Sequence[tuple[str, str]]] | None = None,
) -> Flask:
    """The WSGI app of the desk pages and the JSON API (``web_listener_app`` builds it from configuration)."""
    from gateway.web.api import api
    from gateway.web.pages import pages

    app = Flask(
        "gateway.web",
        root_path=str(_HERE),
        static_folder="static",
        static_url_path="/static",
        template_folder="templates",
    )
    app.config.update(
        MAX_CONTENT_LENGTH=config.web.max_body_bytes,
        # non-file form fields: a message of 20 000 characters, UTF-8, with room to spare
        MAX_FORM_MEMORY_SIZE=256 * 1024,
        MAX_FORM_PARTS=100,
        JSON_SORT_KEYS=False,
        TRAP_HTTP_EXCEPTIONS=False,
        SEND_FILE_MAX_AGE_DEFAULT=0,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions["gateway.web"] = WebState(
        config=config,
        desk=desk,
        identity=identity,
        csrf=CsrfTokens(secret_key),
        code_lists=code_lists,
        unit_choices=unit_choices or (lambda: ()),
    )
    env = app.jinja_env
    env.autoescape = True  # every template, whatever its name
    env.trim_blocks = True
    env.lstrip_blocks = True
    env.filters.update(local=_local, day=lambda v: _local(v, with_time=False), size=_size)
    env.globals.update(texts=texts, word=texts.word, csrf=_csrf_token)

    app.before_request(_before)
    app.after_request(_after)
    app.register_error_handler(DeskError, _desk_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _internal_error)
    app.register_blueprint(pages)
    app.register_blueprint(api, url_prefix="/api/v1")
    return app


def _csrf_token(form: str) -> str:
    """A token for the form that posts to ``form`` (a URL path as ``url_for`` builds it)."""
    return state().csrf.make(g.person, unquote(form))


def _before() -> Response | None:
    g.log_id = str(uuid.uuid4())
    g.started = time.perf_counter()
    g.person = None
    if request.endpoint == "static":
        return None
    page = not is_api() and request.endpoint not in _FILE_ENDPOINTS
    if cross_site_refused(request.method, dict(request.headers), page=page):
        g.refusal = "cross-site request"
        return _forbidden_cross_site()
    try:
        g.person = state().identity.caller(request.environ)
    except IdentityError as exc:
        g.refusal = exc.message
        if is_api():
            response = error_json(
                401, "NO_IDENTITY", "Ingen giltig personlig e-legitimation (certifikat) med HSA-id."
            )
            response.headers["WWW-Authenticate"] = 'Certificate realm="desk"'
            return response
        return error_page(
            403,
            "Du är inte inloggad",
            "Ärendehanteringen kunde inte läsa ditt HSA-id. Logga in med ditt SITHS-kort eller din "
            "personliga e-legitimation (ett certifikat med ditt HSA-id) och ladda om sidan.",
        )
    if request.method == "POST" and not is_api():
        token = request.form.get("csrf_token")
        reason = state().csrf.check(token, g.person, request.path)
        if reason is not None:
            g.refusal = reason
            return error_page(
                403,
                "Formuläret kunde inte tas emot",
                "Formuläret har varit öppet för länge eller kom inte från ärendehanteringen. Ingenting har "
                "ändrats. Öppna sidan igen och gör om det du ville göra.",
                back=request.path.rsplit("/actions/", 1)[0] if "/actions/" in request.path else None,
            )
    return None


def _forbidden_cross_site() -> Response:
    if is_api():
        return error_json(403, "CROSS_SITE", "Förfrågningar från andra webbplatser tas inte emot.")
    return error_page(
        403,
        "Förfrågan kom från en annan webbplats",
        "Av säkerhetsskäl tar ärendehanteringen bara emot förfrågningar från sina egna sidor.",
    )


def _after(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    response.headers.pop("Set-Cookie", None)
    if request.endpoint != "static":
        fields: dict[str, Any] = {
            "logId": g.get("log_id"),
            "method": request.method,
            "route": request.endpoint or "unknown",
            "status": response.status_code,
            "ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2),
        }
        person = g.get("person")
        if person:
            fields["person"] = safe_hsa_id(person)
        case_id = (request.view_args or {}).get("case_id")
        if isinstance(case_id, str):
            fields["caseId"] = safe_id(case_id)
        refusal = g.get("refusal")
        if refusal:
            fields["reason"] = refusal
        level = logging.INFO if response.status_code < 400 else logging.WARNING
        if response.status_code >= 500:
            level = logging.ERROR
        log.log(level, "web request", extra={"fields": fields})
    return response


def _desk_error(exc: DeskError) -> Response:
    status = exc.http_status
    code = _DESK_CODES.get(status, "BAD_REQUEST")
    sub_code = getattr(exc, "sub_code", None)
    g.refusal = f"{type(exc).__name__}{' ' + sub_code if sub_code else ''}"
    message = desk_message(exc)
    if is_api():
        return error_json(status, code, message, sub_code)
    titles = {
        403: "Du har inte behörighet",
        404: "Ärendet finns inte",
        409: "Ärendet har ändrats sedan du öppnade det",
        422: "Åtgärden gick inte att göra",
    }
    if status == 403:
        message = (
            "Du har inte behörighet till det här ärendet eller den här enheten. Försöket har loggats. "
            "Behöver du behörighet, kontakta den som administrerar ärendehanteringen i din region."
        )
    return error_page(status, titles.get(status, "Det gick inte"), message)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status >= 500:
        return _internal_error(exc)
    title, message = _HTTP_TEXTS.get(status, (exc.name, "Förfrågan kunde inte behandlas."))
    if is_api():
        response = error_json(status, _HTTP_CODES.get(status, "BAD_REQUEST"), message)
    else:
        response = error_page(status, title, message)
    if status == 405 and isinstance(exc.response, Response):
        allow = exc.response.headers.get("Allow")
        if allow:
            response.headers["Allow"] = allow
    elif status == 405:
        valid = getattr(exc, "valid_methods", None)
        if valid:
            response.headers["Allow"] = ", ".join(valid)
    return response


def _internal_error(exc: BaseException) -> Response:
    log.error(
        "web request failed",
        extra={"fields": {"logId": g.get("log_id"), "route": request.endpoint}},
        exc_info=exc,
    )
    message = "Något gick fel i ärendehanteringen. Ingenting har ändrats. Försök igen om en stund."
    if is_api():
        return error_json(500, "INTERNAL", message)
    try:
        return error_page(500, "Något gick fel", message)
    except Exception:  # noqa: BLE001 - the error page itself failed: a plain answer, still with the log id
        return Response(f"{message} Logg-id: {g.get('log_id')}\n", status=500, mimetype="text/plain")
