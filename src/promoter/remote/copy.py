"""The copy engine: make a destination reference hold exactly the source image.

What a copy guarantees (shared/registry-notes.md has the reasoning and sources):

* The destination gets the source's manifest bytes unchanged, so digests are identical, for every
  child of an index (nested indexes too), every config and layer blob, and any OCI artifact.
* Order: blobs, then child manifests by digest (deepest first), then the top manifest by tag last, so a
  tag never points at something incomplete.
* Each blob streams from source to destination with no temporary file, hashed on the way; a mismatch
  aborts the upload before it is committed, and nothing is tagged.
* Work is skipped wherever it can be: a destination tag that already has the source digest means no
  write at all (this is also what lets re-runs succeed on immutable-tag repositories); manifests the
  destination already has are not walked again; blobs it has (HEAD) are not uploaded; a blob needed
  twice in one run moves once, and a second destination repository of the same registry mounts it
  from the first instead of receiving the bytes again.
* A destination tag that points at another digest is refused (:class:`TagConflictError`) unless forced;
  a registry that refuses the move itself (ECR's immutable tags) gets :class:`ImmutableTagError`.
* Before the first write into a destination repository, an optional ``prepare_destination`` hook runs
  once for it (the CLI passes ECR's repository creation there); an image that is already present
  never calls it, so re-runs stay read-only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from promoter.errors import (
    AuthenticationError,
    DigestMismatchError,
    ImmutableTagError,
    InputError,
    PromoterError,
    RegistryError,
    RegistryErrorDetail,
    TagConflictError,
)
from promoter.oci.digest import Digest, DigestVerifier, parse_digest
from promoter.oci.manifest import Descriptor
from promoter.reference import Reference
from promoter.remote.repository import FetchedManifest, Repository
from promoter.transport.session import Transport, iter_body, release

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

#: ``(registry, repository) -> None``, called before the first write into a destination repository.
PrepareDestination = Callable[[str, str], None]

#: Concurrent blob transfers by default. Measured in bench/ (bench/README.md, --jobs sweep): on
#: the 2-core reference machine 1 is clearly slower, 2 to 16 are equal within noise, because the
#: destination registry's hashing and writing saturate the machine. Real registries sit behind
#: network latency, where more streams help, so the default stays at 8; memory grows ~2 MiB a job.
DEFAULT_JOBS = 8
#: Bytes read from the source per step of the stream; large enough that hashing and sending release
#: the GIL for most of the time, small enough to keep memory flat.
CHUNK_SIZE = 1024 * 1024


class BlobAction(StrEnum):
    """What happened to one blob."""

    COPIED = "copied"
    MOUNTED = "mounted"
    SKIPPED = "skipped"


class CopyAction(StrEnum):
    """What happened to one image."""

    COPIED = "copied"
    PRESENT = "present"


@dataclass(frozen=True, slots=True)
class CopyOptions:
    """Knobs of a copy run.

    Attributes:
        force: move a destination tag that points at another digest.
        include_foreign: copy foreign (non-distributable) layers, those with ``urls``.
        jobs: concurrent blob transfers.
    """

    force: bool = False
    include_foreign: bool = False
    jobs: int = DEFAULT_JOBS


class CopyProgress:
    """Receives progress events; the default does nothing. Methods are called from worker threads."""

    def blob_started(self, digest: Digest, size: int) -> None:
        """A blob transfer starts (after the destination said it lacks the blob)."""

    def blob_advanced(self, digest: Digest, nbytes: int) -> None:
        """``nbytes`` more bytes of a blob went through."""

    def blob_finished(self, digest: Digest, action: BlobAction) -> None:
        """A blob is done, by copy, mount or skip."""


@dataclass(slots=True)
class CopyResult:
    """The outcome of copying one image.

    ``bytes`` counts blob bytes this image transferred; a blob shared with another image of the same run
    is counted once, under the image that moved it.
    """

    source: Reference
    destination: Reference
    digest: Digest
    action: CopyAction
    blobs: dict[BlobAction, int] = field(default_factory=lambda: dict.fromkeys(BlobAction, 0))
    bytes: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        """The documented ``-o json`` shape."""
        return {
            "source": str(self.source),
            "destination": str(self.destination),
            "digest": str(self.digest),
            "action": str(self.action),
            "blobs": {str(k): v for k, v in self.blobs.items()},
            "bytes": self.bytes,
        }


@dataclass(frozen=True, slots=True)
class _BlobOutcome:
    action: BlobAction
    nbytes: int


@dataclass(slots=True)
class _Plan:
    """What one image needs: manifests to push (children before parents) and blobs to transfer."""

    levels: list[list[FetchedManifest]] = field(default_factory=list)
    blobs: dict[Digest, Descriptor] = field(default_factory=dict)


class Copier:
    """Copies images; one instance per run so that blob transfers are shared between images.

    Args:
        transport: the HTTP transport (pools, TLS, credentials), shared with the caller.
        options: copy options.
        progress: receives progress events.
        prepare_destination: called once per destination repository, before the first blob or
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
        #: (registry, repository) -> the preparation of that destination, run once per run.
        self._prepared: dict[tuple[str, str], Future[None]] = {}
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, self.options.jobs), thread_name_prefix="blob"
        )
        # Manifest and HEAD requests get their own workers so that an image with nothing to copy
        # never waits behind another image's large blobs.
        self._metadata = ThreadPoolExecutor(
            max_workers=max(2, self.options.jobs), thread_name_prefix="meta"
        )
        self._aborted = threading.Event()
        self._lock = threading.Lock()
        #: (registry, repository, digest) -> the transfer making that blob present there.
        self._transfers: dict[tuple[str, str, Digest], Future[_BlobOutcome]] = {}
        #: (registry, digest) -> (repository, transfer) of the first destination repository to get it.
        self._first_copy: dict[tuple[str, Digest], tuple[str, Future[_BlobOutcome]]] = {}
        #: registries that refused a streamed PATCH; they get monolithic PUTs.
        self._monolithic: set[str] = set()

    def __enter__(self) -> Copier:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.abort()
        else:
            self.close()

    def close(self) -> None:
        """Wait for the worker threads and stop them."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._metadata.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        """Stop now (Ctrl-C): queued work is dropped and no further manifest or tag is written.

        Transfers already streaming finish in the background but commit nothing that a tag points at.
        """
        self._aborted.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._metadata.shutdown(wait=False, cancel_futures=True)

    def _check_aborted(self) -> None:
        if self._aborted.is_set():
            raise PromoterError("interrupted before the manifests were written; nothing was tagged")

    # -- images ---------------------------------------------------------------------------------

    def copy_all(
        self, pairs: Sequence[tuple[Reference, Reference]]
    ) -> list[CopyResult | PromoterError]:
        """Copy many images in one run, concurrently; every pair is tried, failures are returned.

        An unexpected exception in one image becomes that image's failure instead of hiding every
        other image's outcome.
        """
        if not pairs:
            return []
        images = ThreadPoolExecutor(
            max_workers=min(len(pairs), max(1, self.options.jobs)), thread_name_prefix="image"
        )
        try:
            futures = [images.submit(self.copy, src, dst) for src, dst in pairs]
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

    def copy(self, source: Reference, destination: Reference) -> CopyResult:
        """Make ``destination`` hold exactly the image ``source`` names.

        Raises:
            TagConflictError: the destination tag points at another digest and ``force`` is off.
            InputError: a digest in the destination reference differs from the source's.
            RegistryError, RegistryUnreachableError, DigestMismatchError: the copy failed; nothing
                was tagged.
        """
        started = time.monotonic()
        src = Repository(self.transport.session(source.registry), source.repository)
        dst = Repository(
            self.transport.session(destination.registry), destination.repository, push=True
        )
        dst_ref = destination.tag if destination.tag is not None else destination.digest
        assert dst_ref is not None  # noqa: S101 - parse_reference guarantees a tag or a digest

        source_head = self._metadata.submit(self._source_digest, src, source)
        dest_head = self._metadata.submit(dst.head_manifest, dst_ref)
        source_digest = source_head.result()
        existing = dest_head.result()

        if destination.digest is not None and parse_digest(destination.digest) != source_digest:
            raise InputError(
                f"destination {destination} names digest {destination.digest}, but the source "
                f"{source} is {source_digest}"
            )
        result = CopyResult(source, destination, source_digest, CopyAction.PRESENT)
        if existing is not None and existing.digest == source_digest:
            result.seconds = time.monotonic() - started
            return (
                result  # nothing to write: also what keeps immutable-tag repositories re-runnable
            )
        if existing is not None and destination.tag is not None and not self.options.force:
            raise TagConflictError(str(destination), str(existing.digest), str(source_digest))

        self._prepare(destination.registry, destination.repository)
        plan = self._plan(src, dst, source_digest)
        self._transfer_blobs(src, dst, plan, result)
        self._check_aborted()
        for level in reversed(plan.levels[1:]):
            self._map(lambda m: dst.put_manifest(str(m.digest), m.data, m.media_type), level)
        self._check_aborted()
        top = plan.levels[0][0]
        try:
            dst.put_manifest(
                dst_ref if destination.tag is not None else str(top.digest),
                top.data,
                top.media_type,
            )
        except RegistryError as exc:
            refusal = _immutable_tag_refusal(exc)
            if refusal is None or destination.tag is None:
                raise
            raise ImmutableTagError(str(destination), refusal) from exc
        result.action = CopyAction.COPIED
        result.seconds = time.monotonic() - started
        return result

    def _prepare(self, registry: str, repository: str) -> None:
        """Run the ``prepare_destination`` hook for a repository once; later callers wait for it
        and share its outcome, so concurrent images into one repository never race to create it."""
        if self._prepare_destination is None:
            return
        key = (registry, repository)
        with self._lock:
            future = self._prepared.get(key)
            owner = future is None
            if future is None:
                future = Future()
                self._prepared[key] = future
        if owner:
            try:
                self._prepare_destination(registry, repository)
            except BaseException as exc:
                future.set_exception(exc)
                raise
            future.set_result(None)
        future.result()

    def _source_digest(self, src: Repository, source: Reference) -> Digest:
        if source.digest is not None:
            return parse_digest(source.digest)
        return _existing_digest(src, source, "source image")

    def _plan(self, src: Repository, dst: Repository, digest: Digest) -> _Plan:
        """Walk the source manifest tree level by level, skipping subtrees the destination has.

        A manifest the destination already holds by digest was accepted there, so everything it refers
        to is there too (registries check that on push): its subtree needs no work.
        """
        fetch = self._metadata.submit(src.get_manifest, str(digest))
        present = dst.head_manifest(str(digest)) is not None
        top = fetch.result()
        plan = _Plan(levels=[[top]])
        if present:
            return plan  # the content is there under another tag or none: only the tag is missing
        level = [top]
        while level:
            wanted: dict[Digest, None] = {}
            for item in level:
                wanted.update(dict.fromkeys(d.digest for d in item.manifest.manifests))
                for blob in item.manifest.blobs:
                    if blob.is_foreign and not self.options.include_foreign:
                        continue
                    plan.blobs.setdefault(blob.digest, blob)
            fetched = self._map(lambda d: self._fetch_if_missing(src, dst, d), list(wanted))
            level = [m for m in fetched if m is not None]
            if level:
                plan.levels.append(level)
        return plan

    def _fetch_if_missing(
        self, src: Repository, dst: Repository, digest: Digest
    ) -> FetchedManifest | None:
        """The source's child manifest, or None when the destination already has it."""
        if dst.head_manifest(str(digest)) is not None:
            return None
        return src.get_manifest(str(digest))

    # -- blobs ----------------------------------------------------------------------------------

    def _transfer_blobs(
        self, src: Repository, dst: Repository, plan: _Plan, result: CopyResult
    ) -> None:
        owned: list[tuple[Future[_BlobOutcome], bool]] = [
            # Largest first: the long transfers start at once and the small ones fill the gaps, so
            # the copy does not end with one big blob streaming alone.
            self._schedule(src, dst, blob)
            for blob in sorted(plan.blobs.values(), key=lambda b: b.size, reverse=True)
        ]
        first_error: BaseException | None = None
        for future, is_owner in owned:
            try:
                outcome = future.result()
            except BaseException as exc:  # noqa: BLE001 - collected, the first one is re-raised below
                first_error = first_error or exc
                continue
            action = outcome.action if is_owner else BlobAction.SKIPPED
            result.blobs[action] += 1
            if is_owner:
                result.bytes += outcome.nbytes
        if first_error is not None:
            raise first_error

    def _schedule(
        self, src: Repository, dst: Repository, blob: Descriptor
    ) -> tuple[Future[_BlobOutcome], bool]:
        """The transfer that makes ``blob`` present in ``dst``, started once per run."""
        registry = dst.session.registry
        key = (registry, dst.name, blob.digest)
        with self._lock:
            existing = self._transfers.get(key)
            if existing is not None:
                return existing, False
            future: Future[_BlobOutcome] = Future()
            self._transfers[key] = future
            first = self._first_copy.get((registry, blob.digest))
            if first is None:
                self._first_copy[(registry, blob.digest)] = (dst.name, future)
        if src.session is dst.session:
            self._submit(future, src, dst, blob, mount_from=src.name)
        elif first is not None:
            mount_repo, first_future = first
            # Wait for the first copy without holding a worker, then mount from it.
            first_future.add_done_callback(
                lambda done: self._submit(
                    future,
                    src,
                    dst,
                    blob,
                    mount_from=mount_repo if done.exception() is None else None,
                )
            )
        else:
            self._submit(future, src, dst, blob, mount_from=None)
        return future, True

    def _submit(
        self,
        future: Future[_BlobOutcome],
        src: Repository,
        dst: Repository,
        blob: Descriptor,
        *,
        mount_from: str | None,
    ) -> None:
        def work() -> None:
            try:
                future.set_result(self._transfer(src, dst, blob, mount_from))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                self._forget(dst, blob.digest, future)
                future.set_exception(exc)

        try:
            self._pool.submit(work)
        except RuntimeError as exc:  # the pool is shutting down
            future.set_exception(exc)

    def _forget(self, dst: Repository, digest: Digest, future: Future[_BlobOutcome]) -> None:
        """Drop a failed transfer so that a later image of the run tries the blob afresh."""
        registry = dst.session.registry
        with self._lock:
            if self._transfers.get((registry, dst.name, digest)) is future:
                del self._transfers[(registry, dst.name, digest)]
            first = self._first_copy.get((registry, digest))
            if first is not None and first[1] is future:
                del self._first_copy[(registry, digest)]

    def _transfer(
        self, src: Repository, dst: Repository, blob: Descriptor, mount_from: str | None
    ) -> _BlobOutcome:
        def attempt() -> _BlobOutcome:
            location: str | None = None
            if mount_from is not None:
                # No HEAD first: a mount answers 201 whether or not the blob was already there, and
                # on a busy registry every request saved counts (distribution spec, "Mounting a blob
                # from another repository"). A 202 opens an ordinary upload session instead.
                try:
                    location = dst.start_upload(mount=(blob.digest, mount_from))
                except AuthenticationError:
                    location = None  # no pull right on the repository to mount from: upload
                else:
                    if location is None:
                        return _BlobOutcome(BlobAction.MOUNTED, 0)
            if location is None and dst.head_blob(blob.digest) is not None:
                return _BlobOutcome(BlobAction.SKIPPED, 0)
            registry = dst.session.registry
            try:
                return self._stream(
                    src, dst, blob, location, monolithic=registry in self._monolithic
                )
            except RegistryError as exc:
                if (
                    exc.method != "PATCH"
                    or exc.status not in (405, 501)
                    or registry in self._monolithic
                ):
                    raise
                log.debug("%s refused a streamed PATCH; using monolithic uploads", registry)
                with self._lock:
                    self._monolithic.add(registry)
                return self._stream(src, dst, blob, None, monolithic=True)

        outcome = self.transport.options.retry.run(attempt)
        self.progress.blob_finished(blob.digest, outcome.action)
        return outcome

    def _stream(
        self,
        src: Repository,
        dst: Repository,
        blob: Descriptor,
        location: str | None,
        *,
        monolithic: bool,
    ) -> _BlobOutcome:
        """GET from the source and upload to the destination in one pass, verifying on the way."""
        what = f"copy blob {blob.digest.short} from {src} to {dst}"
        response = src.open_blob(blob.digest)
        try:
            if location is None:
                location = dst.start_upload()
            assert location is not None  # noqa: S101 - start_upload without mount always gives one
            self.progress.blob_started(blob.digest, blob.size)
            verifier = DigestVerifier(blob.digest, blob.size)
            body = self._verified_chunks(
                iter_body(response, CHUNK_SIZE, f"pull blob {blob.digest.short} from {src}"),
                verifier,
                blob,
                what,
            )
            try:
                if monolithic or blob.size == 0:
                    dst.finish_upload(location, blob.digest, blob.size, body)
                else:
                    location = dst.upload_stream(location, blob.size, body)
                    dst.finish_upload(location, blob.digest)
            except BaseException:
                dst.cancel_upload(location)
                raise
        finally:
            release(response)
        return _BlobOutcome(BlobAction.COPIED, blob.size)

    def _verified_chunks(
        self, chunks: Iterator[bytes], verifier: DigestVerifier, blob: Descriptor, what: str
    ) -> Iterator[bytes]:
        """The source's bytes, hashed on the way, with the last chunk held back until the whole blob
        verified: a registry never receives every byte of a blob that does not match, so not even a
        monolithic PUT (which commits when its body ends) can store one. Raising here aborts the
        request that is sending the body."""
        held = b""
        for chunk in chunks:
            if verifier.seen + len(chunk) > blob.size:
                raise DigestMismatchError(
                    f"{what}: the source sent more than the {blob.size} bytes its descriptor says"
                )
            verifier.update(chunk)
            if held:
                self.progress.blob_advanced(blob.digest, len(held))
                yield held
            held = chunk
        verifier.verify(what)
        if held:
            self.progress.blob_advanced(blob.digest, len(held))
            yield held

    # -- helpers ------------------------------------------------------------------------------

    def _map(self, function: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """Run ``function`` over ``items`` on the worker pool, returning results in order.

        Runs on the metadata workers and is only called from image threads, never from a worker, so
        waiting here cannot deadlock.
        """
        futures = [self._metadata.submit(function, item) for item in items]
        return [f.result() for f in futures]


def resolve_digest(transport: Transport, reference: Reference) -> Digest:
    """The digest a reference resolves to (as ``crane digest``): HEAD, or GET if the registry does not
    say.

    Raises:
        RegistryError: the reference does not exist (404) or the registry failed.
    """
    repo = Repository(transport.session(reference.registry), reference.repository)
    return _existing_digest(repo, reference, "image")


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


def _existing_digest(repo: Repository, reference: Reference, label: str) -> Digest:
    """The digest ``reference`` has in ``repo``; a missing image is a 404 naming it."""
    info = repo.head_manifest(reference.identifier)
    if info is None:
        raise RegistryError(
            "HEAD",
            f"{repo}/manifests/{reference.identifier}",
            404,
            details=(RegistryErrorDetail("MANIFEST_UNKNOWN", "manifest unknown"),),
            what=f"{label} {reference} not found",
        )
    return info.digest
