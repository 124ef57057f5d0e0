"""Editing the ``images:`` list of an overlay's kustomization, the way a reviewer wants to see it.

This module holds the kustomization-level API: reading an overlay's ``images:`` entries
(``image_entries``), planning an edit as a value (``set_image`` gives an ``ImageEdit``,
``unchanged_edit`` the file as it is), writing it atomically (``write_edit``) and showing it as a
diff (``unified_diff``), and what a reviewer of the edit should look at: comments kept beside
changed values (``kept_comments``) and images the overlay's patches still name
(``patched_images``). Finding the kustomization file is ``promoter.gitops.kustomization``'s
(``kustomization_path``); the edit of the text itself, a splice that keeps every other byte of the
file, is ``promoter.gitops.splice``'s.

Kustomize's ``images:`` entries (https://kubectl.docs.kubernetes.io/references/kustomize/kustomization/images/)
have ``name`` (the image as written in the resources), ``newName``, ``newTag`` and ``digest``
(``sha256:...``); with both ``newTag`` and ``digest`` Kustomize writes ``name:tag@digest``.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from promoter.config.input_files import (
    KUSTOMIZATION_CAP,
    LIST_CAP,
    MANIFESTS_CAP,
    InputCap,
    decode_text,
    read_input_text,
    read_regular_file,
)
from promoter.errors import ConfigError
from promoter.gitops.kustomization import kustomization_path
from promoter.gitops.splice import DIGEST, NEW_TAG, ImagesEditor, load_text
from promoter.reference import parse_reference

#: A comment after a value on a line of ``images:``: `` #`` outside quotes. The values promote
#: writes (image names, tags, digests) cannot hold ``#``, quotes or spaces; a quoted scalar is
#: skipped as a whole so a ``#`` inside one (elsewhere in a flow entry) is not taken for a comment.
_TRAILING_COMMENT: Final = re.compile(r"""^(?:[^#'"]|'[^']*'|"(?:[^"\\]|\\.)*")*?\s#""")


@dataclass(frozen=True, slots=True)
class ImageEdit:
    """A planned change to one kustomization file, not yet written.

    Attributes:
        before: the file's text as read.
        after: the text with the edit applied (equal to ``before`` when nothing changes).
        path: the kustomization file.
        changed: whether ``after`` differs from ``before``.
    """

    before: str
    after: str
    path: Path
    changed: bool


@dataclass(frozen=True, slots=True)
class ImageEntry:
    """One ``images:`` entry as written (a key that is absent, null or not one line is None).

    Attributes:
        name: the image as the resources write it.
        new_name: the image it is renamed to.
        new_tag: the tag set (``1.2``, or Kustomize's ``1.2@sha256:...``).
        digest: the digest set.
    """

    name: str | None
    new_name: str | None
    new_tag: str | None
    digest: str | None


@dataclass(frozen=True, slots=True)
class TextMention:
    """A line of a file that names something: where, and the text found.

    Attributes:
        path: the file.
        line: the line number, from 1.
        text: what was found: an image reference, or for a kept comment the whole line.
    """

    path: Path
    line: int
    text: str


def set_image(
    overlay: Path,
    *,
    match_repository: str,
    name: str,
    new_tag: str | None = None,
    digest: str | None = None,
    previous: ImageEdit | None = None,
    new_name: str | None = None,
    rename_to: str | None = None,
) -> ImageEdit:
    """Plan setting the tag, the digest or both of one image in an overlay's ``images:``.

    Every entry whose effective image (``newName`` if present, else ``name``) has the repository
    path ``match_repository`` (the path after the registry host: ``shop/api``) gets ``newTag``
    set and ``digest`` removed, or ``digest`` set and ``newTag`` removed, or both set (kustomize
    then renders ``name:tag@digest``, which keeps the tag in a registry that copies it), and with
    ``rename_to`` its ``newName``; no other key or entry is touched. When no entry matches, ``{name: <name>[, newName: <new_name>],
    newTag|digest: ...}`` is appended, and ``images:`` is created at the end of the file if it is
    absent.

    Args:
        overlay: the overlay folder.
        match_repository: repository path to look for, as ``Reference.repository`` gives it.
        name: the ``name`` of an appended entry: the image as the resources write it.
        new_tag: the tag to set.
        digest: the digest to pin (``sha256:...``); give at least one of the two.
        previous: an edit of the same overlay planned before; this one starts from its text and
            keeps its ``before``, so promoting several modules gives one edit and one diff
            without writing in between.
        new_name: the ``newName`` of an appended entry: the resources write ``name`` (``ml``)
            and the entry renames it into the environment's registry.
        rename_to: the image every matching entry must become (its ``newName``, set or added
            after ``name`` where it is another): a module the overlay takes from another
            environment's registry is moved into its own.

    Returns:
        The planned edit; nothing is written (see ``write_edit``).

    Raises:
        ConfigError: no readable kustomization (one that is a symbolic link is refused: it is the
            file promote edits), invalid YAML, or an ``images:`` that is not a list of mappings.
        InvalidReferenceError: ``name`` with the tag or digest is not a valid image reference.
        ValueError: neither ``new_tag`` nor ``digest`` was given.
    """
    if new_tag is None and digest is None:
        raise ValueError("give new_tag, digest or both")
    versioned = (f":{new_tag}" if new_tag else "") + (f"@{digest}" if digest else "")
    parse_reference((new_name or name) + versioned)
    if previous is None:
        path = kustomization_path(overlay)
        before = current = _read(path, follow_links=False)  # the file promote edits
    else:
        path, before, current = previous.path, previous.before, previous.after
    if rename_to is not None:
        current = ImagesEditor(current, path).rename(match_repository, rename_to)
    if new_tag is not None:
        current = ImagesEditor(current, path).set(
            match_repository, name, NEW_TAG, new_tag, new_name=new_name
        )
    if digest is not None:
        # With a tag set just before, the entry exists now: the digest joins it (keep_other).
        current = ImagesEditor(current, path).set(
            match_repository,
            name,
            DIGEST,
            digest,
            keep_other=new_tag is not None,
            new_name=new_name,
        )
    return ImageEdit(before=before, after=current, path=path, changed=current != before)


def unchanged_edit(overlay: Path) -> ImageEdit:
    """The overlay's kustomization as an edit that changes nothing: what a promotion that keeps
    every module as the target runs it reports (and checks the hook's image list against).

    Raises:
        ConfigError: no readable kustomization (one that is a symbolic link is refused, as by
            ``set_image``).
    """
    path = kustomization_path(overlay)
    text = _read(path, follow_links=False)
    return ImageEdit(before=text, after=text, path=path, changed=False)


def image_entries(overlay: Path, match_repository: str) -> tuple[ImageEntry, ...]:
    """The overlay's ``images:`` entries whose effective image (``newName``, else ``name``) has the
    repository path ``match_repository``, as ``set_image`` matches them.

    Raises:
        ConfigError: no readable kustomization, invalid YAML, or an ``images:`` of the wrong shape.
    """
    path = kustomization_path(overlay)
    return tuple(
        ImageEntry(
            name=entry.get("name"),
            new_name=entry.get("newName"),
            new_tag=entry.get(NEW_TAG),
            digest=entry.get(DIGEST),
        )
        for entry in ImagesEditor(_read(path), path).entries(match_repository)
    )


def kept_comments(edit: ImageEdit) -> tuple[TextMention, ...]:
    """The lines an edit changed that keep a trailing comment: their number in the new text and
    the line itself (stripped).

    An edit changes values in place and leaves comments alone, so a comment beside a changed value
    was written about the old one (``newTag: 2.3.1  # hotfix for INC-42``): the reviewer should
    see it named. Lines the edit adds carry no comment; removed lines take theirs with them.
    """
    before = edit.before.splitlines()
    after = edit.after.splitlines()
    found: list[TextMention] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for tag, _, _, start, end in matcher.get_opcodes():
        if tag not in {"replace", "insert"}:
            continue
        for index in range(start, end):
            if _TRAILING_COMMENT.search(after[index]) is not None:
                found.append(TextMention(edit.path, index + 1, after[index].strip()))
    return tuple(found)


def patched_images(overlay: Path, image_name: str) -> tuple[TextMention, ...]:
    """Where the overlay's patches write ``image_name`` (``registry/repository``) with a tag or a
    digest: files listed under ``patches``, ``patchesStrategicMerge`` and ``patchesJson6902``, and
    patches written inline in the kustomization (found at their line in it).

    An ``images:`` entry applies after patches, so once promote has set one, such a mention is a
    value nothing uses any more; the reviewer should remove it with the promotion.

    Raises:
        ConfigError: no readable kustomization or patch file, invalid YAML in the kustomization,
            or a patch file larger than rendered manifests may be.
    """
    path = kustomization_path(overlay)
    text = _read(path)
    pattern = re.compile(rf"(?<![\w./-]){re.escape(image_name)}[:@][^\s'\"\]}},#]+")
    found: list[TextMention] = []
    for patch, inline in _patches(load_text(text, path)):
        if inline:  # found at its line in the kustomization
            for match in pattern.finditer(patch):
                at = text.find(match.group())
                found.append(TextMention(path, text.count("\n", 0, max(at, 0)) + 1, match.group()))
            continue
        patch_path = overlay / patch
        if not patch_path.is_file():
            continue  # a remote patch, or one kustomize would have refused
        patch_text = read_input_text(patch_path, name=str(patch_path), cap=MANIFESTS_CAP)
        for number, line in enumerate(patch_text.splitlines(), start=1):
            found += [TextMention(patch_path, number, m.group()) for m in pattern.finditer(line)]
    return tuple(found)


def _patches(kustomization: object) -> Iterator[tuple[str, bool]]:
    """Each patch of a kustomization with whether it is written inline: a file path (False) or
    the patch's own text (True)."""
    if not isinstance(kustomization, dict):
        return
    for key in ("patches", "patchesJson6902", "patchesStrategicMerge"):
        entries = kustomization.get(key)
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, str):  # patchesStrategicMerge: a path, or the patch itself
                yield entry, "\n" in entry
            elif isinstance(entry, dict):
                if isinstance(entry.get("path"), str):
                    yield entry["path"], False
                if isinstance(entry.get("patch"), str):
                    yield entry["patch"], True


def write_edit(edit: ImageEdit) -> None:
    """Write an edit atomically: a temporary file in the same folder, then a rename over the file.

    A reader (Argo CD, an editor, a concurrent ``git add``) sees the old file or the new one, never
    half of one. The file keeps its permissions. A file that is a symbolic link is refused, never
    written through: Git stores links, so a pull request could point the kustomization or
    ``promoter-images.txt`` at any file the user can write; the rename replaces the folder's entry
    itself, so a link put in place after the check is replaced, not followed.

    Raises:
        ConfigError: the file is a symbolic link or no regular file, changed since the edit was
            planned, or cannot be written.
    """
    if not edit.changed:
        return
    target = edit.path
    # The largest of the files promoter writes: an image list (a kustomization is capped lower).
    if _read(target, cap=LIST_CAP, follow_links=False) != edit.before:
        raise ConfigError(f"{edit.path} changed since it was read; run the command again")
    try:
        mode = stat.S_IMODE(target.lstat().st_mode)
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
        )
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as stream:
                stream.write(edit.after)
                stream.flush()
                os.fsync(stream.fileno())
            Path(temporary).chmod(mode)
            Path(temporary).replace(target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigError(f"cannot write {edit.path}: {exc.strerror or exc}") from exc


def unified_diff(edit: ImageEdit, relative_to: Path | None = None) -> str:
    """The edit as a unified diff with git's ``a/`` and ``b/`` labels; empty when nothing changes.

    With ``relative_to`` (the repository root, where promoter.yaml lives) the labels are the path
    inside it, as ``git diff`` would print them.
    """
    path = edit.path
    if relative_to is not None and path.is_relative_to(relative_to):
        path = path.relative_to(relative_to)
    label = path.as_posix().lstrip("/")
    lines = difflib.unified_diff(
        edit.before.splitlines(keepends=True),
        edit.after.splitlines(keepends=True),
        fromfile=f"a/{label}",
        tofile=f"b/{label}",
    )
    # difflib leaves a last line without its newline glued to the next; diff(1) marks it instead.
    return "".join(
        line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n" for line in lines
    )


def _read(path: Path, cap: InputCap = KUSTOMIZATION_CAP, *, follow_links: bool = True) -> str:
    """The exact text of a kustomization or image list (a byte order mark and ``\r\n`` line ends
    kept): a regular file, read no further than ``cap``; with ``follow_links`` False, as for a file
    promoter edits, never through a symbolic link.

    Raises:
        ConfigError: a symbolic link (``follow_links`` False) or no regular file, unreadable, over
            ``cap``, or not UTF-8.
    """
    data = read_regular_file(path, name=str(path), cap=cap, follow_links=follow_links)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return decode_text(data, str(path))  # raises, naming the first bad byte
