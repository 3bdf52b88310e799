"""Typed configuration: one TOML file, every key overridable by ``GATEWAY_<SECTION>_<KEY>``.

The configuration is read once (``load_config``), validated, and passed down as a frozen object; nothing
else in the code base reads the environment. Secrets are only ever given as file paths and are masked in
``repr``.

One rule for relative paths, so that a command gives the same answer from any working directory: every
relative path that comes from the TOML file, the file name in a SQLite ``database.url`` included, is
relative to the directory of that file, and so are the built-in defaults when a file is given. Paths from
environment variables (``GATEWAY_<SECTION>_<KEY>``), and the defaults when no file is given, are relative
to the current working directory. Every path is made absolute here, once: child processes and every later
``chdir`` see the same files. ``sqlite://`` and ``sqlite:///:memory:`` (in-memory databases) and SQLite
URI file names (``?uri=true``) are left as they are.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from gateway.errors import ConfigError
from outbox.policy import QuarantinePolicy

__all__ = ["Config", "WebConfig", "load_config", "web_secret_key_file", "web_tls"]

ENV_PREFIX = "GATEWAY_"
MiB = 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    bind: str = "0.0.0.0:8443"
    #: the address callers use; written into served WSDLs as soap:address
    public_url: str = "https://localhost:8443"
    workers: int = 2
    threads: int = 8
    #: seconds; the national platform waits 29 s for an answer, we must answer well before
    timeout: int = 30
    graceful_timeout: int = 10
    keepalive: int = 75
    backlog: int = 2048
    #: where `gateway serve` publishes the state of its child processes (serve.json, mode 0600) for ops
    runtime_dir: Path = Path("var/run")
    #: a child that stopped is started again after this pause, doubling per exit in a row up to the max
    restart_delay_ms: int = 1_000
    restart_max_delay_ms: int = 30_000
    #: a child that ran this long before it stopped is restarted after restart_delay_ms again
    restart_reset_ms: int = 60_000
    #: deadlines before a request reaches a serving thread (docs/adr/0004): the TLS handshake, from the
    #: connection's start; the request head, from the start (on a kept-alive connection, its first byte)
    handshake_timeout_ms: int = 5_000
    head_timeout_ms: int = 10_000
    #: a body must arrive at this average rate (bytes per second) once body_grace_ms have passed
    min_body_rate: int = 16_384
    body_grace_ms: int = 5_000
    #: concurrent connections per serving process, and per peer address within one
    max_connections: int = 4_096
    max_connections_per_peer: int = 128
    #: longest a serving thread waits for a peer to take its response
    write_timeout_ms: int = 30_000
    #: readiness fails when every serving thread of every process has been busy this long
    saturation_ms: int = 5_000


@dataclass(frozen=True)
class TlsConfig:
    certificate: Path = Path("server.pem")
    private_key: Path = field(default=Path("server.key"), repr=False)
    trust_store: Path = Path("ca.pem")
    #: CRL (PEM, one or more) of the trust store's CAs; unset, revoked client certificates are accepted
    crl: Path | None = None
    minimum_version: str = "1.2"
    #: warn (check-config, serve) when a certificate expires within this many days
    expiry_warning_days: int = 30
    #: warn when the CRL's nextUpdate is within this many days (the CRL must be renewed before it)
    crl_warning_days: int = 1


@dataclass(frozen=True)
class ProxyConfig:
    """Trusted-proxy mode: a TLS-terminating proxy forwards the client certificate in a header."""

    enabled: bool = False
    header: str = "X-SSL-Client-Cert"
    trusted_cidrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebConfig:
    """The people's web app (case desk, JSON API) on its own mutual-TLS port, with personal certificates."""

    bind: str = "0.0.0.0:8444"
    #: the address people open in their browser (links in docs and the CLI; pages use relative links)
    public_url: str = "https://localhost:8444"
    #: CA bundle for personal certificates (default: tls.trust_store); they may come from another CA
    trust_store: Path | None = None
    #: CRL for personal certificates; default: tls.crl, but only while trust_store is not set (a CRL
    #: belongs to its CA: OpenSSL refuses every leaf whose issuer has no CRL once a CRL check is on)
    crl: Path | None = None
    #: key of the forms' CSRF tokens; default: generated once into server.runtime_dir (mode 0600), shared
    #: by every serving process of this machine
    secret_key_file: Path | None = field(default=None, repr=False)
    #: the largest request accepted: 10 attachments of 20 MB (base64 in the JSON API: +33 %), and the text
    max_body_bytes: int = 300 * MiB


