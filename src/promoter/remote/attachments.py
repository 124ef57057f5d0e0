"""Finding what is attached to an image, in a source and in a destination registry.

What counts as attached (:mod:`promoter.oci.referrers` has the two schemes): for the image's digest and
the digest of every child manifest of its index, its OCI 1.1 referrers (the referrers API where the
registry answers it, else the index under the referrers tag ``sha256-<hex>``) and cosign's tag
attachments ``sha256-<hex>.sig``, ``.att``, ``.sbom``; then, recursively, what is attached to each of
those (the signature of an SBOM).

Cost, measured against one copy's requests (bench/README.md, "Signatures"): each source repository's tag
list is read once per run (one request for up to 1,000 tags), which tells at once which tag attachments
and referrers tags exist for every digest of the image; each registry is asked once per run whether it
has the referrers API. An image whose repository has no ``sha256-`` tag in a registry without the API
costs that one tag list and nothing else. Only digests that have attachments cost more.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import TypeVar

from promoter.errors import (
    AnswerTooLargeError,
    AuthenticationError,
    PromoterError,
    UnsupportedManifestError,
)
from promoter.oci.digest import Digest
from promoter.oci.mediatypes import INDEX_TYPES
from promoter.oci.referrers import (
    TAG_SUFFIXES,
    Attachment,
    AttachmentFilter,
    AttachmentKind,
    ReferrerDescriptor,
    attachment_tag,
    is_attachment_tag,
    parse_referrers_index,
    referrers_tag,
)
from promoter.remote.repository import FetchedManifest, Repository

#: Attachments of one image followed at most, all depths together: a registry that lists a
#: referrer of every referrer, endlessly, is cut off here (real images carry a handful).
MAX_ATTACHMENTS = 1000
#: How many levels of attachments are followed (an SBOM of the image is level 1, its signature
#: level 2).
MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class SourceAttachments:
    """What is attached to an image in its source registry.

    Attributes:
        found: every attachment that travels, subjects before what is attached to them.
        left_behind: artifact types of attachments the filter (``--referrers-type``) kept from
            travelling (``(none)`` for one without a type), for a note to the user.
    """

    found: tuple[Attachment, ...] = ()
    left_behind: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class AttachmentPlan:
    """What an image's attachments need in a destination.

    Attributes:
        found: every attachment in the source that travels, subjects before what is attached to
            them.
        missing: those the destination lacks: a referrer it does not list, a tag attachment whose
            tag is absent.
        differing: tag attachments whose destination tag holds other content (a signature added
            on either side after the promotion), with the digest it holds: kept by a sync, refused
            by a copy unless forced.
        left_behind: as :attr:`SourceAttachments.left_behind`.
        dangling: referrers the source lists but no longer has (see
            :meth:`AttachmentFinder.without_dangling`): not copied, reported.
    """

    found: tuple[Attachment, ...] = ()
    missing: tuple[Attachment, ...] = ()
    differing: tuple[tuple[Attachment, Digest], ...] = ()
    left_behind: frozenset[str] = frozenset()
    dangling: tuple[Attachment, ...] = ()


#: Nothing attached.
NOTHING: AttachmentPlan = AttachmentPlan()
#: Nothing attached in the source.
NONE_FOUND: SourceAttachments = SourceAttachments()

#: How :attr:`SourceAttachments.left_behind` names an attachment without an artifact type.
NO_TYPE = "(none)"


@dataclass(slots=True)
class AttachmentFinder:
    """One run's memory of where attachments are: each repository's tag list and whether each
    registry has the referrers API, each asked once (concurrent askers wait for the first).

    Args:
        filter: which attachments travel.
    """

    filter: AttachmentFilter
    _tags: dict[tuple[str, str], Future[frozenset[str] | None]] = field(default_factory=dict)
    _api: dict[str, bool] = field(default_factory=dict)
    _probed: dict[tuple[str, str, Digest], list[ReferrerDescriptor]] = field(default_factory=dict)
    _probes: dict[str, Future[bool]] = field(default_factory=dict)
    _manifests: dict[tuple[str, str, Digest], FetchedManifest] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fetched(self, repository: Repository, digest: Digest) -> FetchedManifest | None:
        """A tag attachment's manifest as :meth:`find` read it (a copy need not read it again)."""
        return self._manifests.get((repository.session.registry, repository.name, digest))

    def has_api_probed(
        self, repository: Repository, digest: Digest, tags: frozenset[str] | None
    ) -> bool:
        """Whether the repository's registry has the referrers API, asked once per run and
        registry (with ``digest``, which must exist there; the answer for it is kept for
        :meth:`referrers`); concurrent askers wait for the first."""
        registry = repository.session.registry

        def probe() -> bool:
            listed = self.referrers(repository, digest, tags=tags)
            api = self._api.get(registry, False)
            if api:
                self._probed[(registry, repository.name, digest)] = listed
            return api

        known = self._api.get(registry)
        return known if known is not None else _once(self._lock, self._probes, registry, probe)

    def tags(self, repository: Repository) -> frozenset[str] | None:
        """The repository's tags (one listing per run), or None when the registry refuses to list
        them (401/403: an ECR pull policy without ``ecr:ListImages``) or has more than
        :data:`~promoter.remote.repository.MAX_TAGS`; then each tag that may hold an attachment
        is asked for by name instead.

        Raises:
            RegistryError, RegistryUnreachableError, DeadlineExceededError: no listing.
            PromoterError: the registry links a page twice (a loop).
        """

        def listing() -> frozenset[str] | None:
            try:
                return frozenset(repository.list_tags())
            except (AuthenticationError, AnswerTooLargeError):
                return None

        key = (repository.session.registry, repository.name)
        return _once(self._lock, self._tags, key, listing)

    def referrers(
        self,
        repository: Repository,
        subject: Digest,
        *,
        tags: frozenset[str] | None = None,
        artifact_type: str | None = None,
        strict: bool = False,
    ) -> list[ReferrerDescriptor]:
        """What refers to ``subject`` in ``repository``: the referrers API's answer when the
        registry has one (asked once per run and registry), else the index under the referrers tag
        (distribution-spec v1.1, "Listing Referrers": "If the referrers API returns a 404, the
        client MUST fallback to pulling the referrers tag schema"). With ``tags`` (the repository's
        tag list), a referrers tag that is not in it is not asked for. ``artifact_type`` is passed
        to the API as its filter (the registry may ignore it: callers filter again).

        A referrers tag that holds no OCI index (``cosign copy`` tags the image itself so) lists
        nothing: "the client SHOULD assume there are no referrers"; with ``strict`` (a
        destination, where the index would have to be written) it is an error.

        Raises:
            RegistryError, RegistryUnreachableError, DeadlineExceededError: no answer.
            UnsupportedManifestError: the API answered something unreadable; with ``strict``, the
                referrers tag holds no referrers index.
            PromoterError: more referrers, or pages, than promoter reads.
        """
        registry = repository.session.registry
        probed = self._probed.pop((registry, repository.name, subject), None)
        if probed is not None and artifact_type is None:
            return probed
        if self._api.get(registry, True):
            try:
                answer = repository.get_referrers(subject, artifact_type)
            except AuthenticationError:
                # Refused while manifests are readable (a policy that grants pulls only): the
                # referrers tag can still be read; that is all this identity can know.
                answer = None
            if answer is not None:
                self._api[registry] = True
                return list(answer.entries)
            # A registry that answered the API once keeps it: this answer was about one digest.
            self._api.setdefault(registry, False)
        tag = referrers_tag(subject)
        if tags is not None and tag not in tags:
            return []
        fetched = fallback_index(repository, subject)
        if fetched is None:
            return []
        try:
            return parse_referrers_index(fetched.data, f"{repository}:{tag}")
        except UnsupportedManifestError:
            if strict:
                raise
            return []

    def _listed(self, repository: Repository, subject: Digest, wanted: set[Digest]) -> set[Digest]:
        """What ``repository`` lists as referring to ``subject``: its API's answer and, when that
        lacks some of ``wanted``, its referrers-tag index too (a registry whose API does not index
        what is pushed, or does so late, is given the index: both count)."""
        listed = {e.digest for e in self.referrers(repository, subject, strict=True)}
        api = self._api.get(repository.session.registry)
        if api and not wanted <= listed:
            fetched = fallback_index(repository, subject)
            if fetched is not None:
                what = f"{repository}:{referrers_tag(subject)}"
                indexed = {e.digest for e in parse_referrers_index(fetched.data, what)}
                listed |= self._existing(repository, indexed & wanted)
        elif not api:
            # The referrers tag is kept by clients, not the registry: an entry whose manifest was
            # deleted since counts as missing (one HEAD per wanted entry), so it is pushed again.
            listed = self._existing(repository, listed & wanted)
        return listed

    @staticmethod
    def _existing(repository: Repository, digests: set[Digest]) -> set[Digest]:
        """Those of ``digests`` whose manifest ``repository`` has (one HEAD each)."""
        return {d for d in digests if repository.head_manifest(str(d)) is not None}

    def has_api(self, repository: Repository) -> bool | None:
        """Whether the repository's registry answered the referrers API in this run (None: not
        asked yet)."""
        return self._api.get(repository.session.registry)

    def plan(
        self,
        src: Repository,
        dst: Repository,
        digest: Digest,
        top: FetchedManifest | None = None,
    ) -> AttachmentPlan:
        """Find what is attached to the image ``digest`` in ``src`` and what of it ``dst`` lacks.

        The image must be present in ``dst`` (its digest is what the destination's referrers are
        asked for).

        Args:
            top: the image's manifest when the caller has it (saves a GET).

        Raises:
            RegistryError, RegistryUnreachableError, DeadlineExceededError, DigestMismatchError,
            UnsupportedManifestError: a registry could not tell.
        """
        source = self.in_source(src, digest, top)
        if not source.found:
            return AttachmentPlan(left_behind=source.left_behind)
        return self.without_dangling(src, self.compare(dst, source))

    def in_source(
        self,
        src: Repository,
        digest: Digest,
        top: FetchedManifest | Future[FetchedManifest] | None = None,
    ) -> SourceAttachments:
        """Every attachment of the image ``digest`` in ``src`` that travels (:meth:`find` over
        the image and its index's children); nothing at all, at the cost of the repository's tag
        list, when the registry has no referrers API and no tag can hold an attachment.

        Raises:
            as :meth:`plan`.
        """
        if not self.filter.enabled:
            return NONE_FOUND
        tags = self.tags(src)
        api = self.has_api_probed(src, digest, tags)
        if not api and tags is not None and not any(is_attachment_tag(t) for t in tags):
            return NONE_FOUND
        if isinstance(top, Future):
            top = top.result()
        subjects = subject_digests(src, top or src.get_manifest(str(digest)))
        return self.find(src, subjects, tags)

    def find(
        self, src: Repository, subjects: Sequence[Digest], tags: frozenset[str] | None
    ) -> SourceAttachments:
        """Every attachment of ``subjects`` that travels, level by level (what is attached to an
        attachment after it), each digest once.

        Raises:
            PromoterError: an attachment could not be read, or there are more than
                :data:`MAX_ATTACHMENTS` (a registry listing referrers without end).
        """
        left_behind: set[str] = set()
        found: list[Attachment] = []
        seen: set[Digest] = set(subjects)
        level = list(subjects)
        depth = 0
        while level:
            following: list[Digest] = []
            for subject in level:
                for attachment in self._attached(src, subject, depth, tags, left_behind):
                    if attachment.digest in seen:
                        continue
                    if depth >= MAX_DEPTH:
                        raise PromoterError(
                            f"{src}: attachments of attachments more than {MAX_DEPTH} levels "
                            "deep; refusing to follow them all"
                        )
                    seen.add(attachment.digest)
                    found.append(attachment)
                    following.append(attachment.digest)
                    if len(found) > MAX_ATTACHMENTS:
                        raise PromoterError(
                            f"{src}: more than {MAX_ATTACHMENTS} attachments (referrers and "
                            "signature tags) for one image; refusing to follow them all"
                        )
            level = following
            depth += 1
        return SourceAttachments(tuple(found), frozenset(left_behind))

    def _attached(
        self,
        src: Repository,
        subject: Digest,
        depth: int,
        tags: frozenset[str] | None,
        left_behind: set[str],
    ) -> list[Attachment]:
        """What is directly attached to ``subject``: its referrers, then its cosign tags; the
        types the filter keeps back are added to ``left_behind``."""
        wanted = sorted(self.filter.artifact_types)
        only = wanted[0] if depth == 0 and len(wanted) == 1 else None
        attached = []
        for entry in self.referrers(src, subject, tags=tags, artifact_type=only):
            if self.filter.admits(entry.artifact_type, depth):
                attached.append(
                    Attachment(
                        AttachmentKind.REFERRER,
                        subject,
                        entry.digest,
                        entry.artifact_type,
                        None,
                        depth,
                    )
                )
            else:
                left_behind.add(entry.artifact_type or NO_TYPE)
        for kind in TAG_SUFFIXES:
            tag = attachment_tag(subject, kind)
            if tags is not None and tag not in tags:
                continue
            if tags is None and src.head_manifest(tag) is None:
                continue
            fetched = src.get_manifest(tag)
            self._manifests[(src.session.registry, src.name, fetched.digest)] = fetched
            artifact_type = tag_artifact_type(fetched)
            if self.filter.admits(artifact_type, depth):
                attached.append(
                    Attachment(kind, subject, fetched.digest, artifact_type, tag, depth)
                )
            else:
                left_behind.add(artifact_type or NO_TYPE)
        return attached

    def compare(self, dst: Repository, source: SourceAttachments) -> AttachmentPlan:
        """What ``dst`` lacks of ``source``: a referrer its listing of the subject does not name
        (asked once per subject), a tag attachment whose tag is absent; and the tag attachments
        whose tag holds other content there.

        Raises:
            RegistryError, RegistryUnreachableError, DeadlineExceededError, DigestMismatchError,
            UnsupportedManifestError: the destination could not tell.
        """
        listed: dict[Digest, set[Digest]] = {}
        wanted: dict[Digest, set[Digest]] = {}
        for attachment in source.found:
            if attachment.kind is AttachmentKind.REFERRER:
                wanted.setdefault(attachment.subject, set()).add(attachment.digest)
        missing = []
        differing = []
        for attachment in source.found:
            if attachment.kind is AttachmentKind.REFERRER:
                subject = attachment.subject
                if subject not in listed:
                    listed[subject] = self._listed(dst, subject, wanted[subject])
                if attachment.digest not in listed[attachment.subject]:
                    missing.append(attachment)
                continue
            held = dst.head_manifest(str(attachment.tag))
            if held is None:
                missing.append(attachment)
            elif not dst.same_content(held.digest, attachment.digest):
                differing.append((attachment, held.digest))
        return AttachmentPlan(source.found, tuple(missing), tuple(differing), source.left_behind)

    def without_dangling(self, src: Repository, plan: AttachmentPlan) -> AttachmentPlan:
        """``plan`` without the missing referrers that ``src`` lists but no longer has (a referrer
        deleted while its subject's referrers index still names it: ordinary clean-up with crane
        or regctl leaves that), which no copy could bring; they are :attr:`AttachmentPlan.dangling`.
        One HEAD in the source per missing referrer.

        Raises:
            RegistryError, RegistryUnreachableError, DeadlineExceededError: no answer.
        """
        dangling = tuple(
            a
            for a in plan.missing
            if a.kind is AttachmentKind.REFERRER and src.head_manifest(str(a.digest)) is None
        )
        if not dangling:
            return plan
        gone = {a.digest for a in dangling}
        kept = tuple(a for a in plan.missing if a.digest not in gone and a.subject not in gone)
        return replace(plan, missing=kept, dangling=dangling)


