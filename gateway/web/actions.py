"""What a person asked the desk to do, read from a form post or a JSON body into a ``gateway.desk.Action``.

Both readers check the shape only (types, sizes, the four file types, at most 10 files of 20 MB); whether
the action is allowed now, whether a file's content is what it claims and whether codes exist is the desk's
to judge. A problem is a ``Refused`` (HTTP 422, the page shows it in Swedish) or, for a body that is not the
documented JSON at all, ``InvalidInput`` (HTTP 400).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from werkzeug.datastructures import FileStorage, MultiDict

from gateway.desk import ACTION_KINDS, Action, DeskError, NewAttachment, Refused

__all__ = [
    "ALLOWED_TYPES",
    "CODE_FIELDS",
    "MAX_ATTACHMENTS",
    "MAX_ATTACHMENT_BYTES",
    "MAX_TEXT",
    "InvalidInput",
    "action_from_form",
    "action_from_json",
]

MAX_ATTACHMENTS = 10
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
#: the contract's limit for message/text
MAX_TEXT = 20_000
ALLOWED_TYPES = ("application/pdf", "image/gif", "image/jpeg", "image/png")
_BY_SUFFIX = {".pdf": "application/pdf", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_BY_SUFFIX[".png"] = "image/png"
#: the statistics codes a handler may correct (gender is the patient's, not a handler's judgement)
CODE_FIELDS = ("mainProblem", "subProblem", "experiencedProblem", "businessArea")
_MAX_FILE_NAME = 255


class InvalidInput(DeskError):
    """The request body is not what the API documents (wrong JSON shape, types, or an unknown action)."""

    http_status = 400

    def __init__(self, message: str = "Uppgifterna i förfrågan kunde inte läsas.") -> None:
        super().__init__(message)
        self.sub_code = "INVALID_INPUT"


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.replace("\r\n", "\n").strip()
    if not text:
        return None
    if len(text) > MAX_TEXT:
        raise Refused("TEXT_TOO_LONG", f"Meddelandet får vara högst {MAX_TEXT} tecken.")
    return text


def _mime_type(declared: str | None, file_name: str) -> str:
    declared = (declared or "").split(";")[0].strip().lower()
    if declared == "image/jpg":
        declared = "image/jpeg"
    if declared in ALLOWED_TYPES:
        return declared
    suffix = file_name[file_name.rfind(".") :].lower() if "." in file_name else ""
    guessed = _BY_SUFFIX.get(suffix)
    if guessed is None:
        raise Refused("ATTACHMENT_TYPE", "Bifogade filer måste vara PDF, GIF, JPEG eller PNG.")
    return guessed


def _file_name(name: str) -> str:
    # browsers on some systems send the whole path; only the last part is the file's name
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not base or len(base) > _MAX_FILE_NAME or any(ord(c) < 32 for c in base):
        raise Refused("ATTACHMENT_NAME", "En bifogad fil har ett filnamn som inte kan användas.")
    return base


def _check_count(count: int) -> None:
    if count > MAX_ATTACHMENTS:
        raise Refused(
            "TOO_MANY_ATTACHMENTS", f"Du kan bifoga högst {MAX_ATTACHMENTS} filer till ett meddelande."
        )


def _check_size(data: bytes) -> None:
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise Refused("ATTACHMENT_TOO_LARGE", "En bifogad fil får vara högst 20 MB.")
    if not data:
        raise Refused("ATTACHMENT_EMPTY", "En bifogad fil är tom.")


def _files(storages: Iterable[FileStorage]) -> tuple[NewAttachment, ...]:
    chosen = [f for f in storages if f.filename]  # a file input left empty posts a nameless, empty part
    _check_count(len(chosen))
    found: list[NewAttachment] = []
    for storage in chosen:
        name = _file_name(storage.filename or "")
        data = storage.stream.read(MAX_ATTACHMENT_BYTES + 1)
        _check_size(data)
        found.append(NewAttachment(name, _mime_type(storage.mimetype, name), data))
    return tuple(found)


def action_from_form(kind: str, form: MultiDict[str, str], files: MultiDict[str, FileStorage]) -> Action:
    """The action a desk page's form posted (``kind`` comes from the form's address)."""
    if kind not in ACTION_KINDS:
        raise InvalidInput("Den åtgärden finns inte.")
    text = _text(form.get("text"))
    attachments = _files(files.getlist("attachments"))
    if kind == "ANSWER":
        # a standard answer's text is fixed; the handler's own words, if any, follow it
        standard = (form.get("standard_answer") or "").strip() or None
        return Action(kind, text=text, standard_answer=standard, attachments=attachments)
    if kind in ("PARTIAL_ANSWER", "QUESTION"):
        return Action(kind, text=text, attachments=attachments)
    if kind == "ALLOW_ATTACHMENTS":
        value = form.get("allow")
        if value not in ("true", "false"):
            raise InvalidInput()
        return Action(kind, allow=value == "true")
    if kind == "CORRECT_STATISTICS":
        codes = {f: form.get(f, "").strip() for f in CODE_FIELDS}
        return Action(kind, codes={f: c for f, c in codes.items() if c})
    if kind == "CLOSED" and form.get("confirm") != "yes":
        raise Refused("CONFIRM_REQUIRED", "Kryssa i att du vill avsluta ärendet.")
    if kind in ("SET_CONCERNED_UNIT", "MOVE"):
        unit = (form.get("unit") or "").strip() or None
        if kind == "SET_CONCERNED_UNIT" and unit is None:
            raise Refused("UNKNOWN_UNIT", "Välj en enhet ur listan.")
        return Action(kind, unit=unit)
    return Action(kind)


def _optional(body: Mapping[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise InvalidInput(f"Fältet {key} har fel typ.")
    return value


def _json_attachments(items: Any) -> tuple[NewAttachment, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise InvalidInput("Fältet attachments måste vara en lista.")
    _check_count(len(items))
    found: list[NewAttachment] = []
    for item in items:
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) for k in ("fileName", "mimeType", "data")
        ):
            raise InvalidInput("Varje bilaga behöver fileName, mimeType och data (base64).")
        name = _file_name(item["fileName"])
        if item["mimeType"] not in ALLOWED_TYPES:
            raise Refused("ATTACHMENT_TYPE", "Bifogade filer måste vara PDF, GIF, JPEG eller PNG.")
        if len(item["data"]) > (MAX_ATTACHMENT_BYTES * 4) // 3 + 4:
            raise Refused("ATTACHMENT_TOO_LARGE", "En bifogad fil får vara högst 20 MB.")
        try:
            data = base64.b64decode(item["data"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("Fältet data i en bilaga är inte base64.") from None
        _check_size(data)
        found.append(NewAttachment(name, item["mimeType"], data))
    return tuple(found)


def action_from_json(body: Any) -> tuple[int, Action]:
    """(version, action) from the API's JSON body (see the ``ActionRequest`` schema in the OpenAPI)."""
    if not isinstance(body, dict):
        raise InvalidInput("Förfrågan måste vara ett JSON-objekt.")
    kind = body.get("kind")
    version = body.get("version")
    if kind not in ACTION_KINDS:
        raise InvalidInput("Fältet kind måste vara en av åtgärderna.")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidInput("Fältet version måste vara ett positivt heltal.")
    text = _optional(body, "text", str)
    standard = _optional(body, "standardAnswer", str)
    allow = _optional(body, "allow", bool)
    codes = _optional(body, "codes", dict)
    unit = _optional(body, "unit", str)
    if codes is not None and not all(k in CODE_FIELDS and isinstance(v, str) for k, v in codes.items()):
        raise InvalidInput(
            "Fältet codes får bara ha mainProblem, subProblem, experiencedProblem, businessArea."
        )
    action = Action(
        kind,
        text=_text(text),
        standard_answer=standard or None,
        attachments=_json_attachments(body.get("attachments")),
        allow=allow,
        codes=codes,
        unit=unit or None,
    )
    return version, action
