"""``Desk``: the one object the web app and the CLI use to read and act on the cases of the case desk.

Every method takes the acting person's HSA-id first and checks their grants before it reads or writes
anything; a refusal is audited. Each change is one transaction. The work is done by one module per
concern: ``access`` (grants), ``queries`` (list, view, attachments), ``actions``, ``export``,
``handover``. A ``Desk`` is cheap to keep for the life of a process and safe to share between threads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from sqlalchemy import Engine

from contracts.codelists import CodeLists
from gateway.cases.outgoing import CaseService
from gateway.config import Config
from gateway.db import make_engine
from gateway.desk import audit
from gateway.desk.access import Access
from gateway.desk.actions import Actions
from gateway.desk.export import build_zip
from gateway.desk.handover import hand_over
from gateway.desk.model import Action, CasePage, CaseView, Grant
from gateway.desk.queries import Queries
from routing import RoutingHolder

__all__ = ["Desk"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Desk:
    def __init__(
        self,
        engine: Engine,
        routing: RoutingHolder,
        config: Config,
        code_lists: CodeLists,
        clock: Callable[[], datetime] = _utc_now,
        *,
        via: str | None = None,
    ) -> None:
        """``via`` names the channel in the audit log: actions of a person are recorded as
        ``<via>:<person>`` (the CLI passes ``cli:<login>``); the web app leaves it out (the person)."""
        self.engine = engine
        self.routing = routing
        self.config = config
        self.code_lists = code_lists
        self.clock = clock
        # On SQLite every transaction of a writing engine starts with BEGIN IMMEDIATE (the write lock):
        # the desk's reads go through an engine that never asks for it, so a page never waits for the
        # SOAP path's writes, nor they for it. PostgreSQL reads do not block writers anyway.
        self.reader = (
            make_engine(engine.url.render_as_string(hide_password=False), read_only=True, pool_size=4)
            if engine.dialect.name == "sqlite"
            else engine
        )
        self.access = Access(engine, routing, clock, self.reader)
        self.via = via
        self.queries = Queries(engine, self.access, code_lists, clock, self.actor)
        self.actions = Actions(
            engine,
            self.queries,
            code_lists,
            CaseService(routing, config.gateway.case_service_address),
            config.soap.max_attachment_bytes,
            clock,
            self._outbox_ms,
        )

    def actor(self, person: str) -> str:
        """How ``person`` is named in the audit log."""
        return f"{self.via}:{person}" if self.via else person

    def close(self) -> None:
        """Give back the desk's own read engine (the engine it was given stays the caller's)."""
        if self.reader is not self.engine:
            self.reader.dispose()

    def _outbox_ms(self) -> int:
        return int(self.clock().timestamp() * 1000)

    # -- access -------------------------------------------------------------------------------------------
    def grants(self, person: str) -> list[Grant]:
        """The person's active grants."""
        return self.access.grants(person)

    def all_grants(self) -> list[Grant]:
        """Every active grant (for operators)."""
        return self.access.all_grants()

    def roles_for(self, person: str, unit: str) -> set[str]:
        """The person's roles on ``unit``, inherited down the HSA tree of the active routing version."""
        return self.access.roles_for(person, unit)

    def grant(self, actor: str, person: str, scope: str, role: str) -> Grant:
        """Grant ``role`` on ``scope``; granting an active grant again returns it unchanged."""
        return self.access.grant(actor, person, scope, role)

    def revoke(self, actor: str, person: str, scope: str, role: str) -> None:
        self.access.revoke(actor, person, scope, role)

    def units(self, person: str) -> list[tuple[str, str]]:
        """(hsa_id, name) of every unit and patient board whose cases the person may see."""
        return self.access.units(person)

    # -- reading ------------------------------------------------------------------------------------------
    def cases(
        self,
        person: str,
        *,
        unit: str | None = None,
        status: str | None = None,
        category: str | None = None,
        received_from: date | None = None,
        received_to: date | None = None,
        waiting_days: int | None = None,
        case_id: str | None = None,
        page: int = 1,
        per_page: int = 25,
    ) -> CasePage:
        """The desk cases the person may see, newest first."""
        return self.queries.cases(
            person,
            unit=unit,
            status=status,
            category=category,
            received_from=received_from,
            received_to=received_to,
            waiting_days=waiting_days,
            case_id=case_id,
            page=page,
            per_page=per_page,
        )

    def case(self, person: str, case_id: str) -> CaseView:
        return self.queries.case(person, case_id)

    def attachment(self, person: str, case_id: str, ref: str) -> tuple[str, str, bytes]:
        """(file name, mime type, content) of one attachment of the case."""
        return self.queries.attachment(person, case_id, ref)

    def standard_answers(self) -> list[tuple[str, str, str]]:
        """(code, displayName, text) of every standard answer."""
        answers = self.code_lists.for_field("standardAnswer")
        return [(code, answers.display[code], text) for code, text in answers.texts.items()]

    # -- acting -------------------------------------------------------------------------------------------
    def act(self, person: str, case_id: str, version: int, action: Action) -> int:
        """Do ``action`` on the case as seen at ``version``; the case's new version."""
        return self.actions.act(person, case_id, version, action)

    def export(self, person: str, case_id: str) -> bytes:
        """The case as one ZIP: the RegisterCase as received, the timeline, every attachment (handlers)."""
        view, xml = self.queries.case_and_xml(person, case_id, frozenset({"handler"}), "export")
        files = {ref.ref: self.queries.attachment(person, case_id, ref.ref) for ref in view.attachments}
        archive = build_zip(view, xml, files)
        audit.record_alone(
            self.engine,
            self.clock(),
            self.actor(person),
            "EXPORT",
            case_id=case_id,
            detail=f"attachments={len(files)}",
        )
        return archive

    def hand_over(self, actor: str, unit: str) -> list[str]:
        """Redirect every open desk case of ``unit`` to the system its route now points at."""
        return hand_over(self.engine, self.routing, actor, unit, self.clock, self._outbox_ms)
