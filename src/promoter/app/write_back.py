"""Writing a promotion back to Git: one commit holding exactly its edits, on HEAD or a new branch, pushed;
and reading the promotions back from those commits (``promoter history``).

The commit message names the module(s), the environments, the versions before and after and each
digest, in trailers that ``promoter history`` reads back (:mod:`promoter.gitops.promotions`): ``git log``
is the promotion history. Everything that can refuse the commit (no identity, a branch that exists,
other changes in the files, a remote that does not exist) is checked before a file is written; a commit
that fails after the files were written puts them back, so a failed ``promote --commit`` leaves the
checkout as it found it.

With a branch, the commit goes on the new branch only: the checkout (its branch, its files) stays as it
was, ready for the next promotion from the same HEAD, as Kargo and Argo CD Image Updater leave it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from promoter.config.values import PromoterConfig
from promoter.deadline import LONGEST_RUN_TIMEOUT, Deadline
from promoter.gitops.git import (
    CommitMade,
    CommitTarget,
    commit_files,
    prepare_commit,
    push_branch,
    repository_path,
)
from promoter.gitops.promotions import (
    PromotedImage,
    PromotionRecord,
    promotion_log,
    promotion_message,
)

if TYPE_CHECKING:
    from promoter.gitops.overlay import ImageEdit


@dataclass(frozen=True, slots=True)
class WriteBack:
    """How ``promote`` writes its edit back to Git (``--commit``, ``--branch``, ``--push``).

    Attributes:
        branch: a new branch, made from HEAD, to commit on; None to commit on HEAD.
        push: push the commit's branch afterwards (the same name on the remote).
        remote: the remote to push to; None for the current branch's upstream remote, else
            ``origin``.
    """

    branch: str | None = None
    push: bool = False
    remote: str | None = None


def prepare_write_back(
    request: WriteBack, files: Sequence[Path], *, deadline: Deadline
) -> CommitTarget:
    """Check, before anything is written, that ``files`` can be committed as ``request`` asks.

    Raises:
        InputError: see :func:`promoter.gitops.git.prepare_commit` (exit 2: nothing written).
        ConfigError, DeadlineExceededError, RunInterruptedError: Git failed or was stopped.
    """
    return prepare_commit(
        files, branch=request.branch, push=request.push, remote=request.remote, deadline=deadline
    )


def commit_promotion(
    target: CommitTarget,
    *,
    environment: str,
    source: str,
    images: Sequence[PromotedImage],
    edits: Sequence[ImageEdit],
    deadline: Deadline,
) -> CommitMade:
    """Commit the written ``edits`` (those that changed) with the promotion's message; then, for a
    branch, put the checkout's files back as they were; then push when asked.

    A commit that fails puts the files back (the promotion is undone); a push that fails leaves the
    commit (the message says how to push it).

    Args:
        target: from :func:`prepare_write_back`, made before the edits were written.
        environment: the environment promoted to.
        source: the environment promoted from.
        images: the modules whose version changed, as the message names them.
        edits: the edits written.
        deadline: bounds every Git command.

    Raises:
        ConfigError: the commit failed (the files were put back).
        PromoterError: the push failed (the commit stays).
        DeadlineExceededError, RunInterruptedError.
    """
    from promoter.gitops.overlay import write_edit  # noqa: PLC0415 - ruamel: only for promote

    written = [edit for edit in edits if edit.changed]
    reverse = [replace(e, before=e.after, after=e.before) for e in reversed(written)]
    paths = {repository_path(target.top, edit.path) for edit in written}
    committed = replace(target, paths=tuple(p for p in target.paths if p in paths))
    message = promotion_message(environment, source, images)
    try:
        made = commit_files(committed, message, deadline=deadline)
    except BaseException:
        for edit in reverse:
            write_edit(edit)
        raise
    if target.branch is not None:
        for edit in reverse:  # the commit is on the branch; the checkout stays as it was
            write_edit(edit)
    if target.remote is not None:
        made = push_branch(target, made, deadline=deadline)
    return made


def promotion_history(
    config: PromoterConfig,
    environment: str | None = None,
    module: str | None = None,
    *,
    limit: int = 100,
    deadline: Deadline | None = None,
) -> tuple[PromotionRecord, ...]:
    """The promotions recorded in the Git history of promoter.yaml's checkout (commits made by
    ``promote --commit``, reachable from HEAD), newest first.

    Args:
        config: promoter.yaml; its folder is in the checkout read.
        environment: only promotions to this environment of ``config``.
        module: only promotions of this module (repository path).
        limit: the most records (1 to :data:`promoter.gitops.promotions.MOST_PROMOTIONS`).
        deadline: bounds every Git command (else each has Git's own timeout).

    Raises:
        ConfigError: ``environment`` is not one of ``config``'s, promoter.yaml is not in a Git
            checkout, or Git failed.
        DeadlineExceededError, RunInterruptedError.
    """
    if environment is not None:
        config.environment(environment)  # an unknown name is told the known ones
    return promotion_log(
        config.path.parent,
        environment=environment,
        module=module,
        limit=limit,
        deadline=deadline or Deadline.after(LONGEST_RUN_TIMEOUT),
    )
