"""A TCP proxy on loopback that adds a network's round-trip time, byte for byte.

On loopback a request costs microseconds, so code whose speed depends on how many round trips it
makes (a webhook's registry lookups, a copy's HEAD/POST/PUT sequence) looks the same whether it
makes two or twenty. Put this proxy between a client and a local server and every round trip
costs what a real link would charge:

* every chunk of bytes, in each direction, is written half a round trip after it was read. The
  delay is latency, not a bandwidth limit: a chunk read at ``t`` is written at ``t + rtt/2``
  whatever else is in flight, and chunks keep their order;
* a new connection costs one round trip before its first byte can travel, like a TCP handshake:
  the client's ``connect()`` returns at once on loopback, so its first bytes reach the upstream
  at ``accept + rtt + rtt/2``, when a real client's would (SYN and SYN-ACK, then the data). The
  upstream connection is opened at that moment too, so a server that speaks first is heard at
  ``accept + 2 rtt``, as over a real link;
* a half-close (FIN) travels like data, in order and half a round trip late, and the proxy keeps
  the other direction open until its peer closes too; a reset (or a connection the upstream
  refused) aborts the other side, so either side's close reaches the other.

It is byte-level, so TLS, HTTP/1.1 keep-alive, HTTP/2 and anything else pass through untouched
(a certificate for 127.0.0.1 still matches: only the port differs). One asyncio loop in a daemon
thread serves every connection, so hundreds at once cost no threads; the accept backlog is large
enough for a burst of fresh connections.

Memory is bounded, not the rate: a direction stops reading from its source while more than
``MAX_QUEUED_BYTES`` wait for their time (64 MiB: a bandwidth-delay product of 1.6 GiB/s at an
80 ms round trip) or while the destination's socket buffer is full, which is TCP's own flow
control. Measured with 256 MiB over one connection: 1.2-1.4 GiB/s at 0 ms, 1 GiB/s at 20 ms
and 0.7 GiB/s at 80 ms (two round trips before the first byte included), more than a loopback
registry serves.

From Python::

    with LatencyProxy(("127.0.0.1", registry.port), rtt_ms=20) as proxy:
        ...  # talk to 127.0.0.1:proxy.port

From a shell (runs until SIGINT or SIGTERM, or ``--max-seconds``)::

    python -m devtools.latency_proxy --rtt-ms 20 --listen 5300 --upstream 127.0.0.1:5000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import socket
import struct
import sys
import threading
from collections import deque
from collections.abc import Sequence
from typing import Literal

from devtools.loopback_http import LOOPBACK

MAX_QUEUED_BYTES = 64 * 1024 * 1024
"""Bytes a direction holds back for their delay before it stops reading from its source."""

BACKLOG = 4096
"""Accept queue length: a burst of hundreds of fresh connections must not overflow it."""

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0

_EOF: Literal["eof"] = "eof"
_RESET: Literal["reset"] = "reset"
_Item = bytes | Literal["eof", "reset"]


def loopback_address(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (or ``[::1]:PORT``) and insist that HOST is a loopback address.

    The proxy exists for tests and benchmarks on this machine; it never forwards anywhere else.

    Raises:
        ValueError: Not HOST:PORT, a port outside 1-65535, or a host that is not loopback.
    """
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"expected HOST:PORT with a port 1-65535, got {text!r}")
    if host == "localhost":
        host = LOOPBACK
    try:
        is_loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        is_loopback = False
    if not is_loopback:
        raise ValueError(f"upstream {host!r} is not a loopback address (127.0.0.0/8, ::1)")
    return host, int(port_text)


