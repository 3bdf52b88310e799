"""The servers compared by ``python -m tests.bench.connections`` (docs/adr/0004), one trivial WSGI app each.

The app reads the whole body, establishes the caller's HSA-id the way the candidate allows and answers
``<r>OK</r><caller>HSA-id</caller>`` (a few bytes). Candidates:

* ``gthread``: the server before issue 13, stock gunicorn gthread with mutual TLS by gunicorn (the TLS
  context from ``gateway.soap.tls``), otherwise ``gateway.server.GatewayServer``'s settings;
* ``guarded``: ``GatewayServer`` as it is, with the worker of ``gateway.httpworker`` (TLS and request
  reading in the event loop, with deadlines and connection limits);
* ``twisted``: ``twisted.web.wsgi`` on a thread pool, TLS by pyOpenSSL with the CRL, two processes sharing
  one listening socket, idle timeout and connection limits per peer;
* ``backend``: gthread on plain HTTP on loopback in trusted-proxy mode, behind ``nginx`` or ``haproxy``
  (their configuration files are written by ``nginx_conf`` and ``haproxy_conf``), verifying each forwarded
  certificate once; ``backend-verify`` verifies it on every request, as ``gateway.soap.identity`` does.

Run one as ``python -m tests.bench.connservers KIND --port P --pki DIR --workdir DIR``. The ``twisted`` kind
imports nothing of the project (it may run in another interpreter that has Twisted and pyOpenSSL).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

WORKERS = 2
THREADS = 8
HEAD_TIMEOUT = 10
KEEPALIVE = 75
PER_PEER = 128
PER_PROCESS = 4096
PROXY_HEADER = "X-SSL-Client-Cert"


def answer(caller: str | None, body: bytes, start_response: Callable[..., Any]) -> Iterable[bytes]:
    if not caller:
        start_response("403 Forbidden", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"no caller\n"]
    data = b"<r>OK</r><caller>%s</caller><n>%d</n>" % (caller.encode(), len(body))
    start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(data)))])
    return [data]


# -- gunicorn candidates ------------------------------------------------------------------------------------
def _gunicorn(kind: str, port: int, pki_dir: Path, workdir: Path) -> None:
    from gateway.certs import load_example_pki
    from gateway.config import Config, LogConfig, ProxyConfig, ServerConfig, TlsConfig
    from gateway.errors import IdentityError
    from gateway.server import GatewayServer
    from gateway.soap.identity import CallerIdentity
    from gateway.soap.tls import ServerContextFactory

    pki = load_example_pki(pki_dir)
    tls = TlsConfig(
        certificate=pki.server.cert, private_key=pki.server.key, trust_store=pki.ca_cert, crl=pki.crl
    )
    proxy = ProxyConfig()
    if kind.startswith("backend"):
        proxy = ProxyConfig(enabled=True, header=PROXY_HEADER, trusted_cidrs=("127.0.0.1/32",))
    config = Config(
        server=ServerConfig(
            bind=f"127.0.0.1:{port}",
            workers=WORKERS,
            threads=THREADS,
            keepalive=KEEPALIVE,
            runtime_dir=workdir,
            max_connections=PER_PROCESS,
            max_connections_per_peer=PER_PEER,
        ),
        tls=tls,
        proxy=proxy,
        log=LogConfig(level="WARNING", format="text"),
    )

    def app_factory(cfg: Config) -> Callable[..., Iterable[bytes]]:
        identity = CallerIdentity(cfg.tls, cfg.proxy)

        verified: dict[str, str] = {}
        header = "HTTP_" + PROXY_HEADER.upper().replace("-", "_")

        def caller_of(environ: dict[str, Any]) -> str:
            if kind != "backend":
                return identity.caller(environ)
            # a forwarded certificate is verified once (what a cache in gateway.soap.identity would do);
            # ``backend-verify`` verifies it on every request, as trusted-proxy mode does today
            forwarded = environ.get(header, "")
            found = verified.get(forwarded)
            if found is None:
                found = verified[forwarded] = identity.caller(environ)
            return found

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            body = environ["wsgi.input"].read()
            try:
                caller: str | None = caller_of(environ)
            except IdentityError:
                caller = None
            return answer(caller, body, start_response)

        return app

    class Server(GatewayServer):
        """``guarded`` is the gateway's server as it is; the others are stock gthread with its own TLS
        (``gthread``, the server before issue 13) or without TLS behind a front (``backend``)."""

        def load_config(self) -> None:
            super().load_config()
            if kind == "guarded":
                return
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("worker_connections", 1000)
            if kind == "gthread":
                factory = ServerContextFactory(tls)
                self.cfg.set("certfile", str(tls.certificate))
                self.cfg.set("keyfile", str(tls.private_key))
                self.cfg.set("ca_certs", str(tls.trust_store))
                self.cfg.set("cert_reqs", 2)  # ssl.CERT_REQUIRED
                self.cfg.set("ssl_context", lambda _conf, _default: factory())

    Server(config, app_factory=app_factory).run()


# -- Twisted ------------------------------------------------------------------------------------------------
def _twisted(port: int, pki_dir: Path) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(2048)
    listener.setblocking(False)
    children = []
    for _ in range(WORKERS):
        pid = os.fork()
        if pid == 0:
            try:
                _twisted_process(listener, pki_dir)
            finally:
                os._exit(0)
        children.append(pid)

    def stop(_signum: int, _frame: Any) -> None:
        for child in children:
            os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        os.waitpid(child, 0)


def _twisted_process(listener: socket.socket, pki_dir: Path) -> None:
    from collections import Counter

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID
    from OpenSSL import SSL, crypto
    from twisted.internet import reactor
    from twisted.protocols.policies import WrappingFactory
    from twisted.protocols.tls import TLSMemoryBIOFactory
    from twisted.python import context
    from twisted.python.threadpool import ThreadPool
    from twisted.web.server import Site
    from twisted.web.wsgi import WSGIResource

    peer_key = "peer-der"

    class ContextFactory:
        """pyOpenSSL server context with mutual TLS and the CRL, rebuilt when a file changes."""

        def __init__(self) -> None:
            self.files = [pki_dir / n for n in ("server.pem", "server.key", "ca.pem", "crl.pem")]
            self.stamp: tuple[int, ...] = ()
            self.ctx: Any = None

        def getContext(self) -> Any:
            stamp = tuple(p.stat().st_mtime_ns for p in self.files)
            if stamp != self.stamp:
                ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
                ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
                ctx.use_certificate_chain_file(str(self.files[0]))
                ctx.use_privatekey_file(str(self.files[1]))
                ctx.load_verify_locations(str(self.files[2]))
                ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *a: bool(a[-1]))
                store = ctx.get_cert_store()
                store.add_crl(x509.load_pem_x509_crl(self.files[3].read_bytes()))
                store.set_flags(crypto.X509StoreFlags.CRL_CHECK)
                ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
                self.ctx, self.stamp = ctx, stamp
            return self.ctx

    class Limits(WrappingFactory):
        """Connections per peer and per process (twisted.protocols.policies.LimitConnectionsByPeer cannot
        be used: its unregisterProtocol indexes an IPv4Address and raises, so counts never go down)."""

        def __init__(self, wrapped: Any) -> None:
            super().__init__(wrapped)
            self.per_peer: Counter[str] = Counter()
            self.hosts: dict[Any, str] = {}

        def buildProtocol(self, addr: Any) -> Any:
            if len(self.hosts) >= PER_PROCESS or self.per_peer[addr.host] >= PER_PEER:
                return None
            protocol = super().buildProtocol(addr)
            self.per_peer[addr.host] += 1
            self.hosts[protocol] = addr.host
            return protocol

        def unregisterProtocol(self, protocol: Any) -> None:
            super().unregisterProtocol(protocol)
            host = self.hosts.pop(protocol, None)
            if host is not None:
                self.per_peer[host] -= 1
                if self.per_peer[host] <= 0:
                    del self.per_peer[host]

    def caller_of(der: bytes | None) -> str | None:
        if not der:
            return None
        values = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
        return str(values[0].value) if len(values) == 1 else None

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = environ["wsgi.input"].read()
        return answer(caller_of(context.get(peer_key)), body, start_response)

    pool = ThreadPool(minthreads=THREADS, maxthreads=THREADS, name="wsgi")

    class PeerResource(WSGIResource):
        """Hands the verified peer certificate to the app through Twisted's context, which the thread pool
        carries into the thread that runs the request."""

        def render(self, request: Any) -> Any:
            cert = request.channel.transport.getPeerCertificate()
            der = cert.to_cryptography().public_bytes(Encoding.DER) if cert is not None else None
            return context.call({peer_key: der}, WSGIResource.render, self, request)

    site = Site(PeerResource(reactor, pool, app), timeout=HEAD_TIMEOUT)
    factory = Limits(TLSMemoryBIOFactory(ContextFactory(), False, site))
    reactor.adoptStreamPort(listener.fileno(), socket.AF_INET, factory)  # type: ignore[attr-defined]
    pool.start()
    reactor.addSystemEventTrigger("before", "shutdown", pool.stop)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


# -- fronts -------------------------------------------------------------------------------------------------
def nginx_conf(workdir: Path, port: int, upstream: int, pki_dir: Path) -> Path:
    """nginx (Debian nginx-light) terminating mutual TLS with the CRL and forwarding the certificate."""
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    conf = f"""
worker_processes {WORKERS};
user root;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    limit_conn_zone $binary_remote_addr zone=peer:10m;
    upstream gateway {{ server 127.0.0.1:{upstream}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port} ssl backlog=2048;
        ssl_certificate {pki_dir}/server.pem;
        ssl_certificate_key {pki_dir}/server.key;
        ssl_client_certificate {pki_dir}/ca.pem;
        ssl_crl {pki_dir}/crl.pem;
        ssl_verify_client on;
        ssl_protocols TLSv1.2 TLSv1.3;
        keepalive_timeout {KEEPALIVE}s;
        keepalive_requests 1000000;
        client_header_timeout {HEAD_TIMEOUT}s;
        client_body_timeout {HEAD_TIMEOUT}s;
        send_timeout 30s;
        client_max_body_size 16m;
        limit_conn peer {PER_PEER};
        location / {{
            proxy_pass http://gateway;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header {PROXY_HEADER} $ssl_client_escaped_cert;
            proxy_request_buffering on;
            proxy_read_timeout 30s;
        }}
    }}
}}
"""
    path = workdir / "nginx.conf"
    path.write_text(conf)
    return path


def haproxy_conf(workdir: Path, port: int, upstream: int, pki_dir: Path) -> Path:
    """HAProxy terminating mutual TLS with the CRL, a whole-head deadline and a per-source limit."""
    combined = workdir / "server-with-key.pem"
    fd = os.open(combined, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write((pki_dir / "server.pem").read_bytes() + (pki_dir / "server.key").read_bytes())
    pem = "-----BEGIN CERTIFICATE-----%[ssl_c_der,base64]-----END CERTIFICATE-----"
    verify = "verify required"
    conf = f"""
