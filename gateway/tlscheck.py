"""Checks of the TLS material a configuration names, before it is used and while it is in use.

``check_tls_material`` loads every certificate, key, trust store and CRL of ``[tls]`` and the outbound
client identity of ``[outbox]`` the way the gateway will use them, and says for each what is wrong or
about to be: a file that does not parse, a key that does not belong to its certificate, a certificate that
does not chain to the trust store, has expired, is not yet valid or expires soon, a CRL that is not from a
trusted CA, has passed its nextUpdate or soon will, no CRL at all. Finally the server and client
``ssl.SSLContext`` are built from the files, so OpenSSL accepts what was checked here. ``gateway
check-config`` prints the findings, ``gateway serve`` refuses to start on an error (``TlsMaterialError``,
exit code 6) and logs the warnings, and readiness (``TlsMonitor``) turns false while the server's own
material is unusable, so that a total outage of every handshake is visible.

Messages name the configuration key, the file and the problem in one line; they never contain key
material.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from gateway.config import Config, OutboxConfig, TlsConfig
from gateway.errors import TlsMaterialError
from gateway.soap.tls import client_context, server_context

__all__ = [
    "Finding",
    "TlsMonitor",
    "TlsReport",
    "check_before_start",
    "check_tls_material",
]

Status = Literal["ok", "warning", "error"]
NO_CRL_WARNING = "revoked certificates are accepted: tls.crl is not set"
_MAX_CHAIN = 8


@dataclass(frozen=True)
class Finding:
    """One check: which setting, which file, its status and a one-line message."""

    check: str
    status: Status
    message: str
    file: Path | None = None

    @property
    def line(self) -> str:
        """``check: file: message``; a finding about no file says which setting in its message."""
        return f"{self.check}: {self.file}: {self.message}" if self.file is not None else self.message

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "file": str(self.file) if self.file is not None else None,
            "status": self.status,
            "message": self.message,
        }


@dataclass(frozen=True)
class TlsReport:
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "warning"]

    def raise_for_errors(self) -> None:
        """``TlsMaterialError`` naming the first error (and how many more there are), if any."""
        errors = self.errors
        if errors:
            more = f" (and {len(errors) - 1} more: see gateway check-config)" if len(errors) > 1 else ""
            raise TlsMaterialError(errors[0].line + more)


class _Problem(Exception):
    """A check failed; the message is the one line for the finding."""


@dataclass
class _Checks:
    now: datetime
    warn_days: int
    crl_warn_days: int
    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, status: Status, message: str, file: Path | None = None) -> None:
        self.findings.append(Finding(check, status, message, file))

    # -- reading ------------------------------------------------------------------------------------------
    @staticmethod
    def read(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise _Problem("file not found") from None
        except PermissionError:
            raise _Problem("not readable by this user (permission denied)") from None
        except IsADirectoryError:
            raise _Problem("is a directory, not a file") from None
        except OSError as exc:
            raise _Problem(f"cannot be read: {exc.strerror or exc}") from None

    def certificates(self, path: Path) -> list[x509.Certificate]:
        data = self.read(path)
        try:
            if b"-----BEGIN" in data:
                certs = x509.load_pem_x509_certificates(data)
            else:
                certs = [x509.load_der_x509_certificate(data)]
        except ValueError:
            raise _Problem("not a certificate (expected PEM or DER X.509)") from None
        if not certs:
            raise _Problem("holds no certificate")
        return certs

    def private_key(self, path: Path) -> PrivateKeyTypes:
        data = self.read(path)
        try:
            if b"-----BEGIN" in data:
                return serialization.load_pem_private_key(data, password=None)
            return serialization.load_der_private_key(data, password=None)
        except TypeError:
            raise _Problem("the key is encrypted; the gateway needs it unencrypted (mode 0600)") from None
        except (ValueError, UnsupportedAlgorithm):
            raise _Problem("not a private key (expected unencrypted PEM or DER)") from None

    def crls(self, path: Path) -> list[x509.CertificateRevocationList]:
        data = self.read(path)
        try:
            if b"-----BEGIN" in data:
                blocks = _pem_blocks(data, b"X509 CRL")
                if not blocks:
                    raise _Problem("holds no CRL (expected PEM blocks 'BEGIN X509 CRL' or DER)")
                return [x509.load_pem_x509_crl(block) for block in blocks]
            return [x509.load_der_x509_crl(data)]
        except ValueError:
            raise _Problem("not a CRL (expected PEM or DER X.509 CRL)") from None

    # -- judging ------------------------------------------------------------------------------------------
    def validity(self, cert: x509.Certificate, what: str) -> tuple[Status, str]:
        """Error when expired or not yet valid, warning when it expires within ``warn_days``."""
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        if self.now < start:
            raise _Problem(f"{what} is not valid before {_day(start)} (notBefore)")
        if self.now >= end:
            raise _Problem(f"{what} expired on {_day(end)} (notAfter)")
        left = end - self.now
        if left <= timedelta(days=self.warn_days):
            return "warning", f"{what} expires in {_span(left)}, on {_day(end)}: renew it"
        return "ok", f"{what} {_subject(cert)} valid until {_day(end)}"

    def chain(
        self,
        leaf: x509.Certificate,
        extra: list[x509.Certificate],
        anchors: list[x509.Certificate],
        store: str,
    ) -> str:
        """The subject of the trusted CA that ``leaf`` chains to (through ``extra`` intermediates); the
        problem completes a sentence that starts with the certificate."""
        current = leaf
        for _ in range(_MAX_CHAIN):
            for ca in anchors:
                if _issued_by(current, ca):
                    if not ca.not_valid_before_utc <= self.now < ca.not_valid_after_utc:
                        raise _Problem(f"is issued by {_subject(ca)}, which is outside its validity period")
                    return _subject(ca)
            parent = next((c for c in extra if c is not current and _issued_by(current, c)), None)
            if parent is None:
                raise _Problem(
                    f"is not issued by a CA in {store} (its issuer is {current.issuer.rfc4514_string()})"
                )
            if not parent.not_valid_before_utc <= self.now < parent.not_valid_after_utc:
                raise _Problem(f"has an intermediate CA {_subject(parent)} outside its validity period")
            current = parent
        raise _Problem(f"has a chain to {store} longer than {_MAX_CHAIN} certificates")


def _pem_blocks(data: bytes, label: bytes) -> list[bytes]:
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    blocks, at = [], 0
    while (start := data.find(begin, at)) >= 0:
        stop = data.find(end, start)
        if stop < 0:
            raise ValueError("unterminated PEM block")
        blocks.append(data[start : stop + len(end)])
        at = stop + len(end)
    return blocks


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def _day(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _span(left: timedelta) -> str:
    if left >= timedelta(days=2):
        return f"{left.days} days"
    return f"{max(1, int(left.total_seconds() // 3600))} hours"


def _public_der(key: Any) -> bytes:
    return bytes(
        key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    return str(reason).replace("_", " ").lower()


def _check_identity(
    checks: _Checks,
    cert_key: str,
    cert_path: Path,
    key_key: str,
    key_path: Path,
    anchors_key: str,
    anchors: list[x509.Certificate] | None,
    what: str,
) -> bool:
    """Certificate parses, is valid now, chains to ``anchors``; its key parses and matches. True if usable."""
    try:
        certs = checks.certificates(cert_path)
        status, message = checks.validity(certs[0], what)
    except _Problem as problem:
        checks.add(cert_key, "error", str(problem), cert_path)
        return False
    usable = True
    if anchors is not None:
        try:
            ca = checks.chain(certs[0], certs[1:], anchors, anchors_key)
            message += f", issued under {ca}" if status == "ok" else ""
        except _Problem as problem:
            checks.add(cert_key, "error", f"{what} {problem}", cert_path)
            usable = False
    if usable:
        checks.add(cert_key, status, message, cert_path)
    try:
        key = checks.private_key(key_path)
        if _public_der(key.public_key()) != _public_der(certs[0].public_key()):
            raise _Problem(f"does not belong to the certificate in {cert_key} ({cert_path})")
        checks.add(key_key, "ok", "matches its certificate", key_path)
    except _Problem as problem:
        checks.add(key_key, "error", str(problem), key_path)
        usable = False
    return usable


def _check_trust_store(checks: _Checks, key: str, path: Path) -> list[x509.Certificate] | None:
    try:
        anchors = checks.certificates(path)
    except _Problem as problem:
        checks.add(key, "error", str(problem), path)
        return None
    expired = [c for c in anchors if c.not_valid_after_utc <= checks.now]
    usable = [c for c in anchors if c not in expired]
    if not usable:
        checks.add(key, "error", "every CA certificate in it has expired", path)
        return None
    if expired:
        names = ", ".join(_subject(c) for c in expired[:3])
        checks.add(key, "warning", f"holds expired CA certificates ({names}): replace them", path)
    else:
        checks.add(key, "ok", f"{len(anchors)} CA certificate(s)", path)
    return anchors


def _check_crl(checks: _Checks, tls: TlsConfig, anchors: list[x509.Certificate] | None) -> None:
    if tls.crl is None:
        checks.add("tls.crl", "warning", NO_CRL_WARNING)
        return
    path = tls.crl
    try:
        crls = checks.crls(path)
    except _Problem as problem:
        checks.add("tls.crl", "error", f"{problem}: every caller is refused until it is fixed", path)
        return
    if anchors is None:
        return  # the trust store's own error says it
    worst: tuple[Status, str] = ("ok", "")
    for crl in crls:
        issuer = crl.issuer.rfc4514_string() or "(empty issuer)"
        cas = [ca for ca in anchors if ca.subject == crl.issuer]
        if not cas:
            checks.add(
                "tls.crl",
                "error",
                f"issued by {issuer}, which is not a CA in tls.trust_store: every caller is refused",
                path,
            )
            return
        if not any(crl.is_signature_valid(ca.public_key()) for ca in cas):  # type: ignore[arg-type]
            checks.add(
                "tls.crl",
                "error",
                f"its signature does not verify with the key of {issuer} in tls.trust_store "
                "(a CRL of another CA with the same name?): every caller is refused",
                path,
            )
            return
        if crl.last_update_utc > checks.now:
            checks.add("tls.crl", "error", f"not valid before {_day(crl.last_update_utc)} (thisUpdate)", path)
            return
        next_update = crl.next_update_utc
        if next_update is None:
            continue
        if next_update <= checks.now:
            checks.add(
                "tls.crl",
                "error",
                f"expired on {_day(next_update)} (nextUpdate): every caller is refused until a new CRL "
                "is installed",
                path,
            )
            return
        left = next_update - checks.now
        if left <= timedelta(days=checks.crl_warn_days) and worst[0] == "ok":
            worst = ("warning", f"expires in {_span(left)}, on {_day(next_update)} (nextUpdate): renew it")
    if worst[0] == "warning":
        checks.add("tls.crl", "warning", worst[1], path)
    else:
        revoked = sum(len(crl) for crl in crls)
        checks.add("tls.crl", "ok", f"{len(crls)} CRL(s), {revoked} revoked certificate(s)", path)


def _names_host(cert: x509.Certificate, host: str) -> bool:
    """Whether the certificate's subjectAltName covers ``host`` (a DNS name, one-label wildcard, or IP)."""
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        return address in names.get_values_for_type(x509.IPAddress)
    wanted = host.lower().rstrip(".")
    for name in names.get_values_for_type(x509.DNSName):
        name = name.lower().rstrip(".")
        if name == wanted:
            return True
        if name.startswith("*.") and "." in wanted and wanted.split(".", 1)[1] == name[2:]:
            return True
    return False


