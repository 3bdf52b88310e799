"""Retry and circuit-breaker policy as values, and the classification of delivery outcomes.

Nothing here sleeps or reads a clock: callers pass ``now_ms`` and a random source, so tests run a day of
outage in milliseconds and get the same schedule every time.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

__all__ = ["BreakerPolicy", "Delivery", "Kind", "QuarantinePolicy", "RetryPolicy"]


class Kind(enum.Enum):
    SUCCESS = "success"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Delivery:
    """What one delivery attempt came to."""

    kind: Kind
    detail: str
    http_status: int | None = None
    retry_after_ms: int | None = None


@dataclass(frozen=True)
class RetryPolicy:
    base_ms: int = 1_000
    cap_ms: int = 300_000
    max_attempts: int = 25
    max_age_ms: int = 7 * 24 * 3600 * 1000
    #: delays are drawn from [delay * (1 - jitter), delay]
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay_ms(self, attempts: int, retry_after_ms: int | None = None) -> int:
        """The pause before the next attempt, after ``attempts`` attempts have failed."""
        exponent = min(max(attempts - 1, 0), 30)
        delay = min(self.cap_ms, self.base_ms * (2**exponent))
        delay = int(delay * (1 - self.jitter * self.rng.random()))
        if retry_after_ms is not None:
            delay = max(delay, min(retry_after_ms, self.cap_ms))
        return max(int(delay), 1)

    def give_up(self, attempts: int, created_ms: int, now_ms: int) -> str | None:
        """Why a transient failure should now be a dead letter, or None to retry."""
        if attempts >= self.max_attempts:
            return f"gave up after {attempts} attempts"
        if now_ms - created_ms >= self.max_age_ms:
            return f"gave up after {(now_ms - created_ms) // 1000} s undelivered"
        return None


@dataclass(frozen=True)
class BreakerPolicy:
    #: consecutive transient failures that open a destination's breaker
    threshold: int = 5
    #: first pause; it doubles for each open in a row up to max_open_ms
    open_ms: int = 5_000
    max_open_ms: int = 60_000
    #: after recovery, messages allowed in flight double per success until this many
    ramp_limit: int = 64

    def pause_ms(self, opens: int) -> int:
        return int(min(self.max_open_ms, self.open_ms * 2 ** max(opens - 1, 0)))


@dataclass(frozen=True)
class QuarantinePolicy:
    """What happens to a suspect: a message whose lease expired because its worker died or stalled with it.

    The first retry comes at once (the crash already cost a lease time); each further death in a row waits
    ``backoff_ms`` doubling up to ``max_backoff_ms``. A suspect becomes a dead letter only on evidence: it was
    in flight alone (its worker held nothing else) at ``deaths`` deaths in a row, all within ``window_ms``.
    A completed attempt, whatever its outcome, ends the quarantine.
    """

    backoff_ms: int = 60_000
    max_backoff_ms: int = 900_000
    deaths: int = 3
    window_ms: int = 600_000

    def delay_ms(self, deaths_in_a_row: int) -> int:
        """The pause before the next attempt after ``deaths_in_a_row`` deaths without a completed attempt."""
        if deaths_in_a_row <= 1:
            return 0
        return int(min(self.max_backoff_ms, self.backoff_ms * 2 ** min(deaths_in_a_row - 2, 30)))

    def shortest_evidence_ms(self, lease_ms: int) -> int:
        """The shortest time in which ``deaths`` alone deaths can happen in a row, when the first death of a
        run is not alone (a suspect is claimed alone only from its second try on): the backoffs between
        them plus a lease time each for the death to be noticed."""
        return sum(self.delay_ms(k) + lease_ms for k in range(2, self.deaths + 1))
