"""``Desk``: the one object the web app and the CLI use to read and act on the cases of the case desk.

Every method takes the acting person's HSA-id first and checks their grants before it reads or writes
anything; a refusal is audited. Each change is one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from sqlalchemy import Engine

from contracts.codelists import CodeLists
from gateway.config import Config
from gateway.desk.model import Action, CasePage, CaseView, Grant
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
    ) -> None:
        self.engine = engine
        self.routing = routing
        self.config = config
        self.code_lists = code_lists
        self.clock = clock

    # -- access -------------------------------------------------------------------------------------------
    def grants(self, person: str) -> list[Grant]:
        """The person's active grants."""
        raise NotImplementedError

    def roles_for(self, person: str, unit: str) -> set[str]:
        """The person's roles on ``unit``, inherited down the HSA tree of the active routing version."""
        raise NotImplementedError

    def grant(self, actor: str, person: str, scope: str, role: str) -> Grant:
        """Grant ``role`` on ``scope``; granting an active grant again returns it unchanged."""
        raise NotImplementedError

    def revoke(self, actor: str, person: str, scope: str, role: str) -> None:
        raise NotImplementedError

    def units(self, person: str) -> list[tuple[str, str]]:
        """(hsa_id, name) of every unit and patient board whose cases the person may see."""
        raise NotImplementedError

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
        raise NotImplementedError

    def case(self, person: str, case_id: str) -> CaseView:
        raise NotImplementedError

    def attachment(self, person: str, case_id: str, ref: str) -> tuple[str, str, bytes]:
        """(file name, mime type, content) of one attachment of the case."""
        raise NotImplementedError

    def standard_answers(self) -> list[tuple[str, str, str]]:
        """(code, displayName, text) of every standard answer."""
        raise NotImplementedError

    # -- acting -------------------------------------------------------------------------------------------
    def act(self, person: str, case_id: str, version: int, action: Action) -> int:
        """Do ``action`` on the case as seen at ``version``; the case's new version."""
        raise NotImplementedError

    def export(self, person: str, case_id: str) -> bytes:
        """The case as one ZIP: the RegisterCase as received, the timeline, every attachment."""
        raise NotImplementedError

    def hand_over(self, actor: str, unit: str) -> list[str]:
        """Redirect every open desk case of ``unit`` to the system its route now points at."""
        raise NotImplementedError