def _check_public_name(checks: _Checks, tls: TlsConfig, public_url: str) -> None:
    """A warning when callers that use ``server.public_url`` would refuse the server certificate."""
    host = urlsplit(public_url).hostname
    if not host:
        return
    try:
        leaf = x509.load_pem_x509_certificates(tls.certificate.read_bytes())[0]
    except (OSError, ValueError, IndexError):
        return  # reported by the certificate's own check
    if not _names_host(leaf, host):
        checks.add(
            "tls.certificate",
            "warning",
            f"the server certificate does not name {host}, the host of server.public_url: callers that use "
            "it will refuse the certificate (host name mismatch)",
            tls.certificate,
        )


def _check_server(checks: _Checks, tls: TlsConfig) -> None:
    anchors = _check_trust_store(checks, "tls.trust_store", tls.trust_store)
    usable = _check_identity(
        checks,
        "tls.certificate",
        tls.certificate,
        "tls.private_key",
        tls.private_key,
        "tls.trust_store",
        anchors,
        "the server certificate",
    )
    _check_crl(checks, tls, anchors)
    if usable and anchors is not None and not any(f.status == "error" for f in checks.findings):
        try:
            server_context(tls)
        except (ssl.SSLError, OSError, ValueError) as exc:
            checks.add("tls", "error", f"OpenSSL refuses the [tls] material: {_ssl_reason(exc)}")


