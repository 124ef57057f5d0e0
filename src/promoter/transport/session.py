"""One authenticated HTTP session per registry host, and the transport that owns them.

:class:`Transport` owns the connection pools (:mod:`~promoter.transport.pools`), the credential provider and
one :class:`RegistrySession` per registry. A session picks the scheme (:mod:`~promoter.transport.discovery`),
runs the auth flow (:mod:`~promoter.transport.auth`), follows redirects (never sending the registry's
Authorization header to another host), bounds every request by a deadline when given one, and turns failures
into :class:`~promoter.errors.RegistryError` and friends (:mod:`~promoter.transport.responses`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.exceptions import (
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)

from promoter.authn.chain import CredentialChain
from promoter.authn.store import Credential
from promoter.deadline import Deadline, hold
from promoter.errors import (
    ERROR_BODY_LIMIT,
    AuthenticationError,
    DeadlineExceededError,
    PromoterError,
    RegistryError,
    RegistryUnreachableError,
    Remedy,
    RepositoryAccessError,
)
from promoter.process import signals_to_main_thread
from promoter.reference import api_host, is_loopback_host
from promoter.transport.auth import MAX_REPLACEMENTS, AuthFlow, CredentialProvider
from promoter.transport.body import broken_error, read_whole, release
from promoter.transport.challenge import parse_challenge
from promoter.transport.discovery import discover_base
from promoter.transport.pools import USER_AGENT, ConnectionPools, TransportOptions
from promoter.transport.responses import discard, error_from, origin, reason, redact
from promoter.transport.retry import TOO_MANY_REQUESTS
from promoter.transport.throttle import Throttle
from promoter.transport.watch import (
    Broken,
    Exchange,
    awaited_on_this_thread,
    hand_over,
    opens_on_this_thread,
    sending_on_this_thread,
    watch,
)

__all__ = ["Body", "RegistrySession", "Transport", "TransportOptions"]

log = logging.getLogger(__name__)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5

#: Seconds a warming ping may wait for its answer (:meth:`Transport.warm`): as the scheme probe.
WARM_ANSWER_SECONDS = 10.0
#: The shortest round trip for which :meth:`Transport.warm` opens connections ahead: below it (a
#: loopback or LAN registry) a new connection costs less than the pings would.
WARM_MIN_ROUND_TRIP = 0.005
#: The most connections :meth:`Transport.warm` opens ahead per registry: a small plan's lookups
#: all, a large one's first; more would cost a big TLS registry's handshakes for nothing on a
#: small plan.
WARM_CONNECTIONS = 16

Body = bytes | Iterable[bytes] | None


class Transport:
    """Connection pools, credentials and per-registry sessions; share one across a run (or a process).

    Args:
        options: pools, TLS, endpoints, retries, timeouts.
        credentials: where credentials come from; the docker config and auth.json files by default.
        remember: called with every secret the transport meets (tokens fetched), for scrubbing.
    """

    def __init__(
        self,
        options: TransportOptions | None = None,
        credentials: CredentialProvider | None = None,
        *,
        remember: Callable[..., None] | None = None,
    ) -> None:
        self.options = options or TransportOptions()
        self.credentials: CredentialProvider = (
            credentials if credentials is not None else CredentialChain(remember=remember)
        )
        self.remember = remember
        self._pools = ConnectionPools(self.options)
        #: The rules every exchange is held to (made once: raw() runs per request).
        self.pace = self.options.pace
        self._sessions: dict[str, RegistrySession] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def session(self, registry: str) -> RegistrySession:
        """The session for a registry host (one per host per transport)."""
        with self._lock:
            found = self._sessions.get(registry)
            if found is None:
                found = RegistrySession(self, registry)
                self._sessions[registry] = found
            return found

    def pool_for(self, url: str, registry: str) -> urllib3.PoolManager:
        """The pool for a URL (see :meth:`ConnectionPools.pool_for`)."""
        return self._pools.pool_for(url, registry)

    def close(self) -> None:
        """Close every pooled connection."""
        self._pools.close()

    def warm(
        self, registries: Iterable[str], connections: int, *, deadline: Deadline | None = None
    ) -> Warming:
        """Open up to ``connections`` connections to ``registries`` (shared among them, at most
        :data:`WARM_CONNECTIONS` each) in the background, while the run waits for something else
        (an overlay's render), where the link makes that worth it. For each registry its scheme
        and auth challenge are learned first (its first ping), then one more ping times a round
        trip; when that took at least :data:`WARM_MIN_ROUND_TRIP`, the connections open at once,
        one ping each, and stay in the pool for the run's first requests. Over a far
        link each new connection costs a round trip, and a TLS handshake one or two more, which
        the run's first lookups then do not pay, when the render outlasts the warming (a few
        round trips; issue 14); on loopback or a LAN a connection costs next to nothing, so none
        is opened ahead there. :meth:`Warming.stop` (the lookups begin) starts no further ping.

        Best effort: a failure is left for the run's own requests to meet and report. The threads
        are daemons, and each ping is bounded by ``deadline`` and :data:`WARM_ANSWER_SECONDS`, so
        nothing waits for them at exit.
        """
        hosts = list(dict.fromkeys(registries))
        each = min(WARM_CONNECTIONS, max(1, connections // max(1, len(hosts))))
        return Warming([self.session(host) for host in hosts], each, deadline).start()


class Warming:
    """One :meth:`Transport.warm`: a lead thread per registry, and the pings it starts.

    Attributes:
        done: set once every ping has ended.
    """

    def __init__(
        self, sessions: list[RegistrySession], each: int, deadline: Deadline | None
    ) -> None:
        self.sessions = sessions
        self.each = each
        self.deadline = deadline
        self.done = threading.Event()
        self._stopped = threading.Event()
        self._left = len(sessions)
        self._lock = threading.Lock()

    def start(self) -> Warming:
        """Start the lead threads."""
        if not self.sessions:
            self.done.set()
        for session in self.sessions:
            threading.Thread(target=self._lead, args=(session,), name="warm", daemon=True).start()
        return self

    def stop(self) -> None:
        """Start no further ping: the run's own requests begin (pings under way go on; their
        connections still serve the run)."""
        self._stopped.set()

    def _ping(self, session: RegistrySession) -> float:
        """One ``GET /v2/``; its round trip in seconds."""
        started = time.monotonic()
        answer = session.raw(
            "GET",
            session.base(self.deadline) + "/v2/",
            headers={},
            body=None,
            what=f"warm a connection to {session.registry}",
            deadline=self.deadline,
            answer_seconds=WARM_ANSWER_SECONDS,
        )
        discard(answer)
        return time.monotonic() - started

    def _lead(self, session: RegistrySession) -> None:
        signals_to_main_thread()
        try:
            session.base(self.deadline)
            # A round trip on the connection the scheme's probe opened (no set-up in it; the
            # probe's own time is a fresh registry's slow first answer as often as a far link).
            if self._ping(session) >= WARM_MIN_ROUND_TRIP and not self._stopped.is_set():
                together = threading.Barrier(self.each)
                more = [
                    threading.Thread(target=self._more, args=(session, together), daemon=True)
                    for _ in range(self.each)
                ]
                for thread in more:
                    thread.start()
                for thread in more:
                    thread.join()
        except PromoterError as exc:
            log.debug("warming %s: %s", session.registry, exc)
        finally:
            with self._lock:
                self._left -= 1
                if not self._left:
                    self.done.set()

    def _more(self, session: RegistrySession, together: threading.Barrier) -> None:
        signals_to_main_thread()
        try:
            # All at once, so that each takes a connection of its own from the pool.
            with contextlib.suppress(threading.BrokenBarrierError):
                together.wait(WARM_ANSWER_SECONDS)
            if not self._stopped.is_set():
                self._ping(session)
        except PromoterError as exc:
            log.debug("warming %s: %s", session.registry, exc)


class RegistrySession:
    """Authenticated requests to one registry host. Thread-safe."""

    def __init__(self, transport: Transport, registry: str) -> None:
        self.transport = transport
        self.registry = registry
        endpoint = transport.options.endpoints.get(registry)
        #: host[:port] requests go to, known before the scheme is (the pool choice needs it).
        self._netloc = urlsplit(endpoint).netloc if endpoint else api_host(registry)
        self._base: str | None = None
        self._origin: tuple[str, str, int] = ("", "", 0)  # of the base, set with it
        self.auth = AuthFlow(registry, transport.credentials, self.raw, transport.remember)
        #: Requests in flight to this registry, limited once it answers 429.
        self.throttle = Throttle(registry)
        self._lock = threading.RLock()

    # -- public API -------------------------------------------------------------------------------

    def base(self, deadline: Deadline | None = None) -> str:
        """``scheme://host[:port]`` that requests go to, decided on first use.

        The first use also pings ``/v2/`` to learn the registry's challenge before any real request,
        as docker and crane do: a registry that answers anonymous requests with 404 instead of 401
        would otherwise make a missing tag look free and a present image look missing.
        """
        if self._base is not None:
            return self._base
        with hold(self._lock, deadline, f"ping {self.registry}"):
            if self._base is None:
                base, probe = discover_base(self, deadline)
                if probe is None:
                    probe = self.raw(
                        "GET",
                        base + "/v2/",
                        headers={},
                        body=None,
                        what=f"ping {self.registry}",
                        deadline=deadline,
                    )
                self.auth.learn(probe)
                self._origin = origin(base)
                self._base = base
            return self._base

    def ping(self, *, deadline: Deadline | None = None) -> None:
        """``GET /v2/``: checks that the registry answers (and accepts our credentials), and learns its
        auth challenge.

        Raises:
            RegistryError: the registry answered with something other than 200 or 401.
        """
        self.request("GET", "/v2/", scopes=(), what=f"ping {self.registry}", deadline=deadline)

    def request(
        self,
        method: str,
        path: str,
        *,
        scopes: Sequence[str],
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        expect: Sequence[int] = (200,),
        stream: bool = False,
        follow_redirects: bool = False,
        what: str,
        retry: bool | None = None,
        deadline: Deadline | None = None,
        limit: int | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """Send one request, authenticating as the registry demands.

        Args:
            method: HTTP method.
            path: a path under the registry (``/v2/...``) or an absolute URL it gave us (an upload
                ``Location``).
            scopes: token scopes the request needs (``repository:name:pull``).
            headers: extra headers.
            body: bytes (replayable), an iterable of chunks (streamed once), or None.
            expect: statuses that count as success; others raise.
            stream: leave the body unread so the caller can stream it (then call
                :func:`promoter.transport.body.release`).
            follow_redirects: follow 3xx to any host (blob downloads); the Authorization header goes
                only to this registry's own host.
            what: the operation, for error messages ("pull manifest app:1.0").
            retry: retry transient failures; defaults to True unless the body is a one-shot iterable.
            deadline: when the whole request, retries and waits included, must be over.
            limit: the most bytes of the body when it is read whole (not ``stream``); the options'
                ``answer_limit`` by default.

        Raises:
            RegistryError: an unexpected status (AuthenticationError for 401/403).
            RegistryUnreachableError: no (complete) HTTP answer, or a stalled one.
            DeadlineExceededError: the deadline passed.
            AnswerTooLargeError: the body read whole is larger than ``limit``.
        """
        replayable = body is None or isinstance(body, bytes)
        if retry is None:
            retry = replayable

        def attempt() -> urllib3.BaseHTTPResponse:
            if deadline is not None and deadline.expired:
                # Not this registry's doing: the request waited its turn (workers busy with other
                # requests of the run, perhaps to another registry that does not answer).
                raise DeadlineExceededError(
                    f"{what}: gave up after {deadline.name} before it was "
                    "sent: the run's time went to its other requests"
                )
            with self.throttle.slot(deadline, what):
                try:
                    response = self._send_authenticated(
                        method,
                        path,
                        scopes=scopes,
                        headers=headers or {},
                        body=body,
                        expect=expect,
                        stream=stream,
                        follow_redirects=follow_redirects,
                        what=what,
                        replayable=replayable,
                        deadline=deadline,
                        limit=limit,
                    )
                except RegistryError as exc:
                    if exc.status == TOO_MANY_REQUESTS:
                        self.throttle.too_many()
                    raise
            self.throttle.answered()
            return response

        if retry:
            return self.transport.options.retry.run(attempt, deadline=deadline, what=what)
        return attempt()

    # -- sending ---------------------------------------------------------------------------------

    def _absolute(self, path: str, deadline: Deadline | None) -> str:
        if path.startswith(("http://", "https://")):
            return path
        base = self.base(deadline)
        return urljoin(base + "/", path.lstrip("/")) if not path.startswith("/") else base + path

    def _send_authenticated(
        self,
        method: str,
        path: str,
        *,
        scopes: Sequence[str],
        headers: Mapping[str, str],
        body: Body,
        expect: Sequence[int],
        stream: bool,
        follow_redirects: bool,
        what: str,
        replayable: bool,
        deadline: Deadline | None,
        limit: int | None,
    ) -> urllib3.BaseHTTPResponse:
        url = self._absolute(path, deadline)
        base = self.base(deadline)
        own_origin = self._origin
        # Credentials go only to the registry's own scheme, host and port: never to another host,
        # and never in clear text to an http:// URL that a TLS registry's proxy may hand out.
        sends_auth = url.startswith(base + "/") or origin(url) == own_origin
        replacements = 0
        guessed_expiry = False
        while True:
            response, request_headers, credential = self._send_once(
                method,
                url,
                scopes=scopes,
                headers=headers,
                body=body,
                stream=stream,
                what=what,
                replayable=replayable,
                sends_auth=sends_auth,
                deadline=deadline,
                limit=limit,
            )
            if follow_redirects:
                response, url = self._follow(
                    response,
                    url=url,
                    method=method,
                    own_origin=own_origin,
                    headers=request_headers,
                    what=what,
                    stream=stream,
                    deadline=deadline,
                    limit=limit,
                )
            if credential is not None and response.status not in (401, 403):
                self.auth.prove(credential)
            if response.status in expect:
                return response
            if response.status not in (401, 403) or origin(url) != own_origin:
                raise error_from(response, method, url, what, RegistryError, preloaded=not stream)
            repository = _refused_repository(response, scopes) if credential else None
            if repository is not None:
                # The credential is fine (a token was granted); this repository is not in it.
                # Not a refusal of the credential: the chain is not asked for another one.
                denied = error_from(
                    response, method, url, what, RepositoryAccessError, preloaded=not stream
                )
                assert isinstance(denied, RepositoryAccessError)  # noqa: S101 - the class asked for
                denied.repository = repository
                denied.hint = (
                    f"{self.registry} refused repository {repository} (insufficient_scope): it may "
                    "not exist, or the credentials cannot read it"
                )
                raise denied
            error = error_from(
                response, method, url, what, AuthenticationError, preloaded=not stream
            )
            # The registry refused the credential: ask the chain for a renewed or another one (a
            # token ECR calls expired, a stale docker login entry for an ECR host) and try again, a
            # bounded number of times. Every refusal is reported, so the chain passes over each
            # refused source and the message names all of them. A refusal without a reason (the
            # answer to a HEAD has no body) is taken for an expired token once per request.
            unexplained = not error.details
            replacement = (
                self.auth.refused(
                    credential,
                    error,
                    maybe_expired=unexplained and not guessed_expiry,
                    deadline=deadline,
                )
                if replacements < MAX_REPLACEMENTS
                else None
            )
            guessed_expiry = guessed_expiry or unexplained
            if replacement is None:
                error.hint, error.remedy = self.auth.hint(response.status, credential)
                raise error
            log.debug("%s refused %s; trying again", self.registry, credential)
            replacements += 1
            if not replayable:
                error.retryable = True  # the caller's own retry starts over with the new credential
                raise error

    def _send_once(
        self,
        method: str,
        url: str,
        *,
        scopes: Sequence[str],
        headers: Mapping[str, str],
        body: Body,
        stream: bool,
        what: str,
        replayable: bool,
        sends_auth: bool,
        deadline: Deadline | None,
        limit: int | None,
    ) -> tuple[urllib3.BaseHTTPResponse, dict[str, str], Credential | None]:
        """One request, answering a 401 challenge once; returns the response, the headers sent and the
        credential behind them."""
        request_headers = dict(headers)
        credential: Credential | None = None
        for second_try in (False, True):
            request_headers = dict(headers)
            auth, credential = (
                self.auth.authorization(
                    scopes, base_url=self.base(deadline), refresh=second_try, deadline=deadline
                )
                if sends_auth
                else (None, None)
            )
            if auth is not None:
                request_headers["Authorization"] = auth
            response = self.raw(
                method,
                url,
                headers=request_headers,
                body=body,
                what=what,
                stream=stream,
                deadline=deadline,
                limit=limit,
            )
            if response.status != 401 or second_try or not sends_auth:
                break
            # 401: learn (or re-learn) the challenge and answer it once. A one-shot streamed body
            # cannot be sent again; the caller's blob-level retry starts over with a fresh token.
            learned = self.auth.learn(response)
            if auth is not None:
                self.auth.forget_tokens(scopes)
            if not replayable:
                raise error_from(
                    response,
                    method,
                    url,
                    what,
                    AuthenticationError,
                    preloaded=not stream,
                    retryable=True,
                )
            if not learned and auth is None and self.auth.challenge is None:
                break
            discard(response)
        return response, request_headers, credential

    def _follow(
        self,
        response: urllib3.BaseHTTPResponse,
        *,
        url: str,
        method: str,
        own_origin: tuple[str, str, int],
        headers: dict[str, str],
        what: str,
        stream: bool,
        deadline: Deadline | None,
        limit: int | None,
    ) -> tuple[urllib3.BaseHTTPResponse, str]:
        """Follow redirects (blob downloads to storage); returns the last response and its URL.

        Raises:
            RegistryError: a redirect to a URL that is not http or https (not retried).
        """
        for _ in range(_MAX_REDIRECTS):
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or not location:
                break
            discard(response)
            target = urljoin(url, location)  # a Location may be relative to the request URL
            scheme = urlsplit(target).scheme.lower()
            if scheme not in ("http", "https"):
                raise RegistryError(
                    method,
                    redact(url),
                    response.status,
                    what=what,
                    hint=f"it redirects to a {scheme or 'scheme-less'} URL; only http and https "
                    "are followed",
                )
            url = target
            follow_headers = dict(headers)
            if origin(url) != own_origin:
                # Presigned storage URLs (S3 behind ECR) carry their own signature; the registry's
                # token must never leave the registry's host.
                follow_headers.pop("Authorization", None)
            response = self.raw(
                method,
                url,
                headers=follow_headers,
                body=None,
                what=what,
                stream=stream,
                deadline=deadline,
                limit=limit,
            )
        if response.status in _REDIRECTS and response.headers.get("Location"):
            discard(response)
            raise RegistryError(
                method,
                redact(url),
                response.status,
                what=what,
                hint=f"it redirects more than {_MAX_REDIRECTS} times; the registry or a proxy in "
                "front of it loops",
            )
        return response, url

    def raw(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: Body,
        what: str,
        stream: bool = False,
        deadline: Deadline | None = None,
        limit: int | None = None,
        answer_seconds: float | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """One HTTP exchange, no auth flow and no retry, watched as a whole
        (:mod:`~promoter.transport.watch`): the answer must come within the answer time however it
        drips, a streamed body must keep moving, and nothing outlasts the deadline.

        Args:
            limit: the most bytes of a body read whole (default ``answer_limit`` of the options).
            stream: leave the body unread; the caller streams it
                (:func:`~promoter.transport.body.iter_body`) and releases it.
            answer_seconds: a shorter wait for the answer than the options' ``read_timeout``.

        Raises:
            RegistryUnreachableError: no (complete) answer, a stall, a refused connection.
            DeadlineExceededError: the deadline passed.
            AnswerTooLargeError: a body read whole is larger than ``limit``.
            RunInterruptedError: the run was interrupted.
        """
        parts = urlsplit(url)
        # host[:port] for messages: a redirect's user:password@ is no part of it (only the
        # message shows this; the request still goes where the URL says).
        peer = parts.netloc.rpartition("@")[2]
        owner = self.registry if parts.netloc == self._netloc else ""
        pool = self.transport.pool_for(url, owner)
        options = self.transport.options
        pace = self.transport.pace
        if answer_seconds is not None and answer_seconds < pace.answer_seconds:
            pace = replace(pace, answer_seconds=answer_seconds)
        connect, read = options.connect_timeout, pace.answer_seconds
        if deadline is not None:
            deadline.check(what)
            connect, read = deadline.cap(connect), deadline.cap(read)
        exchange = Exchange(
            pace, deadline, peer, awaited=awaited_on_this_thread(), opens=opens_on_this_thread()
        )
        if body is not None and not isinstance(body, bytes):
            body = exchange.sending(body)
        watch(exchange)
        if exchange.broken is not None:  # interrupted before it started
            raise broken_error(exchange, what, None, deadline)
        started = time.monotonic()
        handed_over = False
        try:
            response = self._send(
                pool,
                method,
                url,
                headers={"User-Agent": USER_AGENT, **headers},
                body=body,
                timeout=urllib3.Timeout(connect=connect, read=read),
                exchange=exchange,
                what=what,
                deadline=deadline,
            )
            if log.isEnabledFor(logging.DEBUG):  # redact parses the URL: not on every request
                log.debug(
                    "%s %s -> %d (%.0f ms)",
                    method,
                    redact(url),
                    response.status,
                    (time.monotonic() - started) * 1000,
                )
            if stream:
                hand_over(response, exchange)
                handed_over = True
                return response
            if method == "HEAD":  # its Content-Length describes a body that is not sent
                exchange.finish()
                # Closed here, before its connection goes back to the pool: http.client keeps a
                # connection's last answer until it is closed, and whoever sends the next request
                # on it (another thread) would fail on it and close it under our caller's feet.
                discard(response)
                return _detached(response, b"", head=True)
            return self._read_whole(response, exchange, what, limit=limit, deadline=deadline)
        finally:
            if not handed_over:
                exchange.finish()

    def _send(
        self,
        pool: urllib3.PoolManager,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: Body,
        timeout: urllib3.Timeout,
        exchange: Exchange,
        what: str,
        deadline: Deadline | None,
    ) -> urllib3.BaseHTTPResponse:
        """Send the request and receive the status line and headers, turning failures into our
        errors (see :meth:`raw`)."""
        peer = exchange.peer
        try:
            with sending_on_this_thread(exchange):
                response = pool.request(
                    method,
                    url,
                    headers=dict(headers),  # replaces the pool's own headers: User-Agent included
                    body=body,
                    redirect=False,
                    preload_content=False,
                    decode_content=False,
                    timeout=timeout,
                )
        except NameResolutionError as exc:
            raise RegistryUnreachableError(
                f"{what}: cannot resolve host {urlsplit(url).hostname}",
                retryable=False,
                hint="check the registry name",
            ) from exc
        except SSLError as exc:
            if exchange.broken is not None:
                raise broken_error(exchange, what, exc, deadline) from exc
            raise RegistryUnreachableError(
                f"{what}: TLS failure talking to {peer}: {reason(exc)}",
                retryable=False,
                hint="trust the registry's CA if it uses a private one",
                remedy=Remedy.TRUST_CA,
            ) from exc
        except NewConnectionError as exc:
            # Nothing listens there: on this machine that does not change in a few seconds.
            raise RegistryUnreachableError(
                f"{what}: cannot connect to {peer}: {reason(exc)}",
                retryable=not is_loopback_host(peer),
            ) from exc
        except (HTTPError, OSError) as exc:
            if isinstance(exc, ReadTimeoutError):
                # The socket's own timeout equals the answer time: it may fire a moment before
                # the watchdog does; it is the same verdict.
                exchange.cut(Broken.NO_ANSWER)
            if exchange.broken is not None or (deadline is not None and deadline.expired):
                raise broken_error(exchange, what, exc, deadline) from exc
            raise RegistryUnreachableError(
                f"{what}: connection to {peer} failed: {reason(exc)}"
            ) from exc
        if exchange.broken is not None:
            # Cut while the headers arrived: http.client takes the end of the stream for the end
            # of the headers, so what came back is not the registry's answer.
            response.close()
            response.release_conn()
            raise broken_error(exchange, what, None, deadline)
        return response

    def _read_whole(
        self,
        response: urllib3.BaseHTTPResponse,
        exchange: Exchange,
        what: str,
        *,
        limit: int | None,
        deadline: Deadline | None,
    ) -> urllib3.BaseHTTPResponse:
        """The response with its body read whole under the cap, its connection given back. An error
        answer's body is only read up to :data:`~promoter.errors.ERROR_BODY_LIMIT` (the rest is
        dropped with the connection): it is only ever quoted."""
        error_answer = response.status >= 300
        cap = self.transport.options.answer_limit if limit is None else limit
        try:
            data = read_whole(
                response,
                ERROR_BODY_LIMIT if error_answer else cap,
                what,
                exchange,
                truncate=error_answer,
            )
            if exchange.broken is not None:  # cut: the end of the stream was not the body's end
                raise broken_error(exchange, what, None, deadline)
        except (HTTPError, OSError, ValueError) as exc:  # ValueError: see body.iter_body
            if isinstance(exc, ReadTimeoutError):  # as in _send
                exchange.cut(Broken.NO_ANSWER)
            raise broken_error(exchange, what, exc, deadline) from exc
        finally:
            exchange.finish()
            release(response)  # its connection closed unless the body was read to its end
        return _detached(response, data)


def _detached(
    response: urllib3.BaseHTTPResponse, data: bytes, *, head: bool = False
) -> urllib3.BaseHTTPResponse:
    """A copy of an answer read whole (``data``, its body), tied to no connection or socket file:
    it is what :meth:`RegistrySession.raw` returns for a body read whole and for a HEAD, so nothing
    its caller does with it later (read ``data``, discard it, drop it to the garbage collector on
    some other thread) can touch a connection that is serving another request by then."""
    return urllib3.HTTPResponse(
        body=io.BytesIO(data),
        headers=response.headers,
        status=response.status,
        reason=response.reason,
        request_url=response.url,
        request_method="HEAD" if head else None,  # a HEAD's Content-Length announces no body
        preload_content=True,
        decode_content=False,
    )


def _refused_repository(response: urllib3.BaseHTTPResponse, scopes: Sequence[str]) -> str | None:
    """The repository a bearer-token registry refused with ``error="insufficient_scope"`` in its
    401/403 challenge (RFC 6750 section 3.1), when the request asked for one; else None."""
    header = response.headers.get("WWW-Authenticate")
    challenge = parse_challenge(header) if header else None
    if challenge is None or challenge.params.get("error") != "insufficient_scope":
        return None
    for scope in list(challenge.scopes) + list(scopes):
        kind, _, rest = scope.partition(":")
        name = rest.rpartition(":")[0]
        if kind == "repository" and name:
            return name
    return None
