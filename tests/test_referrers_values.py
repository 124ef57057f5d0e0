"""Referrers and cosign tag attachments as values: tag names, descriptors, the merge rule. Pure."""

from __future__ import annotations

import json

import pytest

from promoter.errors import UnsupportedManifestError
from promoter.oci.digest import compute_digest, parse_digest
from promoter.oci.referrers import (
    ALL_ATTACHMENTS,
    NO_ATTACHMENTS,
    AttachmentFilter,
    AttachmentKind,
    ReferrerDescriptor,
    attachment_tag,
    is_attachment_tag,
    merge_referrers_index,
    parse_referrers_index,
    referrer_descriptor,
    referrers_tag,
    subjects_of,
)

HEX = "a" * 64
DIGEST = parse_digest(f"sha256:{HEX}")
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _manifest(**fields: object) -> bytes:
    doc: dict[str, object] = {"schemaVersion": 2, "mediaType": MANIFEST}
    doc.update(fields)
    return json.dumps(doc).encode()


def _descriptor(data: bytes) -> ReferrerDescriptor:
    return referrer_descriptor(data, compute_digest(data), "test")


def test_referrers_tag_follows_the_tag_schema() -> None:
    """sha256 digests give sha256-<64 hex>; sha512's encoded part is cut to 64 characters."""
    assert referrers_tag(DIGEST) == f"sha256-{HEX}"
    long = parse_digest("sha512:" + "b" * 128)
    assert referrers_tag(long) == "sha512-" + "b" * 64


def test_cosign_tags_keep_the_whole_digest_and_a_suffix() -> None:
    """cosign's .sig/.att/.sbom tags are the digest with ':' as '-' plus the suffix."""
    assert attachment_tag(DIGEST, AttachmentKind.SIGNATURE) == f"sha256-{HEX}.sig"
    assert attachment_tag(DIGEST, AttachmentKind.ATTESTATION) == f"sha256-{HEX}.att"
    assert attachment_tag(DIGEST, AttachmentKind.SBOM) == f"sha256-{HEX}.sbom"


@pytest.mark.parametrize(
    ("tag", "expected"),
    [(f"sha256-{HEX}", True), (f"sha256-{HEX}.sig", True), ("v1.0", False), ("latest", False)],
)
def test_attachment_tags_are_recognised_by_their_prefix(tag: str, expected: bool) -> None:
    """Only sha256-/sha512- tags can hold attachments by either tag scheme."""
    assert is_attachment_tag(tag) is expected


def test_subjects_of_groups_cosign_and_referrers_tags() -> None:
    """The subjects named by a tag list, whatever the suffix."""
    tags = [f"sha256-{HEX}.sig", f"sha256-{HEX}", "v1", f"sha256-{'c' * 64}.att"]
    assert subjects_of(tags) == {f"sha256-{HEX}", f"sha256-{'c' * 64}"}


@pytest.mark.parametrize(
    ("fields", "artifact_type"),
    [
        (
            {"artifactType": "application/spdx+json", "config": {"mediaType": "x"}},
            "application/spdx+json",
        ),
        ({"config": {"mediaType": "application/vnd.example.sig"}}, "application/vnd.example.sig"),
        ({}, None),
    ],
)
def test_descriptor_artifact_type_is_the_manifests_else_its_configs(
    fields: dict[str, object], artifact_type: str | None
) -> None:
    """distribution-spec "Pushing Manifests with Subject": artifactType, else config mediaType."""
    descriptor = _descriptor(_manifest(**fields))
    assert descriptor.artifact_type == artifact_type
    assert descriptor.document.get("artifactType") == artifact_type


def test_descriptor_copies_every_annotation_and_names_the_bytes() -> None:
    """All manifest annotations are copied; digest and size are those of the bytes."""
    data = _manifest(
        artifactType="t", annotations={"org.opencontainers.image.created": "now", "a": "b"}
    )
    descriptor = referrer_descriptor(data, compute_digest(data), "test")
    assert descriptor.document == {
        "mediaType": MANIFEST,
        "digest": str(compute_digest(data)),
        "size": len(data),
        "artifactType": "t",
        "annotations": {"org.opencontainers.image.created": "now", "a": "b"},
    }


