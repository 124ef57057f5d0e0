"""An overlay's Git history: the commits that changed what it renders, and the images it deployed at
each, rendered by the real kustomize (kubectl kustomize) in a temporary worktree of a real Git
repository (examples/gitops, committed in tmp)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from promoter.deadline import Deadline
from promoter.errors import ConfigError
from promoter.gitops.history import (
    images_at,
    images_in_history,
    revisions_touching,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "gitops"
PROD = "222222222222.dkr.ecr.us-east-1.amazonaws.com"
CART = f"{PROD}/shop/cart"
OVERLAY = "infra/overlays/production"


def git(root: Path, *arguments: str) -> str:
    """Run git in ``root`` and return its output."""
    done = subprocess.run(
        ["git", "-C", str(root), *arguments], check=True, capture_output=True, text=True
    )
    return done.stdout


def commit(root: Path, message: str) -> str:
    """Commit everything in ``root``; the new commit's hash."""
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


def set_cart_tag(root: Path, tag: str) -> None:
    """Change the production overlay's cart tag, as promote does."""
    path = root / OVERLAY / "kustomization.yaml"
    text = path.read_text()
    current = text.split("newTag: ", 2)[1].split()[0]  # cart's entry comes first
    path.write_text(text.replace(f"newTag: {current}", f"newTag: {tag}", 1))


def worktrees(root: Path) -> list[str]:
    """The worktrees Git knows of in ``root`` (the main one included)."""
    return [line for line in git(root, "worktree", "list").splitlines() if line]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """examples/gitops as a Git repository with one commit; temporary folders under tmp_path."""
    for name in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{name}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{name}_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    root = tmp_path / "gitops"
    shutil.copytree(EXAMPLE, root)
    git(root, "init", "-q", "-b", "main")
    commit(root, "the example")
    return root


def deadline() -> Deadline:
    """A generous deadline for a test."""
    return Deadline.after(120)


def test_older_tags_are_found_at_their_revisions(repo: Path) -> None:
    """Three commits of an overlay's tag: each tag is found at the revision that deployed it."""
    first = git(repo, "rev-parse", "HEAD").strip()
    set_cart_tag(repo, "2.3.2")
    second = commit(repo, "promote cart 2.3.2")
    set_cart_tag(repo, "2.3.3")
    third = commit(repo, "promote cart 2.3.3")
    overlay = repo / OVERLAY

    revisions = revisions_touching(overlay, 3, deadline=deadline())
    found = images_in_history(overlay, 3, deadline=deadline())

    assert [r.commit for r in revisions] == [third, second, first]
    assert [r.subject for r in revisions] == [
        "promote cart 2.3.3",
        "promote cart 2.3.2",
        "the example",
    ]
    assert {
        image: [r.commit for r in found[image]] for image in found if image.startswith(CART)
    } == {
        f"{CART}:2.3.3": [third],
        f"{CART}:2.3.2": [second],
        f"{CART}:2.3.1": [first],
    }
    assert [r.commit for r in found[f"{PROD}/shop/checkout:1.8.0"]] == [third, second, first]


def test_count_limits_the_revisions(repo: Path) -> None:
    """Only the last ``count`` commits are read: the oldest tag is not among two revisions."""
    set_cart_tag(repo, "2.3.2")
    commit(repo, "promote cart 2.3.2")
    set_cart_tag(repo, "2.3.3")
    commit(repo, "promote cart 2.3.3")

    found = images_in_history(repo / OVERLAY, 2, deadline=deadline())

    assert f"{CART}:2.3.2" in found
    assert f"{CART}:2.3.1" not in found


def test_a_commit_to_a_referenced_base_counts(repo: Path) -> None:
    """A commit touching only a base the overlay names is a revision, and its image is found there."""
    deployment = repo / "infra/charts/cart/deployment.yaml"
    deployment.write_text(
        deployment.read_text().replace(
            "containers:",
            "initContainers:\n        - name: migrate\n          image: busybox:1.36\n      containers:",
            1,
        )
    )
    changed = commit(repo, "cart: a migration step")

    revisions = revisions_touching(repo / OVERLAY, 5, deadline=deadline())

    assert revisions[0].commit == changed
    assert "busybox:1.36" in images_at(revisions[0], repo / OVERLAY, deadline=deadline())
    assert "busybox:1.36" not in images_at(revisions[1], repo / OVERLAY, deadline=deadline())


def test_a_commit_to_an_unrelated_folder_does_not_count(repo: Path) -> None:
    """Commits touching only other paths (another overlay, docs) are not revisions of the overlay."""
    first = git(repo, "rev-parse", "HEAD").strip()
    (repo / "docs").mkdir()
    (repo / "docs/notes.md").write_text("notes\n")
    commit(repo, "docs")
    dev = repo / "infra/overlays/dev/kustomization.yaml"
    dev.write_text(dev.read_text().replace("2.4.0", "2.5.0"))
    commit(repo, "dev: cart 2.5.0")

    revisions = revisions_touching(repo / OVERLAY, 5, deadline=deadline())

    assert [r.commit for r in revisions] == [first]


def test_a_merged_branch_counts_as_its_merge(repo: Path) -> None:
    """Only the first-parent line is read: a merged branch's commits, never deployed, are its merge."""
    git(repo, "checkout", "-q", "-b", "feature")
    set_cart_tag(repo, "9.9.9")
    commit(repo, "try cart 9.9.9")
    set_cart_tag(repo, "2.3.2")
    commit(repo, "cart 2.3.2 after all")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "feature", "-m", "merge feature")

    found = images_in_history(repo / OVERLAY, 5, deadline=deadline())

    assert [r.subject for r in found[f"{CART}:2.3.2"]] == ["merge feature"]
    assert f"{CART}:9.9.9" not in found