def _check_outbox(checks: _Checks, outbox: OutboxConfig, tls: TlsConfig) -> None:
    trust = outbox.trust_store or tls.trust_store
    if outbox.trust_store is not None:
        anchors = _check_trust_store(checks, "outbox.trust_store", outbox.trust_store)
    else:
        anchors = None
    if outbox.client_certificate is None or outbox.client_key is None:
        return
    # The receivers' CA is not ours to know; the gateway's client certificate normally comes from the CA
    # that signs its callers' certificates (tls.trust_store), else from the receivers' (outbox.trust_store).
    callers = _quiet_certificates(tls.trust_store)
    own = callers + (anchors or [])
    trusted = anchors is not None if outbox.trust_store is not None else bool(callers)
    before = len(checks.findings)
    usable = _check_identity(
        checks,
        "outbox.client_certificate",
        outbox.client_certificate,
        "outbox.client_key",
        outbox.client_key,
        "tls.trust_store or outbox.trust_store",
        own or None,
        "the gateway's client certificate",
    )
    if usable and trusted and not any(f.status == "error" for f in checks.findings[before:]):
        try:
            client_context(trust, outbox.client_certificate, outbox.client_key)
        except (ssl.SSLError, OSError, ValueError) as exc:
            checks.add(
                "outbox.client_certificate",
                "error",
                f"OpenSSL refuses the client certificate and key: {_ssl_reason(exc)}",
                outbox.client_certificate,
            )


