"""Promotion plans: which images an environment needs and what must happen to each. Pure.

An environment's overlay names images; those in the environment's own registry are *managed*; an image in
the registry of another environment of the pipeline is *foreign* (production pulling from dev's account:
refused by a sync unless the environment allows it); every other image is *external* (reported, never
touched). Each managed image is looked up in the
environment's registry (the destination) and, when the environment promotes from another one, under
the same repository path and tag or digest in that environment's registry (the source). The two
digests decide the status; registry I/O happens elsewhere (:mod:`promoter.planning.lookup`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from promoter.errors import InvalidReferenceError
from promoter.oci.digest import Digest
from promoter.oci.referrers import ALL_ATTACHMENTS, Attachment, AttachmentFilter
from promoter.outcome import Outcome, worst
from promoter.reference import Reference, parse_reference, registry_identity


class PlanStatus(StrEnum):
    """What a sync has to do for one image."""

    PRESENT = (
        "present"  #: the destination has it (with the source's digest, when the source has it)
    )
    COPY = "copy"  #: missing in the destination, present in the source
    #: present, but some of what is attached to it in the source (signatures, attestations, SBOMs)
    #: is not in the destination: a sync copies just those
    ATTACH = "attach"
    CONFLICT = "conflict"  #: the destination tag holds other content than the one wanted (pinned)
    DIVERGED = "diverged"  #: the destination has the tag; the source's tag now holds other content
    MISSING_SOURCE = "missing-source"  #: in neither registry
    FOREIGN = "foreign-environment"  #: in another environment's registry, not this one's
    EXTERNAL = "external"  #: not in the environment's registry: reported, never touched
    ERROR = "error"  #: a registry could not be asked (the message says why); the others go on


#: Statuses that make a sync fail: nothing can make these images present without a human.
BLOCKING = frozenset({PlanStatus.CONFLICT, PlanStatus.MISSING_SOURCE})


@dataclass(frozen=True, slots=True)
class PlanPolicy:
    """Which of the statuses that a sync may live with are failures for an environment.

    Attributes:
        fail_diverged: a ``diverged`` image (a re-pushed source tag; the environment keeps what it
            was given) is refused instead of a warning (``--fail-on-diverged``; promoter.yaml
            ``divergedTags: fail``).
        allowed_foreign: environments whose registry's images this environment may deploy
            (promoter.yaml ``allowImagesFrom``); ``"*"`` allows every one (``--allow-foreign``).
        attachments: which attachments of an image travel with it, and so are looked for in
            the destination (``--no-referrers``, ``--referrers-type``).
    """

    fail_diverged: bool = False
    allowed_foreign: frozenset[str] = field(default_factory=frozenset)
    attachments: AttachmentFilter = ALL_ATTACHMENTS

    def allows(self, environment: str) -> bool:
        """Whether images of ``environment``'s registry may be deployed."""
        return "*" in self.allowed_foreign or environment in self.allowed_foreign


