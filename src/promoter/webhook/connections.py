"""Limits on connections that uvicorn leaves to the deployment: the webhook's port is reachable by
anything in the cluster, and a few idle or dribbling clients must not take it from the API server.

uvicorn closes a connection that stays idle after an answer (``timeout_keep_alive``) but waits
forever for the first request of a new connection and for the rest of a request's head, and reads
a head of any size. :class:`GuardedHttpProtocol` adds, per connection:

- a new connection that sends nothing is closed after the keep-alive time, like an idle one;
- once a request's first byte arrives, its head (request line and headers) must be complete
  within :data:`HEAD_TIMEOUT` seconds (or the keep-alive time, when shorter) and
  :data:`HEAD_LIMIT` bytes (431 otherwise, as RFC 6585
  section 5 names it);
- past ``max_connections`` open connections, a new one is closed at once, so that file descriptors
  and TLS buffers (about 300 KB each) stay bounded while the connections the API server keeps
  are served.

The body's own deadline is the application's (:mod:`promoter.webhook.server`); the TLS handshake's
is asyncio's ``ssl_handshake_timeout``, set by the server: a connection that never completes its
handshake is not yet a connection here, so it is bounded by time only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Seconds a request's head may take once its first byte arrived.
HEAD_TIMEOUT = 10.0
#: Bytes a request's head may have (the API server sends a few hundred).
HEAD_LIMIT = 64 * 1024


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of the module docstring.

    Attributes:
        max_connections: open connections beyond which a new one is closed at once (set by
            :func:`guarded_protocol`).
        idle_timeout: seconds a connection may stay silent before its first request.
    """

    max_connections: ClassVar[int] = 1000
    idle_timeout: ClassVar[float] = 75.0
    #: Called for each connection closed for the limit (a tuple: a bare function would bind).
    on_refused: ClassVar[tuple[Callable[[], None], ...]] = ()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0
        self._in_head = False
        self._guard: asyncio.TimerHandle | None = None
        if len(self.connections) > self.max_connections:
            transport.abort()
            for hook in self.on_refused:
                hook()
            return
        self._guard = self.loop.call_later(self.idle_timeout, self._close, "idle")

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_guard()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._in_head and (self.cycle is None or self.cycle.response_complete):
            # The first bytes of a request: its head must now arrive whole, and soon.
            self._cancel_guard()
            self._in_head = True
            self._head_bytes = 0
            self._guard = self.loop.call_later(
                min(HEAD_TIMEOUT, self.idle_timeout), self._close, "head"
            )
        if self._in_head:
            end = data.find(b"\r\n\r\n")  # the head's end, when this chunk has it
            self._head_bytes += len(data) if end < 0 else end + 4
            if self._head_bytes > HEAD_LIMIT:
                self._refuse_head()
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_guard()
        super().on_headers_complete()

    def _refuse_head(self) -> None:
        self._cancel_guard()
        body = f"request head larger than {HEAD_LIMIT} bytes\n".encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
            b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self.transport.close()

    def _close(self, why: str) -> None:
        del why  # for debugging only: both end the same way
        self._guard = None
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()

    def _cancel_guard(self) -> None:
        guard = getattr(self, "_guard", None)
        if guard is not None:
            guard.cancel()
            self._guard = None


def guarded_protocol(
    *,
    max_connections: int,
    idle_timeout: float,
    on_refused: Callable[[], None] | None = None,
) -> type[GuardedHttpProtocol]:
    """A :class:`GuardedHttpProtocol` class with these limits (uvicorn takes a class);
    ``on_refused`` is called for each connection closed for the limit."""
    attributes: dict[str, Any] = {
        "max_connections": max_connections,
        "idle_timeout": idle_timeout,
        "on_refused": (on_refused,) if on_refused is not None else (),
    }
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), attributes)
