"""A reverse proxy in front of a registry that injects failures on request.

Retry, resume and error-reporting code is only trustworthy if it has met the failures it claims
to handle. The proxy forwards everything to the real registry unless a rule says otherwise, and
a rule fires a bounded number of times, so a test can script "the first blob PUT gets a 503,
the retry goes through" and then assert on exactly what was sent via ``hits``.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from devtools.loopback_http import HOP_BY_HOP, IDLE_TIMEOUT_S, LoopbackServer, LoopbackService

_CHUNK = 1024 * 1024
_UPSTREAM_TIMEOUT_S = 120.0
# ... and Host, which names the proxy.
_HOP_BY_HOP = HOP_BY_HOP | {"host"}
_ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "DENIED",
    404: "NOT_FOUND",
    429: "TOOMANYREQUESTS",
}
#: How an echoing rule (``add_rule(echo=...)``) words the Authorization header it echoes.
ECHO_STYLES = ("plain", "ansi", "long", "split")
#: The length of an echo of style "long": more than a client should keep of an error body.
LONG_ECHO_CHARS = 10_000
#: Where an echo of style "split" starts the header's credentials: so that a client cutting the
#: message at 200 characters cuts the credentials in two.
SPLIT_ECHO_AT = 190
DROPPED = 0
"""Status recorded in ``hits`` when a rule dropped the connection without an answer."""


class Hit(NamedTuple):
    """One request the proxy handled: method, request target (path and query) and status sent.

    ``status`` is the injected status, the upstream's status, 502 when the upstream could not be
    reached, or ``DROPPED`` (0) when a rule closed the connection.
    """

    method: str
    path: str
    status: int


@dataclass
class Rule:
    """A fault to apply to matching requests; see ``FaultProxy.add_rule``."""

    method: str | None
    pattern: re.Pattern[str]
    status: int | None
    headers: dict[str, str]
    remaining: int
    before: Callable[[], None] | None
    body: bytes | None
    drop: bool
    lose_answer: bool = False
    drip: tuple[int, float] | None = None
    after: Callable[[], None] | None = None
    echo: str | None = None
    fired: int = 0

    def matches(self, method: str, target: str, *, authorized: bool = True) -> bool:
        """Whether this rule still has firings left and applies to the request (an echoing rule
        only to requests that carry an Authorization header)."""
        if self.remaining <= 0:
            return False
        if self.echo is not None and not authorized:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        return self.pattern.search(target) is not None


class FaultProxy(LoopbackService):
    """HTTP/1.1 reverse proxy on 127.0.0.1 with scripted faults.

    Args:
        upstream: ``http://127.0.0.1:PORT`` (or just ``127.0.0.1:PORT``) of a plain-HTTP
            upstream. Absolute ``Location`` headers pointing at it are rewritten to point at the
            proxy, so clients keep sending follow-up requests (upload PATCH/PUT) through it.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream if "://" in upstream else f"http://{upstream}")
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream must be http://HOST:PORT, got {upstream!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port
        self.hits: list[Hit] = []
        self.errors: list[BaseException] = []
        self.rules: list[Rule] = []
        #: With a number: more requests than that in flight at once are answered 429 (see
        #: :meth:`throttle`).
        self.max_in_flight: int | None = None
        self.retry_after = 1
        self.in_flight = 0
        self._lock = threading.Lock()
        self._server = LoopbackServer(_ProxyHandler, self)

    def throttle(self, max_in_flight: int, retry_after: int = 1) -> None:
        """Answer ``429 TOOMANYREQUESTS`` with ``Retry-After: retry_after`` to every request that
        arrives while ``max_in_flight`` are being handled: a registry's rate limiter."""
        self.max_in_flight = max_in_flight
        self.retry_after = retry_after

    def enter(self) -> bool:
        """Count a request in; whether it is one too many (see :meth:`throttle`)."""
        with self._lock:
            self.in_flight += 1
            return self.max_in_flight is not None and self.in_flight > self.max_in_flight

    def leave(self) -> None:
        """Count a request out."""
        with self._lock:
            self.in_flight -= 1

    @property
    def upstream_url(self) -> str:
        """Base URL of the upstream."""
        return f"http://{self.upstream_host}:{self.upstream_port}"

    def add_rule(
        self,
        method: str | None,
        path_regex: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        before: Callable[[], None] | None = None,
        body: bytes | None = None,
        drop: bool = False,
        lose_answer: bool = False,
        drip: tuple[int, float] | None = None,
        after: Callable[[], None] | None = None,
        echo: str | None = None,
    ) -> Rule:
        """Script a fault for the next ``times`` requests that match.

        Rules are tried in the order added; the first one with firings left wins. When it fires,
        ``before()`` runs first (on the proxy's handler thread, e.g. to stop the upstream), then:
        with ``drop`` the connection is closed without an answer; with ``status`` that status is
        answered without forwarding (the request body is read and discarded first, so the
        client sees a clean response rather than a reset); otherwise the request is forwarded.

        Args:
            method: HTTP method to match, or None for any.
            path_regex: ``re.search``-ed against the request target, path plus query string.
            status: Status to answer instead of forwarding.
            headers: Extra response headers for the injected answer (e.g. ``Retry-After``).
            times: How many matching requests the rule applies to.
            before: Callback run when the rule fires, before answering or forwarding.
            body: Body of the injected answer; a distribution-style JSON error by default.
            drop: Close the connection instead of answering.
            lose_answer: Forward the request, let the upstream act on it, then close the
                connection without relaying the answer: a commit whose reply was lost.
            drip: ``(size, seconds)``: forward, then relay the answer's body in pieces of ``size``
                bytes, each after ``seconds``: a source that keeps a connection alive without
                making progress. The relay stops when the client goes away.
            after: Callback run once the upstream has answered, before the answer is relayed (or
                lost): with ``lose_answer``, a commit whose reply is late and then never comes.
            echo: answer ``status`` with a distribution-style error whose message echoes the
                request's Authorization header, as a registry or a WAF in front of one may; the
                rule then only matches requests that carry one. Styles (:data:`ECHO_STYLES`):
                ``plain``; ``ansi``, wrapped in ANSI escapes, CR/LF, a bell and a bidi override;
                ``long``, inside a message of :data:`LONG_ECHO_CHARS` characters; ``split``, its
                credentials starting at character :data:`SPLIT_ECHO_AT` of the message.

        Returns:
            The rule, whose ``fired`` count tests can check.
        """
        rule = Rule(
            method=method,
            pattern=re.compile(path_regex),
            status=status,
            headers=dict(headers or {}),
            remaining=times,
            before=before,
            body=body,
            drop=drop,
            lose_answer=lose_answer,
            drip=drip,
            after=after,
            echo=echo,
        )
        if echo is not None and (echo not in ECHO_STYLES or status is None):
            raise ValueError(f"echo needs a status and one of {ECHO_STYLES}, got {echo!r}")
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear_rules(self) -> None:
        """Forget all rules, fired or not."""
        with self._lock:
            self.rules.clear()

    def take_rule(self, method: str, target: str, *, authorized: bool = True) -> Rule | None:
        """Claim one firing of the first matching rule (atomically across handler threads)."""
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, target, authorized=authorized):
                    rule.remaining -= 1
                    rule.fired += 1
                    return rule
        return None

    def record(self, method: str, target: str, status: int) -> None:
        """Append to ``hits``."""
        with self._lock:
            self.hits.append(Hit(method, target, status))

    def record_error(self, error: BaseException) -> None:
        """Keep an exception raised by a ``before`` callback for the test to re-raise."""
        with self._lock:
            self.errors.append(error)

    def rewrite_location(self, location: str) -> str:
        """Point an absolute URL at the upstream to the proxy instead."""
        for prefix in (
            self.upstream_url,
            f"http://localhost:{self.upstream_port}",
        ):
            if location.startswith(prefix):
                return self.url + location[len(prefix) :]
        return location


