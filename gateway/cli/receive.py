"""``gateway receive``: play the deviation systems and 1177's case service of the routing catalogue.

By default it listens on every endpoint of the active routing version whose URL is on this machine
(``localhost`` or ``127.0.0.1``), with the server certificate, trust store and CRL of ``[tls]``; it prints
one line per arrival on standard output (``--json``: one JSON object per line) and notes (what it listens
on, refused TLS handshakes) on standard error. Ctrl-C stops it with exit code 130, SIGTERM with 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import ssl
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from gateway.cli.common import config_of
from gateway.config import Config, TlsConfig
from gateway.errors import ConfigError, DatabaseError, NothingMatchedError, TlsMaterialError
from gateway.soap.limits import BodyLimits

__all__ = ["add_receive_parser"]

_LOCAL_HOSTS = ("localhost", "127.0.0.1")


def _tls(args: argparse.Namespace, config: Config) -> TlsConfig:
    overrides: dict[str, Any] = {
        name: Path(value).resolve()
        for name, value in (
            ("certificate", args.cert),
            ("private_key", args.key),
            ("trust_store", args.ca),
            ("crl", args.crl),
        )
        if value
    }
    return dataclasses.replace(config.tls, **overrides)


def _context_factory(tls: TlsConfig) -> Any:
    from gateway.soap.tls import ServerContextFactory, server_context

    factory = ServerContextFactory(tls, report=False)  # the receiver notes refused handshakes itself
    try:
        # load everything once now, so a bad file is one line here instead of failed handshakes (the
        # factory itself refuses callers by handshake when its files go bad later, and logs that)
        server_context(tls)
    except FileNotFoundError as exc:
        raise TlsMaterialError(f"TLS file not found: {exc.filename}") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TlsMaterialError(
            f"cannot use the TLS material (certificate {tls.certificate.name}, key, trust store "
            f"{tls.trust_store.name}{', CRL ' + tls.crl.name if tls.crl else ''}): {exc}"
        ) from None
    return factory


def _catalogue(config: Config) -> tuple[int, Any]:
    """The active routing version and its catalogue, read without creating or changing anything."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.db import make_engine
    from routing import CatalogueStore

    hint = "start the gateway first (`make run` publishes the example catalogue), or give --port"
    url = make_url(config.database.url)
    file = Path(str(url.database)) if url.database not in (None, "", ":memory:") else None
    if url.get_backend_name() == "sqlite" and file is not None and not file.is_file():
        raise DatabaseError(f"no database at {file.resolve()}: {hint}")
    engine = make_engine(config.database.url, pool_size=1)
    try:
        active = CatalogueStore(engine).active()
    except SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        if "no such table" in cause or "does not exist" in cause:
            raise DatabaseError(f"the database has no routing catalogue yet: {hint}") from None
        raise DatabaseError(f"cannot read the routing catalogue: {cause}; {hint}") from None
    finally:
        engine.dispose()
    if active is None:
        raise NothingMatchedError(
            "no routing catalogue is published yet: `gateway routes bootstrap FILE` (make run does it), "
            "or give --port"
        )
    return active[0], active[2]


def _local_endpoints(catalogue: Any) -> dict[str, tuple[int, str]]:
    """Endpoint name -> (port, URL path) for every https endpoint on this machine."""
    found: dict[str, tuple[int, str]] = {}
    for endpoint in catalogue.endpoints:
        url = urlsplit(endpoint.url)
        if url.scheme == "https" and url.hostname in _LOCAL_HOSTS:
            found[endpoint.name] = (url.port or 443, url.path.rstrip("/"))
    return found


def _listeners(args: argparse.Namespace, config: Config) -> tuple[list[Any], str]:
    from gateway.soap.receiver import Listener

    if args.port:
        names: dict[int, dict[str, str]] = {port: {} for port in args.port}
        try:
            version, catalogue = _catalogue(config)
        except (DatabaseError, NothingMatchedError):
            return [Listener(port, {}) for port in args.port], "ports given, no routing catalogue"
        for name, (port, path) in _local_endpoints(catalogue).items():
            if port in names:
                names[port][path] = name
        return [Listener(port, names[port]) for port in args.port], f"routing version {version}"
    version, catalogue = _catalogue(config)
    local = _local_endpoints(catalogue)
    chosen = list(local)
    if args.endpoint:
        every = {e.name: e.url for e in catalogue.endpoints}
        for name in args.endpoint:
            if name not in every:
                raise NothingMatchedError(
                    f"routing version {version} has no endpoint {name} "
                    f"(endpoints: {', '.join(sorted(every))})"
                )
            if name not in local:
                raise ConfigError(
                    f"endpoint {name} is at {every[name]}, not on this machine: give --port to listen anyway"
                )
        chosen = list(dict.fromkeys(args.endpoint))
    if not chosen:
        raise NothingMatchedError(
            f"routing version {version} has no https endpoint on localhost or 127.0.0.1: give --port"
        )
    by_port: dict[int, dict[str, str]] = {}
    for name in chosen:
        port, path = local[name]
        by_port.setdefault(port, {})[path] = name
    return [Listener(port, paths) for port, paths in sorted(by_port.items())], f"routing version {version}"


