"""The web app's protections that do not depend on a page: CSRF tokens, response headers, fetch metadata.

CSRF: the browser presents the person's client certificate to any page that asks, so a form on another
site could make it post to the desk with the person's identity. Every form therefore carries a token, an
HMAC under the app's secret key of the person's HSA-id, the form (the path it posts to) and the time it was
made; every POST checks it. Nothing is kept on the server and no cookie is set.

Fetch metadata: a request that the browser marks ``Sec-Fetch-Site: cross-site`` is refused unless it is a
person following a link to a page (a top-level GET navigation), so another site can neither post, embed an
attachment, nor start an export (browsers without these headers are covered by the token and the CSP).

This module never logs a token or the key.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from gateway.errors import ConfigError

__all__ = [
    "CSP",
    "SECURITY_HEADERS",
    "CsrfTokens",
    "cross_site_refused",
    "load_or_create_key",
]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

#: sent with every response, pages, JSON, files and errors alike
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

_KEY_BYTES = 32
_MIN_KEY_BYTES = 16


def load_or_create_key(path: Path) -> bytes:
    """The secret key in ``path``; created (32 random bytes as hex, mode 0600) when there is none yet.

    Several serving processes may start at once: the key is written to a private temporary file and
    hard-linked into place, which fails if another process was first; then everyone reads the winner's key.
    """
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_hex(_KEY_BYTES) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                with contextlib.suppress(FileExistsError):  # another process was first: use its key
                    os.link(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"config: web.secret_key_file: cannot create {path}: {exc.strerror or exc}"
            ) from None
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"config: web.secret_key_file: cannot read {path}: {exc.strerror or exc}") from None
    if len(key) < _MIN_KEY_BYTES:
        raise ConfigError(
            f"config: web.secret_key_file: {path} holds fewer than {_MIN_KEY_BYTES} bytes: use a longer key"
        )
    return key


class CsrfTokens:
    """Make and check form tokens: ``<unix time>.<HMAC-SHA256 of person, form and time, base64url>``.

    ``max_age`` is how long a page may stay open before its forms must be reloaded (a working day); a token
    from the future (beyond ``skew`` seconds) is refused.
    """

    def __init__(
        self,
        key: bytes,
        *,
        max_age: float = 12 * 3600,
        skew: float = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self.max_age = max_age
        self.skew = skew
        self._clock = clock

    def _mac(self, person: str, form: str, stamp: int) -> str:
        message = "\n".join((person, form, str(stamp))).encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def make(self, person: str, form: str) -> str:
        stamp = int(self._clock())
        return f"{stamp}.{self._mac(person, form, stamp)}"

    def check(self, token: str | None, person: str, form: str) -> str | None:
        """None when ``token`` is valid for this person and form now, else the reason (English, for logs)."""
        if not token:
            return "no CSRF token"
        stamp_text, dot, mac = token.partition(".")
        if not dot or not stamp_text.isdigit() or len(stamp_text) > 12:
            return "malformed CSRF token"
        stamp = int(stamp_text)
        now = self._clock()
        if stamp > now + self.skew:
            return "CSRF token from the future"
        if now - stamp > self.max_age:
            return "CSRF token expired"
        if not hmac.compare_digest(mac.encode(), self._mac(person, form, stamp).encode()):
            return "CSRF token does not match this person and form"
        return None


def cross_site_refused(method: str, headers: Mapping[str, str], *, page: bool) -> bool:
    """True when fetch metadata says another site caused this request and it is not a link to a page."""
    site = headers.get("Sec-Fetch-Site", "").lower()
    if site != "cross-site":
        return False  # same-origin, same-site, none (typed in, bookmark) or an old browser
    navigation = headers.get("Sec-Fetch-Mode", "").lower() == "navigate"
    document = headers.get("Sec-Fetch-Dest", "document").lower() == "document"
    return not (page and method in ("GET", "HEAD") and navigation and document)
