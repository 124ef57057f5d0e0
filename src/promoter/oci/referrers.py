"""What is attached to a manifest, as values: OCI 1.1 referrers and cosign's tag attachments. Pure.

Two schemes attach signatures, attestations and SBOMs to an image, and one image may carry both:

* **OCI 1.1 referrers** (distribution-spec v1.1, "Listing Referrers"): a manifest whose ``subject``
  names the image. A registry with the referrers API lists them at ``/v2/<name>/referrers/<digest>``;
  one without it is given, by the clients that push them, an index under the *referrers tag*
  ``sha256-<hex>`` ("Referrers Tag Schema") that lists them. cosign v3, notation, oras and buildx
  attestations write this way.
* **cosign tag attachments** (cosign ``specs/SIGNATURE_SPEC.md``, ``ATTESTATION_SPEC.md``,
  ``SBOM_SPEC.md``): an ordinary manifest under the tag ``sha256-<hex>.sig`` (``.att``, ``.sbom``).
  cosign before v3 and skopeo/containers-image (``use-sigstore-attachments``) write these.

This module names the tags, reads and merges referrers indexes and builds the descriptor the spec asks
for; :mod:`promoter.remote.attachments` finds and copies them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from promoter.errors import InvalidDigestError, UnsupportedManifestError
from promoter.oci.digest import Digest, parse_digest
from promoter.oci.mediatypes import INDEX_TYPES, MediaType

#: The media type of the OCI empty descriptor's blob (``{}``), the config of most artifacts.
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

#: Longest algorithm part and encoded part of a referrers tag (distribution-spec "Referrers Tag
#: Schema": ``<alg>-<ref>``, the reference truncated to 64 characters; the unreleased text also
#: truncates the algorithm to 32 characters).
_TAG_ALGORITHM_LIMIT = 32
_TAG_ENCODED_LIMIT = 64
_NOT_IN_TAG = re.compile(r"[^a-zA-Z0-9_.-]")


class AttachmentKind(StrEnum):
    """How an attachment is found; for tag attachments, cosign's suffix names the kind."""

    REFERRER = "referrer"  #: an OCI 1.1 manifest with ``subject``
    SIGNATURE = "signature"  #: cosign ``sha256-<hex>.sig``
    ATTESTATION = "attestation"  #: cosign ``sha256-<hex>.att``
    SBOM = "sbom"  #: cosign ``sha256-<hex>.sbom`` (deprecated by cosign in favour of attestations)


#: cosign's tag suffixes (``pkg/oci/remote/options.go``), in the order they are looked for.
TAG_SUFFIXES: Mapping[AttachmentKind, str] = {
    AttachmentKind.SIGNATURE: "sig",
    AttachmentKind.ATTESTATION: "att",
    AttachmentKind.SBOM: "sbom",
}


@dataclass(frozen=True, slots=True)
class AttachmentFilter:
    """Which attachments travel with a promoted image.

    Attributes:
        enabled: whether any do (``--no-referrers`` turns them off).
        artifact_types: when not empty, only attachments of the image (or of a child of its index)
            whose artifact type is one of these travel (``--referrers-type``, repeatable). What is
            attached to an attachment (the signature of an SBOM) travels with it whatever its type:
            it is what makes the attachment verifiable.
    """

    enabled: bool = True
    artifact_types: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        # One string is one type (or several, comma-separated), never a set of its characters.
        raw: object = self.artifact_types
        if isinstance(raw, str):
            types = frozenset(t.strip() for t in raw.split(",") if t.strip())
        elif isinstance(raw, Iterable):
            types = frozenset(str(t) for t in raw)
        else:
            raise TypeError(f"artifact_types must be strings, got {raw!r}")
        object.__setattr__(self, "artifact_types", types)

    def admits(self, artifact_type: str | None, depth: int) -> bool:
        """Whether an attachment of this artifact type travels; ``depth`` 0 is attached to the
        image itself (or a child of its index), deeper to another attachment."""
        if not self.enabled:
            return False
        if depth > 0 or not self.artifact_types:
            return True
        return artifact_type in self.artifact_types


