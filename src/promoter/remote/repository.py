"""Operations on one repository of one registry (OCI distribution spec v1.1, Docker registry v2 API).

Section names in comments refer to the distribution spec ("spec.md") of opencontainers/distribution-spec.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

import urllib3

from promoter.deadline import Deadline
from promoter.errors import (
    AnswerTooLargeError,
    DeadlineExceededError,
    DeletionDisabledError,
    DigestMismatchError,
    InvalidDigestError,
    PromoterError,
    RegistryError,
    RegistryErrorDetail,
    RegistryUnreachableError,
    RunInterruptedError,
    UnsupportedManifestError,
)
from promoter.oci.digest import (
    Digest,
    compute_digest,
    hashes_to,
    parse_digest,
    same_digest,
    verify_bytes,
)
from promoter.oci.manifest import Manifest, parse_manifest
from promoter.oci.mediatypes import MANIFEST_ACCEPT, MediaType
from promoter.oci.referrers import ReferrerDescriptor, parse_referrers_index
from promoter.process import signals_to_main_thread
from promoter.reference import Reference, is_tag
from promoter.transport.challenge import scope_for
from promoter.transport.session import RegistrySession, Transport
from promoter.transport.watch import awaited, cleaning_up

#: Largest tags/list page we ask for: ECR's maximum (its API rejects more).
TAG_PAGE_SIZE = 1000
#: Manifests are small; anything bigger than this is refused (the spec suggests at least 4 MiB).
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
#: Pages of one referrers answer followed at most (a registry that links pages in a loop ends here).
MAX_REFERRERS_PAGES = 100
#: Largest page of a referrers answer read (an entry is ~300 bytes: 4 MiB is ~14,000 entries).
MAX_REFERRERS_PAGE_BYTES = 4 * 1024 * 1024
#: Most referrers of one digest read; more is refused (real images carry a handful).
MAX_REFERRERS = 1000
#: Most tags a listing reads (``list_tags``): a registry paging without end stops here.
MAX_TAGS = 200_000
#: Most pages of a tag listing read (a registry sending empty pages without end stops here).
MAX_TAG_PAGES = 1000
#: Seconds granted, past an operation's deadline, to the requests that tell what a lost answer did
#: (is the tag or blob there now?) and that cancel an abandoned upload: the truth is worth that much.
AFTERMATH_SECONDS = 3.0
#: What a request may fail with when there is no telling what the registry did.
#: Registries of upload sessions a cancel could not end (list.append is atomic).
_UNCANCELLED: list[str] = []


def uncancelled_uploads() -> int:
    """How many upload sessions this process could not cancel (the registry refused or did not
    answer the DELETE within its few seconds): they stay until the registry purges stale uploads."""
    return len(_UNCANCELLED)


_NO_ANSWER = (RegistryError, RegistryUnreachableError, DeadlineExceededError)


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    """What a HEAD tells about a manifest."""

    digest: Digest
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class Referrers:
    """What the referrers API listed for one digest.

    Attributes:
        entries: the descriptors, every page's, in the registry's order.
        filtered: the registry applied the ``artifactType`` filter asked for.
    """

    entries: tuple[ReferrerDescriptor, ...]
    filtered: bool = False


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    """A manifest's exact bytes with what they mean."""

    data: bytes
    media_type: str  #: as the payload declares it (else as the registry labelled it)
    digest: Digest
    manifest: Manifest


