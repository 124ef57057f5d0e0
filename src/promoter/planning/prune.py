"""Prune plans: what a repository keeps and what goes, from what Git (and the cluster) still needs. Pure.

The registry side gives, per repository, its tags (each to a digest) and what is known of its manifests
(children of an index, the ``subject`` of a referrer, sizes); the GitOps side gives the references that must
stay, each with its reason (deployed now by an environment, deployed at a recent revision, running in a Pod,
a tag pattern to keep, one of the most recent pushes). From these, :func:`plan_prune` decides every tag and
manifest, and says why. I/O happens elsewhere; nothing here deletes.

The rules (issue "Prune"):

* a kept reference keeps its tag (if it names one) and its digest;
* a kept digest keeps what it refers to and what refers to it: every child manifest of a kept index
  (recursively), every referrer whose ``subject`` is kept, every cosign tag attachment
  (``sha256-<hex>.sig``, ``.att``, ``.sbom``) of a kept digest and the referrers tag ``sha256-<hex>`` that
  lists its referrers, and so on for what is attached to those;
* every other tag is deleted; a deleted tag's digest is deleted too unless a kept tag or a kept digest
  shares it, and with it what it alone refers to and what is attached to it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from promoter.oci.digest import Digest
from promoter.oci.referrers import TAG_SUFFIXES, attachment_tag, referrers_tag

#: Revisions of each overlay whose images are kept by default: enough for a rollback or two.
DEFAULT_KEEP_HISTORY = 5
#: The most of a repository's image tags one run may delete by default; more stops the run.
DEFAULT_MAX_DELETE = 0.5


class PruneAction(StrEnum):
    """What happens to a tag or a manifest."""

    KEEP = "keep"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class ManifestFacts:
    """What is known of one manifest of a repository.

    Attributes:
        children: the manifests an index lists (empty for an image or an artifact).
        subject: the manifest a referrer refers to, if it is one.
        size: bytes of the manifest and the blobs only it uses, where known (for the report).
    """

    children: tuple[Digest, ...] = ()
    subject: Digest | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class RepositoryInventory:
    """One repository as its registry lists it.

    Attributes:
        name: ``registry/repository``, for the report.
        tags: every tag and the digest it points at.
        manifests: what is known of manifests, by digest (those not listed are taken as leaves).
    """

    name: str
    tags: Mapping[str, Digest]
    manifests: Mapping[Digest, ManifestFacts] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KeptReference:
    """A reference that must stay, with why.

    Attributes:
        tag: the tag to keep, if the reference names one.
        digest: the digest to keep, if the reference pins one (else the tag's).
        reason: for the report ("deployed by production", "deployed by staging at 3f2a1c4",
            "running in Pod shop/cart-5d9", "matches --keep 'release-*'").
    """

    tag: str | None
    digest: Digest | None
    reason: str


@dataclass(frozen=True, slots=True)
class PruneEntry:
    """One decision of a prune plan.

    Attributes:
        repository: ``registry/repository``.
        tag: the tag, or None for a manifest known by digest only (a child, a referrer, the digest of
            a deleted tag).
        digest: the digest the tag points at, or the manifest's.
        action: keep or delete.
        reason: why (the first reason found when there are several).
        size: bytes, where known.
    """

    repository: str
    tag: str | None
    digest: Digest
    action: PruneAction
    reason: str
    size: int | None = None


def tags_matching(tags: Iterable[str], patterns: Sequence[str], reason: str) -> list[KeptReference]:
    """A kept reference for every tag matching one of the shell-style ``patterns`` (``release-*``),
    each with ``reason`` naming the pattern (``{}`` in ``reason`` is replaced by it)."""
    kept = []
    for tag in tags:
        for pattern in patterns:
            if fnmatch.fnmatchcase(tag, pattern):
                kept.append(KeptReference(tag, None, reason.format(pattern)))
                break
    return kept


def plan_prune(inventory: RepositoryInventory, kept: Iterable[KeptReference]) -> list[PruneEntry]:
    """Decide every tag of ``inventory`` and every manifest a decision reaches.

    Returns:
        One entry per tag (sorted by tag), then one per manifest known by digest only that is kept
        or deleted (sorted by digest). A kept reference to a tag the repository lacks adds nothing
        (there is nothing to delete or keep there).
    """
    reasons: dict[Digest, str] = {}
    kept_tags: dict[str, str] = {}
    for reference in kept:
        if reference.tag is not None and reference.tag in inventory.tags:
            # A kept tag keeps what it points at now, also when the reference pins another
            # digest (a tag CI moved since): deleting that digest would take the tag with it.
            kept_tags.setdefault(reference.tag, reference.reason)
            reasons.setdefault(inventory.tags[reference.tag], reference.reason)
        if reference.digest is not None:
            reasons.setdefault(reference.digest, reference.reason)
    _close(inventory, reasons, kept_tags)

    entries: list[PruneEntry] = []
    tagged: set[Digest] = set()
    for tag in sorted(inventory.tags):
        digest = inventory.tags[tag]
        tagged.add(digest)
        facts = inventory.manifests.get(digest)
        size = facts.size if facts else None
        if tag in kept_tags:
            entries.append(
                PruneEntry(inventory.name, tag, digest, PruneAction.KEEP, kept_tags[tag], size)
            )
        else:
            if digest in reasons:
                # The manifest stays for another reason: only the tag can go, where the
                # registry deletes a tag alone (ECR does, Distribution does not).
                why = f"the tag only: its manifest is kept ({reasons[digest]})"
            elif tag.startswith(("sha256-", "sha512-")):
                why = "attached to an image that is not kept"
            else:
                why = "no environment, revision, Pod or pattern keeps this tag"
            entries.append(PruneEntry(inventory.name, tag, digest, PruneAction.DELETE, why, size))
    gone = _deleted_digests(inventory, reasons, tagged)
    kept_tagged = {d for t, d in inventory.tags.items() if t in kept_tags}
    for digest in sorted({*reasons, *gone} - kept_tagged, key=str):
        if digest in tagged and digest in gone:
            continue  # listed below, after every manifest that goes with it
        facts = inventory.manifests.get(digest)
        size = facts.size if facts else None
        if digest in reasons:
            entries.append(
                PruneEntry(inventory.name, None, digest, PruneAction.KEEP, reasons[digest], size)
            )
        else:
            entries.append(
                PruneEntry(inventory.name, None, digest, PruneAction.DELETE, gone[digest], size)
            )
    for digest in sorted(tagged & set(gone), key=str):
        facts = inventory.manifests.get(digest)
        entries.append(
            PruneEntry(
                inventory.name,
                None,
                digest,
                PruneAction.DELETE,
                gone[digest],
                facts.size if facts else None,
            )
        )
    return entries


def _close(
    inventory: RepositoryInventory, reasons: dict[Digest, str], kept_tags: dict[str, str]
) -> None:
    """Extend the kept digests (and tags) with what they refer to and what refers to them, until
    nothing more is added."""
    referrers = _referrers(inventory)
    pending = list(reasons)
    while pending:
        digest = pending.pop()
        why = f"{reasons[digest]} (what it refers to, or what is attached to it)"
        for tag in _attachment_tags(digest):
            if tag in inventory.tags:
                kept_tags.setdefault(tag, why)
        for other in _linked(inventory, referrers, digest):
            if other not in reasons:
                reasons[other] = why
                pending.append(other)


def _deleted_digests(
    inventory: RepositoryInventory, reasons: Mapping[Digest, str], tagged: set[Digest]
) -> dict[Digest, str]:
    """The digests that go: those of tags that are not kept, unless something keeps the digest
    (every kept tag's digest is a kept digest already), and what only they refer to or have
    attached."""
    referrers = _referrers(inventory)
    pending = [d for d in tagged if d not in reasons]
    gone = dict.fromkeys(pending, "only tags that are deleted point at it")
    while pending:
        digest = pending.pop()
        for other in _linked(inventory, referrers, digest):
            if other not in reasons and other not in gone:
                gone[other] = f"refers to or is attached to {digest}, which is deleted"
                pending.append(other)
    return gone


def _referrers(inventory: RepositoryInventory) -> dict[Digest, list[Digest]]:
    """Subject digest -> the referrers the inventory knows of it."""
    referrers: dict[Digest, list[Digest]] = {}
    for digest, facts in inventory.manifests.items():
        if facts.subject is not None:
            referrers.setdefault(facts.subject, []).append(digest)
    return referrers


def _linked(
    inventory: RepositoryInventory, referrers: Mapping[Digest, list[Digest]], digest: Digest
) -> list[Digest]:
    """What goes with ``digest``: its children, its referrers and the digests of its attachment
    tags."""
    facts = inventory.manifests.get(digest)
    linked = list(facts.children) if facts is not None else []
    linked.extend(referrers.get(digest, ()))
    linked.extend(inventory.tags[t] for t in _attachment_tags(digest) if t in inventory.tags)
    return linked


def _attachment_tags(digest: Digest) -> list[str]:
    """The tags that hold attachments of ``digest``: cosign's and the referrers tag."""
    return [referrers_tag(digest), *(attachment_tag(digest, kind) for kind in TAG_SUFFIXES)]


def over_limit(
    entries: Sequence[PruneEntry], inventory: RepositoryInventory, fraction: float
) -> bool:
    """Whether the plan deletes more than ``fraction`` (0 < fraction <= 1) of the repository's tags,
    not counting attachment tags: a run that would is stopped (``--max-delete``)."""
    images = [t for t in inventory.tags if not t.startswith(("sha256-", "sha512-"))]
    deleted = [
        e
        for e in entries
        if e.action is PruneAction.DELETE
        and e.tag is not None
        and not e.tag.startswith(("sha256-", "sha512-"))
    ]
    return bool(images) and len(deleted) > fraction * len(images)


def most_recent(times: Mapping[str, datetime], count: int) -> list[str]:
    """The ``count`` tags of ``times`` (tag or digest -> push time) pushed last; digests are left
    out, ties go to the greater tag name (so the answer does not depend on the order given)."""
    tags = [name for name in times if not name.startswith(("sha256:", "sha512:"))]
    tags.sort(key=lambda name: (times[name], name), reverse=True)
    return tags[:count]
