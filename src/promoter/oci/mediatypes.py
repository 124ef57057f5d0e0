"""Media types of the manifests and blobs promoter handles."""

from __future__ import annotations

from enum import StrEnum


class MediaType(StrEnum):
    """Manifest media types (OCI image spec and Docker image manifest v2)."""

    DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
    DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
    OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
    OCI_INDEX = "application/vnd.oci.image.index.v1+json"
    DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
    DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"


#: Every manifest type we can copy; sent as Accept on every manifest request so a registry never
#: down-converts (Distribution would otherwise serve schema 1 to clients that do not accept schema 2).
MANIFEST_TYPES: tuple[MediaType, ...] = (
    MediaType.OCI_INDEX,
    MediaType.DOCKER_MANIFEST_LIST,
    MediaType.OCI_MANIFEST,
    MediaType.DOCKER_MANIFEST,
)
INDEX_TYPES = frozenset({MediaType.OCI_INDEX, MediaType.DOCKER_MANIFEST_LIST})
SCHEMA1_TYPES = frozenset({MediaType.DOCKER_SCHEMA1, MediaType.DOCKER_SCHEMA1_SIGNED})

MANIFEST_ACCEPT = ", ".join(MANIFEST_TYPES)
