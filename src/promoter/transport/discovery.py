"""Which scheme a registry speaks: HTTPS, or plain HTTP where that is allowed.

HTTPS with verified TLS everywhere, except: an ``endpoint`` URL is used as given; loopback registries are
asked over plain HTTP first (nearly always plain, and a ping carries no credentials); hosts named insecure
get docker's order, unverified HTTPS first and plain HTTP when the server does not speak TLS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import urllib3
from urllib3.exceptions import SSLError

from promoter.errors import RegistryUnreachableError
from promoter.reference import api_host, is_loopback_host
from promoter.transport.responses import is_certificate_failure

if TYPE_CHECKING:
    from promoter.deadline import Deadline
    from promoter.transport.session import RegistrySession

#: Seconds a probe for the scheme may wait for an answer.
_PROBE_READ_TIMEOUT = 10.0


def discover_base(
    session: RegistrySession, deadline: Deadline | None
) -> tuple[str, urllib3.BaseHTTPResponse | None]:
    """The base URL of ``session``'s registry, and the answer to ``GET /v2/`` if finding the scheme
    already asked it."""
    options = session.transport.options
    endpoint = options.endpoints.get(session.registry)
    if endpoint:
        return endpoint.rstrip("/"), None
    host = api_host(session.registry)
    if is_loopback_host(host):
        return _plain_first(session, host, deadline)
    if session.registry in options.insecure_registries:
        return _tls_first(session, host, deadline)
    return f"https://{host}", None


def _plain_first(
    session: RegistrySession, host: str, deadline: Deadline | None
) -> tuple[str, urllib3.BaseHTTPResponse | None]:
    """Loopback: plain HTTP unless the server turns out to speak TLS.

    A TLS server answers plain HTTP with 400 (Go's "Client sent an HTTP request to an HTTPS server")
    or drops the connection; after a drop, HTTPS is tried, and when that fails too the drop is what
    is reported (a server that does not answer is not a TLS failure). A refused connection is
    reported at once: nothing listens there.
    """
    try:
        response = _probe(session, f"http://{host}/v2/", deadline)
    except RegistryUnreachableError as plain_failure:
        if not plain_failure.retryable:
            raise
        try:
            return f"https://{host}", _probe(session, f"https://{host}/v2/", deadline)
        except RegistryUnreachableError as tls_failure:
            if _is_certificate_failure(tls_failure):
                raise
            raise plain_failure from None
    if response.status == 400 and b"HTTPS" in (response.data or b""):
        return f"https://{host}", None
    return f"http://{host}", response


def _tls_first(
    session: RegistrySession, host: str, deadline: Deadline | None
) -> tuple[str, urllib3.BaseHTTPResponse | None]:
    """Insecure hosts, as docker treats them: HTTPS (unverified) first, plain HTTP when the server
    does not speak TLS."""
    try:
        return f"https://{host}", _probe(session, f"https://{host}/v2/", deadline)
    except RegistryUnreachableError as exc:
        if _is_certificate_failure(exc):
            return f"https://{host}", None
        return f"http://{host}", None


def _probe(
    session: RegistrySession, url: str, deadline: Deadline | None
) -> urllib3.BaseHTTPResponse:
    """``GET /v2/`` to find the scheme, answered within the probe's shorter time."""
    return session.raw(
        "GET",
        url,
        headers={},
        body=None,
        what=f"ping {session.registry}",
        deadline=deadline,
        answer_seconds=_PROBE_READ_TIMEOUT,
    )


def _is_certificate_failure(error: RegistryUnreachableError) -> bool:
    cause = error.__cause__
    return isinstance(cause, SSLError) and is_certificate_failure(cause)
