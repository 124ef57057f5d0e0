"""Promotion as a reviewed Git change (issue 13): promote --commit/--branch/--push, history, --version,
--dry-run. Real git (a repository made here, a bare remote), real kustomize, real registries."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import PROD, CliRun, GitOpsRepo
from tests.test_gitops_cli import _use_hook_component
from tests.test_promote import _seed_dev


def git(root: Path, *arguments: str) -> str:
    """Run git in ``root`` and return its output."""
    done = subprocess.run(
        ["git", "-C", str(root), *arguments], check=True, capture_output=True, text=True
    )
    return done.stdout


@pytest.fixture
def repo(gitops: GitOpsRepo, monkeypatch: pytest.MonkeyPatch) -> GitOpsRepo:
    """The GitOps repository under Git, one commit, dev's images pushed; a committer is known."""
    for name in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{name}_NAME", "CI")
        monkeypatch.setenv(f"GIT_{name}_EMAIL", "ci@example.com")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    _seed_dev(gitops)
    git(gitops.root, "init", "-q", "-b", "main")
    git(gitops.root, "add", "-A")
    git(gitops.root, "commit", "-q", "-m", "the example")
    return gitops


KUSTOMIZATION = "infra/overlays/production/kustomization.yaml"


def _production_list(repo: GitOpsRepo) -> str:
    """promoter-images.txt as production's overlay renders it before any promotion (sorted)."""
    return "".join(
        f"{PROD}/{repo.repo(module)}:{tag}\n"
        for module, tag in (("cart", "2.3.1"), ("catalog", "3.0.2"), ("checkout", "1.8.0"))
    )


def _files_of(root: Path, commit: str) -> list[str]:
    """The files a commit changed."""
    return git(root, "show", "--name-only", "--format=", commit).split()


