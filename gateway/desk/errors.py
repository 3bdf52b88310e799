"""The desk's exception tree: what a person asked for that the desk will not do, and why.

    DeskError (GatewayError)   root (HTTP 400, exit code 1)
    ├── Forbidden              the person has no role for this case or unit (HTTP 403, exit code 7); audited
    ├── CaseNotFound           no case with that id, or no attachment with that ref (HTTP 404, exit code 3)
    ├── NoSuchGrant            the grant to revoke is not there (HTTP 404, exit code 3)
    ├── Conflict               the case changed since the person read it: optimistic locking (HTTP 409,
    │                          exit code 8); read it again and decide again
    └── Refused                the state machine or a desk rule said no (HTTP 422, exit code 1), with a
                               ``sub_code`` naming the rule (e.g. CASE_CLOSED, MOVE_NOT_SUPPORTED)

Messages are one line, in Swedish where a person reads them in the desk, and never hold free text from a
case or a personal identity number. The CLI prints them as every other gateway error (``gateway: …``).
"""

from __future__ import annotations

from gateway.errors import GatewayError

__all__ = ["CaseNotFound", "Conflict", "DeskError", "Forbidden", "NoSuchGrant", "Refused"]


class DeskError(GatewayError):
    """Root of the desk's errors; each knows its HTTP status (web app) and exit code (CLI)."""

    http_status: int = 400
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Forbidden(DeskError):
    """The person may not see or do this (no active grant with the needed role covers the case's unit)."""

    http_status = 403
    exit_code = 7


class CaseNotFound(DeskError):
    """No such case (or attachment) in the desk."""

    http_status = 404
    exit_code = 3


class NoSuchGrant(DeskError):
    """The person holds no active grant of that role on that scope."""

    http_status = 404
    exit_code = 3


class Conflict(DeskError):
    """The case changed since the version the person acted on; nothing was written."""

    http_status = 409
    exit_code = 8

    def __init__(
        self, message: str = "Ärendet har ändrats sedan du öppnade det; läs om det och försök igen"
    ) -> None:
        super().__init__(message)


class Refused(DeskError):
    """The state machine or a desk rule refused the action; ``sub_code`` names the rule."""

    http_status = 422
    exit_code = 1

    def __init__(self, sub_code: str, message: str) -> None:
        super().__init__(message)
        self.sub_code = sub_code
