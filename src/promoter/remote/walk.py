"""Walking an image: which manifests and blobs a destination lacks, children before parents.

A manifest the destination already holds by digest was accepted there, so everything it refers to is there
too (registries check that on push: distribution spec, "Pushing Manifests"): its subtree needs no work.
"""

from __future__ import annotations

from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

from promoter.oci.digest import Digest
from promoter.oci.manifest import Descriptor
from promoter.remote.repository import FetchedManifest, Repository


@dataclass(slots=True)
class ImageWalk:
    """What one image needs in a destination.

    Attributes:
        levels: manifests by depth; ``levels[0]`` is the top manifest alone, each later level the
            children the destination lacks. Pushed deepest first, the top last.
        blobs: config and layer blobs of those manifests, by digest.
    """

    levels: list[list[FetchedManifest]] = field(default_factory=list)
    blobs: dict[Digest, Descriptor] = field(default_factory=dict)

    @property
    def top(self) -> FetchedManifest:
        """The manifest the tag will point at."""
        return self.levels[0][0]


def walk_image(
    src: Repository,
    dst: Repository,
    digest: Digest,
    *,
    include_foreign: bool,
    workers: Executor,
    known_absent: bool = False,
    top: Future[FetchedManifest] | None = None,
) -> ImageWalk:
    """Walk the source manifest tree of ``digest`` level by level, skipping subtrees ``dst`` has.

    Args:
        src, dst: source and destination repositories.
        digest: the top manifest's digest in the source.
        include_foreign: also list foreign (non-distributable) layers, those with ``urls``.
        known_absent: the caller has just asked ``dst`` for ``digest`` and it was not there: do
            not ask again. An image manifest whose fetch is done is not asked for either.
        top: the top manifest's fetch, when the caller started it already.
        workers: runs the lookups of one level concurrently; the caller must not be one of its
            threads (waiting here would then deadlock).

    Raises:
        RegistryError, RegistryUnreachableError, DigestMismatchError, UnsupportedManifestError.
    """
    fetch = top if top is not None else workers.submit(src.get_manifest, str(digest))
    # An image manifest already read (no child manifests) is not asked for by digest: the HEADs
    # of its blobs, made anyway when it is absent (the usual case: a new version), tell as much in
    # the same round trip, and where it is present they find every blob (issue 14: a round trip
    # less per image). An index is asked, which spares the walk of its children.
    leaf = fetch.done() and fetch.exception() is None and not fetch.result().manifest.manifests
    present = not known_absent and not leaf and dst.head_manifest(str(digest)) is not None
    walk = ImageWalk(levels=[[fetch.result()]])
    if present:
        return walk  # the content is there under another tag or none: only the tag is missing
    level = walk.levels[0]
    while level:
        wanted: dict[Digest, None] = {}
        for item in level:
            wanted.update(dict.fromkeys(d.digest for d in item.manifest.manifests))
            for blob in wanted_blobs(item, include_foreign=include_foreign):
                walk.blobs.setdefault(blob.digest, blob)
        futures = [workers.submit(fetch_if_missing, src, dst, d) for d in wanted]
        level = [m for m in (f.result() for f in futures) if m is not None]
        if level:
            walk.levels.append(level)
    return walk


def wanted_blobs(manifest: FetchedManifest, *, include_foreign: bool) -> list[Descriptor]:
    """The blobs of one manifest that a copy moves: all but foreign (non-distributable) layers,
    unless asked for."""
    return [b for b in manifest.manifest.blobs if include_foreign or not b.is_foreign]


def fetch_if_missing(src: Repository, dst: Repository, digest: Digest) -> FetchedManifest | None:
    """The source's child manifest, or None when the destination already has it."""
    if dst.head_manifest(str(digest)) is not None:
        return None
    return src.get_manifest(str(digest))
