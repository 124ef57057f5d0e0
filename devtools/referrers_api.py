"""The OCI 1.1 referrers API in front of a registry that lacks it, for tests of promoter's API path.

Debian's Distribution 2.8 has no referrers API: ``GET /v2/<name>/referrers/<digest>`` is a router
miss (a plain-text 404), so on it every client must use the ``sha256-<hex>`` tag fallback. Promoter
has to prefer the API where a registry answers it, and no registry on this machine does. This proxy
stands in front of the real registry, forwards every request to it unchanged, and adds the API the
way distribution-spec v1.1 describes it ("Listing Referrers", "Pushing Manifests with Subject"):

* a manifest PUT that the registry accepted (201) and whose JSON has a ``subject`` is remembered as
  a descriptor of that subject in that repository, and answered with ``OCI-Subject: <digest>``;
* ``GET /v2/<name>/referrers/<digest>[?artifactType=...]`` answers 200 with an OCI index of the
  descriptors remembered (an empty one when there are none), filtered with
  ``OCI-Filters-Applied: artifactType``, in pages linked by ``Link: <...>; rel="next"``;
* a manifest DELETE by digest that the registry accepted (202) forgets that descriptor.

Options make it misbehave as real registries do (research notes, "Pitfalls users reported"): no API
at all (``api="absent"``: the request goes to Distribution, which answers its own 404), a 200 that
is not an OCI index (``content_type``), a 400/405/406/500 (``status``), no ``OCI-Subject`` header
(``oci_subject=False``), no filtering (``filtering=False``). ``counts`` tallies requests by method
and :class:`RequestKind` so tests and benchmarks can count round trips.

The state lives in the proxy only: descriptors of manifests pushed straight to the registry, or
before the proxy started, are not listed. Authorization is the registry's: a referrers request is
answered only after the registry answered a ``tags/list`` of the same repository with the client's
own ``Authorization`` header (a 401 with its ``WWW-Authenticate`` challenge, or a 404 for an
unknown repository, is relayed as it came). For faults of other kinds, chain a
:class:`devtools.fault_proxy.FaultProxy` in front of this one (``FaultProxy(proxy.url)``).

From Python::

    with ReferrersApiProxy(("127.0.0.1", registry.port), page_size=2) as proxy:
        ...  # talk to proxy.url; proxy.count("GET", RequestKind.REFERRERS)

From a shell (runs until SIGINT or SIGTERM, or ``--max-seconds``)::

    python -m devtools.referrers_api --upstream 127.0.0.1:5000 --listen 0
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import http.client
import json
import re
import signal
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

from devtools.latency_proxy import loopback_address
from devtools.loopback_http import HOP_BY_HOP, IDLE_TIMEOUT_S, LoopbackServer, LoopbackService

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
"""The media type of a referrers answer (distribution-spec, "Listing Referrers")."""

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""The largest manifest PUT the proxy reads to look for ``subject``; Distribution's own limit."""

UPSTREAM_TIMEOUT_S = 60.0
"""Connect and per-read timeout on the connection to the registry."""

DEFAULT_PAGE_SIZE = 1000
"""Descriptors per referrers page unless the ``page_size`` option says otherwise."""

