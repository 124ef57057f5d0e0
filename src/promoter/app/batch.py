"""Copying images by reference: one, or a batch in one run, with promotion's naming rule.

A destination without tag or digest keeps the source's tag and digest (pushed by tag when there is one,
checked against the digest) instead of becoming ``latest``: promotion keeps names, as ``crane copy`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from promoter.app.runtime import Runtime
from promoter.config.lists import read_list_file
from promoter.deadline import Deadline
from promoter.errors import InputError, PromoterError, TagConflictError
from promoter.reference import Reference, hide_credentials, parse_reference
from promoter.remote.copy import Copier, CopyOptions, CopyProgress, CopyResult

#: A source and a destination reference.
Pair = tuple[Reference, Reference]


def pair(source: str | Reference, destination: str | Reference) -> Pair:
    """Parse a copy's two references; a bare destination repository gets the source's tag and digest.

    Raises:
        InvalidReferenceError: a reference does not parse.
    """
    src = source if isinstance(source, Reference) else parse_reference(source)
    dst = (
        destination
        if isinstance(destination, Reference)
        else parse_reference(destination, default_tag=None)
    )
    if dst.tag is None and dst.digest is None:
        dst = replace(dst, tag=src.tag, digest=src.digest)
    return src, dst


def written(destination: Reference) -> str:
    """What a copy to ``destination`` writes last: its tag, or its digest when it has no tag
    (``repo:1.0`` and ``repo:1.0@sha256:...`` both write the tag ``1.0``)."""
    return f"{destination.name}:{destination.tag}" if destination.tag else str(destination)


def check_destinations(pairs: Sequence[Pair]) -> None:
    """Refuse two pairs that write one tag: they run concurrently in no set order, so the tag would
    end on either image while both report success.

    Raises:
        InputError: naming the destination.
    """
    seen: set[str] = set()
    for _, destination in pairs:
        if written(destination) in seen:
            raise InputError(f"destination {destination} is written by two copies of one batch")
        seen.add(written(destination))


def read_pairs(path: Path) -> list[Pair]:
    """A batch file: one ``SRC DST`` pair per line (``#`` comments; ``-`` reads standard input).

    Pairs run concurrently in no set order, so two lines writing one destination are refused.

    Raises:
        ConfigError: the file cannot be read.
        InputError: a line is not two references, names a destination twice, or the file has none;
            the message names the file and line.
    """
    pairs: list[Pair] = []
    seen: dict[str, int] = {}
    for number, entry in read_list_file(path, "batch file"):
        words = entry.split()
        if len(words) != 2:
            shown = " ".join(hide_credentials(word) or word for word in words)
            raise InputError(f"{path}:{number}: expected 'SRC DST', got {shown!r}")
        try:
            found = pair(words[0], words[1])
        except InputError as exc:
            raise InputError(f"{path}:{number}: {exc}") from exc
        target = written(found[1])
        if target in seen:
            raise InputError(
                f"{path}:{number}: destination {found[1]} is already written by line {seen[target]}"
            )
        seen[target] = number
        pairs.append(found)
    if not pairs:
        raise InputError(f"{path}: no 'SRC DST' lines to copy")
    return pairs


def copy_images(
    runtime: Runtime,
    pairs: Sequence[Pair],
    *,
    options: CopyOptions | None = None,
    progress: CopyProgress | None = None,
    deadline: Deadline | None = None,
) -> list[CopyResult | PromoterError]:
    """Copy every pair in one run (blobs shared between images move once); each pair's result or
    error in its place. A refused tag move into an ECR repository that keeps the tag immutable says
    so (forcing cannot help there).

    Raises:
        InputError: two pairs write one destination (see :func:`check_destinations`).
    """
    check_destinations(pairs)
    options = options or runtime.settings.copy_options()
    copier = Copier(
        runtime.transport, options, progress, prepare_destination=runtime.prepare_destination
    )
    with copier:
        outcomes = copier.copy_all(pairs, deadline=deadline)
    return [runtime.explain_conflict(o) if isinstance(o, TagConflictError) else o for o in outcomes]