def fallback_index(repository: Repository, subject: Digest) -> FetchedManifest | None:
    """The manifest under ``subject``'s referrers tag, or None when the tag does not exist.

    Asked with every manifest type in Accept (:meth:`Repository.get_manifest`): Distribution answers
    a GET of an OCI index without the index type in Accept with a 404, which would read as "no
    referrers yet" and let a writer wipe the list.

    Raises:
        RegistryError, RegistryUnreachableError, DeadlineExceededError, DigestMismatchError,
        UnsupportedManifestError.
    """
    tag = referrers_tag(subject)
    if repository.head_manifest(tag) is None:
        return None
    return repository.get_manifest(tag)


def subject_digests(src: Repository, top: FetchedManifest) -> list[Digest]:
    """The image's digest and every child manifest's, nested indexes followed (each fetched once)."""
    digests = [top.digest]
    pending = [top]
    while pending:
        manifest = pending.pop()
        for child in manifest.manifest.manifests:
            if child.digest in digests:
                continue
            digests.append(child.digest)
            if child.media_type in INDEX_TYPES:
                pending.append(src.get_manifest(str(child.digest)))
    return digests


def tag_artifact_type(fetched: FetchedManifest) -> str | None:
    """What a cosign tag attachment holds: the manifest's ``artifactType``, else its first layer's
    media type (cosign's signature, DSSE envelope or SBOM type: their configs say nothing)."""
    try:
        declared = json.loads(fetched.data).get("artifactType")
    except (ValueError, AttributeError, RecursionError):
        declared = None
    if isinstance(declared, str) and declared:
        return declared
    layers = fetched.manifest.blobs[1:]
    return layers[0].media_type if layers else None


_K = TypeVar("_K")
_V = TypeVar("_V")


def _once(lock: threading.Lock, cache: dict[_K, Future[_V]], key: _K, make: Callable[[], _V]) -> _V:
    """``make()`` once per key; concurrent callers wait for the first and share its result or
    exception."""
    with lock:
        future = cache.get(key)
        owner = future is None
        if future is None:
            future = Future()
            cache[key] = future
    if owner:
        try:
            future.set_result(make())
        except BaseException as exc:
            future.set_exception(exc)
            with lock:
                del cache[key]  # a failure is not remembered: the next image asks again
            raise
    return future.result()
