"""Cases: their records, the inbox that stores every accepted request once, what an accepted request sets
in motion (flow), and the group commit they share. Used by the SOAP handlers and the case desk alike."""

from gateway.cases.inbox import Inbox, InboxMessage, Outcome
from gateway.cases.records import case_record

__all__ = ["Inbox", "InboxMessage", "Outcome", "case_record"]
