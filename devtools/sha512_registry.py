"""A read-only registry on 127.0.0.1 that names its manifests with ``sha512:`` digests.

Distribution (Debian's docker-registry 2.8) cannot stand in for such a registry: it computes only
sha256 for manifests, answers 404 to a GET or HEAD by ``sha512:`` and refuses a PUT by one with
``DIGEST_INVALID``. Registries built on other storage may answer in sha512 (the OCI image spec
registers it), so clients must compare content, not the spelling of digests. This shim serves fixed
images: a manifest by tag or by its ``sha512:`` digest with ``Docker-Content-Digest: sha512:...``;
by its ``sha256:`` digest too (an index's descriptors name its children that way), then answering in
sha256, the algorithm asked for (distribution spec, "Pulling manifests": the digest header matches the
digest requested); blobs by the digests their descriptors give. No auth, no writes.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from devtools.images import Image
from devtools.loopback_http import IDLE_TIMEOUT_S, LOOPBACK, LoopbackServer

_MANIFEST = re.compile(r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)$")
_BLOB = re.compile(r"^/v2/(?P<repo>.+)/blobs/(?P<digest>[^/]+)$")


def sha512_digest(data: bytes) -> str:
    """``sha512:<hex>`` of ``data``."""
    return "sha512:" + hashlib.sha512(data).hexdigest()


class Sha512Registry:
    """Serves images under ``repository:tag``, naming every manifest by its sha512 digest.

    Thread-safe: a test may :meth:`put` other content under a tag while clients read.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tags: dict[tuple[str, str], Image] = {}
        self._manifests: dict[tuple[str, str], Image] = {}
        self._blobs: dict[tuple[str, str], bytes] = {}
        self._server = LoopbackServer(_Handler, self)

    def put(self, repository: str, tag: str, image: Image) -> str:
        """Serve ``image`` (with its children and blobs) under ``repository:tag``; returns its
        sha512 digest."""
        with self._lock:
            self._tags[(repository, tag)] = image
            for manifest in image.all_manifests():
                self._manifests[(repository, sha512_digest(manifest.manifest))] = manifest
                self._manifests[(repository, manifest.digest)] = manifest
            for blob in image.all_blobs():
                self._blobs[(repository, blob.digest)] = blob.data
        return sha512_digest(image.manifest)

    def manifest(self, repository: str, reference: str) -> Image | None:
        """The image a tag or a digest names, or None."""
        with self._lock:
            if ":" in reference:
                return self._manifests.get((repository, reference))
            return self._tags.get((repository, reference))

    def blob(self, repository: str, digest: str) -> bytes | None:
        """A blob's bytes, or None."""
        with self._lock:
            return self._blobs.get((repository, digest))

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the registry part of an image reference."""
        return f"{LOOPBACK}:{self._server.port}"

    @property
    def url(self) -> str:
        """Base URL including scheme."""
        return f"http://{self.host}"

    def start(self) -> None:
        """Start listening."""
        self._server.start()

    def stop(self) -> None:
        """Stop listening and drop live connections."""
        self._server.stop()

    def __enter__(self) -> Sha512Registry:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    server_version = "devtools-sha512-registry"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet."""

    @property
    def _owner(self) -> Sha512Registry:
        owner: Sha512Registry = self.server.owner  # type: ignore[attr-defined]
        return owner

    def do_GET(self) -> None:
        """GET and HEAD of ``/v2/``, manifests and blobs; anything else is 404 or 405."""
        path = self.path.split("?", 1)[0]
        if path in ("/v2", "/v2/"):
            self._answer(200, b"{}", "application/json")
            return
        match = _MANIFEST.match(path)
        if match:
            image = self._owner.manifest(match["repo"], match["ref"])
            if image is None:
                self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
                return
            asked = match["ref"]
            digest = asked if asked.startswith("sha256:") else sha512_digest(image.manifest)
            self._answer(200, image.manifest, image.media_type, {"Docker-Content-Digest": digest})
            return
        match = _BLOB.match(path)
        if match:
            data = self._owner.blob(match["repo"], match["digest"])
            if data is None:
                self._error(404, "BLOB_UNKNOWN", "blob unknown to registry")
                return
            self._answer(
                200, data, "application/octet-stream", {"Docker-Content-Digest": match["digest"]}
            )
            return
        self._error(404, "NAME_UNKNOWN", "not found")

    do_HEAD = do_GET  # noqa: N815

    def do_PUT(self) -> None:
        """This registry is read-only."""
        self.close_connection = True
        self._error(405, "UNSUPPORTED", "read-only registry")

    do_POST = do_PUT  # noqa: N815
    do_PATCH = do_PUT  # noqa: N815
    do_DELETE = do_PUT  # noqa: N815

    def _error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self._answer(status, body, "application/json")

    def _answer(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