def test_merge_starts_an_index_when_the_tag_does_not_exist() -> None:
    """No tag yet: an OCI index listing the additions."""
    first = referrer_descriptor(_manifest(artifactType="t1"), compute_digest(b"1"), "x")
    merged = merge_referrers_index(None, [first], "tag")
    assert merged is not None
    doc = json.loads(merged)
    assert doc["mediaType"] == INDEX
    assert doc["schemaVersion"] == 2
    assert [m["digest"] for m in doc["manifests"]] == [str(first.digest)]


def test_merge_keeps_every_listed_entry_in_order_and_appends_only_new_ones() -> None:
    """Existing entries (with fields promoter does not know) stay, in order; duplicates are not added."""
    other = {"mediaType": MANIFEST, "digest": str(compute_digest(b"o")), "size": 9, "x-extra": [1]}
    existing = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": [other]}).encode()
    ours = referrer_descriptor(_manifest(artifactType="t"), compute_digest(b"ours"), "x")
    merged = merge_referrers_index(existing, [ours, ours], "tag")
    assert merged is not None
    manifests = json.loads(merged)["manifests"]
    assert manifests[0] == other
    assert [m["digest"] for m in manifests] == [other["digest"], str(ours.digest)]


def test_merge_writes_nothing_when_everything_is_listed() -> None:
    """A re-run finds its entries listed: nothing to write (stays read-only)."""
    ours = referrer_descriptor(_manifest(artifactType="t"), compute_digest(b"ours"), "x")
    existing = merge_referrers_index(None, [ours], "tag")
    assert merge_referrers_index(existing, [ours], "tag") is None


@pytest.mark.parametrize(
    "existing",
    [
        _manifest(config={"mediaType": "x", "digest": f"sha256:{HEX}", "size": 1}),
        json.dumps(
            {
                "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
                "manifests": [],
            }
        ).encode(),
        b"[]",
        b"not json",
        json.dumps({"mediaType": INDEX, "manifests": [{"digest": "nope", "size": 1}]}).encode(),
    ],
    ids=["image-manifest", "docker-list", "array", "text", "bad-entry"],
)
def test_something_else_under_the_referrers_tag_is_never_merged(existing: bytes) -> None:
    """An image (cosign copy tags one so), a Docker list or junk is not a referrers list."""
    ours = referrer_descriptor(_manifest(), compute_digest(b"ours"), "x")
    with pytest.raises(UnsupportedManifestError):
        merge_referrers_index(existing, [ours], "tag")


def test_parse_reads_entries_with_their_artifact_types() -> None:
    """The API's answer (or the tag's index) gives digest, size and artifactType per entry."""
    entry = {"mediaType": MANIFEST, "digest": f"sha256:{HEX}", "size": 3, "artifactType": "t"}
    data = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": [entry]}).encode()
    [parsed] = parse_referrers_index(data, "x")
    assert (parsed.digest, parsed.size, parsed.artifact_type) == (DIGEST, 3, "t")


def test_filter_types_given_as_one_string_are_split_on_commas_not_into_characters() -> None:
    """AttachmentFilter(artifact_types="a, b") is {a, b}; never a set of characters."""
    assert AttachmentFilter(artifact_types="a, b").artifact_types == frozenset({"a", "b"})  # type: ignore[arg-type]  # a str on purpose
    assert AttachmentFilter(artifact_types=frozenset({"a"})).admits("a", 0)


@pytest.mark.parametrize(
    ("chosen", "artifact_type", "depth", "expected"),
    [
        (ALL_ATTACHMENTS, "anything", 0, True),
        (NO_ATTACHMENTS, "anything", 0, False),
        (NO_ATTACHMENTS, "anything", 1, False),
        (AttachmentFilter(artifact_types=frozenset({"sbom"})), "sbom", 0, True),
        (AttachmentFilter(artifact_types=frozenset({"sbom"})), "sig", 0, False),
        (AttachmentFilter(artifact_types=frozenset({"sbom"})), None, 0, False),
        # The signature of an admitted SBOM travels with it, whatever its type.
        (AttachmentFilter(artifact_types=frozenset({"sbom"})), "sig", 1, True),
    ],
)
def test_filter_admits_by_type_at_the_first_level_only(
    chosen: AttachmentFilter, artifact_type: str | None, depth: int, expected: bool
) -> None:
    """--referrers-type limits what is attached to the image; deeper attachments follow their subject."""
    assert chosen.admits(artifact_type, depth) is expected