class _ProxyHandler(BaseHTTPRequestHandler):
    """Applies rules, then forwards to the upstream of ``server.owner`` (a FaultProxy)."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    server_version = "devtools-fault-proxy"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: ``hits`` is the log."""

    @property
    def _owner(self) -> FaultProxy:
        owner: FaultProxy = self.server.owner  # type: ignore[attr-defined]
        return owner

    def do_GET(self) -> None:
        """Every method goes through the same path."""
        self._handle()

    do_HEAD = do_GET  # noqa: N815
    do_POST = do_GET  # noqa: N815
    do_PUT = do_GET  # noqa: N815
    do_PATCH = do_GET  # noqa: N815
    do_DELETE = do_GET  # noqa: N815
    do_OPTIONS = do_GET  # noqa: N815

    def _handle(self) -> None:
        owner = self._owner
        try:
            if owner.enter():
                self._discard_body()
                self._answer(429, {"Retry-After": str(owner.retry_after)}, _error_body(429))
                return
            self._handle_counted()
        finally:
            owner.leave()

    def _handle_counted(self) -> None:
        owner = self._owner
        authorization = self.headers.get("Authorization")
        rule = owner.take_rule(self.command, self.path, authorized=authorization is not None)
        if rule is not None and rule.before is not None:
            try:
                rule.before()
            except Exception as exc:  # noqa: BLE001 - surfaced to the test via owner.errors
                owner.record_error(exc)
                self._discard_body()
                self._answer(
                    500, {}, b'{"errors":[{"code":"UNKNOWN","message":"before() failed"}]}'
                )
                return
        if rule is not None and rule.drop:
            owner.record(self.command, self.path, DROPPED)
            self.close_connection = True
            return
        if rule is not None and rule.status is not None:
            self._discard_body()
            body = rule.body if rule.body is not None else _error_body(rule.status)
            if rule.echo is not None:
                body = _error_body(rule.status, _echo(rule.echo, authorization or ""))
            self._answer(rule.status, rule.headers, body)
            return
        self._forward(
            lose_answer=rule is not None and rule.lose_answer,
            drip=rule.drip if rule is not None else None,
            after=rule.after if rule is not None else None,
        )

    # request bodies ----------------------------------------------------------------------------

    def _body_chunks(self) -> Iterator[bytes]:
        """Yield the request body as it arrives, de-chunking if the client used chunking."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # Skip trailers up to the blank line that ends the message.
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                remaining = size
                while remaining:
                    data = self.rfile.read(min(_CHUNK, remaining))
                    if not data:
                        raise ConnectionError("client closed mid-chunk")
                    remaining -= len(data)
                    yield data
                self.rfile.readline(16)  # CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        while length:
            data = self.rfile.read(min(_CHUNK, length))
            if not data:
                raise ConnectionError("client closed mid-body")
            length -= len(data)
            yield data

    def _discard_body(self) -> None:
        for _ in self._body_chunks():
            pass

    # answering ---------------------------------------------------------------------------------

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self._owner.record(self.command, self.path, status)
        self.send_response(status)
        lowered = {k.lower() for k in headers}
        if "content-type" not in lowered:
            self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(
        self,
        *,
        lose_answer: bool = False,
        drip: tuple[int, float] | None = None,
        after: Callable[[], None] | None = None,
    ) -> None:
        owner = self._owner
        upstream = http.client.HTTPConnection(
            owner.upstream_host, owner.upstream_port, timeout=_UPSTREAM_TIMEOUT_S
        )
        try:
            try:
                response = self._send_upstream(upstream)
            except (OSError, http.client.HTTPException):
                self.close_connection = True
                self._answer(502, {}, _error_body(502, "upstream unreachable"))
                return
            if after is not None:
                after()
            if lose_answer:
                response.read()  # the upstream has done the work; the client never hears of it
                owner.record(self.command, self.path, DROPPED)
                self.close_connection = True
                return
            self._relay(response, drip=drip)
        finally:
            upstream.close()

    def _send_upstream(self, upstream: http.client.HTTPConnection) -> http.client.HTTPResponse:
        owner = self._owner
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        upstream.putheader("Host", f"{owner.upstream_host}:{owner.upstream_port}")
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        for name, value in self.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                upstream.putheader(name, value)
        if chunked:
            upstream.putheader("Transfer-Encoding", "chunked")
        upstream.endheaders()
        for data in self._body_chunks():
            upstream.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
        if chunked:
            upstream.send(b"0\r\n\r\n")
        return upstream.getresponse()

    def _relay(
        self, response: http.client.HTTPResponse, *, drip: tuple[int, float] | None = None
    ) -> None:
        owner = self._owner
        status = response.status
        owner.record(self.command, self.path, status)
        self.send_response(status, response.reason)
        length = response.getheader("Content-Length")
        for name, value in response.getheaders():
            lower = name.lower()
            if lower in _HOP_BY_HOP or lower == "content-length":
                continue
            if lower == "location":
                value = owner.rewrite_location(value)  # noqa: PLW2901
            self.send_header(name, value)
        bodiless = self.command == "HEAD" or status in (204, 304) or status < 200
        if length is not None:
            self.send_header("Content-Length", length)
        elif not bodiless:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if bodiless:
            return
        piece, pause = drip if drip is not None else (_CHUNK, 0.0)
        try:
            while True:
                if pause:
                    time.sleep(pause)  # the fault itself: a body that drips
                data = response.read(piece)
                if not data:
                    break
                if length is not None:
                    self.wfile.write(data)
                else:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                if pause:
                    self.wfile.flush()
            if length is None:
                self.wfile.write(b"0\r\n\r\n")
        except (OSError, http.client.HTTPException):
            # Upstream died mid-body: the status is already out, so all that is left is to make
            # the truncation visible to the client by closing the connection.
            self.close_connection = True


def _error_body(status: int, message: str = "injected by devtools fault proxy") -> bytes:
    """A distribution-style error document, so clients parse injected errors like real ones."""
    code = _ERROR_CODES.get(status, "UNAVAILABLE" if status >= 500 else "UNKNOWN")
    return json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()


def _echo(style: str, authorization: str) -> str:
    """An error message that echoes ``authorization`` in ``style`` (see ``add_rule``)."""
    if style == "ansi":
        return (
            f"\x1b[31mrequest blocked\x1b[0m\r\nAuthorization: {authorization}\x07\n"
            "\u202eesrever\x1b]0;title\x07\x1b[2J"
        )
    if style == "long":
        head = f"request blocked; Authorization: {authorization}; "
        return head + "x" * (LONG_ECHO_CHARS - len(head))
    if style == "split":
        scheme, _, credentials = authorization.partition(" ")
        lead = f"request blocked; Authorization: {scheme} "
        return lead.rjust(SPLIT_ECHO_AT, "-") + credentials
    return f"request blocked; received Authorization: {authorization}"
