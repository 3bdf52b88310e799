"""Durable outbox: store-and-forward delivery to deviation systems and to 1177.

The database is the broker (``outbox.store`` holds all SQL); ``outbox.worker`` delivers with
``outbox.transport``. Uses ``contracts`` at most: endpoints arrive as ``EndpointSpec`` values from the caller.
"""

from outbox.policy import BreakerPolicy, Delivery, Kind, QuarantinePolicy, RetryPolicy
from outbox.store import Claimed, NewMessage, OutboxStore, enqueue, now_ms
from outbox.transport import ClientIdentity, EndpointSpec, SoapTransport
from outbox.worker import Worker

__all__ = [
    "BreakerPolicy",
    "Claimed",
    "ClientIdentity",
    "Delivery",
    "EndpointSpec",
    "Kind",
    "NewMessage",
    "OutboxStore",
    "QuarantinePolicy",
    "RetryPolicy",
    "SoapTransport",
    "Worker",
    "enqueue",
    "now_ms",
]
