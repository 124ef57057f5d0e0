"""Streaming response bodies: reading them in chunks and giving their connections back."""

from __future__ import annotations

from collections.abc import Iterator

import urllib3
from urllib3.exceptions import HTTPError

from promoter.errors import RegistryUnreachableError
from promoter.transport.responses import reason


def iter_body(response: urllib3.BaseHTTPResponse, chunk_size: int, what: str) -> Iterator[bytes]:
    """Stream a response body in chunks of at most ``chunk_size`` bytes, turning a dropped connection
    into our error.

    urllib3 enforces Content-Length, so a body cut short raises here instead of ending quietly.

    Raises:
        RegistryUnreachableError: the connection was lost while reading.
    """
    try:
        yield from response.stream(chunk_size, decode_content=False)
    except (HTTPError, OSError) as exc:
        raise RegistryUnreachableError(
            f"{what}: connection lost while reading: {reason(exc)}"
        ) from exc


def release(response: urllib3.BaseHTTPResponse) -> None:
    """Give a streamed response's connection back: to the pool if the body was read to its end,
    else closed, so that unread bytes can never be taken for the next response on it."""
    if not response.closed:  # http.client closes the body once it has been read to its end
        response.close()
    response.release_conn()
