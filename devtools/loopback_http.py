"""A threaded HTTP server bound to 127.0.0.1 that can be stopped cleanly and promptly.

Both the token server and the fault proxy need the same lifecycle: bind an ephemeral loopback
port, serve from a background thread, and on stop tear down even keep-alive connections that a
client pool is still holding open. ``ThreadingHTTPServer`` alone would leave those handler
threads blocked in ``readline`` until the peer goes away, which makes test teardown hang or leak
sockets (and ``filterwarnings=error`` turns leaked sockets into failures).
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

LOOPBACK = "127.0.0.1"
"""The only address any devtools server binds to or talks to."""

IDLE_TIMEOUT_S = 30.0
"""How long a handler waits on an idle keep-alive connection before dropping it."""

_JOIN_TIMEOUT_S = 5.0
"""Upper bound for waiting on the serving thread and handler threads at stop time."""


#: Hop-by-hop headers (RFC 9110 section 7.6.1) describe one connection and are not forwarded by
#: the proxies here; ``Date`` and ``Server`` too, since BaseHTTPRequestHandler writes its own
#: (duplicates would confuse clients).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "date",
        "server",
    }
)


class _TrackingServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers its open connections so stop can close them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.owner: Any = None
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Record the connection before handing it to a handler thread."""
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection once its handler is done with it."""
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about peers that hang up; those are routine in fault tests."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Shut down every live connection so blocked handler threads return at once."""
        with self._connections_lock:
            live = list(self._connections)
        for conn in live:
            # OSError: already closed by the peer or the handler.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class LoopbackServer:
    """Owns one ``_TrackingServer`` and its serving thread.

    Subclasses (or owners) provide the handler class; ``owner`` is exposed to handlers as
    ``self.server.owner`` so a handler can reach the object whose state it serves.

    Args:
        handler: The request handler class.
        owner: Object handlers can reach through ``self.server.owner``.
        port: Port to bind; 0 asks the kernel for a free one, which avoids port races.
    """

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], owner: object, *, port: int = 0
    ) -> None:
        self._handler = handler
        self._owner = owner
        self._port = port
        self._server: _TrackingServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (valid after the first start; kept across stop/start)."""
        if self._port == 0:
            raise RuntimeError("server was never started, so it has no port yet")
        return self._port

    @property
    def running(self) -> bool:
        """Whether the server is currently accepting connections."""
        return self._server is not None

    def start(self) -> None:
        """Bind (reusing the previous port after a stop) and serve in a daemon thread."""
        if self._server is not None:
            return
        server = _TrackingServer((LOOPBACK, self._port), self._handler)
        server.owner = self._owner
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self._owner).__name__}:{self._port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, drop live connections and release the listening socket."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(_JOIN_TIMEOUT_S)


class LoopbackService:
    """What every devtools server built on :class:`LoopbackServer` shares: start and stop (also as
    a context manager) and its addresses. Subclasses set ``self._server``."""

    _server: LoopbackServer

    def start(self) -> None:
        """Start listening (on the same port again after a stop)."""
        self._server.start()

    def stop(self) -> None:
        """Stop listening and drop live connections."""
        self._server.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens on (known after the first start, kept across restarts)."""
        return self._server.port

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, usable as the registry part of an image reference."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"
