"""The plan's decision table and image classification: pure, no registry."""

from __future__ import annotations

import pytest

from promoter.app.wire import plan_item_json
from promoter.errors import InvalidReferenceError
from promoter.oci.digest import Digest
from promoter.outcome import Outcome
from promoter.planning.execute import explain
from promoter.planning.plan import PlanPolicy, PlanStatus, blocks_sync, decide, wanted_images
from promoter.planning.versions import compare_tags

A = Digest("sha256", "a" * 64)
B = Digest("sha256", "b" * 64)
DEV = "dev.example.com"
PROD = "prod.example.com"


@pytest.mark.parametrize(
    ("destination", "source", "status", "digest"),
    [
        (A, A, PlanStatus.PRESENT, A),
        (A, None, PlanStatus.PRESENT, A),
        (A, B, PlanStatus.DIVERGED, B),
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
        "blocking": status is PlanStatus.MISSING_SOURCE,
    }
    if status is PlanStatus.DIVERGED:  # a divergence names what the destination tag holds too
        expected["destinationDigest"] = str(destination)
    shape = plan_item_json(item)
    shape.pop("warning", None)
    shape.pop("error", None)
    assert shape == expected


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
    """missing-source blocks a sync, a divergence does not; an unparsable image names itself."""
    [wanted] = wanted_images([f"{PROD}/a:1"], PROD, DEV)
    assert not blocks_sync([decide(wanted, A, B)])
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


def test_a_pinned_digest_in_neither_registry_is_missing_source_not_conflict() -> None:
    """tag@digest whose digest neither registry holds is missing-source even when the destination
    tag holds something else: nothing could be copied, and the conflict would hide that."""
    [wanted] = wanted_images([f"{PROD}/a:1.0@{A}"], PROD, DEV)
    assert decide(wanted, None, None, tag_digest=B).status is PlanStatus.MISSING_SOURCE


def test_a_conflict_names_the_digest_the_tag_holds_and_the_pinned_one() -> None:
    """For tag@digest a conflict's line and JSON name what the tag really holds and what is pinned."""
    [wanted] = wanted_images([f"{PROD}/a:1.0@{A}"], PROD, DEV)
    item = decide(wanted, A, A, tag_digest=B)
    assert item.status is PlanStatus.CONFLICT
    assert item.outcome is Outcome.REFUSED
    text = explain(item)
    assert text is not None
    assert f"it holds {B}" in text
    assert f"pins {A}" in text
    shape = plan_item_json(item)
    assert shape["destinationDigest"] == str(B)
    assert shape["digest"] == str(A)
    assert shape["blocking"] is True
    assert shape.get("error") == text


def test_a_re_pushed_source_tag_is_diverged_a_warning_unless_the_policy_fails_it() -> None:
    """A destination that holds the tag while the source's tag moved keeps what it was given:
    diverged, done with a warning naming both digests; refused under fail_diverged."""
    [wanted] = wanted_images([f"{PROD}/a:1"], PROD, DEV)
    item = decide(wanted, A, B)
    assert item.status is PlanStatus.DIVERGED
    assert item.outcome is Outcome.DONE
    text = explain(item)
    assert text is not None
    assert str(A) in text
    assert str(B) in text
    assert plan_item_json(item)["warning"] == text
    strict = decide(wanted, A, B, policy=PlanPolicy(fail_diverged=True))
    assert strict.status is PlanStatus.DIVERGED
    assert strict.outcome is Outcome.REFUSED
    assert blocks_sync([strict])


def test_images_of_another_environments_registry_are_foreign_and_refused_unless_allowed() -> None:
    """An image in another environment's registry is foreign-environment, not external: refused
    by default, done with a warning when the environment allows that one (or every) environment."""
    others = {DEV: "dev", "stage.example.com": "staging"}
    wanted = wanted_images(
        [f"{DEV}/a:1", "stage.example.com/b:2", "nginx"], PROD, DEV, others=others
    )
    items = [decide(w, None, None) for w in wanted]
    assert [i.status for i in items] == [
        PlanStatus.FOREIGN,
        PlanStatus.FOREIGN,
        PlanStatus.EXTERNAL,
    ]
    assert [i.foreign for i in items] == ["dev", "staging", None]
    assert all(i.outcome is Outcome.REFUSED for i in items[:2])
    assert "environment dev" in (explain(items[0]) or "")
    allowed = [
        decide(w, None, None, policy=PlanPolicy(allowed_foreign=frozenset({"dev"}))) for w in wanted
    ]
    assert [i.outcome for i in allowed] == [Outcome.DONE, Outcome.REFUSED, Outcome.DONE]
    everything = PlanPolicy(allowed_foreign=frozenset({"*"}))
    assert not blocks_sync(decide(w, None, None, policy=everything) for w in wanted)


@pytest.mark.parametrize(
    ("mine", "theirs", "order"),
    [
        ("1.8.0", "1.9.0", -1),
        ("2.10.0", "2.4.0", 1),  # numbers, not text
        ("v1.2", "1.2.0", 0),  # a leading v and missing zeros do not matter
        ("1.0.0-rc.1", "1.0.0", -1),  # a pre-release comes before its release (SemVer 11)
        ("1.0.0-rc.2", "1.0.0-rc.10", -1),
        ("1.0.0-alpha", "1.0.0-1", 1),  # numeric identifiers below words
        ("1.0.0+build.5", "1.0.0", 0),  # build metadata is ignored
        ("2024.11.3", "2024.2.1", 1),  # calendar versions
        ("latest", "1.0.0", None),
        ("1.0.0-rc.01", "1.0.0-rc.1", None),  # leading zeros are no SemVer (sections 2 and 9)
        ("1.0.0-rc.1", "1.0.0-rc.01", None),
        ("0123456", "9876543", None),  # an abbreviated commit hash, not a version
        ("1234", "987", 1),  # build numbers are ordered
        ("main-3f2a1c", "main-9e8d7b", None),
        (None, "1.0", None),
    ],
)
def test_tags_are_ordered_only_where_they_read_as_versions(
    mine: str | None, theirs: str | None, order: int | None
) -> None:
    """Behind and ahead come from tags ordered as versions; other tags have no order."""
    assert compare_tags(mine, theirs) == order


def test_a_registry_with_its_https_port_written_out_is_the_same_registry() -> None:
    """``PROD:443`` (or ``:0443``) is PROD: managed, copied to PROD as promoter.yaml spells it; and
    ``DEV:443`` is still dev's registry (foreign), not external."""
    wanted = wanted_images(
        [f"{PROD}:443/a:1", f"{PROD}:0443/b:1", f"{DEV}:443/c:1"], PROD, DEV, others={DEV: "dev"}
    )
    assert [w.destination.registry if w.destination else None for w in wanted] == [PROD, PROD, None]
    assert wanted[0].source is not None
    assert wanted[0].source.registry == DEV
    assert wanted[2].foreign == "dev"