@dataclass(frozen=True)
class OpsConfig:
    bind: str = "127.0.0.1:8081"


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = field(default="sqlite:///var/gateway.db", repr=False)
    echo: bool = False
    #: the longest a request waits for a database write lock before it is answered VP009 (retryable);
    #: well below the national platform's 29 s timeout (SQLite busy timeout and the writers' lock queue,
    #: PostgreSQL lock_timeout)
    lock_timeout_ms: int = 10_000


@dataclass(frozen=True)
class SoapConfig:
    """Request limits. The largest body of each contract is derived (gateway.soap.limits): its attachment
    count from the XSD times the base64 size of ``max_attachment_bytes``, plus ``max_envelope_bytes``."""

    #: bytes of a request outside attachment data: envelope, header, every other element and extension
    max_envelope_bytes: int = 1 * MiB
    #: elements in one request, attachments and extension elements included
    max_elements: int = 10_000
    #: the deepest element nesting accepted in an envelope (extension elements included)
    max_depth: int = 64
    #: the decoded size of one attachment (the contracts say how many a request may carry)
    max_attachment_bytes: int = 20 * MiB
    #: requests larger than max_envelope_bytes that one server process reads and handles at once
    max_large_requests: int = 2
    #: how long such a request waits for a free slot before it is answered VP009 (retryable)
    large_request_wait_ms: int = 5_000


#: keys that were removed, with what replaces them (a one-line ConfigError names it)
REMOVED_KEYS = {
    "soap.max_body_bytes": (
        "the body limit is now derived from the contracts (attachment count x soap.max_attachment_bytes, "
        "plus soap.max_envelope_bytes); remove the key"
    ),
}


@dataclass(frozen=True)
class GatewayConfig:
    #: LogicalAddress of 1177's case service: where UpdateCase messages are addressed
    case_service_address: str = "SE5565594230-CAF1"
    #: directory with code-list files that replace the packaged ones (optional)
    code_lists: Path | None = None


@dataclass(frozen=True)
class RoutingConfig:
    #: last good catalogue version, served when the database is unreachable at start
    snapshot_file: Path = Path("var/routing-snapshot.json")
    #: how often each process checks for a newly published version
    poll_interval_ms: int = 500
    #: publish refuses a larger diff unless forced
    max_publish_changes: int = 50


@dataclass(frozen=True)
class OutboxConfig:
    #: run delivery in a child process of `gateway serve` (else run `gateway worker` separately)
    run_in_serve: bool = True
    threads: int = 8
    poll_ms: int = 100
    #: a claimed message returns to the queue this long after its worker stops heartbeating
    lease_ms: int = 10_000
    retry_base_ms: int = 1_000
    retry_cap_ms: int = 300_000
    max_attempts: int = 25
    max_age_hours: int = 168
    breaker_threshold: int = 5
    breaker_open_ms: int = 5_000
    breaker_max_open_ms: int = 60_000
    #: a message whose worker died with it is retried alone: at once, then after this pause, doubling...
    quarantine_backoff_ms: int = 60_000
    #: ...up to this pause
    quarantine_max_backoff_ms: int = 900_000
    #: it becomes a dead letter when it was in flight alone at this many deaths in a row...
    quarantine_deaths: int = 3
    #: ...within this time
    quarantine_window_ms: int = 600_000
    #: the gateway's own client certificate for deliveries (an endpoint may name its own)
    client_certificate: Path | None = None
    client_key: Path | None = field(default=None, repr=False)
    #: CA bundle for receivers' server certificates (default: tls.trust_store)
    trust_store: Path | None = None
    #: fault injection for crash tests only, e.g. "kill-before-send=CASE-1,CASE-2;kill-after-send=CASE-3"
    failpoints: str = ""


