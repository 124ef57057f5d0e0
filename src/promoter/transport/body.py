"""Response bodies: streaming them in chunks, reading small ones whole under a cap, and giving their
connections back."""

from __future__ import annotations

from collections.abc import Iterator

import urllib3
from urllib3.exceptions import HTTPError

from promoter.deadline import Deadline
from promoter.errors import (
    AnswerTooLargeError,
    DeadlineExceededError,
    RegistryUnreachableError,
    RunInterruptedError,
)
from promoter.transport.responses import reason
from promoter.transport.watch import Broken, Exchange, exchange_of

#: Bytes asked of the socket per read while a body streams: small enough that a slow but moving body
#: shows progress to the stall rule, large enough to cost nothing on a fast link.
_READ_SIZE = 256 * 1024


def broken_error(
    exchange: Exchange | None,
    what: str,
    exc: BaseException | None,
    deadline: Deadline | None,
) -> DeadlineExceededError | RegistryUnreachableError | RunInterruptedError:
    """The error for an exchange that failed while sending or reading: why the watchdog cut it, when
    it did, else the connection's own failure."""
    why = exchange.broken if exchange is not None else None
    peer = exchange.peer if exchange is not None else "the registry"
    if why is Broken.INTERRUPTED:
        return RunInterruptedError(f"{what}: interrupted")
    if why is Broken.DEADLINE or (deadline is not None and deadline.expired):
        name = deadline.name if deadline is not None else "the deadline"
        return DeadlineExceededError(f"{what}: gave up after {name} (waiting for {peer})")
    if why is Broken.NO_ANSWER and exchange is not None:
        return RegistryUnreachableError(
            f"{what}: no complete answer from {peer} within {exchange.pace.answer_seconds:g} s"
        )
    if why is Broken.STALLED and exchange is not None:
        pace = exchange.pace
        return RegistryUnreachableError(
            f"{what}: stalled: {peer} moved less than {pace.stall_bytes} bytes in "
            f"{pace.stall_window:g} s"
        )
    return RegistryUnreachableError(
        f"{what}: connection to {peer} lost: {reason(exc) if exc is not None else 'cut'}"
    )


def iter_body(
    response: urllib3.BaseHTTPResponse,
    chunk_size: int,
    what: str,
    *,
    deadline: Deadline | None = None,
) -> Iterator[bytes]:
    """Stream a response body in chunks of about ``chunk_size`` bytes (the last may be shorter),
    turning a dropped, stalled or overdue connection into our error.

    urllib3 enforces Content-Length, so a body cut short raises here instead of ending quietly. The
    exchange's watchdog (:mod:`promoter.transport.watch`) cuts a body that stalls or outlasts the
    deadline, however it drips.

    A socket file closed under the read is a lost connection too: Python raises ValueError for a
    read of a closed file, which must never leave here bare.

    Raises:
        RegistryUnreachableError: the connection was lost or stalled while reading.
        DeadlineExceededError: the deadline passed while reading.
        RunInterruptedError: the run was interrupted while reading.
    """
    exchange = exchange_of(response)
    pending: list[bytes] = []
    size = 0
    try:
        while True:
            piece = response.read1(_READ_SIZE, decode_content=False)
            if not piece:
                break
            if exchange is not None:
                exchange.moved(len(piece))
            if deadline is not None:
                deadline.check(what)
            pending.append(piece)
            size += len(piece)
            if size >= chunk_size:
                yield b"".join(pending)
                pending, size = [], 0
    except (HTTPError, OSError, ValueError) as exc:
        raise broken_error(exchange, what, exc, deadline) from exc
    if exchange is not None:
        if exchange.broken is not None:
            # Cut: the end of the stream is not the end of the body (without a Content-Length,
            # nothing else would tell).
            raise broken_error(exchange, what, None, deadline)
        exchange.finish()  # read to its end: urllib3 has given the connection back already
    if pending:
        yield b"".join(pending)


def read_whole(
    response: urllib3.BaseHTTPResponse,
    limit: int,
    what: str,
    exchange: Exchange | None = None,
    *,
    truncate: bool = False,
) -> bytes:
    """Read a body whole, refusing it as soon as it grows past ``limit`` bytes (with ``truncate``,
    keeping its first ``limit`` bytes and closing the connection instead).

    Raises:
        AnswerTooLargeError: the body (or its announced Content-Length) exceeds ``limit``.
        urllib3 HTTPError, OSError: the connection failed (the caller words it).
        ValueError: the socket file was closed under the read (the caller words it).
    """
    announced = response.headers.get("Content-Length", "")
    if announced.isdigit() and int(announced) > limit and not truncate:
        response.close()
        raise AnswerTooLargeError(f"{what}: the answer is {announced} bytes, more than {limit}")
    parts: list[bytes] = []
    size = 0
    while True:
        piece = response.read1(min(_READ_SIZE, limit + 1 - size), decode_content=False)
        if not piece:
            return b"".join(parts)
        size += len(piece)
        if exchange is not None:
            exchange.moved(len(piece))
        if size > limit:
            response.close()
            if truncate:
                return b"".join(parts) + piece[: limit - (size - len(piece))]
            raise AnswerTooLargeError(f"{what}: the answer is larger than {limit} bytes")
        parts.append(piece)


def release(response: urllib3.BaseHTTPResponse) -> None:
    """Give a response's connection back: to the pool if the body was read to its end, else
    closed, so that unread bytes can never be taken for the next response on it.

    Always on the thread that read it, and never after its connection went back to the pool:
    ``close()`` touches neither the answer nor the connection once urllib3 has given the connection
    back (it does so itself, as the last byte is read), and closes both otherwise, also when a read
    failed half way through urllib3's own clean-up.
    """
    exchange = exchange_of(response)
    if exchange is not None:
        exchange.finish()
    response.close()
    response.release_conn()
