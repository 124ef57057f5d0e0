"""Promotion plans: which images an environment needs and what must happen to each. Pure.

An environment's overlay names images; those in the environment's own registry are *managed*, every
other image is *external* (reported, never touched). Each managed image is looked up in the
environment's registry (the destination) and, when the environment promotes from another one, under
the same repository path and tag or digest in that environment's registry (the source). The two
digests decide the status; registry I/O happens elsewhere (:mod:`promoter.planning.lookup`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from promoter.errors import InvalidReferenceError
from promoter.oci.digest import Digest
from promoter.outcome import Outcome, worst
from promoter.reference import Reference, parse_reference


class PlanStatus(StrEnum):
    """What a sync has to do for one image."""

    PRESENT = (
        "present"  #: the destination has it (with the source's digest, when the source has it)
    )
    COPY = "copy"  #: missing in the destination, present in the source
    CONFLICT = "conflict"  #: the destination tag holds another digest than the source's
    MISSING_SOURCE = "missing-source"  #: in neither registry
    EXTERNAL = "external"  #: not in the environment's registry: reported, never touched
    ERROR = "error"  #: a registry could not be asked (the message says why); the others go on


#: Statuses that make a sync fail: nothing can make these images present without a human.
BLOCKING = frozenset({PlanStatus.CONFLICT, PlanStatus.MISSING_SOURCE})


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One image of an environment and what to do about it.

    Attributes:
        image: the image as the manifests write it.
        destination: the normalised reference in the environment's registry (None when external).
        source: the same repository path and tag/digest in the source environment's registry.
        digest: the source's digest when known, else the destination's.
        status: the decision.
        error: why the registries could not be asked (status ``error`` only).
        held: for a conflict, the digest the destination tag holds (``digest`` is the one wanted).
    """

    image: str
    destination: Reference | None
    source: Reference | None
    digest: Digest | None
    status: PlanStatus
    error: str | None = None
    held: Digest | None = None

    @property
    def outcome(self) -> Outcome:
        """What this image means for a sync: failed when a registry could not be asked, refused
        when a human must act (conflict, missing source), done otherwise."""
        if self.status is PlanStatus.ERROR:
            return Outcome.FAILED
        return Outcome.REFUSED if self.status in BLOCKING else Outcome.DONE


@dataclass(frozen=True, slots=True)
class WantedImage:
    """An image an environment needs, with where to promote it from."""

    image: str
    destination: Reference | None
    source: Reference | None


def wanted_images(
    images: Iterable[str], registry: str, source_registry: str | None
) -> list[WantedImage]:
    """:func:`iter_wanted` as a list."""
    return list(iter_wanted(images, registry, source_registry))


def in_registry(reference: Reference, registry: str) -> bool:
    """Whether an image is *managed* by the environment whose registry is ``registry``: the one rule
    for "images in this environment's registry" (plan, sync, status, promote and the hook use it)."""
    return reference.registry == registry


def own_images(images: Iterable[str], registry: str) -> list[str]:
    """The distinct images of ``registry`` among ``images``, in first-use order, as written.

    Raises:
        InvalidReferenceError: an image does not parse, naming it.
    """
    return [w.image for w in iter_wanted(images, registry, None) if w.destination is not None]


def iter_wanted(
    images: Iterable[str], registry: str, source_registry: str | None
) -> Iterator[WantedImage]:
    """Classify the images an overlay uses: managed ones get a source reference, others are external.

    Each distinct image appears once, in first-seen order, as soon as it is seen.

    Raises:
        InvalidReferenceError: an image in the manifests does not parse, naming it.
    """
    seen: set[str] = set()
    for text in images:
        if text in seen:
            continue
        seen.add(text)
        try:
            reference = parse_reference(text)
        except InvalidReferenceError as exc:
            raise InvalidReferenceError(f"image in the manifests: {exc}") from exc
        if not in_registry(reference, registry):
            yield WantedImage(text, None, None)
            continue
        source = (
            reference.in_repository(source_registry, reference.repository)
            if source_registry is not None
            else None
        )
        yield WantedImage(text, reference, source)


def decide(
    wanted: WantedImage,
    destination_digest: Digest | None,
    source_digest: Digest | None,
    *,
    tag_digest: Digest | None = None,
) -> PlanItem:
    """The status of one image from what the two registries hold for it.

    Digests are compared as given, so they must be comparable: the lookup (``plan_images``) spells a
    destination answer in the algorithm it is compared with when the bytes are the same (a
    ``sha256:`` answer for a source's ``sha512:`` content), so two spellings of one content never
    look like a conflict.

    Args:
        wanted: the image.
        destination_digest: what its reference resolves to in the environment's registry, or None.
        source_digest: what the same reference resolves to in the source registry, or None (also
            when the environment promotes from nowhere).
        tag_digest: for a reference with both tag and digest, what the tag alone resolves to in the
            environment's registry: a tag on another digest is a conflict, a missing tag is a copy
            (tags are kept identical in both registries).
    """
    destination = wanted.destination
    if destination is None:
        return PlanItem(wanted.image, None, None, None, PlanStatus.EXTERNAL)
    digest = source_digest or destination_digest
    if destination.tag is not None and destination.digest is not None:
        pinned = destination.digest
        if tag_digest is not None and tag_digest != pinned:
            status = PlanStatus.CONFLICT
        elif tag_digest == pinned:
            status = PlanStatus.PRESENT
        elif source_digest is not None:
            status = PlanStatus.COPY  # the content may be there already; the tag is not
        elif destination_digest is not None:
            status = PlanStatus.PRESENT
        else:
            status = PlanStatus.MISSING_SOURCE
        held = tag_digest if status is PlanStatus.CONFLICT else None
        return PlanItem(
            wanted.image, destination, wanted.source, digest or pinned, status, held=held
        )
    if destination_digest is not None:
        if source_digest is None or source_digest == destination_digest:
            status = PlanStatus.PRESENT
        else:
            status = PlanStatus.CONFLICT
    elif source_digest is not None:
        status = PlanStatus.COPY
    else:
        status = PlanStatus.MISSING_SOURCE
    held = destination_digest if status is PlanStatus.CONFLICT else None
    return PlanItem(wanted.image, destination, wanted.source, digest, status, held=held)


def failed(wanted: WantedImage, error: str) -> PlanItem:
    """An image whose registries could not be asked; a sync reports it and goes on with the rest."""
    return PlanItem(wanted.image, wanted.destination, wanted.source, None, PlanStatus.ERROR, error)


def blocks_sync(items: Iterable[PlanItem]) -> bool:
    """Whether anything in the plan keeps a sync from making every managed image present."""
    return any(item.status in BLOCKING for item in items)


def plan_outcome(items: Iterable[PlanItem]) -> Outcome:
    """The plan's outcome: the worst of its images'."""
    return worst(item.outcome for item in items)
