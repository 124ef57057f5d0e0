"""Digests and manifest parsing: pure values from bytes, schema 1 refused."""

from __future__ import annotations

import hashlib
import json

import pytest

from promoter.errors import DigestMismatchError, InvalidDigestError, UnsupportedManifestError
from promoter.oci.digest import Digest, DigestVerifier, compute_digest, parse_digest, verify_bytes
from promoter.oci.manifest import parse_manifest
from promoter.oci.mediatypes import MediaType

HEX = "b" * 64


def _desc(media_type: str, data: bytes, **extra: object) -> dict[str, object]:
    return {
        "mediaType": media_type,
        "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
        "size": len(data),
        **extra,
    }


def test_digest_parse_round_trip_and_errors() -> None:
    """Digests parse to values whose str() round-trips; malformed ones raise InvalidDigestError."""
    assert str(parse_digest(f"sha256:{HEX}")) == f"sha256:{HEX}"
    assert parse_digest(f"sha256:{HEX}").short == HEX[:12]
    for bad in ("sha256:xyz", f"sha256:{HEX}0", f"SHA256:{HEX}", f"md5:{HEX[:32]}", HEX):
        with pytest.raises(InvalidDigestError):
            parse_digest(bad)


def test_verifier_accepts_matching_stream_and_rejects_others() -> None:
    """A streamed verifier passes the right bytes and names both digests on a mismatch or short read."""
    data = b"hello world" * 1000
    digest = compute_digest(data)
    verifier = DigestVerifier(digest, len(data))
    for i in range(0, len(data), 777):
        verifier.update(data[i : i + 777])
    verifier.verify("blob")
    with pytest.raises(DigestMismatchError, match="hashes to sha256:"):
        verify_bytes(data[:-1] + b"X", digest, "blob")
    short = DigestVerifier(digest, len(data))
    short.update(data[:10])
    with pytest.raises(DigestMismatchError, match="expected 11000 bytes"):
        short.verify("blob")


def test_sha512_is_supported() -> None:
    """sha512 digests are computed and verified too."""
    digest = compute_digest(b"x", "sha512")
    assert digest == Digest("sha512", hashlib.sha512(b"x").hexdigest())
    verify_bytes(b"x", digest, "blob")


def test_image_manifest_lists_config_then_layers_and_foreign_urls() -> None:
    """An image manifest yields config and layers in order; a layer with urls is foreign."""
    config, layer, foreign = b"{}", b"layer", b"foreign"
    doc = {
        "schemaVersion": 2,
        "mediaType": MediaType.DOCKER_MANIFEST,
        "config": _desc("application/vnd.docker.container.image.v1+json", config),
        "layers": [
            _desc("application/vnd.docker.image.rootfs.diff.tar.gzip", layer),
            _desc(
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                foreign,
                urls=["https://example.invalid/l"],
            ),
        ],
    }
    manifest = parse_manifest(json.dumps(doc).encode(), None, "x")
    assert manifest.media_type == MediaType.DOCKER_MANIFEST
    assert not manifest.is_index
    assert [b.size for b in manifest.blobs] == [2, 5, 7]
    assert [b.is_foreign for b in manifest.blobs] == [False, False, True]


def test_index_children_and_platforms() -> None:
    """An index yields its children with their platforms; media type from the header if absent."""
    doc = {
        "schemaVersion": 2,
        "manifests": [
            _desc(MediaType.OCI_MANIFEST, b"a", platform={"os": "linux", "architecture": "amd64"}),
            _desc(
                MediaType.OCI_MANIFEST,
                b"b",
                platform={"os": "linux", "architecture": "arm64", "variant": "v8"},
            ),
        ],
    }
    manifest = parse_manifest(json.dumps(doc).encode(), MediaType.OCI_INDEX, "x")
    assert manifest.is_index
    assert [m.platform for m in manifest.manifests] == ["linux/amd64", "linux/arm64/v8"]


def test_artifact_with_any_config_type_and_subject() -> None:
    """An OCI artifact with a non-image config type parses; its subject is kept."""
    doc = {
        "schemaVersion": 2,
        "mediaType": MediaType.OCI_MANIFEST,
        "artifactType": "application/vnd.example+json",
        "config": _desc("application/vnd.cncf.helm.config.v1+json", b"{}"),
        "layers": [_desc("application/vnd.cncf.helm.chart.content.v1.tar+gzip", b"chart")],
        "subject": _desc(MediaType.OCI_MANIFEST, b"subject"),
    }
    manifest = parse_manifest(json.dumps(doc).encode(), "application/octet-stream", "x")
    assert manifest.media_type == MediaType.OCI_MANIFEST
    assert len(manifest.blobs) == 2
    assert manifest.subject is not None


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        (b'{"schemaVersion": 1, "name": "x", "fsLayers": []}', None, "schema 1"),
        (b"{}", MediaType.DOCKER_SCHEMA1_SIGNED, "schema 1"),
        (b"not json", None, "not valid JSON"),
        (b"[]", None, "not a JSON object"),
        (b'{"mediaType": "application/x-unknown"}', None, "unknown manifest media type"),
        (b'{"layers": [{"digest": "sha256:zz", "size": 1}]}', None, "malformed descriptor"),
        (b'{"layers": {"a": 1}}', None, "not a list"),
    ],
)
def test_unsupported_manifests_are_refused(
    body: bytes, content_type: str | None, fragment: str
) -> None:
    """Schema 1, unknown media types and malformed JSON raise UnsupportedManifestError."""
    with pytest.raises(UnsupportedManifestError, match=fragment):
        parse_manifest(body, content_type, "ghcr.io/o/app:1")