def test_a_revision_that_does_not_render_raises(repo: Path) -> None:
    """An old commit whose overlay kustomize refuses raises, naming the commit; no worktree is left."""
    kustomization = repo / OVERLAY / "kustomization.yaml"
    good = kustomization.read_text()
    kustomization.write_text(good.replace("../../charts/cart", "../../charts/gone"))
    broken = commit(repo, "break the overlay")
    kustomization.write_text(good)
    commit(repo, "fix the overlay")

    with pytest.raises(ConfigError, match=rf"at commit {broken[:12]}: kustomize build .* failed"):
        images_in_history(repo / OVERLAY, 5, deadline=deadline())

    assert len(worktrees(repo)) == 1
    assert list((repo.parent / "scratch").iterdir()) == []


def test_an_overlay_missing_at_a_revision_raises(repo: Path) -> None:
    """A commit at which the overlay folder does not exist raises instead of giving no images."""
    moved = repo / "infra/overlays/staging"
    shutil.copytree(repo / OVERLAY, moved)
    commit(repo, "staging")

    with pytest.raises(
        ConfigError, match=r"overlay .*staging did not exist at commit [0-9a-f]{12}"
    ):
        images_at(git(repo, "rev-parse", "HEAD~1").strip(), moved, deadline=deadline())
    assert len(worktrees(repo)) == 1


def test_no_worktree_is_left_after_success(repo: Path) -> None:
    """The temporary worktree and its folder are removed once the overlay is rendered."""
    head = git(repo, "rev-parse", "HEAD").strip()

    images = images_at(head, repo / OVERLAY, deadline=deadline())

    assert f"{CART}:2.3.1" in images
    assert len(worktrees(repo)) == 1
    assert list((repo.parent / "scratch").iterdir()) == []


# Run in a child process: an interrupt stops every child process for the rest of the run.
_INTERRUPTED_RENDER = """
import sys
from pathlib import Path
from promoter import process
from promoter.deadline import Deadline
from promoter.errors import RunInterruptedError
from promoter.gitops import history

real_render = history.render_overlay

def interrupted_render(overlay, **kwargs):
    process.stop_children()  # Ctrl-C as kustomize starts: the CLI's handler does this
    return real_render(overlay, **kwargs)

history.render_overlay = interrupted_render
try:
    history.images_at("HEAD", Path(sys.argv[1]), deadline=Deadline.after(60))
except RunInterruptedError as exc:
    print("interrupted:", exc)
"""


def test_no_worktree_is_left_after_an_interrupt(repo: Path) -> None:
    """Interrupted while rendering, when Git can no longer run: the worktree is still removed."""
    scratch = repo.parent / "scratch"
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_RENDER, str(repo / OVERLAY)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TMPDIR": str(scratch)},
    )

    assert done.stdout.startswith("interrupted: kustomize build")
    assert len(worktrees(repo)) == 1
    assert "prunable" not in git(repo, "worktree", "list", "--porcelain")
    assert list(scratch.iterdir()) == []


def test_an_unknown_commit_raises(repo: Path) -> None:
    """A commit the repository does not hold raises one line, and leaves no worktree behind."""
    with pytest.raises(ConfigError, match=r"checking out commit 0{40} .*: git failed: fatal: "):
        images_at("0" * 40, repo / OVERLAY, deadline=deadline())
    assert len(worktrees(repo)) == 1
    assert list((repo.parent / "scratch").iterdir()) == []


def test_not_a_git_repository_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An overlay outside any Git repository: a clear error, for the history and for a revision."""
    root = tmp_path / "plain"
    shutil.copytree(EXAMPLE, root)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))

    message = r".* is not in a Git repository, so reading the history of overlay .* is not possible"
    with pytest.raises(ConfigError, match=message):
        revisions_touching(root / OVERLAY, 5, deadline=deadline())
    with pytest.raises(ConfigError, match=message):
        images_at("HEAD", root / OVERLAY, deadline=deadline())


def test_git_missing_raises(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without git on PATH: one line saying to install Git."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    with pytest.raises(ConfigError, match=r"git is not on PATH.*install Git"):
        revisions_touching(repo / OVERLAY, 5, deadline=deadline())


def test_a_shallow_clone_short_of_history_raises(repo: Path, tmp_path: Path) -> None:
    """A shallow clone holding fewer commits than asked raises, saying to fetch the whole history."""
    set_cart_tag(repo, "2.3.2")
    commit(repo, "promote cart 2.3.2")
    shallow = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", repo.as_uri(), str(shallow)],
        check=True,
        capture_output=True,
    )

    assert len(revisions_touching(shallow / OVERLAY, 1, deadline=deadline())) == 1
    with pytest.raises(
        ConfigError, match=r"shallow clone: it holds 1 of the 2 commits.*fetch-depth: 0"
    ):
        revisions_touching(shallow / OVERLAY, 2, deadline=deadline())


def test_fewer_commits_than_asked_is_the_whole_history(repo: Path) -> None:
    """A full repository with fewer commits than asked gives them all, without an error."""
    assert len(revisions_touching(repo / OVERLAY, 5, deadline=deadline())) == 1


def test_a_path_outside_the_repository_raises(repo: Path, tmp_path: Path) -> None:
    """An overlay rendering from a folder outside its repository: its history cannot be read."""
    outside = tmp_path / "outside-base"
    shutil.copytree(repo / "infra/charts/cart", outside)
    kustomization = repo / OVERLAY / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("../../charts/cart", str(outside)))
    commit(repo, "cart from outside")

    with pytest.raises(
        ConfigError, match=r"renders from .*outside-base, which is outside its Git repository"
    ):
        revisions_touching(repo / OVERLAY, 5, deadline=deadline())