class LatencyProxy:
    """Forward ``127.0.0.1:port`` to a loopback upstream with a round-trip time added.

    Args:
        upstream: ``(host, port)`` or ``"HOST:PORT"`` of the server behind the proxy; loopback only.
        rtt_ms: The round-trip time to add, in milliseconds (0 forwards without delay). It may be
            changed while running (``proxy.rtt_ms = 80``); it applies to bytes read from then on,
            and bytes never overtake ones read earlier.
        port: Port to listen on; 0 asks the kernel for a free one (see ``port`` after start).

    Raises:
        ValueError: A negative round-trip time or an upstream that is not loopback.
    """

    def __init__(self, upstream: tuple[str, int] | str, *, rtt_ms: float, port: int = 0) -> None:
        if isinstance(upstream, str):
            upstream = loopback_address(upstream)
        else:
            upstream = loopback_address(f"{upstream[0]}:{upstream[1]}")
        self.upstream = upstream
        self.rtt_ms = rtt_ms
        self.accepted = 0
        """Connections accepted since the first start (a test can check none were refused)."""
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()

    @property
    def rtt_ms(self) -> float:
        """The added round-trip time in milliseconds."""
        return self._rtt_s * 1000.0

    @rtt_ms.setter
    def rtt_ms(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"round-trip time must be 0 or more, got {value} ms")
        self._rtt_s = value / 1000.0

    @property
    def rtt_s(self) -> float:
        """The added round-trip time in seconds."""
        return self._rtt_s

    @property
    def port(self) -> int:
        """The port the proxy listens on (known after the first start, kept across restarts)."""
        if self._port == 0:
            raise RuntimeError("latency proxy was never started, so it has no port yet")
        return self._port

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, to use where the upstream's address would go."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def live_connections(self) -> int:
        """Client connections currently open through the proxy."""
        return len(self._links)

    def start(self) -> None:
        """Listen (on the same port again after a stop) and serve from a daemon thread.

        Raises:
            OSError: The port could not be bound.
        """
        if self._loop is not None:
            return
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=loop.run_forever, name=f"latency-proxy:{self._port}", daemon=True
        )
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            server = asyncio.run_coroutine_threadsafe(self._listen(), loop).result(_START_TIMEOUT_S)
        except BaseException:
            self._stop_loop()
            raise
        self._server = server
        self._port = server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Stop listening, abort every live connection (both sides) and end the thread."""
        if self._loop is None:
            return
        with contextlib.suppress(TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(_STOP_TIMEOUT_S)
        self._stop_loop()

    def __enter__(self) -> LatencyProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # internals, all on the proxy's loop ---------------------------------------------------------

    async def _listen(self) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        return await loop.create_server(
            lambda: _Link(self, loop, self._links).client,
            LOOPBACK,
            self._port,
            backlog=BACKLOG,
            reuse_address=True,
        )

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for link in list(self._links):
            link.abort()
        if server is not None:
            await server.wait_closed()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop, self._thread = None, None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(_STOP_TIMEOUT_S)
        if not loop.is_running():
            loop.close()


class _Side(asyncio.Protocol):
    """One socket of a link (the client's or the upstream's); hands what it reads to the link."""

    def __init__(self, link: _Link, name: Literal["client", "upstream"]) -> None:
        self.link = link
        self.name = name
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.outgoing: _Direction | None = None  # bytes this side reads, to the other side
        self.incoming: _Direction | None = None  # bytes to write to this side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.link.side_connected(self)

    def data_received(self, data: bytes) -> None:
        assert self.outgoing is not None
        self.outgoing.push(data)

    def eof_received(self) -> bool:
        assert self.outgoing is not None
        self.outgoing.push(_EOF)
        return True  # keep our writing half open: the other direction may still carry bytes

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.link.side_lost(self, exc)

    def pause_writing(self) -> None:
        if self.incoming is not None:
            self.incoming.pause_source("destination buffer")

    def resume_writing(self) -> None:
        if self.incoming is not None:
            self.incoming.resume_source("destination buffer")


class _Direction:
    """Bytes from one side to the other, each chunk written half a round trip after it was read.

    A deque keeps the order (timers with equal deadlines have none); one timer at a time waits
    for the head's deadline, and writes everything due when it fires.
    """

    def __init__(
        self, link: _Link, source: _Side, destination: _Side, *, not_before: float
    ) -> None:
        self.link = link
        self.source = source
        self.destination = destination
        self.not_before = not_before  # the handshake: no byte travels before this loop time
        self.queue: deque[tuple[float, _Item]] = deque()
        self.queued_bytes = 0
        self.timer: asyncio.TimerHandle | None = None
        self.finished = False  # EOF or reset delivered (or the destination is gone)
        self.closed_input = False  # EOF or reset read from the source
        self.paused_by: set[str] = set()

    def push(self, item: _Item) -> None:
        if self.closed_input or self.finished:
            return
        if not isinstance(item, bytes):
            self.closed_input = True
        loop = self.link.loop
        due = max(loop.time(), self.not_before) + self.link.proxy.rtt_s / 2
        self.queue.append((due, item))
        if isinstance(item, bytes):
            self.queued_bytes += len(item)
            if self.queued_bytes > MAX_QUEUED_BYTES:
                self.pause_source("queue")
        if self.timer is None:
            self.timer = loop.call_at(due, self.deliver)

    def deliver(self) -> None:
        """Write every chunk whose time has come, then wait for the next one."""
        self.timer = None
        loop = self.link.loop
        destination = self.destination.transport
        if destination is None:
            return  # not connected yet: the link calls deliver again once it is
        now = loop.time()
        while self.queue and not self.finished:
            due, item = self.queue[0]
            if due > now:
                self.timer = loop.call_at(due, self.deliver)
                return
            self.queue.popleft()
            if item == _RESET:
                self.finished = True
                self.link.abort()
                return
            if self.destination.lost or destination.is_closing():
                # Nobody reads there any more: a real peer would answer with a reset.
                self.finished = True
                self.link.abort()
                return
            if item == _EOF:
                self.finished = True
                if destination.can_write_eof():
                    # The peer may have gone meanwhile (ENOTCONN): nothing is left to tell it.
                    with contextlib.suppress(OSError):
                        destination.write_eof()
                self.link.direction_finished()
                return
            assert isinstance(item, bytes)
            self.queued_bytes -= len(item)
            destination.write(item)
        if self.queued_bytes <= MAX_QUEUED_BYTES // 2:
            self.resume_source("queue")

    def pause_source(self, reason: str) -> None:
        transport = self.source.transport
        if not self.paused_by and transport is not None and not transport.is_closing():
            transport.pause_reading()
        self.paused_by.add(reason)

    def resume_source(self, reason: str) -> None:
        if reason not in self.paused_by:
            return
        self.paused_by.discard(reason)
        transport = self.source.transport
        if not self.paused_by and transport is not None and not transport.is_closing():
            transport.resume_reading()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()
        self.finished = True


class _Link:
    """One proxied connection: the client's socket, the upstream's, and a direction each way."""

    def __init__(
        self, proxy: LatencyProxy, loop: asyncio.AbstractEventLoop, links: set[_Link]
    ) -> None:
        self.proxy = proxy
        self.links = links  # the proxy's live links, so stop can abort them
        self.loop = loop
        self.client = _Side(self, "client")
        self.upstream = _Side(self, "upstream")
        self.connect_task: asyncio.Task[None] | None = None
        self.closed = False
        usable_at = loop.time() + proxy.rtt_s  # the handshake's round trip
        self.up = _Direction(self, self.client, self.upstream, not_before=usable_at)
        self.down = _Direction(self, self.upstream, self.client, not_before=0.0)
        self.client.outgoing, self.client.incoming = self.up, self.down
        self.upstream.outgoing, self.upstream.incoming = self.down, self.up

    def side_connected(self, side: _Side) -> None:
        if side is self.client:
            self.proxy.accepted += 1
            self.links.add(self)
            # The upstream hears the client when its first bytes would arrive: one round trip
            # for the handshake plus half of one for the bytes.
            self.loop.call_at(self.up.not_before + self.proxy.rtt_s / 2, self._start_connect)
        elif self.closed:
            # The client went away while the upstream connection was being made.
            assert side.transport is not None
            side.transport.abort()
        else:
            self.up.deliver()

    def _start_connect(self) -> None:
        if not self.closed:
            self.connect_task = self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        host, port = self.proxy.upstream
        try:
            await self.loop.create_connection(lambda: self.upstream, host, port)
        except OSError:
            # Refused or unreachable: the client learns it the way TCP tells it, by a reset.
            self.abort()

    def direction_finished(self) -> None:
        if self.up.finished and self.down.finished:
            self._close(abort=False)

    def side_lost(self, side: _Side, exc: Exception | None) -> None:
        if self.closed:
            return  # we closed it ourselves
        # The socket failed under us (a reset, a write to a closed peer): that travels like a
        # FIN, half a round trip late, and then aborts the other side.
        assert side.outgoing is not None
        assert side.incoming is not None
        side.incoming.cancel()  # nobody reads on this side any more
        if side.outgoing.finished:
            self.abort()  # its FIN already went through: now the reset follows at once
        else:
            side.outgoing.push(_RESET if exc is not None else _EOF)

    def abort(self) -> None:
        self._close(abort=True)

    def _close(self, *, abort: bool) -> None:
        if self.closed:
            return
        self.closed = True
        if self.connect_task is not None and self.upstream.transport is None:
            self.connect_task.cancel()
        self.up.cancel()
        self.down.cancel()
        for side in (self.client, self.upstream):
            transport = side.transport
            if transport is None or transport.is_closing():
                continue
            if abort:
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    # Linger 0: close with a reset, as a peer that vanished would.
                    with contextlib.suppress(OSError):
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                transport.abort()
            else:
                transport.close()
        self.links.discard(self)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a latency proxy until SIGINT, SIGTERM or ``--max-seconds``; print where it listens."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.latency_proxy",
        description="TCP proxy on 127.0.0.1 adding a round-trip time to every byte.",
    )
    parser.add_argument("--rtt-ms", type=float, required=True, help="round-trip time to add")
    parser.add_argument(
        "--listen", type=int, default=0, help="port on 127.0.0.1 (default: a free one)"
    )
    parser.add_argument("--upstream", required=True, help="HOST:PORT of a loopback server")
    parser.add_argument(
        "--max-seconds", type=float, default=None, help="exit after this long (default: never)"
    )
    args = parser.parse_args(argv)
    try:
        proxy = LatencyProxy(args.upstream, rtt_ms=args.rtt_ms, port=args.listen)
        proxy.start()
    except (ValueError, OSError) as exc:
        print(f"latency_proxy: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    host, port = proxy.upstream
    print(
        f"latency proxy {proxy.host} -> {host}:{port}, round trip {proxy.rtt_ms:g} ms",
        flush=True,
    )
    try:
        stop.wait(args.max_seconds)
    finally:
        proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
