"""Turning HTTP answers and failures into promoter's errors, and the URL facts they need.

Every message built here names the request without its query string (upload URLs carry session state,
presigned storage URLs carry signatures) and never a header.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import HTTPError, MaxRetryError, ProtocolError, SSLError

from promoter.errors import ERROR_BODY_LIMIT, RegistryError, RegistryErrorDetail
from promoter.transport.retry import RETRYABLE_STATUSES, parse_retry_after
from promoter.transport.watch import exchange_of


def redact(url: str) -> str:
    """The URL without its query string and fragment (upload URLs carry session state, presigned
    URLs signatures) and without a ``user:password@`` (a redirect may name one): ``***@host``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return f"{parts.scheme}://{netloc}{parts.path}"


def origin(url: str) -> tuple[str, str, int]:
    """Scheme, host and effective port: what must match before credentials are sent."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80)


def reason(exc: BaseException) -> str:
    """A short reason from a urllib3 exception, without its URL (which may carry a signed query)."""
    inner: BaseException = exc
    while True:
        if isinstance(inner, MaxRetryError) and inner.reason is not None:
            inner = inner.reason
        elif (
            isinstance(inner, ProtocolError)
            and len(inner.args) == 2
            and isinstance(inner.args[1], BaseException)
        ):
            inner = inner.args[1]  # ("Connection aborted.", RemoteDisconnected("...")): the cause
        else:
            break
    text = str(inner)
    for marker in ("Failed to establish a new connection: ", "Connection aborted.", "): "):
        if marker in text:
            text = text.split(marker, 1)[1]
            break
    text = text.strip(" '\"").removeprefix("(")
    if text.count("(") > text.count(")"):
        text += ")"  # urllib3's "Read timed out. (read timeout=10.0)" lost its end to the split
    return text.strip() or type(inner).__name__


def is_certificate_failure(exc: SSLError) -> bool:
    """Whether a TLS error is a failed certificate check (a TLS server we do not trust)."""
    seen: set[int] = set()
    inner: BaseException | None = exc
    while inner is not None and id(inner) not in seen:
        seen.add(id(inner))
        if isinstance(inner, ssl.SSLCertVerificationError):
            return True
        inner = inner.__cause__ or inner.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


#: The most bytes of an unwanted body (a redirect's, a 401's) read so its connection can be reused; a
#: longer or endless one closes the connection instead.
DRAIN_LIMIT = 64 * 1024


def discard(response: urllib3.BaseHTTPResponse) -> None:
    """Give an unwanted response's connection back: drained to the pool when what is left of its body
    is known and small, else closed (a body without end is never read).

    Draining reads the answer to its end, which also closes it (a HEAD's too) before urllib3 gives
    its connection back: http.client keeps a connection's last answer until it is closed, and the
    next request on that connection would fail on it. A drain that did not get to the end (a lost
    connection, a socket file closed under it: Python's ValueError) leaves the connection to
    ``close()``.
    """
    left = response.length_remaining
    if left is not None and left <= DRAIN_LIMIT:
        with contextlib.suppress(HTTPError, OSError, ValueError):
            _read_closing(response, DRAIN_LIMIT + 1)
    exchange = exchange_of(response)
    if exchange is not None:
        exchange.finish()
    response.close()  # drained: its connection is back in the pool already, and this touches nothing
    response.release_conn()


def error_from(
    response: urllib3.BaseHTTPResponse,
    method: str,
    url: str,
    what: str,
    error_class: type[RegistryError],
    *,
    preloaded: bool,
    retryable: bool | None = None,
) -> RegistryError:
    """A RegistryError from an error response, with the registry's own codes from its body.

    The body is read up to :data:`~promoter.errors.ERROR_BODY_LIMIT` bytes and the response released.
    Error codes come from the distribution spec's ``{"errors": [{"code", "message"}]}`` shape
    (distribution spec, "Error Codes"). A body that cannot be read (the connection lost, its socket
    file closed under the read: Python's ValueError) gives an error without codes.
    """
    try:
        raw = response.data if preloaded else _read_closing(response, ERROR_BODY_LIMIT)
    except (HTTPError, OSError, ValueError):
        raw = b""
    raw = (raw or b"")[:ERROR_BODY_LIMIT]
    discard(response)
    details: list[RegistryErrorDetail] = []
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: absurd nesting
        doc = None
    errors = doc.get("errors") if isinstance(doc, dict) else None
    for item in errors if isinstance(errors, list) else []:
        if isinstance(item, dict):
            # Kept whole (the body is capped above): RegistryError cuts it when formatting, after
            # the scrubber has seen all of it, so a cut cannot hide half a secret from it.
            details.append(
                RegistryErrorDetail(str(item.get("code", "")), str(item.get("message", "")))
            )
    return error_class(
        method=method,
        url=redact(url),
        status=response.status,
        details=tuple(details),
        retryable=response.status in RETRYABLE_STATUSES if retryable is None else retryable,
        what=what,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


def _read_closing(response: urllib3.BaseHTTPResponse, limit: int) -> bytes:
    """Up to ``limit`` bytes of a body, read with ``read1``: as the end of the body arrives, urllib3
    then closes the answer before it gives the connection back to the pool. (``read(n)`` and
    ``drain_conn()`` give it back first and close the answer on their next read, so for a moment the
    pool holds a connection whose last answer another thread may be closing.)

    Raises:
        urllib3 HTTPError, OSError, ValueError: the body could not be read.
    """
    parts: list[bytes] = []
    size = 0
    while size < limit:
        piece = response.read1(limit - size, decode_content=False)
        if not piece:
            break
        parts.append(piece)
        size += len(piece)
    return b"".join(parts)
