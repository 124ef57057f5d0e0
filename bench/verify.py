"""Checking every copy: the destination must hold the source's digest, as promoter reports it too.

A HEAD of the destination manifest (accepting OCI and Docker manifests and lists) must give the
source digest, after promoter and after skopeo; promoter's ``-o json`` lines must name it as well.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from bench.measure import BenchError, Measured
from devtools import images
from devtools.registry import RegistryProcess

MANIFEST_ACCEPT = ", ".join(
    [images.OCI_INDEX, images.OCI_MANIFEST, images.DOCKER_MANIFEST_LIST, images.DOCKER_MANIFEST]
)
HTTP_TIMEOUT_S = 60.0  # every request of the benchmark is bounded

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def head_manifest_digest(base_url: str, repository: str, reference: str) -> str | None:
    """The destination's digest for ``repository:reference`` (None if absent)."""
    request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
        f"{base_url}/v2/{repository}/manifests/{reference}",
        method="HEAD",
        headers={"Accept": MANIFEST_ACCEPT},
    )
    try:
        with _NO_PROXY.open(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.headers.get("Docker-Content-Digest")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def get_manifest(base_url: str, repository: str, reference: str) -> bytes:
    """The manifest bytes of ``repository:reference`` (a tag or a digest)."""
    request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
        f"{base_url}/v2/{repository}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT}
    )
    with _NO_PROXY.open(request, timeout=HTTP_TIMEOUT_S) as response:
        body: bytes = response.read()
    return body


def expect_digest(registry: RegistryProcess, repository: str, tag: str, digest: str) -> None:
    found = head_manifest_digest(registry.url, repository, tag)
    if found != digest:
        raise BenchError(f"{registry.host}/{repository}:{tag} is {found}, expected {digest}")


def check_promoter_json(result: Measured, expected: dict[str, str]) -> None:
    """Each ``-o json`` line must name a destination we asked for with the source's digest."""
    seen: dict[str, str] = {}
    for line in result.stdout.splitlines():
        if line.strip():
            record = json.loads(line)
            if "error" in record:
                raise BenchError(f"promoter reported an error: {record}")
            seen[record["destination"]] = record["digest"]
    for destination, digest in expected.items():
        if seen.get(destination) != digest:
            raise BenchError(
                f"promoter -o json: {destination} -> {seen.get(destination)}, expected {digest}"
            )
