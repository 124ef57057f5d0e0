"""A registry that misbehaves on purpose: answers scripted per request, for tests of what promoter does
when a registry (or a proxy in front of one) is slow, stuck, endless or sly.

It serves images it was given (:meth:`HostileRegistry.add_image`) as a plain Distribution registry would
(pull side only: manifests and blobs by tag and digest, ``/v2/``, optionally behind a Bearer token realm
of its own; writes are refused with 405), optionally naming its manifests with ``sha512:`` digests, which
Distribution (Debian's docker-registry 2.8) cannot do: it computes only sha256 for manifests, answers 404
to a GET by ``sha512:`` and refuses a PUT by one with ``DIGEST_INVALID``. Registries on other storage may
answer in sha512 (the OCI image spec registers it), so clients must compare content, not spellings. It
applies the first matching :class:`Misbehaviour` instead when one is scripted: an endless
body, a status line dripped a byte at a time, a body that stops half way, a dropped connection, a
redirect. Every misbehaviour ends when the client goes away or the server stops, so a test never leaves
a thread behind. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import json
import re
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, NamedTuple

from devtools.images import Image, sha256_digest
from devtools.loopback_http import LOOPBACK, LoopbackServer

Action = Callable[["_Handler", bytes, str], None]
"""What a misbehaviour does: given the handler, the body it would have sent and its media type."""


class Seen(NamedTuple):
    """One request the registry received."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Misbehaviour:
    """A scripted answer for matching requests, applied ``times`` times."""

    method: str | None
    pattern: re.Pattern[str]
    action: Action
    times: int
    fired: int = field(default=0)
    started: threading.Event = field(default_factory=threading.Event)