global
    maxconn 8000
    nbthread {WORKERS}
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    timeout connect 5s
    timeout client {HEAD_TIMEOUT}s
    timeout http-request {HEAD_TIMEOUT}s
    timeout http-keep-alive {KEEPALIVE}s
    timeout server 30s
    option http-buffer-request
frontend soap
    bind 127.0.0.1:{port} ssl crt {combined} ca-file {pki_dir}/ca.pem crl-file {pki_dir}/crl.pem {verify}
    maxconn {PER_PROCESS * WORKERS}
    stick-table type ip size 100k expire 30s store conn_cur
    tcp-request connection track-sc0 src
    tcp-request connection reject if {{ sc0_conn_cur gt {PER_PEER} }}
    http-request set-header {PROXY_HEADER} "{pem}"
    default_backend gateway
backend gateway
    http-reuse always
    server g1 127.0.0.1:{upstream} maxconn {WORKERS * THREADS}
"""
    path = workdir / "haproxy.cfg"
    path.write_text(conf)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["gthread", "guarded", "backend", "backend-verify", "twisted"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pki", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    if os.environ.get("BENCH_SWITCH_INTERVAL"):  # an experiment: how long a thread waits for the GIL
        sys.setswitchinterval(float(os.environ["BENCH_SWITCH_INTERVAL"]))
    if args.kind == "twisted":
        _twisted(args.port, args.pki)
    else:
        _gunicorn(args.kind, args.port, args.pki, args.workdir)


if __name__ == "__main__":
    main()