@dataclass(frozen=True)
class LogConfig:
    level: str = "INFO"
    #: auto (text on a terminal, JSON otherwise), json or text
    format: str = "auto"
    #: a failure that repeats is written once, then counted and summarised every this many seconds
    repeat_seconds: int = 30
    #: key for the pseudonyms (h:...) of request values that fail their format check; without it each
    #: process keys them at random (the same value then gets another pseudonym in another process)
    hash_key_file: Path | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    ops: OpsConfig = field(default_factory=OpsConfig)
    web: WebConfig = field(default_factory=WebConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    soap: SoapConfig = field(default_factory=SoapConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    log: LogConfig = field(default_factory=LogConfig)
    source: Path | None = None


def web_tls(config: Config) -> TlsConfig:
    """The web listener's TLS settings: the gateway's server certificate, the people's CA and CRL."""
    web = config.web
    trust_store = web.trust_store or config.tls.trust_store
    crl = web.crl if web.crl is not None else (config.tls.crl if web.trust_store is None else None)
    return dataclasses.replace(config.tls, trust_store=trust_store, crl=crl)


def web_secret_key_file(config: Config) -> Path:
    """Where the web app's CSRF key is: ``web.secret_key_file``, or generated into the runtime directory."""
    return config.web.secret_key_file or config.server.runtime_dir / "web-secret.key"


def _sections() -> dict[str, type[Any]]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config) if f.name != "source"}


def _convert(where: str, hint: Any, value: Any, base: Path, from_env: bool) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):  # Optional[X]
        inner = next(a for a in args if a is not type(None))
        if value is None or value == "":
            return None
        return _convert(where, inner, value, base, from_env)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if from_env and str(value).lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return str(value).lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"config: {where}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(f"config: {where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config: {where}: expected an integer, got {value!r}") from None
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config: {where}: expected a string, got {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"config: {where}: expected a file path, got {value!r}")
        return _absolute_path(Path(value), base)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"config: {where}: expected a list of strings, got {value!r}")
        return tuple(value)
    raise ConfigError(f"config: {where}: unsupported setting type")  # pragma: no cover


