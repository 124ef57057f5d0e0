"""One authenticated HTTP session per registry host.

:class:`Transport` owns the connection pools and TLS settings and hands out one
:class:`RegistrySession` per registry. A session picks the scheme (HTTPS, or plain HTTP only for
loopback and ``--insecure-registry`` hosts), runs the Basic/Bearer flow from the registry's challenge,
caches tokens per scope, follows redirects (never sending the registry's Authorization header to
another host) and turns failures into :class:`~promoter.errors.RegistryError` and friends.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3
from urllib3.exceptions import (
    HTTPError,
    InsecureRequestWarning,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    SSLError,
)
from urllib3.exceptions import (
    TimeoutError as Urllib3TimeoutError,
)

from promoter.authn.store import Credential, find_credential
from promoter.errors import (
    ERROR_BODY_LIMIT,
    AuthenticationError,
    ConfigError,
    RegistryError,
    RegistryErrorDetail,
    RegistryUnreachableError,
)
from promoter.reference import api_host, is_loopback_host
from promoter.transport.challenge import Challenge, parse_challenge
from promoter.transport.retry import RETRYABLE_STATUSES, RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

USER_AGENT = "promoter/0.1"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
#: Refresh a token this long before the server says it expires.
_TOKEN_MARGIN_SECONDS = 30.0
_DEFAULT_TOKEN_SECONDS = 60.0

Body = bytes | Iterable[bytes] | None


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """Settings shared by every registry session.

    Attributes:
        ca_file: extra CA certificates (PEM) trusted besides the system store, for every registry.
        ca_files: registry name -> CA certificates (PEM) trusted for that registry only.
        insecure_registries: hosts for which TLS is not verified and plain HTTP is allowed.
        endpoints: registry name -> base URL to send its requests to instead (a mirror, a local test
            registry standing in for a real-looking name); the scheme of the URL is used as given.
        retry: the retry policy for requests whose body can be sent again.
        connect_timeout: seconds to establish a connection.
        read_timeout: seconds of silence on an open connection before giving up.
        pool_size: connections kept per host; at least the number of concurrent transfers.
    """

    ca_file: Path | None = None
    ca_files: Mapping[str, Path] = field(default_factory=dict)
    insecure_registries: frozenset[str] = frozenset()
    endpoints: Mapping[str, str] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    pool_size: int = 16


CredentialLoader = Callable[[str], Credential | None]


class Transport:
    """Connection pools and per-registry sessions; share one across a whole run."""

    def __init__(
        self,
        options: TransportOptions | None = None,
        credentials: CredentialLoader = find_credential,
    ) -> None:
        self.options = options or TransportOptions()
        self._credentials = credentials
        timeout = urllib3.Timeout(
            connect=self.options.connect_timeout, read=self.options.read_timeout
        )
        self._common: dict[str, Any] = {
            "num_pools": 32,
            "maxsize": self.options.pool_size,
            "timeout": timeout,
            "retries": False,
            "headers": {"User-Agent": USER_AGENT},
        }
        # Plain HTTP needs no TLS context; the verified pool is made on the first HTTPS request, since
        # loading the trust store costs more than a loopback copy's first requests.
        self._plain = urllib3.PoolManager(**self._common)
        self._verified: urllib3.PoolManager | None = None
        self._unverified: urllib3.PoolManager | None = None
        #: registries with a CA of their own get a pool of their own.
        self._private: dict[str, urllib3.PoolManager] = {}
        self._sessions: dict[str, RegistrySession] = {}
        self._lock = threading.Lock()

    def _ssl_context(self, extra: Path | None = None) -> ssl.SSLContext:
        """The system trust store plus ``--ca-file`` (and a registry's own CA, if given)."""
        context = ssl.create_default_context()
        for ca_file in (self.options.ca_file, extra):
            if ca_file is None:
                continue
            try:
                context.load_verify_locations(cafile=str(ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"cannot load CA file {ca_file}: {exc}; give a PEM file of certificates"
                ) from exc
        return context

    def session(self, registry: str) -> RegistrySession:
        """The session for a registry host (one per host per transport)."""
        with self._lock:
            found = self._sessions.get(registry)
            if found is None:
                found = RegistrySession(self, registry)
                self._sessions[registry] = found
            return found

    def pool_for(self, url: str, registry: str) -> urllib3.PoolManager:
        """The pool for a URL: plain for http, unverified TLS for ``--insecure-registry`` hosts,
        verified TLS (the system store plus ``--ca-file``) for everything else."""
        if url.startswith("http://"):
            return self._plain
        with self._lock:
            if registry in self.options.insecure_registries:
                if self._unverified is None:
                    # The user named this host insecure on purpose; the warning would only repeat it.
                    urllib3.disable_warnings(InsecureRequestWarning)
                    self._unverified = urllib3.PoolManager(cert_reqs=ssl.CERT_NONE, **self._common)
                return self._unverified
            own_ca = self.options.ca_files.get(registry)
            if own_ca is not None:
                if registry not in self._private:
                    self._private[registry] = urllib3.PoolManager(
                        ssl_context=self._ssl_context(own_ca), **self._common
                    )
                return self._private[registry]
            if self._verified is None:
                self._verified = urllib3.PoolManager(
                    ssl_context=self._ssl_context(), **self._common
                )
            return self._verified

    def load_credential(self, registry: str) -> Credential | None:
        """Credentials for ``registry`` from the configured loader."""
        return self._credentials(registry)

    @property
    def credential_loader(self) -> CredentialLoader:
        """The loader this transport was given, so that callers can reach what they passed in."""
        return self._credentials

    def close(self) -> None:
        """Close every pooled connection."""
        for pool in (self._plain, self._verified, self._unverified, *self._private.values()):
            if pool is not None:
                pool.clear()


@dataclass
class _Token:
    value: str
    expires: float


class RegistrySession:
    """Authenticated requests to one registry host. Thread-safe."""

    def __init__(self, transport: Transport, registry: str) -> None:
        self.transport = transport
        self.registry = registry
        endpoint = transport.options.endpoints.get(registry)
        #: host[:port] requests go to, known before the scheme is (the pool choice needs it).
        self._netloc = urlsplit(endpoint).netloc if endpoint else api_host(registry)
        self._base: str | None = None
        self._challenge: Challenge | None = None
        self._credential: Credential | None = None
        self._credential_loaded = False
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._lock = threading.RLock()

    # -- public API -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``scheme://host[:port]`` that requests go to, decided on first use.

        The first use also pings ``/v2/`` to learn the registry's challenge before any real request,
        as docker and crane do: a registry that answers anonymous requests with 404 instead of 401
        would otherwise make a missing tag look free and a present image look missing.
        """
        with self._lock:
            if self._base is None:
                base, probe = self._discover_base()
                if probe is None:
                    probe = self._raw(
                        "GET", base + "/v2/", headers={}, body=None, what=f"ping {self.registry}"
                    )
                self._learn_challenge(probe)
                self._base = base
            return self._base

    def ping(self) -> None:
        """``GET /v2/``: checks that the registry answers, and learns its auth challenge.

        Raises:
            RegistryError: the registry answered with something other than 200 or 401.
        """
        self.request("GET", "/v2/", scopes=(), what=f"ping {self.registry}")

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
            stream: leave the body unread so the caller can stream it (then call :func:`release`).
            follow_redirects: follow 3xx to any host (blob downloads); the Authorization header goes
                only to this registry's own host.
            what: the operation, for error messages ("pull manifest app:1.0").
            retry: retry transient failures; defaults to True unless the body is a one-shot iterable.

        Raises:
            RegistryError: an unexpected status (AuthenticationError for 401/403).
            RegistryUnreachableError: no HTTP answer.
        """
        replayable = body is None or isinstance(body, bytes)
        if retry is None:
            retry = replayable

        def attempt() -> urllib3.BaseHTTPResponse:
            return self._send_authenticated(
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
            )

        if retry:
            return self.transport.options.retry.run(attempt)
        return attempt()

    # -- scheme --------------------------------------------------------------------------------

    def _discover_base(self) -> tuple[str, urllib3.BaseHTTPResponse | None]:
        """The base URL, and the answer to ``GET /v2/`` if finding the scheme already asked it."""
        endpoint = self.transport.options.endpoints.get(self.registry)
        if endpoint:
            return endpoint.rstrip("/"), None
        host = api_host(self.registry)
        if is_loopback_host(host):
            return self._probe_plain_first(host)
        if self.registry in self.transport.options.insecure_registries:
            return self._probe_tls_first(host)
        return f"https://{host}", None

    def _probe_plain_first(self, host: str) -> tuple[str, urllib3.BaseHTTPResponse | None]:
        """Loopback: plain HTTP unless the server turns out to speak TLS.

        Loopback registries are nearly always plain, and asking over HTTP first sends nothing secret
        (a ping carries no credentials) and saves a TLS handshake and loading the trust store. A TLS
        server answers plain HTTP with 400 (Go's "Client sent an HTTP request to an HTTPS server")
        or drops the connection.
        """
        try:
            response = self._raw(
                "GET", f"http://{host}/v2/", headers={}, body=None, what=f"ping {self.registry}"
            )
        except RegistryUnreachableError:
            return f"https://{host}", None
        if response.status == 400 and b"HTTPS" in (response.data or b""):
            return f"https://{host}", None
        return f"http://{host}", response

    def _probe_tls_first(self, host: str) -> tuple[str, urllib3.BaseHTTPResponse | None]:
        """``--insecure-registry`` hosts, as docker treats them: HTTPS (unverified) first, plain
        HTTP when the server does not speak TLS."""
        pool = self.transport.pool_for(f"https://{host}/", self.registry)
        try:
            response = pool.request(
                "GET",
                f"https://{host}/v2/",
                redirect=False,
                preload_content=True,
                timeout=urllib3.Timeout(connect=self.transport.options.connect_timeout, read=10.0),
            )
        except SSLError as exc:
            if _is_certificate_failure(exc):
                return f"https://{host}", None
            return f"http://{host}", None
        except (NewConnectionError, ProtocolError, MaxRetryError):
            return f"http://{host}", None
        except HTTPError:
            return f"https://{host}", None
        return f"https://{host}", response

    def _absolute(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return (
            urljoin(self.base_url + "/", path.lstrip("/"))
            if not path.startswith("/")
            else self.base_url + path
        )

    # -- auth -----------------------------------------------------------------------------------

    def _credentials(self) -> Credential | None:
        with self._lock:
            if not self._credential_loaded:
                self._credential = self.transport.load_credential(self.registry)
                self._credential_loaded = True
            return self._credential

    def _learn_challenge(self, response: urllib3.BaseHTTPResponse) -> bool:
        """Remember the registry's challenge from a 401; True if it was new or changed."""
        header = response.headers.get("WWW-Authenticate")
        if response.status != 401 or not header:
            return False
        challenge = parse_challenge(header)
        if challenge is None:
            return False
        with self._lock:
            changed = self._challenge is None or (
                self._challenge.scheme != challenge.scheme
                or self._challenge.realm != challenge.realm
            )
            self._challenge = challenge
        return changed

    def _authorization(self, scopes: Sequence[str], *, refresh: bool = False) -> str | None:
        with self._lock:
            challenge = self._challenge
        if challenge is None:
            return None
        credential = self._credentials()
        if challenge.scheme == "basic":
            if credential is None or not credential.password:
                return None
            raw = f"{credential.username}:{credential.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        if challenge.scheme != "bearer":
            return None
        key = tuple(sorted(set(scopes)))
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and not refresh and token.expires > time.monotonic():
                return f"Bearer {token.value}"
            token = self._fetch_token(challenge, key, credential)
            self._tokens[key] = token
        return f"Bearer {token.value}"

    def _forget_token(self, scopes: Sequence[str]) -> None:
        with self._lock:
            self._tokens.pop(tuple(sorted(set(scopes))), None)

    def _fetch_token(
        self, challenge: Challenge, scopes: tuple[str, ...], credential: Credential | None
    ) -> _Token:
        """Token flow (distribution "Token Authentication Specification" and its OAuth2 variant)."""
        realm = challenge.realm
        if not realm.startswith(("https://", "http://")):
            raise RegistryUnreachableError(
                f"{self.registry} sent an auth challenge without a usable realm URL",
                retryable=False,
            )
        if realm.startswith("http://") and self.base_url.startswith("https://"):
            # A TLS registry behind a proxy often advertises an http:// realm; credentials must not
            # travel in clear text, so ask the same realm over TLS (as go-containerregistry does).
            realm = "https://" + realm[len("http://") :]
        what = f"get a token for {self.registry}"
        service = challenge.service
        headers: dict[str, str] = {}
        if credential is not None and credential.identity_token:
            # An identity token is an OAuth2 refresh token (docker login with a registry that issues one).
            fields = [
                ("grant_type", "refresh_token"),
                ("refresh_token", credential.identity_token),
                ("service", service),
                ("client_id", "promoter"),
                *[("scope", s) for s in scopes],
            ]
            response = self._raw(
                "POST",
                realm,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                body=urlencode(fields).encode(),
                what=what,
            )
        else:
            if credential is not None and credential.password:
                raw = f"{credential.username}:{credential.password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            query = [("service", service)] if service else []
            query += [("scope", s) for s in scopes]
            url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
            response = self._raw("GET", url, headers=headers, body=None, what=what)
        if response.status != 200:
            raise _error_from(response, "GET", realm, what, AuthenticationError, preloaded=True)
        try:
            payload = json.loads(response.data)
            value = str(payload.get("token") or payload.get("access_token") or "")
        except (ValueError, AttributeError) as exc:
            raise AuthenticationError(
                "GET", _redact(realm), 200, what=what + " (unreadable answer)"
            ) from exc
        if not value:
            raise AuthenticationError(
                "GET", _redact(realm), 200, what=what + " (no token in answer)"
            )
        expires_in = payload.get("expires_in")
        lifetime = (
            float(expires_in)
            if isinstance(expires_in, int | float) and expires_in > 0
            else _DEFAULT_TOKEN_SECONDS
        )
        return _Token(value, time.monotonic() + max(lifetime - _TOKEN_MARGIN_SECONDS, lifetime / 2))

    # -- sending ---------------------------------------------------------------------------------

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
    ) -> urllib3.BaseHTTPResponse:
        url = self._absolute(path)
        base = self.base_url
        own_origin = _origin(base)
        # Credentials go only to the registry's own scheme, host and port: never to another host,
        # and never in clear text to an http:// URL that a TLS registry's proxy may hand out.
        sends_auth = url.startswith(base + "/") or _origin(url) == own_origin
        request_headers = dict(headers)
        for second_try in (False, True):
            request_headers = dict(headers)
            auth = self._authorization(scopes, refresh=second_try) if sends_auth else None
            if auth is not None:
                request_headers["Authorization"] = auth
            response = self._raw(
                method, url, headers=request_headers, body=body, what=what, stream=stream
            )
            if response.status != 401 or second_try or not sends_auth:
                break
            # 401: learn (or re-learn) the challenge and answer it once. A one-shot streamed body
            # cannot be sent again; the caller's blob-level retry starts over with a fresh token.
            learned = self._learn_challenge(response)
            if auth is not None:
                self._forget_token(scopes)
            if not replayable:
                raise _error_from(
                    response,
                    method,
                    url,
                    what,
                    AuthenticationError,
                    preloaded=not stream,
                    retryable=True,
                )
            if not learned and auth is None and self._challenge is None:
                break
            _discard(response)
        if follow_redirects:
            response, url = self._follow(
                response,
                url=url,
                method=method,
                own_origin=own_origin,
                headers=request_headers,
                what=what,
                stream=stream,
            )
        if response.status in expect:
            return response
        if response.status in (401, 403) and _origin(url) == own_origin:
            error = _error_from(
                response, method, url, what, AuthenticationError, preloaded=not stream
            )
            error.hint = self._auth_hint(response.status)
            raise error
        raise _error_from(response, method, url, what, RegistryError, preloaded=not stream)

    def _auth_hint(self, status: int) -> str:
        """What to do about a refusal, depending on whether we had credentials to offer."""
        credential = self._credentials()
        if credential is None:
            return (
                f"no credentials for {self.registry} were found; run 'promoter login "
                f"{self.registry}' (or docker login) or configure a credential helper"
            )
        if status == 403:
            return f"the credentials for {self.registry} are not allowed to do this"
        return f"the registry did not accept the stored credentials for {self.registry}"

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
    ) -> tuple[urllib3.BaseHTTPResponse, str]:
        """Follow redirects (blob downloads to storage); returns the last response and its URL."""
        for _ in range(_MAX_REDIRECTS):
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or not location:
                break
            _discard(response)
            url = urljoin(url, location)  # a Location may be relative to the request URL
            follow_headers = dict(headers)
            if _origin(url) != own_origin:
                # Presigned storage URLs (S3 behind ECR) carry their own signature; the registry's
                # token must never leave the registry's host.
                follow_headers.pop("Authorization", None)
            response = self._raw(
                method, url, headers=follow_headers, body=None, what=what, stream=stream
            )
        return response, url

    def _raw(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: Body,
        what: str,
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        owner = self.registry if urlsplit(url).netloc == self._netloc else ""
        pool = self.transport.pool_for(url, owner)
        started = time.monotonic()
        try:
            response = pool.request(
                method,
                url,
                headers=dict(headers),
                body=body,
                redirect=False,
                preload_content=not stream,
                decode_content=False,
            )
        except NameResolutionError as exc:
            raise RegistryUnreachableError(
                f"{what}: cannot resolve host {urlsplit(url).hostname}; check the registry name",
                retryable=False,
            ) from exc
        except SSLError as exc:
            raise RegistryUnreachableError(
                f"{what}: TLS failure talking to {urlsplit(url).netloc}: {_reason(exc)} "
                "(use --ca-file for a private CA)",
                retryable=False,
            ) from exc
        except NewConnectionError as exc:
            raise RegistryUnreachableError(
                f"{what}: cannot connect to {urlsplit(url).netloc}: {_reason(exc)}"
            ) from exc
        except (ProtocolError, Urllib3TimeoutError, MaxRetryError) as exc:
            raise RegistryUnreachableError(
                f"{what}: connection to {urlsplit(url).netloc} failed: {_reason(exc)}"
            ) from exc
        except HTTPError as exc:
            raise RegistryUnreachableError(
                f"{what}: {method} {_redact(url)} failed: {_reason(exc)}"
            ) from exc
        if log.isEnabledFor(logging.DEBUG):  # _redact parses the URL: not on every request
            log.debug(
                "%s %s -> %d (%.0f ms)",
                method,
                _redact(url),
                response.status,
                (time.monotonic() - started) * 1000,
            )
        return response


def _reason(exc: BaseException) -> str:
    """A short reason from a urllib3 exception, without its URL (which may carry a signed query)."""
    inner: BaseException = exc
    while isinstance(inner, MaxRetryError) and inner.reason is not None:
        inner = inner.reason
    text = str(inner)
    for marker in ("Failed to establish a new connection: ", "Connection aborted.", "): "):
        if marker in text:
            text = text.split(marker, 1)[1]
            break
    return text.strip(" ()'\"") or type(inner).__name__


def _is_certificate_failure(exc: SSLError) -> bool:
    """Whether a TLS error is a failed certificate check (a TLS server we do not trust)."""
    seen: set[int] = set()
    inner: BaseException | None = exc
    while inner is not None and id(inner) not in seen:
        seen.add(id(inner))
        if isinstance(inner, ssl.SSLCertVerificationError):
            return True
        inner = inner.__cause__ or inner.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _redact(url: str) -> str:
    """The URL without its query string: upload URLs carry session state, presigned URLs signatures."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _discard(response: urllib3.BaseHTTPResponse) -> None:
    """Drain a little of an unwanted response so its connection can be reused, then release it."""
    with contextlib.suppress(HTTPError):
        response.drain_conn()
    response.release_conn()


def _error_from(
    response: urllib3.BaseHTTPResponse,
    method: str,
    url: str,
    what: str,
    error_class: type[RegistryError],
    *,
    preloaded: bool,
    retryable: bool | None = None,
) -> RegistryError:
    """A RegistryError from an error response, with the registry's own codes from its body."""
    try:
        raw = response.data if preloaded else response.read(ERROR_BODY_LIMIT, decode_content=True)
    except (HTTPError, OSError):
        raw = b""
    raw = (raw or b"")[:ERROR_BODY_LIMIT]
    _discard(response)
    details: list[RegistryErrorDetail] = []
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    errors = doc.get("errors") if isinstance(doc, dict) else None
    for item in errors if isinstance(errors, list) else []:
        if isinstance(item, dict):
            details.append(
                RegistryErrorDetail(str(item.get("code", "")), str(item.get("message", ""))[:200])
            )
    return error_class(
        method=method,
        url=_redact(url),
        status=response.status,
        details=tuple(details),
        retryable=response.status in RETRYABLE_STATUSES if retryable is None else retryable,
        what=what,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


def iter_body(response: urllib3.BaseHTTPResponse, chunk_size: int, what: str) -> Iterator[bytes]:
    """Stream a response body in chunks, turning a dropped connection into our error.

    urllib3 enforces Content-Length, so a body cut short raises here instead of ending quietly.
    """
    try:
        yield from response.stream(chunk_size, decode_content=False)
    except (HTTPError, OSError) as exc:
        raise RegistryUnreachableError(
            f"{what}: connection lost while reading: {_reason(exc)}"
        ) from exc


def release(response: urllib3.BaseHTTPResponse) -> None:
    """Give a streamed response's connection back: to the pool if the body was read to its end,
    else closed, so that unread bytes can never be taken for the next response on it."""
    if not response.closed:  # http.client closes the body once it has been read to its end
        response.close()
    response.release_conn()


def _origin(url: str) -> tuple[str, str, int]:
    """Scheme, host and effective port: what must match before credentials are sent."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80)
