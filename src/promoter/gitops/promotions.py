"""Promotions recorded in Git: the commit message ``promote --commit`` writes, and reading them back.

A promotion commit carries one ``Promoted-Digest:`` trailer per image (``git interpret-trailers``
format, the last paragraph of the message), so ``git log`` is the promotion history and
``promoter history`` lists it without anything but Git::

    promote shop/checkout to production: 1.2.0 -> 1.3.0

    Promoted from staging, as staging runs it.

    Promoted-To: production
    Promoted-From: staging
    Promoted-Digest: shop/checkout 1.3.0 sha256:4f1c... from 1.2.0

A ``Promoted-Digest`` value is ``MODULE VERSION DIGEST [from PREVIOUS]``: the repository path, the
tag written (``-`` for a digest-only version), the digest the source registry resolved it to (``-``
when it was not asked: ``--no-verify``), and what the target ran before (absent for a module new
to it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from promoter.deadline import Deadline
from promoter.errors import ConfigError, InvalidDigestError
from promoter.gitops.git import has_commits, is_shallow, repository_path, run_git, top_level
from promoter.oci.digest import Digest, parse_digest

#: The trailer naming the environment promoted to.
TO_TRAILER: Final = "Promoted-To"
#: The trailer naming the environment promoted from.
FROM_TRAILER: Final = "Promoted-From"
#: One per image: ``MODULE VERSION DIGEST [from PREVIOUS]``.
DIGEST_TRAILER: Final = "Promoted-Digest"


@dataclass(frozen=True, slots=True)
class PromotionRecord:
    """One module's promotion, as a promotion commit records it.

    Attributes:
        environment: the environment promoted to.
        source: the environment promoted from ("" when the commit does not say).
        module: the repository path.
        version: the tag written; None for a digest-only version.
        digest: the content the source registry resolved the version to; None when it was not
            asked.
        previous: the version the target ran before (a tag, ``tag@digest`` or a digest); None
            for a module new to it.
        commit: the full commit hash.
        committed_at: the committer date, in UTC.
        subject: the commit's first line, as written (escape it before printing).
        merged_at: when it reached the branch read, for a commit merged from another branch
            (the merge commit's date); None for one made on it.
        merge: the merge commit that brought it, when ``merged_at`` is set.
        reverted_by: the commit that reverted it (``git revert``), if one did.
    """

    environment: str
    source: str
    module: str
    version: str | None
    digest: Digest | None
    previous: str | None
    commit: str
    committed_at: datetime
    subject: str
    merged_at: datetime | None = None
    merge: str | None = None
    reverted_by: str | None = None

    @property
    def landed_at(self) -> datetime:
        """When the promotion reached the branch read: the merge's date, else the commit's."""
        return self.merged_at or self.committed_at


@dataclass(frozen=True, slots=True)
class PromotedImage:
    """One module of a promotion, as its commit message names it.

    Attributes:
        module: the repository path.
        version: the tag written; None for a digest-only version.
        digest: what the source registry resolved the version to; None when not asked.
        previous: what the target ran before (tag, ``tag@digest`` or digest); None for a module
            new to it.
    """

    module: str
    version: str | None
    digest: Digest | None
    previous: str | None


def promotion_message(environment: str, source: str, images: Sequence[PromotedImage]) -> str:
    """The commit message of a promotion: a subject naming the module(s) and versions, a body
    listing each, and the trailers :func:`promotion_log` reads back.

    Without images (the versions were in place; only the hook's image list is rewritten), the
    message says so and carries no trailers: it records no promotion.

    Raises:
        ValueError: a value that would break a trailer (a space, a line break).
    """
    for value in (environment, source, *(i.module for i in images)):
        if not value or any(c.isspace() for c in value):
            raise ValueError(f"not a trailer value: {value!r}")
    if not images:  # only the hook's image list was out of date
        return (
            f"list what {environment} runs in its promoter-images.txt\n\n"
            f"The images: entries already name every version; the hook Job's list did not.\n"
        )
    if len(images) == 1:
        image = images[0]
        change = _change(image)
        subject = f"promote {image.module} to {environment}: {change}"
    else:
        subject = f"promote {len(images)} modules to {environment} from {source}"
    body = [
        f"Promoted from {source} to {environment}:"
        if source != environment
        else f"Rolled back in {environment} to versions its registry holds:",
        "",
    ]
    body += [
        f"  {image.module}: {_change(image)}" + (f" ({image.digest})" if image.digest else "")
        for image in images
    ]
    trailers = [f"{TO_TRAILER}: {environment}", f"{FROM_TRAILER}: {source}"]
    trailers += [f"{DIGEST_TRAILER}: {_trailer_value(image)}" for image in images]
    return "\n".join([subject, "", *body, "", *trailers]) + "\n"


def parse_promotion(commit: str, committed_at: datetime, message: str) -> list[PromotionRecord]:
    """The records of one commit from its message.

    Each ``Promoted-To`` line starts a promotion, and the ``Promoted-From`` and
    ``Promoted-Digest`` lines after it belong to it, wherever they are and however indented: a
    squash merge (``git merge --squash`` indents each commit's message; a forge lists each
    commit's) holds several promotions. A promotion without a well-formed ``Promoted-Digest``
    gives none (a message written by hand that only looks like one is not a promotion); a value
    over :data:`_LONGEST_VALUE` characters is not one.
    """
    subject = message.split("\n", 1)[0]
    groups: list[tuple[str, list[str], list[str]]] = []
    for line in message.splitlines():
        key, separator, value = line.strip().partition(":")
        value = value.strip()
        if not separator or not value or len(value) > _LONGEST_VALUE:
            continue
        key = key.lower()
        if key == TO_TRAILER.lower():
            groups.append((value, [], []))
        elif groups and key == FROM_TRAILER.lower():
            groups[-1][1].append(value)
        elif groups and key == DIGEST_TRAILER.lower():
            groups[-1][2].append(value)
    records = []
    for environment, sources, images in groups:
        for value in images:
            image = _parse_trailer_value(value)
            if image is not None:
                records.append(
                    PromotionRecord(
                        environment,
                        sources[0] if sources else "",
                        image.module,
                        image.version,
                        image.digest,
                        image.previous,
                        commit,
                        committed_at,
                        subject,
                    )
                )
    return records


def _change(image: PromotedImage) -> str:
    """``1.2.0 -> 1.3.0``, or ``1.3.0`` for a module new to the target."""
    version = image.version or (str(image.digest) if image.digest else "?")
    return f"{image.previous} -> {version}" if image.previous else version


def _trailer_value(image: PromotedImage) -> str:
    """``MODULE VERSION DIGEST [from PREVIOUS]`` (``-`` for what is not known)."""
    value = f"{image.module} {image.version or '-'} {image.digest or '-'}"
    return value + (f" from {image.previous}" if image.previous else "")


def _parse_trailer_value(value: str) -> PromotedImage | None:
    """The image of a ``Promoted-Digest`` value; None when it is not one."""
    fields = value.split()
    if len(fields) not in (3, 5) or (len(fields) == 5 and fields[3] != "from"):
        return None
    module, version, digest_text = fields[:3]
    digest = None
    if digest_text != "-":
        try:
            digest = parse_digest(digest_text)
        except InvalidDigestError:
            return None
    return PromotedImage(
        module,
        None if version == "-" else version,
        digest,
        fields[4] if len(fields) == 5 else None,
    )


#: The most records one history read returns.
MOST_PROMOTIONS: Final = 10_000
#: The longest trailer value read (a module, a version, a digest and the one before fit easily).
_LONGEST_VALUE: Final = 600
#: Commits read from Git at a time.
_BATCH: Final = 100
#: Between the fields of one commit in ``git log``'s output (records end with NUL under ``-z``).
_FIELD: Final = "\x1f"
#: ``This reverts commit <hash>.``, as ``git revert`` writes it.
_REVERTS = re.compile(r"^This reverts commit (?P<commit>[0-9a-f]{40,64})\b", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class PromotionLog:
    """What :func:`promotion_log` read.

    Attributes:
        records: the promotions, newest first.
        shallow: the checkout is a shallow clone: older promotions may be missing.
        more: there were more than the limit.
    """

    records: tuple[PromotionRecord, ...]
    shallow: bool = False
    more: bool = False


@dataclass(frozen=True, slots=True)
class _Commit:
    commit: str
    committed_at: datetime
    parents: tuple[str, ...]
    message: str


def promotion_log(
    folder: Path,
    *,
    environment: str | None = None,
    overlay: Path | None = None,
    module: str | None = None,
    limit: int = 100,
    deadline: Deadline,
) -> PromotionLog:
    """The promotions recorded by promotion commits on HEAD's line, newest first, in the order
    they reached it.

    HEAD's first-parent line is walked (the states the branch had); a merge brings the
    promotion commits of the branch it merged, dated by the merge (``merged_at``), in its place.
    Squash merges keep their promotions when the message keeps the trailers (see
    :func:`parse_promotion`). A promotion a later ``git revert`` undid names the revert
    (``reverted_by``). With ``overlay``, only commits that changed that folder are read: in a
    repository holding several applications, another one's promotion to an environment of the
    same name is not listed.

    Args:
        folder: a folder of the Git checkout (promoter.yaml's).
        environment: only promotions to this environment.
        overlay: only commits that changed this folder (the environment's overlay).
        module: only promotions of this module (repository path).
        limit: the most records returned (1 to :data:`MOST_PROMOTIONS`).
        deadline: bounds every Git command.

    Raises:
        ValueError: ``limit`` out of range.
        ConfigError: not in a Git checkout, the overlay outside it, or Git failed.
        DeadlineExceededError, RunInterruptedError.
    """
    if not 1 <= limit <= MOST_PROMOTIONS:
        raise ValueError(f"limit must be 1 to {MOST_PROMOTIONS}, got {limit}")
    top = top_level(folder, what="reading the promotion history", deadline=deadline)
    if not has_commits(top, deadline=deadline):
        return PromotionLog(())
    paths = ["--", repository_path(top, overlay)] if overlay is not None else ["--"]
    reverted: dict[str, str] = {}
    records: list[PromotionRecord] = []

    def wanted(record: PromotionRecord) -> bool:
        return (environment is None or record.environment == environment) and (
            module is None or record.module == module
        )

    skip = 0
    while len(records) <= limit:
        line = _commits(top, ["--first-parent", f"--skip={skip}", "HEAD", *paths], deadline)
        skip += len(line)
        for entry in line:
            _note_reverts(entry, reverted)
            found = parse_promotion(entry.commit, entry.committed_at, entry.message)
            if len(entry.parents) > 1:  # a merge: the promotions of the branch it brought
                merged = _commits(
                    top, [f"{entry.parents[0]}..{entry.parents[1]}", *paths], deadline
                )
                for brought in merged:
                    _note_reverts(brought, reverted)
                    found += [
                        replace(r, merged_at=entry.committed_at, merge=entry.commit)
                        for r in parse_promotion(
                            brought.commit, brought.committed_at, brought.message
                        )
                    ]
            records += [replace(r, reverted_by=reverted.get(r.commit)) for r in found if wanted(r)]
        if len(line) < _BATCH:
            break
    return PromotionLog(
        tuple(records[:limit]),
        shallow=is_shallow(top, deadline=deadline),
        more=len(records) > limit,
    )


def _commits(top: Path, arguments: Sequence[str], deadline: Deadline) -> list[_Commit]:
    """Up to :data:`_BATCH` commits of ``git log ARGUMENTS``, in its order.

    Raises:
        ConfigError: Git failed or printed something unexpected.
    """
    output = run_git(
        top,
        [
            "log",
            "-z",
            f"--max-count={_BATCH}",
            f"--format=%H{_FIELD}%ct{_FIELD}%P{_FIELD}%B",
            *arguments,
        ],
        what=f"the promotion history in {top}",
        deadline=deadline,
    )
    commits = []
    for entry in output.split("\0"):
        fields = entry.lstrip("\n").split(_FIELD, 3)
        if len(fields) != 4:
            continue
        commit, seconds, parents, message = fields
        try:
            committed_at = datetime.fromtimestamp(int(seconds), UTC)
        except ValueError:
            raise ConfigError(f"git log printed an unexpected date {seconds!r}") from None
        commits.append(_Commit(commit, committed_at, tuple(parents.split()), message))
    return commits


def _note_reverts(entry: _Commit, reverted: dict[str, str]) -> None:
    """Remember the commits ``entry`` reverts (read newest first: a revert comes before what it
    reverts)."""
    for found in _REVERTS.finditer(entry.message):
        reverted.setdefault(found.group("commit"), entry.commit)
