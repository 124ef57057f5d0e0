"""Admission decisions: may this Pod (or pod template) run in this environment, and promotion on demand.

What the admission webhook answers, on plain values, so that the server around it stays thin (the
kopf pattern: a typed review in, a typed answer out). The rules, for each image of the object that
a CREATE brings or an UPDATE adds (found by the same discovery as ``plan``, so containers, init
containers, ephemeral containers and image volumes of Pods and of any pod template):

- an image in the environment's own registry must be there, by tag, by digest, or, for
  ``tag@digest``, by the digest the kubelet pulls; missing, it is denied (guard) or, in promote mode,
  copied from the environment it promotes from before the answer (same repository path, tag and
  digest, with the engine of ``sync``);
- an image in another environment's registry is denied (production must not pull from dev's
  account), unless promoter.yaml's ``allowImagesFrom`` allows that environment, as ``plan`` does;
- an image of any other registry is allowed, allowed with a warning, or denied
  (``admission.external``), except for ``admission.allowExternal`` patterns, always allowed.

An image already in the old object of an UPDATE is not asked again: it was admitted when it came,
and a metadata change (Argo CD's tracking annotation, a finalizer) must not be denied because a
registry is briefly unreachable. Pods it creates are still checked one by one.

Kubernetes facts used here: AdmissionReview ``admission.k8s.io/v1`` (the response echoes
``request.uid``; ``status.message`` is what ``kubectl`` and Argo CD show; ``warnings`` are shown
without failing; a ``dryRun`` request must cause no side effect when the webhook declares
``sideEffects: NoneOnDryRun``), from the Kubernetes documentation "Dynamic Admission Control".
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypedDict

from promoter.app.presence import PositiveCache, Promotions, SingleFlight
from promoter.app.runtime import Runtime
from promoter.app.sync import SyncReport, make_present
from promoter.config.values import (
    AdmissionMode,
    AdmissionSettings,
    Environment,
    ExternalImages,
    PromoterConfig,
)
from promoter.deadline import Deadline
from promoter.errors import (
    AdmissionReviewError,
    AuthenticationError,
    DeadlineExceededError,
    InvalidReferenceError,
    PromoterError,
    one_line,
)
from promoter.gitops.discover import FoundImage, discover_images
from promoter.oci.digest import Digest
from promoter.oci.referrers import ALL_ATTACHMENTS, AttachmentFilter
from promoter.outcome import Outcome
from promoter.planning.plan import PlanPolicy, PlanStatus, in_registry
from promoter.process import signals_to_main_thread
from promoter.reference import Reference, parse_reference, registry_identity
from promoter.remote.repository import lookup_digest

#: The AdmissionReview version this webhook speaks (and the only one it accepts).
ADMISSION_API_VERSION = "admission.k8s.io/v1"
REVIEW_KIND = "AdmissionReview"
#: Characters of one image reference (or other request text) shown in an answer.
SHOWN = 300
#: Characters of a denial's message: Kubernetes shows it whole in ``kubectl`` and events.
MESSAGE_LIMIT = 4000
#: Characters of one warning: the API server truncates longer ones (Kubernetes documents 256 as
#: the point where warnings "may be truncated").
WARNING_LIMIT = 250
#: The most distinct images one object may bring; an object with more is denied unread (a
#: hostile object must not turn into thousands of registry requests).
MOST_IMAGES = 200
#: Seconds an on-demand copy may run in the background after the review that started it gave up.
PROMOTION_TIMEOUT = 600.0
#: Concurrent registry lookups for the images of one object, across all reviews.
LOOKUP_WORKERS = 32

#: The longest request uid read (the API server's are UUIDs, 36 characters).
UID_LIMIT = 128
#: The operations of an AdmissionRequest (admission.k8s.io/v1 ``Operation``).
_OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})
#: Operations whose object can bring an image.
_CHECKED_OPERATIONS = frozenset({"CREATE", "UPDATE"})
#: Subresources whose object can bring an image: the Pod itself ("") and its ephemeral containers.
_CHECKED_SUBRESOURCES = frozenset({"", "ephemeralcontainers"})


# -- the wire ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """The parts of an AdmissionReview's ``request`` a decision reads.

    Attributes:
        uid: the request's ``uid``, echoed in the answer.
        kind: the object's kind (``request.kind.kind``: Pod, Deployment, Rollout...).
        operation: CREATE, UPDATE, DELETE or CONNECT.
        sub_resource: ``request.subResource`` (``ephemeralcontainers``), empty for the resource.
        namespace: the object's namespace, empty for cluster-scoped objects.
        name: the object's name, or its ``generateName`` prefix followed by ``*`` when the API
            server has not named it yet.
        object: the object as it will be stored (None for DELETE).
        old_object: the object before an UPDATE, else None.
        dry_run: whether the request persists nothing (``kubectl apply --dry-run=server``, Argo
            CD's dry run before a sync): then nothing is copied.
    """

    uid: str
    kind: str
    operation: str
    sub_resource: str
    namespace: str
    name: str
    object: Mapping[str, Any] | None
    old_object: Mapping[str, Any] | None
    dry_run: bool

    @property
    def subject(self) -> str:
        """``Kind namespace/name`` for logs and messages, one line."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return one_line(f"{self.kind} {where}", SHOWN)


def parse_review(body: bytes) -> AdmissionRequest:
    """The request of an AdmissionReview ``admission.k8s.io/v1`` body.

    Args:
        body: the HTTP request body, already capped in size by the server.

    Raises:
        AdmissionReviewError: not JSON, not an AdmissionReview v1, no ``request``, no ``uid``;
            one line saying which.
    """
    try:
        review = json.loads(body)
    except (
        ValueError,
        RecursionError,
    ) as exc:  # RecursionError: nesting deeper than Python's stack
        raise AdmissionReviewError(f"the body is not JSON: {one_line(str(exc), SHOWN)}") from None
    if not isinstance(review, dict):
        raise AdmissionReviewError("the body is not a JSON object: expected an AdmissionReview")
    api_version, kind = review.get("apiVersion"), review.get("kind")
    if kind != REVIEW_KIND or api_version != ADMISSION_API_VERSION:
        raise AdmissionReviewError(
            f"expected kind {REVIEW_KIND} apiVersion {ADMISSION_API_VERSION}, got kind "
            f"{_shown(kind)} apiVersion {_shown(api_version)}: set admissionReviewVersions: [v1] "
            "in the webhook configuration"
        )
    request = review.get("request")
    if not isinstance(request, dict):
        raise AdmissionReviewError("the AdmissionReview has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid.strip():
        raise AdmissionReviewError("the AdmissionReview request has no uid")
    if len(uid) > UID_LIMIT:
        raise AdmissionReviewError(f"the request's uid is longer than {UID_LIMIT} characters")
    operation = request.get("operation")
    if operation not in _OPERATIONS:
        raise AdmissionReviewError(
            f"request.operation is {_quoted(operation)}, not one of {', '.join(sorted(_OPERATIONS))}"
        )
    kind_field = request.get("kind")
    if not isinstance(kind_field, dict) or not isinstance(kind_field.get("kind"), str):
        raise AdmissionReviewError("request.kind is not a GroupVersionKind with a kind")
    obj, old = request.get("object"), request.get("oldObject")
    for field, value in (("object", obj), ("oldObject", old)):
        if value is not None and not isinstance(value, dict):
            raise AdmissionReviewError(f"request.{field} is not an object")
    if obj is None and operation in _CHECKED_OPERATIONS:
        raise AdmissionReviewError(f"a {operation} request has no object")
    dry_run = request.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise AdmissionReviewError(f"request.dryRun is {_quoted(dry_run)}, not true or false")
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    metadata = metadata if isinstance(metadata, dict) else {}
    name = request.get("name") or metadata.get("name")
    if not name and metadata.get("generateName"):
        name = f"{metadata['generateName']}*"
    return AdmissionRequest(
        uid=uid,
        kind=_text(kind_field["kind"]),
        operation=operation,
        sub_resource=_text(request.get("subResource")),
        namespace=_text(request.get("namespace")),
        name=_text(name),
        object=obj,
        old_object=old,
        dry_run=dry_run,
    )


class AdmissionStatus(TypedDict):
    """``response.status`` of a denial (a ``metav1.Status``)."""

    code: int
    reason: str
    message: str


class AdmissionResponse(TypedDict, total=False):
    """``response`` of an AdmissionReview."""

    uid: str
    allowed: bool
    status: AdmissionStatus
    warnings: list[str]


class AdmissionReviewAnswer(TypedDict):
    """The AdmissionReview the webhook answers with."""

    apiVersion: str
    kind: str
    response: AdmissionResponse


@dataclass(frozen=True, slots=True)
class Verdict:
    """An answer: allowed or not, with the message a person reads and warnings.

    Attributes:
        allowed: whether the object may be stored.
        message: for a denial, why and what to do (one line).
        warnings: non-fatal notes, one line each (shown by ``kubectl``, never failing the request).
    """

    allowed: bool
    message: str = ""
    warnings: tuple[str, ...] = ()

    def answer(self, uid: str) -> AdmissionReviewAnswer:
        """The AdmissionReview v1 answering request ``uid`` with this verdict."""
        response: AdmissionResponse = {"uid": uid, "allowed": self.allowed}
        if not self.allowed:
            response["status"] = {
                "code": 403,
                "reason": "Forbidden",
                "message": one_line(self.message, MESSAGE_LIMIT),
            }
        if self.warnings:
            response["warnings"] = [one_line(w, WARNING_LIMIT) for w in self.warnings]
        return {"apiVersion": ADMISSION_API_VERSION, "kind": REVIEW_KIND, "response": response}


# -- what each image is -----------------------------------------------------------------------------


class ImageState(StrEnum):
    """What a review found for one image; the ``denied`` ones deny the request."""

    PRESENT = "present"  #: in the environment's registry
    PROMOTED = "promoted"  #: missing, copied on demand before the answer
    WOULD_PROMOTE = "would-promote"  #: missing, in the source; a dry run copies nothing
    ALLOWED = "allowed"  #: an external image (or an allowed environment's) let through
    WARNED = "warned"  #: an external image let through with a warning (``external: warn``)
    MISSING = "missing"  #: not in the environment's registry
    PROMOTING = "promoting"  #: being copied now; the request is denied, a retry will pass
    FOREIGN = "foreign-environment"  #: another environment's registry
    EXTERNAL_DENIED = "external-denied"  #: another registry, and ``external: deny``
    INVALID = "invalid"  #: not an image reference
    UNCHECKED = "unchecked"  #: its registry could not be asked within the deadline

    @property
    def denied(self) -> bool:
        """Whether this state denies the request."""
        return self not in _ADMITTED


_ADMITTED = frozenset(
    {
        ImageState.PRESENT,
        ImageState.PROMOTED,
        ImageState.WOULD_PROMOTE,
        ImageState.ALLOWED,
        ImageState.WARNED,
    }
)


@dataclass(frozen=True, slots=True)
class ImageCheck:
    """One image of a review and what was found.

    Attributes:
        image: the reference as written in the object.
        place: where (``container api``, ``volume models``).
        state: what was found.
        note: one line for a person: the denial's reason or the warning; empty when there is
            nothing to say.
        cached: whether the answer came from the positive cache (no registry request).
    """

    image: str
    place: str
    state: ImageState
    note: str = ""
    cached: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """A review's verdict with what it rests on, for logs and metrics.

    Attributes:
        verdict: the answer.
        checks: one per distinct image the request brings, in the object's order.
        skipped: why the request was allowed without looking at images (a DELETE, a status
            update, an object without pod spec), else empty.
    """

    verdict: Verdict
    checks: tuple[ImageCheck, ...] = ()
    skipped: str = ""

    @property
    def cache_hits(self) -> int:
        """Images answered from the cache."""
        return sum(1 for c in self.checks if c.cached)

    @property
    def registry_errors(self) -> int:
        """Images whose registry could not be asked."""
        return sum(1 for c in self.checks if c.state is ImageState.UNCHECKED)

    @property
    def promoted(self) -> int:
        """Images copied on demand for this answer."""
        return sum(1 for c in self.checks if c.state is ImageState.PROMOTED)


def new_images(request: AdmissionRequest) -> list[FoundImage] | str:
    """The images the request brings, first place of each (the object's order); or why none are
    checked (an operation or subresource that brings none).

    An UPDATE brings the images of its object that its old object did not have.
    """
    if request.operation not in _CHECKED_OPERATIONS:
        return f"{request.operation or 'an operation'} brings no image"
    if request.sub_resource not in _CHECKED_SUBRESOURCES:
        return f"the {request.sub_resource} subresource brings no image"
    if request.object is None:
        return "the request has no object"
    before: set[str] = set()
    if request.operation == "UPDATE" and request.old_object is not None:
        before = {found.image for found in discover_images([_as_kind(request.old_object, request)])}
    images: dict[str, FoundImage] = {}
    for found in discover_images([_as_kind(request.object, request)]):
        if found.image not in before:
            images.setdefault(found.image, found)
    return list(images.values())


def _as_kind(obj: Mapping[str, Any], request: AdmissionRequest) -> Mapping[str, Any]:
    """The object with the request's kind: the API server's ``request.kind`` is what is being
    admitted, whatever the object's own ``kind`` field says (or lacks)."""
    return obj if obj.get("kind") == request.kind else {**obj, "kind": request.kind}


def matches(patterns: Sequence[str], *names: str) -> bool:
    """Whether one of ``names`` matches one of the shell-style ``patterns``
    (:func:`fnmatch.fnmatchcase`: ``*`` also matches ``/``), so ``registry.k8s.io/*`` covers every
    repository there."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns for name in names)


def spellings(reference: Reference, image: str) -> tuple[str, ...]:
    """The names ``allowExternal`` patterns are matched against: the normalised name, the name as
    written, and for Docker Hub every short form (``docker.io/library/nginx``,
    ``docker.io/nginx``, ``library/nginx``, ``nginx``), so that a pattern in any of them allows
    the image however a manifest spells it."""
    names = [reference.name, written_name(image)]
    if reference.registry == "docker.io":
        path = reference.repository
        names += [path, f"docker.io/{path}"]
        if path.startswith("library/"):
            short = path.removeprefix("library/")
            names += [short, f"docker.io/{short}"]
    return tuple(dict.fromkeys(names))


def written_name(image: str) -> str:
    """The repository as the manifest writes it, without tag or digest (``nginx`` of
    ``nginx:1.27``; ``docker.io/library/nginx`` stays so): ``allowExternal`` patterns match it as
    well as the normalised name."""
    name = image.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    last = last.split(":", 1)[0]
    return f"{head}/{last}" if head else last


def presence_key(reference: Reference) -> str:
    """What a lookup of ``reference`` asks: ``name@digest`` when it has a digest (the kubelet pulls
    that; the tag is not consulted), else ``name:tag``."""
    if reference.digest is not None:
        return f"{reference.name}@{reference.digest}"
    return f"{reference.name}:{reference.tag}"


# -- the controller ---------------------------------------------------------------------------------


class AdmissionController:
    """Decides reviews for one environment of a promoter.yaml; lives as long as the webhook process.
    Thread-safe: reviews run concurrently.

    Args:
        runtime: the process's runtime (transport, credentials that renew, scrubber).
        config: promoter.yaml.
        environment: the environment whose Pods are reviewed.
        on_copied: called from the copying thread when an on-demand copy ends, with the
            destination reference and the sync report, or the exception that ended it (for logs
            and metrics: a copy may outlive the review that started it).
        attachments: which signatures, attestations and SBOMs an on-demand copy carries.

    Raises:
        ConfigError: ``environment`` is not in ``config``.
    """

    def __init__(
        self,
        runtime: Runtime,
        config: PromoterConfig,
        environment: str,
        *,
        on_copied: Callable[[str, SyncReport | BaseException], None] | None = None,
        attachments: AttachmentFilter = ALL_ATTACHMENTS,
    ) -> None:
        self.runtime = runtime
        self._on_copied = on_copied
        self._attachments = attachments
        self.environment: Environment = config.environment(environment)
        self.settings: AdmissionSettings = self.environment.admission
        self.source: Environment | None = config.source_of(environment)
        self.others = {
            registry_identity(host): name
            for host, name in config.other_registries(environment).items()
        }
        allowed = set(self.environment.allow_images_from)
        self.allowed_registries = frozenset(
            host for host, name in self.others.items() if "*" in allowed or name in allowed
        )
        self.cache = PositiveCache(self.settings.cache_seconds)
        self._lookups: SingleFlight[Digest | None] = SingleFlight()
        self._promotions: Promotions[SyncReport] = Promotions()
        self._pool = ThreadPoolExecutor(
            max_workers=LOOKUP_WORKERS,
            thread_name_prefix="admission-lookup",
            initializer=signals_to_main_thread,
        )

    def close(self, grace: float = 0.0) -> int:
        """Stop: no new on-demand copies; wait up to ``grace`` seconds for running ones. Returns how
        many were left running (see :class:`~promoter.app.presence.Promotions`)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        return self._promotions.close(grace)

    @property
    def promotions_running(self) -> int:
        """On-demand copies running now."""
        return self._promotions.running

    def check_registry(self, deadline: Deadline) -> None:
        """Ask the environment's registry whether it answers (``GET /v2/``): readiness.

        Raises:
            RegistryError, RegistryUnreachableError, DeadlineExceededError: it did not answer.
        """
        session = self.runtime.transport.session(self.environment.registry)
        try:
            session.ping(deadline=deadline)
        except PromoterError as exc:
            raise self.runtime.scrubber.error(exc) from None

    def review(
        self, request: AdmissionRequest, deadline: Deadline, *, cached_only: bool = False
    ) -> Decision | None:
        """The decision on ``request``, within ``deadline``.

        Args:
            request: the parsed review.
            deadline: when the answer is due (below the webhook's ``timeoutSeconds``).
            cached_only: decide only if no registry request is needed, else return None (the
                server decides cached requests on its event loop and hands the rest to threads).

        Returns:
            The decision; None only with ``cached_only``. Never raises for a registry failure:
            an image that could not be checked denies the request with the reason.
        """
        images = new_images(request)
        if isinstance(images, str):
            return Decision(Verdict(allowed=True), skipped=images)
        if not images:
            return Decision(Verdict(allowed=True), skipped="the object has no image")
        if len(images) > MOST_IMAGES:
            message = (
                f"{request.subject} brings {len(images)} distinct images; promoter checks at most "
                f"{MOST_IMAGES} per object"
            )
            return Decision(Verdict(allowed=False, message=message))
        checks: list[ImageCheck | None] = []
        pending: list[tuple[int, FoundImage, Reference]] = []
        for found in images:
            check, reference = self._classify(found)
            if check is None and reference is not None:
                if presence_key(reference) in self.cache:
                    check = _checked(found, ImageState.PRESENT, cached=True)
                else:
                    pending.append((len(checks), found, reference))
            checks.append(check)
        if pending and cached_only:
            return None
        for index, check in self._look_up(pending, deadline, dry_run=request.dry_run):
            checks[index] = check
        done = tuple(c for c in checks if c is not None)
        return Decision(self._verdict(done), done)

    # -- classification (no I/O) -------------------------------------------------------------------

    def _classify(self, found: FoundImage) -> tuple[ImageCheck | None, Reference | None]:
        """A final check for an image that needs no registry request, or the reference to look up
        in the environment's registry."""
        place = one_line(found.place, SHOWN)
        try:
            reference = parse_reference(found.image)
        except InvalidReferenceError as exc:
            note = f"{_shown(found.image)} ({place}) is not an image reference: {exc}"
            return _checked(found, ImageState.INVALID, one_line(note, SHOWN)), None
        image = _shown(found.image)
        name = self.environment.name
        if in_registry(reference, self.environment.registry):
            # As the environment's promoter.yaml spells it, so that its registries: settings apply.
            return None, reference.in_repository(self.environment.registry, reference.repository)
        registry = registry_identity(reference.registry)
        owner = self.others.get(registry)
        if owner is not None and registry in self.allowed_registries:
            note = f"image {image} ({place}) is from {owner}'s registry, allowed by {name}'s allowImagesFrom"
            return _checked(found, ImageState.ALLOWED, note), None
        if owner is not None:
            own = reference.in_repository(self.environment.registry, reference.repository)
            note = (
                f"image {image} ({place}) is in {owner}'s registry; {name} runs only images of its "
                f"own registry {self.environment.registry}: use {_shown(str(own))}, which "
                f"promoter sync {name} copies once {name}'s overlay names it"
            )
            return _checked(found, ImageState.FOREIGN, note), None
        policy = self.settings.external
        patterns = self.settings.allow_external
        if policy is ExternalImages.ALLOW or matches(patterns, *spellings(reference, found.image)):
            return _checked(found, ImageState.ALLOWED), None
        if policy is ExternalImages.WARN:
            note = (
                f"image {image} ({place}) is from {reference.registry}, no environment's registry "
                f"(admission.external: warn)"
            )
            return _checked(found, ImageState.WARNED, note), None
        note = (
            f"image {image} ({place}) is from {reference.registry}, which is no environment's "
            f"registry, and {name}'s admission.external is deny: add '{_shown(reference.name)}' "
            f"(or '{_shown(reference.registry)}/*') to admission.allowExternal, or use an image "
            f"of {self.environment.registry}"
        )
        return _checked(found, ImageState.EXTERNAL_DENIED, note), None

    def _verdict(self, checks: tuple[ImageCheck, ...]) -> Verdict:
        denied = [c.note for c in checks if c.state.denied]
        warnings = tuple(c.note for c in checks if not c.state.denied and c.note)
        if denied:
            return Verdict(allowed=False, message="; ".join(denied), warnings=warnings)
        return Verdict(allowed=True, warnings=warnings)

    # -- lookups and on-demand copies --------------------------------------------------------------

    def _look_up(
        self,
        pending: list[tuple[int, FoundImage, Reference]],
        deadline: Deadline,
        *,
        dry_run: bool,
    ) -> list[tuple[int, ImageCheck]]:
        """The checks of the images that need the registry, each in its own thread but the first,
        which runs in the caller's (one image, the usual Pod, costs no hand-off)."""
        if not pending:
            return []
        (index, found, reference), *rest = pending
        futures = [(i, f, self._start_check(f, r, deadline, dry_run)) for i, f, r in rest]
        results = [(index, self._check(found, reference, deadline, dry_run))]
        for index, found, future in futures:
            try:
                results.append((index, future.result(timeout=deadline.cap(deadline.seconds) + 1)))
            except FutureTimeoutError:
                results.append((index, self._unchecked(found, deadline)))
        return results

    def _start_check(
        self, found: FoundImage, reference: Reference, deadline: Deadline, dry_run: bool
    ) -> Future[ImageCheck]:
        """:meth:`_check` in the lookup pool; done here when the pool is shut (the process is
        stopping)."""
        try:
            return self._pool.submit(self._check, found, reference, deadline, dry_run)
        except RuntimeError:
            done: Future[ImageCheck] = Future()
            done.set_result(self._check(found, reference, deadline, dry_run))
            return done

    def _unchecked(self, found: FoundImage, deadline: Deadline) -> ImageCheck:
        error = DeadlineExceededError(f"gave up after {deadline.name}")
        return self._error_check(found, self.environment.registry, error)

    def _check(
        self, found: FoundImage, reference: Reference, deadline: Deadline, dry_run: bool
    ) -> ImageCheck:
        """Look ``reference`` up in the environment's registry; a missing one is denied, or
        promoted in promote mode."""
        try:
            digest = self._present(reference, deadline)
        except PromoterError as exc:
            return self._error_check(found, reference.registry, exc)
        if digest is not None:
            return _checked(found, ImageState.PRESENT)
        return self._missing(found, reference, deadline, dry_run)

    def _present(self, reference: Reference, deadline: Deadline) -> Digest | None:
        """The digest ``reference`` has in its registry (then remembered), or None.

        Raises:
            PromoterError: the registry could not be asked.
        """
        key = presence_key(reference)
        transport = self.runtime.transport
        found = self._lookups.run(
            key, lambda: lookup_digest(transport, reference, deadline=deadline), deadline
        ).value
        if found is not None:
            self.cache.add(key)
        return found

    def _error_check(self, found: FoundImage, registry: str, error: PromoterError) -> ImageCheck:
        self.runtime.scrubber.error(error)
        if isinstance(error, AuthenticationError):
            note = (
                f"could not ask {registry} about image {_shown(found.image)}: the registry refused "
                f"the webhook's credentials ({one_line(error.message, SHOWN)}); denied because "
                "promoter cannot tell whether it was promoted: the webhook's registry access (its "
                "role or docker config) needs fixing, retrying will not help"
            )
            return _checked(found, ImageState.UNCHECKED, note)
        # The error's message without its hint: the hint speaks to someone running promoter (a
        # flag, a docker config path), while this note is read by whoever applied the object.
        note = (
            f"could not ask {registry} about image {_shown(found.image)}: "
            f"{one_line(error.message, 2 * SHOWN)}; denied because promoter cannot tell whether it "
            "was promoted: retry when the registry answers"
        )
        return _checked(found, ImageState.UNCHECKED, note)

    def _missing(
        self, found: FoundImage, reference: Reference, deadline: Deadline, dry_run: bool
    ) -> ImageCheck:
        place = one_line(found.place, SHOWN)
        image = _shown(found.image)
        name = self.environment.name
        module = _shown(reference.repository)
        source = self.source
        if self.settings.mode is not AdmissionMode.PROMOTE or source is None:
            note = self._missing_note(found, reference, deadline)
            return _checked(found, ImageState.MISSING, note)
        patterns = self.settings.promote_repositories
        if patterns and not matches(patterns, reference.repository):
            note = (
                f"{self._missing_note(found, reference, deadline)} (the webhook does not copy "
                f"{module}: {name}'s admission.promoteRepositories does not include it)"
            )
            return _checked(found, ImageState.MISSING, note)
        wanted = reference.in_repository(source.registry, reference.repository)
        if dry_run:
            return self._dry_run(found, wanted, deadline)
        started = self._promotions.start(
            presence_key(reference), lambda: self._copy(reference, source)
        )
        if started is None:
            note = (
                f"image {image} ({place}) is not in {reference.registry}, and the webhook is "
                "copying as many images as it may at once; retry in a few seconds"
            )
            return _checked(found, ImageState.PROMOTING, note)
        future, owner = started
        if owner:
            future.add_done_callback(lambda done: self._tell(str(reference), done))
        try:
            report = future.result(timeout=deadline.cap(deadline.seconds))
        except FutureTimeoutError:
            note = (
                f"image {image} ({place}) is being promoted from {source.name} "
                f"({source.registry}); retry in a few seconds"
            )
            return _checked(found, ImageState.PROMOTING, note)
        except PromoterError as exc:
            self.runtime.scrubber.error(exc)
            return self._failed_copy(found, source, exc.message)
        return self._copied(found, reference, source, report)

    def _missing_note(self, found: FoundImage, reference: Reference, deadline: Deadline) -> str:
        """Why a missing image is denied and what to do, after asking the source registry: a
        version the source holds is copied by a sync once the overlay names it (it may have been
        promoted and deleted since: a sync alone brings it back); one the source lacks needs a
        build first. An unanswered source gives both ways."""
        image, place = _shown(found.image), one_line(found.place, SHOWN)
        name, module = self.environment.name, _shown(reference.repository)
        missing = f"image {image} ({place}) is not in {name}'s registry {self.environment.registry}"
        source = self.source
        if source is None:
            return f"{missing}, and no environment promotes into {name}: push it there, then retry"
        promote = (
            f"promoter sync {name} copies it from {source.name} if {name}'s overlay names it; "
            f"otherwise set {module} to that version in {name}'s overlay in Git, then sync"
        )
        wanted = reference.in_repository(source.registry, reference.repository)
        try:
            held = self._present(wanted, deadline)
        except PromoterError:
            return f"{missing}: never promoted, or deleted since; {promote}"
        if held is None:
            return self._absent_everywhere(found, source)
        return f"{missing} (never promoted, or deleted since); {source.name} has it: {promote}"

    def _absent_everywhere(self, found: FoundImage, source: Environment) -> str:
        """The denial of an image neither registry holds: nothing to promote yet."""
        return (
            f"image {_shown(found.image)} ({one_line(found.place, SHOWN)}) is not in "
            f"{self.environment.name}'s registry {self.environment.registry}, nor in "
            f"{source.name}'s registry {source.registry}: check the tag or digest, or build and "
            f"push it to {source.name} first"
        )

    def _copy(self, reference: Reference, source: Environment) -> SyncReport:
        """Copy ``reference`` from ``source``'s registry (runs in a copying thread); remember it as
        present when done, so that the retry that follows a "being promoted" denial is cached."""
        try:
            report = make_present(
                self.runtime,
                [str(reference)],
                source.registry,
                deadline=Deadline.after(PROMOTION_TIMEOUT),
                policy=PlanPolicy(attachments=self._attachments),
            )
        except BaseException as exc:
            self.runtime.scrubber.error(exc)
            raise
        if report.outcome is Outcome.DONE:
            self.cache.add(presence_key(reference))
        return report

    def _tell(self, image: str, future: Future[SyncReport]) -> None:
        """Hand an on-demand copy's end to ``on_copied`` (a done-callback: the copy has left the
        running set by then)."""
        if self._on_copied is None or future.cancelled():
            return
        error = future.exception()
        self._on_copied(image, error if error is not None else future.result())

    def _copied(
        self, found: FoundImage, reference: Reference, source: Environment, report: SyncReport
    ) -> ImageCheck:
        place = one_line(found.place, SHOWN)
        record = report.records[0] if report.records else None
        if record is not None and record.outcome is Outcome.DONE:
            self.cache.add(presence_key(reference))
            note = f"image {_shown(found.image)} was promoted from {source.name} on demand"
            if reference.tag is None:
                # Advice first: the API server may cut warnings past 256 characters.
                note = (
                    f"promote a tag: no tag keeps {_shown(found.image)}, copied from {source.name} "
                    "on demand by digest only (lifecycle rules may expire untagged images)"
                )
            return _checked(found, ImageState.PROMOTED, note)
        if record is not None and record.item.status is PlanStatus.CONFLICT:
            note = (
                f"image {_shown(found.image)} ({place}) pins a digest that {self.environment.name}'s "
                f"registry does not hold, while its tag {_shown(reference.tag or '')} there holds "
                f"other content ({record.item.held}); a promotion never moves a tag: pin the "
                "digest the tag holds, or promote a new tag"
            )
            return _checked(found, ImageState.MISSING, note)
        if record is not None and record.item.status is PlanStatus.MISSING_SOURCE:
            note = self._absent_everywhere(found, source)
            return _checked(found, ImageState.MISSING, note)
        error = record.error if record is not None and record.error else "nothing was copied"
        return self._failed_copy(found, source, error)

    def _failed_copy(self, found: FoundImage, source: Environment, error: str) -> ImageCheck:
        place = one_line(found.place, SHOWN)
        note = (
            f"image {_shown(found.image)} ({place}) is not in {self.environment.registry} and "
            f"could not be promoted from {source.name}: {one_line(error, 2 * SHOWN)}; retry when "
            "the registries answer"
        )
        return _checked(found, ImageState.MISSING, note)

    def _dry_run(self, found: FoundImage, wanted: Reference, deadline: Deadline) -> ImageCheck:
        """A dry run copies nothing (``sideEffects: NoneOnDryRun``): allowed with a warning when the
        source has the image, so that a server-side dry run (Argo CD runs one before applying)
        does not fail where the real request would promote."""
        place = one_line(found.place, SHOWN)
        source = self.source
        assert source is not None  # noqa: S101 - only called in promote mode, which needs one
        try:
            digest = self._present(wanted, deadline)
        except PromoterError as exc:
            return self._error_check(found, wanted.registry, exc)
        if digest is None:
            note = (
                f"image {_shown(found.image)} ({place}) has not been promoted to "
                f"{self.environment.name} and is not in {source.name}'s registry either"
            )
            return _checked(found, ImageState.MISSING, note)
        note = (
            f"image {_shown(found.image)} is not in {self.environment.registry}; a real request "
            f"promotes it from {source.name} (dry run: nothing copied)"
        )
        return _checked(found, ImageState.WOULD_PROMOTE, note)


def _checked(
    found: FoundImage, state: ImageState, note: str = "", *, cached: bool = False
) -> ImageCheck:
    """The check of ``found``, its place as one line."""
    return ImageCheck(found.image, one_line(found.place, SHOWN), state, note, cached)


def _text(value: object) -> str:
    """A request field as one line of text (empty when absent or not a string)."""
    return one_line(value, SHOWN) if isinstance(value, str) else ""


def _quoted(value: object) -> str:
    """A request value as JSON-ish text, quoted when it is a string: one line, cut."""
    return one_line(repr(value), SHOWN)


def _shown(value: object) -> str:
    """Request text shown in an answer: one line, cut."""
    return one_line(value if isinstance(value, str) else repr(value), SHOWN)
