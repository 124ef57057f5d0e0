"""The plan's decision table and image classification: pure, no registry."""

from __future__ import annotations

import pytest

from promoter.app.wire import plan_item_json
from promoter.errors import InvalidReferenceError
from promoter.oci.digest import Digest
from promoter.planning.plan import PlanStatus, blocks_sync, decide, wanted_images

A = Digest("sha256", "a" * 64)
B = Digest("sha256", "b" * 64)
DEV = "dev.example.com"
PROD = "prod.example.com"


@pytest.mark.parametrize(
    ("destination", "source", "status", "digest"),
    [
        (A, A, PlanStatus.PRESENT, A),
        (A, None, PlanStatus.PRESENT, A),
        (A, B, PlanStatus.CONFLICT, B),
        (None, A, PlanStatus.COPY, A),
        (None, None, PlanStatus.MISSING_SOURCE, None),
    ],
)
def test_decision_table(
    destination: Digest | None, source: Digest | None, status: PlanStatus, digest: Digest | None
) -> None:
    """The two registries' digests decide the status; the source's digest is reported first."""
    [wanted] = wanted_images([f"{PROD}/shop/cart:1.0"], PROD, DEV)
    item = decide(wanted, destination, source)
    assert item.status is status
    assert item.digest == digest
    expected = {
        "image": f"{PROD}/shop/cart:1.0",
        "source": f"{DEV}/shop/cart:1.0",
        "digest": str(digest) if digest else None,
        "status": str(status),
    }
    if status is PlanStatus.CONFLICT:  # a conflict names what the destination tag holds too
        expected["destinationDigest"] = str(destination)
    assert plan_item_json(item) == expected


def test_classification_keeps_order_dedupes_and_marks_external() -> None:
    """Images outside the environment's registry are external; each image appears once."""
    wanted = wanted_images(
        [f"{PROD}/a:1", "nginx", f"{PROD}/a:1", f"{PROD}/b@sha256:{'c' * 64}"], PROD, DEV
    )
    assert [w.image for w in wanted] == [f"{PROD}/a:1", "nginx", f"{PROD}/b@sha256:{'c' * 64}"]
    assert wanted[1].destination is None
    assert decide(wanted[1], None, None).status is PlanStatus.EXTERNAL
    assert wanted[2].source is not None
    assert str(wanted[2].source.digest) == "sha256:" + "c" * 64
    assert wanted[2].source.registry == DEV


def test_root_environment_has_no_source() -> None:
    """An environment that promotes from nowhere plans present or missing-source only."""
    [wanted] = wanted_images([f"{DEV}/a:1"], DEV, None)
    assert wanted.source is None
    assert decide(wanted, None, None).status is PlanStatus.MISSING_SOURCE
    assert decide(wanted, A, None).status is PlanStatus.PRESENT


def test_blocking_statuses_and_bad_images() -> None:
    """conflict and missing-source block a sync; an unparsable image names itself."""
    [wanted] = wanted_images([f"{PROD}/a:1"], PROD, DEV)
    assert blocks_sync([decide(wanted, A, B)])
    assert blocks_sync([decide(wanted, None, None)])
    assert not blocks_sync([decide(wanted, None, A), decide(wanted, A, A)])
    with pytest.raises(InvalidReferenceError, match="image in the manifests"):
        wanted_images(["Bad/Image"], PROD, DEV)


def test_tag_and_digest_references() -> None:
    """For image:tag@digest the destination tag decides: same digest present, other digest
    conflict, missing tag copy (tags stay identical in both registries)."""
    [wanted] = wanted_images([f"{PROD}/a:1.0@{A}"], PROD, DEV)
    assert decide(wanted, A, A, tag_digest=A).status is PlanStatus.PRESENT
    assert decide(wanted, A, A, tag_digest=B).status is PlanStatus.CONFLICT
    assert decide(wanted, A, A, tag_digest=None).status is PlanStatus.COPY
    assert decide(wanted, None, A, tag_digest=None).status is PlanStatus.COPY
    assert decide(wanted, A, None, tag_digest=None).status is PlanStatus.PRESENT
    assert decide(wanted, None, None, tag_digest=None).status is PlanStatus.MISSING_SOURCE
