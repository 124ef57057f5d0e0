"""Watching HTTP exchanges as a whole: a request must be answered, and a body must keep moving.

A socket's read timeout restarts with every byte, so a registry (or a proxy in front of one) that drips a
byte now and then, or stalls half way through a blob, is never caught by it. Every exchange
:class:`~promoter.transport.session.RegistrySession` sends is therefore watched by one daemon thread per
process, which cuts the exchange's connection (``shutdown(SHUT_RDWR)`` on its socket, which wakes the
blocked read or write) as soon as it breaks one of these rules:

- **deadline**: the operation's :class:`~promoter.deadline.Deadline` passed;
- **no answer**: while the exchange waits for the registry (the request sent, the status line and headers
  and a body read whole not yet in), it may take at most ``answer_seconds`` in total;
- **stalled**: while a body streams (a blob sent or received), at least ``stall_bytes`` must move in every
  ``stall_window`` seconds.

A front end that owns the process (the CLI) calls :func:`interrupt` on Ctrl-C or SIGTERM: every live
exchange is cut at once, no new one starts (except clean-up requests), and retries stop. An exchange
whose answer says what the registry now holds (:func:`awaited`: the POST that opens an upload session,
a PATCH, a manifest PUT) and that is waiting for that answer gets :data:`INTERRUPT_GRACE` seconds
for it instead, so that what it did is known: a session is cancelled, not left open unseen; a tag
written is reported. Those that get no answer in time are counted
(:func:`unanswered_after_interrupt`), for a front end to say so.

The thread that owns the exchange then sees a broken connection, asks :attr:`Exchange.broken` why, and
raises the matching error. A connection is only cut while its exchange is unfinished, so a connection
given back to the pool is never touched.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import urllib3

from promoter.deadline import Deadline
from promoter.process import signals_to_main_thread


@dataclass(frozen=True, slots=True)
class Pace:
    """The rules an exchange is held to.

    Attributes:
        answer_seconds: the longest wait for an answer (status line, headers and a body read whole).
        stall_window: seconds over which a streaming body's progress is measured.
        stall_bytes: the fewest bytes a streaming body must move in each window.
    """

    answer_seconds: float = 120.0
    stall_window: float = 30.0
    stall_bytes: int = 64 * 1024


class Broken(StrEnum):
    """Why the watchdog cut an exchange."""

    DEADLINE = "deadline"
    NO_ANSWER = "no answer"
    STALLED = "stalled"
    INTERRUPTED = "interrupted"


class Exchange:
    """One request and its answer, as the watchdog sees it. Thread-safe.

    Args:
        pace: the rules.
        deadline: the operation's deadline, if any.
        peer: ``host[:port]`` the exchange talks to, for messages.
    """

    def __init__(
        self,
        pace: Pace,
        deadline: Deadline | None,
        peer: str = "the registry",
        *,
        awaited: bool = False,
        opens: bool = False,
    ) -> None:
        self.pace = pace
        self.deadline = deadline
        self.peer = peer
        #: Whether the exchange's answer is waited for after an interrupt (see :func:`awaited`).
        self.awaited = awaited
        #: Whether its answer names an upload session (counted when it does not come in time).
        self.opens = opens
        self._graced = False
        self.broken: Broken | None = None
        self._lock = threading.Lock()
        self._connection: Any = None
        self._finished = False
        #: Which of the watchdog's entries for this exchange counts (a phase change replaces it).
        self.schedule = 0
        now = time.monotonic()
        self._streaming = False
        self._since = now
        self._moved = 0

    # -- the owner's side ------------------------------------------------------------------------

    def attach(self, connection: Any) -> None:
        """Remember the connection (a urllib3 ``HTTPConnection``) the exchange runs on, and mark
        the connection as this exchange's: urllib3 gives a connection back to its pool as soon as a
        body has been read to its end, and the next request on it marks it as its own, so a late
        cut never reaches a request that is not this exchange's."""
        self._connection = connection
        connection.promoter_exchange = self

    def streaming(self) -> None:
        """A body starts to stream: from now on the stall rule applies."""
        with self._lock:
            self._streaming = True
            self._since = time.monotonic()
            self._moved = 0
        _WATCHDOG.watch(self)  # the next look is due sooner or later than it was

    def waiting(self) -> None:
        """The request is sent: from now on the answer rule applies."""
        with self._lock:
            self._streaming = False
            self._since = time.monotonic()
        _WATCHDOG.watch(self)

    def moved(self, nbytes: int) -> None:
        """Count bytes of a streaming body sent or received."""
        self._moved += nbytes  # a lost increment under a race only makes the stall rule stricter

    def finish(self) -> None:
        """The exchange is over (its connection given back or closed); it is never cut after this."""
        with self._lock:
            self._finished = True
            self._connection = None

    def sending(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """``chunks`` as a request body: streaming while they are sent, waiting once they are."""
        self.streaming()
        for chunk in chunks:
            self.moved(len(chunk))
            yield chunk
        self.waiting()

    # -- the watchdog's side ---------------------------------------------------------------------

    def check(self, now: float) -> float | None:
        """(The watchdog's side.) Cut the exchange if it broke a rule; the next moment to look
        again, None when done."""
        with self._lock:
            if self._finished or self.broken is not None:
                return None
            if self.deadline is not None and now >= self.deadline.at:
                if self._graced and self.opens:
                    _UNANSWERED.append(self.peer)
                self._cut(Broken.DEADLINE)
                return None
            if self._streaming:
                due = self._since + self.pace.stall_window
                if now >= due:
                    if self._moved < self.pace.stall_bytes:
                        self._cut(Broken.STALLED)
                        return None
                    self._since, self._moved = now, 0
                    due = now + self.pace.stall_window
            else:
                due = self._since + self.pace.answer_seconds
                if now >= due:
                    self._cut(Broken.NO_ANSWER)
                    return None
            return due if self.deadline is None else min(due, self.deadline.at)

    def cut(self, why: Broken) -> None:
        """Cut the exchange now, unless it is over."""
        with self._lock:
            if not self._finished and self.broken is None:
                self._cut(why)

    def interrupt(self) -> None:
        """Cut the exchange for an interrupt, unless it is over; an :func:`awaited` one waiting
        for its answer gets :data:`INTERRUPT_GRACE` seconds for it first."""
        with self._lock:
            if self._finished or self.broken is not None:
                return
            if not (self.awaited and not self._streaming):
                self._cut(Broken.INTERRUPTED)
                return
            self._graced = True
            grace = Deadline.after(INTERRUPT_GRACE)
            if self.deadline is None or grace.at < self.deadline.at:
                self.deadline = grace
        _WATCHDOG.watch(self)  # due at the grace's end now

    def _cut(self, why: Broken) -> None:  # with self._lock held
        self.broken = why
        if getattr(self._connection, "promoter_exchange", None) is not self:
            return  # back in the pool, or serving another request now
        sock = getattr(self._connection, "sock", None)
        if isinstance(sock, socket.socket):
            # The plain socket's shutdown, also for a TLS socket: ssl.SSLSocket.shutdown would
            # unwrap it under the reading thread's feet; this wakes that thread with an EOF.
            with contextlib.suppress(OSError):  # already closed
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """The one thread that checks every watched exchange when it is due."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, int, Exchange]] = []  # when, order, schedule, exchange
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, exchange: Exchange) -> None:
        """Look at ``exchange`` now and when it is next due (replacing an earlier schedule)."""
        first = exchange.check(time.monotonic())
        if first is None:
            return
        with self._wake:
            exchange.schedule += 1
            heapq.heappush(self._due, (first, next(self._order), exchange.schedule, exchange))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="promoter-watchdog", daemon=True
                )
                self._thread.start()
            elif self._due[0][3] is exchange:
                self._wake.notify()

    @property
    def started(self) -> bool:
        """Whether any exchange was ever watched."""
        return self._thread is not None

    def interrupt_all(self) -> None:
        """Cut every exchange being watched, for an interrupt (:meth:`Exchange.interrupt`)."""
        with self._wake:
            live = [exchange for _, _, _, exchange in self._due]
        for exchange in live:
            exchange.interrupt()

    def _run(self) -> None:
        signals_to_main_thread()
        while True:
            with self._wake:
                while not self._due:
                    self._wake.wait()
                when = self._due[0][0]
                now = time.monotonic()
                if when > now:
                    self._wake.wait(when - now)
                    continue
                _, _, schedule, exchange = heapq.heappop(self._due)
                if schedule != exchange.schedule:
                    continue  # replaced by a later schedule
            following = exchange.check(now)
            if following is not None:
                with self._wake:
                    if schedule == exchange.schedule:
                        heapq.heappush(
                            self._due, (following, next(self._order), schedule, exchange)
                        )


_WATCHDOG = _Watchdog()
_current = threading.local()
_of_response: weakref.WeakKeyDictionary[urllib3.BaseHTTPResponse, Exchange] = (
    weakref.WeakKeyDictionary()
)


_INTERRUPTED = threading.Event()

#: Seconds an exchange that opens something (:func:`opening`) may still wait for its answer after
#: an interrupt: about a round trip over the farthest link, so that the process still ends at once.
INTERRUPT_GRACE = 2.0
#: The peers of awaited exchanges cut at the grace's end (list.append is atomic).
_UNANSWERED: list[str] = []


def watch(exchange: Exchange) -> None:
    """Start watching an exchange (until :meth:`Exchange.finish`); after :func:`interrupt`, an
    exchange is cut before it starts unless this thread is :func:`cleaning_up`."""
    if _INTERRUPTED.is_set() and not getattr(_current, "cleaning_up", False):
        exchange.cut(Broken.INTERRUPTED)
    _WATCHDOG.watch(exchange)


@contextmanager
def awaited(*, opens: bool = False) -> Iterator[None]:
    """Requests sent in the block have an answer that says what the registry now holds (an upload
    session's location, whether a tag was written): an interrupt while one waits for its answer
    lets the answer come, within :data:`INTERRUPT_GRACE`, so the caller learns what to cancel or
    to report. ``opens``: the answer names an upload session (a POST, a PATCH), which stays open
    when it does not come in time (counted: :func:`unanswered_after_interrupt`)."""
    _current.awaited = "opens" if opens else "writes"
    try:
        yield
    finally:
        _current.awaited = None


def awaited_on_this_thread() -> bool:
    """Whether this thread is in an :func:`awaited` block."""
    return getattr(_current, "awaited", None) is not None


def opens_on_this_thread() -> bool:
    """Whether this thread is in an :func:`awaited` block that opens upload sessions."""
    return getattr(_current, "awaited", None) == "opens"


def cleaning_up_on_this_thread() -> bool:
    """Whether this thread is in a :func:`cleaning_up` block."""
    return bool(getattr(_current, "cleaning_up", False))


def unanswered_after_interrupt() -> int:
    """How many :func:`awaited` exchanges that open upload sessions got no answer within the
    grace after the interrupt (the session, if any, stays open and unknown)."""
    return len(_UNANSWERED)


@contextmanager
def cleaning_up() -> Iterator[None]:
    """Requests sent in the block clean up after a failure (cancelling an upload session): they are
    sent even after :func:`interrupt`, bounded by their own short deadline."""
    _current.cleaning_up = True
    try:
        yield
    finally:
        _current.cleaning_up = False


def interrupt() -> None:
    """Stop the process's registry traffic for good: cut every live exchange, refuse new ones (but
    clean-up requests such as cancelling an upload), end retry waits. For front ends that own the
    process (the CLI on Ctrl-C or SIGTERM); a server bounds its requests with deadlines instead."""
    _INTERRUPTED.set()
    _WATCHDOG.interrupt_all()


def traffic_started() -> bool:
    """Whether this process has sent any registry request yet."""
    return _WATCHDOG.started


def interrupted() -> bool:
    """Whether :func:`interrupt` was called."""
    return _INTERRUPTED.is_set()


def pause(seconds: float) -> bool:
    """Wait ``seconds`` (a retry's backoff) unless interrupted; whether the wait ran its course."""
    return not _INTERRUPTED.wait(seconds)


@contextmanager
def sending_on_this_thread(exchange: Exchange) -> Iterator[None]:
    """While the block runs, connections that send a request attach themselves to ``exchange``."""
    _current.exchange = exchange
    try:
        yield
    finally:
        _current.exchange = None


def attach_current(connection: Any) -> None:
    """Called by a watched connection as it connects and as it sends: attach it to this thread's
    exchange, if any.

    Raises:
        ConnectionAbortedError: the exchange was cut already (while connecting, say): nothing is
            sent after a cut.
    """
    exchange: Exchange | None = getattr(_current, "exchange", None)
    if exchange is None:
        connection.promoter_exchange = None
        return
    exchange.attach(connection)
    if exchange.broken is not None:
        raise ConnectionAbortedError(f"cut before sending: {exchange.broken}")


def hand_over(response: urllib3.BaseHTTPResponse, exchange: Exchange) -> None:
    """A streamed response's body is read later: keep its exchange with it."""
    exchange.streaming()
    _of_response[response] = exchange


def exchange_of(response: urllib3.BaseHTTPResponse) -> Exchange | None:
    """The exchange of a streamed response, if it is watched."""
    return _of_response.get(response)
