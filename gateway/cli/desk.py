"""``gateway desk …``: the case desk from the command line: grants, the case list, a case, actions,
export and hand-over.

``--as PERSON`` names the person the command acts for (their HSA-id): what they may see and do decides,
and the audit log records ``cli:<login>:<PERSON>``. Grants, revocations and hand-over are an operator's
(whoever may run the gateway's commands on its machine); they are audited with the login name. Refusals
are one line with the exit code of their kind: 3 no such case or grant, 7 not permitted, 8 the case
changed since the given --version (read it again), 1 refused by a rule of the desk or the case's state.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import os
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from contracts import load_code_lists
from contracts.codelists import CodeListError
from gateway.cli.common import config_of, emit, open_engine
from gateway.config import Config
from gateway.desk import ACTION_KINDS, ROLES, Action, CaseView, Desk, NewAttachment
from gateway.errors import ConfigError
from routing import RoutingHolder

__all__ = ["add_desk_parser"]

_MIME = {".pdf": "application/pdf", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_MIME[".png"] = "image/png"
_MAX_FILE = 64 * 1024 * 1024  # read no more than this of a file to attach (the desk's limit is lower)


def _login() -> str:
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _person(args: argparse.Namespace) -> str:
    person = getattr(args, "as_person", None)
    if not person:
        raise ConfigError(f"gateway desk {args.desk_command}: --as PERSON (an HSA-id) is required")
    return str(person)


def _operator(args: argparse.Namespace) -> str:
    """The actor of an operator's change: the login name, and the person named with --as, if any."""
    person = getattr(args, "as_person", None)
    return f"cli:{_login()}" + (f":{person}" if person else "")


def _open(config: Config) -> Desk:
    engine = open_engine(config, pool_size=2)
    routing = RoutingHolder(engine, None)
    routing.refresh()  # the active version from the database (no local snapshot: a command reads fresh)
    try:
        code_lists = load_code_lists(config.gateway.code_lists)
    except CodeListError as exc:
        engine.dispose()
        raise ConfigError(f"config: gateway.code_lists: {exc}") from None
    return Desk(engine, routing, config, code_lists, via=f"cli:{_login()}")


