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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from promoter.deadline import Deadline
from promoter.errors import ConfigError, InvalidDigestError
from promoter.gitops.git import has_commits, run_git, top_level
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

    Raises:
        ValueError: no image, or a value that would break a trailer (a line break, a space in a
            module or version).
    """
    if not images:
        raise ValueError("a promotion commit names at least one image")
    for value in (environment, source, *(i.module for i in images)):
        if not value or any(c.isspace() for c in value):
            raise ValueError(f"not a trailer value: {value!r}")
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


def parse_promotion(
    commit: str, committed_at: datetime, subject: str, trailers: Sequence[str]
) -> list[PromotionRecord]:
    """The records of one commit from its trailers (``Key: value`` lines, unfolded); a commit
    without ``Promoted-To`` or without a well-formed ``Promoted-Digest`` gives none (a message
    written by hand that only looks like one is not a promotion)."""
    values: dict[str, list[str]] = {}
    for line in trailers:
        key, separator, value = line.partition(":")
        if separator:
            values.setdefault(key.strip().lower(), []).append(value.strip())
    targets = values.get(TO_TRAILER.lower(), [])
    if len(targets) != 1:
        return []
    source = (values.get(FROM_TRAILER.lower()) or [""])[0]
    records = []
    for value in values.get(DIGEST_TRAILER.lower(), []):
        image = _parse_trailer_value(value)
        if image is not None:
            records.append(
                PromotionRecord(
                    targets[0],
                    source,
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


#: The most promotion commits one history read asks for.
MOST_PROMOTIONS: Final = 10_000
#: Between the fields of one commit in ``git log``'s output (records end with NUL under ``-z``).
_FIELD: Final = "\x1f"
#: Between the trailers of one commit.
_TRAILER: Final = "\x1e"


def promotion_log(
    folder: Path,
    *,
    environment: str | None = None,
    module: str | None = None,
    limit: int = 100,
    deadline: Deadline,
) -> tuple[PromotionRecord, ...]:
    """The promotions recorded by promotion commits reachable from HEAD, newest first.

    Every commit reachable from HEAD is read (not only the first parent): a promotion committed
    on a branch and merged through a pull request is found by its own commit. A squash merge
    keeps the trailers when the forge keeps the message.

    Args:
        folder: a folder of the Git checkout (promoter.yaml's).
        environment: only promotions to this environment.
        module: only promotions of this module (repository path).
        limit: the most records returned (1 to :data:`MOST_PROMOTIONS`).
        deadline: bounds every Git command.

    Returns:
        One record per module promoted, newest commit first; none when HEAD has no commit yet.

    Raises:
        ValueError: ``limit`` out of range.
        ConfigError: not in a Git checkout, or Git failed.
        DeadlineExceededError, RunInterruptedError.
    """
    if not 1 <= limit <= MOST_PROMOTIONS:
        raise ValueError(f"limit must be 1 to {MOST_PROMOTIONS}, got {limit}")
    top = top_level(folder, what="reading the promotion history", deadline=deadline)
    what = f"the promotion history in {top}"
    if not has_commits(top, deadline=deadline):
        return ()
    patterns = [f"^{TO_TRAILER}: " + (_literal(environment) + "$" if environment else "")]
    if module is not None:
        patterns.append(f"^{DIGEST_TRAILER}: {_literal(module)} ")
    output = run_git(
        top,
        [
            "log",
            "-z",
            "--extended-regexp",
            "--all-match",
            *(f"--grep={pattern}" for pattern in patterns),
            f"--max-count={limit}",
            f"--format=%H{_FIELD}%ct{_FIELD}%s{_FIELD}%(trailers:only,unfold,separator=%x1e)",
            "HEAD",
            "--",
        ],
        what=what,
        deadline=deadline,
    )
    records: list[PromotionRecord] = []
    for entry in output.split("\0"):
        fields = entry.strip("\n").split(_FIELD)
        if len(fields) != 4:
            continue
        commit, seconds, subject, trailers = fields
        try:
            committed_at = datetime.fromtimestamp(int(seconds), UTC)
        except ValueError:
            raise ConfigError(f"{what}: git log printed an unexpected date {seconds!r}") from None
        records += [
            record
            for record in parse_promotion(commit, committed_at, subject, trailers.split(_TRAILER))
            if (environment is None or record.environment == environment)
            and (module is None or record.module == module)
        ]
    return tuple(records[:limit])


def _literal(text: str) -> str:
    """``text`` as a POSIX extended regular expression matching itself."""
    return "".join(f"\\{c}" if c in ".[]()*+?{}|^$\\" else c for c in text)