@dataclass(frozen=True, slots=True)
class Attachment:
    """One manifest attached to an image (or to a child of its index, or to another attachment).

    Attributes:
        kind: a referrer, or which cosign tag holds it.
        subject: the digest it is attached to.
        digest: its own manifest's digest.
        artifact_type: its artifact type: the referrer's ``artifactType`` as listed, for a tag
            attachment the manifest's ``artifactType`` or its first layer's media type (cosign's
            ``application/vnd.dev.cosign.simplesigning.v1+json`` for a ``.sig``).
        tag: the cosign tag that holds it (None for a referrer).
        depth: 0 when attached to the image or a child of its index, 1 to such an attachment...
    """

    kind: AttachmentKind
    subject: Digest
    digest: Digest
    artifact_type: str | None
    tag: str | None = None
    depth: int = 0


#: Everything travels: the default.
ALL_ATTACHMENTS = AttachmentFilter()
#: Nothing travels (``--no-referrers``).
NO_ATTACHMENTS = AttachmentFilter(enabled=False)


def referrers_tag(digest: Digest) -> str:
    """The tag of the referrers index of ``digest`` where the registry has no referrers API:
    ``sha256-<hex>`` (distribution-spec v1.1, "Referrers Tag Schema": ``<alg>-<ref>``, the encoded
    part truncated to 64 characters, characters not allowed in a tag replaced by ``-``)."""
    algorithm = _NOT_IN_TAG.sub("-", digest.algorithm[:_TAG_ALGORITHM_LIMIT])
    return f"{algorithm}-{_NOT_IN_TAG.sub('-', digest.hex[:_TAG_ENCODED_LIMIT])}"


def attachment_tag(digest: Digest, kind: AttachmentKind) -> str:
    """cosign's tag for an attachment of ``digest``: ``sha256-<hex>.sig`` (``.att``, ``.sbom``);
    cosign replaces the ``:`` of the digest by ``-`` and keeps the whole hex."""
    return f"{digest.algorithm}-{digest.hex}.{TAG_SUFFIXES[kind]}"


def is_attachment_tag(tag: str) -> bool:
    """Whether ``tag`` is spelled like a referrers tag or a cosign attachment tag (``sha256-...``,
    ``sha512-...``): a repository with no such tag has nothing attached by either tag scheme."""
    return tag.startswith(("sha256-", "sha512-"))


@dataclass(frozen=True, slots=True)
class ReferrerDescriptor:
    """One entry of a referrers index (OCI image spec, "Descriptors", as the referrers API lists
    them).

    Attributes:
        media_type: the referrer manifest's media type.
        digest, size: the referrer manifest's digest and length in bytes.
        artifact_type: its ``artifactType`` (the manifest's, else its config's media type), if any.
        document: the descriptor exactly as listed, every field kept (annotations, platform...), so
            that merging never loses what another writer put there.
    """

    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None
    document: Mapping[str, Any]


def referrer_descriptor(data: bytes, digest: Digest, what: str) -> ReferrerDescriptor:
    """The descriptor that lists a referrer manifest in a referrers index, built from the manifest's
    own bytes (distribution-spec v1.1, "Pushing Manifests with Subject", step 5): ``mediaType``,
    ``digest``, ``size``; ``artifactType`` is the manifest's ``artifactType``, else its config's
    ``mediaType`` (an index without ``artifactType`` has none); every annotation of the manifest
    is copied. Built from the bytes, never from another index's entry, which may be stale.

    Args:
        data: the referrer manifest's bytes; ``digest`` must name them.
        what: the manifest, for messages.

    Raises:
        UnsupportedManifestError: the bytes are no JSON object.
    """
    doc = _object(data, what)
    media_type = str(doc.get("mediaType") or MediaType.OCI_MANIFEST)
    artifact_type = doc.get("artifactType")
    if not isinstance(artifact_type, str) or not artifact_type:
        config = doc.get("config")
        artifact_type = config.get("mediaType") if isinstance(config, dict) else None
        if not isinstance(artifact_type, str) or not artifact_type:
            artifact_type = None
    document: dict[str, Any] = {"mediaType": media_type, "digest": str(digest), "size": len(data)}
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    annotations = doc.get("annotations")
    if isinstance(annotations, dict) and annotations:
        document["annotations"] = {str(k): str(v) for k, v in annotations.items()}
    return ReferrerDescriptor(media_type, digest, len(data), artifact_type, document)


