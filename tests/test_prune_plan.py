"""Prune plans as tables: what a repository keeps and deletes, and why. Pure."""

from __future__ import annotations

import datetime as dt

import pytest

from promoter.oci.digest import Digest, compute_digest
from promoter.planning.prune import (
    KeptReference,
    ManifestFacts,
    PruneAction,
    PruneEntry,
    RepositoryInventory,
    most_recent,
    over_limit,
    plan_prune,
    tags_matching,
)


def d(name: str) -> Digest:
    """A digest named for the table."""
    return compute_digest(name.encode())


def sig(digest: Digest) -> str:
    return f"sha256-{digest.hex}.sig"


def decisions(entries: list[PruneEntry]) -> dict[str, PruneAction]:
    """tag (or digest when untagged) -> action."""
    return {e.tag or str(e.digest): e.action for e in entries}


KEEP, DELETE = PruneAction.KEEP, PruneAction.DELETE


def test_a_deployed_tag_stays_and_the_others_go_with_their_digests() -> None:
    """The tag an environment deploys is kept; older tags and their manifests are deleted."""
    repo = RepositoryInventory("r/app", {"1.0": d("a"), "1.1": d("b"), "1.2": d("c")})
    plan = plan_prune(repo, [KeptReference("1.2", None, "deployed by production")])
    assert decisions(plan) == {
        "1.0": DELETE,
        "1.1": DELETE,
        "1.2": KEEP,
        str(d("a")): DELETE,
        str(d("b")): DELETE,
    }
    assert next(e for e in plan if e.tag == "1.2").reason == "deployed by production"


def test_a_digest_shared_with_a_kept_tag_stays_when_its_other_tag_goes() -> None:
    """'latest' is deleted, but the manifest it shares with the kept 1.2 is not."""
    repo = RepositoryInventory("r/app", {"latest": d("c"), "1.2": d("c")})
    plan = plan_prune(repo, [KeptReference("1.2", None, "deployed")])
    assert decisions(plan) == {"latest": DELETE, "1.2": KEEP}


def test_a_pinned_digest_keeps_its_manifest_whatever_tag_points_there() -> None:
    """A reference by digest alone keeps the manifest, and the plan says so; a tag pointing there
    goes alone (where the registry can), saying its manifest is kept."""
    repo = RepositoryInventory("r/app", {"1.0": d("a"), "1.1": d("b")})
    plan = plan_prune(repo, [KeptReference(None, d("a"), "running in Pod p")])
    assert decisions(plan) == {
        "1.0": DELETE,
        "1.1": DELETE,
        str(d("a")): KEEP,
        str(d("b")): DELETE,
    }
    [tag_only] = [e for e in plan if e.tag == "1.0"]
    assert tag_only.reason == "the tag only: its manifest is kept (running in Pod p)"


def test_an_index_keeps_its_children_and_a_deleted_one_takes_its_own() -> None:
    """Children of a kept index stay; children only a deleted index lists go."""
    repo = RepositoryInventory(
        "r/app",
        {"2.0": d("idx2"), "1.0": d("idx1")},
        {
            d("idx2"): ManifestFacts(children=(d("amd2"), d("shared"))),
            d("idx1"): ManifestFacts(children=(d("amd1"), d("shared"))),
        },
    )
    plan = plan_prune(repo, [KeptReference("2.0", None, "deployed")])
    got = decisions(plan)
    assert got[str(d("amd2"))] is KEEP
    assert got[str(d("shared"))] is KEEP
    assert got[str(d("amd1"))] is DELETE
    assert got[str(d("idx1"))] is DELETE


def test_attachments_follow_their_subject_both_ways() -> None:
    """A kept image keeps its .sig tag, its referrers (and theirs) and its referrers tag; a deleted
    image's attachments are deleted with it."""
    kept, old = d("kept"), d("old")
    sbom, sbom_sig, old_sbom = d("sbom"), d("sbom-sig"), d("old-sbom")
    repo = RepositoryInventory(
        "r/app",
        {
            "1.1": kept,
            "1.0": old,
            sig(kept): d("kept-sig"),
            sig(old): d("old-sig"),
            f"sha256-{kept.hex}": d("kept-index"),
        },
        {
            sbom: ManifestFacts(subject=kept),
            sbom_sig: ManifestFacts(subject=sbom),
            old_sbom: ManifestFacts(subject=old),
        },
    )
    got = decisions(plan_prune(repo, [KeptReference("1.1", None, "deployed")]))
    assert got[sig(kept)] is KEEP
    assert got[f"sha256-{kept.hex}"] is KEEP
    assert got[str(sbom)] is KEEP
    assert got[str(sbom_sig)] is KEEP
    assert got[sig(old)] is DELETE
    assert got[str(old_sbom)] is DELETE
    assert got[str(d("old-sig"))] is DELETE


def test_a_reference_to_a_tag_the_repository_lacks_changes_nothing() -> None:
    """Keeping a tag that is not there neither fails nor keeps anything else."""
    repo = RepositoryInventory("r/app", {"1.0": d("a")})
    assert decisions(plan_prune(repo, [KeptReference("9.9", None, "deployed")])) == {
        "1.0": DELETE,
        str(d("a")): DELETE,
    }


def test_tag_patterns_keep_what_they_match_and_name_the_pattern() -> None:
    """--keep 'release-*' keeps release tags with the pattern as the reason."""
    kept = tags_matching(["release-1", "dev-3", "release-2"], ["release-*"], "matches --keep {!r}")
    assert [(k.tag, k.reason) for k in kept] == [
        ("release-1", "matches --keep 'release-*'"),
        ("release-2", "matches --keep 'release-*'"),
    ]


@pytest.mark.parametrize(
    ("kept_tags", "fraction", "expected"),
    [(["a", "b", "c"], 0.5, False), (["a"], 0.5, True), ([], 1.0, False), (["a", "b"], 0.5, False)],
)
def test_max_delete_counts_image_tags_only(
    kept_tags: list[str], fraction: float, expected: bool
) -> None:
    """Over the fraction of image tags deleted stops the run; attachment tags do not count."""
    tags = {t: d(t) for t in ("a", "b", "c", "d")}
    tags[sig(d("a"))] = d("sig-a")
    repo = RepositoryInventory("r/app", tags)
    plan = plan_prune(repo, [KeptReference(t, None, "kept") for t in kept_tags])
    assert over_limit(plan, repo, fraction) is expected


def test_most_recent_takes_the_last_pushed_tags_and_ignores_digests() -> None:
    """The N tags pushed last; a digest key is no tag; ties go to the greater name."""
    day = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    times = {
        "1.0": day,
        "1.1": day + dt.timedelta(hours=1),
        "1.2": day + dt.timedelta(hours=2),
        "same-a": day + dt.timedelta(hours=1),
        f"sha256:{'a' * 64}": day + dt.timedelta(hours=3),
    }
    assert most_recent(times, 2) == ["1.2", "same-a"]
    assert most_recent(times, 0) == []


def test_a_pinned_tag_ci_moved_keeps_the_tag_and_both_digests() -> None:
    """tag@digest whose tag now points elsewhere: the tag stays, so its current digest stays too
    (deleting it would take the tag along), and the pinned digest stays."""
    repo = RepositoryInventory("r/app", {"2.4": d("moved"), "2.3": d("old")})
    plan = plan_prune(repo, [KeptReference("2.4", d("pinned"), "deployed by dev")])
    got = decisions(plan)
    assert got["2.4"] is KEEP
    assert str(d("moved")) not in got  # kept with its tag, nothing to delete
    assert got[str(d("pinned"))] is KEEP
    assert got["2.3"] is DELETE