class _Output:
    """Arrival lines on stdout (whole lines, flushed, from many threads); notes on stderr."""

    def __init__(self, as_json: bool, stop: threading.Event) -> None:
        self.as_json = as_json
        self.stop = stop
        self.lock = threading.Lock()
        self.count = 0
        self.pipe_closed = False

    def arrival(self, arrival: Any) -> None:
        text = json.dumps(arrival.as_dict(), ensure_ascii=False) if self.as_json else arrival.line()
        with self.lock:
            self.count += 1
            try:
                print(text, flush=True)
            except BrokenPipeError:  # the reader went away (e.g. `| head`): stop like a closed terminal
                self.pipe_closed = True
                self.stop.set()

    def note(self, text: str) -> None:
        with self.lock:
            print(f"gateway receive: {text}", file=sys.stderr, flush=True)


@contextmanager
def _signals(stop: threading.Event) -> Iterator[list[int]]:
    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def cmd_receive(args: argparse.Namespace) -> int:
    from contracts import load_registry
    from gateway.soap.receiver import ReceiverCore, serve_receivers

    if not 0.0 <= args.fail_rate <= 1.0:
        raise ConfigError("--fail-rate takes a share between 0 and 1, e.g. 0.3")
    if args.delay < 0:
        raise ConfigError("--delay takes milliseconds, 0 or more")
    config = config_of(args)
    context = _context_factory(_tls(args, config))
    listeners, source = _listeners(args, config)
    registry = load_registry()
    core = ReceiverCore(
        registry,
        # the largest body any contract allows (derived from the contract files, as the gateway does)
        max_body_bytes=BodyLimits.from_config(config.soap, registry).largest_body,
        max_depth=config.soap.max_depth,
        fail_rate=args.fail_rate,
        fail_statuses=(args.fail_status,) if args.fail_status else (503, 500),
        seed=args.seed,
        delay_ms=args.delay,
    )
    stop = threading.Event()
    out = _Output(args.json, stop)

    def ready(bound: list[Any]) -> None:
        for listener in bound:
            out.note(f"receiving as {listener.label} on https://localhost:{listener.port} ({source})")
        faults = f"; failing {args.fail_rate:.0%} (seed {args.seed})" if args.fail_rate else ""
        delay = f"; answering after {args.delay} ms" if args.delay else ""
        out.note(f"client certificate required{faults}{delay}; Ctrl-C stops")

    with _signals(stop) as received:
        serve_receivers(listeners, core, context, out.arrival, out.note, stop, ready)
    out.note(f"stopped after {out.count} arrival(s)")
    if out.pipe_closed:
        return 141
    return 130 if signal.SIGINT in received else 0


def add_receive_parser(sub: Any) -> None:
    p = sub.add_parser(
        "receive",
        help="play the deviation systems and 1177's case service of the routing catalogue (demo receiver)",
        description=(
            "Listen over mutual TLS on every endpoint of the active routing version whose URL is on "
            "localhost or 127.0.0.1, validate what arrives against its contract, print one line per "
            "arrival and answer OK (a SOAP fault for an invalid request). Ctrl-C stops (exit 130), "
            "SIGTERM too (exit 0); a port in use exits 5."
        ),
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--endpoint",
        action="append",
        metavar="NAME",
        help="play only this catalogue endpoint (repeatable)",
    )
    where.add_argument(
        "--port",
        action="append",
        type=int,
        help="listen on this port instead (repeatable; named after the catalogue's endpoints there, if any)",
    )
    p.add_argument("--cert", help="server certificate, PEM (default: tls.certificate)")
    p.add_argument("--key", help="private key of --cert, PEM (default: tls.private_key)")
    p.add_argument("--ca", help="trust store for client certificates, PEM (default: tls.trust_store)")
    p.add_argument("--crl", help="CRL checked for client certificates, PEM (default: tls.crl)")
    p.add_argument(
        "--fail-rate",
        type=float,
        default=0.0,
        metavar="R",
        help="answer this share of valid requests with HTTP 503 or 500 (0..1, default 0)",
    )
    p.add_argument("--fail-status", type=int, choices=[500, 503], help="fail with only this status")
    p.add_argument("--seed", type=int, default=0, help="seed of the --fail-rate draws (default 0)")
    p.add_argument("--delay", type=int, default=0, metavar="MS", help="wait this long before answering")
    p.add_argument("--json", action="store_true", help="print each arrival as one JSON object per line")
    p.set_defaults(func=cmd_receive)
