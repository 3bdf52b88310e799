"""The case desk: the gateway's own handler for units that do not integrate.

Handlers and readers see the cases of the units they are granted (inherited down the HSA tree), read each
case as the citizen filed it with a timeline derived from the stored messages, and act on it: every action
is one transaction that the shared state machine judges, that bumps the case's optimistic-lock version,
is audited, and ends in an UpdateCase message to 1177 through the outbox. The web app and the CLI use only
what this module exports.
"""

from gateway.desk.errors import CaseNotFound, Conflict, DeskError, Forbidden, NoSuchGrant, Refused
from gateway.desk.model import (
    ACTION_KINDS,
    ROLES,
    Action,
    AttachmentRef,
    CasePage,
    CaseSummary,
    CaseView,
    CodeText,
    Grant,
    NewAttachment,
    PersonView,
    TimelineEvent,
)
from gateway.desk.service import Desk

__all__ = [
    "ACTION_KINDS",
    "ROLES",
    "Action",
    "AttachmentRef",
    "CaseNotFound",
    "CasePage",
    "CaseSummary",
    "CaseView",
    "CodeText",
    "Conflict",
    "Desk",
    "DeskError",
    "Forbidden",
    "Grant",
    "NewAttachment",
    "NoSuchGrant",
    "PersonView",
    "Refused",
    "TimelineEvent",
]
