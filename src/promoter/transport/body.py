"""Streaming response bodies: reading them in chunks and giving their connections back."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import urllib3
from urllib3.exceptions import HTTPError

from promoter.deadline import Deadline
from promoter.errors import DeadlineExceededError, RegistryUnreachableError
from promoter.transport.responses import reason


def iter_body(
    response: urllib3.BaseHTTPResponse,
    chunk_size: int,
    what: str,
    *,
    deadline: Deadline | None = None,
) -> Iterator[bytes]:
    """Stream a response body in chunks of at most ``chunk_size`` bytes, turning a dropped connection
    into our error.

    urllib3 enforces Content-Length, so a body cut short raises here instead of ending quietly. With a
    deadline, a watchdog shuts the connection down when it passes: a body that drips a byte at a time
    (each byte restarting the socket's read timeout) or stalls cannot outlast it.

    Raises:
        RegistryUnreachableError: the connection was lost while reading.
        DeadlineExceededError: the deadline passed while reading.
    """
    watchdog = None
    if deadline is not None:
        watchdog = threading.Timer(deadline.remaining(), response.shutdown)
        watchdog.daemon = True
        watchdog.start()
    try:
        for chunk in response.stream(chunk_size, decode_content=False):
            if deadline is not None:
                deadline.check(what)
            yield chunk
    except (HTTPError, OSError) as exc:
        if deadline is not None and deadline.expired:
            raise DeadlineExceededError(
                f"{what}: gave up after the {deadline.seconds:g} s deadline while reading"
            ) from exc
        raise RegistryUnreachableError(
            f"{what}: connection lost while reading: {reason(exc)}"
        ) from exc
    finally:
        if watchdog is not None:
            watchdog.cancel()


def release(response: urllib3.BaseHTTPResponse) -> None:
    """Give a streamed response's connection back: to the pool if the body was read to its end,
    else closed, so that unread bytes can never be taken for the next response on it."""
    if not response.closed:  # http.client closes the body once it has been read to its end
        response.close()
    response.release_conn()