def parse_referrers_index(data: bytes, what: str) -> list[ReferrerDescriptor]:
    """The entries of a referrers index: an answer of the referrers API or the index under a
    referrers tag.

    Raises:
        UnsupportedManifestError: the bytes are no OCI image index (a cosign-copied image under the
            referrers tag, a Docker manifest list), or an entry is malformed: such a tag is not a
            referrers list, and must be neither read as one nor overwritten.
    """
    doc = _object(data, what)
    media_type = doc.get("mediaType")
    if media_type not in (None, MediaType.OCI_INDEX) or not isinstance(doc.get("manifests"), list):
        raise UnsupportedManifestError(
            f"{what}: not a referrers list (an OCI image index was expected, found "
            f"{media_type or 'a manifest without manifests'!s})"
        )
    entries = []
    for raw in doc["manifests"]:
        if not isinstance(raw, dict):
            raise UnsupportedManifestError(f"{what}: an entry of the referrers list is no object")
        try:
            digest = parse_digest(str(raw.get("digest")))
            size = int(raw.get("size", -1))
        except (InvalidDigestError, TypeError, ValueError) as exc:
            raise UnsupportedManifestError(f"{what}: malformed referrers entry: {exc}") from exc
        if size < 0:
            raise UnsupportedManifestError(
                f"{what}: referrers entry {digest} has no size, or a negative one"
            )
        artifact_type = raw.get("artifactType")
        entries.append(
            ReferrerDescriptor(
                str(raw.get("mediaType") or ""),
                digest,
                size,
                artifact_type if isinstance(artifact_type, str) and artifact_type else None,
                dict(raw),
            )
        )
    return entries


def merge_referrers_index(
    existing: bytes | None, additions: Sequence[ReferrerDescriptor], what: str
) -> bytes | None:
    """The referrers index to write under a referrers tag: ``existing`` with every descriptor of
    ``additions`` whose digest it lacks appended, in order (distribution-spec v1.1, "Pushing
    Manifests with Subject": start from an empty index when the tag does not exist, never create a
    duplicate, append; nothing that is listed is ever dropped or reordered).

    Args:
        existing: the index the tag holds now, or None when the tag does not exist.
        additions: descriptors to list (from :func:`referrer_descriptor`).
        what: the tag, for messages.

    Returns:
        The bytes to PUT, or None when every addition is listed already (nothing to write: a
        re-run stays read-only).

    Raises:
        UnsupportedManifestError: ``existing`` is no referrers index (:func:`parse_referrers_index`).
    """
    if existing is None:
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": str(MediaType.OCI_INDEX)}
        listed: set[Digest] = set()
        manifests: list[Any] = []
    else:
        listed = {entry.digest for entry in parse_referrers_index(existing, what)}
        doc = _object(existing, what)
        manifests = list(doc["manifests"])
    added = False
    for descriptor in additions:
        if descriptor.digest not in listed:
            manifests.append(dict(descriptor.document))
            listed.add(descriptor.digest)
            added = True
    if not added:
        return None
    doc["manifests"] = manifests
    return json.dumps(doc, separators=(",", ":")).encode()


def is_index_media_type(media_type: str) -> bool:
    """Whether a descriptor's media type names an index or manifest list."""
    return media_type in INDEX_TYPES


def subjects_of(tags: Iterable[str]) -> frozenset[str]:
    """The ``<alg>-<hex>`` prefixes that the attachment tags among ``tags`` belong to: the
    referrers tags themselves and cosign's tags without their suffix."""
    found = set()
    for tag in tags:
        if is_attachment_tag(tag):
            found.add(tag.split(".", 1)[0])
    return frozenset(found)


def _object(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise UnsupportedManifestError(f"{what}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise UnsupportedManifestError(f"{what}: not a JSON object")
    return doc
