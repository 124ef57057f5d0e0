"""An overlay's Git history: the commits that changed what it renders, and the images it deployed at each.

Prune keeps the images an overlay deployed in its last few changes, so that rolling one back
(``git revert``) finds its image still in the registry. Those images are found as plan finds today's:
the overlay is built by the real Kustomize (:func:`promoter.gitops.render.render_overlay`), here in a
temporary ``git worktree`` checked out at the old commit, and its images discovered by
:func:`promoter.gitops.discover.iter_images` at the fieldSpecs its tree declares.

Git runs as a child process (:func:`promoter.gitops.git.run_git`): its output is capped, every call
ends by the run's deadline, and an interrupt stops it. Every failure is a
:class:`~promoter.errors.PromoterError`: a caller deciding what to delete deletes nothing when the history
cannot be read, since a history read short would shrink what is kept.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from promoter.deadline import Deadline
from promoter.errors import (
    ConfigError,
    InputError,
    PromoterError,
    one_line,
)
from promoter.gitops.discover import iter_images, iter_manifests, scan_manifests
from promoter.gitops.git import is_shallow, repository_path, run_git, top_level
from promoter.gitops.kustomization import image_field_specs, local_sources, normal_path
from promoter.gitops.render import render_overlay

#: Seconds the removal of a temporary worktree may take, even once the run's deadline has passed:
#: it must not be left behind because the render it served ran out of time.
CLEANUP_TIMEOUT: Final = 30.0
#: The most commits one history read asks for.
MOST_REVISIONS: Final = 1000
#: Between the fields of one commit in ``git log``'s output (records end with NUL under ``-z``).
_FIELD: Final = "\x1f"


@dataclass(frozen=True, slots=True)
class Revision:
    """One commit of an overlay's history.

    Attributes:
        commit: the full commit hash.
        committed_at: when it was committed (the committer date), in UTC.
        subject: the first line of its message, as written (escape it before printing).
    """

    commit: str
    committed_at: datetime
    subject: str


def revisions_touching(overlay: Path, count: int, *, deadline: Deadline) -> list[Revision]:
    """The last ``count`` commits that changed anything the overlay renders from, newest first.

    What the overlay renders from is its folder and every local folder and file its kustomization
    tree names (:func:`promoter.gitops.kustomization.local_sources`, read from the checkout as it
    is now); a commit that touched only other paths is not one of them. A base renamed in the past
    is still followed, since the commit that renamed it changed the overlay's kustomization too.

    HEAD's own state is included: the first revision is the newest commit that touched those paths,
    the state the branch deploys (Argo CD deploys what is committed, which may differ from the
    checkout the caller renders: uncommitted edits, a promote not yet pushed). Rolling back the
    newest change with ``git revert`` brings back the state of the second revision; so ``count``
    revisions cover reverts of the ``count - 1`` newest changes.

    Only the first-parent line of HEAD is read (``git log --first-parent``): those are the states
    the branch had, hence the ones ever deployed; commits of a merged branch are counted as their
    merge.

    Args:
        overlay: the overlay folder, in a Git checkout.
        count: how many revisions at most (fewer when the history is shorter); 0 gives none.
        deadline: bounds every Git command.

    Returns:
        The revisions, newest first.

    Raises:
        ValueError: ``count`` is negative or over :data:`MOST_REVISIONS`.
        ConfigError: Git is not installed, the overlay is not in a Git repository, it renders
            from a path outside that repository, the repository is a shallow clone holding fewer
            than ``count`` such commits, the kustomization tree cannot be read, or Git failed.
        DeadlineExceededError: the deadline passed first.
        RunInterruptedError: the run was interrupted.
    """
    if not 0 <= count <= MOST_REVISIONS:
        raise ValueError(f"count must be 0 to {MOST_REVISIONS}, got {count}")
    top = _top_level(overlay, deadline)
    paths = list(dict.fromkeys(_inside(top, path, overlay) for path in local_sources(overlay)))
    if count == 0:
        return []
    output = run_git(
        top,
        [
            "--literal-pathspecs",
            "log",
            "-z",
            "--first-parent",
            f"--max-count={count}",
            f"--format=%H{_FIELD}%ct{_FIELD}%s",
            "HEAD",
            "--",
            *paths,
        ],
        what=f"the Git history of overlay {overlay}",
        deadline=deadline,
    )
    revisions = [_revision(record) for record in output.split("\0") if record.strip()]
    _refuse_renames(top, revisions[:-1], paths, overlay, deadline)
    if len(revisions) < count and is_shallow(top, deadline=deadline):
        raise ConfigError(
            f"the Git repository {top} is a shallow clone: it holds {len(revisions)} of the "
            f"{count} commits of overlay {overlay} asked for; fetch the whole history "
            "(git fetch --unshallow; in CI, a checkout with fetch-depth: 0)"
        )
    return revisions


def images_at(
    revision: Revision | str,
    overlay: Path,
    *,
    deadline: Deadline,
    build_options: Sequence[str] = (),
) -> list[str]:
    """See :func:`_images_at` (without the check of the sources against today's)."""
    return _images_at(revision, overlay, deadline=deadline, today=None, build_options=build_options)


def _images_at(
    revision: Revision | str,
    overlay: Path,
    *,
    deadline: Deadline,
    today: Sequence[str] | None,
    mentions_of: str | None = None,
    build_options: Sequence[str] = (),
) -> list[str]:
    """The images the overlay deployed at a commit, each once, as written, in first-use order.

    The overlay is rendered as it was at that commit: the repository is checked out there in a
    temporary ``git worktree add --detach`` (Git hooks off), which is removed afterwards, on
    errors and interrupts too (``git worktree prune`` when removing it fails). Images are those
    plan finds (pod specs, and the fields the tree's ``configurations:`` declare) and also
    promoter's own hook containers' images, which plan leaves out: whatever the overlay deployed
    must be kept.

    A caller deciding what to delete must delete nothing when this raises: a history that cannot
    be read says nothing about what a rollback needs.

    Args:
        revision: the commit (a :class:`Revision`, or anything ``git rev-parse`` takes).
        overlay: the overlay folder in the checkout (its path in the repository is the same at
            every commit).
        deadline: bounds the checkout and the render.
        build_options: the environment's kustomize build options (today's promoter.yaml, as
            Argo CD renders a rollback with today's ``kustomize.buildOptions``).

    Raises:
        ConfigError: Git is not installed, the overlay is not in a Git repository, the commit is
            unknown, the checkout failed, or the overlay does not render at that commit (Kustomize
            refused it, or the overlay did not exist there); the message names the commit.
        DeadlineExceededError: the deadline passed first.
        RunInterruptedError: the run was interrupted.
    """
    commit = revision.commit if isinstance(revision, Revision) else revision
    top = _top_level(overlay, deadline)
    relative = _inside(top, normal_path(overlay), overlay)
    temporary = Path(tempfile.mkdtemp(prefix="promoter-history-"))
    tree = temporary / "checkout"
    try:
        run_git(
            top,
            # -c core.hooksPath: no post-checkout hook of the repository runs for this checkout
            ["-c", "core.hooksPath=/dev/null", "worktree", "add", "--detach", str(tree), commit],
            what=f"checking out commit {commit} of {top}",
            deadline=deadline,
        )
        old = tree / relative
        if not old.is_dir():
            # Created later, or moved here: which one Git cannot say for a folder, and a moved
            # overlay deployed images a rollback may need. Stop, saying so (never keep less).
            raise ConfigError(
                f"overlay {overlay} did not exist at commit {commit[:12]}, which the history "
                "asked for reaches (it was created or moved since)",
                hint="keep fewer revisions (--keep-history) so that the history starts after it, "
                "or keep what it deployed before with --keep",
            )
        if today is not None:
            # The history was read by the paths the overlay renders from today. At this commit
            # it rendered from others too (a base replaced, not renamed, since): commits that
            # changed those are missing from the history, and their images may be needed.
            then = [_inside(tree, p, old) for p in local_sources(old)]
            gone = [p for p in then if not _under(p, today)]
            if gone:
                raise ConfigError(
                    f"overlay {overlay} at commit {commit[:12]} rendered from {gone[0]!r}, which "
                    "it no longer does: the history read by today's paths may miss commits to it",
                    hint="keep fewer revisions (--keep-history) so that the history starts after "
                    "the change, or keep what the older revisions deployed with --keep",
                )
        try:
            text = render_overlay(old, options=build_options, deadline=deadline)
            field_specs = image_field_specs(old)
        except ConfigError as exc:
            raise ConfigError(
                f"overlay {overlay} at commit {commit[:12]}: {exc.message}", hint=exc.hint
            ) from exc
        documents = iter_manifests(text, source=f"kustomize build {old}")
        if mentions_of is None:
            found = [image.image for image in iter_images(documents, field_specs)]
        else:
            # Also what strings outside image fields name in that registry (plan warns about
            # them: an operator's spec.image): a rollback brings those back too.
            scan = scan_manifests(documents, mentions_of, field_specs)
            found = [image.image for image in scan.images]
            found += [m.value for m in scan.unmanaged if "/" in m.value]
        return list(dict.fromkeys(found))
    finally:
        _remove_worktree(top, tree, temporary)


def images_in_history(
    overlay: Path,
    count: int,
    *,
    deadline: Deadline,
    mentions_of: str | None = None,
    build_options: Sequence[str] = (),
) -> dict[str, list[Revision]]:
    """Every image the overlay deployed in its last ``count`` revisions, each with the revisions
    that deployed it (newest first): :func:`revisions_touching` then :func:`images_at` for each.

    Images are in the order first met, newest revision first. With ``mentions_of`` (a registry
    host), also what strings outside image fields name in that registry (an operator's
    ``spec.image``: plan warns about those). Each revision renders with ``build_options`` (see
    :func:`_images_at`). A caller deciding what to delete must delete nothing when this raises
    (see :func:`images_at`).

    Raises:
        ValueError, ConfigError, DeadlineExceededError, RunInterruptedError: as the two functions.
    """
    deployed: dict[str, list[Revision]] = {}
    top = _top_level(overlay, deadline)
    today = tuple(dict.fromkeys(_inside(top, p, overlay) for p in local_sources(overlay)))
    for revision in revisions_touching(overlay, count, deadline=deadline):
        for image in _images_at(
            revision,
            overlay,
            deadline=deadline,
            today=today,
            mentions_of=mentions_of,
            build_options=build_options,
        ):
            deployed.setdefault(image, []).append(revision)
    return deployed


def _revision(record: str) -> Revision:
    """One ``git log`` record: hash, committer time (Unix seconds), subject.

    Raises:
        ConfigError: the record is not of that shape (not Git's output).
    """
    commit, _, rest = record.strip("\n").partition(_FIELD)
    seconds, _, subject = rest.partition(_FIELD)
    try:
        committed_at = datetime.fromtimestamp(int(seconds), UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise ConfigError(f"git log printed an unexpected line: {one_line(record, 200)}") from exc
    return Revision(commit, committed_at, subject)


def commits_behind(overlay: Path, *, deadline: Deadline) -> tuple[str, int] | None:
    """How many commits the checkout holding ``overlay`` lacks of its branch's upstream (as last
    fetched): ``(upstream, count)``, or None when the branch has no upstream (a detached HEAD, a
    local repository). A prune decides from this checkout; what Argo CD deploys is the upstream.

    Raises:
        ConfigError: not a Git checkout, or Git failed.
        DeadlineExceededError, RunInterruptedError.
    """
    top = _top_level(overlay, deadline)
    try:
        upstream = run_git(
            top,
            ["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}"],
            what=f"the upstream of {top}",
            deadline=deadline,
        ).strip()
    except ConfigError:
        return None  # no upstream configured
    count = run_git(
        top, ["rev-list", "--count", "HEAD..@{upstream}"], what=f"{top}", deadline=deadline
    )
    return upstream, int(count.strip() or 0)


def _refuse_renames(
    top: Path,
    revisions: Sequence[Revision],
    paths: Sequence[str],
    overlay: Path,
    deadline: Deadline,
) -> None:
    """Stop when one of ``revisions`` (all but the oldest) moved a path the overlay renders from:
    the commits before it changed the old path, which the history read by today's paths misses,
    and the images they deployed may be what a rollback needs.

    Raises:
        ConfigError: naming the commit and the paths.
    """
    for revision in revisions:
        # No pathspec: Git limits a diff to it before it pairs renames, so a move into the
        # paths would show as an addition. Each rename's new path is matched here instead.
        renames = run_git(
            top,
            ["show", "-M", "--diff-filter=R", "--name-status", "--format=", revision.commit],
            what=f"the renames of commit {revision.commit[:12]}",
            deadline=deadline,
        )
        moved = [
            fields
            for line in renames.splitlines()
            if len(fields := line.split("\t")) == 3 and _under(fields[2], paths)
        ]
        if moved:
            first = moved[0]
            raise ConfigError(
                f"commit {revision.commit[:12]} moved {first[1]!r} to {first[-1]!r}, which overlay "
                f"{overlay} renders from: its history before the move cannot be followed",
                hint="keep fewer revisions (--keep-history) so that the history starts at the "
                "move, or keep what the older revisions deployed with --keep",
            )


def _under(path: str, roots: Sequence[str]) -> bool:
    """Whether a repository path is one of ``roots`` or inside one of them."""
    return any(root in (".", path) or path.startswith(f"{root.rstrip('/')}/") for root in roots)


def _top_level(overlay: Path, deadline: Deadline) -> Path:
    """The root folder of the Git checkout holding the overlay.

    Raises:
        ConfigError: the overlay folder does not exist or is not in a Git checkout.
    """
    if not overlay.is_dir():
        what = "is not a folder" if overlay.exists() else "does not exist"
        raise ConfigError(f"overlay {overlay} {what}; check the overlay path in promoter.yaml")
    return top_level(overlay, what=f"reading the history of overlay {overlay}", deadline=deadline)


def _inside(top: Path, path: Path, overlay: Path) -> str:
    """``path`` relative to the repository's root ``top``, as Git names it (``/`` separated).

    Raises:
        ConfigError: the path is outside the repository: its history is not Git's to tell.
    """
    try:
        return repository_path(top, path)
    except InputError:
        raise ConfigError(
            f"overlay {overlay} renders from {path}, which is outside its Git repository {top}, "
            "so its history cannot be read; keep what the overlay renders from in the repository"
        ) from None


def _remove_worktree(top: Path, tree: Path, temporary: Path) -> None:
    """Remove a temporary worktree and its folder, whatever state the checkout was left in.

    ``git worktree remove`` first; when that fails (the checkout never started, an interrupt stops
    every child), the folder is deleted and ``git worktree prune`` drops Git's record of it; when
    Git cannot run at all any more (interrupted), the record (``.git/worktrees/NAME``, named by
    the checkout's ``.git`` file) is deleted as prune would. Never raises: this runs on the way
    out of an error that matters more.
    """
    record = _worktree_record(tree)
    cleanup = Deadline.after(CLEANUP_TIMEOUT)
    with suppress(PromoterError):
        run_git(top, ["worktree", "remove", "--force", str(tree)], what="", deadline=cleanup)
    shutil.rmtree(temporary, ignore_errors=True)
    if record is None or not record.exists():
        return
    with suppress(PromoterError):
        run_git(top, ["worktree", "prune"], what="", deadline=cleanup)
    if record.exists() and record.parent.name == "worktrees":
        shutil.rmtree(record, ignore_errors=True)


def _worktree_record(tree: Path) -> Path | None:
    """The folder where Git keeps its record of a linked worktree (from the worktree's ``.git``
    file: ``gitdir: PATH``), if the checkout got that far."""
    try:
        text = (tree / ".git").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir: "):
        return None
    return Path(text.removeprefix("gitdir: ").strip())