#: The default: a divergence is a warning, every foreign image is refused.
DEFAULT_POLICY: Final = PlanPolicy()


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One image of an environment and what to do about it.

    Attributes:
        image: the image as the manifests write it.
        destination: the normalised reference in the environment's registry (None when external).
        source: the same repository path and tag/digest in the source environment's registry.
        digest: the source's digest when known, else the destination's.
        status: the decision.
        error: why the registries could not be asked (status ``error``), or what a registry said
            about a ``missing-source`` image (a repository it refused with insufficient_scope).
        held: for a conflict or a divergence, the digest the destination tag holds (``digest`` is
            the source's, or the pinned one).
        foreign: for ``foreign-environment``, the environment whose registry holds the image.
        blocking: whether the status makes a sync fail: always for a conflict or a missing
            source, by the :class:`PlanPolicy` for ``diverged`` and ``foreign-environment``.
        attachments: for ``attach``, the attachments the destination lacks.
        differing_attachments: cosign tag attachments (``sha256-<hex>.sig``) whose destination
            tag holds other content than the source's, with the digest it holds: a signature
            added on one side after the promotion. Kept, with a warning (like a ``diverged`` tag);
            refused under ``fail_diverged``.
        left_behind: artifact types of the source's attachments the filter leaves out.
    """

    image: str
    destination: Reference | None
    source: Reference | None
    digest: Digest | None
    status: PlanStatus
    error: str | None = None
    held: Digest | None = None
    foreign: str | None = None
    blocking: bool = False
    attachments: tuple[Attachment, ...] = ()
    differing_attachments: tuple[tuple[Attachment, Digest], ...] = ()
    left_behind: frozenset[str] = frozenset()

    @property
    def outcome(self) -> Outcome:
        """What this image means for a sync: failed when a registry could not be asked, refused
        when a human must act (conflict, missing source, and what the policy refuses), done
        otherwise."""
        if self.status is PlanStatus.ERROR:
            return Outcome.FAILED
        return Outcome.REFUSED if self.blocking or self.status in BLOCKING else Outcome.DONE


@dataclass(frozen=True, slots=True)
class WantedImage:
    """An image an environment needs, with where to promote it from.

    Attributes:
        image: as the manifests write it.
        destination: the normalised reference when the environment's registry holds it, else None.
        source: the same repository path and tag/digest in the source environment's registry.
        foreign: the other environment whose registry the image is in (destination None).
    """

    image: str
    destination: Reference | None
    source: Reference | None
    foreign: str | None = None


def wanted_images(
    images: Iterable[str],
    registry: str,
    source_registry: str | None,
    *,
    others: Mapping[str, str] | None = None,
) -> list[WantedImage]:
    """:func:`iter_wanted` as a list."""
    return list(iter_wanted(images, registry, source_registry, others=others))


def in_registry(reference: Reference, registry: str) -> bool:
    """Whether an image is *managed* by the environment whose registry is ``registry``: the one rule
    for "images in this environment's registry" (plan, sync, status, promote, the hook and the
    admission webhook use it). Ports compare as numbers and ``:443`` is the host's own
    (:func:`~promoter.reference.registry_identity`): ``prod:443/x`` is prod's image."""
    return registry_identity(reference.registry) == registry_identity(registry)


def own_images(images: Iterable[str], registry: str) -> list[str]:
    """The distinct images of ``registry`` among ``images``, in first-use order, as written.

    Raises:
        InvalidReferenceError: an image does not parse, naming it.
    """
    return [w.image for w in iter_wanted(images, registry, None) if w.destination is not None]


def iter_wanted(
    images: Iterable[str],
    registry: str,
    source_registry: str | None,
    *,
    others: Mapping[str, str] | None = None,
) -> Iterator[WantedImage]:
    """Classify the images an overlay uses: managed ones get a source reference, images of another
    environment's registry are foreign, the rest external.

    Each distinct image appears once, in first-seen order, as soon as it is seen.

    Args:
        images: as the manifests write them.
        registry: the environment's registry host.
        source_registry: the registry of the environment it promotes from, if any.
        others: the other environments' registries: host -> environment name (the source's first).

    Raises:
        InvalidReferenceError: an image in the manifests does not parse, naming it.
    """
    owners = {registry_identity(host): name for host, name in (others or {}).items()}
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
            yield WantedImage(text, None, None, owners.get(registry_identity(reference.registry)))
            continue
        # As promoter.yaml spells the registry, so that its registries: settings apply.
        reference = reference.in_repository(registry, reference.repository)
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
    policy: PlanPolicy = DEFAULT_POLICY,
) -> PlanItem:
    """The status of one image from what the two registries hold for it.

    Digests are compared as given, so they must be comparable: the lookup (``plan_images``) spells a
    destination answer in the algorithm it is compared with when the bytes are the same (a
    ``sha256:`` answer for a source's ``sha512:`` content), so two spellings of one content never
    look like a conflict.

    The table, for a tag (or a digest) alone:

    ==================  ==============  ==================
    destination         source          status
    ==================  ==============  ==================
    has it              same / none     present
    has it              other content   diverged (the tag was re-pushed in the source after it
                                        was promoted; the environment keeps what it was given)
    lacks it            has it          copy
    lacks it            lacks it        missing-source
    ==================  ==============  ==================

    For ``tag@digest`` the pinned digest is what is wanted: in neither registry it is
    missing-source; a destination tag on other content is a conflict (a sync never moves a tag);
    a destination tag on it is present; otherwise it is copied (or only tagged).

    Args:
        wanted: the image.
        destination_digest: what its reference resolves to in the environment's registry, or None.
        source_digest: what the same reference resolves to in the source registry, or None (also
            when the environment promotes from nowhere).
        tag_digest: for a reference with both tag and digest, what the tag alone resolves to in the
            environment's registry.
        policy: whether ``diverged`` and ``foreign-environment`` block a sync.
    """
    destination = wanted.destination
    if destination is None:
        if wanted.foreign is not None:
            return PlanItem(
                wanted.image,
                None,
                None,
                None,
                PlanStatus.FOREIGN,
                foreign=wanted.foreign,
                blocking=not policy.allows(wanted.foreign),
            )
        return PlanItem(wanted.image, None, None, None, PlanStatus.EXTERNAL)
    digest = source_digest or destination_digest
    held: Digest | None = None
    if destination.tag is not None and destination.digest is not None:
        pinned = destination.digest
        digest = pinned
        if source_digest is None and destination_digest is None:
            status = PlanStatus.MISSING_SOURCE  # the pinned content exists nowhere
        elif tag_digest is not None and tag_digest != pinned:
            status, held = PlanStatus.CONFLICT, tag_digest
        elif tag_digest == pinned or source_digest is None:
            status = PlanStatus.PRESENT  # tagged already, or the content is there to tag later
        else:
            status = PlanStatus.COPY  # the content may be there already; the tag is not
        return PlanItem(wanted.image, destination, wanted.source, digest, status, held=held)
    if destination_digest is not None:
        if source_digest is None or source_digest == destination_digest:
            status = PlanStatus.PRESENT
        else:
            status, held = PlanStatus.DIVERGED, destination_digest
    elif source_digest is not None:
        status = PlanStatus.COPY
    else:
        status = PlanStatus.MISSING_SOURCE
    blocking = status is PlanStatus.DIVERGED and policy.fail_diverged
    return PlanItem(
        wanted.image, destination, wanted.source, digest, status, held=held, blocking=blocking
    )


def failed(wanted: WantedImage, error: str) -> PlanItem:
    """An image whose registries could not be asked; a sync reports it and goes on with the rest."""
    return PlanItem(wanted.image, wanted.destination, wanted.source, None, PlanStatus.ERROR, error)


def blocks_sync(items: Iterable[PlanItem]) -> bool:
    """Whether anything in the plan keeps a sync from making every managed image present."""
    return any(item.outcome is Outcome.REFUSED for item in items)


def plan_outcome(items: Iterable[PlanItem]) -> Outcome:
    """The plan's outcome: the worst of its images'."""
    return worst(item.outcome for item in items)
