"""Registry facts a prune plan needs: a repository's tags and what its manifests refer to.

Every tag is listed (the listing must be complete: a prune that missed a page would miss a tag that
keeps a digest) and every tagged manifest is read once, for the children of an index and the
``subject`` of a referrer. Referrers come from the referrers-tag indexes (``sha256-<hex>``) the
listing shows and, on a registry with the referrers API, from the API for each tagged digest.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from promoter.deadline import Deadline
from promoter.errors import InvalidDigestError, PromoterError, UnsupportedManifestError
from promoter.oci.digest import Digest, parse_digest
from promoter.oci.mediatypes import INDEX_TYPES
from promoter.oci.referrers import parse_referrers_index
from promoter.planning.prune import ManifestFacts, RepositoryInventory
from promoter.process import signals_to_main_thread
from promoter.reference import Reference
from promoter.remote.repository import FetchedManifest, Repository
from promoter.transport.session import Transport

#: Concurrent manifest reads while taking an inventory.
INVENTORY_READS = 16


def repository_inventory(
    transport: Transport, reference: Reference, *, deadline: Deadline | None = None
) -> RepositoryInventory:
    """The tags of ``reference``'s repository and what its manifests refer to.

    Raises:
        RegistryError, RegistryUnreachableError, DeadlineExceededError, AnswerTooLargeError:
            the repository could not be listed or a manifest read: a prune must then delete
            nothing (a partial inventory would shrink what is kept).
        UnsupportedManifestError: a manifest promoter cannot read.
    """
    repository = Repository.of(transport, reference, deadline=deadline)
    tags = tag_digests(repository)
    with ThreadPoolExecutor(
        max_workers=INVENTORY_READS,
        thread_name_prefix="inventory",
        initializer=signals_to_main_thread,
    ) as pool:
        reads = {d: pool.submit(repository.get_manifest, str(d)) for d in set(tags.values())}
        manifests: dict[Digest, ManifestFacts] = {}
        nested: list[Digest] = []
        for digest, read in reads.items():
            fetched = read.result()
            manifests[digest] = _facts(fetched)
            for tag in (t for t, d in tags.items() if d == digest and _is_referrers_tag(t)):
                _add_referrers(manifests, tag, fetched.data, repository)
            nested.extend(
                c.digest for c in fetched.manifest.manifests if c.media_type in INDEX_TYPES
            )
    inventory = RepositoryInventory(str(repository), tags, manifests)
    # An index inside an index (nested platforms): its children are what keeping it keeps.
    return with_manifests(transport, reference, inventory, nested, deadline=deadline)


def tag_digests(repository: Repository) -> dict[str, Digest]:
    """Every tag of ``repository`` and the digest it points at (a listing, then a HEAD each).

    Raises:
        PromoterError: a listed tag the registry does not serve (a lying registry, or a tag
            deleted meanwhile): an inventory that cannot be trusted.
        RegistryError, RegistryUnreachableError, DeadlineExceededError, AnswerTooLargeError.
    """
    names = repository.list_tags()
    tags: dict[str, Digest] = {}
    with ThreadPoolExecutor(
        max_workers=INVENTORY_READS,
        thread_name_prefix="inventory",
        initializer=signals_to_main_thread,
    ) as pool:
        heads = {tag: pool.submit(repository.head_manifest, tag) for tag in names}
        for tag, head in heads.items():
            info = head.result()
            if info is None:
                # Listed, yet not there: a registry that lies, or a tag deleted meanwhile. Either
                # way the inventory cannot be trusted to decide deletions.
                raise PromoterError(
                    f"{repository}: the tag list names {tag!r}, which the registry does not "
                    "serve (deleted meanwhile, by another prune say, or a wrong list); nothing "
                    "is deleted from an inventory that cannot be trusted: run again"
                )
            tags[tag] = info.digest
    return tags


def _facts(fetched: FetchedManifest) -> ManifestFacts:
    """What a prune needs of one manifest: its children, its subject, its size with its blobs."""
    manifest = fetched.manifest
    return ManifestFacts(
        children=tuple(c.digest for c in manifest.manifests),
        subject=manifest.subject.digest if manifest.subject else None,
        size=len(fetched.data) + sum(b.size for b in manifest.blobs),
    )


def _is_referrers_tag(tag: str) -> bool:
    return tag.startswith(("sha256-", "sha512-")) and "." not in tag


def _add_referrers(
    manifests: dict[Digest, ManifestFacts], tag: str, data: bytes, repository: Repository
) -> None:
    """The referrers a ``sha256-<hex>`` index lists, as manifests whose subject is that digest (an
    index under such a tag that is no referrers list, e.g. an image ``cosign copy`` tagged so, adds
    nothing)."""
    algorithm, _, encoded = tag.partition("-")
    try:
        subject = parse_digest(f"{algorithm}:{encoded}")
        entries = parse_referrers_index(data, f"{repository}:{tag}")
    except (UnsupportedManifestError, InvalidDigestError):  # not a referrers list after all
        return
    for entry in entries:
        known = manifests.get(entry.digest)
        manifests[entry.digest] = ManifestFacts(
            children=known.children if known else (),
            subject=subject,
            size=known.size if known else entry.size,
        )


def with_manifests(
    transport: Transport,
    reference: Reference,
    inventory: RepositoryInventory,
    digests: Iterable[Digest],
    *,
    deadline: Deadline | None = None,
) -> RepositoryInventory:
    """``inventory`` with what it lacks of ``digests`` (kept references by digest alone, which no
    tag names) read, and their children, recursively: a kept index must keep its platforms even
    when no tag points at it. A digest the repository does not have adds nothing.

    Raises:
        RegistryError, RegistryUnreachableError, DeadlineExceededError, UnsupportedManifestError.
    """
    repository = Repository.of(transport, reference, deadline=deadline)
    manifests = dict(inventory.manifests)
    pending = [d for d in digests if d not in manifests]
    while pending:
        digest = pending.pop()
        if digest in manifests or repository.head_manifest(str(digest)) is None:
            continue
        manifests[digest] = _facts(repository.get_manifest(str(digest)))
        pending.extend(c for c in manifests[digest].children if c not in manifests)
    return RepositoryInventory(inventory.name, inventory.tags, manifests)
