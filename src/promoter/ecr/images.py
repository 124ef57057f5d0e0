"""Images of an ECR repository through the AWS API: what is there and when it was pushed, and deleting.

Pruning an ECR registry goes through these two calls rather than the registry API: one
``BatchDeleteImage`` call deletes up to 100 images, by tag or by digest, and is the action ECR's IAM
policies name; only ``DescribeImages`` knows when an image was pushed (``--keep-recent``). The IAM
actions needed are ``ecr:DescribeImages`` and ``ecr:BatchDeleteImage`` on the repositories pruned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from promoter.ecr.api import EcrApi
from promoter.ecr.hosts import EcrRegistry
from promoter.errors import AnswerTooLargeError, AwsApiError, InvalidDigestError
from promoter.oci.digest import Digest, parse_digest

#: Most image ids one ``BatchDeleteImage`` call takes (ECR API reference, "BatchDeleteImage":
#: ``imageIds``, "Array Members: Minimum number of 1 item. Maximum number of 100 items";
#: https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_BatchDeleteImage.html).
DELETE_BATCH = 100
#: Most images one ``DescribeImages`` page holds (ECR API reference, "DescribeImages":
#: ``maxResults``, "Valid Range: Minimum value of 1. Maximum value of 1000").
DESCRIBE_PAGE = 1000
#: Most images of one repository read (ECR's default quota is 20,000 per repository): an API
#: paging without end stops here.
MAX_IMAGES = 200_000

#: ``failureCode`` of an image that is not there (deleted already, or never was): what a re-run
#: after a fault meets for what the first run deleted.
IMAGE_NOT_FOUND = "ImageNotFound"
#: ``failureCode`` of a manifest an image index in the repository still lists: ECR deletes a
#: child only after its index.
REFERENCED_BY_INDEX = "ImageReferencedByManifestList"


@dataclass(frozen=True, slots=True)
class ImageId:
    """One image as ``BatchDeleteImage`` names it (an ``ImageIdentifier``): by digest (the image
    and every tag on it), by tag (that tag; the image too when it was its last tag), or both (that
    tag, and only if it points at that digest).

    Raises:
        ValueError: neither a digest nor a tag.
    """

    digest: Digest | None = None
    tag: str | None = None

    def __post_init__(self) -> None:
        if self.digest is None and not self.tag:
            raise ValueError("an ECR image id needs a digest or a tag")

    def wire(self) -> dict[str, str]:
        """The ``ImageIdentifier`` JSON the API takes."""
        found: dict[str, str] = {}
        if self.digest is not None:
            found["imageDigest"] = str(self.digest)
        if self.tag:
            found["imageTag"] = self.tag
        return found

    def __str__(self) -> str:
        return f"{self.tag or ''}{'@' + str(self.digest) if self.digest else ''}"


@dataclass(frozen=True, slots=True)
class DeleteFailure:
    """An image ``BatchDeleteImage`` did not delete, in AWS's words.

    Attributes:
        image: the id as it was asked for (as AWS names it when it names one not asked for; None
            when it names none).
        code: AWS's ``failureCode`` (:data:`IMAGE_NOT_FOUND`, :data:`REFERENCED_BY_INDEX`,
            ``KmsError``, ...); kept as text, as AWS adds codes.
        reason: AWS's ``failureReason``, one line.
    """

    image: ImageId | None
    code: str
    reason: str

    @property
    def gone(self) -> bool:
        """Whether the image is not there, which is what deleting it asked for."""
        return self.code == IMAGE_NOT_FOUND


@dataclass(frozen=True, slots=True)
class BatchDeleteResult:
    """What :func:`batch_delete_images` did.

    Attributes:
        deleted: the ids AWS reports deleted, as it reports them (one per tag removed; digest
            and tag filled in).
        failures: the ids asked for that AWS did not delete, with its reasons.
        calls: ``BatchDeleteImage`` calls made.
    """

    deleted: tuple[ImageId, ...]
    failures: tuple[DeleteFailure, ...]
    calls: int


@dataclass(frozen=True, slots=True)
class ImageDetail:
    """One image of a repository, as ``DescribeImages`` tells.

    Attributes:
        digest: the manifest's digest.
        tags: the tags pointing at it (none for an untagged image).
        pushed_at: when the image was pushed (``imagePushedAt``, UTC), or None if AWS does not say.
            Moving an existing tag onto an image already there does not change it.
        size: ``imageSizeInBytes`` (ECR's sum of the compressed layers), or None.
        media_type: ``imageManifestMediaType``, or empty.
    """

    digest: Digest
    tags: tuple[str, ...]
    pushed_at: dt.datetime | None
    size: int | None
    media_type: str


def batch_delete_images(
    api: EcrApi,
    registry: EcrRegistry,
    repository: str,
    image_ids: Iterable[ImageId],
    *,
    batch: int = DELETE_BATCH,
) -> BatchDeleteResult:
    """Delete images of an ECR repository with ``BatchDeleteImage``, :data:`DELETE_BATCH` per call.

    ECR deletes by digest the image and every tag on it; by tag only that tag, and the image with
    its last tag; it refuses to delete a manifest that an image index in the repository lists
    (:data:`REFERENCED_BY_INDEX`), so indexes go first. What AWS refuses image by image comes back
    in ``failures`` and is not raised: :data:`IMAGE_NOT_FOUND` is what a re-run meets for what the
    first run deleted. Duplicate ids are sent once. Needs the IAM action ``ecr:BatchDeleteImage``.

    Each call starts only while the current deadline lasts (:meth:`EcrApi.call`); when one raises,
    the batches before it are deleted and the rest are not: running again finishes the job.

    Raises:
        CredentialError: no AWS credentials, or AWS refused them (no ``ecr:BatchDeleteImage``).
        AwsApiError: a whole call failed (``RepositoryNotFoundException``, throttling after
            boto3's retries, an unreachable endpoint).
        DeadlineExceededError: the current deadline passed between calls.
        ValueError: ``batch`` is not from 1 to :data:`DELETE_BATCH`.
    """
    if not 1 <= batch <= DELETE_BATCH:
        raise ValueError(f"batch must be from 1 to {DELETE_BATCH}, not {batch}")
    wanted = list(dict.fromkeys(image_ids))
    by_wire = {_key(image.wire()): image for image in wanted}
    deleted: list[ImageId] = []
    failures: list[DeleteFailure] = []
    calls = 0
    for start in range(0, len(wanted), batch):
        chunk = wanted[start : start + batch]
        answer = api.call(
            registry,
            "batch_delete_image",
            registryId=registry.account,
            repositoryName=repository,
            imageIds=[image.wire() for image in chunk],
        )
        calls += 1
        deleted.extend(
            image
            for image in (_image_id(found) for found in _entries(answer, "imageIds"))
            if image is not None
        )
        for failure in _entries(answer, "failures"):
            asked = failure.get("imageId")
            wire = asked if isinstance(asked, dict) else {}
            failures.append(
                DeleteFailure(
                    image=by_wire.get(_key(wire)) or _image_id(wire),
                    code=str(failure.get("failureCode", "")),
                    reason=" ".join(str(failure.get("failureReason", "")).split()),
                )
            )
    return BatchDeleteResult(tuple(deleted), tuple(failures), calls)


def describe_images(
    api: EcrApi, registry: EcrRegistry, repository: str, *, page_size: int = DESCRIBE_PAGE
) -> list[ImageDetail]:
    """Every image of an ECR repository (``DescribeImages``, following ``nextToken``), tagged or
    not. Needs the IAM action ``ecr:DescribeImages``.

    Raises:
        CredentialError: no AWS credentials, or AWS refused them.
        AwsApiError: a call failed (``RepositoryNotFoundException``: no such repository), an answer
            names an invalid digest, or a page's ``nextToken`` repeats an earlier one.
        AnswerTooLargeError: more than :data:`MAX_IMAGES` images.
        DeadlineExceededError: the current deadline passed between pages.
    """
    return list(_described(api, registry, repository, min(max(page_size, 1), DESCRIBE_PAGE)))


def pushed_at(api: EcrApi, registry: EcrRegistry, repository: str) -> dict[str, dt.datetime]:
    """When each image of an ECR repository was pushed, by each of its tags and by its digest
    (``str`` of the digest), for ``--keep-recent``: a tag's time is its image's
    ``imagePushedAt`` (:func:`describe_images`). Images AWS gives no time for are left out.
    Needs the IAM action ``ecr:DescribeImages``.

    Raises:
        The errors of :func:`describe_images`.
    """
    times: dict[str, dt.datetime] = {}
    for image in describe_images(api, registry, repository):
        if image.pushed_at is None:
            continue
        times[str(image.digest)] = image.pushed_at
        for tag in image.tags:
            times[tag] = image.pushed_at
    return times


def _described(
    api: EcrApi, registry: EcrRegistry, repository: str, page_size: int
) -> Iterator[ImageDetail]:
    what = f"ecr:DescribeImages for {registry.host}/{repository}"
    token: str | None = None
    seen: set[str] = set()
    count = 0
    while True:
        params: dict[str, Any] = {
            "registryId": registry.account,
            "repositoryName": repository,
            "maxResults": page_size,
        }
        if token is not None:
            params["nextToken"] = token
        answer = api.call(registry, "describe_images", **params)
        for detail in _entries(answer, "imageDetails"):
            count += 1
            if count > MAX_IMAGES:
                raise AnswerTooLargeError(
                    f"{what}: more than {MAX_IMAGES} images; not read to the end"
                )
            yield _image_detail(detail, what)
        next_token = answer.get("nextToken")
        if not next_token:
            return
        token = str(next_token)
        if token in seen:
            raise AwsApiError(f"{what}: the API gave a page token it gave before")
        seen.add(token)


def _image_detail(detail: dict[str, Any], what: str) -> ImageDetail:
    try:
        digest = parse_digest(str(detail.get("imageDigest", "")))
    except InvalidDigestError:
        raise AwsApiError(f"{what}: an image has an invalid digest") from None
    pushed = detail.get("imagePushedAt")
    size = detail.get("imageSizeInBytes")
    return ImageDetail(
        digest=digest,
        tags=tuple(str(t) for t in detail.get("imageTags") or ()),
        pushed_at=_utc(pushed) if isinstance(pushed, dt.datetime) else None,
        size=size if isinstance(size, int) and size >= 0 else None,
        media_type=str(detail.get("imageManifestMediaType", "")),
    )


def _utc(moment: dt.datetime) -> dt.datetime:
    """botocore's timestamps are timezone-aware; one that is not is taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _entries(answer: dict[str, Any], key: str) -> Sequence[dict[str, Any]]:
    """The objects of a list in an answer (none when it is absent)."""
    found = answer.get(key) or []
    return [entry for entry in found if isinstance(entry, dict)]


def _key(wire: dict[str, Any]) -> tuple[str, str]:
    return (str(wire.get("imageDigest", "")), str(wire.get("imageTag", "")))


def _image_id(wire: dict[str, Any]) -> ImageId | None:
    """An ``ImageIdentifier`` AWS sent back; a digest that does not parse is left out (the tag
    still names the image); None when nothing names it."""
    digest: Digest | None = None
    text = wire.get("imageDigest")
    if text:
        try:
            digest = parse_digest(str(text))
        except InvalidDigestError:
            digest = None
    tag = str(wire.get("imageTag") or "")
    if digest is None and not tag:
        return None
    return ImageId(digest=digest, tag=tag or None)