def _run(func: Callable[[argparse.Namespace, Desk], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        desk = _open(config_of(args))
        try:
            return func(args, desk)
        finally:
            desk.close()
            desk.engine.dispose()

    return run


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items) if isinstance(value, set | frozenset) else items
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date like 2026-11-30: {value!r}") from None


# -- access ---------------------------------------------------------------------------------------------
def cmd_grant(args: argparse.Namespace, desk: Desk) -> int:
    grant = desk.grant(_operator(args), args.person, args.scope, args.role)
    emit(
        args,
        _jsonable(grant),
        f"{grant.person} is {grant.role} on {grant.scope} (granted by {grant.granted_by}"
        f" at {grant.granted_at:%Y-%m-%d %H:%M} UTC)",
    )
    return 0


def cmd_revoke(args: argparse.Namespace, desk: Desk) -> int:
    desk.revoke(_operator(args), args.person, args.scope, args.role)
    data = {"action": "revoke", "person": args.person, "scope": args.scope, "role": args.role}
    emit(args, data, f"{args.person} is no longer {args.role} on {args.scope}")
    return 0


def cmd_access(args: argparse.Namespace, desk: Desk) -> int:
    grants = desk.grants(args.person) if args.person else desk.all_grants()
    lines = [
        f"{g.person:<24} {g.role:<13} {g.scope:<24} by {g.granted_by} at {g.granted_at:%Y-%m-%d %H:%M} UTC"
        for g in grants
    ]
    emit(args, _jsonable(grants), "\n".join(lines) or "no active grants")
    return 0


# -- reading --------------------------------------------------------------------------------------------
def cmd_cases(args: argparse.Namespace, desk: Desk) -> int:
    page = desk.cases(
        _person(args),
        unit=args.unit,
        status=args.status,
        category=args.category,
        received_from=args.received_from,
        received_to=args.received_to,
        waiting_days=args.waiting_days,
        case_id=args.case,
        page=args.page,
        per_page=args.per_page,
    )
    lines = [
        f"{c.case_id:<24} {c.status:<21} {c.handling_unit:<20} {c.received_at:%Y-%m-%d %H:%M}  "
        f"v{c.version:<3} {c.subject}"
        for c in page.items
    ]
    shown = f"page {page.page}, {len(page.items)} of {page.total} case(s)"
    emit(args, _jsonable(page), "\n".join([*lines, shown]) if lines else f"no cases ({shown})")
    return 0


def _view_lines(view: CaseView) -> list[str]:
    lines = [
        f"case {view.case_id} ({view.category}), status {view.status}, version {view.version}",
        f"unit {view.handling_unit} {view.unit_name}".rstrip(),
        f"received {view.received_at:%Y-%m-%d %H:%M} UTC, event date {view.event_date}",
        "you may: " + (", ".join(view.actions) or "read only"),
        "timeline:",
    ]
    for event in view.timeline:
        line = f"  {event.at:%Y-%m-%d %H:%M:%S} {event.direction:<4} {event.kind:<15} {event.actor}"
        if event.delivery:
            line += f" [{event.delivery}]"
        if event.attachments:
            line += " attachments: " + ", ".join(a.ref for a in event.attachments)
        lines.append(line)
    return lines


def cmd_show(args: argparse.Namespace, desk: Desk) -> int:
    view = desk.case(_person(args), args.case)
    emit(args, _jsonable(view), "\n".join(_view_lines(view)))
    return 0


def cmd_attachment(args: argparse.Namespace, desk: Desk) -> int:
    name, mime, data = desk.attachment(_person(args), args.case, args.ref)
    _write(Path(args.out), data)
    emit(args, {"file": args.out, "fileName": name, "mimeType": mime, "size": len(data)}, f"wrote {args.out}")
    return 0


def _write(path: Path, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None


# -- acting ---------------------------------------------------------------------------------------------
def _attachment(path: str) -> NewAttachment:
    file = Path(path)
    mime = _MIME.get(file.suffix.lower())
    if mime is None:
        raise ConfigError(f"--attach {path}: only .pdf, .gif, .jpg, .jpeg and .png files can be attached")
    try:
        with file.open("rb") as fh:
            data = fh.read(_MAX_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"--attach {path}: {exc.strerror}") from None
    if len(data) > _MAX_FILE:
        raise ConfigError(f"--attach {path}: larger than {_MAX_FILE // (1024 * 1024)} MB")
    return NewAttachment(file.name, mime, data)


def _codes(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    codes: dict[str, str] = {}
    for value in values:
        field, sep, code = value.partition("=")
        if not sep or not field or not code:
            raise ConfigError(f"--code {value!r}: use FIELD=CODE, e.g. mainProblem=1")
        codes[field] = code
    return codes


def cmd_act(args: argparse.Namespace, desk: Desk) -> int:
    allow = None if args.allow is None else args.allow == "yes"
    action = Action(
        args.action,
        text=args.text,
        standard_answer=args.standard_answer,
        attachments=tuple(_attachment(p) for p in args.attach or ()),
        allow=allow,
        codes=_codes(args.code),
        unit=args.unit,
    )
    version = desk.act(_person(args), args.case, args.version, action)
    data = {"caseId": args.case, "action": args.action, "version": version}
    emit(args, data, f"case {args.case}: {args.action} done; its version is now {version}")
    return 0


def cmd_export(args: argparse.Namespace, desk: Desk) -> int:
    archive = desk.export(_person(args), args.case)
    _write(Path(args.out), archive)
    emit(args, {"caseId": args.case, "file": args.out, "bytes": len(archive)}, f"wrote {args.out}")
    return 0


def cmd_hand_over(args: argparse.Namespace, desk: Desk) -> int:
    moved = desk.hand_over(_operator(args), args.unit)
    data = {"unit": args.unit, "cases": moved}
    line = f"{len(moved)} open case(s) of {args.unit} handed over" + (
        ": " + ", ".join(moved) if moved else ""
    )
    emit(args, data, line)
    return 0


def add_desk_parser(sub: Any) -> None:
    desk = sub.add_parser(
        "desk",
        help="the case desk: grants, cases, actions, export, hand-over",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dsub = desk.add_subparsers(dest="desk_command", required=True, metavar="ACTION")

    def command(name: str, func: Callable[[argparse.Namespace, Desk], int], text: str) -> Any:
        p = dsub.add_parser(name, help=text, description=text)
        p.add_argument("--as", dest="as_person", metavar="PERSON", help="the HSA-id of the person acting")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=_run(func))
        return p

    for name, func, text in (
        ("grant", cmd_grant, "grant a person a role on a unit, care provider, region or SE (audited)"),
        ("revoke", cmd_revoke, "revoke an active grant (audited); exit 3 when there is none"),
    ):
        p = command(name, func, text)
        p.add_argument("person", help="the person's HSA-id (the serialNumber of their certificate)")
        p.add_argument("scope", help="HSA-id of a unit, care provider or region of the HSA tree, or SE")
        p.add_argument("role", choices=ROLES, help="reader and handler see cases; handlers act on them")
    p = command("access", cmd_access, "active grants, of one person or of everyone")
    p.add_argument("person", nargs="?", help="only this person's grants")
    p = command("cases", cmd_cases, "the desk cases the person may see, newest first (--as required)")
    p.add_argument("--unit", help="only this unit's cases")
    p.add_argument("--status", help="only cases in this status (e.g. RECEIVED, WAITING_FOR_REPORTER)")
    p.add_argument("--category", choices=["COMPLAINT", "FEEDBACK"], help="only this category")
    p.add_argument("--from", dest="received_from", type=_day, help="received on or after this date")
    p.add_argument("--to", dest="received_to", type=_day, help="received on or before this date")
    p.add_argument("--waiting-days", type=int, help="waiting for the handler longer than this many days")
    p.add_argument("--case", help="only the case with this caseId")
    p.add_argument("--page", type=int, default=1, help="page number (default 1)")
    p.add_argument("--per-page", type=int, default=25, help="cases per page (default 25, at most 100)")
    p = command("show", cmd_show, "one case as filed, with its timeline (--as required)")
    p.add_argument("case", help="caseId")
    p = command("attachment", cmd_attachment, "write one attachment of a case to a file (--as required)")
    p.add_argument("case", help="caseId")
    p.add_argument("ref", help="the attachment's ref (see show)")
    p.add_argument("--out", required=True, help="file to write (created 0600)")
    p = command("act", cmd_act, "act on a case as the person (--as required); one transaction, audited")
    p.add_argument("case", help="caseId")
    p.add_argument("action", choices=ACTION_KINDS, help="what to do")
    p.add_argument("--version", type=int, required=True, help="the case's version as you read it (see show)")
    p.add_argument("--text", help="the message to the citizen (PARTIAL_ANSWER, QUESTION, ANSWER)")
    p.add_argument("--standard-answer", metavar="CODE", help="ANSWER with this national standard answer")
    p.add_argument("--attach", action="append", metavar="FILE", help="attach a PDF, GIF, JPEG or PNG file")
    p.add_argument("--allow", choices=["yes", "no"], help="ALLOW_ATTACHMENTS: may the citizen attach files")
    p.add_argument(
        "--code", action="append", metavar="FIELD=CODE", help="CORRECT_STATISTICS, e.g. mainProblem=1"
    )
    p.add_argument("--unit", help="SET_CONCERNED_UNIT: the unit where the event happened (HSA-id)")
    p = command("export", cmd_export, "write a case as one ZIP: XML as received, timeline, attachments")
    p.add_argument("case", help="caseId")
    p.add_argument("--out", required=True, help="the ZIP file to write (created 0600)")
    p = command(
        "hand-over",
        cmd_hand_over,
        "redirect every open desk case of a unit to the system its route now points at (audited)",
    )
    p.add_argument("--unit", required=True, help="the unit's HSA-id")
