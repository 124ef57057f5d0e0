"""The copy engine: make a destination reference hold exactly the source image.

What a copy guarantees (shared/registry-notes.md has the reasoning and sources):

* The destination gets the source's manifest bytes unchanged, so digests are identical, for every
  child of an index (nested indexes too), every config and layer blob, and any OCI artifact.
* Order: blobs, then child manifests by digest (deepest first), then the top manifest by tag last, so a
  tag never points at something incomplete.
* Each blob streams from source to destination with no temporary file, hashed on the way; a mismatch
  aborts the upload before it is committed, and nothing is tagged (:mod:`promoter.remote.blobs`).
* Work is skipped wherever it can be: a destination tag that already has the source digest means no
  write at all (this is also what lets re-runs succeed on immutable-tag repositories); manifests the
  destination already has are not walked again (:mod:`promoter.remote.walk`); blobs it has (HEAD) are
  not uploaded; a blob needed twice in one run moves once, and a second destination repository of the
  same registry mounts it from the first instead of receiving the bytes again.
* A destination tag that points at another digest is refused (:class:`TagConflictError`) unless forced;
  a registry that refuses the move itself (ECR's immutable tags) gets :class:`ImmutableTagError`.
* "Same content" compares bytes or digests of one algorithm, never spellings: a source that names its
  manifests ``sha512:`` and a destination that answers ``sha256:`` for the same bytes agree
  (:meth:`Repository.same_content`).
* The tag written last is checked right after (one HEAD): if another writer moved it in between, the
  copy is not claimed but reported as :class:`TagMovedError` naming both digests.
* A manifest PUT answered ``MANIFEST_BLOB_UNKNOWN`` (Distribution's filesystem driver can say so right
  after concurrent writers uploaded the same blobs) is retried once, after the manifest's blobs and
  child manifests were checked (HEAD) and whatever is missing was uploaded again.
* Before the first write into a destination repository, an optional ``prepare_destination`` hook runs
  once per run for it (the runtime passes ECR's repository creation there); an image that is already
  present never calls it, so re-runs stay read-only.
* What is attached to the image travels with it (:mod:`promoter.remote.attachments`): OCI 1.1
  referrers and cosign's ``.sig``/``.att``/``.sbom`` tags of the image and of every child of its
  index, and what is attached to those, each copied digest-exact by this same engine (blobs, then
  the manifest, its tag last) after the image's tag. A tag attachment keeps its tag name and is
  refused like any tag when the destination's holds other content; a referrer is pushed by digest
  and, where the destination has no referrers API, listed in the referrers-tag index, merged with
  what that index lists (written last, read back). An image that is present but lacks some of its
  attachments gets just those (:attr:`CopyAction.ATTACHED`); when an attachment fails, the image's
  tag is already written, and the error says so.
* A copy takes a deadline that bounds it as a whole; what a run remembers (blobs moved, repositories
  prepared) belongs to that run, so one :class:`Copier` can serve a process for weeks.
* Two limits fit the link (issue 14; README "Concurrency and far links"): what is latency-bound
  (images of a batch, manifest and attachment lookups, blobs of at most
  :data:`~promoter.remote.blobs.SMALL_BLOB`, mounts, upload sessions) runs on ``requests`` workers
  each, the streams of larger blobs on ``jobs``. Per image the critical path is about seven round
  trips: the source manifest's GET beside the destination tag's HEAD; the blobs' HEADs (none into
  a repository the run just created); each blob's source GET beside its upload's POST, then its
  PUT; the look at the tag, its PUT and the check.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum

from promoter.deadline import Deadline
from promoter.errors import (
    AttachmentConflictError,
    AttachmentError,
    AuthenticationError,
    DeadlineExceededError,
    ImmutableTagError,
    InputError,
    PromoterError,
    RegistryError,
    RegistryUnreachableError,
    RunInterruptedError,
    SafetyError,
    TagConflictError,
    TagMovedError,
)
from promoter.oci.digest import Digest, compute_digest, hashes_to
from promoter.oci.mediatypes import MediaType
from promoter.oci.referrers import (
    ALL_ATTACHMENTS,
    Attachment,
    AttachmentFilter,
    ReferrerDescriptor,
    merge_referrers_index,
    referrer_descriptor,
    referrers_tag,
)
from promoter.process import signals_to_main_thread
from promoter.reference import Reference
from promoter.remote.attachments import AttachmentFinder, SourceAttachments, fallback_index
from promoter.remote.blobs import BlobAction, BlobTransfers, CopyProgress
from promoter.remote.repository import FetchedManifest, Repository, resolve_digest
from promoter.remote.walk import fetch_if_missing, walk_image, wanted_blobs
from promoter.transport.pools import DEFAULT_REQUESTS, MAX_REQUESTS
from promoter.transport.session import Transport

__all__ = [
    "DEFAULT_JOBS",
    "MAX_JOBS",
    "BlobAction",
    "Copier",
    "CopyAction",
    "CopyOptions",
    "CopyProgress",
    "CopyResult",
    "PrepareDestination",
]

#: ``(registry, repository) -> created``, called before the first write into a destination
#: repository; True when it created the repository, which then holds no blob yet (None counts as
#: False).
PrepareDestination = Callable[[str, str], bool | None]

#: Concurrent blob streams by default (blobs over SMALL_BLOB; smaller ones count as requests).
#: Measured in bench/ (bench/README.md, --jobs sweep): on the 2-core reference machine 1 is
#: clearly slower, 2 to 16 are equal within noise, because the destination registry's hashing and
#: writing saturate the machine. Over far links more streams may help a large image; the default
#: stays at 8 (not swept at 20 or 80 ms). Memory grows ~2 MiB a stream.
DEFAULT_JOBS = 8
#: The most blob streams a run may ask for (each holds a thread, two connections and a chunk).
MAX_JOBS = 128
#: Times a referrers-tag index is merged again when another writer replaced it meanwhile.
REFERRERS_INDEX_ATTEMPTS = 3


class CopyAction(StrEnum):
    """What happened to one image."""

    COPIED = "copied"
    PRESENT = "present"
    ATTACHED = "attached"  #: the image was present; some of its attachments were copied


@dataclass(frozen=True, slots=True)
class CopyOptions:
    """Knobs of a copy run.

    Attributes:
        force: move a destination tag that points at another digest.
        include_foreign: copy foreign (non-distributable) layers, those with ``urls``.
        jobs: concurrent blob streams (bandwidth-bound): blobs over
            :data:`~promoter.remote.blobs.SMALL_BLOB`.
        requests: requests in flight for latency-bound work (images copied at once, manifest and
            attachment lookups, small blobs): over a far link each one mostly waits.
        attachments: which attachments travel with each image (all by default).
        keep_attachment_tags: leave a cosign tag attachment (``sha256-<hex>.sig``) whose
            destination tag holds other content as it is, instead of refusing the copy (a sync:
            its plan reported it; a signature added after the promotion, on either side, does not
            block every later sync). ``force`` wins over it.
    """

    force: bool = False
    include_foreign: bool = False
    jobs: int = DEFAULT_JOBS
    requests: int = DEFAULT_REQUESTS
    attachments: AttachmentFilter = ALL_ATTACHMENTS
    keep_attachment_tags: bool = False

    def __post_init__(self) -> None:
        check_concurrency(self.jobs, self.requests)


def check_concurrency(jobs: int, requests: int) -> None:
    """Refuse blob streams or requests in flight outside 1..:data:`MAX_JOBS` and
    1..:data:`~promoter.transport.pools.MAX_REQUESTS`.

    Raises:
        InputError: naming the value and the range.
    """
    for name, value, most in (("jobs", jobs, MAX_JOBS), ("requests", requests, MAX_REQUESTS)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            raise InputError(f"{name}: expected a whole number from 1 to {most}, got {value!r}")


@dataclass(frozen=True, slots=True)
class CopyResult:
    """The outcome of copying one image.

    Attributes:
        source, destination: the references copied from and to.
        digest: the digest the destination reference holds now.
        action: copied; present (nothing was written); attached (only attachments were).
        blobs: how many blobs were copied, mounted or skipped.
        bytes: blob bytes this image transferred; a blob shared with another image of the same run is
            counted once, under the image that moved it.
        seconds: wall time of this image.
        attachments: the attachments copied in this run (referrers and tag attachments, of the
            image, its children and each other), subjects first.
        moved_tags: attachment tags that ``force`` moved: the tag, the digest it held before, and
            whether that held something the new content lacks (a signature added only at the
            destination: gone now) or was a part of it (cosign appends: nothing was lost).
        left_behind: artifact types of attachments the filter kept from travelling.
        dangling: referrers the source lists but no longer has: not copied.
    """

    source: Reference
    destination: Reference
    digest: Digest
    action: CopyAction
    blobs: dict[BlobAction, int] = field(default_factory=lambda: dict.fromkeys(BlobAction, 0))
    bytes: int = 0
    seconds: float = 0.0
    attachments: tuple[Attachment, ...] = ()
    moved_tags: tuple[tuple[str, Digest, bool], ...] = ()
    left_behind: frozenset[str] = frozenset()
    dangling: tuple[Attachment, ...] = ()


@dataclass(slots=True)
class _Run:
    """What one run remembers: its blob transfers, the repositories it prepared, its deadline,
    where attachments are."""

    transfers: BlobTransfers
    deadline: Deadline | None
    finder: AttachmentFinder
    prepared: dict[tuple[str, str], Future[bool]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Copier:
    """Copies images. Long-lived: its worker pools can serve many runs; each :meth:`copy` or
    :meth:`copy_all` is one run, whose memory (blobs moved, repositories prepared) ends with it.

    Args:
        transport: the HTTP transport (pools, TLS, credentials), shared with the caller.
        options: copy options.
        progress: receives progress events.
        prepare_destination: called once per run and destination repository, before the first blob or
            manifest is written there, e.g. to create the repository on registries that need that
            (ECR). Its exceptions fail the images that write into that repository.
    """

    def __init__(
        self,
        transport: Transport,
        options: CopyOptions | None = None,
        progress: CopyProgress | None = None,
        *,
        prepare_destination: PrepareDestination | None = None,
    ) -> None:
        self.transport = transport
        self.options = options or CopyOptions()
        self.progress = progress or CopyProgress()
        self._prepare_destination = prepare_destination
        requests = max(2, self.options.requests)
        # Large blobs stream on `jobs` workers (bandwidth-bound); small ones, and the upload
        # sessions every transfer opens beside its source GET, are single requests (latency-bound)
        # and get `requests` workers, so that a far link's round trips overlap.
        self._pool = _workers(self.options.jobs, "blob")
        self._small = _workers(requests, "small")
        self._starts = _workers(requests, "upload")
        # Manifest and HEAD requests get their own workers so that an image with nothing to copy
        # never waits behind another image's large blobs.
        self._metadata = _workers(requests, "meta")
        # Looking for an image's attachments waits for its manifest's fetch on the metadata
        # workers, so it runs on workers of its own: a wait there can never hold up that fetch.
        self._looks = _workers(requests, "attach")
        self._aborted = threading.Event()

    def __enter__(self) -> Copier:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.abort()
        else:
            self.close()

    @property
    def _executors(self) -> tuple[ThreadPoolExecutor, ...]:
        return (self._pool, self._small, self._starts, self._metadata, self._looks)

    def close(self) -> None:
        """Wait for the worker threads and stop them."""
        for executor in self._executors:
            executor.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        """Stop now (Ctrl-C): queued work is dropped and no further manifest or tag is written.

        Transfers already streaming finish in the background but commit nothing that a tag points at.
        """
        self._aborted.set()
        for executor in self._executors:
            executor.shutdown(wait=False, cancel_futures=True)

    def _check_aborted(self) -> None:
        if self._aborted.is_set():
            raise PromoterError("interrupted before the manifests were written; nothing was tagged")

    def _new_run(self, deadline: Deadline | None) -> _Run:
        transfers = BlobTransfers(
            self._pool,
            self.transport.options.retry,
            self.progress,
            deadline=deadline,
            aborted=self._aborted.is_set,
            small=self._small,
            starts=self._starts,
        )
        return _Run(transfers, deadline, AttachmentFinder(self.options.attachments))

    # -- images ---------------------------------------------------------------------------------

    def copy_all(
        self, pairs: Sequence[tuple[Reference, Reference]], *, deadline: Deadline | None = None
    ) -> list[CopyResult | PromoterError]:
        """Copy many images in one run, concurrently; every pair is tried, failures are returned in
        the pair's place.

        An unexpected exception in one image becomes that image's failure instead of hiding every
        other image's outcome.

        Args:
            pairs: (source, destination) references; each destination needs a tag or a digest.
            deadline: when the whole run must be over.
        """
        if not pairs:
            return []
        run = self._new_run(deadline)
        # Images are latency-bound (each mostly waits for answers): `requests` of them at once.
        images = _workers(min(len(pairs), self.options.requests), "image")
        try:
            futures = [images.submit(self._promote, run, src, dst) for src, dst in pairs]
            outcomes: list[CopyResult | PromoterError] = []
            for (source, destination), future in zip(pairs, futures, strict=True):
                try:
                    outcomes.append(future.result())
                except PromoterError as exc:
                    outcomes.append(exc)
                except Exception as exc:  # noqa: BLE001 - reported per image, with its type
                    failure = PromoterError(
                        f"copy {source} -> {destination}: unexpected {type(exc).__name__}: {exc}"
                    )
                    failure.__cause__ = exc
                    outcomes.append(failure)
        except BaseException:
            self.abort()
            images.shutdown(wait=False, cancel_futures=True)
            raise
        images.shutdown(wait=True)
        return outcomes

    def copy(
        self, source: Reference, destination: Reference, *, deadline: Deadline | None = None
    ) -> CopyResult:
        """Make ``destination`` hold exactly the image ``source`` names (a run of one image).

        Args:
            source: the image to copy.
            destination: where; it needs a tag or a digest (``promoter.app`` gives a bare destination
                the source's tag first).
            deadline: when the copy must be over.

        Raises:
            TagConflictError: the destination tag points at another digest and ``force`` is off.
            TagMovedError: the tag was written, but another writer moved it before the check right
                after (whether forced or not).
            InputError: the destination names neither tag nor digest, or a digest that differs from
                the source's.
            RegistryError, RegistryUnreachableError, DigestMismatchError: the copy failed; nothing
                was tagged.
            DeadlineExceededError: the deadline passed; nothing was tagged.
            PromoterError: the image was copied and tagged, but an attachment was not (the message
                says so; a re-run completes it): of the type of what stopped the attachment
                (:class:`TagConflictError` for a cosign tag that holds other content).
        """
        return self._promote(self._new_run(deadline), source, destination)

    def _promote(self, run: _Run, source: Reference, destination: Reference) -> CopyResult:
        """Copy the image, then what is attached to it. What the source has attached is looked
        for while the image is copied (from the moment its digest is known), so an image with
        nothing attached is done when its tag is written."""
        if not self.options.attachments.enabled:
            return self._copy(run, source, destination)[0]
        src = Repository.of(self.transport, source, deadline=run.deadline)
        looking: list[Future[SourceAttachments]] = []

        def look(digest: Digest, top: Future[FetchedManifest] | None) -> None:
            looking.append(self._looks.submit(run.finder.in_source, src, digest, top))

        result, _ = self._copy(run, source, destination, on_source_digest=look)
        carried: list[Attachment] = []  # what _carry copied, also when it then fails
        try:
            found = looking[0].result()
            result = replace(result, left_behind=found.left_behind)
            return self._carry(run, result, found, carried) if found.found else result
        except PromoterError as exc:
            raise _unattached(exc, replace(result, attachments=tuple(carried))) from exc

    def _carry(
        self,
        run: _Run,
        result: CopyResult,
        found: SourceAttachments,
        carried: list[Attachment],
    ) -> CopyResult:
        """Copy what the destination lacks of ``found``, level by level (what is attached to an
        attachment after it); where the destination has no referrers API, list each level's
        referrers in their subject's referrers-tag index after they are written. A tag attachment
        whose destination tag holds other content is refused (before anything is written), moved
        when forced, or left as it is with ``keep_attachment_tags``. A referrer the source lists
        but no longer has is left out and reported (:attr:`CopyResult.dangling`).

        Raises:
            TagConflictError: naming the first such tag and both digests.
        """
        source, destination = result.source, result.destination
        src = Repository.of(self.transport, source, deadline=run.deadline)
        dst = Repository.of(self.transport, destination, push=True, deadline=run.deadline)
        plan = run.finder.without_dangling(src, run.finder.compare(dst, found))
        result = replace(result, dangling=plan.dangling)
        if plan.differing and not self.options.force and not self.options.keep_attachment_tags:
            attachment, held = plan.differing[0]
            more = len(plan.differing) - 1
            raise TagConflictError(
                str(destination.with_tag(attachment.tag)),
                str(held),
                str(attachment.digest) + (f" (and {more} more such tags)" if more else ""),
            )
        forced = [a for a, _ in plan.differing] if self.options.force else []
        wanted = {*plan.missing, *forced}
        if not wanted:
            return result
        blobs, moved = dict(result.blobs), result.bytes
        for depth in sorted({a.depth for a in wanted}):
            level = [a for a in plan.found if a.depth == depth and a in wanted]
            for attachment in level:
                self._check_aborted()
                origin = replace(source, tag=None, digest=attachment.digest)
                target = (
                    destination.with_tag(attachment.tag)
                    if attachment.tag is not None
                    else replace(destination, tag=None, digest=attachment.digest)
                )
                # A tag attachment's tag was just found absent: no need to ask again, for it, its
                # manifest by digest or its blobs; its manifest was read when it was found.
                absent = attachment.tag is not None and attachment in plan.missing
                copied, _ = self._copy(
                    run,
                    origin,
                    target,
                    fetched=run.finder.fetched(src, attachment.digest),
                    absent=absent,
                )
                for blob_action, count in copied.blobs.items():
                    blobs[blob_action] += count
                moved += copied.bytes
                carried.append(attachment)
            self._list_referrers(src, dst, self._unlisted(run, dst, level))
        action = CopyAction.ATTACHED if result.action is CopyAction.PRESENT else result.action
        return replace(
            result,
            action=action,
            blobs=blobs,
            bytes=moved,
            attachments=tuple(carried),
            moved_tags=tuple(
                (str(a.tag), held, self._loses(src, dst, a, held))
                for a, held in plan.differing
                if a in wanted
            ),
        )

    @staticmethod
    def _loses(src: Repository, dst: Repository, attachment: Attachment, held: Digest) -> bool:
        """Whether moving ``attachment``'s tag off ``held`` dropped layers (signatures) that only
        ``held`` had: cosign and containers-image append a signature as a layer, so a source
        ``.sig`` that grew from the destination's loses nothing."""
        try:
            before = {b.digest for b in dst.get_manifest(str(held)).manifest.blobs[1:]}
            after = {b.digest for b in src.get_manifest(str(attachment.digest)).manifest.blobs[1:]}
        except PromoterError:
            return True  # cannot tell: say what may have happened
        return not before <= after

    def _unlisted(
        self, run: _Run, dst: Repository, level: Sequence[Attachment]
    ) -> list[Attachment]:
        """The referrers of ``level``, just written to ``dst``, that its referrers API does not
        list (all of them where it has none): the spec has a client keep the referrers tag when a
        push with ``subject`` is not answered with ``OCI-Subject``; reading the API's list back
        tells the same for every registry, also one that answers the API without indexing."""
        referrers = [a for a in level if a.tag is None]
        if not referrers or run.finder.has_api(dst) is not True:
            return referrers
        listed: dict[Digest, set[Digest]] = {}
        for attachment in referrers:
            if attachment.subject not in listed:
                entries = run.finder.referrers(dst, attachment.subject)
                listed[attachment.subject] = {e.digest for e in entries}
        return [a for a in referrers if a.digest not in listed[a.subject]]

    def _list_referrers(
        self, src: Repository, dst: Repository, referrers: Sequence[Attachment]
    ) -> None:
        """List ``referrers``, just written to ``dst``, in their subjects' referrers-tag indexes
        (distribution-spec v1.1, "Pushing Manifests with Subject", for a registry without the
        referrers API): pull the index (none yet: start empty), append what it lacks, push it, and
        read it back. Registries ignore conditional requests on tags (Distribution 2.8 does), so
        reading back is how another writer's concurrent update is noticed; the merge is then done
        again on what that writer left, a few times at most.

        Raises:
            UnsupportedManifestError: the referrers tag holds something else than an OCI index
                (``cosign copy`` tags the image itself so): it is left alone.
            PromoterError: the index kept losing our entries to other writers.
        """
        by_subject: dict[Digest, list[ReferrerDescriptor]] = {}
        for attachment in referrers:
            what = f"referrer {src}@{attachment.digest}"
            data = src.get_manifest(str(attachment.digest)).data
            descriptor = referrer_descriptor(data, attachment.digest, what)
            by_subject.setdefault(attachment.subject, []).append(descriptor)
        for subject, descriptors in by_subject.items():
            tag = referrers_tag(subject)
            what = f"referrers index {dst}:{tag}"
            conditional = True
            for _ in range(REFERRERS_INDEX_ATTEMPTS):
                held = fallback_index(dst, subject)
                merged = merge_referrers_index(held.data if held else None, descriptors, what)
                if merged is None:
                    break
                self._check_aborted()
                # The spec's "MAY use conditional HTTP requests": registries that honour them
                # refuse (412) a write over an index another writer changed since it was read.
                condition = {"If-Match": f'"{held.digest}"'} if held else {"If-None-Match": "*"}
                try:
                    dst.put_manifest(
                        tag,
                        merged,
                        MediaType.OCI_INDEX,
                        conditions=condition if conditional else None,
                    )
                except AuthenticationError as exc:
                    raise PromoterError(
                        f"{what}: the registry refused the referrers tag ({exc.message}), though "
                        "it took the referrers themselves: it may reserve sha256- tags",
                        hint="promote into a registry with the referrers API, or allow the tag",
                    ) from exc
                except RegistryError as exc:
                    if exc.status != 412:
                        raise
                    now = fallback_index(dst, subject)
                    same = (now.digest if now else None) == (held.digest if held else None)
                    if same:
                        # Nothing changed, yet the condition failed: this registry's ETags are
                        # not digests. Its conditions cannot be used; write as the spec allows.
                        conditional = False
                    continue
                now = fallback_index(dst, subject)
                if now is not None and merge_referrers_index(now.data, descriptors, what) is None:
                    break
                if now is None or (held is not None and now.digest == held.digest):
                    raise PromoterError(
                        f"{what}: the registry answered the write but still serves the index it "
                        "had (or none): it does not store the referrers tag",
                        hint="promote into a registry that keeps sha256- tags or has the "
                        "referrers API",
                    )
            else:
                raise PromoterError(
                    f"{what}: another writer replaced the index {REFERRERS_INDEX_ATTEMPTS} times "
                    "while promoter added its entries",
                    hint="run the promotion again when the other writer is done",
                )

    def _copy(
        self,
        run: _Run,
        source: Reference,
        destination: Reference,
        *,
        on_source_digest: Callable[[Digest, Future[FetchedManifest] | None], None] | None = None,
        fetched: FetchedManifest | None = None,
        absent: bool = False,
    ) -> tuple[CopyResult, FetchedManifest | None]:
        """Copy one manifest tree (no attachments); the top manifest when it was fetched.

        ``on_source_digest`` is told the source's digest as soon as it is known whether the
        destination has it, with the top manifest's fetch when the copy starts one. ``fetched`` is
        the top manifest when the caller read it already; ``absent`` says the destination was
        just found to lack the reference, so it is not asked again (nor for the manifest by
        digest, nor for its blobs) and the look right before the tag is written is skipped.
        """
        if destination.tag is None and destination.digest is None:
            raise InputError(
                f"destination {destination} names neither a tag nor a digest; give one"
            )
        started = time.monotonic()
        src = Repository.of(self.transport, source, deadline=run.deadline)
        dst = Repository.of(self.transport, destination, push=True, deadline=run.deadline)
        dst_ref = destination.tag if destination.tag is not None else str(destination.digest)

        # By tag, the source's manifest is read with a GET at once, beside the destination's
        # HEAD: its bytes give the digest, and a copy needs them next (one round trip instead of
        # a HEAD then a GET; issue 14). By digest, nothing is read until the destination answers.
        source_fetch = (
            self._metadata.submit(self._source_manifest, src, source)
            if source.digest is None and fetched is None
            else None
        )
        dest_head = None if absent else self._metadata.submit(dst.head_manifest, dst_ref)
        source_digest = (
            source_fetch.result().digest
            if source_fetch is not None
            else self._source_digest(source, run.deadline)
        )
        existing = dest_head.result() if dest_head is not None else None

        if destination.digest is not None and not src.same_content(
            source_digest, destination.digest
        ):
            raise InputError(
                f"destination {destination} names digest {destination.digest}, but the source "
                f"{source} is {source_digest}"
            )
        present = existing is not None and dst.same_content(existing.digest, source_digest)
        top_fetch: Future[FetchedManifest] | None = None
        if not present:
            top_fetch = Future()
            if fetched is not None and fetched.digest == source_digest:
                top_fetch.set_result(fetched)
            elif source_fetch is not None:
                top_fetch = source_fetch
            else:
                top_fetch = self._metadata.submit(src.get_manifest, str(source_digest))
        if on_source_digest is not None:
            on_source_digest(source_digest, top_fetch)
        if present:
            # Nothing to write: also what keeps immutable-tag repositories re-runnable.
            return CopyResult(
                source,
                destination,
                source_digest,
                CopyAction.PRESENT,
                seconds=time.monotonic() - started,
            ), None
        if existing is not None and destination.tag is not None and not self.options.force:
            raise TagConflictError(str(destination), str(existing.digest), str(source_digest))

        # A repository the hook just created holds no blob: none is asked for before its upload
        # (issue 14: a round trip less per image into a new repository).
        created = self._prepare(run, destination.registry, destination.repository)
        walk = walk_image(
            src,
            dst,
            source_digest,
            include_foreign=self.options.include_foreign,
            workers=self._metadata,
            # A digest destination was just asked for under this very digest.
            known_absent=absent
            or created
            or (existing is None and destination.tag is None and dst_ref == str(source_digest)),
            top=top_fetch,
        )
        blobs, moved = run.transfers.transfer_all(
            src, dst, list(walk.blobs.values()), fresh=absent or created
        )
        self._check_aborted()
        for level in reversed(walk.levels[1:]):
            pushes = [
                self._metadata.submit(self._put_manifest, run, src, dst, str(m.digest), m)
                for m in level
            ]
            for push in pushes:
                push.result()
        self._check_aborted()
        top = walk.top
        if destination.tag is not None and not self.options.force and not absent:
            # The tag was free (or held these bytes) when the copy began, blobs ago: look again
            # right before writing it, so that a writer that took it meanwhile is refused here
            # rather than overwritten. What is left is the moment between this HEAD and the PUT,
            # which registries (no compare-and-swap on tags) give no way to close; the check after
            # the PUT catches a writer that lands after it.
            now = dst.head_manifest(dst_ref)
            if now is not None and not dst.same_content(now.digest, source_digest):
                raise TagConflictError(str(destination), str(now.digest), str(source_digest))
        try:
            self._write_top(run, src, dst, destination, reference=dst_ref, top=top)
        except RunInterruptedError:
            # The interrupt may have cut the tag's PUT after it landed, or the check after it:
            # one clean-up HEAD tells, so that an image the destination holds complete under its
            # tag is reported copied, not failed.
            if not dst.serves_after_interrupt(dst_ref, top.data):
                raise
        return CopyResult(
            source,
            destination,
            source_digest,
            CopyAction.COPIED,
            blobs=blobs,
            bytes=moved,
            seconds=time.monotonic() - started,
        ), top

    def _write_top(
        self,
        run: _Run,
        src: Repository,
        dst: Repository,
        destination: Reference,
        *,
        reference: str,
        top: FetchedManifest,
    ) -> None:
        """PUT the top manifest under ``reference`` (the destination's own spelling: a digest
        destination is known to name these bytes), then check a tag (:func:`_check_tag`).

        Raises:
            ImmutableTagError: the registry keeps the tag immutable.
            TagMovedError: another writer moved the tag right after.
        """
        try:
            self._put_manifest(run, src, dst, reference, top)
        except RegistryError as exc:
            refusal = _immutable_tag_refusal(exc)
            if refusal is None or destination.tag is None:
                raise
            raise ImmutableTagError(str(destination), refusal) from exc
        if destination.tag is not None:
            _check_tag(dst, destination, top)

    def _put_manifest(
        self, run: _Run, src: Repository, dst: Repository, reference: str, manifest: FetchedManifest
    ) -> None:
        """PUT a manifest; a ``MANIFEST_BLOB_UNKNOWN`` answer gets one more PUT after what the
        manifest refers to was checked and made present again (:meth:`_restore`).

        Distribution's filesystem driver links a blob into a repository in steps that are not
        atomic, so a manifest PUT right after concurrent writers uploaded the same blobs can be told
        a blob is unknown that a HEAD a moment later finds (distribution spec, "Pushing Manifests":
        the registry checks that every referenced blob and manifest is present). Once, not in a
        loop: a blob that stays unknown is a real failure.
        """
        try:
            dst.put_manifest(reference, manifest.data, manifest.media_type)
        except RegistryError as exc:
            if "MANIFEST_BLOB_UNKNOWN" not in exc.codes:
                raise
            self._restore(run, src, dst, manifest)
            dst.put_manifest(reference, manifest.data, manifest.media_type)

    def _restore(
        self, run: _Run, src: Repository, dst: Repository, manifest: FetchedManifest
    ) -> None:
        """Make everything ``manifest`` refers to present in ``dst`` again: child manifests the
        destination lacks (HEAD) are fetched from the source, restored and PUT by digest; blobs go
        through a fresh set of transfers, which HEADs each one (or mounts it within one registry)
        and uploads only what is missing (the run's own transfers remember these blobs as done)."""
        self._check_aborted()
        for child in manifest.manifest.manifests:
            fetched = fetch_if_missing(src, dst, child.digest)
            if fetched is not None:
                self._restore(run, src, dst, fetched)
                dst.put_manifest(str(child.digest), fetched.data, fetched.media_type)
        blobs = wanted_blobs(manifest, include_foreign=self.options.include_foreign)
        self._new_run(run.deadline).transfers.transfer_all(src, dst, blobs)
        self._check_aborted()

    def _prepare(self, run: _Run, registry: str, repository: str) -> bool:
        """Run the ``prepare_destination`` hook for a repository once per run; later callers wait for
        it and share its outcome, so concurrent images into one repository never race to create it.
        Whether it created the repository."""
        if self._prepare_destination is None:
            return False
        key = (registry, repository)
        with run.lock:
            future = run.prepared.get(key)
            owner = future is None
            if future is None:
                future = Future()
                run.prepared[key] = future
        if owner:
            try:
                created = bool(self._prepare_destination(registry, repository))
            except BaseException as exc:
                future.set_exception(exc)
                raise
            future.set_result(created)
        return future.result()

    def _source_manifest(self, src: Repository, source: Reference) -> FetchedManifest:
        """The source's manifest by tag, its bytes and digest (see :meth:`_copy`).

        Raises:
            RegistryError: it does not exist (404, named "source image ... not found", as a
                lookup by HEAD names it) or the registry failed.
        """
        try:
            return src.get_manifest(source.identifier)
        except RegistryError as exc:
            if exc.status == 404:
                raise RegistryError(
                    exc.method,
                    exc.url,
                    404,
                    details=exc.details,
                    what=f"source image {source} not found",
                ) from None
            raise

    def _source_digest(self, source: Reference, deadline: Deadline | None) -> Digest:
        if source.digest is not None:
            return source.digest
        return resolve_digest(self.transport, source, label="source image", deadline=deadline)


def _workers(count: int, name: str) -> ThreadPoolExecutor:
    """A pool of ``count`` (at least 1) threads, which leave Ctrl-C to the main thread."""
    return ThreadPoolExecutor(
        max_workers=max(1, count), thread_name_prefix=name, initializer=signals_to_main_thread
    )


def _check_tag(dst: Repository, destination: Reference, written: FetchedManifest) -> None:
    """Check, with one HEAD, that the tag just written holds the bytes written: another writer may
    have moved it between our PUT and now (the registry keeps the last PUT; distribution spec,
    "Pushing Manifests" lets any PUT replace a tag). Compared by bytes, in the algorithm the registry
    answers with. The HEAD gets a few seconds past the run's deadline if the write used it up
    (:meth:`Repository.check_written`): a tag that was written is not reported as a deadline failure.

    Raises:
        TagMovedError: the tag holds other content, or is gone; both digests are named (ours spelled
            in the registry's algorithm).
        RegistryError, RegistryUnreachableError, DeadlineExceededError: the check got no answer;
            the hint says the tag was written but is unchecked.
    """
    try:
        found = dst.check_written(str(destination.tag))
    except (RegistryError, RegistryUnreachableError, DeadlineExceededError) as exc:
        if not exc.hint:
            exc.hint = (
                f"{written.digest} was written under {destination}, but whether the tag still "
                "holds it could not be checked"
            )
        raise
    if found is not None and hashes_to(written.data, found.digest):
        return
    ours = compute_digest(written.data, found.digest.algorithm) if found else written.digest
    raise TagMovedError(str(destination), str(ours), str(found.digest) if found else None)


def _unattached(exc: PromoterError, result: CopyResult) -> PromoterError:
    """The error for ``exc``, which stopped an attachment of ``result``'s image after its tag was
    written: it says the image was promoted (and carries ``result`` for reports); a signature tag
    holding other content is a refusal (exit 3, ``--force`` moves it), anything else a failure (a
    re-run completes it)."""
    destination = result.destination
    wrapped: AttachmentError | AttachmentConflictError
    if isinstance(exc, TagConflictError):
        wrapped = AttachmentConflictError(str(destination), exc.message)
    elif isinstance(exc, SafetyError):  # a tag the registry keeps immutable, a tag moved meanwhile
        wrapped = AttachmentConflictError(str(destination), str(exc), forceable=False)
    else:
        wrapped = AttachmentError(str(destination), str(exc))
    wrapped.__cause__ = exc
    wrapped.result = result
    return wrapped


def _immutable_tag_refusal(exc: RegistryError) -> str | None:
    """The registry's words when it refused a tagged manifest PUT because the tag is immutable.

    ECR answers ``400`` with code ``TAG_INVALID`` and a message saying the tag "cannot be
    overwritten because the tag is immutable" (older wording: "the repository is immutable").
    """
    if exc.status != 400:
        return None
    for detail in exc.details:
        if detail.code == "TAG_INVALID" and "immutable" in detail.message.lower():
            return detail.message or detail.code
    return None