_MAX_ERROR_BODY = 64 * 1024
_MAX_CHUNK_LINE = 1024
_CHUNK = 1024 * 1024
# ... and Expect: BaseHTTPRequestHandler answers 100-continue itself.
_HOP_BY_HOP = HOP_BY_HOP | {"expect"}
# Every manifest type a registry may hold, so a HEAD by digest finds whatever is there.
_ACCEPT = ", ".join(
    [
        OCI_INDEX,
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
# distribution-spec, "Pulling manifests": <algorithm>:<encoded>.
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_ERROR_CODES = {
    400: "UNSUPPORTED",
    401: "UNAUTHORIZED",
    403: "DENIED",
    404: "NAME_UNKNOWN",
    405: "UNSUPPORTED",
    406: "UNSUPPORTED",
    413: "SIZE_INVALID",
    429: "TOOMANYREQUESTS",
}

ApiMode = Literal["ok", "absent"]


class RequestKind(StrEnum):
    """What a request asks for, by the shape of its path (distribution-spec endpoints)."""

    REFERRERS = "referrers"
    MANIFEST = "manifest"
    BLOB = "blob"
    UPLOAD = "upload"
    TAGS = "tags"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Route:
    """A request path taken apart: its kind, repository and reference (None where none applies)."""

    kind: RequestKind
    repository: str | None = None
    reference: str | None = None


_ROUTES = (
    (re.compile(r"/v2/(.+)/referrers/([^/]*)"), RequestKind.REFERRERS),
    (re.compile(r"/v2/(.+)/manifests/([^/]+)"), RequestKind.MANIFEST),
    (re.compile(r"/v2/(.+)/blobs/uploads/([^/]*)"), RequestKind.UPLOAD),
    (re.compile(r"/v2/(.+)/blobs/([^/]+)"), RequestKind.BLOB),
    (re.compile(r"/v2/(.+)/tags/(list)"), RequestKind.TAGS),
)


def route(target: str) -> Route:
    """Classify a request target (path and optional query) by the endpoint it addresses.

    Pure. An upload's reference is its session id (empty for the POST that starts one).
    """
    path = urlsplit(target).path
    for pattern, kind in _ROUTES:
        match = pattern.fullmatch(path)
        if match is not None:
            return Route(kind, match[1], match[2])
    return Route(RequestKind.OTHER)


def referrer_descriptor(
    manifest: bytes, digest: str, content_type: str | None
) -> tuple[str, dict[str, Any]] | None:
    """The subject digest and the referrers-API descriptor of a pushed manifest, or None.

    Pure. distribution-spec "Pushing Manifests with Subject" / "Listing Referrers": the
    descriptor's ``artifactType`` is the manifest's ``artifactType``, else its config's
    ``mediaType``; for an index without one it is omitted; all the manifest's annotations are
    copied.

    Args:
        manifest: The manifest bytes as pushed.
        digest: Its digest as the registry named it (``Docker-Content-Digest``).
        content_type: The PUT's Content-Type, used when the manifest has no ``mediaType``.

    Returns:
        ``(subject digest, descriptor)``, or None when the bytes are not JSON or name no subject.
    """
    try:
        document = json.loads(manifest)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    subject = document.get("subject")
    if not isinstance(subject, dict) or not isinstance(subject.get("digest"), str):
        return None
    media_type = document.get("mediaType") or content_type or ""
    descriptor: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(manifest)}
    artifact_type = document.get("artifactType")
    config = document.get("config")
    if not artifact_type and isinstance(config, dict):
        artifact_type = config.get("mediaType")
    if isinstance(artifact_type, str) and artifact_type:
        descriptor["artifactType"] = artifact_type
    annotations = document.get("annotations")
    if isinstance(annotations, dict) and annotations:
        descriptor["annotations"] = dict(annotations)
    return subject["digest"], descriptor


@dataclass(frozen=True, slots=True)
class ReferrersApiOptions:
    """How the proxy answers; see :class:`ReferrersApiProxy` for each field's meaning.

    Raises:
        ValueError: An unknown ``api``, a ``page_size`` below 1, a ``status`` outside 400-599 or an
            empty ``content_type``.
    """

    api: ApiMode = "ok"
    filtering: bool = True
    page_size: int = DEFAULT_PAGE_SIZE
    content_type: str | None = None
    status: int | None = None
    oci_subject: bool = True

    def __post_init__(self) -> None:
        if self.api not in ("ok", "absent"):
            raise ValueError(f"api must be 'ok' or 'absent', got {self.api!r}")
        if self.page_size < 1:
            raise ValueError(f"page_size must be 1 or more, got {self.page_size}")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(f"status must be an error status 400-599, got {self.status}")
        if self.content_type is not None and not self.content_type.strip():
            raise ValueError("content_type must not be empty (None keeps the OCI index type)")


class ReferrersApiProxy(LoopbackService):
    """An HTTP/1.1 proxy on 127.0.0.1 adding the referrers API to a loopback registry.

    Use as a context manager (or ``start``/``stop``). Client connections are kept alive; each
    request is forwarded on a fresh connection to the registry with a timeout, its body streamed
    (a manifest PUT, which is read to find ``subject``, is capped at :data:`MAX_MANIFEST_BYTES`).
    The ``Host`` header is forwarded as sent, so the registry's ``Location`` headers already name
    the proxy; absolute ones naming the registry are rewritten to the proxy anyway.

    Args:
        upstream: ``(host, port)`` or ``"HOST:PORT"`` of the registry (plain HTTP, loopback only).
        api: ``"ok"`` serves the referrers API; ``"absent"`` acts like Distribution 2.8: referrers
            requests go to the registry (which answers a plain-text 404) and manifest PUTs get no
            ``OCI-Subject`` (descriptors are still remembered, so switching to ``"ok"`` later
            lists them, like a registry that gained the API).
        filtering: Apply ``?artifactType=`` and say so with ``OCI-Filters-Applied: artifactType``;
            False ignores the filter and sends no such header (filtering is a SHOULD).
        page_size: Descriptors per referrers answer; more are linked with ``rel="next"``.
        content_type: Answer referrers requests with this Content-Type instead of the OCI index
            type (``application/json``: a registry that does not really support the API).
        status: Answer referrers requests with this error status (and a distribution-style JSON
            error) instead of the list, after the registry has authorized the request.
        oci_subject: Send ``OCI-Subject`` on accepted manifest PUTs with a subject.
        port: Port to listen on; 0 asks the kernel for a free one (see ``port`` after start).

    Raises:
        ValueError: An upstream that is not loopback HOST:PORT, or an invalid option.
    """

    def __init__(
        self,
        upstream: tuple[str, int] | str,
        *,
        api: ApiMode = "ok",
        filtering: bool = True,
        page_size: int = DEFAULT_PAGE_SIZE,
        content_type: str | None = None,
        status: int | None = None,
        oci_subject: bool = True,
        port: int = 0,
    ) -> None:
        text = upstream if isinstance(upstream, str) else f"{upstream[0]}:{upstream[1]}"
        self.upstream: tuple[str, int] = loopback_address(text)
        self._options = ReferrersApiOptions(
            api=api,
            filtering=filtering,
            page_size=page_size,
            content_type=content_type,
            status=status,
            oci_subject=oci_subject,
        )
        self._lock = threading.Lock()
        # (repository, subject digest) -> {referrer digest: descriptor}, in push order.
        self._referrers: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._counts: Counter[tuple[str, RequestKind]] = Counter()
        self._connections = 0
        self._repositories: set[str] = set()  # where the registry accepted a manifest PUT
        self._server = LoopbackServer(_Handler, self, port=port)

    # lifecycle and addresses -------------------------------------------------------------------

    @property
    def upstream_url(self) -> str:
        """``http://HOST:PORT`` of the registry behind the proxy."""
        return f"http://{self.upstream[0]}:{self.upstream[1]}"

    # options -----------------------------------------------------------------------------------

    @property
    def options(self) -> ReferrersApiOptions:
        """The options in force."""
        with self._lock:
            return self._options

    def configure(self, **changes: Any) -> ReferrersApiOptions:
        """Change options while running (e.g. ``configure(api="absent")``); returns the new ones.

        Raises:
            TypeError: An unknown option name.
            ValueError: An invalid value; the options in force are then unchanged.
        """
        with self._lock:
            self._options = dataclasses.replace(self._options, **changes)
            return self._options

    # the request counter -----------------------------------------------------------------------

    @property
    def counts(self) -> Counter[tuple[str, RequestKind]]:
        """A copy of the tally of requests received, keyed by (method, kind)."""
        with self._lock:
            return Counter(self._counts)

    def count(self, method: str | None = None, kind: RequestKind | str | None = None) -> int:
        """How many requests were received with this method and/or of this kind (None: any)."""
        wanted_kind = None if kind is None else RequestKind(kind)
        with self._lock:
            return sum(
                n
                for (m, k), n in self._counts.items()
                if (method is None or m == method.upper())
                and (wanted_kind is None or k is wanted_kind)
            )

    @property
    def connections(self) -> int:
        """Client connections accepted since the last ``reset_counts`` (keep-alive shows here)."""
        with self._lock:
            return self._connections

    def reset_counts(self) -> None:
        """Start counting requests and connections from zero."""
        with self._lock:
            self._counts.clear()
            self._connections = 0

    # remembered referrers ----------------------------------------------------------------------

    def referrers(self, repository: str, subject: str) -> list[dict[str, Any]]:
        """Copies of the descriptors remembered for ``subject`` in ``repository``, in push order."""
        with self._lock:
            found = self._referrers.get((repository, subject), {})
            return [json.loads(json.dumps(d)) for d in found.values()]

    def _connected(self) -> None:
        with self._lock:
            self._connections += 1

    def _record(self, method: str, kind: RequestKind) -> None:
        with self._lock:
            self._counts[(method, kind)] += 1

    def _pushed_to(self, repository: str) -> None:
        with self._lock:
            self._repositories.add(repository)

    def _knows(self, repository: str) -> bool:
        with self._lock:
            return repository in self._repositories

    def _remember(self, repository: str, subject: str, descriptor: dict[str, Any]) -> None:
        with self._lock:
            self._referrers.setdefault((repository, subject), {})[descriptor["digest"]] = descriptor

    def _forget(self, repository: str, digest: str) -> None:
        with self._lock:
            for (repo, _subject), found in self._referrers.items():
                if repo == repository:
                    found.pop(digest, None)

    def _rewrite_location(self, location: str) -> str:
        """Point an absolute URL at the registry to the proxy instead."""
        host, port = self.upstream
        for prefix in (f"http://{host}:{port}", f"http://localhost:{port}"):
            if location.startswith(prefix + "/") or location == prefix:
                return self.url + location[len(prefix) :]
        return location


class _Handler(BaseHTTPRequestHandler):
    """One client connection: serves referrers requests, forwards everything else."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    server_version = "devtools-referrers-api"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: ``counts`` is the log."""

    def setup(self) -> None:
        """Count the connection, then let the base class set up its streams."""
        self._proxy._connected()
        super().setup()

    @property
    def _proxy(self) -> ReferrersApiProxy:
        owner: ReferrersApiProxy = self.server.owner  # type: ignore[attr-defined]
        return owner

    def _serve(self) -> None:
        """Every method: count, then answer a referrers request or forward."""
        proxy = self._proxy
        where = route(self.path)
        proxy._record(self.command, where.kind)
        options = proxy.options
        if where.kind is RequestKind.REFERRERS and options.api == "ok":
            self._referrers_answer(where, options)
        elif where.kind is RequestKind.MANIFEST and self.command == "PUT":
            self._manifest_put(where, options)
        elif where.kind is RequestKind.MANIFEST and self.command == "DELETE":
            upstream = self._forward_streamed()
            if upstream is not None and upstream.response.status == 202 and where.repository:
                reference = where.reference or ""
                if _DIGEST.fullmatch(reference):
                    proxy._forget(where.repository, reference)
            self._finish(upstream)
        else:
            self._finish(self._forward_streamed())

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve  # noqa: N815

    # the referrers API -------------------------------------------------------------------------

    def _referrers_answer(self, where: Route, options: ReferrersApiOptions) -> None:
        """distribution-spec "Listing Referrers", after the registry authorized the request."""
        self._discard_body()
        if self.command not in ("GET", "HEAD"):
            self._error(405, "the referrers API answers GET only")
            return
        repository, subject = where.repository or "", where.reference or ""
        if not _DIGEST.fullmatch(subject):
            self._error(400, f"not a digest: {subject!r}", code="DIGEST_INVALID")
            return
        if self._authorize(repository, subject) is not None:
            return
        if options.status is not None:
            self._error(options.status, "referrers API refused by devtools option 'status'")
            return
        query = parse_qs(urlsplit(self.path).query)
        wanted = (query.get("artifactType") or [""])[0]
        offset_text = (query.get("offset") or ["0"])[0]
        offset = int(offset_text) if offset_text.isdigit() else 0
        listed = self._proxy.referrers(repository, subject)
        headers: dict[str, str] = {}
        if wanted and options.filtering:
            listed = [d for d in listed if d.get("artifactType") == wanted]
            headers["OCI-Filters-Applied"] = "artifactType"
        page = listed[offset : offset + options.page_size]
        if offset + options.page_size < len(listed):
            params = {"artifactType": wanted} if wanted else {}
            params["offset"] = str(offset + options.page_size)
            target = f"/v2/{repository}/referrers/{subject}?{urlencode(params)}"
            headers["Link"] = f'<{target}>; rel="next"'
        body = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": page},
            separators=(",", ":"),
        ).encode()
        headers["Content-Type"] = options.content_type or OCI_INDEX
        self._answer(200, body, headers)

    def _authorize(self, repository: str, subject: str) -> int | None:
        """Ask the registry whether this client may read ``repository``; None when it may.

        Otherwise the registry's answer (a 401 with its challenge, a 404 NAME_UNKNOWN, ...) has been
        relayed and its status is returned. A ``tags/list`` needs the same pull scope a referrers
        request does, so its challenge names the scope a client should ask its token for. Its 404
        does not prove the repository unknown: Distribution answers NAME_UNKNOWN for a repository
        that holds only untagged manifests (a copy by digest), so the repository also counts as
        found when the subject is in it or a manifest was pushed to it through the proxy.
        """
        asked = self._ask(f"/v2/{repository}/tags/list")
        if asked is None:
            return 502
        status, headers, body = asked
        if status == 404 and self._proxy._knows(repository):
            return None
        if status == 404:
            subject_asked = self._ask(f"/v2/{repository}/manifests/{subject}", head=True)
            if subject_asked is None:
                return 502
            if subject_asked[0] == 200:
                return None
        if status == 200:
            return None
        relayed = {
            name: value
            for name, value in headers
            if name.lower()
            in ("www-authenticate", "content-type", "docker-distribution-api-version")
        }
        self._answer(status, body, relayed)
        return status

    def _ask(
        self, path: str, *, head: bool = False
    ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """One request of the proxy's own to the registry, with the client's Authorization.

        Returns:
            ``(status, headers, body)`` with the body capped, or None when the registry could not
            be reached (a 502 has then been answered).
        """
        headers = {"Host": self.headers.get("Host") or self._upstream_host(), "Accept": _ACCEPT}
        if self.headers.get("Authorization"):
            headers["Authorization"] = self.headers["Authorization"]
        connection = self._upstream_connection()
        try:
            connection.request("HEAD" if head else "GET", path, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read(_MAX_ERROR_BODY)
        except (OSError, http.client.HTTPException):
            self.close_connection = True
            self._error(502, "registry unreachable", code="UNAVAILABLE")
            return None
        finally:
            connection.close()

    # manifests ---------------------------------------------------------------------------------

    def _manifest_put(self, where: Route, options: ReferrersApiOptions) -> None:
        """Forward the PUT with its body read (capped); remember a referrer the registry accepted."""
        try:
            body = self._read_body(MAX_MANIFEST_BYTES)
        except ValueError as exc:
            self.close_connection = True
            self._error(413, str(exc))
            return
        upstream = self._forward(body)
        extra: dict[str, str] = {}
        if upstream is not None and upstream.response.status == 201 and where.repository:
            self._proxy._pushed_to(where.repository)
            digest = upstream.response.getheader("Docker-Content-Digest") or _sha256(body)
            found = referrer_descriptor(body, digest, self.headers.get("Content-Type"))
            if found is not None:
                subject, descriptor = found
                self._proxy._remember(where.repository, subject, descriptor)
                # distribution-spec "Pushing Manifests with Subject": the header tells the client
                # the registry keeps the list, so it must not maintain the fallback tag.
                if options.api == "ok" and options.oci_subject:
                    extra["OCI-Subject"] = subject
        self._finish(upstream, extra)

    # forwarding --------------------------------------------------------------------------------

    def _upstream_host(self) -> str:
        host, port = self._proxy.upstream
        return f"{host}:{port}"

    def _upstream_connection(self) -> http.client.HTTPConnection:
        host, port = self._proxy.upstream
        return http.client.HTTPConnection(host, port, timeout=UPSTREAM_TIMEOUT_S)

    def _forwarded_headers(self) -> list[tuple[str, str]]:
        """The request's end-to-end headers, Host included as the client sent it."""
        forwarded = [
            (name, value)
            for name, value in self.headers.items()
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length"
        ]
        if self.headers.get("Host") is None:
            forwarded.append(("Host", self._upstream_host()))
        return forwarded

    def _forward_streamed(self) -> _Upstream | None:
        """Forward the request with its body streamed as it arrives (uploads may be large)."""
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length = self.headers.get("Content-Length")
        connection = self._upstream_connection()
        try:
            connection.putrequest(
                self.command, self.path, skip_host=True, skip_accept_encoding=True
            )
            for name, value in self._forwarded_headers():
                connection.putheader(name, value)
            if chunked:
                connection.putheader("Transfer-Encoding", "chunked")
            elif length is not None:
                connection.putheader("Content-Length", length)
            connection.endheaders()
            for data in self._body_chunks():
                connection.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            if chunked:
                connection.send(b"0\r\n\r\n")
            return _Upstream(connection, connection.getresponse())
        except (OSError, http.client.HTTPException, ValueError):
            connection.close()
            self.close_connection = True
            return None

    def _forward(self, body: bytes) -> _Upstream | None:
        """Forward the request with a body already read."""
        connection = self._upstream_connection()
        try:
            connection.putrequest(
                self.command, self.path, skip_host=True, skip_accept_encoding=True
            )
            for name, value in self._forwarded_headers():
                connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            return _Upstream(connection, connection.getresponse())
        except (OSError, http.client.HTTPException):
            connection.close()
            self.close_connection = True
            return None

    def _finish(self, upstream: _Upstream | None, extra: dict[str, str] | None = None) -> None:
        """Relay the registry's answer (or a 502 when there was none), then close its connection."""
        if upstream is None:
            self._error(502, "registry unreachable", code="UNAVAILABLE")
            return
        try:
            self._relay(upstream.response, extra or {})
        finally:
            upstream.connection.close()

    def _relay(self, response: http.client.HTTPResponse, extra: dict[str, str]) -> None:
        self.send_response(response.status, response.reason)
        length = response.getheader("Content-Length")
        for name, value in response.getheaders():
            lower = name.lower()
            if lower in _HOP_BY_HOP or lower == "content-length":
                continue
            if lower == "location":
                value = self._proxy._rewrite_location(value)  # noqa: PLW2901
            self.send_header(name, value)
        for name, value in extra.items():
            self.send_header(name, value)
        bodiless = self.command == "HEAD" or response.status in (204, 304)
        if length is not None:
            self.send_header("Content-Length", length)
        elif not bodiless:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if bodiless:
            return
        try:
            while data := response.read(_CHUNK):
                self.wfile.write(
                    data if length is not None else b"%x\r\n%s\r\n" % (len(data), data)
                )
            if length is None:
                self.wfile.write(b"0\r\n\r\n")
        except (OSError, http.client.HTTPException):
            # The registry failed mid-body: the status is out, so closing is the only way left
            # to show the client its answer is truncated.
            self.close_connection = True

    # request bodies ----------------------------------------------------------------------------

    def _body_chunks(self) -> Iterator[bytes]:
        """The request body as it arrives, de-chunked when the client sent it chunked.

        Raises:
            ValueError: A malformed chunk size line.
            ConnectionError: The client went away mid-body.
        """
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size_line = self.rfile.readline(_MAX_CHUNK_LINE)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(_MAX_CHUNK_LINE) not in (b"\r\n", b"\n", b""):
                        pass  # trailers, up to the blank line that ends the message
                    return
                yield from self._exactly(size)
                self.rfile.readline(_MAX_CHUNK_LINE)  # the CRLF after a chunk
        yield from self._exactly(int(self.headers.get("Content-Length") or 0))

    def _exactly(self, length: int) -> Iterator[bytes]:
        while length > 0:
            data = self.rfile.read(min(_CHUNK, length))
            if not data:
                raise ConnectionError("client closed mid-body")
            length -= len(data)
            yield data

    def _read_body(self, limit: int) -> bytes:
        """The whole request body, refusing one over ``limit`` bytes before reading past it.

        Raises:
            ValueError: The body is (or announces itself) larger than ``limit``.
        """
        announced = self.headers.get("Content-Length")
        if announced is not None and int(announced) > limit:
            raise ValueError(f"manifest of {announced} bytes is over the {limit}-byte limit")
        parts: list[bytes] = []
        size = 0
        for data in self._body_chunks():
            size += len(data)
            if size > limit:
                raise ValueError(f"manifest is over the {limit}-byte limit")
            parts.append(data)
        return b"".join(parts)

    def _discard_body(self) -> None:
        for _ in self._body_chunks():
            pass

    # answers of the proxy's own ----------------------------------------------------------------

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        if not any(name.lower() == "content-type" for name in headers):
            self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str, *, code: str | None = None) -> None:
        """A distribution-style JSON error, so clients parse it as they would the registry's."""
        chosen = code or _ERROR_CODES.get(status, "UNKNOWN")
        body = json.dumps({"errors": [{"code": chosen, "message": message, "detail": None}]})
        self._answer(status, body.encode(), {})


@dataclass(frozen=True, slots=True)
class _Upstream:
    """A registry answer and the connection it arrived on (closed once relayed)."""

    connection: http.client.HTTPConnection
    response: http.client.HTTPResponse


def _sha256(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``, for a registry that sends no ``Docker-Content-Digest``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the proxy until SIGINT, SIGTERM or ``--max-seconds``; print where it listens."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.referrers_api",
        description="HTTP proxy on 127.0.0.1 adding the OCI 1.1 referrers API to a registry.",
    )
    parser.add_argument("--upstream", required=True, help="HOST:PORT of a loopback registry")
    parser.add_argument(
        "--listen", type=int, default=0, help="port on 127.0.0.1 (default: a free one)"
    )
    parser.add_argument("--api", choices=("ok", "absent"), default="ok")
    parser.add_argument("--no-filtering", action="store_true", help="ignore ?artifactType=")
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    parser.add_argument("--content-type", default=None, help="Content-Type of referrers answers")
    parser.add_argument("--status", type=int, default=None, help="error status for referrers")
    parser.add_argument("--no-oci-subject", action="store_true", help="never send OCI-Subject")
    parser.add_argument(
        "--max-seconds", type=float, default=None, help="exit after this long (default: never)"
    )
    args = parser.parse_args(argv)
    try:
        proxy = ReferrersApiProxy(
            args.upstream,
            api=args.api,
            filtering=not args.no_filtering,
            page_size=args.page_size,
            content_type=args.content_type,
            status=args.status,
            oci_subject=not args.no_oci_subject,
            port=args.listen,
        )
        proxy.start()
    except (ValueError, OSError) as exc:
        print(f"referrers_api: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    host, port = proxy.upstream
    print(f"referrers api proxy {proxy.host} -> {host}:{port} (api {args.api})", flush=True)
    try:
        stop.wait(args.max_seconds)
    finally:
        proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
