"""Checks against a registry made with independent clients (http.client, skopeo), never promoter.

Tests seed registries and verify what promoter wrote through these, so a bug in promoter's own
client cannot hide itself.
"""

from __future__ import annotations

import http.client
import re
import subprocess

from devtools import images
from devtools.registry import RegistryProcess


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
