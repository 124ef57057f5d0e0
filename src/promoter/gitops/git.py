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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from promoter.deadline import Deadline
from promoter.errors import (
    ConfigError,
    DeadlineExceededError,
    InputError,
    PromoterError,
    RunInterruptedError,
    SafetyError,
    one_line,
)
from promoter.gitops.kustomization import normal_path
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
#: The longest part of a branch name between slashes: each is a file name in ``.git/refs``.
_LONGEST_REF_PART: Final = 200
#: ``scheme://user:password@host``: what of a remote's URL never reaches a message.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")
#: A URL's query (``?token=...``), which may carry a secret as well.
_URL_QUERY = re.compile(r"(?P<url>[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"?]*)\?[^\s'\"]*")


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
    # No hook runs for what promoter does (commit, index, reference-transaction, pre-push hooks):
    # a promotion is made by a program, as Kargo and Argo CD Image Updater make theirs.
    command = [git, "-C", str(folder), "-c", "core.hooksPath=/dev/null", *arguments]
    try:
        finished = run_capped(
            command,
            stdin=stdin,
            timeout=deadline.cap(timeout),
            stdout_limit=OUTPUT_LIMIT,
            stderr_limit=_ERRORS_LIMIT,
            env=_environment(env),
            own_group=True,  # a remote helper (git-remote-http) ends with it
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


#: Variables that would point Git at another repository, work tree or index than the one promoter
#: names with ``-C`` (promoter.yaml's checkout decides).
_REPOSITORY_VARIABLES: Final = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)


def _environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    """Git's environment: promoter's, without variables naming another repository, with prompts
    off (Git's terminal prompt, and SSH's through ``BatchMode`` unless the user set SSH's
    command), and ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _REPOSITORY_VARIABLES}
    env["GIT_TERMINAL_PROMPT"] = "0"
    if "GIT_SSH_COMMAND" not in env and "GIT_SSH" not in env:
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return {**env, **(extra or {})}


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
    text = shown_remote(stderr.decode("utf-8", "replace"))
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


def is_shallow(top: Path, *, deadline: Deadline) -> bool:
    """Whether the checkout at ``top`` is a shallow clone (its history cut short).

    Raises:
        ConfigError: Git failed. DeadlineExceededError, RunInterruptedError.
    """
    output = run_git(
        top,
        ["rev-parse", "--is-shallow-repository"],
        what=f"the Git repository {top}",
        deadline=deadline,
    )
    return output.strip() == "true"


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

    @property
    def shown_remote(self) -> str:
        """The remote as messages name it (a URL without its password)."""
        return shown_remote(self.remote or "")


@dataclass(frozen=True, slots=True)
class CommitMade:
    """A commit made by :func:`make_commit` and put on a ref by :func:`move_ref`.

    Attributes:
        commit: its full hash.
        branch: the branch it is on (short name); None for a detached HEAD.
        created: whether that branch was created for it (``--branch``).
        remote: the remote it was pushed to, None when not pushed (a URL without its password).
        remote_ref: the remote's ref it was pushed to.
        notes: what the user should know, one line each (an index that could not be refreshed).
        push_error: why the push failed (one line, no password, with what to do); empty when
            it was pushed or not asked to be.
        new: whether the commit was made now; False when nothing changed and HEAD, already
            holding the promotion, was only pushed.
    """

    commit: str
    branch: str | None
    created: bool
    remote: str | None = None
    remote_ref: str | None = None
    notes: tuple[str, ...] = ()
    push_error: str = ""
    new: bool = True


def prepare_commit(
    files: Sequence[Path],
    *,
    sources: Sequence[Path] = (),
    home: Path | None = None,
    branch: str | None,
    push: bool,
    remote: str | None,
    deadline: Deadline,
) -> CommitTarget:
    """Check that ``files`` can be committed as asked, before anything is written to them.

    Args:
        files: the files the commit will hold, all in one checkout.
        sources: what the edit was checked with (the folders and files the overlay renders
            from): a tracked file among them with uncommitted changes is refused, since the
            commit would render without them. Those outside the checkout are not Git's.
        home: a folder the files' checkout must be (promoter.yaml's): a commit in another
            repository (a submodule) would be found by no history read from there.
        branch: a new branch to commit on, from HEAD; None to commit on HEAD.
        push: whether the commit will be pushed.
        remote: the remote to push to; None for the current branch's upstream remote, else
            ``origin``.
        deadline: bounds every Git command.

    Raises:
        InputError: the files are in no checkout, in another one than ``home``'s, HEAD has no
            commit yet, no committer identity is configured, the branch name is invalid,
            ambiguous or taken (here, or on the remote when pushing), a file has changes of its
            own (staged, unstaged or untracked: the commit would hold them too), a tracked
            source has uncommitted changes, pushing from a detached HEAD without a branch, or
            the remote does not exist.
        PromoterError: the remote could not be asked for the new branch.
        ConfigError: Git failed. DeadlineExceededError, RunInterruptedError.
    """
    if not files:
        raise ValueError("nothing to commit")
    top = top_level(files[0].parent, what="committing the promotion", deadline=deadline)
    if home is not None:
        own = top_level(home, what="committing the promotion", deadline=deadline)
        if own.resolve() != top.resolve():
            raise InputError(
                f"{files[0]} is in the Git repository {top} (a submodule?), promoter.yaml in "
                f"{own}: a promotion commit there would not be found by promoter history; commit "
                "it by hand, or keep the overlays in promoter.yaml's repository"
            )
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
    _check_sources_committed(top, sources, deadline)
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
                f"{top} has no Git remote {shown_remote(chosen)!r} to push to (git remote -v "
                "lists them); name one after --push"
            )
        same = upstream is not None and upstream[0] == chosen
        remote_ref = upstream[1] if same and upstream else f"refs/heads/{branch or current}"
        if branch is not None:
            _check_remote_branch(top, chosen, remote_ref, deadline)
    return CommitTarget(top, parent.strip(), branch, current, chosen, paths, remote_ref)


def _check_sources_committed(top: Path, sources: Sequence[Path], deadline: Deadline) -> None:
    """Refuse tracked files among ``sources`` (inside ``top``) with uncommitted changes.

    Raises:
        InputError: naming them.
    """
    inside = []
    for source in sources:
        try:
            inside.append(repository_path(top, source))
        except InputError:
            continue  # outside the checkout: not Git's to commit
    if not inside:
        return
    changed = run_git(
        top,
        [
            "--literal-pathspecs",
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=no",
            "--",
            *inside,
        ],
        what=f"the Git repository {top}",
        deadline=deadline,
    )
    dirty = sorted({entry[3:] for entry in changed.split("\0") if len(entry) > 3})
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise InputError(
            f"{shown} in {top}, which the overlay renders from, has uncommitted changes: the "
            "promotion would be checked with them but committed without them; commit or stash "
            "them first (git stash), then promote"
        )


def make_commit(
    target: CommitTarget, contents: Mapping[str, str], message: str, *, deadline: Deadline
) -> str:
    """Write the commit object of ``contents`` on top of the target's parent, moving no ref.

    The files are committed as given (each at its text, by repository path: the edit that was
    checked), not as the working tree holds them when Git runs, so a concurrent writer's change
    cannot slip into the commit. A file keeps its mode.

    Returns:
        The commit's hash.

    Raises:
        ConfigError: Git failed (signing failed); nothing refers to the objects written.
        DeadlineExceededError, RunInterruptedError.
    """
    top = target.top
    what = f"committing the promotion in {top}"
    modes = _modes(top, target.parent, list(contents), deadline)
    with tempfile.TemporaryDirectory(prefix="promoter-index-") as folder:
        index = {"GIT_INDEX_FILE": str(Path(folder) / "index")}
        run_git(top, ["read-tree", target.parent], what=what, deadline=deadline, env=index)
        for path, text in contents.items():
            blob = run_git(
                top,
                ["hash-object", "-w", "--stdin", f"--path={path}"],
                what=what,
                deadline=deadline,
                stdin=text.encode("utf-8"),
            ).strip()
            run_git(
                top,
                [
                    "update-index",
                    "--add",
                    "--cacheinfo",
                    f"{modes.get(path, '100644')},{blob},{path}",
                ],
                what=what,
                deadline=deadline,
                env=index,
            )
        tree = run_git(top, ["write-tree"], what=what, deadline=deadline, env=index).strip()
    sign = ["-S"] if _config_true(top, "commit.gpgSign", deadline) else []
    return run_git(
        top,
        ["commit-tree", *sign, tree, "-p", target.parent, "-F", "-"],
        what=what,
        deadline=deadline,
        stdin=message.encode("utf-8"),
    ).strip()


def move_ref(target: CommitTarget, commit: str, *, deadline: Deadline) -> CommitMade:
    """Create the target's branch at ``commit``, or move HEAD to it from the target's parent.

    Git's ``update-ref`` is atomic and checks the old value: it fails, moving nothing, when the
    branch exists or HEAD moved since the parent was read. Hooks do not run for it. With HEAD
    moved, the index entries of the files are refreshed to the commit; when that fails (a locked
    index), the commit stands and a note says how to refresh them.

    Raises:
        SafetyError: another writer moved HEAD or created the branch meanwhile; nothing moved.
        ConfigError: Git refused otherwise (a ref it cannot lock); nothing moved.
        DeadlineExceededError, RunInterruptedError: stopped while Git ran; whether the ref moved
            is then not known, and the message says to look (``git log -1``).
    """
    top = target.top
    what = f"committing the promotion in {top}"
    if target.branch is not None:
        ref = f"refs/heads/{target.branch}"
        arguments, stdin = ["--stdin"], f"create {ref} {commit}\n".encode()
    else:
        ref, arguments, stdin = "HEAD", ["HEAD", commit, target.parent], b""
    try:
        run_git(
            top,
            ["update-ref", "-m", "promoter promote", *arguments],
            what=what,
            deadline=deadline,
            stdin=stdin,
        )
    except (DeadlineExceededError, RunInterruptedError) as exc:
        raise type(exc)(
            f"{exc} while moving {ref} to the promotion commit {commit[:12]}: it may or may not "
            f"be there (git log -1 {ref} tells)"
        ) from None
    except ConfigError as exc:
        if "but expected" in str(exc) or "already exists" in str(exc):
            moved = "was created" if target.branch is not None else "moved"
            raise SafetyError(
                f"{ref} {moved} while the promotion was being made (another writer): nothing "
                "was committed",
                hint="run the promotion again",
            ) from None
        raise
    if target.branch is not None:
        return CommitMade(commit, target.branch, created=True)
    try:
        run_git(
            top,
            ["--literal-pathspecs", "reset", "-q", "HEAD", "--", *target.paths],
            what=what,
            deadline=deadline,
        )
    except PromoterError as exc:
        paths = " ".join(target.paths)
        note = (
            f"the index still lists {paths} as before the commit ({exc}); "
            f"git -C {top} reset -q -- {paths} refreshes it"
        )
        return CommitMade(commit, target.current, created=False, notes=(note,))
    return CommitMade(commit, target.current, created=False)


def _modes(top: Path, commit: str, paths: Sequence[str], deadline: Deadline) -> dict[str, str]:
    """The mode of each of ``paths`` in ``commit`` (``100644``, ``100755``), where it has them."""
    listing = run_git(
        top,
        ["--literal-pathspecs", "ls-tree", "-z", commit, "--", *paths],
        what=f"the Git repository {top}",
        deadline=deadline,
    )
    modes = {}
    for entry in listing.split("\0"):
        info, _, path = entry.partition("\t")
        if path and info.split(" ")[0] in ("100644", "100755"):
            modes[path] = info.split(" ")[0]
    return modes


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
    shown = target.shown_remote
    what = f"pushing {branch} to {shown}"
    kept = f"the promotion is committed ({made.commit[:12]} on {branch}) but not pushed"
    spelled = branch if ref == f"refs/heads/{branch}" else f"{branch}:{ref}"
    try:
        finished = _call(
            target.top,
            ["push", "--porcelain", "--", remote, f"{made.commit}:{ref}"],
            what=what,
            deadline=deadline,
            timeout=PUSH_TIMEOUT,
        )
    except RunInterruptedError as exc:
        raise RunInterruptedError(f"{exc}; {kept} (git push {shown} {spelled})") from None
    except (ConfigError, DeadlineExceededError) as exc:
        raise PromoterError(
            f"{exc}; {kept}", hint=f"push it by hand: git push {shown} {spelled}"
        ) from None
    if finished.returncode != 0:
        rejected = _rejection(finished.stdout)
        if rejected:  # the remote said no: pushing by hand would be refused the same way
            said = _remote_said(finished.stderr)
            if "[remote rejected]" in rejected:  # its rules or hooks, not another commit
                hint = "see what the remote said; the commit is there to push once it allows it"
            else:
                hint = f"the remote has another {ref.removeprefix('refs/heads/')}: " + (
                    "name another --branch"
                    if made.created
                    else f"git pull --rebase {shown}, then git push {shown} {spelled}"
                )
            raise PromoterError(f"{what}: {rejected}{said}; {kept}", hint=hint)
        reason = git_error_line(finished.stderr) or f"exit status {finished.returncode}"
        raise PromoterError(
            f"{what}: git failed: {reason}; {kept}",
            hint=f"push it by hand: git push {shown} {spelled}",
        )
    return replace(made, remote=shown, remote_ref=ref)


def shown_remote(remote: str) -> str:
    """A remote's name or URL (or text holding URLs) as messages show it: a URL's user and
    password, and its query, written ``***``."""
    return _URL_QUERY.sub(r"\g<url>?***", _URL_CREDENTIALS.sub(r"\g<scheme>***@", remote))


def _rejection(porcelain: bytes) -> str:
    """The remote's refusal from ``git push --porcelain`` output (``!<TAB>from:to<TAB>[rejected]
    (non-fast-forward)``), as one line; empty when none is there."""
    for line in porcelain.decode("utf-8", "replace").splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[0] == "!":
            return one_line(f"refused by the remote: {fields[2]}", 300)
    return ""


def _remote_said(stderr: bytes) -> str:
    """The remote's own first message (``remote: ...`` lines a hook or a forge prints), as
    `` (remote: ...)``; empty when it printed none."""
    for line in stderr.decode("utf-8", "replace").splitlines():
        text = line.strip()
        if text.startswith("remote:") and text.removeprefix("remote:").strip():
            return f" ({one_line(shown_remote(text), 200)})"
    return ""


def _check_remote_branch(top: Path, remote: str, ref: str, deadline: Deadline) -> None:
    """Refuse a new branch the remote holds already (a push would be refused after the commit).

    Raises:
        InputError: the remote has it.
        PromoterError: the remote cannot be asked (Git's line, no password); nothing written.
    """
    what = f"asking {shown_remote(remote)} for {ref}"
    try:
        found = run_git(
            top,
            ["ls-remote", "--heads", "--", remote, ref],
            what=what,
            deadline=deadline,
            timeout=PUSH_TIMEOUT,
        )
    except ConfigError as exc:
        raise PromoterError(f"{exc}; nothing was promoted", hint="check the remote") from None
    if found.strip():
        raise InputError(
            f"branch {ref.removeprefix('refs/heads/')} exists already on "
            f"{shown_remote(remote)}; name a new branch"
        )


def _check_new_branch(top: Path, branch: str, deadline: Deadline) -> None:
    """Refuse a branch name Git does not accept, or one that exists already.

    Raises:
        InputError: naming the branch.
    """
    what = f"the Git repository {top}"
    if branch.startswith("refs/"):
        raise InputError(f"--branch {branch!r}: name the branch without refs/heads/")
    if branch in ("HEAD", "@"):
        raise InputError(f"--branch {branch!r} is not a valid Git branch name (git branch says so)")
    too_long = any(len(part.encode()) > _LONGEST_REF_PART for part in branch.split("/"))
    if (
        branch.startswith("-")
        or "@{" in branch
        or too_long
        or _optional(top, ["check-ref-format", f"refs/heads/{branch}"], what, deadline) is None
    ):
        raise InputError(
            f"--branch {branch!r} is not a valid Git branch name (git check-ref-format)"
            + (f"; each part at most {_LONGEST_REF_PART} bytes" if too_long else "")
        )
    if _optional(top, ["rev-parse", "--verify", "-q", f"refs/heads/{branch}"], what, deadline):
        raise InputError(
            f"branch {branch} exists already in {top}; name a new branch (promote makes it from "
            "HEAD)"
        )
    # A name Git already resolves otherwise (a tag, origin/main, FETCH_HEAD, heads/x, tags/v1)
    # would make the new branch ambiguous: Git would go on resolving it to the other ref.
    if _optional(top, ["rev-parse", "--verify", "-q", "--end-of-options", branch], what, deadline):
        raise InputError(
            f"--branch {branch!r} already names something in Git (git rev-parse {branch}); name "
            "the branch so that Git cannot mistake it"
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
    """``path`` relative to the checkout's root, as Git names it (``.`` for the root itself), also
    through a link (``/tmp`` on macOS): as it resolves.

    Raises:
        InputError: the path is outside the checkout.
    """
    absolute = normal_path(path)
    for candidate in (absolute, absolute.resolve()):
        for root in (top, top.resolve()):
            if candidate.is_relative_to(root):
                return candidate.relative_to(root).as_posix() or "."
    raise InputError(
        f"{path} is outside the Git repository {top}; a promotion commit holds files of one "
        "repository"
    )