def _quiet_certificates(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        return []


def check_tls_material(
    config: Config, *, now: datetime | None = None, include_outbox: bool = True
) -> TlsReport:
    """Every finding about the TLS files of ``config`` (server side, and the outbound identity)."""
    checks = _Checks(
        now=now or datetime.now(UTC),
        warn_days=config.tls.expiry_warning_days,
        crl_warn_days=config.tls.crl_warning_days,
    )
    _check_server(checks, config.tls)
    _check_public_name(checks, config.tls, config.server.public_url)
    if include_outbox:
        _check_outbox(checks, config.outbox, config.tls)
    return TlsReport(tuple(checks.findings))


def check_before_start(config: Config, log: logging.Logger) -> None:
    """For ``gateway serve``: warnings logged at WARNING, the first error raised as ``TlsMaterialError``."""
    report = check_tls_material(config)
    for finding in report.warnings:
        log.warning(
            finding.line,
            extra={"fields": {"check": finding.check, "file": str(finding.file) if finding.file else None}},
        )
    report.raise_for_errors()


def _stamp(paths: Iterable[Path | None]) -> tuple[Any, ...]:
    stamp: list[Any] = []
    for path in paths:
        if path is None:
            stamp.append(None)
            continue
        try:
            st = os.stat(path)
            stamp.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError as exc:
            stamp.append(exc.errno)
    return tuple(stamp)


class TlsMonitor:
    """Readiness of the server's TLS material: ``(ok, detail)``, cached while its files stay the same.

    Readiness is polled often; the files are checked again when one of them changes, and at least every
    ``max_age`` seconds, since certificates and CRLs expire while nothing changes on disk.
    """

    def __init__(
        self,
        config: Config,
        max_age: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._config = config
        self._tls = config.tls
        self._max_age = max_age
        self._clock = clock
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._cached: tuple[tuple[Any, ...], float, tuple[bool, str]] | None = None

    def _check(self) -> tuple[bool, str]:
        report = check_tls_material(self._config, now=self._now(), include_outbox=False)
        if report.errors:
            return False, "; ".join(f.line for f in report.errors)
        warnings = [f.line for f in report.warnings]
        return True, "ok" + "".join(f"; warning: {w}" for w in warnings)

    def __call__(self) -> tuple[bool, str]:
        tls = self._tls
        stamp = _stamp([tls.certificate, tls.private_key, tls.trust_store, tls.crl])
        with self._lock:
            cached = self._cached
            if cached is not None and cached[0] == stamp and self._clock() - cached[1] < self._max_age:
                return cached[2]
            state = self._check()
            self._cached = (stamp, self._clock(), state)
            return state