class HostileRegistry:
    """The registry; use as a context manager.

    Args:
        token_realm: answer with a Bearer challenge whose realm is this server's ``/token`` (which
            hands out ``token_value``), as Docker Hub and GHCR do.
        manifest_digests: the algorithm manifests are named by (``Docker-Content-Digest``) when asked
            by tag or by a digest of that algorithm; asked by a ``sha256:`` digest (an index's
            descriptors name its children that way), the answer is in sha256, the algorithm asked
            for (distribution spec, "Pulling manifests").
    """

    def __init__(
        self,
        *,
        token_realm: bool = False,
        token_value: str = "hostile-token",  # noqa: S107 - a test token
        manifest_digests: str = "sha256",
    ) -> None:
        self.manifest_digests = manifest_digests
        self.token_realm = token_realm
        self.token_value = token_value
        self.seen: list[Seen] = []
        self._content: dict[str, tuple[bytes, str]] = {}  # "name/manifests/ref" or "name/blobs/d"
        self._rules: list[Misbehaviour] = []
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._server = LoopbackServer(_Handler, self)

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"{LOOPBACK}:{self._server.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"

    def __enter__(self) -> HostileRegistry:
        self.stopping.clear()
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.stop()

    def add_image(self, name: str, tag: str, image: Image) -> str:
        """Serve ``image`` (and every manifest and blob under it) as ``name:tag``, replacing what
        the tag held; returns its digest as this registry names it."""
        with self._lock:
            for manifest in image.all_manifests():
                for digest in {manifest.digest, self._name(manifest.manifest)}:
                    self._content[f"{name}/manifests/{digest}"] = (
                        manifest.manifest,
                        manifest.media_type,
                    )
            for blob in image.all_blobs():
                self._content[f"{name}/blobs/{blob.digest}"] = (
                    blob.data,
                    "application/octet-stream",
                )
            self._content[f"{name}/manifests/{tag}"] = (image.manifest, image.media_type)
        return self._name(image.manifest)

    def _name(self, data: bytes) -> str:
        """The digest of ``data`` in this registry's algorithm for manifests."""
        return f"{self.manifest_digests}:{hashlib.new(self.manifest_digests, data).hexdigest()}"

    def misbehave(
        self, method: str | None, path_regex: str, action: Action, *, times: int = 1_000_000
    ) -> Misbehaviour:
        """Answer the next ``times`` requests whose path matches ``path_regex`` (``re.search``) with
        ``action`` (see the module's action makers: :func:`endless`, :func:`drip_head`, ...)."""
        rule = Misbehaviour(method, re.compile(path_regex), action, times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def requests(self, method: str, path_regex: str) -> list[Seen]:
        """The requests received so far that match."""
        pattern = re.compile(path_regex)
        with self._lock:
            return [s for s in self.seen if s.method == method and pattern.search(s.path)]

    def _rule_for(self, method: str, path: str) -> Misbehaviour | None:
        with self._lock:
            for rule in self._rules:
                if rule.fired >= rule.times:
                    continue
                if rule.method is not None and rule.method != method:
                    continue
                if rule.pattern.search(path):
                    rule.fired += 1
                    return rule
        return None

    def _lookup(self, path: str) -> tuple[bytes, str] | None:
        match = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^/]+)", path.split("?", 1)[0])
        if match is None:
            return None
        with self._lock:
            return self._content.get(f"{match[1]}/{match[2]}/{match[3]}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hostile-registry"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: tests read ``seen`` instead."""

    @property
    def registry(self) -> HostileRegistry:
        owner: HostileRegistry = self.server.owner  # type: ignore[attr-defined]
        return owner

    def _serve(self) -> None:
        """Every method: a scripted misbehaviour, or what a read-only registry answers."""
        registry = self.registry
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with registry._lock:
            registry.seen.append(Seen(self.command, self.path, dict(self.headers.items())))
        found = registry._lookup(self.path)
        body, media_type = found if found is not None else (b"", "application/json")
        rule = registry._rule_for(self.command, self.path)
        if rule is not None:
            rule.started.set()
            # Decided before the action answers, so a well-formed answer says "Connection: close"
            # (answer()): a client must not send its next request on a connection the server is
            # about to close (the race a keep-alive client otherwise loses now and then).
            self.close_connection = True
            rule.action(self, body, media_type)
            return
        if registry.token_realm and self.path.startswith("/token"):
            self.answer(200, json.dumps({"token": registry.token_value}).encode())
            return
        if registry.token_realm and self.headers.get("Authorization") != (
            f"Bearer {registry.token_value}"
        ):
            realm = f"http://{registry.host}/token"
            self.answer(
                401,
                b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="hostile"'},
            )
            return
        if self.path.split("?", 1)[0] == "/v2/":
            self.answer(200, b"{}")
            return
        if self.command not in ("GET", "HEAD"):
            self.answer(405, b'{"errors":[{"code":"UNSUPPORTED","message":"read-only"}]}')
            return
        if found is None:
            self.answer(404, b'{"errors":[{"code":"NOT_FOUND","message":"unknown"}]}')
            return
        asked = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
        if "/blobs/" in self.path or asked.startswith("sha256:"):
            digest = sha256_digest(body)
        else:
            digest = registry._name(body)
        self.answer(200, body, media_type, {"Docker-Content-Digest": digest})

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

    # -- building blocks for actions ------------------------------------------------------------

    def answer(
        self,
        status: int,
        body: bytes,
        media_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        """A complete, well-formed answer."""
        self.send_response(status)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def hold(self) -> None:
        """Keep the connection open, sending nothing, until the client goes away or the server
        stops."""
        connection: socket.socket = self.connection
        while not self.registry.stopping.is_set():
            readable, _, _ = select.select([connection], [], [], 0.05)
            if readable:
                try:
                    if not connection.recv(1024):
                        return
                except OSError:
                    return

    def drip(self, data: bytes, size: int, every: float) -> None:
        """Send ``data`` ``size`` bytes every ``every`` seconds, until the client goes away or the
        server stops."""
        try:
            for start in range(0, len(data), size):
                self.wfile.write(data[start : start + size])
                self.wfile.flush()
                if not self.pause(every):
                    return
        except OSError:
            return

    def pause(self, seconds: float) -> bool:
        """Wait; False when the server is stopping."""
        return not self.registry.stopping.wait(seconds)


# -- actions -------------------------------------------------------------------------------------


def endless(status: int = 200, piece: bytes = b" " * 65536) -> Action:
    """Headers without a length, then ``piece`` again and again until the client goes away."""

    def act(handler: _Handler, body: bytes, media_type: str) -> None:  # noqa: ARG001
        handler.send_response(status)
        handler.send_header("Content-Type", media_type)
        if status == 401:
            realm = f"http://{handler.registry.host}/token"
            handler.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="hostile"')
        handler.send_header("Connection", "close")
        handler.end_headers()
        try:
            while not handler.registry.stopping.is_set():
                handler.wfile.write(piece)
        except OSError:
            return

    return act


def drip_head(every: float) -> Action:
    """The status line and headers a byte every ``every`` seconds, never finished."""

    def act(handler: _Handler, body: bytes, media_type: str) -> None:  # noqa: ARG001
        handler.drip(b"HTTP/1.1 200 OK\r\n" + b"X-Drip: " + b"." * 1_000_000, 1, every)

    return act


def drip_body(every: float, size: int = 1) -> Action:
    """The right headers, then the body ``size`` bytes every ``every`` seconds."""

    def act(handler: _Handler, body: bytes, media_type: str) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", media_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.drip(body, size, every)

    return act


def stall(after: int) -> Action:
    """The right headers and the first ``after`` bytes of the body, then nothing, the connection
    held open."""

    def act(handler: _Handler, body: bytes, media_type: str) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", media_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            handler.wfile.write(body[:after])
            handler.wfile.flush()
        except OSError:
            return
        handler.hold()

    return act


def drop() -> Action:
    """Close the connection without an answer."""

    def act(handler: _Handler, body: bytes, media_type: str) -> None:  # noqa: ARG001
        handler.close_connection = True

    return act


def respond(status: int, body: bytes, headers: dict[str, str] | None = None) -> Action:
    """A well-formed answer with this status and body (a token answer, an error in any shape)."""

    def act(handler: _Handler, _body: bytes, media_type: str) -> None:  # noqa: ARG001
        handler.answer(status, body, headers=headers)

    return act


def redirect(location: str, status: int = 307) -> Action:
    """A redirect to ``location``."""

    def act(handler: _Handler, body: bytes, media_type: str) -> None:  # noqa: ARG001
        handler.answer(status, b"", headers={"Location": location})

    return act
