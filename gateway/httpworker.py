"""The serving worker: a connection costs a serving thread only once a complete request is there.

gunicorn's ``gthread`` worker hands every new connection to a serving thread, which then does the TLS
handshake and reads the request with blocking calls: a peer that opens TCP and sends nothing, stops in the
middle of its ClientHello, sends headers a byte at a time or never finishes its body holds that thread for as
long as it likes, and a few such peers take the whole gateway off the air (docs/adr/0004).

This worker keeps gthread's event loop, thread pool, keep-alive and response path, and moves everything
before the application into the event loop, non-blocking and with deadlines:

* accept: a connection over the per-process or per-peer limit is closed at once (``refused``);
* TLS handshake (mutual TLS, with the listener's context, rebuilt when its files change) within
  ``handshake_timeout``; after a failed one the connection stays half-closed for ``ALERT_LINGER`` so the
  client can read the alert that says why;
* the request head within ``head_timeout`` of the connection's start (or, on a kept-alive connection, of its
  first byte), framed by ``gateway.framing`` (refusals answered with their HTTP status);
* the body at no less than ``min_body_rate`` bytes per second on average after ``body_grace``; bodies over
  ``SPOOL_IN_MEMORY`` bytes go to an unlinked temporary file (mode 0600) instead of memory;

and only then submits the connection to the thread pool, where gunicorn's own parser reads the buffered
request and the application runs. A connection past a deadline is closed and counted by reason. Each worker
publishes its counters and whether all its threads have been busy (``saturated``) in a small state file that
the operations listener reads (``/health/ready``, ``/metrics``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import socket
import ssl
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any, ClassVar

from gunicorn.http import errors as http_errors
from gunicorn.http.parser import RequestParser
from gunicorn.workers.gthread import TConn, ThreadWorker

from gateway.framing import RequestFramer, Verdict

__all__ = [
    "ConnectionLimits",
    "GuardedWorker",
    "Listener",
    "WorkerStates",
    "guarded_worker_class",
    "plain_refusal",
    "read_worker_states",
]

#: body bytes kept in memory per request; beyond, the request is spooled to a temporary file
SPOOL_IN_MEMORY = 1024 * 1024
#: how long a connection whose handshake failed stays half-closed, so that the client can read the alert
ALERT_LINGER = 0.5
_READ_SIZE = 256 * 1024
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_STATUS_TEXT = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
}


@dataclass(frozen=True)
class ConnectionLimits:
    handshake_timeout: float = 5.0
    head_timeout: float = 10.0
    #: bytes per second a body must average after ``body_grace`` seconds
    min_body_rate: int = 16 * 1024
    body_grace: float = 5.0
    max_head: int = 64 * 1024
    #: concurrent connections per worker process, and per peer address within it
    max_connections: int = 4096
    max_per_peer: int = 128
    #: seconds a serving thread may block writing a response to a peer that does not read
    write_timeout: float = 30.0
    #: idle time of a kept-alive connection
    keepalive: float = 75.0


def plain_refusal(verdict: Verdict) -> bytes:
    """A whole HTTP response for a request refused while it was read (the default ``Listener.refusal``)."""
    text = _STATUS_TEXT.get(verdict.status, "Bad Request")
    body = f"{verdict.status} {text}\n".encode()
    return (
        f"HTTP/1.1 {verdict.status} {text}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


@dataclass(frozen=True)
class Listener:
    """One listening address: ``context()`` returns its current TLS server context (None: plain TCP, for
    tests), ``max_body`` the longest body its application takes, and ``refusal`` renders the answer to a
    request refused while it was read (the SOAP port answers a SOAP fault)."""

    context: Callable[[], ssl.SSLContext] | None
    max_body: int = 512 * 1024 * 1024
    refusal: Callable[[Verdict], bytes] = plain_refusal


class _Phase:
    HANDSHAKE = "handshake"
    LINGER = "linger"  # the handshake failed: the client reads the alert, we discard what it still sends
    HEAD = "head"
    BODY = "body"
    SERVING = "serving"
    IDLE = "idle"


class GuardedConn(TConn):  # type: ignore[misc]
    """A connection and what the event loop has read of its next request."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any) -> None:
        super().__init__(cfg, sock, client, server)
        self.peer = client[0] if isinstance(client, tuple) else str(client)
        self.phase = _Phase.HANDSHAKE
        self.started = time.monotonic()
        self.deadline = 0.0
        self.body_started = 0.0
        self.framer: RequestFramer | None = None
        self.parts: list[bytes] = []
        self.size = 0
        self.spool: IO[bytes] | None = None
        self.leftover = b""
        self.listener = Listener(None)
        self.initialized = True  # gunicorn's init() (blocking handshake) never runs for these

    def keep(self, data: bytes) -> None:
        """Store bytes of the request being read (in memory, then in the spool file)."""
        self.size += len(data)
        if self.spool is None and self.size > SPOOL_IN_MEMORY:
            self.spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed in reset(); unlinked at once
            for part in self.parts:
                self.spool.write(part)
            self.parts = []
        if self.spool is not None:
            self.spool.write(data)
        else:
            self.parts.append(data)

    def request_source(self) -> Iterator[bytes]:
        """The buffered request, piece by piece, for gunicorn's parser."""
        if self.spool is None:
            yield from self.parts
            return
        self.spool.seek(0)
        while chunk := self.spool.read(_READ_SIZE):
            yield chunk

    def reset(self) -> None:
        self.framer = None
        self.parts = []
        self.size = 0
        if self.spool is not None:
            self.spool.close()
            self.spool = None


