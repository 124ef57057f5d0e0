"""The HTTPS server: an ASGI application run by uvicorn (httptools), chosen by measurement (bench/README.md,
"Webhook HTTP server choice").

Paths on the HTTPS port: ``POST /validate`` (AdmissionReview ``admission.k8s.io/v1``), ``GET /healthz``
(the process serves) and ``GET /readyz`` (promoter.yaml is loaded and the environment's registry
answered a ping once). Metrics are on their own plain-HTTP port (:mod:`promoter.webhook.metrics`).

Reviews that the positive cache can answer are decided on the event loop (no thread hand-off: a
cached review costs its JSON parse and discovery); the others run in a bounded thread pool, because
registry lookups and copies use the blocking transport. Each review is bounded by the environment's
``admission.deadlineSeconds`` and by the ``timeout`` the API server puts in the URL
(``?timeout=10s``), whichever ends first, less a margin for the answer to travel back.

SIGTERM (and Ctrl-C) stops accepting connections, answers the reviews in flight, waits a bounded time
for on-demand copies and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import re
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from pythonjsonlogger.json import JsonFormatter

from promoter.app.admission import (
    MESSAGE_LIMIT,
    SHOWN,
    WARNING_LIMIT,
    AdmissionController,
    AdmissionRequest,
    Decision,
    parse_review,
)
from promoter.app.runtime import Runtime
from promoter.app.sync import SyncReport
from promoter.config.values import PromoterConfig
from promoter.deadline import Deadline
from promoter.errors import AdmissionReviewError, InputError, PromoterError, one_line
from promoter.oci.referrers import ALL_ATTACHMENTS, AttachmentFilter
from promoter.outcome import Outcome
from promoter.process import signals_to_main_thread, stop_children
from promoter.transport.watch import interrupt
from promoter.webhook.connections import guarded_protocol
from promoter.webhook.metrics import WebhookMetrics
from promoter.webhook.tls import CertificateReloader

_log = logging.getLogger("promoter.webhook")

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]

#: The largest request body read: an UPDATE carries the object twice, and etcd stores objects of up
#: to 1.5 MiB; a larger body is answered 400 without being read whole.
BODY_LIMIT = 4 * 1024 * 1024
#: Bodies larger than this are parsed in a thread, not on the event loop.
LOOP_PARSE_LIMIT = 64 * 1024
#: Seconds kept between a review's deadline and the API server's timeout, for the answer to travel.
ANSWER_MARGIN = 0.5
#: Seconds a request's body may take to arrive once its head has (the API server sends it at once;
#: its own timeout is at most 30 s).
BODY_TIMEOUT = 10.0
#: Seconds a new connection may take to complete its TLS handshake.
HANDSHAKE_TIMEOUT = 10.0
#: Seconds between two log lines about bad requests.
BAD_REQUEST_LOG_INTERVAL = 1.0
#: Seconds between two log lines about the same kind of refusal (a flood is counted, not logged).
REFUSAL_LOG_INTERVAL = 10.0
#: Seconds a stop waits for interrupted copies to end.
STOP_WAIT = 5.0
#: Large bodies read, parsed and decided at once: one costs tens of MB while its objects live.
LARGE_BODIES = 1


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """How to serve.

    Attributes:
        listen: ``(host, port)``; host ``""`` listens on every address (IPv6 and IPv4 where the
            system allows both), port 0 on a free port (logged).
        metrics_listen: ``(host, port)`` of the metrics port, or None for none.
        tls_cert, tls_key: PEM files, re-read when they change.
        review_threads: reviews that need the registry, handled at once.
        shutdown_grace: seconds a stop waits for reviews in flight; a quarter of it more for
            on-demand copies (abandoning one is safe: its tag is written last).
        tls_check_seconds: how often the certificate files are checked for a change.
        keep_alive_seconds: how long an idle connection is kept (the API server reuses them).
        attachments: which signatures, attestations and SBOMs an on-demand copy carries.
        max_connections: open connections beyond which new ones are closed at once
            (:mod:`promoter.webhook.connections`).
    """

    listen: tuple[str, int]
    tls_cert: Path
    tls_key: Path
    metrics_listen: tuple[str, int] | None = None
    review_threads: int = 64
    shutdown_grace: float = 20.0
    tls_check_seconds: float = 10.0
    keep_alive_seconds: float = 75.0
    max_connections: int = 1000
    attachments: AttachmentFilter = ALL_ATTACHMENTS


def parse_listen(text: str, *, what: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT``, ``[IPV6]:PORT`` or ``:PORT`` as ``(host, port)``.

    Raises:
        InputError: not an address with a port from 0 to 65535.
    """
    match = re.fullmatch(
        r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d{1,5})", text
    )
    port = int(match["port"]) if match else -1
    if match is None or port > 65535:
        raise InputError(
            f"{what}: {one_line(text, 100)!r} is not HOST:PORT (e.g. 0.0.0.0:8443, [::]:8443, :8443)"
        )
    return (match["v6"] or match["host"] or ""), port


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (every address for ``""``: IPv6 and IPv4 where the
    system has both).

    Made with protocol ``IPPROTO_TCP`` spelled out: asyncio turns Nagle's algorithm off
    (``TCP_NODELAY``) only on connections whose socket says so, and a socket made with protocol
    0 would leave it on, holding each small answer back for the client's delayed ACK (40 ms on
    Linux) under load.

    Raises:
        InputError: the address cannot be listened on (in use, not this machine's).
    """
    dual = host == "" and socket.has_dualstack_ipv6()
    family = socket.AF_INET6 if dual or ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if dual:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise InputError(
            f"cannot listen on {host or '*'}:{port}: {exc.strerror or exc}",
            hint="choose a free port and an address of this machine",
        ) from None
    return sock


class _ScrubbedJsonFormatter(JsonFormatter):
    """JSON lines with the process's secrets removed from the whole line (message, extra fields and
    tracebacks alike)."""

    def __init__(self, scrub: Callable[[str], str]) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",  # RFC 3339 in UTC, with microseconds
        )
        self._scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        return self._scrub(super().format(record))


def configure_logging(scrub: Callable[[str], str], *, debug: bool = False) -> None:
    """One JSON object per line on standard error, for the webhook, the engine and uvicorn alike,
    through ``scrub`` (the runtime's :class:`~promoter.app.runtime.SecretScrubber`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(_ScrubbedJsonFormatter(scrub))
    handler.addFilter(_without_colour)
    level = logging.DEBUG if debug else logging.INFO
    for name in ("", "promoter", "urllib3"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(level if name != "urllib3" else logging.WARNING)
    logging.getLogger("uvicorn.access").disabled = True


def _without_colour(record: logging.LogRecord) -> bool:
    """uvicorn's terminal-coloured copy of a message is no field for a log pipeline."""
    record.__dict__.pop("color_message", None)
    return True


def review_deadline(seconds: float, query: bytes) -> Deadline:
    """The deadline of one review: ``seconds``, or less when the API server's ``timeout`` query
    parameter (``10s``, set on every webhook call) leaves less, minus :data:`ANSWER_MARGIN`."""
    budget = seconds
    values = parse_qs(query.decode("latin-1")).get("timeout")
    given = _duration(values[0]) if values else None
    if given is not None:
        budget = min(budget, given - ANSWER_MARGIN if given > 2 * ANSWER_MARGIN else given / 2)
    return Deadline.after(max(0.05, budget))


def _duration(text: str) -> float | None:
    """A Go duration of one unit (``10s``, ``500ms``, ``1m``) in seconds, or None."""
    match = re.fullmatch(r"(\d{1,6}(?:\.\d{1,6})?)(ms|s|m)", text.strip())
    if match is None:
        return None
    return float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match[2]]


class Throttle:
    """When a repeated event is due a log line: at most once per ``interval`` seconds; the others
    are counted and the next line says how many. Thread-safe."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = -math.inf
        self._count = 0
        self._lock = threading.Lock()

    def due(self) -> bool:
        """Count one event; whether it is due a line now."""
        now = time.monotonic()
        with self._lock:
            self._count += 1
            if now - self._last < self.interval:
                return False
            self._last = now
            return True

    def take(self) -> int:
        """The events counted since the last :meth:`take`."""
        with self._lock:
            count, self._count = self._count, 0
            return count


class WebhookApp:
    """The ASGI application.

    Args:
        controller: decides reviews.
        metrics: counts them.
        pool: runs the reviews that need the registry.
        body_timeout: seconds a request's body may take once its head arrived.
    """

    def __init__(
        self,
        controller: AdmissionController,
        metrics: WebhookMetrics,
        pool: ThreadPoolExecutor,
        *,
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        self.controller = controller
        self.body_timeout = body_timeout
        self.metrics = metrics
        self.pool = pool
        self.ready = False
        self._large_bodies = asyncio.Semaphore(LARGE_BODIES)
        self._bad_requests = Throttle(BAD_REQUEST_LOG_INTERVAL)

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/validate":
            if method != "POST":
                await _respond(send, 405, b"use POST with an AdmissionReview\n", "text/plain")
            else:
                await self._validate(scope, receive, send)
        elif path == "/healthz":
            await _respond(send, 200, b"ok\n", "text/plain")
        elif path == "/readyz":
            if self.ready:
                await _respond(send, 200, b"ready\n", "text/plain")
            else:
                await _respond(
                    send, 503, b"not ready: the registry has not answered yet\n", "text/plain"
                )
        else:
            await _respond(
                send, 404, b"not found: POST /validate, GET /healthz, GET /readyz\n", "text/plain"
            )

    async def _validate(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        large = _LargeBody(self._large_bodies)
        try:
            try:
                body = await asyncio.wait_for(_read_body(scope, receive, large), self.body_timeout)
            except TimeoutError:
                body = f"the body did not arrive within {self.body_timeout:g} s"
            if isinstance(body, str):
                await self._bad(send, body)
                return
            started = time.monotonic()
            seconds = self.controller.settings.deadline_seconds
            deadline = review_deadline(seconds, scope.get("query_string", b""))
            try:
                if large.held:
                    # Parsed and decided in a thread, one large body at a time: its objects cost
                    # tens of MB while they live, and must not block the event loop.
                    loop = asyncio.get_running_loop()
                    request, decision = await loop.run_in_executor(
                        self.pool, self._decide_large, body, deadline
                    )
                else:
                    request = parse_review(body)
                    decision = await self._decide(request, deadline)
            except AdmissionReviewError as exc:
                await self._bad(send, str(exc))
                return
            except Exception:  # noqa: BLE001 - a bug must cost one request, never the server
                _log.exception("review failed", extra={"event": "review"})
                await _respond(send, 500, b"internal error: see the webhook's log\n", "text/plain")
                return
        finally:
            large.release()
        answer = json.dumps(decision.verdict.answer(request.uid)).encode()
        elapsed = time.monotonic() - started
        self.metrics.record(decision, elapsed)
        _log_review(request, decision, elapsed)
        await _respond(send, 200, answer, "application/json")

    async def _decide(self, request: AdmissionRequest, deadline: Deadline) -> Decision:
        """The decision: on the event loop when the cache answers, else in a thread."""
        decision = self.controller.review(request, deadline, cached_only=True)
        if decision is not None:
            return decision
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self._decide_now, request, deadline)

    def _decide_now(self, request: AdmissionRequest, deadline: Deadline) -> Decision:
        decision = self.controller.review(request, deadline)
        assert decision is not None  # noqa: S101 - without cached_only, review always decides
        return decision

    def _decide_large(self, body: bytes, deadline: Deadline) -> tuple[AdmissionRequest, Decision]:
        """Parse and decide a large body in a thread.

        Raises:
            AdmissionReviewError: the body is not an AdmissionReview it can read.
        """
        request = parse_review(body)
        return request, self._decide_now(request, deadline)

    async def _bad(self, send: _Send, reason: str) -> None:
        self.metrics.invalid()
        line = one_line(reason, 500)
        if self._bad_requests.due():  # one client can send thousands a second: count, not log
            _log.warning(
                "bad request: %s (%d bad requests since the last line)",
                line,
                self._bad_requests.take(),
                extra={"event": "bad-request"},
            )
        await _respond(send, 400, f"bad request: {line}\n".encode(), "text/plain")


def _log_review(request: AdmissionRequest, decision: Decision, seconds: float) -> None:
    if (
        decision.verdict.allowed
        and not decision.verdict.warnings
        and not _log.isEnabledFor(logging.DEBUG)
    ):
        return
    extra: dict[str, object] = {
        "event": "review",
        "uid": request.uid,
        "kind": request.kind,
        "namespace": request.namespace,
        "object": request.name,
        "operation": request.operation,
        "dryRun": request.dry_run,
        "allowed": decision.verdict.allowed,
        "images": [
            {"image": one_line(c.image, SHOWN), "state": c.state.value, "cached": c.cached}
            for c in decision.checks
        ],
        "durationMs": round(seconds * 1000, 1),
    }
    if decision.skipped:
        extra["skipped"] = decision.skipped
    if not decision.verdict.allowed:
        extra["reason"] = one_line(decision.verdict.message, MESSAGE_LIMIT)
    if decision.verdict.warnings:
        extra["warnings"] = [one_line(w, WARNING_LIMIT) for w in decision.verdict.warnings]
    verdict = "allowed" if decision.verdict.allowed else "denied"
    # Denials and answers with warnings are what an operator looks for, one line each; a plain
    # allow is the bulk of the traffic (every Pod of every ReplicaSet), logged with --debug.
    quiet = decision.verdict.allowed and not decision.verdict.warnings
    level = logging.DEBUG if quiet else logging.INFO
    if _log.isEnabledFor(level):
        _log.log(level, "%s %s %s", verdict, request.operation, request.subject, extra=extra)


class _LargeBody:
    """The slot a request holds while its body is larger than :data:`LOOP_PARSE_LIMIT`: taken
    while reading (so that at most :data:`LARGE_BODIES` large bodies are in memory at once; the
    others wait unread, held back by uvicorn's flow control), released when the answer is made."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self.held = False

    async def take(self) -> None:
        await self._slots.acquire()
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self._slots.release()


async def _read_body(scope: _Scope, receive: _Receive, large: _LargeBody) -> bytes | str:
    """The request body, or why it is refused (too large)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit() and int(value) > BODY_LIMIT:
            return f"the body is {int(value)} bytes, more than the {BODY_LIMIT} bytes an AdmissionReview may have"
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return "the client went away"
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > BODY_LIMIT:
            return f"the body is more than the {BODY_LIMIT} bytes an AdmissionReview may have"
        if size > LOOP_PARSE_LIMIT and not large.held:
            await large.take()
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: _Send, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Webhook:
    """The webhook process: the HTTPS server, its background tasks (readiness, certificate
    reloads), the metrics port and the controller.

    Args:
        runtime: transport and credentials for the life of the process.
        config: promoter.yaml.
        environment: the environment reviewed.
        options: how to serve.

    Raises:
        ConfigError: unknown environment, or the certificate does not load.
        InputError: an address cannot be listened on.
    """

    def __init__(
        self, runtime: Runtime, config: PromoterConfig, environment: str, options: ServeOptions
    ) -> None:
        self.options = options
        self.metrics = WebhookMetrics()
        self.controller = AdmissionController(
            runtime,
            config,
            environment,
            on_copied=self._copied,
            attachments=options.attachments,
        )
        self.tls = CertificateReloader(options.tls_cert, options.tls_key)
        self.pool = ThreadPoolExecutor(
            max_workers=options.review_threads,
            thread_name_prefix="review",
            initializer=signals_to_main_thread,
        )
        self.metrics.promotions_running.set_function(lambda: self.controller.promotions_running)
        self.metrics.connections.set_function(lambda: len(self.server.server_state.connections))
        self._refusals = Throttle(REFUSAL_LOG_INTERVAL)
        self.app = WebhookApp(
            self.controller,
            self.metrics,
            self.pool,
            body_timeout=min(BODY_TIMEOUT, options.keep_alive_seconds),
        )
        self.socket = listening_socket(*options.listen)
        self.address = _address(self.socket)
        self.metrics_address: str | None = None
        self._metrics_server: Any = None
        if options.metrics_listen is not None:
            host, port = options.metrics_listen
            try:
                server, _ = self.metrics.serve(host, port)
            except OSError as exc:
                self.socket.close()
                raise InputError(
                    f"--metrics-listen: cannot listen on {host or '*'}:{port}: {exc.strerror or exc}",
                    hint="choose a free port and an address of this machine, or 'off'",
                ) from None
            self._metrics_server = server
            self.metrics_address = f"{options.metrics_listen[0] or '*'}:{server.server_port}"
        self.server: uvicorn.Server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                http=guarded_protocol(
                    max_connections=options.max_connections,
                    idle_timeout=options.keep_alive_seconds,
                    on_refused=self._refused,
                ),
                lifespan="off",
                proxy_headers=False,  # the API server connects directly; no X-Forwarded-* to trust
                log_config=None,
                access_log=False,
                ssl_certfile=str(options.tls_cert),
                ssl_keyfile=str(options.tls_key),
                ssl_context_factory=lambda _config, _default: self.tls.context,
                timeout_keep_alive=max(1, math.ceil(options.keep_alive_seconds)),
                # A review in flight ends by its own deadline: wait for that even when the grace is
                # shorter, so that every review gets its answer, never a cancelled request's 500.
                timeout_graceful_shutdown=math.ceil(
                    max(
                        options.shutdown_grace,
                        config.environment(environment).admission.deadline_seconds + 1,
                    )
                ),
                server_header=False,
                date_header=False,
            )
        )

    def _copied(self, image: str, result: SyncReport | BaseException) -> None:
        """Log and count an on-demand copy's end (it may outlive the review that started it)."""
        if isinstance(result, BaseException):
            outcome, error = "failed", one_line(str(result), 500)
        else:
            record = result.records[0] if result.records else None
            outcome = result.outcome.name.lower()
            error = (record.error or "") if record is not None else ""
            copied = record is not None and record.result is not None
            if copied and result.outcome is Outcome.DONE:
                self.metrics.promotions.inc()
        extra: dict[str, str] = {"event": "promoted", "image": image, "outcome": outcome}
        if error:
            extra["error"] = error
        _log.info("on-demand copy of %s: %s", image, outcome, extra=extra)

    def _refused(self) -> None:
        """Count a connection closed for --max-connections; log it at most every few seconds."""
        self.metrics.connections_refused.inc()
        if self._refusals.due():
            _log.warning(
                "open connections at --max-connections (%d): new ones are closed (%d since the "
                "last line)",
                self.options.max_connections,
                self._refusals.take(),
                extra={"event": "connections-refused"},
            )

    def stop(self) -> None:
        """Ask the server to stop (as SIGTERM does); returns at once."""
        self.server.should_exit = True

    def run(self) -> None:
        """Serve until stopped; then answer what is in flight, wait for copies, close."""
        in_main = threading.current_thread() is threading.main_thread()
        previous: dict[int, Any] = {}
        if in_main:
            # uvicorn captures SIGTERM/SIGINT while it serves and, once stopped, raises each again
            # with the handler that was there before: this one, so that the process goes on to
            # close cleanly and exit 0 instead of dying of the signal. A signal that arrives before
            # uvicorn's handler is installed stops the server too.
            def stop(_signum: int, _frame: object) -> None:
                self.stop()

            previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            asyncio.run(self._serve())
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            self.close()

    async def _serve(self) -> None:
        tasks = [
            asyncio.create_task(self._become_ready()),
            asyncio.create_task(self._watch_certificate()),
        ]
        _log.info(
            "listening on %s",
            self.address,
            extra={
                "event": "listening",
                "address": self.address,
                "metrics": self.metrics_address,
                "environment": self.controller.environment.name,
                "mode": self.controller.settings.mode.value,
            },
        )
        # A client that connects and never completes the TLS handshake is closed after this, not
        # asyncio's 60 s: uvicorn does not pass the setting, so the loop's create_server gets it.
        loop = asyncio.get_running_loop()
        loop.create_server = functools.partial(  # type: ignore[method-assign]
            loop.create_server,
            ssl_handshake_timeout=min(HANDSHAKE_TIMEOUT, self.options.keep_alive_seconds),
        )
        try:
            await self.server.serve(sockets=[self.socket])
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _become_ready(self) -> None:
        """Ping the environment's registry until it answers once; then /readyz says ready."""
        loop = asyncio.get_running_loop()
        wait = 0.5
        while True:
            try:
                await loop.run_in_executor(
                    self.pool, self.controller.check_registry, Deadline.after(5)
                )
            except PromoterError as exc:
                _log.warning(
                    "not ready: %s",
                    one_line(str(exc), 500),
                    extra={"event": "not-ready", "registry": self.controller.environment.registry},
                )
                await asyncio.sleep(wait)
                wait = min(wait * 2, 30.0)
                continue
            self.app.ready = True
            self.metrics.ready.set(1)
            _log.info("ready", extra={"event": "ready"})
            return

    async def _watch_certificate(self) -> None:
        while True:
            await asyncio.sleep(self.options.tls_check_seconds)
            if self.tls.check():
                self.metrics.tls_reloads.inc()

    def close(self) -> None:
        """Wait up to the grace for on-demand copies, then release threads, sockets and ports."""
        left = self.controller.close(self.options.shutdown_grace / 4)
        if left:
            # Cut their registry exchanges so that they end now (their tags are written last:
            # nothing half-promoted stays), instead of holding the process up to their deadline.
            interrupt()
            stop_children()
            left = self.controller.close(STOP_WAIT)
            _log.warning(
                "stopped on-demand copies unfinished (%d still ending); the next request starts "
                "them again",
                left,
                extra={"event": "stopped"},
            )
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        with contextlib.suppress(OSError):
            self.socket.close()
        _log.info("stopped", extra={"event": "stopped"})


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
