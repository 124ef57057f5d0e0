"""Blob transfers of one copy run: each blob moves once per destination repository, mounts within a
registry, streams verified from source to destination.

A :class:`BlobTransfers` belongs to one run (a batch, a sync, one admission review), never to a long-lived
object: what it remembers (which blobs it moved where, which registries refuse a streamed PATCH) is true for
the run and forgotten with it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from enum import StrEnum

from promoter.deadline import Deadline
from promoter.errors import (
    AuthenticationError,
    DigestMismatchError,
    PromoterError,
    RegistryError,
    RegistryUnreachableError,
)
from promoter.oci.digest import Digest, DigestVerifier
from promoter.oci.manifest import Descriptor
from promoter.remote.repository import Repository
from promoter.transport.body import iter_body, release
from promoter.transport.retry import RetryPolicy

log = logging.getLogger(__name__)

#: Bytes read from the source per step of the stream; large enough that hashing and sending release
#: the GIL for most of the time, small enough to keep memory flat.
CHUNK_SIZE = 1024 * 1024


#: A blob up to this size is uploaded in one PUT after the POST (the distribution spec's
#: monolithic upload, which every registry accepts; containerd pushes so): the PATCH's round trip
#: is saved, and a config or a small layer is most of an image's blobs. Larger blobs stream
#: through PATCH, which a registry can take in pieces.
SMALL_BLOB = 64 * 1024


class BlobAction(StrEnum):
    """What happened to one blob."""

    COPIED = "copied"
    MOUNTED = "mounted"
    SKIPPED = "skipped"


class CopyProgress:
    """Receives progress events; the default does nothing. Methods are called from worker threads."""

    def blob_started(self, digest: Digest, size: int) -> None:
        """A blob transfer starts (after the destination said it lacks the blob)."""

    def blob_advanced(self, digest: Digest, nbytes: int) -> None:
        """``nbytes`` more bytes of a blob went through."""

    def blob_finished(self, digest: Digest, action: BlobAction) -> None:
        """A blob is done, by copy, mount or skip."""


@dataclass(frozen=True, slots=True)
class BlobOutcome:
    """What one transfer did: the action, and the bytes it moved."""

    action: BlobAction
    nbytes: int


class BlobTransfers:
    """The blob transfers of one run.

    Args:
        workers: the pool large blobs stream on (bounded: ``jobs`` streams at once).
        retry: the retry policy for a whole transfer (its requests retry on their own too).
        progress: receives progress events.
        deadline: bounds every transfer of the run; a stream checks it between chunks, so a source
            that drips bytes cannot outlast it.
        aborted: set when the run is interrupted; queued transfers then do nothing.
        small: the pool blobs of at most :data:`SMALL_BLOB` bytes move on (a POST and a PUT each:
            latency-bound, so more of them in flight than streams), and mounts of any size (one
            POST); ``workers`` by default.
        starts: the pool upload sessions are opened on (POST), beside the source's GET of the
            blob, so the two round trips overlap; tasks there never wait for other work. Without
            it, the POST follows the GET.
    """

    def __init__(
        self,
        workers: Executor,
        retry: RetryPolicy,
        progress: CopyProgress,
        *,
        deadline: Deadline | None = None,
        aborted: Callable[[], bool] = lambda: False,
        small: Executor | None = None,
        starts: Executor | None = None,
    ) -> None:
        self._workers = workers
        self._small = small or workers
        self._starts = starts
        self._retry = retry
        self._progress = progress
        self._deadline = deadline
        self._aborted = aborted
        self._lock = threading.Lock()
        #: (registry, repository, digest) -> the transfer making that blob present there.
        self._transfers: dict[tuple[str, str, Digest], Future[BlobOutcome]] = {}
        #: (registry, digest) -> (repository, transfer) of the first destination repository to get it.
        self._first_copy: dict[tuple[str, Digest], tuple[str, Future[BlobOutcome]]] = {}
        #: registries that refused a streamed PATCH; they get monolithic PUTs.
        self._monolithic: set[str] = set()

    def transfer_all(
        self, src: Repository, dst: Repository, blobs: list[Descriptor], *, fresh: bool = False
    ) -> tuple[dict[BlobAction, int], int]:
        """Make every blob present in ``dst``; returns the count per action and the bytes this image
        moved (a blob another image of the run moves counts as skipped here). ``fresh`` blobs are
        uploaded without asking first whether ``dst`` has them (an attachment's own blobs, where
        its manifest was just found missing: the HEAD would only ever say no).

        Raises:
            the first transfer's error, after every transfer of the image has ended.
        """
        owned = [
            # Largest first: the long transfers start at once and the small ones fill the gaps, so
            # the copy does not end with one big blob streaming alone.
            self._schedule(src, dst, blob, fresh=fresh)
            for blob in sorted(blobs, key=lambda b: b.size, reverse=True)
        ]
        counts = dict.fromkeys(BlobAction, 0)
        moved = 0
        first_error: BaseException | None = None
        for future, is_owner in owned:
            try:
                outcome = future.result()
            except BaseException as exc:  # noqa: BLE001 - collected, the first one is re-raised below
                first_error = first_error or exc
                continue
            counts[outcome.action if is_owner else BlobAction.SKIPPED] += 1
            if is_owner:
                moved += outcome.nbytes
        if first_error is not None:
            raise first_error
        return counts, moved

    def _schedule(
        self, src: Repository, dst: Repository, blob: Descriptor, *, fresh: bool = False
    ) -> tuple[Future[BlobOutcome], bool]:
        """The transfer that makes ``blob`` present in ``dst``, started once per run."""
        registry = dst.session.registry
        key = (registry, dst.name, blob.digest)
        with self._lock:
            existing = self._transfers.get(key)
            if existing is not None:
                return existing, False
            future: Future[BlobOutcome] = Future()
            self._transfers[key] = future
            first = self._first_copy.get((registry, blob.digest))
            if first is None:
                self._first_copy[(registry, blob.digest)] = (dst.name, future)
        if src.session is dst.session:
            self._submit(future, src, dst, blob, mount_from=src.name, fresh=fresh)
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
                    fresh=fresh,
                )
            )
        else:
            self._submit(future, src, dst, blob, mount_from=None, fresh=fresh)
        return future, True

    def _submit(
        self,
        future: Future[BlobOutcome],
        src: Repository,
        dst: Repository,
        blob: Descriptor,
        *,
        mount_from: str | None,
        fresh: bool = False,
    ) -> None:
        def work() -> None:
            try:
                self._check_aborted()
                future.set_result(self._transfer(src, dst, blob, mount_from, fresh=fresh))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                self._forget(dst, blob.digest, future)
                future.set_exception(exc)

        # A mount is one request whatever the blob's size: latency-bound, like a small blob.
        latency_bound = blob.size <= SMALL_BLOB or mount_from is not None
        try:
            (self._small if latency_bound else self._workers).submit(work)
        except RuntimeError as exc:  # the pool is shutting down
            future.set_exception(exc)

    def _check_aborted(self) -> None:
        if self._aborted():
            raise PromoterError("interrupted before this blob was copied")

    def _forget(self, dst: Repository, digest: Digest, future: Future[BlobOutcome]) -> None:
        """Drop a failed transfer so that a later image of the run tries the blob afresh."""
        registry = dst.session.registry
        with self._lock:
            if self._transfers.get((registry, dst.name, digest)) is future:
                del self._transfers[(registry, dst.name, digest)]
            first = self._first_copy.get((registry, digest))
            if first is not None and first[1] is future:
                del self._first_copy[(registry, digest)]

    def _transfer(
        self,
        src: Repository,
        dst: Repository,
        blob: Descriptor,
        mount_from: str | None,
        *,
        fresh: bool = False,
    ) -> BlobOutcome:
        def attempt() -> BlobOutcome:
            location: str | None = None
            if mount_from is not None:
                # No HEAD first: a mount answers 201 whether or not the blob was already there, and
                # on a busy registry every request saved counts (distribution spec, "Mounting a blob
                # from another repository"). A 202 opens an ordinary upload session instead.
                try:
                    location = dst.start_upload(mount=(blob.digest, mount_from))
                except AuthenticationError:
                    location = None  # no pull right on the repository to mount from: upload
                except (RegistryError, RegistryUnreachableError) as exc:
                    # A mount only saves bytes: one that fails (a 5xx, a dropped connection) is
                    # not retried; the blob is uploaded instead.
                    log.debug("mount of %s into %s failed (%s); uploading", blob.digest, dst, exc)
                    location = None
                else:
                    if location is None:
                        return BlobOutcome(BlobAction.MOUNTED, 0)
            if location is None and not fresh and dst.head_blob(blob.digest) is not None:
                return BlobOutcome(BlobAction.SKIPPED, 0)
            registry = dst.session.registry
            # A small blob goes in one PUT after the POST (see SMALL_BLOB).
            whole = registry in self._monolithic or blob.size <= SMALL_BLOB
            try:
                return self._stream(src, dst, blob, location, monolithic=whole)
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

        outcome = self._retry.run(
            attempt, deadline=self._deadline, what=f"copy blob {blob.digest.short} to {dst}"
        )
        self._progress.blob_finished(blob.digest, outcome.action)
        return outcome

    def _stream(
        self,
        src: Repository,
        dst: Repository,
        blob: Descriptor,
        location: str | None,
        *,
        monolithic: bool,
    ) -> BlobOutcome:
        """GET from the source and upload to the destination in one pass, verifying on the way.

        Without an upload ``location`` yet, the upload session is opened (POST) while the source's
        GET is on its way: one round trip for both. When the GET fails, the session is cancelled.
        """
        what = f"copy blob {blob.digest.short} from {src} to {dst}"
        opening = self._open_upload(dst) if location is None else None
        try:
            response = src.open_blob(blob.digest)
        except BaseException:
            if opening is not None:
                _cancel_when_open(dst, opening)
            elif location is not None:  # a session a mount opened (202)
                dst.cancel_upload(location)
            raise
        try:
            if opening is not None:
                location = opening.result()
            assert location is not None  # noqa: S101 - start_upload without mount always gives one
            self._progress.blob_started(blob.digest, blob.size)
            verifier = DigestVerifier(blob.digest, blob.size)
            body = self._verified_chunks(
                iter_body(
                    response,
                    CHUNK_SIZE,
                    f"pull blob {blob.digest.short} from {src}",
                    deadline=self._deadline,
                ),
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
        return BlobOutcome(BlobAction.COPIED, blob.size)

    def _open_upload(self, dst: Repository) -> Future[str | None]:
        """POST an upload session on the ``starts`` workers (here, when there are none, or they are
        shutting down: the run is being stopped, and the next step says so)."""
        if self._starts is not None:
            with contextlib.suppress(RuntimeError):
                return self._starts.submit(dst.start_upload)
        opened: Future[str | None] = Future()
        try:
            opened.set_result(dst.start_upload())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
            opened.set_exception(exc)
        return opened

    def _verified_chunks(
        self, chunks: Iterator[bytes], verifier: DigestVerifier, blob: Descriptor, what: str
    ) -> Iterator[bytes]:
        """The source's bytes, hashed on the way, with the last chunk held back until the whole blob
        verified: a registry never receives every byte of a blob that does not match, so not even a
        monolithic PUT (which commits when its body ends) can store one. Raising here aborts the
        request that is sending the body."""
        held = b""
        for chunk in chunks:  # iter_body checks the deadline as each piece arrives
            if verifier.seen + len(chunk) > blob.size:
                raise DigestMismatchError(
                    f"{what}: the source sent more than the {blob.size} bytes its descriptor says"
                )
            verifier.update(chunk)
            if held:
                self._progress.blob_advanced(blob.digest, len(held))
                yield held
            held = chunk
        verifier.verify(what)
        if held:
            self._progress.blob_advanced(blob.digest, len(held))
            yield held


def _cancel_when_open(dst: Repository, opening: Future[str | None]) -> None:
    """Cancel the upload session ``opening`` opens, once it has (nothing when the POST failed)."""

    def cancel(opened: Future[str | None]) -> None:
        location = None if opened.exception() is not None else opened.result()
        if location is not None:
            dst.cancel_upload(location)

    opening.add_done_callback(cancel)