def test_commit_holds_exactly_the_edit_with_trailers(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """--commit makes one commit on HEAD with just the kustomization; the message names module,
    environments, versions and digest in trailers; something else staged stays staged, out of it."""
    (repo.root / "notes.txt").write_text("unrelated\n")
    git(repo.root, "add", "notes.txt")
    head = git(repo.root, "rev-parse", "HEAD").strip()
    result = cli("promote", repo.repo("cart"), "--to", "production", "--commit")
    assert result.code == 0, result.err
    commit = git(repo.root, "rev-parse", "HEAD").strip()
    assert git(repo.root, "rev-parse", "HEAD~1").strip() == head
    assert _files_of(repo.root, commit) == [KUSTOMIZATION]
    message = git(repo.root, "log", "-1", "--format=%B")
    assert message.startswith(f"promote {repo.repo('cart')} to production: 2.3.1 -> 2.4.0\n")
    trailers = git(repo.root, "log", "-1", "--format=%(trailers:only,unfold)").split("\n")
    digest = git(repo.root, "show", f"{commit}:{KUSTOMIZATION}")  # the tag written, no pin
    assert "newTag: 2.4.0" in digest
    assert "Promoted-To: production" in trailers
    assert "Promoted-From: dev" in trailers
    promoted = [t for t in trailers if t.startswith("Promoted-Digest: ")]
    assert len(promoted) == 1
    module, version, sha, _, previous = promoted[0].removeprefix("Promoted-Digest: ").split()
    assert (module, version, previous) == (repo.repo("cart"), "2.4.0", "2.3.1")
    assert sha.startswith("sha256:")
    assert git(repo.root, "status", "--porcelain") == "A  notes.txt\n"
    assert f"committed {commit[:12]} on branch main" in result.err


def test_commit_includes_the_hook_list_it_rewrote(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """With the hook component, the commit holds the kustomization and promoter-images.txt."""
    _use_hook_component(repo, _production_list(repo))
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "hook component")
    result = cli("promote", repo.repo("cart"), "--to", "production", "--commit")
    assert result.code == 0, result.err
    changed = _files_of(repo.root, "HEAD")
    assert KUSTOMIZATION in changed
    assert any(name.endswith("promoter-images.txt") for name in changed)
    assert len(changed) == 2
    assert git(repo.root, "status", "--porcelain") == ""


def test_branch_commit_leaves_the_checkout_as_it_was(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """--branch makes the commit on a new branch from HEAD; HEAD, its branch and the files stay."""
    head = git(repo.root, "rev-parse", "HEAD").strip()
    before = (repo.root / KUSTOMIZATION).read_text()
    result = cli("promote", repo.repo("cart"), "--to", "production", "--branch", "promote/cart")
    assert result.code == 0, result.err
    assert git(repo.root, "rev-parse", "HEAD").strip() == head
    assert git(repo.root, "symbolic-ref", "--short", "HEAD").strip() == "main"
    assert (repo.root / KUSTOMIZATION).read_text() == before
    assert git(repo.root, "status", "--porcelain") == ""
    assert git(repo.root, "rev-parse", "promote/cart~1").strip() == head
    assert _files_of(repo.root, "promote/cart") == [KUSTOMIZATION]
    assert "newTag: 2.4.0" in git(repo.root, "show", f"promote/cart:{KUSTOMIZATION}")
    assert "git switch promote/cart" in result.err
    # the same HEAD serves a second promotion on another branch
    repo.seed(repo.dev, "checkout", "1.9.0")
    again = cli(
        "promote",
        repo.repo("checkout"),
        "--to",
        "production",
        "--version",
        "1.9.0",
        "--branch",
        "b2",
    )
    assert again.code == 0, again.err
    assert git(repo.root, "rev-parse", "b2~1").strip() == head
    assert _files_of(repo.root, "b2") == [KUSTOMIZATION]


def test_push_sends_the_branch_to_a_bare_remote(
    repo: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """--push sends the new branch to the remote (origin by default), and --commit --push the
    current branch; -o json names the commit, the branch and the remote."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo.root, "remote", "add", "origin", str(remote))
    git(repo.root, "push", "-q", "origin", "main")
    result = cli(
        "promote",
        repo.repo("cart"),
        "--to",
        "production",
        "--branch",
        "p/cart",
        "--push",
        "-o",
        "json",
    )
    assert result.code == 0, result.err
    document = json.loads(result.out)
    made = document["commit"]
    assert made["branch"] == "p/cart"
    assert made["createdBranch"] is True
    assert made["pushedTo"] == "origin"
    assert git(remote, "rev-parse", "p/cart").strip() == made["commit"]
    repo.seed(repo.dev, "checkout", "1.9.0")
    result = cli(
        "promote",
        repo.repo("checkout"),
        "--to",
        "production",
        "--version",
        "1.9.0",
        "--commit",
        "--push",
    )
    assert result.code == 0, result.err
    assert git(remote, "rev-parse", "main").strip() == git(repo.root, "rev-parse", "HEAD").strip()


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_failed_push_keeps_the_commit_and_shows_no_password(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A push that fails exits 1 saying the commit was made and how to push it; the token in the
    remote's URL (as a password or in its query) appears nowhere."""
    url = f"http://x-access-token:s3cr3t-t0ken@127.0.0.1:{_closed_port()}/gitops.git?k=s3cr3t"
    git(repo.root, "remote", "add", "origin", url)
    result = cli("promote", repo.repo("cart"), "--to", "production", "--commit", "--push")
    assert result.code == 1
    assert "s3cr3t" not in result.err + result.out
    assert "not pushed" in result.err
    assert "git push origin main" in result.err
    assert "promote" in git(repo.root, "log", "-1", "--format=%s")
    # a new branch is asked for on the remote before anything is written: nothing is
    before = git(repo.root, "rev-parse", "HEAD")
    repo.seed(repo.dev, "checkout", "1.9.0")
    for remote, code, says in ((url, 2, "no Git remote"), ("origin", 1, "nothing was promoted")):
        result = cli(
            "promote",
            repo.repo("checkout"),
            "--to",
            "production",
            "--version",
            "1.9.0",
            "--branch",
            "p",
            f"--push={remote}",
        )
        assert result.code == code, result.err
        assert says in result.err
        assert "s3cr3t" not in result.err + result.out
        assert git(repo.root, "rev-parse", "HEAD") == before
        assert git(repo.root, "branch", "--list", "p") == ""


@pytest.mark.parametrize(
    ("prepare", "arguments", "expected"),
    [
        pytest.param(
            lambda root: (root / KUSTOMIZATION).write_text(
                (root / KUSTOMIZATION).read_text() + "# mine\n"
            ),
            ["--commit"],
            "has changes of its own",
            id="uncommitted-edit",
        ),
        pytest.param(
            lambda root: git(root, "branch", "taken"),
            ["--branch", "taken"],
            "exists already",
            id="branch-taken",
        ),
        pytest.param(lambda _root: None, ["--branch", "bad..name"], "not a valid", id="bad-name"),
        pytest.param(lambda _root: None, ["--push"], "no Git remote 'origin'", id="no-remote"),
        pytest.param(
            lambda root: git(root, "checkout", "-q", "--detach"),
            ["--commit", "--push"],
            "detached",
            id="detached-push",
        ),
        pytest.param(lambda _root: None, ["--commit", "--dry-run"], "--dry-run", id="dry-commit"),
    ],
)
def test_git_refusals_exit_2_and_write_nothing(
    repo: GitOpsRepo,
    cli: Callable[..., CliRun],
    prepare: Callable[[Path], object],
    arguments: list[str],
    expected: str,
) -> None:
    """Whatever Git would refuse is checked before a file is written: one line, exit 2, the
    kustomization as it was, no commit."""
    prepare(repo.root)
    before = (repo.root / KUSTOMIZATION).read_text()
    head = git(repo.root, "rev-parse", "HEAD").strip()
    result = cli("promote", repo.repo("cart"), "--to", "production", *arguments)
    assert result.code == 2, result.err
    assert expected in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert (repo.root / KUSTOMIZATION).read_text() == before
    assert git(repo.root, "rev-parse", "HEAD").strip() == head


def test_no_identity_is_refused_before_writing(
    repo: GitOpsRepo, cli: Callable[..., CliRun], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without user.email/name, --commit says how to set them and writes nothing."""
    for name in ("AUTHOR", "COMMITTER"):
        monkeypatch.delenv(f"GIT_{name}_NAME")
        monkeypatch.delenv(f"GIT_{name}_EMAIL")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "empty-gitconfig"))
    monkeypatch.setenv("EMAIL", "")
    before = (repo.root / KUSTOMIZATION).read_text()
    result = cli("promote", repo.repo("cart"), "--to", "production", "--commit")
    assert result.code == 2, result.err
    assert "user.email" in result.err
    assert (repo.root / KUSTOMIZATION).read_text() == before


def test_a_commit_that_fails_puts_the_files_back(
    repo: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """A commit Git refuses after the edit was written (signing with a program that fails) leaves
    the kustomization as it was and HEAD where it was."""
    failing = tmp_path / "no-gpg"
    failing.write_text("#!/bin/sh\necho 'gpg: signing failed: no key' >&2\nexit 2\n")
    failing.chmod(0o755)
    git(repo.root, "config", "commit.gpgSign", "true")
    git(repo.root, "config", "gpg.program", str(failing))
    before = (repo.root / KUSTOMIZATION).read_text()
    head = git(repo.root, "rev-parse", "HEAD").strip()
    result = cli("promote", repo.repo("cart"), "--to", "production", "--commit")
    assert result.code != 0
    assert "git failed" in result.err
    assert (repo.root / KUSTOMIZATION).read_text() == before
    assert git(repo.root, "rev-parse", "HEAD").strip() == head
    assert git(repo.root, "status", "--porcelain") == ""


def test_history_lists_promotions_newest_first(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """history ENV lists each promotion commit's module, version, short digest and commit, also
    one merged from a branch; MODULE filters; -o json carries the full values."""
    assert cli("promote", repo.repo("cart"), "--to", "production", "--commit").code == 0
    first = git(repo.root, "rev-parse", "HEAD").strip()
    repo.seed(repo.dev, "checkout", "1.9.0")
    result = cli(
        "promote",
        repo.repo("checkout"),
        "--to",
        "production",
        "--version",
        "1.9.0",
        "--branch",
        "c",
    )
    assert result.code == 0, result.err
    git(repo.root, "merge", "-q", "--no-ff", "-m", "Merge pull request #7", "c")
    result = cli("history", "production")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split()[:4] == ["DATE", "(UTC)", "MODULE", "VERSION"]
    assert repo.repo("checkout") in lines[1]
    assert repo.repo("cart") in lines[2]
    assert "2.4.0" in lines[2]
    assert "2.3.1" in lines[2]
    assert first[:12] in lines[2]
    only = cli("history", "production", repo.repo("cart"), "-o", "json")
    records = json.loads(only.out)["promotions"]
    assert [r["module"] for r in records] == [repo.repo("cart")]
    assert records[0]["commit"] == first
    assert records[0]["digest"].startswith("sha256:")
    assert records[0]["source"] == "dev"
    assert cli("history", "dev").err.startswith("no promotion to dev recorded in Git")
    unknown = cli("history", "staging")
    assert unknown.code == 2
    assert "unknown environment 'staging'" in unknown.err


def test_history_outside_git_is_one_line(gitops: GitOpsRepo, cli: Callable[..., CliRun]) -> None:
    """history in a folder that is no Git checkout: one line, exit 2."""
    result = cli("history", "production")
    assert result.code == 2
    assert "not in a Git repository" in result.err


def test_version_promotes_an_older_tag_the_source_holds(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """--version writes a tag the source registry holds though the source runs another."""
    repo.seed(repo.dev, "cart", "2.3.5")
    result = cli("promote", repo.repo("cart"), "--to", "production", "--version", "2.3.5")
    assert result.code == 0, result.err
    assert "newTag: 2.3.5" in (repo.root / KUSTOMIZATION).read_text()


def test_version_rolls_back_to_what_only_the_target_holds(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A version the source registry no longer has but the target's does is a rollback: written,
    committed with the target as its origin; a sync then has nothing to copy."""
    digest = repo.seed(repo.prod, "cart", "2.2.0")
    result = cli(
        "promote",
        repo.repo("cart"),
        "--to",
        "production",
        "--version",
        "2.2.0",
        "--commit",
        "-o",
        "json",
    )
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["source"] == "production"
    assert document["modules"][0]["digest"] == digest
    assert "newTag: 2.2.0" in (repo.root / KUSTOMIZATION).read_text()
    trailers = git(repo.root, "log", "-1", "--format=%(trailers:only,unfold)")
    assert f"Promoted-Digest: {repo.repo('cart')} 2.2.0 {digest} from 2.3.1" in trailers
    plan = cli("plan", "production", "-o", "json")
    cart = [i for i in plan.json()["images"] if "cart" in str(i["image"])]  # type: ignore[union-attr]
    assert cart[0]["status"] == "present"


def test_version_by_digest_and_refusals(repo: GitOpsRepo, cli: Callable[..., CliRun]) -> None:
    """--version takes a digest (written as a pin); a version neither registry holds exits 1 and
    writes nothing; --version with two modules or --all exits 2."""
    digest = repo.seed(repo.dev, "cart", "2.3.9")
    before = (repo.root / KUSTOMIZATION).read_text()
    missing = cli("promote", repo.repo("cart"), "--to", "production", "--version", "9.9.9")
    assert missing.code == 1
    assert "neither dev's nor production's registry has" in missing.err
    assert (repo.root / KUSTOMIZATION).read_text() == before
    two = cli(
        "promote",
        repo.repo("cart"),
        repo.repo("checkout"),
        "--to",
        "production",
        "--version",
        "2.3.9",
    )
    assert two.code == 2
    assert "exactly one module" in two.err
    bad = cli("promote", repo.repo("cart"), "--to", "production", "--version", "not a tag")
    assert bad.code == 2
    pinned = cli("promote", repo.repo("cart"), "--to", "production", "--version", digest)
    assert pinned.code == 0, pinned.err
    assert f"digest: {digest}" in (repo.root / KUSTOMIZATION).read_text()


def test_dry_run_prints_the_diff_and_writes_nothing(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """--dry-run prints the same diff a promotion then writes, and leaves every file untouched,
    the hook list included."""
    _use_hook_component(repo, _production_list(repo))
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "hook component")
    dry = cli("promote", repo.repo("cart"), "--to", "production", "--dry-run")
    assert dry.code == 0, dry.err
    assert "dry run: nothing was written" in dry.err
    assert git(repo.root, "status", "--porcelain") == ""
    assert "+    newTag: 2.4.0" in dry.out
    assert "promoter-images.txt" in dry.out
    real = cli("promote", repo.repo("cart"), "--to", "production")
    assert real.code == 0, real.err
    assert real.out == dry.out


def test_dry_run_refuses_what_the_real_run_refuses(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """An edit that would not change what the target renders (its entry applies to no image) is
    refused by the dry run too, which renders the edited copy: exit 2, nothing written."""
    kustomization = repo.root / KUSTOMIZATION
    kustomization.write_text(
        kustomization.read_text().replace("  - name: cart\n", "  - name: cart-v1\n")
    )
    git(repo.root, "commit", "-qam", "an entry that applies nowhere")
    before = kustomization.read_text()
    dry = cli("promote", repo.repo("cart"), "--to", "production", "--dry-run")
    assert dry.code == 2, dry.err
    assert "would not change what it runs" in dry.err
    assert kustomization.read_text() == before
    real = cli("promote", repo.repo("cart"), "--to", "production")
    assert real.code == 2, real.err
    assert real.err == dry.err


def test_python_callers_commit_and_read_history(repo: GitOpsRepo) -> None:
    """The Python API: promote(write_back=WriteBack(...)) commits on a branch; history() reads
    it back from a checkout of that branch."""
    import promoter  # noqa: PLC0415 - the public API as a caller imports it

    config = repo.root / "promoter.yaml"
    promotion = promoter.promote(
        repo.repo("cart"),
        to="production",
        config=config,
        write_back=promoter.WriteBack(branch="py"),
    )
    assert promotion.commit is not None
    assert promotion.commit.branch == "py"
    git(repo.root, "checkout", "-q", "py")
    [record] = promoter.history("production", config=config).records
    assert isinstance(record, promoter.PromotionRecord)
    assert (record.module, record.version, record.previous) == (repo.repo("cart"), "2.4.0", "2.3.1")
    assert record.commit == promotion.commit.commit


def test_commit_push_goes_to_the_upstream_branch(
    repo: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """--commit --push on a branch tracking another name upstream (local deploy, remote main)
    updates that upstream branch, not a new one named after the local branch."""
    remote = tmp_path / "upstream.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo.root, "remote", "add", "upstream", str(remote))
    git(repo.root, "push", "-q", "upstream", "main")
    git(repo.root, "checkout", "-q", "-b", "deploy", "--track", "upstream/main")
    result = cli("promote", repo.repo("cart"), "--to", "production", "--commit", "--push")
    assert result.code == 0, result.err
    assert "pushed to upstream" in result.err
    assert git(remote, "rev-parse", "main").strip() == git(repo.root, "rev-parse", "HEAD").strip()
    assert git(remote, "branch", "--list", "deploy") == ""


def test_a_locked_index_keeps_the_commit_and_the_files(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """HEAD moved to the promotion commit stays there with the files when only refreshing the index
    fails (another Git holds index.lock): exit 0 and a warning with the command to refresh it;
    before, the files were put back under a commit that promoted them."""
    (repo.root / ".git" / "index.lock").write_text("")
    result = cli("promote", repo.repo("cart"), "--to", "production", "--commit")
    assert result.code == 0, result.err
    assert " reset -q -- " in result.err
    assert "newTag: 2.4.0" in (repo.root / KUSTOMIZATION).read_text()
    assert "newTag: 2.4.0" in git(repo.root, "show", f"HEAD:{KUSTOMIZATION}")


def test_an_edit_left_uncommitted_by_an_earlier_promote_is_refused(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """promote, then promote --commit: the second has nothing to change, yet the file differs from
    HEAD; it is refused (exit 2) rather than saying "nothing to commit" over an uncommitted edit."""
    assert cli("promote", repo.repo("cart"), "--to", "production").code == 0
    result = cli("promote", repo.repo("cart"), "--to", "production", "--commit")
    assert result.code == 2
    assert "has changes of its own" in result.err
    result = cli("promote", repo.repo("cart"), "--to", "production", "--branch", "b")
    assert result.code == 2


def test_a_stale_hook_list_alone_is_committed_and_a_reordered_one_is_kept(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """With every version in place, a hook list that lacks an image is rewritten and committed (no
    promotion record); a list naming the same images in another order is left as written."""
    images = _production_list(repo).splitlines()
    listed = _use_hook_component(repo, "\n".join(images[::-1]) + "\n")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "hook component, listed in another order")
    head = git(repo.root, "rev-parse", "HEAD")
    result = cli("promote", repo.repo("checkout"), "--to", "production", "--commit")
    assert result.code == 0, result.err
    assert git(repo.root, "rev-parse", "HEAD") == head
    assert "nothing to commit" in result.err
    listed.write_text("".join(f"{image}\n" for image in images[1:]))
    git(repo.root, "commit", "-qam", "a stale list")
    result = cli("promote", repo.repo("checkout"), "--to", "production", "--commit")
    assert result.code == 0, result.err
    assert _files_of(repo.root, "HEAD") == [listed.relative_to(repo.root).as_posix()]
    assert "promoter-images.txt" in git(repo.root, "log", "-1", "--format=%s")
    assert git(repo.root, "status", "--porcelain") == ""


def test_the_commit_holds_the_checked_text_not_a_concurrent_write(repo: GitOpsRepo) -> None:
    """make_commit commits the text given (the edit that was checked), whatever the working tree
    holds by then: another writer's line appended meanwhile stays out of the commit."""
    from promoter.deadline import Deadline  # noqa: PLC0415
    from promoter.gitops.git import make_commit, move_ref, prepare_commit  # noqa: PLC0415

    path = repo.root / KUSTOMIZATION
    target = prepare_commit(
        [path], branch=None, push=False, remote=None, deadline=Deadline.after(30)
    )
    checked = path.read_text().replace("newTag: 2.3.1", "newTag: 2.4.0")
    path.write_text(checked + "# written by someone else meanwhile\n")
    commit = make_commit(target, {KUSTOMIZATION: checked}, "promote", deadline=Deadline.after(30))
    move_ref(target, commit, deadline=Deadline.after(30))
    assert git(repo.root, "show", f"HEAD:{KUSTOMIZATION}") == checked
    assert git(repo.root, "status", "--porcelain") == f" M {KUSTOMIZATION}\n"


def test_a_branch_the_remote_has_is_refused_before_anything_is_written(
    repo: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """--branch B --push where the remote has B already: exit 2 before any commit (a push would be
    refused after it)."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo.root, "remote", "add", "origin", str(remote))
    git(repo.root, "push", "-q", "origin", "main:promote/cart")
    result = cli(
        "promote", repo.repo("cart"), "--to", "production", "--branch", "promote/cart", "--push"
    )
    assert result.code == 2, result.err
    assert "exists already on origin" in result.err
    assert git(repo.root, "branch", "--list", "promote/cart") == ""


def test_a_push_the_remote_rejects_says_why_and_what_to_do(
    repo: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """--commit --push on a branch behind its remote: exit 1 with the remote's reason (not a
    hint to repeat the same push) and that the commit stays."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo.root, "remote", "add", "origin", str(remote))
    git(repo.root, "push", "-q", "-u", "origin", "main")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "-b", "main", str(remote), str(other))
    (other / "notes.txt").write_text("someone else's change\n")
    git(other, "add", "-A")
    git(other, "commit", "-q", "-m", "another change")
    git(other, "push", "-q", "origin", "main")
    result = cli("promote", repo.repo("cart"), "--to", "production", "--commit", "--push")
    assert result.code == 1
    assert "refused by the remote" in result.err
    assert "git pull --rebase origin" in result.err
    assert "is committed" in result.err


@pytest.mark.parametrize(
    "branch", ["@{-1}", "refs/heads/x", "b" * 201, "a/../b"], ids=["at", "refs", "long", "dots"]
)
def test_branch_names_git_would_refuse_later_are_refused_first(
    repo: GitOpsRepo, cli: Callable[..., CliRun], branch: str
) -> None:
    """A branch name Git expands, nests or cannot store is refused before the edit (exit 2)."""
    git(repo.root, "branch", "previous")
    before = (repo.root / KUSTOMIZATION).read_text()
    result = cli("promote", repo.repo("cart"), "--to", "production", f"--branch={branch}")
    assert result.code == 2, result.err
    assert "--branch" in result.err
    assert (repo.root / KUSTOMIZATION).read_text() == before


def test_push_read_as_the_remote_is_named(repo: GitOpsRepo, cli: Callable[..., CliRun]) -> None:
    """`promote --push MODULE --to ENV` took MODULE as the remote: the message says so."""
    result = cli("promote", "--push", repo.repo("cart"), "--to", "production")
    assert result.code == 2
    assert "was read as --push's REMOTE" in result.err


def test_git_environment_variables_do_not_redirect_the_commit(
    repo: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIT_DIR and GIT_WORK_TREE naming another repository do not move promoter's Git: the commit
    goes into promoter.yaml's checkout."""
    other = tmp_path / "other"
    git(tmp_path, "init", "-q", str(other))
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    result = cli("promote", repo.repo("cart"), "--to", "production", "--commit")
    assert result.code == 0, result.err
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_WORK_TREE")
    assert "promote" in git(repo.root, "log", "-1", "--format=%s")


def test_version_tag_and_digest_that_disagree_are_refused(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """--version TAG@DIGEST where the registry's TAG holds other content, or is absent, is exit 2
    naming both; nothing is written."""
    other = repo.seed(repo.dev, "cart", "2.3.9")
    before = (repo.root / KUSTOMIZATION).read_text()
    for version in (f"2.4.0@{other}", f"9.9.9@{other}"):
        result = cli("promote", repo.repo("cart"), "--to", "production", "--version", version)
        assert result.code == 2, result.err
        assert "give the tag or the digest alone" in result.err
        assert (repo.root / KUSTOMIZATION).read_text() == before
    agreed = cli("promote", repo.repo("cart"), "--to", "production", "--version", f"2.3.9@{other}")
    assert agreed.code == 0, agreed.err


def test_version_of_a_module_nobody_deploys_is_an_input_error(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """--version for a module neither environment deploys: exit 2, naming the known ones."""
    result = cli("promote", repo.repo("nothere"), "--to", "production", "--version", "1.0")
    assert result.code == 2
    assert "neither dev nor production deploys it" in result.err


def test_commit_then_failed_sync_says_how_to_undo_the_commit(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """--commit --sync whose sync fails says the promotion is committed and to git revert it, not
    to check out files that are clean."""
    repo.prod.stop()
    try:
        result = cli(
            "--retries",
            "0",
            "promote",
            repo.repo("cart"),
            "--to",
            "production",
            "--commit",
            "--sync",
        )
    finally:
        repo.prod.start()
    assert result.code == 1
    assert "git revert" in result.err
    assert "git checkout --" not in result.err


def _promotion_commit(repo: GitOpsRepo, version: str, previous: str, *, branch: str = "") -> str:
    """Commit a change of production's cart tag with the message promote writes; its hash."""
    from promoter.gitops.promotions import PromotedImage, promotion_message  # noqa: PLC0415

    path = repo.root / KUSTOMIZATION
    path.write_text(path.read_text().replace(f"newTag: {previous}", f"newTag: {version}", 1))
    message = promotion_message(
        "production", "dev", [PromotedImage(repo.repo("cart"), version, None, previous)]
    )
    git(repo.root, "commit", "-qam", message)
    return git(repo.root, "rev-parse", "HEAD").strip()


def _history(cli: Callable[..., CliRun], *arguments: str) -> list[dict[str, object]]:
    result = cli("history", "production", *arguments, "-o", "json")
    assert result.code == 0, result.err
    return list(json.loads(result.out)["promotions"])


def test_history_follows_merges_in_the_order_they_landed(
    repo: GitOpsRepo, cli: Callable[..., CliRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A promotion committed on a branch early and merged late is listed where it landed (before
    a later commit made on main), with the merge's date and commit."""
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-01-01T09:00:00Z")
    git(repo.root, "checkout", "-q", "-b", "pr")
    early = _promotion_commit(repo, "2.4.0", "2.3.1")
    git(repo.root, "checkout", "-q", "main")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-01-01T09:30:00Z")
    (repo.root / "README.md").write_text("unrelated\n")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "unrelated")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-01-01T10:00:00Z")
    git(repo.root, "merge", "-q", "--no-ff", "-m", "Merge pull request #1", "pr")
    merge = git(repo.root, "rev-parse", "HEAD").strip()
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-01-01T11:00:00Z")
    late = _promotion_commit(repo, "2.5.0", "2.4.0")
    records = _history(cli)
    assert [r["commit"] for r in records] == [late, early]
    assert records[1]["merge"] == merge
    assert records[1]["mergedAt"] == "2026-01-01T10:00:00+00:00"
    assert records[1]["committedAt"] == "2026-01-01T09:00:00+00:00"


def test_history_reads_squash_merges_and_marks_reverts(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """git merge --squash (messages indented, two promotions in one commit) lists both; a
    promotion undone by git revert names the revert."""
    git(repo.root, "checkout", "-q", "-b", "pr")
    _promotion_commit(repo, "2.4.0", "2.3.1")
    _promotion_commit(repo, "2.5.0", "2.4.0")
    git(repo.root, "checkout", "-q", "main")
    git(repo.root, "merge", "-q", "--squash", "pr")
    git(repo.root, "commit", "-q", "--no-edit")
    squash = git(repo.root, "rev-parse", "HEAD").strip()
    records = _history(cli)
    assert [(r["version"], r["commit"]) for r in records] == [("2.5.0", squash), ("2.4.0", squash)]
    promoted = _promotion_commit(repo, "2.6.0", "2.5.0")
    git(repo.root, "revert", "--no-edit", promoted)
    revert = git(repo.root, "rev-parse", "HEAD").strip()
    records = _history(cli)
    assert records[0]["version"] == "2.6.0"
    assert records[0]["revertedBy"] == revert
    table = cli("history", "production")
    assert f"reverted by {revert[:12]}" in table.out


def test_history_of_an_environment_reads_only_its_overlay(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Another application's promotion commit to an environment of the same name, changing only
    its own folder, is not listed (a monorepo)."""
    from promoter.gitops.promotions import PromotedImage, promotion_message  # noqa: PLC0415

    other = repo.root / "team-b" / "production"
    other.mkdir(parents=True)
    (other / "kustomization.yaml").write_text("images: []\n")
    git(repo.root, "add", "-A")
    git(
        repo.root,
        "commit",
        "-qm",
        promotion_message("production", "dev", [PromotedImage("ops/worker", "0.9.0", None, None)]),
    )
    ours = _promotion_commit(repo, "2.4.0", "2.3.1")
    assert [r["commit"] for r in _history(cli)] == [ours]


def test_history_counts_promotions_not_commits_that_quote_them(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """--limit counts promotions: newer commits whose message only quotes a trailer do not push
    the real ones out; more than the limit is said."""
    first = _promotion_commit(repo, "2.4.0", "2.3.1")
    second = _promotion_commit(repo, "2.5.0", "2.4.0")
    for n in range(3):
        path = repo.root / KUSTOMIZATION
        path.write_text(path.read_text() + f"# note {n}\n")
        git(repo.root, "commit", "-qam", f"docs\n\nPromoted-To: production is what we write {n}")
    assert [r["commit"] for r in _history(cli, "--limit", "2")] == [second, first]
    result = cli("history", "production", "--limit", "1")
    assert "--limit N shows more" in result.err


def test_history_escapes_forged_trailers_and_warns_on_a_shallow_clone(
    repo: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Terminal escapes in a hand-written trailer are printed escaped; a shallow clone says its
    history may be short."""
    path = repo.root / KUSTOMIZATION
    path.write_text(path.read_text() + "# forged\n")
    git(
        repo.root,
        "commit",
        "-qam",
        "forged\n\nPromoted-To: production\nPromoted-From: \x1b[2Jdev\n"
        f"Promoted-Digest: {repo.repo('cart')} 9.9.9\x07 - from \x1b]0;pwned\x07old",
    )
    _promotion_commit(repo, "2.4.0", "2.3.1")
    result = cli("history", "production")
    assert "\x1b" not in result.out
    assert "\x07" not in result.out
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", repo.root.as_uri(), str(clone))
    monkeypatch.chdir(clone)
    result = cli("history", "production")
    assert "shallow clone" in result.err


def test_a_reader_that_stops_reading_ends_the_command_quietly(
    repo: GitOpsRepo,
    cli: Callable[..., CliRun],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """history | head -1: standard output closed under the command is no internal error."""
    import os  # noqa: PLC0415

    from promoter.cli.main import main  # noqa: PLC0415

    assert cli("promote", repo.repo("cart"), "--to", "production", "--commit").code == 0
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as closed:  # buffered, as a pipe is: flushed by the command
        monkeypatch.setattr("sys.stdout", closed)
        code = main(["history", "production"])
        monkeypatch.undo()
    assert code == 1
    assert "internal error" not in capsys.readouterr().err


def test_a_base_with_uncommitted_changes_is_refused_for_a_commit(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A file the overlay renders from (a chart's manifest) changed but not committed: the edit
    would be checked with it and committed without it, so --commit and --branch refuse (exit 2)
    and write nothing; a plain promote still works."""
    chart = repo.root / "infra" / "charts" / "cart" / "deployment.yaml"
    chart.write_text(chart.read_text().replace("replicas: 1", "replicas: 2"))
    before = (repo.root / KUSTOMIZATION).read_text()
    for arguments in (["--commit"], ["--branch", "b"]):
        result = cli("promote", repo.repo("cart"), "--to", "production", *arguments)
        assert result.code == 2, result.err
        assert "which the overlay renders from, has uncommitted changes" in result.err
        assert "infra/charts/cart/deployment.yaml" in result.err
        assert (repo.root / KUSTOMIZATION).read_text() == before
    assert cli("promote", repo.repo("cart"), "--to", "production").code == 0


def test_promote_does_not_quietly_move_an_environment_that_is_ahead_back(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Production runs a newer cart than dev (a hotfix): --all leaves it with a note; naming it
    moves it back with a warning; --version moves it back without one."""
    repo.seed(repo.prod, "cart", "2.5.0")
    path = repo.root / KUSTOMIZATION
    path.write_text(path.read_text().replace("newTag: 2.3.1", "newTag: 2.5.0", 1))
    everything = cli("promote", "--all", "--to", "production", "--dry-run")
    assert everything.code == 0, everything.err
    assert "newer than dev's 2.4.0 (ahead): left as it is" in everything.err
    assert "newTag: 2.4.0" not in everything.out
    named = cli("promote", repo.repo("cart"), "--to", "production", "--dry-run")
    assert named.code == 0, named.err
    assert "this promotion moves it back" in named.err
    assert "+    newTag: 2.4.0" in named.out
    rollback = cli(
        "promote", repo.repo("cart"), "--to", "production", "--version", "2.4.0", "--dry-run"
    )
    assert rollback.code == 0, rollback.err
    assert "moves it back" not in rollback.err


def test_a_promotion_run_again_after_a_failed_push_pushes_it(
    repo: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """--commit --push whose push failed, run again once the remote answers: nothing new to
    commit, but HEAD is pushed (before, exit 0 with the remote still empty); a failed push keeps
    the diff and the commit in the output (-o json has both, exit 1)."""
    url = f"http://127.0.0.1:{_closed_port()}/gitops.git"
    git(repo.root, "remote", "add", "origin", url)
    failed = cli(
        "promote", repo.repo("cart"), "--to", "production", "--commit", "--push", "-o", "json"
    )
    assert failed.code == 1
    document = json.loads(failed.out)
    assert document["commit"]["pushError"]
    assert "+    newTag: 2.4.0" in document["diff"]
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo.root, "remote", "set-url", "origin", str(remote))
    again = cli("promote", repo.repo("cart"), "--to", "production", "--commit", "--push")
    assert again.code == 0, again.err
    assert "nothing new to commit" in again.err
    assert git(remote, "rev-parse", "main") == git(repo.root, "rev-parse", "HEAD")


def test_a_renderer_writing_into_its_folder_never_reaches_the_checkout(
    repo: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dry run and a branch commit render a copy: a kustomize that writes into the files it
    renders (as a plugin or a chart pull may) changes the copy, never the checkout."""
    import shutil  # noqa: PLC0415

    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    wrapper = tmp_path / "bin" / "kustomize"
    wrapper.parent.mkdir()
    wrapper.write_text(
        "#!/bin/sh\n"
        'case "$2" in */promoter-dry-run-*)  # the copy promote renders, not the checkout\n'
        '  for f in "$2"/*.yaml; do printf "# written by the renderer\\n" >> "$f"; done;;\n'
        "esac\n"
        f'exec {kubectl} kustomize "$2"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}:{os.environ['PATH']}")
    for arguments in (["--dry-run"], ["--branch", "b"]):
        result = cli("promote", repo.repo("cart"), "--to", "production", *arguments)
        assert result.code == 0, result.err
        assert git(repo.root, "status", "--porcelain") == ""


def test_branch_names_git_would_take_for_another_ref_are_refused(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """--branch HEAD, a tag's name, or a name Git already resolves (tags/v1, heads/main) is
    refused before anything is written."""
    git(repo.root, "tag", "v1")
    for branch in ("HEAD", "v1", "tags/v1", "heads/main"):
        result = cli("promote", repo.repo("cart"), "--to", "production", "--branch", branch)
        assert result.code == 2, result.err
    assert git(repo.root, "branch", "--list") == "* main\n"


def test_an_overlay_in_a_submodule_is_not_committed_there(
    repo: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """An overlay in another repository than promoter.yaml's (a submodule) is refused for a
    commit: history read from promoter.yaml's repository would never find it."""
    overlay = repo.root / "infra" / "overlays" / "production"
    git(overlay, "init", "-q")
    git(overlay, "add", "-A")
    git(overlay, "commit", "-q", "-m", "the overlay on its own")
    result = cli("promote", repo.repo("cart"), "--to", "production", "--commit")
    assert result.code == 2, result.err
    assert "a submodule?" in result.err


def test_a_push_the_remote_refuses_by_its_rules_says_what_it_said(
    repo: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """A remote whose hook declines the push: its own message is shown and the hint is not to
    pull (nothing newer is there); exit 1, the commit stays."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'pushes to main need a review' >&2\nexit 1\n")
    hook.chmod(0o755)
    git(repo.root, "remote", "add", "origin", str(remote))
    result = cli("promote", repo.repo("cart"), "--to", "production", "--commit", "--push")
    assert result.code == 1
    assert "remote: pushes to main need a review" in result.err
    assert "pull --rebase" not in result.err
    assert "promote" in git(repo.root, "log", "-1", "--format=%s")


def test_history_of_an_overlay_at_the_repository_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An overlay that is the checkout's root folder is read with the pathspec '.', not ''
    (which Git refuses)."""
    from promoter.deadline import Deadline  # noqa: PLC0415
    from promoter.gitops.promotions import (  # noqa: PLC0415
        PromotedImage,
        promotion_log,
        promotion_message,
    )

    for name in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{name}_NAME", "CI")
        monkeypatch.setenv(f"GIT_{name}_EMAIL", "ci@example.com")
    git(tmp_path, "init", "-q")
    (tmp_path / "kustomization.yaml").write_text("images: []\n")
    git(tmp_path, "add", "-A")
    message = promotion_message("production", "dev", [PromotedImage("shop/cart", "1", None, None)])
    git(tmp_path, "commit", "-q", "-m", message)
    log = promotion_log(
        tmp_path, environment="production", overlay=tmp_path, deadline=Deadline.after(30)
    )
    assert [r.module for r in log.records] == ["shop/cart"]
