"""What of a request may be shown in a log line: format checks, pseudonyms, a personal-number scrubber.

A value that comes from a request (a LogicalAddress, a caller's HSA-id, a caseId, a header) is shown only
when it passes its format check: ``safe_hsa_id`` (the routing catalogue's HSA-id rule) or ``safe_id``
(``[A-Za-z0-9._:-]{1,64}``), and holds nothing shaped like a personal identity number. Otherwise it is shown
as its pseudonym: ``h:`` and 8 hex digits of HMAC-SHA256 under a key. The hash is keyed because a plain hash
of a personal identity number is undone by hashing every possible number (a few hundred million); the key
is ``log.hash_key_file`` (the same pseudonyms in every process and after restarts) or, without one, random
per process (a value then has another pseudonym in another process).

Shaped like a personal identity number (personnummer, samordningsnummer): 12 digits starting 18, 19 or 20,
10 digits, or 6 or 8 digits, a dash or plus and 4 digits, whose month is 01-12 and day 01-31 (or 61-91), in
any longer run of digits too. HSA-ids built on an organisation number (month digits 20 and up) pass.
``scrub`` replaces such parts of any text; the log formatters apply it to every line as a last line of
defence.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import threading

from routing.model import HSA_ID

__all__ = [
    "is_pseudonym",
    "keyed",
    "looks_like_personal_number",
    "pseudonym",
    "safe_hsa_id",
    "safe_id",
    "scrub",
    "set_hash_key",
]

#: identifiers such as caseId, messageId, correlation ids: short, no spaces, no quotes
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_SIX_DIGITS = re.compile(r"[0-9]{6}")

_key_lock = threading.Lock()
_hash_key: bytes | None = None


def set_hash_key(key: bytes | None) -> None:
    """Key the pseudonyms (None: a random key for this process)."""
    global _hash_key
    with _key_lock:
        _hash_key = key if key else secrets.token_bytes(32)
        for cached in (scrub, safe_hsa_id, safe_id):  # their answers hold pseudonyms under the old key
            cached.cache_clear()


def keyed() -> bool:
    """True once a key is set (``set_hash_key``; forked processes keep their parent's)."""
    return _hash_key is not None


def pseudonym(value: str) -> str:
    """``h:`` and 8 hex digits of a keyed hash of ``value``: the same value gives the same pseudonym."""
    key = _hash_key
    if key is None:
        set_hash_key(None)
        key = _hash_key
    assert key is not None
    digest = hmac.new(key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return "h:" + digest[:8]


_PSEUDONYM = re.compile(r"h:[0-9a-f]{8}")


def is_pseudonym(value: str) -> bool:
    """True for what ``pseudonym`` returns (so a value is not hashed twice)."""
    return bool(_PSEUDONYM.fullmatch(value))


_DATE = r"[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01]|6[1-9]|[78][0-9]|9[01])"
_CENTURY = r"(?:18|19|20)"
# 12 or 10 digits anywhere in a run of digits (a lookahead, so overlapping candidates are all found), or
# 6 or 8 digits, a dash or plus and 4 digits standing apart from other digits
_PERSONAL_NUMBER = re.compile(
    rf"(?=({_CENTURY}{_DATE}[0-9]{{4}}|{_DATE}[0-9]{{4}}))"
    rf"|(?<![0-9])({_CENTURY}?{_DATE}[-+][0-9]{{4}})(?![0-9])"
)


def _personal_number_spans(text: str) -> tuple[tuple[int, int], ...]:
    if not _SIX_DIGITS.search(text):
        return ()
    return _spans(text)


@functools.lru_cache(maxsize=4096)
def _spans(text: str) -> tuple[tuple[int, int], ...]:
    # this and the checks below are cached: log lines repeat the same values (callers, addresses,
    # routing traces) over and over, and every line of the request path goes through them
    spans = []
    for match in _PERSONAL_NUMBER.finditer(text):
        spans.append(match.span(1 if match.group(1) is not None else 2))
    return tuple(spans)


def looks_like_personal_number(text: str) -> bool:
    """True when ``text`` holds something shaped like a Swedish personal or coordination number."""
    return bool(_personal_number_spans(text))


@functools.lru_cache(maxsize=4096)
def scrub(text: str) -> str:
    """``text`` with every personal-number-shaped part replaced by its pseudonym."""
    spans = sorted(_personal_number_spans(text))
    if not spans:
        return text
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, last = [], 0
    for start, end in merged:
        out += [text[last:start], pseudonym(text[start:end])]
        last = end
    out.append(text[last:])
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def safe_hsa_id(value: str | None) -> str | None:
    """``value`` if it looks like an HSA-id (and holds no personal number), else its pseudonym."""
    if value is None:
        return None
    if HSA_ID.fullmatch(value) and not looks_like_personal_number(value):
        return value
    return pseudonym(value)


@functools.lru_cache(maxsize=4096)
def safe_id(value: str | None) -> str | None:
    """``value`` if it is a short identifier (and holds no personal number), else its pseudonym."""
    if value is None:
        return None
    if _SAFE_ID.fullmatch(value) and not looks_like_personal_number(value):
        return value
    return pseudonym(value)
