"""Manifests and indexes as values: what a copy needs to know about them.

We never re-serialise a manifest: the bytes a registry gave us are the bytes we push, so the digest is
kept. These values only tell the copy engine which blobs and child manifests the bytes refer to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from promoter.errors import InvalidDigestError, UnsupportedManifestError
from promoter.oci.digest import Digest, parse_digest
from promoter.oci.mediatypes import INDEX_TYPES, MANIFEST_TYPES, SCHEMA1_TYPES, MediaType


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A content descriptor (OCI image spec, "Descriptors"): what is referenced and how big it is.

    ``urls`` marks a foreign (non-distributable) layer: its bytes are meant to be fetched from those
    URLs, not from the registry, so a copy skips it unless asked to include it.
    """

    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    platform: str | None = None

    @property
    def is_foreign(self) -> bool:
        """Whether the descriptor carries ``urls`` (a foreign / non-distributable layer)."""
        return bool(self.urls)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed image manifest or index.

    Attributes:
        media_type: the manifest's media type.
        manifests: child manifests (only for an index or manifest list).
        blobs: config first, then layers (only for an image manifest or artifact).
        subject: the manifest this one refers to (OCI 1.1 referrers), if any.
    """

    media_type: MediaType
    manifests: tuple[Descriptor, ...] = ()
    blobs: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None

    @property
    def is_index(self) -> bool:
        """Whether this is an index or manifest list."""
        return self.media_type in INDEX_TYPES


def parse_manifest(data: bytes, content_type: str | None, what: str) -> Manifest:
    """Parse manifest bytes, deciding the media type from the payload or the Content-Type header.

    Args:
        data: the manifest bytes exactly as the registry served them.
        content_type: the response's Content-Type, which may be missing or generic.
        what: the reference, for error messages.

    Raises:
        UnsupportedManifestError: for Docker schema 1, unknown media types or malformed JSON.
    """
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than C's json
        raise UnsupportedManifestError(f"{what}: the manifest is not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise UnsupportedManifestError(f"{what}: the manifest is not a JSON object")
    media_type = _media_type(doc, content_type, what)
    subject = _descriptor(doc["subject"], what) if isinstance(doc.get("subject"), dict) else None
    if media_type in INDEX_TYPES:
        children = tuple(_descriptor(d, what) for d in _list(doc, "manifests", what))
        return Manifest(media_type, manifests=children, subject=subject)
    blobs: list[Descriptor] = []
    if isinstance(doc.get("config"), dict):
        blobs.append(_descriptor(doc["config"], what))
    blobs.extend(_descriptor(d, what) for d in _list(doc, "layers", what))
    # OCI 1.1 artifacts may also list "blobs" (the short-lived artifact manifest shape).
    if "blobs" in doc:
        blobs.extend(_descriptor(d, what) for d in _list(doc, "blobs", what))
    return Manifest(media_type, blobs=tuple(blobs), subject=subject)


def _media_type(doc: dict[str, Any], content_type: str | None, what: str) -> MediaType:
    declared = doc.get("mediaType")
    header = (content_type or "").split(";", 1)[0].strip()
    schema1_hint = doc.get("schemaVersion") == 1 or declared in SCHEMA1_TYPES
    if schema1_hint or header in SCHEMA1_TYPES:
        raise UnsupportedManifestError(
            f"{what}: Docker schema 1 manifests are not supported (they cannot be copied digest-exact;"
            " rebuild and push the image with a current client)"
        )
    for candidate in (declared, header):
        if candidate in MANIFEST_TYPES:
            return MediaType(candidate)
    # An OCI manifest or index may omit mediaType (image-spec 1.0); tell them apart by shape.
    if "manifests" in doc:
        return MediaType.OCI_INDEX
    if "config" in doc or "layers" in doc:
        return MediaType.OCI_MANIFEST
    raise UnsupportedManifestError(
        f"{what}: unknown manifest media type {declared or header or '(none)'!r}"
    )


def _list(doc: dict[str, Any], key: str, what: str) -> list[dict[str, Any]]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise UnsupportedManifestError(
            f"{what}: manifest field {key!r} is not a list of descriptors"
        )
    return value


def _descriptor(raw: dict[str, Any], what: str) -> Descriptor:
    try:
        digest = parse_digest(str(raw["digest"]))
        size = int(raw["size"])
        media_type = str(raw.get("mediaType", ""))
    except (KeyError, TypeError, ValueError, InvalidDigestError) as exc:
        raise UnsupportedManifestError(f"{what}: malformed descriptor {raw!r}") from exc
    if size < 0:
        raise UnsupportedManifestError(f"{what}: descriptor {digest} has a negative size")
    urls = raw.get("urls") or ()
    platform = raw.get("platform")
    platform_text = None
    if isinstance(platform, dict):
        parts = [str(platform.get("os", "")), str(platform.get("architecture", ""))]
        if platform.get("variant"):
            parts.append(str(platform["variant"]))
        platform_text = "/".join(parts)
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        urls=tuple(str(u) for u in urls),
        platform=platform_text,
    )
