"""Git, run as the ``git`` command: reading a checkout, and committing a promotion.

Git runs as a child process (:func:`promoter.process.run_capped`): its output is capped, every call ends
by the run's deadline, an interrupt stops it, its terminal prompts are off (a remote that asks for a
password fails with Git's message instead of waiting on a terminal nobody reads), and its error line is
cleared of any password written into a remote's URL before it reaches a message.

Committing uses Git's plumbing (``read-tree``/``add`` into a temporary index, ``write-tree``,
``commit-tree``, then ``update-ref`` with the old value checked), the way Kargo and Argo CD Image Updater
commit with a library: the commit holds exactly the files given, at their content in the working tree,
on top of HEAD, whatever else is staged; a branch can be written without checking it out; and the ref
moves only if nobody moved it meanwhile. Commit hooks do not run (a promotion is made by a program, as in
those tools); ``commit.gpgSign`` is honoured.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from promoter.deadline import Deadline
from promoter.errors import (
    ConfigError,
    DeadlineExceededError,
    InputError,
    PromoterError,
    RunInterruptedError,
    one_line,
)
from promoter.process import Finished, run_capped

#: Seconds one Git command may take; a local ``git log`` or checkout takes well under one, so this
#: only ends one stuck on something outside our control (a filter fetching large files).
GIT_TIMEOUT: Final = 120.0
#: Seconds a ``git push`` may take: a remote over a slow link, a large first push.
PUSH_TIMEOUT: Final = 300.0
#: The most of Git's output kept (a log of a few commits, a path, a list of worktrees).
OUTPUT_LIMIT: Final = 4 * 1024 * 1024
#: The most of Git's error output kept for a message.
_ERRORS_LIMIT: Final = 64 * 1024
#: ``scheme://user:password@host``: what of a remote's URL never reaches a message.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


def run_git(
    folder: Path,
    arguments: Sequence[str],
    *,
    what: str,
    deadline: Deadline,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    timeout: float = GIT_TIMEOUT,
) -> str:
    """Run ``git -C folder ARGUMENTS`` and return its output.

    Args:
        folder: where Git runs.
        arguments: Git's arguments after ``-C folder``.
        what: what was being read or written, for messages.
        deadline: the command is stopped at the deadline or after ``timeout``.
        stdin: Git's input.
        env: variables added to promoter's environment for this command (``GIT_INDEX_FILE``).
        timeout: seconds the command may take.

    Raises:
        ConfigError: Git is not installed, failed (with its own first line of explanation, any
            password in a URL left out), printed more than :data:`OUTPUT_LIMIT` or other than
            UTF-8, or ran past ``timeout``.
        DeadlineExceededError: stopped at the deadline.
        RunInterruptedError: the run was interrupted.
    """
    finished = _call(
        folder, arguments, what=what, deadline=deadline, stdin=stdin, env=env, timeout=timeout
    )
    if finished.returncode != 0:
        reason = git_error_line(finished.stderr) or f"exit status {finished.returncode}"
        raise ConfigError(f"{what}: git failed: {reason}")
    return _text(finished, what)


def _call(
    folder: Path,
    arguments: Sequence[str],
    *,
    what: str,
    deadline: Deadline,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    timeout: float = GIT_TIMEOUT,
) -> Finished:
    """Run Git (see :func:`run_git`) and return how it ended, whatever its exit status.

    Raises:
        ConfigError: Git is not installed, printed more than :data:`OUTPUT_LIMIT`, or ran past
            ``timeout``.
        DeadlineExceededError, RunInterruptedError.
    """
    git = shutil.which("git")
    if git is None:
        raise ConfigError(
            f"git is not on PATH, so {what} failed; install Git (https://git-scm.com)"
        )
    deadline.check(what)
    command = [git, "-C", str(folder), *arguments]
    try:
        finished = run_capped(
            command,
            stdin=stdin,
            timeout=deadline.cap(timeout),
            stdout_limit=OUTPUT_LIMIT,
            stderr_limit=_ERRORS_LIMIT,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})},
        )
    except OSError as exc:
        raise ConfigError(f"cannot run git for {what}: {exc.strerror or exc}") from exc
    except subprocess.TimeoutExpired:
        if deadline.expired:
            raise DeadlineExceededError(
                f"{what}: git {arguments[0]} stopped at the {deadline.seconds:g} s deadline"
            ) from None
        raise ConfigError(f"{what}: git did not finish within {timeout:g} s") from None
    except RunInterruptedError:
        raise RunInterruptedError(f"{what}: interrupted") from None
    if finished.overflowed:
        raise ConfigError(f"{what}: git printed more than {OUTPUT_LIMIT // (1024 * 1024)} MiB")
    return finished


def _text(finished: Finished, what: str) -> str:
    """Git's output as text.

    Raises:
        ConfigError: it is not UTF-8.
    """
    try:
        return finished.stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what}: git printed something other than UTF-8 text") from exc


def git_error_line(stderr: bytes) -> str:
    """Git's explanation as one line: its first ``fatal:``/``error:`` line, else its first line;
    ``user:password@`` in a URL (a token in a remote's URL) is written ``***@``."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", stderr.decode("utf-8", "replace"))
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return one_line(line, 300)
    return one_line(lines[0], 300) if lines else ""


def top_level(folder: Path, *, what: str, deadline: Deadline) -> Path:
    """The root folder of the Git checkout holding ``folder``.

    Raises:
        ConfigError: not in a Git checkout (naming ``what`` needed one), or Git failed.
        DeadlineExceededError, RunInterruptedError.
    """
    try:
        output = run_git(folder, ["rev-parse", "--show-toplevel"], what=what, deadline=deadline)
    except ConfigError as exc:
        if "not a git repository" in str(exc).lower():
            raise ConfigError(
                f"{folder} is not in a Git repository, so {what} is not possible; run promoter "
                "in a clone of the GitOps repository"
            ) from None
        raise
    return Path(output.strip())


def has_commits(top: Path, *, deadline: Deadline) -> bool:
    """Whether HEAD of the checkout at ``top`` is a commit (a new repository has none yet).

    Raises:
        ConfigError: Git could not run. DeadlineExceededError, RunInterruptedError.
    """
    what = f"the Git repository {top}"
    return (
        _optional(top, ["rev-parse", "--verify", "-q", "HEAD^{commit}"], what, deadline) is not None
    )


@dataclass(frozen=True, slots=True)
class CommitTarget:
    """Where a commit will go, checked before anything is written (:func:`prepare_commit`).

    Attributes:
        top: the checkout's root folder.
        parent: the commit HEAD is at: the new commit's parent.
        branch: the branch to create (short name), or None to move HEAD.
        current: the branch HEAD is on (short name), None when detached.
        remote: the remote to push to, None when not pushing.
        paths: the files to commit, relative to ``top`` (``/`` separated).
        remote_ref: the remote's ref the push updates: the new branch's name, else the current
            branch's upstream branch when it has one on ``remote``, else its own name.
    """

    top: Path
    parent: str
    branch: str | None
    current: str | None
    remote: str | None
    paths: tuple[str, ...]
    remote_ref: str | None = None


@dataclass(frozen=True, slots=True)
class CommitMade:
    """A commit written by :func:`commit_files`.

    Attributes:
        commit: its full hash.
        branch: the branch it is on (short name); None for a detached HEAD.
        created: whether that branch was created for it (``--branch``).
        remote: the remote it was pushed to, None when not pushed.
    """

    commit: str
    branch: str | None
    created: bool
    remote: str | None = None


def prepare_commit(
    files: Sequence[Path],
    *,
    branch: str | None,
    push: bool,
    remote: str | None,
    deadline: Deadline,
) -> CommitTarget:
    """Check that ``files`` can be committed as asked, before anything is written to them.

    Args:
        files: the files the commit will hold, all in one checkout.
        branch: a new branch to commit on, from HEAD; None to commit on HEAD.
        push: whether the commit will be pushed.
        remote: the remote to push to; None for the current branch's upstream remote, else
            ``origin``.
        deadline: bounds every Git command.

    Raises:
        InputError: the files are in no checkout or in several, HEAD has no commit yet, no
            committer identity is configured, the branch name is invalid or taken, a file has
            changes of its own (staged, unstaged or untracked: the commit would hold them too),
            pushing from a detached HEAD without a branch, or the remote does not exist.
        ConfigError: Git failed. DeadlineExceededError, RunInterruptedError.
    """
    if not files:
        raise ValueError("nothing to commit")
    top = top_level(files[0].parent, what="committing the promotion", deadline=deadline)
    paths = tuple(dict.fromkeys(repository_path(top, path) for path in files))
    what = f"the Git repository {top}"
    parent = _optional(top, ["rev-parse", "--verify", "-q", "HEAD^{commit}"], what, deadline)
    if parent is None:
        raise InputError(f"{what} has no commit yet; commit something first, then promote")
    try:
        run_git(top, ["var", "GIT_COMMITTER_IDENT"], what=what, deadline=deadline)
        run_git(top, ["var", "GIT_AUTHOR_IDENT"], what=what, deadline=deadline)
    except ConfigError:
        raise InputError(
            f"Git does not know who commits in {top}; set user.name and user.email "
            "(git config user.email you@example.com), or GIT_AUTHOR_NAME/GIT_AUTHOR_EMAIL and "
            "GIT_COMMITTER_NAME/GIT_COMMITTER_EMAIL in CI"
        ) from None
    if branch is not None:
        _check_new_branch(top, branch, deadline)
    changed = run_git(
        top,
        [
            "--literal-pathspecs",
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--",
            *paths,
        ],
        what=what,
        deadline=deadline,
    )
    dirty = sorted({entry[3:] for entry in changed.split("\0") if len(entry) > 3})
    if dirty:
        raise InputError(
            f"{', '.join(dirty)} in {top} has changes of its own (git status); the promotion "
            "commit would hold them too: commit or stash them first (git stash), then promote"
        )
    current = (
        _optional(top, ["symbolic-ref", "-q", "--short", "HEAD"], what, deadline) or ""
    ).strip() or None
    chosen = remote_ref = None
    if push:
        if branch is None and current is None:
            raise InputError("HEAD is detached: there is no branch to push; name one with --branch")
        upstream = _upstream(top, current, deadline) if branch is None else None
        chosen = remote or (upstream[0] if upstream else None) or "origin"
        if chosen.startswith("-") or (
            _optional(top, ["remote", "get-url", "--", chosen], what, deadline) is None
        ):
            raise InputError(
                f"{top} has no Git remote {chosen!r} to push to (git remote -v lists them); "
                "name one after --push"
            )
        same = upstream is not None and upstream[0] == chosen
        remote_ref = upstream[1] if same and upstream else f"refs/heads/{branch or current}"
    return CommitTarget(top, parent.strip(), branch, current, chosen, paths, remote_ref)


def commit_files(target: CommitTarget, message: str, *, deadline: Deadline) -> CommitMade:
    """Commit the files of ``target`` as they are in the working tree, on top of its parent.

    With a branch, the commit goes on that new branch and the checkout is left as it is (HEAD,
    the index); without, HEAD moves to it (only if it is still at the parent: another commit made
    meanwhile fails this one) and the index entries of the files are refreshed to it.

    Raises:
        ConfigError: Git failed (HEAD moved meanwhile, the branch was created meanwhile, signing
            failed); nothing was moved then.
        DeadlineExceededError, RunInterruptedError.
    """
    top = target.top
    what = f"committing the promotion in {top}"
    with tempfile.TemporaryDirectory(prefix="promoter-index-") as folder:
        index = {"GIT_INDEX_FILE": str(Path(folder) / "index")}
        run_git(top, ["read-tree", target.parent], what=what, deadline=deadline, env=index)
        run_git(
            top,
            ["--literal-pathspecs", "add", "-f", "--", *target.paths],
            what=what,
            deadline=deadline,
            env=index,
        )
        tree = run_git(top, ["write-tree"], what=what, deadline=deadline, env=index).strip()
    sign = ["-S"] if _config_true(top, "commit.gpgSign", deadline) else []
    commit = run_git(
        top,
        ["commit-tree", *sign, tree, "-p", target.parent, "-F", "-"],
        what=what,
        deadline=deadline,
        stdin=message.encode("utf-8"),
    ).strip()
    if target.branch is not None:
        ref = f"refs/heads/{target.branch}"
        run_git(
            top,
            ["update-ref", "--stdin", "-m", "promoter promote"],
            what=what,
            deadline=deadline,
            stdin=f"create {ref} {commit}\n".encode(),
        )
        return CommitMade(commit, target.branch, created=True)
    run_git(
        top,
        ["update-ref", "-m", "promoter promote", "HEAD", commit, target.parent],
        what=what,
        deadline=deadline,
    )
    # The index still holds the files as they were in the parent: make it agree with HEAD.
    run_git(
        top,
        ["--literal-pathspecs", "reset", "-q", "HEAD", "--", *target.paths],
        what=what,
        deadline=deadline,
    )
    return CommitMade(commit, target.current, created=False)


def push_branch(target: CommitTarget, made: CommitMade, *, deadline: Deadline) -> CommitMade:
    """Push the commit to the target's remote: the new branch under its name, the current branch
    to its upstream branch there (else under its own name).

    Raises:
        PromoterError: the push failed or ran past the deadline (Git's own line, no password):
            the commit stays, and the message says how to push it by hand.
        RunInterruptedError: interrupted; the message says the commit stays.
    """
    remote, branch, ref = target.remote, made.branch, target.remote_ref
    if remote is None or branch is None or ref is None:
        raise ValueError("nothing to push to")
    try:
        run_git(
            target.top,
            ["push", "--porcelain", "--", remote, f"{made.commit}:{ref}"],
            what=f"pushing {branch} to {remote}",
            deadline=deadline,
            timeout=PUSH_TIMEOUT,
        )
    except (ConfigError, DeadlineExceededError, RunInterruptedError) as exc:
        kept = f"the promotion is committed ({made.commit[:12]} on {branch}) but not pushed"
        if isinstance(exc, RunInterruptedError):
            raise RunInterruptedError(f"{exc}; {kept}") from None
        spelled = branch if ref == f"refs/heads/{branch}" else f"{branch}:{ref}"
        raise PromoterError(
            f"{exc}; {kept}", hint=f"push it by hand: git push {remote} {spelled}"
        ) from None
    return CommitMade(made.commit, made.branch, made.created, remote)


def _check_new_branch(top: Path, branch: str, deadline: Deadline) -> None:
    """Refuse a branch name Git does not accept, or one that exists already.

    Raises:
        InputError: naming the branch.
    """
    what = f"the Git repository {top}"
    if branch.startswith("-") or (
        _optional(top, ["check-ref-format", "--branch", branch], what, deadline) is None
    ):
        raise InputError(f"--branch {branch!r} is not a valid Git branch name")
    if _optional(top, ["rev-parse", "--verify", "-q", f"refs/heads/{branch}"], what, deadline):
        raise InputError(
            f"branch {branch} exists already in {top}; name a new branch (promote makes it from "
            "HEAD)"
        )


def _upstream(top: Path, branch: str | None, deadline: Deadline) -> tuple[str, str] | None:
    """The remote and the remote's ref of ``branch``'s upstream (``git config branch.B.remote``
    and ``branch.B.merge``), if it has one on a remote."""
    if branch is None:
        return None
    what = f"the Git repository {top}"
    remote = _optional(top, ["config", "--get", f"branch.{branch}.remote"], what, deadline)
    merge = _optional(top, ["config", "--get", f"branch.{branch}.merge"], what, deadline)
    remote, merge = (remote or "").strip(), (merge or "").strip()
    if not remote or remote == "." or not merge.startswith("refs/heads/"):
        return None
    return remote, merge


def _config_true(top: Path, key: str, deadline: Deadline) -> bool:
    """Whether a boolean Git setting is true."""
    value = _optional(top, ["config", "--bool", "--get", key], f"Git setting {key}", deadline)
    return value is not None and value.strip() == "true"


def _optional(top: Path, arguments: Sequence[str], what: str, deadline: Deadline) -> str | None:
    """Git's output, or None when it exits non-zero (an answer of "no", not a failure).

    Raises:
        ConfigError: Git could not run. DeadlineExceededError, RunInterruptedError.
    """
    finished = _call(top, arguments, what=what, deadline=deadline)
    return _text(finished, what) if finished.returncode == 0 else None


def repository_path(top: Path, path: Path) -> str:
    """``path`` relative to the checkout's root, as Git names it.

    Raises:
        InputError: the file is outside the checkout.
    """
    absolute = Path(os.path.normpath(path.absolute()))
    for candidate in (absolute, absolute.resolve()):
        for root in (top, top.resolve()):
            if candidate.is_relative_to(root):
                return candidate.relative_to(root).as_posix()
    raise InputError(
        f"{path} is outside the Git repository {top}; a promotion commit holds files of one "
        "repository"
    )