def _absolute_path(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else base / path


def resolve_database_url(url: str, base: Path) -> str:
    """``url`` with a relative SQLite file name made absolute against ``base``; other URLs unchanged."""
    if not url.startswith("sqlite"):
        return url
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("config: database.url: not a valid database URL") from None
    database = parsed.database or ""
    if not database or database == ":memory:" or parsed.query.get("uri") == "true":
        return url
    absolute = _absolute_path(Path(database), base)
    if absolute == Path(database):
        return url
    return parsed.set(database=str(absolute)).render_as_string(hide_password=False)


def _parse_env(env: Mapping[str, str], sections: Mapping[str, type[Any]]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name.startswith("GATEWAY_TEST_"):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        for section in sections:
            if rest.startswith(section + "_"):
                found.setdefault(section, {})[rest[len(section) + 1 :]] = value
                break
    return found


def load_config(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (optional), apply environment overrides, validate, and return the config."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    base = Path.cwd()
    source: Path | None = None
    if path is not None:
        source = Path(path).expanduser().resolve()
        try:
            with source.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config: file not found: {source}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {source}: invalid TOML: {exc}") from None
        base = source.parent
    sections = _sections()
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"config: unknown section [{unknown[0]}]")
    env_values = _parse_env(env, sections)
    built: dict[str, Any] = {}
    for section, cls in sections.items():
        raw = data.get(section, {})
        if not isinstance(raw, dict):
            raise ConfigError(f"config: [{section}] must be a table")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        for key in raw:
            if key not in names:
                _unknown_key(section, key, "")
        for key in env_values.get(section, {}):
            if key not in names:
                variable = f"{ENV_PREFIX}{section}_{key}".upper()
                _unknown_key(section, key, f" (from {variable})")
        kwargs: dict[str, Any] = {}
        for key in names:
            if key in env_values.get(section, {}):
                origin = Path.cwd()
                kwargs[key] = _convert(f"{section}.{key}", hints[key], env_values[section][key], origin, True)
            elif key in raw:
                origin = base
                kwargs[key] = _convert(f"{section}.{key}", hints[key], raw[key], origin, False)
            else:
                origin = base
                default = _default(cls, key)
                if isinstance(default, Path):
                    kwargs[key] = _absolute_path(default, origin)
            if (section, key) == ("database", "url"):
                given = kwargs.get(key, _default(cls, key))
                if isinstance(given, str):
                    kwargs[key] = resolve_database_url(given, origin)
        built[section] = cls(**kwargs)
    config = Config(**built, source=source)
    validate(config)
    return config


def _default(cls: type[Any], key: str) -> Any:
    found = next(f for f in dataclasses.fields(cls) if f.name == key)
    return found.default


def _unknown_key(section: str, key: str, origin: str) -> NoReturn:
    removed = REMOVED_KEYS.get(f"{section}.{key}")
    if removed:
        raise ConfigError(f"config: {section}.{key}{origin} is no longer used: {removed}")
    raise ConfigError(f"config: unknown key {section}.{key}{origin}")


def _check_bind(where: str, bind: str) -> None:
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ConfigError(f"config: {where}: expected HOST:PORT, got {bind!r}")


def _check_file(where: str, path: Path | None) -> None:
    if path is None:
        return
    if not path.is_file():
        raise ConfigError(f"config: {where}: file not found: {path}")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"config: {where}: file not readable: {path}")


def _check_quarantine(config: Config) -> None:
    ob = config.outbox
    for name in ("quarantine_backoff_ms", "quarantine_max_backoff_ms", "quarantine_window_ms"):
        if getattr(ob, name) < 1:
            raise ConfigError(f"config: outbox.{name}: must be at least 1")
    if not 1 <= ob.quarantine_deaths <= 20:
        raise ConfigError("config: outbox.quarantine_deaths: must be between 1 and 20")
    if ob.quarantine_max_backoff_ms < ob.quarantine_backoff_ms:
        raise ConfigError(
            "config: outbox.quarantine_max_backoff_ms: must not be below outbox.quarantine_backoff_ms"
        )
    policy = QuarantinePolicy(
        ob.quarantine_backoff_ms, ob.quarantine_max_backoff_ms, ob.quarantine_deaths, ob.quarantine_window_ms
    )
    shortest = policy.shortest_evidence_ms(ob.lease_ms)
    if shortest > ob.quarantine_window_ms:
        raise ConfigError(
            f"config: outbox.quarantine_window_ms: {ob.quarantine_deaths} deaths in a row take at least"
            f" {shortest} ms with outbox.quarantine_backoff_ms and outbox.lease_ms, so no message could"
            " ever be judged poison: raise the window or lower the backoff"
        )


def validate(config: Config, *, check_files: bool = False) -> None:
    """Check values that types alone cannot; with ``check_files`` also that the TLS files exist."""
    _check_bind("server.bind", config.server.bind)
    _check_bind("ops.bind", config.ops.bind)
    _check_bind("web.bind", config.web.bind)
    for where, value in (
        ("server.public_url", config.server.public_url),
        ("web.public_url", config.web.public_url),
    ):
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ConfigError(f"config: {where}: expected an http(s) URL, got {value!r}")
    if config.web.max_body_bytes < 1024:
        raise ConfigError("config: web.max_body_bytes: must be at least 1024")
    for name in (
        "workers",
        "threads",
        "timeout",
        "keepalive",
        "handshake_timeout_ms",
        "head_timeout_ms",
        "max_connections",
        "max_connections_per_peer",
        "write_timeout_ms",
        "saturation_ms",
    ):
        if getattr(config.server, name) < 1:
            raise ConfigError(f"config: server.{name}: must be at least 1")
    if config.tls.minimum_version not in ("1.2", "1.3"):
        raise ConfigError(
            f"config: tls.minimum_version: must be 1.2 or 1.3, got {config.tls.minimum_version!r}"
        )
    for cidr in config.proxy.trusted_cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ConfigError(f"config: proxy.trusted_cidrs: not a network: {cidr!r}") from None
    if config.proxy.enabled and not config.proxy.trusted_cidrs:
        raise ConfigError("config: proxy.enabled needs proxy.trusted_cidrs (no proxy is trusted by default)")
    if not config.database.url.startswith(("sqlite", "postgresql")):
        raise ConfigError("config: database.url: expected a sqlite:// or postgresql+psycopg:// URL")
    soap = config.soap
    if not 16 * 1024 <= soap.max_envelope_bytes <= 64 * MiB:
        raise ConfigError("config: soap.max_envelope_bytes: must be between 16384 and 67108864")
    if not 100 <= soap.max_elements <= 1_000_000:
        raise ConfigError("config: soap.max_elements: must be between 100 and 1000000")
    if not 1 <= soap.max_attachment_bytes <= 1024 * MiB:
        raise ConfigError("config: soap.max_attachment_bytes: must be between 1 and 1073741824")
    if soap.max_large_requests < 1:
        raise ConfigError("config: soap.max_large_requests: must be at least 1")
    if not 0 <= soap.large_request_wait_ms <= 15_000:
        # the national platform gives up after 29 s: a request that waited must still be answered before
        # that, its body read and dropped first (gateway.soap.reader)
        raise ConfigError("config: soap.large_request_wait_ms: must be between 0 and 15000")
    if not 100 <= config.database.lock_timeout_ms <= 20_000:
        raise ConfigError(
            "config: database.lock_timeout_ms: must be between 100 and 20000 "
            "(a caller must get its answer before the national platform's 29 s timeout)"
        )
    if config.database.lock_timeout_ms + soap.large_request_wait_ms > 25_000:
        raise ConfigError(
            "config: database.lock_timeout_ms + soap.large_request_wait_ms: must not exceed 25000 "
            "(a large request may wait for both, and the national platform gives up after 29 s)"
        )
    for name in ("expiry_warning_days", "crl_warning_days"):
        if getattr(config.tls, name) < 0:
            raise ConfigError(f"config: tls.{name}: must be 0 or more")
    if not 8 <= config.soap.max_depth <= 256:
        raise ConfigError("config: soap.max_depth: must be between 8 and 256")
    if not 50 <= config.routing.poll_interval_ms <= 10_000:
        raise ConfigError("config: routing.poll_interval_ms: must be between 50 and 10000")
    if config.routing.max_publish_changes < 1:
        raise ConfigError("config: routing.max_publish_changes: must be at least 1")
    for name in ("threads", "poll_ms", "lease_ms", "retry_base_ms", "max_attempts", "breaker_threshold"):
        if getattr(config.outbox, name) < 1:
            raise ConfigError(f"config: outbox.{name}: must be at least 1")
    for name in ("restart_delay_ms", "restart_max_delay_ms", "restart_reset_ms"):
        if getattr(config.server, name) < 1:
            raise ConfigError(f"config: server.{name}: must be at least 1")
    if config.server.restart_max_delay_ms < config.server.restart_delay_ms:
        raise ConfigError("config: server.restart_max_delay_ms: must not be below server.restart_delay_ms")
    _check_quarantine(config)
    if config.outbox.lease_ms < 1000:
        raise ConfigError("config: outbox.lease_ms: must be at least 1000 (heartbeats run every third of it)")
    if (config.outbox.client_certificate is None) != (config.outbox.client_key is None):
        raise ConfigError("config: outbox.client_certificate and outbox.client_key go together")
    if config.log.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"config: log.level: unknown level {config.log.level!r}")
    if config.log.format not in ("auto", "json", "text"):
        raise ConfigError(f"config: log.format: must be auto, json or text, got {config.log.format!r}")
    if config.log.repeat_seconds < 1:
        raise ConfigError("config: log.repeat_seconds: must be at least 1")
    if not config.gateway.case_service_address or config.gateway.case_service_address.strip() != (
        config.gateway.case_service_address
    ):
        raise ConfigError("config: gateway.case_service_address: must be an HSA-id without whitespace")
    if check_files:
        _check_file("tls.certificate", config.tls.certificate)
        _check_file("tls.private_key", config.tls.private_key)
        _check_file("tls.trust_store", config.tls.trust_store)
        _check_file("tls.crl", config.tls.crl)
        _check_file("outbox.client_certificate", config.outbox.client_certificate)
        _check_file("outbox.client_key", config.outbox.client_key)
        _check_file("outbox.trust_store", config.outbox.trust_store)
        _check_file("log.hash_key_file", config.log.hash_key_file)
        _check_file("web.trust_store", config.web.trust_store)
        _check_file("web.crl", config.web.crl)
        _check_file("web.secret_key_file", config.web.secret_key_file)