class GuardedWorker(ThreadWorker):  # type: ignore[misc]
    """gthread with the TLS handshake and request reading moved into the event loop (see the module)."""

    #: by port
    listeners: ClassVar[dict[int, Listener]] = {}
    limits = ConnectionLimits()
    state_dir: Path | None = None
    #: configure() builds a subclass with these set; the arbiter forks workers of it

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.incoming: set[GuardedConn] = set()
        self.per_peer: Counter[str] = Counter()
        self.closed: Counter[str] = Counter()
        self.busy = 0
        self.saturated_since: float | None = None
        self._state_written = 0.0
        self._listeners: dict[int, Listener] = {}

    # -- accepting ------------------------------------------------------------------------------------------
    def accept(self, listener: Any) -> None:
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        peer = client[0] if isinstance(client, tuple) else str(client)
        if self.nr_conns >= self.limits.max_connections:
            self._refuse(sock, "process-limit")
            return
        if self.per_peer[peer] >= self.limits.max_per_peer:
            self._refuse(sock, "peer-limit")
            return
        self.nr_conns += 1
        self.per_peer[peer] += 1
        sock.setblocking(False)
        conn = GuardedConn(self.cfg, sock, client, listener.getsockname())
        conn.listener = self._listener_of(listener)
        self.incoming.add(conn)
        if conn.listener.context is None:
            self._start_request(conn, conn.started)
            return
        try:
            context = conn.listener.context()
            conn.sock = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except (ssl.SSLError, OSError) as exc:
            self.log.warning("TLS context unavailable; connection refused: %s", type(exc).__name__)
            self._close(conn, "tls-context")
            return
        conn.deadline = conn.started + self.limits.handshake_timeout
        self._handshake(conn)

    def _listener_of(self, listener: Any) -> Listener:
        """The configuration of a listening socket, by its port."""
        key = listener.fileno()
        found = self._listeners.get(key)
        if found is None:
            name = listener.getsockname()
            port = name[1] if isinstance(name, tuple) else name
            found = self._listeners[key] = self.listeners.get(port) or Listener(None)
        return found

    def _refuse(self, sock: socket.socket, reason: str) -> None:
        self.closed[reason] += 1
        with contextlib.suppress(OSError):
            sock.close()

    # -- the phases before a thread ------------------------------------------------------------------------
    def _watch(self, conn: GuardedConn, events: int, callback: Callable[[GuardedConn], None]) -> None:
        handler = partial(self._ready, conn, callback)
        try:
            self.poller.modify(conn.sock, events, handler)
        except (KeyError, ValueError):
            self.poller.register(conn.sock, events, handler)

    def _unwatch(self, conn: GuardedConn) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    @staticmethod
    def _ready(conn: GuardedConn, callback: Callable[[GuardedConn], None], _fileobj: Any) -> None:
        callback(conn)

    def _handshake(self, conn: GuardedConn) -> None:
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(conn, selectors.EVENT_READ, self._handshake)
            return
        except ssl.SSLWantWriteError:
            self._watch(conn, selectors.EVENT_WRITE, self._handshake)
            return
        except (ssl.SSLError, OSError) as exc:
            self._handshake_failed(conn, exc)
            return
        self._start_request(conn, conn.started)

    def _handshake_failed(self, conn: GuardedConn, exc: BaseException) -> None:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        self.log.debug("TLS handshake failed from %s: %s", conn.peer, reason)
        # The alert that tells the client why is written (the cause is logged by gateway.soap.tls). Closing
        # with bytes of the client unread would reset the connection, and the reset destroys the alert
        # before the client reads it (under TLS 1.3 it sends its request before it learns it was refused):
        # close our side, and discard what still comes until the client closes or ALERT_LINGER passes.
        try:
            socket.socket.shutdown(conn.sock, socket.SHUT_WR)
        except OSError:
            self._close(conn, "handshake-failed")
            return
        conn.phase = _Phase.LINGER
        conn.deadline = time.monotonic() + ALERT_LINGER
        self._watch(conn, selectors.EVENT_READ, self._discard)
        self._discard(conn)

    def _discard(self, conn: GuardedConn) -> None:
        while True:
            try:
                data = socket.socket.recv(conn.sock, _READ_SIZE)  # below TLS: the session failed
            except BlockingIOError:
                return
            except OSError:
                break
            if not data:
                break
        self._close(conn, "handshake-failed")

    def _start_request(self, conn: GuardedConn, since: float) -> None:
        """Begin reading the next request on ``conn``, its head due ``head_timeout`` after ``since``."""
        conn.phase = _Phase.HEAD
        conn.deadline = since + self.limits.head_timeout
        conn.reset()
        conn.framer = RequestFramer(max_head=self.limits.max_head, max_body=conn.listener.max_body)
        leftover, conn.leftover = conn.leftover, b""
        if leftover and self._take(conn, leftover):
            return
        self._watch(conn, selectors.EVENT_READ, self._read)
        if isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending():
            self._read(conn)

    def _read(self, conn: GuardedConn) -> None:
        while True:
            try:
                data = conn.sock.recv(_READ_SIZE)
            except (ssl.SSLWantReadError, BlockingIOError):
                return
            except ssl.SSLWantWriteError:
                self._watch(conn, selectors.EVENT_WRITE, self._read)
                return
            except (ssl.SSLError, OSError):
                self._close(conn, "read-failed")
                return
            if not data:
                self._close(conn, "closed-by-peer" if conn.size else "eof")
                return
            if self._take(conn, data):
                return

    def _take(self, conn: GuardedConn, data: bytes) -> bool:
        """Frame received bytes; True when the connection left the reading phase (dispatched or closed)."""
        framer = conn.framer
        assert framer is not None
        head_was_complete = framer.head_complete
        used, verdict = framer.feed(data)
        if used:
            conn.keep(data[:used] if used < len(data) else data)
        if verdict is not None:
            self._answer(conn, verdict)
            return True
        if framer.head_complete and not head_was_complete:
            conn.phase = _Phase.BODY
            conn.body_started = time.monotonic()
            if framer.expects_continue and not framer.complete:
                # best effort: a client that gets no interim answer sends its body after its own wait
                with contextlib.suppress(OSError):
                    conn.sock.send(_CONTINUE)
        if framer.complete:
            conn.leftover = data[used:]
            self._dispatch(conn)
            return True
        return False

    def _answer(self, conn: GuardedConn, verdict: Verdict) -> None:
        response = conn.listener.refusal(verdict)
        with contextlib.suppress(OSError):
            conn.sock.send(response)
        self._close(conn, verdict.reason)

    def _dispatch(self, conn: GuardedConn) -> None:
        self._unwatch(conn)
        self.incoming.discard(conn)
        conn.phase = _Phase.SERVING
        conn.parser = RequestParser(self.cfg, conn.request_source(), conn.client)
        self.enqueue_req(conn)

    def _close(self, conn: GuardedConn, reason: str) -> None:
        self._unwatch(conn)
        self.incoming.discard(conn)
        self.closed[reason] += 1
        conn.reset()
        self._forget(conn)
        with contextlib.suppress(OSError):
            conn.sock.close()

    def _forget(self, conn: GuardedConn) -> None:
        self.nr_conns -= 1
        self.per_peer[conn.peer] -= 1
        if self.per_peer[conn.peer] <= 0:
            del self.per_peer[conn.peer]

    # -- deadlines (called by gthread's loop at least once a second) ----------------------------------------
    def murder_pending(self) -> None:
        now = time.monotonic()
        for conn in list(self.incoming):
            if not self.alive and conn.size == 0:
                self._close(conn, "shutdown")
            elif conn.phase == _Phase.HANDSHAKE and now > conn.deadline:
                self._close(conn, "handshake-timeout")
            elif conn.phase == _Phase.LINGER and now > conn.deadline:
                self._close(conn, "handshake-failed")
            elif conn.phase == _Phase.HEAD and now > conn.deadline:
                self._close(conn, "head-timeout")
            elif conn.phase == _Phase.BODY and self._too_slow(conn, now):
                self._close(conn, "body-too-slow")
        self._publish(now)

    def _too_slow(self, conn: GuardedConn, now: float) -> bool:
        elapsed = now - conn.body_started - self.limits.body_grace
        framer = conn.framer
        return (
            elapsed > 0 and framer is not None and framer.body_received < self.limits.min_body_rate * elapsed
        )

    def murder_keepalived(self, force: bool = False) -> None:
        now = time.monotonic()
        while self.keepalived_conns:
            conn = self.keepalived_conns[0]
            if conn.timeout - now > 0 and not force:
                break
            self.keepalived_conns.popleft()
            self._unwatch(conn)
            self.closed["idle-timeout"] += 1
            self._forget(conn)
            conn.close()

    # -- serving threads ------------------------------------------------------------------------------------
    def enqueue_req(self, conn: GuardedConn) -> None:
        self.busy += 1
        if self.busy >= self.cfg.threads and self.saturated_since is None:
            self.saturated_since = time.time()
        super().enqueue_req(conn)

    def handle(self, conn: GuardedConn) -> bool:
        """Serve the buffered request in a serving thread (gthread's ``handle`` without its blocking reads:
        the request is read from the buffer, and only writing the response touches the socket)."""
        req = None
        try:
            conn.sock.setblocking(True)
            conn.sock.settimeout(self.limits.write_timeout)
            req = next(conn.parser)
            if not req:
                return False
            return bool(self._keepalive_after(conn, self.handle_request(req, conn)))
        except (http_errors.NoMoreData, StopIteration):
            return False
        except ssl.SSLError as exc:
            if exc.args[0] != ssl.SSL_ERROR_EOF:
                self.handle_error(req, conn.sock, conn.client, exc)
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, None):
                self.log.warning(
                    "socket error while answering %s: %s", conn.peer, errno.errorcode.get(exc.errno or 0, "?")
                )
            return False
        except Exception as exc:  # noqa: BLE001 - gunicorn answers 400/500 for it, as gthread does
            self.handle_error(req, conn.sock, conn.client, exc)
            return False
        finally:
            conn.reset()

    def finish_request(self, conn: GuardedConn, fs: Any) -> None:
        self.busy -= 1
        if self.busy < self.cfg.threads:
            self.saturated_since = None
        try:
            keep = bool(fs.result()) if not fs.cancelled() else False
        except Exception:  # noqa: BLE001 - gthread closes the connection on any failure here too
            keep = False
        if not keep or not self.alive:
            self._forget(conn)
            self.closed["served"] += 1
            with contextlib.suppress(OSError):
                conn.close(graceful=keep)
            return
        conn.sock.setblocking(False)
        if conn.leftover:  # the next request was pipelined behind this one
            self.incoming.add(conn)
            self._start_request(conn, time.monotonic())
            return
        conn.phase = _Phase.IDLE
        conn.timeout = time.monotonic() + self.limits.keepalive
        self.keepalived_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))

    def on_client_socket_readable(self, conn: GuardedConn, client: Any) -> None:
        """A kept-alive connection has bytes: read its next request in the event loop."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self.incoming.add(conn)
        self._start_request(conn, time.monotonic())

    # -- what the operations listener reads ------------------------------------------------------------------
    def _state_file(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / f"http-worker-{os.getpid()}.json"

    def withdraw_state(self) -> None:
        """Remove this process's state file (the worker is stopping)."""
        path = self._state_file()
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()

    def _publish(self, now: float) -> None:
        path = self._state_file()
        if path is None or now - self._state_written < 1.0:
            return
        self._state_written = now
        state = {
            "pid": os.getpid(),
            "threads": self.cfg.threads,
            "busy": self.busy,
            "saturatedSince": self.saturated_since,
            "connections": self.nr_conns,
            "reading": len(self.incoming),
            "closed": dict(self.closed),
            "at": time.time(),
        }
        tmp = path.with_suffix(".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(state, fh)
            os.replace(tmp, path)
        except OSError:
            pass


def guarded_worker_class(
    listeners: dict[int, Listener], limits: ConnectionLimits, state_dir: Path | None
) -> type[GuardedWorker]:
    """A worker class with this configuration, for gunicorn's ``worker_class`` setting."""
    attrs: dict[str, Any] = {"listeners": listeners, "limits": limits, "state_dir": state_dir}
    return type("GatewayWorker", (GuardedWorker,), attrs)


@dataclass
class WorkerStates:
    """What the serving workers of one gateway published, read by the operations listener."""

    workers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def closed(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for state in self.workers:
            total.update(state.get("closed", {}))
        return total

    def saturated_for(self, now: float) -> float:
        """Seconds for which every worker has had every serving thread busy (0 when any had one free)."""
        if not self.workers:
            return 0.0
        since = [state.get("saturatedSince") for state in self.workers]
        if any(s is None for s in since):
            return 0.0
        return max(0.0, now - max(float(s) for s in since if s is not None))


def read_worker_states(state_dir: Path, *, stale_after: float = 10.0) -> WorkerStates:
    """The states of the live serving workers (files not updated for ``stale_after`` s are left out)."""
    now = time.time()
    workers = []
    for path in sorted(state_dir.glob("http-worker-*.json")):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if now - float(state.get("at", 0)) <= stale_after:
            workers.append(state)
    return WorkerStates(workers)
