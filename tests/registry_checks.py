"""Checks against a registry made with independent clients (http.client, skopeo), never promoter.

Tests seed registries and verify what promoter wrote through these, so a bug in promoter's own
client cannot hide itself.
"""

from __future__ import annotations

import http.client
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

from devtools import images
from devtools.fault_proxy import Hit
from devtools.registry import RegistryProcess

#: An upload session's requests after the POST that opened it, by session id: (method, status).
SessionSteps = dict[str, list[tuple[str, int]]]


def push(registry: RegistryProcess, repo: str, image: images.Image, tag: str | None = "1.0") -> str:
    """Seed a registry with the harness's own pusher (not promoter)."""
    return images.push_image(
        registry.url,
        repo,
        image,
        tag,
        headers=registry.push_headers(repo),
        ssl_context=registry.ssl_context(),
    )


def head(registry: RegistryProcess, path: str) -> tuple[int, dict[str, str]]:
    """HEAD a registry path with the harness's credentials; (status, headers)."""
    repo = re.sub(r"^/v2/(.+)/(manifests|blobs)/[^/]+$", r"\1", path)
    conn = (
        http.client.HTTPSConnection(
            registry.host.split(":")[0], registry.port, context=registry.ssl_context(), timeout=10
        )
        if registry.tls
        else http.client.HTTPConnection(registry.host.split(":")[0], registry.port, timeout=10)
    )
    try:
        conn.request(
            "HEAD",
            path,
            headers={
                **registry.push_headers(repo),
                "Accept": ", ".join(
                    [
                        images.OCI_INDEX,
                        images.OCI_MANIFEST,
                        images.DOCKER_MANIFEST,
                        images.DOCKER_MANIFEST_LIST,
                    ]
                ),
            },
        )
        response = conn.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        conn.close()


def manifest_digest(registry: RegistryProcess, repo: str, ref: str) -> str | None:
    """The digest the registry serves for repo:ref, or None when it has no such manifest."""
    status, headers = head(registry, f"/v2/{repo}/manifests/{ref}")
    return headers.get("Docker-Content-Digest") if status == 200 else None


def has_blob(registry: RegistryProcess, repo: str, digest: str) -> bool:
    """Whether the registry has the blob in that repository."""
    return head(registry, f"/v2/{repo}/blobs/{digest}")[0] == 200


def skopeo_raw_digest(registry: RegistryProcess, ref: str) -> str:
    """The sha256 of the manifest bytes skopeo reads back (an independent client)."""
    raw = skopeo("inspect", "--raw", *registry.skopeo_flags(), f"docker://{registry.host}/{ref}")
    return images.sha256_digest(raw.stdout.encode())


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run Debian's skopeo, an independent registry client, with a bounded time."""
    done = subprocess.run(
        ["skopeo", "--insecure-policy", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def upload_sessions_end(hits: Iterable[Hit], where: str = "/blobs/uploads/") -> SessionSteps:
    """Check, from a FaultProxy's ``hits``, that every upload session the registry opened under
    ``where`` (a POST answered 202) was asked again and ends committed (PUT 201) or cancelled
    (DELETE 204), none left open; returns each session's later requests, (method, status) by id."""
    seen = list(hits)
    opened = [h for h in seen if h.method == "POST" and where in h.path and h.status == 202]
    steps: SessionSteps = {}
    for hit in seen:
        if where in hit.path and hit.method != "POST":
            session = hit.path.split("/uploads/")[1].split("?")[0]
            steps.setdefault(session, []).append((hit.method, hit.status))
    assert len(steps) == len(opened), seen  # every session opened was asked again...
    for session, done in steps.items():  # ...to commit or to cancel it
        assert ("PUT", 201) in done or ("DELETE", 204) in done, (session, done)
    return steps


def write_batch(path: Path, source: str, destination: str, repo: str, count: int) -> Path:
    """A ``copy --batch`` file at ``path``: ``SOURCE/REPO/appN:1.0 DESTINATION/REPO/appN`` for
    each N below ``count`` (the images a test pushed as ``REPO/appN:1.0``)."""
    path.write_text(
        "".join(f"{source}/{repo}/app{n}:1.0 {destination}/{repo}/app{n}\n" for n in range(count))
    )
    return path
