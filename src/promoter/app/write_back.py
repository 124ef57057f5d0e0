"""Writing a promotion back to Git: one commit holding exactly its edits, on HEAD or a new branch, pushed;
and reading the promotions back from those commits (``promoter history``).

The commit message names the module(s), the environments, the versions before and after and each
digest, in trailers that ``promoter history`` reads back (:mod:`promoter.gitops.promotions`): ``git log``
is the promotion history. Everything that can refuse the commit (no identity, a branch that exists here
or on the remote, other changes in the files, a remote that does not exist) is checked before a file is
written; a commit that fails before HEAD moved puts the files back, so a failed ``promote --commit``
leaves the checkout as it found it. The commit holds the files at the text that was checked, not
whatever the working tree holds when Git runs.

With a branch, the edit is checked in a temporary copy (as a dry run is) and committed on the new
branch only: the checkout (its branch, its files) is never touched, ready for the next promotion from
the same HEAD, as Kargo and Argo CD Image Updater leave it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from promoter.config.values import PromoterConfig
from promoter.deadline import LONGEST_RUN_TIMEOUT, Deadline
from promoter.errors import ConfigError, PromoterError, RunInterruptedError, SafetyError
from promoter.gitops.git import (
    CommitMade,
    CommitTarget,
    make_commit,
    move_ref,
    prepare_commit,
    push_branch,
    repository_path,
)
from promoter.gitops.promotions import (
    PromotedImage,
    PromotionLog,
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
    request: WriteBack,
    files: Sequence[Path],
    *,
    sources: Sequence[Path] = (),
    home: Path | None = None,
    deadline: Deadline,
) -> CommitTarget:
    """Check, before anything is written, that ``files`` can be committed as ``request`` asks,
    and that nothing else the edit is checked with (``sources``: what the overlay renders from)
    has uncommitted changes; ``home`` (promoter.yaml's folder) must be in the same checkout.

    Raises:
        InputError: see :func:`promoter.gitops.git.prepare_commit` (exit 2: nothing written).
        ConfigError, DeadlineExceededError, RunInterruptedError: Git failed or was stopped.
    """
    return prepare_commit(
        files,
        sources=sources,
        home=home,
        branch=request.branch,
        push=request.push,
        remote=request.remote,
        deadline=deadline,
    )


def commit_promotion(
    target: CommitTarget,
    *,
    environment: str,
    source: str,
    images: Sequence[PromotedImage],
    edits: Sequence[ImageEdit],
    written: bool,
    deadline: Deadline,
) -> CommitMade:
    """Commit the ``edits`` that change a file, at the text that was checked, with the promotion's
    message; then push when asked.

    Args:
        target: from :func:`prepare_write_back`, made before anything was written.
        environment: the environment promoted to.
        source: the environment the versions came from.
        images: the modules whose version changed, as the message names them (none when only the
            hook's image list was repaired).
        edits: the promotion's edits.
        written: whether the edits were written to the checkout (HEAD moves to the commit); a
            failure before HEAD moved puts them back. A branch commit writes no file.
        deadline: bounds every Git command.

    Raises:
        ConfigError: the commit failed, nothing moved (the files were put back).
        SafetyError: another writer moved HEAD meanwhile (the files were put back).
        DeadlineExceededError, RunInterruptedError: stopped; before HEAD moved, the files were
            put back; while it moved, the message says to look; while pushing, the message says
            the commit stays.

    A push that fails raises nothing: the commit stands, and its ``push_error`` says why.
    """
    from promoter.gitops.overlay import write_edit  # noqa: PLC0415 - ruamel: only for promote

    changed = [edit for edit in edits if edit.changed]
    contents = {repository_path(target.top, edit.path): edit.after for edit in changed}
    committed = replace(target, paths=tuple(contents))

    def put_back() -> None:
        if written:
            for edit in reversed(changed):
                write_edit(replace(edit, before=edit.after, after=edit.before))

    try:
        commit = make_commit(
            committed, contents, promotion_message(environment, source, images), deadline=deadline
        )
    except BaseException:
        put_back()
        raise
    try:
        made = move_ref(committed, commit, deadline=deadline)
    except (ConfigError, SafetyError):
        put_back()  # update-ref is atomic: a failure moved nothing
        raise
    if target.remote is not None:
        try:
            made = push_branch(target, made, deadline=deadline)
        except RunInterruptedError:
            raise
        except PromoterError as exc:  # the commit stands: the promotion reports it
            made = replace(made, push_error=str(exc))
    return made


def push_unchanged(target: CommitTarget, *, deadline: Deadline) -> CommitMade | None:
    """Push HEAD when a promotion changed no file but was asked to push (``--commit --push``
    run again after a push that failed): its commit is there, only the remote lacks it. None
    when there is nothing to push (a new branch was asked for: none is made without a change).

    A push that fails raises nothing: its ``push_error`` says why.

    Raises:
        RunInterruptedError: interrupted.
    """
    if target.remote is None or target.branch is not None or target.current is None:
        return None
    head = CommitMade(target.parent, target.current, created=False, new=False)
    try:
        return push_branch(target, head, deadline=deadline)
    except RunInterruptedError:
        raise
    except PromoterError as exc:
        return replace(head, push_error=str(exc))


def promotion_history(
    config: PromoterConfig,
    environment: str | None = None,
    module: str | None = None,
    *,
    limit: int = 100,
    deadline: Deadline | None = None,
) -> PromotionLog:
    """The promotions recorded in the Git history of promoter.yaml's checkout (commits made by
    ``promote --commit`` on HEAD's line, merged ones included), newest first; for one
    environment, only commits that changed its overlay are read (see
    :func:`promoter.gitops.promotions.promotion_log`).

    Args:
        config: promoter.yaml; its folder is in the checkout read.
        environment: only promotions to this environment of ``config``.
        module: only promotions of this module (repository path).
        limit: the most records (1 to :data:`promoter.gitops.promotions.MOST_PROMOTIONS`).
        deadline: bounds every Git command (else each has Git's own timeouts).

    Raises:
        ConfigError: ``environment`` is not one of ``config``'s, promoter.yaml is not in a Git
            checkout, the overlay is outside it, or Git failed.
        DeadlineExceededError, RunInterruptedError.
    """
    overlay = config.environment(environment).overlay if environment is not None else None
    return promotion_log(
        config.path.parent,
        environment=environment,
        overlay=overlay,
        module=module,
        limit=limit,
        deadline=deadline or Deadline.after(LONGEST_RUN_TIMEOUT),
    )