class Repository:
    """One repository on one registry, with the token scopes it needs.

    Args:
        session: the registry's session.
        name: the repository path.
        push: whether we write here (asks for ``pull,push`` scope instead of ``pull``).
        deadline: bounds every request made through this object, retries included.
    """

    def __init__(
        self,
        session: RegistrySession,
        name: str,
        *,
        push: bool = False,
        deadline: Deadline | None = None,
    ) -> None:
        self.session = session
        self.name = name
        self.deadline = deadline
        self.scopes: tuple[str, ...] = (
            scope_for(name, "pull", "push") if push else scope_for(name, "pull"),
        )

    @classmethod
    def of(
        cls,
        transport: Transport,
        reference: Reference,
        *,
        push: bool = False,
        deadline: Deadline | None = None,
    ) -> Repository:
        """The repository ``reference`` names, reached through ``transport``."""
        return cls(
            transport.session(reference.registry),
            reference.repository,
            push=push,
            deadline=deadline,
        )

    def __str__(self) -> str:
        return f"{self.session.registry}/{self.name}"

    # -- manifests (spec: "Pulling manifests", "Pushing Manifests") -------------------------------

    def head_manifest(self, reference: str) -> ManifestInfo | None:
        """HEAD a manifest by tag or digest; None if the registry does not have it."""
        what = f"check manifest {self}{_separator(reference)}{reference}"
        response = self.session.request(
            "HEAD",
            f"/v2/{self.name}/manifests/{reference}",
            scopes=self.scopes,
            deadline=self.deadline,
            headers={"Accept": MANIFEST_ACCEPT},
            expect=(200, 404),
            what=what,
        )
        if response.status == 404:
            return None
        header = response.headers.get("Docker-Content-Digest")
        if not header:
            # Some registries omit the header on HEAD; the bytes tell for sure.
            fetched = self.get_manifest(reference)
            return ManifestInfo(fetched.digest, fetched.media_type, len(fetched.data))
        return ManifestInfo(
            digest=_header_digest(header, what),
            media_type=response.headers.get("Content-Type", ""),
            size=_header_int(response.headers.get("Content-Length"), what),
        )

    def get_manifest(self, reference: str) -> FetchedManifest:
        """GET a manifest's exact bytes. By digest, the bytes are verified against it."""
        what = f"pull manifest {self}{_separator(reference)}{reference}"

        def fetch() -> tuple[bytes, str, str | None]:
            response = self.session.request(
                "GET",
                f"/v2/{self.name}/manifests/{reference}",
                scopes=self.scopes,
                deadline=self.deadline,
                headers={"Accept": MANIFEST_ACCEPT},
                what=what,
                limit=MAX_MANIFEST_BYTES,
            )
            headers = response.headers
            return (
                response.data,
                headers.get("Content-Type", ""),
                headers.get("Docker-Content-Digest"),
            )

        # The request retries itself; this also retries a body cut off while it was read.
        data, content_type, header = self.session.transport.options.retry.run(
            fetch, deadline=self.deadline, what=what
        )
        if reference.startswith(("sha256:", "sha512:")):
            digest = parse_digest(reference)
            verify_bytes(data, digest, what)
        else:
            claimed = _header_digest(header, what) if header else None
            digest = compute_digest(data, claimed.algorithm if claimed else "sha256")
            if claimed is not None and claimed != digest:
                raise DigestMismatchError(
                    f"{what}: the registry says {claimed}, the bytes are {digest}"
                )
        manifest = parse_manifest(data, content_type, what)
        # Push with the type the payload declares: a registry may serve a generic Content-Type, and
        # Distribution rejects a manifest PUT whose Content-Type disagrees with its mediaType.
        return FetchedManifest(data, str(manifest.media_type), digest, manifest)

    def put_manifest(
        self,
        reference: str,
        data: bytes,
        media_type: str,
        *,
        conditions: Mapping[str, str] | None = None,
    ) -> None:
        """PUT manifest bytes unchanged under a tag or digest.

        A PUT retried after a reset can fail although an earlier attempt was committed (an
        immutable tag then refuses even the identical bytes); what counts is whether the registry
        now serves these bytes under ``reference``, so that is checked before giving up.
        ``conditions`` are conditional-request headers (``If-Match``) for registries that honour
        them; one that does not met answers 412, a :class:`RegistryError`.
        """
        what = f"push manifest {self}{_separator(reference)}{reference}"
        try:
            # Whether a tag was written is worth its answer after an interrupt (watch.awaited).
            with awaited():
                response = self.session.request(
                    "PUT",
                    f"/v2/{self.name}/manifests/{reference}",
                    scopes=self.scopes,
                    deadline=self.deadline,
                    headers={"Content-Type": media_type, **(conditions or {})},
                    body=data,
                    expect=(200, 201, 202),
                    what=what,
                )
        except _NO_ANSWER as exc:
            served = self._aftermath()._serves(reference, data)
            if served:
                return
            if served is None and not exc.hint:
                exc.hint = (
                    f"the registry may have written {reference} anyway (asking it afterwards got "
                    "no answer either): check it before trusting this failure"
                )
            raise
        returned = response.headers.get("Docker-Content-Digest")
        if returned:
            stored = _header_digest(returned, what)
            if stored != compute_digest(data, stored.algorithm):
                raise DigestMismatchError(
                    f"{what}: the registry stored {stored}, but the bytes sent are "
                    f"{compute_digest(data)}"
                )

    def check_written(self, reference: str) -> ManifestInfo | None:
        """HEAD a manifest that was just written (:meth:`head_manifest`), granted
        :data:`AFTERMATH_SECONDS` past this repository's deadline when less than that is left: what
        a write did is worth knowing even when the write itself used up the time.

        Raises:
            RegistryError, RegistryUnreachableError, DeadlineExceededError: no answer.
            DigestMismatchError: the registry sent an invalid digest.
        """
        if self.deadline is not None and self.deadline.remaining() < AFTERMATH_SECONDS:
            return self._aftermath().head_manifest(reference)
        return self.head_manifest(reference)

    def serves_after_interrupt(self, reference: str, data: bytes) -> bool | None:
        """Whether ``reference`` resolves to exactly ``data`` here now, asked as a clean-up (sent
        after an interrupt, with a short deadline of its own): a write the interrupt cut while its
        answer was on the way may have landed. None when that cannot be told."""
        with cleaning_up():
            return self._aftermath()._serves(reference, data)

    def _serves(self, reference: str, data: bytes) -> bool | None:
        """Whether ``reference`` resolves to exactly ``data`` here now (compared in the algorithm the
        registry answers with); None when that cannot be told."""
        try:
            info = self.head_manifest(reference)
        except (*_NO_ANSWER, DigestMismatchError):
            return None
        return info is not None and hashes_to(data, info.digest)

    def same_content(self, found: Digest, wanted: Digest) -> bool:
        """Whether ``found``, a manifest digest this repository answered with, names the same bytes
        as ``wanted``: the one rule for "already present" and "the tag holds what we wrote".

        Digests of one algorithm decide by themselves. Of two (a source that names its manifests
        ``sha512:``, a destination that answers ``sha256:`` for the same bytes) they cannot be
        compared, so the bytes are fetched here by ``found`` (verified against it) and hashed with
        ``wanted``'s algorithm: one GET, only in that case (OCI image spec, "Digests": a digest
        identifies content; two algorithms are two names for it).

        Raises:
            RegistryError, RegistryUnreachableError, DeadlineExceededError: the bytes could not be
                fetched.
            DigestMismatchError: the registry served other bytes than ``found`` names.
            UnsupportedManifestError: the bytes are no manifest promoter knows.
        """
        same = same_digest(found, wanted)
        if same is not None:
            return same
        return hashes_to(self.get_manifest(str(found)).data, wanted)

    def _aftermath(self) -> Repository:
        """This repository with a short deadline of its own, for checks and clean-up after a request
        whose answer was lost (its own deadline may be what cut it short)."""
        clone = Repository(self.session, self.name, deadline=Deadline.after(AFTERMATH_SECONDS))
        clone.scopes = self.scopes
        return clone

    # -- deleting (spec: "Content Management": "Deleting tags", "Deleting Manifests") ------------

    def delete_manifest(self, digest: Digest) -> bool:
        """DELETE a manifest by digest. The registry drops it and every tag pointing at it (spec,
        "Deleting Manifests": afterwards a GET of the digest "and any tag pointing to that digest"
        answers 404); its blobs stay until the registry's garbage collection reclaims them.

        Safe to repeat, so a run cut short finishes on the next one: a 404 means the manifest (or
        its repository) is gone already, which is what was asked. The request is retried as every
        request of the session is (a retry after a lost 202 finds 404), within this repository's
        deadline. It asks for the token scope ``repository:<name>:delete``: Distribution's token
        auth wants that action for a DELETE, and pull or push does not include it.

        Returns:
            True when this request deleted it; False when it was gone already (also when an
            earlier attempt of this call deleted it and its answer was lost).

        Raises:
            DeletionDisabledError: the registry does not delete manifests: 405 (Distribution's
                answer, ``UNSUPPORTED``, until ``storage.delete.enabled: true``), or 400 with no
                error code or ``UNSUPPORTED`` (the spec allows 400 or 405 for disabled deletion).
            RegistryError, RegistryUnreachableError, DeadlineExceededError: another answer, or none.
        """
        what = f"delete manifest {self}@{digest}"
        response = self._delete(str(digest), what)
        return response.status == 202

    def delete_tag(self, tag: str) -> bool:
        """DELETE a tag by name, leaving the manifest it points at (and any other tag on it) alone
        (spec, "Deleting tags", new in distribution-spec v1.1; optional for registries).

        Distribution 2.8 cannot: it reads the reference as a digest and answers 400
        ``DIGEST_INVALID``, deleting nothing; with deletion disabled it answers 405. The spec lets
        a registry without tag deletion answer 400 or 405. Either way this returns False and the
        caller deletes by digest instead (:meth:`delete_manifest`, which raises
        :class:`DeletionDisabledError` when deletion is off altogether, and which also removes
        every other tag on that digest). Retried and bounded like :meth:`delete_manifest`.

        Returns:
            True when the tag is gone (deleted now, or 404: gone already); False when the registry
            does not delete tags by name.

        Raises:
            ValueError: ``tag`` is no tag (a digest would delete a manifest here).
            RegistryError, RegistryUnreachableError, DeadlineExceededError: another answer, or none.
        """
        if not is_tag(tag):
            raise ValueError(f"not a tag: {tag!r}")
        what = f"delete tag {self}:{tag}"
        try:
            self._delete(tag, what)
        except RegistryError as exc:
            # Spec, "Deleting tags": "If tag deletion is disabled, the registry MUST respond with
            # either a 400 Bad Request or a 405 Method Not Allowed."
            if exc.status in (400, 405):
                return False
            raise
        return True

    def _delete(self, reference: str, what: str) -> urllib3.BaseHTTPResponse:
        """``DELETE /v2/<name>/manifests/<reference>``: 202 or 404 is an answer; 405, or 400 without
        another error code, means deletion is disabled (:class:`DeletionDisabledError`); anything
        else raises as the session does."""
        try:
            return self.session.request(
                "DELETE",
                f"/v2/{self.name}/manifests/{reference}",
                scopes=(scope_for(self.name, "delete"),),
                deadline=self.deadline,
                expect=(202, 404),
                what=what,
            )
        except RegistryError as exc:
            if type(exc) is not RegistryError or not _deletion_disabled(exc):
                raise
            raise DeletionDisabledError(
                exc.method,
                exc.url,
                exc.status,
                details=exc.details,
                what=what,
                hint=(
                    f"deletion is disabled on {self.session.registry}; a Distribution registry "
                    "deletes only with storage.delete.enabled: true in its configuration"
                ),
            ) from exc

    # -- blobs (spec: "Pulling blobs", "Pushing blobs", "Mounting a blob from another repository")

    def head_blob(self, digest: Digest) -> int | None:
        """The blob's size if the repository has it, else None."""
        what = f"check blob {digest.short} in {self}"
        response = self.session.request(
            "HEAD",
            f"/v2/{self.name}/blobs/{digest}",
            scopes=self.scopes,
            deadline=self.deadline,
            expect=(200, 404),
            follow_redirects=True,
            what=what,
        )
        if response.status == 404:
            return None
        return _header_int(response.headers.get("Content-Length"), what)

    def open_blob(self, digest: Digest) -> urllib3.BaseHTTPResponse:
        """Start a streaming GET of a blob, following redirects to storage hosts.

        The caller reads it (:func:`~promoter.transport.body.iter_body`) and must call
        :func:`~promoter.transport.body.release`.
        """
        return self.session.request(
            "GET",
            f"/v2/{self.name}/blobs/{digest}",
            scopes=self.scopes,
            deadline=self.deadline,
            stream=True,
            follow_redirects=True,
            what=f"pull blob {digest.short} from {self}",
        )

    def start_upload(self, mount: tuple[Digest, str] | None = None) -> str | None:
        """POST an upload session; with ``mount=(digest, from_repository)`` try a cross-repository
        mount first.

        A mount is tried once (no retry: the caller uploads the blob instead when it fails).

        Returns:
            The upload location, or None when the registry mounted the blob (201).
        """
        path = f"/v2/{self.name}/blobs/uploads/"
        scopes = self.scopes
        if mount is not None:
            digest, source = mount
            path += "?" + urlencode({"mount": str(digest), "from": source})
            # The same token must also allow pulling from the repository we mount from.
            scopes = (*self.scopes, scope_for(source, "pull"))
        # An interrupt lets the answer come (watch.awaited): its session is then cancelled, not
        # left open without our knowing its location.
        with awaited(opens=True):
            response = self.session.request(
                "POST",
                path,
                scopes=scopes,
                deadline=self.deadline,
                expect=(201, 202),
                body=b"",
                headers={"Content-Length": "0"},
                what=f"{'mount' if mount else 'start upload'} to {self}",
                # A mount only saves bytes: a failed one is not waited for, the caller uploads.
                retry=mount is None,
            )
        if response.status == 201 and mount is not None:
            return None
        return self._location(response, "start upload")

    def upload_stream(self, location: str, size: int, chunks: Iterable[bytes]) -> str:
        """One PATCH streaming the whole blob (spec: "Pushing a blob in chunks" with a single chunk).

        Returns:
            The location to finish the upload at. ECR answers 201 here, Distribution 202.
        """
        # Its answer names the session's next location, the one a cancel must use: an interrupt
        # once the body is sent lets that answer come (watch.awaited).
        with awaited(opens=True):
            response = self.session.request(
                "PATCH",
                location,
                scopes=self.scopes,
                deadline=self.deadline,
                body=chunks,
                expect=(201, 202, 204),
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(size),
                    **({"Content-Range": f"0-{size - 1}"} if size else {}),
                },
                what=f"upload to {self}",
            )
        return response.headers.get("Location") or location

    def finish_upload(
        self, location: str, digest: Digest, size: int = 0, chunks: Iterable[bytes] | None = None
    ) -> None:
        """PUT ``?digest=`` to close an upload; with ``chunks``, the body is the whole blob
        (spec: "Pushing a blob monolithically" via POST then PUT).

        If the PUT fails, the blob may still have been committed by an attempt whose answer was
        lost (a retry then finds the session gone); the blob being there is what counts.
        """
        separator = "&" if "?" in location else "?"
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size if chunks is not None else 0),
        }
        try:
            self.session.request(
                "PUT",
                f"{location}{separator}digest={quote(str(digest))}",
                scopes=self.scopes,
                deadline=self.deadline,
                body=chunks if chunks is not None else b"",
                headers=headers,
                expect=(201, 204),
                what=f"finish upload of {digest.short} to {self}",
            )
        except _NO_ANSWER:
            with contextlib.suppress(*_NO_ANSWER):
                if self._aftermath().head_blob(digest) is not None:
                    return
            raise

    def cancel_upload(self, location: str) -> None:
        """DELETE an upload session; best effort (the registry expires abandoned sessions anyway),
        sent even when the run's deadline has passed or the run was interrupted (with a short
        deadline of its own). One that fails is counted (:func:`uncancelled_uploads`) for a front
        end to say so."""
        try:
            with cleaning_up():
                self.session.request(
                    "DELETE",
                    location,
                    scopes=self.scopes,
                    deadline=Deadline.after(AFTERMATH_SECONDS),
                    expect=(200, 202, 204, 404),
                    what=f"cancel upload to {self}",
                    # A 429 or 503 is tried again, within the short deadline: a registry
                    # throttling a burst would otherwise keep the session open.
                    retry=True,
                )
        except (*_NO_ANSWER, RunInterruptedError):
            _UNCANCELLED.append(self.session.registry)

    def _location(self, response: urllib3.BaseHTTPResponse, step: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(
                "POST",
                f"{self}/blobs/uploads/",
                response.status,
                what=f"{step} to {self} (no Location in the answer)",
            )
        return location

    # -- referrers (spec: "Listing Referrers") -----------------------------------------------------

    def get_referrers(self, digest: Digest, artifact_type: str | None = None) -> Referrers | None:
        """Ask the referrers API what refers to ``digest``; None when the registry has no referrers
        API, so the caller falls back to the referrers tag.

        The API counts as there only when it answers ``200`` with an OCI image index
        (distribution-spec v1.1, "Listing Referrers": such a registry "MUST NOT return a 404" and
        MUST set that Content-Type). A 404 (Distribution 2.8's router miss), 400, 405, 406 or 501 is
        "no API" (what registries without it answer: research in shared/registry-notes.md), and so
        is a 200 of another type (a registry answering every path with a page). ``Link: rel="next"``
        pages are followed. The server applies an ``artifactType`` filter only if it says so
        (``OCI-Filters-Applied``): the returned :class:`Referrers` tells, and the caller filters
        again either way.

        Raises:
            RegistryError, RegistryUnreachableError, DeadlineExceededError: another answer, or none.
            AnswerTooLargeError: a page larger than :data:`MAX_MANIFEST_BYTES`.
            UnsupportedManifestError: a page that is no readable OCI index.
        """
        query = f"?{urlencode({'artifactType': artifact_type})}" if artifact_type else ""
        path: str | None = f"/v2/{self.name}/referrers/{digest}{query}"
        entries: list[ReferrerDescriptor] = []
        pages = 0
        filtered = bool(artifact_type)
        what = f"list referrers of {self}@{digest}"
        seen: set[bytes] = set()
        while path is not None:
            key = hashlib.sha256(path.encode()).digest()
            if pages >= MAX_REFERRERS_PAGES:
                raise PromoterError(
                    f"{what}: the registry links more than {MAX_REFERRERS_PAGES} pages; refusing "
                    "to follow them all"
                )
            if key in seen:
                raise PromoterError(f"{what}: the registry links a page it already gave")
            seen.add(key)
            response = self.session.request(
                "GET",
                path,
                scopes=self.scopes,
                deadline=self.deadline,
                headers={"Accept": str(MediaType.OCI_INDEX)},
                expect=(200, 400, 404, 405, 406, 501),
                what=what,
                limit=MAX_REFERRERS_PAGE_BYTES,
            )
            content_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
            if response.status != 200 or content_type != MediaType.OCI_INDEX:
                if pages:
                    raise RegistryError(
                        "GET", f"{self}/referrers/{digest}", response.status, what=what
                    )
                return None
            pages += 1
            entries.extend(parse_referrers_index(response.data, what))
            if len(entries) > MAX_REFERRERS:
                raise PromoterError(
                    f"{what}: more than {MAX_REFERRERS} referrers; refusing to follow them all"
                )
            applied = response.headers.get("OCI-Filters-Applied", "")
            filtered = filtered and "artifactType" in applied
            path = self._next_page(response.headers.get("Link"), what)
        return Referrers(tuple(entries), filtered=filtered)

    # -- tags (spec: "Listing Tags") --------------------------------------------------------------

    def list_tags(self, page_size: int = TAG_PAGE_SIZE, *, limit: int | None = None) -> list[str]:
        """All tags, following ``Link`` pagination.

        Raises:
            AnswerTooLargeError: more than ``limit`` tags (:data:`MAX_TAGS` by default): a
                registry paging without end is cut off here, its memory bounded.
            PromoterError: a page links to itself or to one it linked before.
            RegistryError, RegistryUnreachableError, DeadlineExceededError: no (readable) answer.
        """
        limit = MAX_TAGS if limit is None else limit
        tags: list[str] = []
        for tag in self._tag_pages(page_size):
            tags.append(tag)
            if len(tags) > limit:
                raise AnswerTooLargeError(
                    f"list tags of {self}: more than {limit} tags; not read to the end"
                )
        return tags

    def _tag_pages(self, page_size: int) -> Iterator[str]:
        path: str | None = f"/v2/{self.name}/tags/list?n={min(page_size, TAG_PAGE_SIZE)}"
        seen: set[bytes] = set()  # digests of the paths: a link may be long on purpose
        while path is not None:
            if len(seen) >= MAX_TAG_PAGES:
                raise AnswerTooLargeError(
                    f"list tags of {self}: more than {MAX_TAG_PAGES} pages; not read to the end"
                )
            key = hashlib.sha256(path.encode()).digest()
            if key in seen:
                raise PromoterError(f"list tags of {self}: the registry links a page twice")
            first = not seen
            seen.add(key)
            response = self.session.request(
                "GET",
                path,
                scopes=self.scopes,
                deadline=self.deadline,
                what=f"list tags of {self}",
                expect=(200, 404),
            )
            if response.status == 404:
                if first:
                    return  # no such repository: no tags
                raise RegistryError(
                    "GET", f"{self}/tags/list", 404, what=f"list tags of {self} (a later page)"
                )
            try:
                tags = json.loads(response.data).get("tags") or []
            except (ValueError, AttributeError, RecursionError) as exc:
                raise RegistryError(
                    "GET", f"{self}/tags/list", 200, what=f"list tags of {self} (unreadable answer)"
                ) from exc
            if not isinstance(tags, list):
                raise RegistryError(
                    "GET", f"{self}/tags/list", 200, what=f"list tags of {self} (tags is no list)"
                )
            yield from (str(t) for t in tags)
            path = self._next_page(response.headers.get("Link"), f"list tags of {self}")

    def _next_page(self, header: str | None, what: str) -> str | None:
        """The path of the ``rel="next"`` page, which must be on this registry: a link to another
        host is refused, not followed."""
        target = _next_link(header)
        if target is None or target.startswith("/"):
            return target
        parsed = urlsplit(target)
        if parsed.netloc.lower() != self.session.registry.lower() or not parsed.path:
            raise PromoterError(f"{what}: the registry links the next page on another host")
        return parsed.path + (f"?{parsed.query}" if parsed.query else "")


def _next_link(header: str | None) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header (RFC 8288), e.g. ``</v2/x/tags/list?n=2&last=b>``."""
    if not header:
        return None
    for part in header.split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            return target.strip().strip("<>")
    return None


def _deletion_disabled(error: RegistryError) -> bool:
    """Whether a DELETE's error answer says the registry deletes nothing (spec, "Deleting
    Manifests": "If manifest deletion is disabled, the registry MUST respond with either a 400 Bad
    Request or a 405 Method Not Allowed"). A 400 naming another error code (``NAME_INVALID``) is
    that error, not a disabled deletion."""
    if error.status == 405:
        return True
    return error.status == 400 and (not error.codes or "UNSUPPORTED" in error.codes)


def _separator(reference: str) -> str:
    """``@`` before a digest, ``:`` before a tag, for messages."""
    return "@" if ":" in reference else ":"


def _header_digest(value: str, what: str) -> Digest:
    """A digest a registry sent in a header; a malformed one is the registry's fault (exit 1)."""
    try:
        return parse_digest(value.strip())
    except InvalidDigestError as exc:
        raise DigestMismatchError(f"{what}: the registry sent an invalid digest {value!r}") from exc


def _header_int(value: str | None, what: str) -> int:
    """A non-negative integer header such as Content-Length (0 when absent)."""
    try:
        number = int(value or 0)
    except ValueError:
        number = -1
    if number < 0:
        raise UnsupportedManifestError(f"{what}: the registry sent an invalid length {value!r}")
    return number


def lookup_digest(
    transport: Transport, reference: Reference, *, deadline: Deadline | None = None
) -> Digest | None:
    """What ``reference`` resolves to (HEAD, or GET when the registry names no digest), or None when
    the registry does not have it.

    Raises:
        RegistryError, RegistryUnreachableError: the registry could not be asked.
    """
    info = Repository.of(transport, reference, deadline=deadline).head_manifest(
        reference.identifier
    )
    return info.digest if info is not None else None


#: Concurrent HEAD requests of :func:`lookup_digests` (status, promote's checks).
LOOKUP_WORKERS = 16


def lookup_digests(
    transport: Transport,
    references: Iterable[Reference],
    *,
    deadline: Deadline | None = None,
    workers: int = LOOKUP_WORKERS,
) -> dict[Reference, Digest | PromoterError | None]:
    """:func:`lookup_digest` of each reference, concurrently, in the order given: what each
    resolves to, None when its registry does not have it, or the error that kept it from being
    asked (never raised: each caller decides what one unanswered reference means)."""
    wanted = list(dict.fromkeys(references))
    if not wanted:
        return {}
    with ThreadPoolExecutor(
        max_workers=max(1, min(workers, len(wanted))),
        thread_name_prefix="lookup",
        initializer=signals_to_main_thread,
    ) as pool:
        futures = {r: pool.submit(lookup_digest, transport, r, deadline=deadline) for r in wanted}
        found: dict[Reference, Digest | PromoterError | None] = {}
        for reference, future in futures.items():
            try:
                found[reference] = future.result()
            except PromoterError as exc:
                found[reference] = exc
    return found


def resolve_digest(
    transport: Transport,
    reference: Reference,
    *,
    label: str = "image",
    deadline: Deadline | None = None,
) -> Digest:
    """The digest ``reference`` resolves to (as ``crane digest``).

    Raises:
        RegistryError: the reference does not exist (404 ``MANIFEST_UNKNOWN``, naming it as ``label``)
            or the registry failed.
    """
    found = lookup_digest(transport, reference, deadline=deadline)
    if found is None:
        raise RegistryError(
            "HEAD",
            f"{reference.name}/manifests/{reference.identifier}",
            404,
            details=(RegistryErrorDetail("MANIFEST_UNKNOWN", "manifest unknown"),),
            what=f"{label} {reference} not found",
        )
    return found


def same_content(
    transport: Transport,
    reference: Reference,
    found: Digest,
    wanted: Digest,
    *,
    deadline: Deadline | None = None,
) -> bool:
    """Whether ``found``, what ``reference`` resolved to in its registry, names the same bytes as
    ``wanted`` (:meth:`Repository.same_content`: by digest when both use one algorithm, else by the
    bytes, fetched from ``reference``'s repository by ``found``).

    Raises:
        RegistryError, RegistryUnreachableError, DeadlineExceededError, DigestMismatchError,
        UnsupportedManifestError: the bytes were needed and could not be had.
    """
    return Repository.of(transport, reference, deadline=deadline).same_content(found, wanted)
