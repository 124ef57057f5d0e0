"""`promoter prune ENV`: what production's registry keeps and would delete, from real overlays, real Git
history and the real Distribution registry (a dry run: deleting is the next step)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from devtools import images, signing
from devtools.fault_proxy import FaultProxy
from devtools.registry import RegistryProcess
from tests.conftest import CliRun, GitOpsRepo
from tests.registry_checks import head, manifest_digest, push, skopeo


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(root), *args],
        check=True,
        capture_output=True,
        timeout=60,
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.invalid",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.invalid",
            "HOME": str(root),
            "PATH": "/usr/bin:/bin",
        },
    )


def _commit_all(root: Path, message: str) -> None:
    """Make ``root`` a Git repository (if it is not) and commit everything in it."""
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", message)


def _allow_dev_images_in_production(gitops: GitOpsRepo) -> None:
    """promoter.yaml: production may deploy dev's images (allowImagesFrom: [dev])."""
    config = gitops.root / "promoter.yaml"
    config.write_text(
        config.read_text().replace(
            "    promotesFrom: dev\n", "    promotesFrom: dev\n    allowImagesFrom: [dev]\n", 1
        )
    )


def _production(gitops: GitOpsRepo) -> None:
    """Production's registry holds what its overlay deploys, and older cart versions."""
    for module, tag in (("cart", "2.3.1"), ("checkout", "1.8.0"), ("catalog", "3.0.2")):
        gitops.seed(gitops.prod, module, tag)
    for tag in ("2.1.0", "2.2.0"):
        gitops.seed(gitops.prod, "cart", tag)


def _decisions(result: CliRun) -> dict[tuple[str, str | None], str]:
    document = result.json()
    return {
        (str(e["repository"]).rsplit("/", 1)[-1], e["tag"]): str(e["action"])
        for e in document["entries"]  # type: ignore[union-attr]
        if e["tag"] is not None  # type: ignore[index]
    }


def test_a_dry_run_keeps_what_production_deploys_and_lists_the_rest(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Without history, the older cart tags are planned for deletion, the deployed ones kept, and
    nothing is deleted."""
    _production(gitops)
    result = cli("prune", "production", "--keep-history", "0", "--max-delete", "1", "-o", "json")
    assert result.code == 0, result.err
    got = _decisions(result)
    assert got[("cart", "2.3.1")] == "keep"
    assert got[("cart", "2.1.0")] == "delete"
    assert got[("cart", "2.2.0")] == "delete"
    assert got[("checkout", "1.8.0")] == "keep"
    assert result.json()["dryRun"] is True
    assert manifest_digest(gitops.prod, gitops.repo("cart"), "2.1.0") is not None


def test_more_deletions_than_max_delete_stop_the_run(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Two of cart's three tags is more than the default half: exit 3, naming the repository."""
    _production(gitops)
    result = cli("prune", "production", "--keep-history", "0")
    assert result.code == 3
    assert f"{gitops.repo('cart')}: the plan deletes 2 of its 3 image tags" in result.err
    assert "nothing at all is deleted" in result.err
    assert "stopped at --max-delete: nothing is deleted" in result.out


def test_history_keep_patterns_and_running_pods_keep_their_tags(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """cart 2.2.0 was deployed one commit ago (kept, with the commit), release-style tags match
    --keep, and a Pod still running 2.1.0 keeps it."""
    _production(gitops)
    kustomization = gitops.kustomization("production")
    text = kustomization.read_text()
    _git(gitops.root, "init", "-q")
    kustomization.write_text(text.replace("newTag: 2.3.1", "newTag: 2.2.0"))
    _git(gitops.root, "add", "-A")
    _git(gitops.root, "commit", "-q", "-m", "cart 2.2.0")
    kustomization.write_text(text)
    _git(gitops.root, "commit", "-q", "-am", "cart 2.3.1")
    gitops.seed(gitops.prod, "cart", "release-1")
    pods = tmp_path / "pods.json"
    image = f"222222222222.dkr.ecr.us-east-1.amazonaws.com/{gitops.repo('cart')}:2.1.0"
    pods.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": "p"},
                        "spec": {"containers": [{"name": "c", "image": image}]},
                    }
                ],
            }
        )
    )
    result = cli("prune", "production", "--keep", "release-*", "--in-use", str(pods), "-o", "json")
    assert result.code == 0, result.err
    got = _decisions(result)
    assert got[("cart", "2.2.0")] == "keep"
    assert got[("cart", "2.1.0")] == "keep"
    assert got[("cart", "release-1")] == "keep"
    reasons = {e["tag"]: e["reason"] for e in result.json()["entries"]}  # type: ignore[union-attr,index]
    assert str(reasons["2.2.0"]).startswith("deployed by production at ")
    assert reasons["2.1.0"] == "running in a Pod"


def test_an_overlay_that_does_not_render_plans_nothing(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A render failure must never shrink what is kept: exit 2, no plan printed."""
    _production(gitops)
    gitops.kustomization("production").write_text("resources:\n  - ../../charts/missing\n")
    result = cli("prune", "production", "--keep-history", "0", "-o", "json")
    assert result.code == 2
    assert "entries" not in result.out


def test_a_repository_no_overlay_names_is_never_looked_at(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A repository in production's registry that no overlay names is not in the plan."""
    _production(gitops)
    gitops.seed(gitops.prod, "forgotten", "1.0")
    result = cli("prune", "production", "--keep-history", "0", "--max-delete", "1", "-o", "json")
    assert result.code == 0, result.err
    assert not any("forgotten" in str(e["repository"]) for e in result.json()["entries"])  # type: ignore[union-attr,index]


@pytest.mark.parametrize("value", ["0", "1.5", "half"])
def test_max_delete_must_be_a_fraction(cli: Callable[..., CliRun], value: str) -> None:
    """--max-delete outside (0, 1] is a usage error (exit 2)."""
    result = cli("prune", "production", "--max-delete", value)
    assert result.code == 2
    assert "expected a fraction" in result.err


def test_confirm_deletes_what_the_plan_lists_and_a_rerun_finds_nothing_more(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """--confirm deletes the older cart tags and their manifests (HEAD 404 after), keeps the
    deployed ones, and a second run plans no deletion."""
    _production(gitops)
    old = manifest_digest(gitops.prod, gitops.repo("cart"), "2.1.0")
    args = ("prune", "production", "--keep-history", "0", "--max-delete", "1")
    result = cli(*args, "--confirm")
    again = cli(*args, "-o", "json")
    assert result.code == 0, result.err
    assert "deleted 2 tags" in result.out
    assert manifest_digest(gitops.prod, gitops.repo("cart"), "2.1.0") is None
    assert old is not None
    assert manifest_digest(gitops.prod, gitops.repo("cart"), old) is None
    assert manifest_digest(gitops.prod, gitops.repo("cart"), "2.3.1") is not None
    assert not [e for e in again.json()["entries"] if e["action"] == "delete"]  # type: ignore[union-attr,index]


def test_confirm_over_max_delete_deletes_nothing(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Over --max-delete, --confirm deletes nothing at all (exit 3)."""
    _production(gitops)
    result = cli("prune", "production", "--keep-history", "0", "--confirm")
    assert result.code == 3
    assert manifest_digest(gitops.prod, gitops.repo("cart"), "2.1.0") is not None


def test_a_registry_without_deletion_says_which_setting_to_change(
    gitops: GitOpsRepo,
    cli: Callable[..., CliRun],
    fresh_registry: Callable[..., RegistryProcess],
) -> None:
    """Distribution with deletion off answers 405: one line naming storage.delete.enabled, exit 1."""
    production = fresh_registry(delete_enabled=False)
    config = gitops.root / "promoter.yaml"
    config.write_text(config.read_text().replace(gitops.prod.url, production.url))
    for module, tag in (("cart", "2.3.1"), ("cart", "2.1.0"), ("checkout", "1.8.0")):
        gitops.seed(production, module, tag)
    result = cli("prune", "production", "--keep-history", "0", "--max-delete", "1", "--confirm")
    assert result.code == 1
    assert "storage.delete.enabled" in result.err
    assert result.err.count("\n") == 1


def test_attachments_go_with_a_deleted_image_and_stay_with_a_kept_one(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], key: signing.KeyPair
) -> None:
    """The old cart's .sig and SBOM (with its referrers index) are deleted with it; the deployed
    cart's signature is kept."""
    _production(gitops)
    repo = gitops.repo("cart")
    old = str(manifest_digest(gitops.prod, repo, "2.1.0"))
    kept = str(manifest_digest(gitops.prod, repo, "2.3.1"))
    old_sig = signing.sign_image(gitops.prod.url, repo, old, "x/cart:2.1.0", key)
    kept_sig = signing.sign_image(gitops.prod.url, repo, kept, "x/cart:2.3.1", key)
    subject = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": old, "size": 1}
    sbom = signing.referrer(subject, signing.SPDX_JSON, b"{}", signing.SPDX_JSON)
    signing.push_referrer(gitops.prod.url, repo, sbom, old)

    result = cli("prune", "production", "--keep-history", "0", "--max-delete", "1", "--confirm")

    assert result.code == 0, result.err
    assert manifest_digest(gitops.prod, repo, old_sig) is None
    assert manifest_digest(gitops.prod, repo, sbom.digest) is None
    assert manifest_digest(gitops.prod, repo, f"sha256-{old.split(':')[1]}") is None
    assert manifest_digest(gitops.prod, repo, kept_sig) == kept_sig
    assert manifest_digest(gitops.prod, repo, f"sha256-{kept.split(':')[1]}.sig") == kept_sig


def test_a_prune_cut_short_is_finished_by_the_next_run(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A deletion that fails half-way exits 1 leaving no tag on deleted content; the next run
    deletes the rest."""
    _production(gitops)
    config = gitops.root / "promoter.yaml"
    original = config.read_text()
    args = ("prune", "production", "--keep-history", "0", "--max-delete", "1", "--confirm")
    with FaultProxy(gitops.prod.url) as proxy:
        config.write_text(original.replace(gitops.prod.url, proxy.url))
        proxy.add_rule("DELETE", r"/manifests/sha256:", times=1)  # the first one goes through
        proxy.add_rule("DELETE", r"/manifests/sha256:", status=500, times=100)
        cut = cli(*args, "--retries", "0")
    config.write_text(original)
    left = [
        tag
        for tag in ("2.1.0", "2.2.0")
        if manifest_digest(gitops.prod, gitops.repo("cart"), tag) is not None
    ]
    finished = cli(*args)
    assert cut.code == 1
    assert len(left) == 1  # one deleted before the fault, one left for the next run
    assert finished.code == 0, finished.err
    assert manifest_digest(gitops.prod, gitops.repo("cart"), "2.1.0") is None
    assert manifest_digest(gitops.prod, gitops.repo("cart"), "2.2.0") is None
    assert manifest_digest(gitops.prod, gitops.repo("cart"), "2.3.1") is not None


def test_promoter_yaml_keep_patterns_and_keep_recent_without_push_times(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """prune: keep: in promoter.yaml keeps matching tags; --keep-recent on a registry that does not
    say when images were pushed keeps nothing more, and says so."""
    _production(gitops)
    config = gitops.root / "promoter.yaml"
    config.write_text(
        config.read_text().replace(
            "    promotesFrom: dev\n", "    promotesFrom: dev\n    prune:\n      keep: ['2.1.*']\n"
        )
    )
    result = cli(
        "prune",
        "production",
        "--keep-history",
        "0",
        "--keep-recent",
        "2",
        "--max-delete",
        "1",
        "-o",
        "json",
    )
    assert result.code == 0, result.err
    got = _decisions(result)
    assert got[("cart", "2.1.0")] == "keep"
    assert got[("cart", "2.2.0")] == "delete"
    assert "--keep-recent" in result.err


def test_a_registry_shared_by_two_environments_keeps_what_either_deploys(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Staging deploys from production's registry too: pruning production keeps staging's cart."""
    _production(gitops)
    overlays = gitops.root / "infra" / "overlays"
    staging = overlays / "staging"
    staging.mkdir()
    for name in ("kustomization.yaml", "patch-image.yaml", "patch-replicas.yaml"):
        text = (overlays / "production" / name).read_text()
        (staging / name).write_text(text.replace("newTag: 2.3.1", "newTag: 2.2.0"))
    config = gitops.root / "promoter.yaml"
    registry = "222222222222.dkr.ecr.us-east-1.amazonaws.com"
    config.write_text(
        config.read_text().replace(
            "registries:",
            f"  staging:\n    overlay: infra/overlays/staging\n    registry: {registry}\n\nregistries:",
            1,
        )
    )
    result = cli("prune", "production", "--keep-history", "0", "--max-delete", "1", "-o", "json")
    assert result.code == 0, result.err
    assert result.json()["sharedWith"] == ["production", "staging"]
    got = _decisions(result)
    assert got[("cart", "2.2.0")] == "keep"
    assert got[("cart", "2.1.0")] == "delete"


def test_an_image_another_environment_deploys_from_this_registry_is_kept(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Production runs dev's cart 2.3.1 (allowImagesFrom: dev): pruning dev keeps it."""
    for module, tag in (("cart", "2.4.0"), ("cart", "2.3.1"), ("cart", "2.0.0")):
        gitops.seed(gitops.dev, module, tag)
    for module, tag in (("checkout", "1.8.0"), ("catalog", "3.1.0")):
        gitops.seed(gitops.dev, module, tag)
    kustomization = gitops.kustomization("production")
    kustomization.write_text(
        kustomization.read_text().replace(
            "newName: 222222222222.dkr.ecr.us-east-1.amazonaws.com",
            "newName: 111111111111.dkr.ecr.us-east-1.amazonaws.com",
            1,
        )
    )
    _allow_dev_images_in_production(gitops)
    result = cli("prune", "dev", "--keep-history", "0", "--max-delete", "1", "-o", "json")
    assert result.code == 0, result.err
    got = _decisions(result)
    assert got[("cart", "2.3.1")] == "keep"
    assert got[("cart", "2.0.0")] == "delete"


def test_a_tag_list_that_leaves_out_a_deployed_tag_deletes_nothing(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A registry whose tag list omits the deployed 2.3.1 (which it serves) is not trusted: exit
    1, nothing planned."""
    _production(gitops)
    config = gitops.root / "promoter.yaml"
    original = config.read_text()
    with FaultProxy(gitops.prod.url) as proxy:
        config.write_text(original.replace(gitops.prod.url, proxy.url))
        proxy.add_rule(
            "GET",
            rf"/v2/{gitops.repo('cart')}/tags/list",
            status=200,
            headers={"Content-Type": "application/json"},
            body=json.dumps({"name": gitops.repo("cart"), "tags": ["2.1.0", "2.2.0"]}).encode(),
            times=10,
        )
        result = cli("prune", "production", "--keep-history", "0", "--max-delete", "1", "--confirm")
    config.write_text(original)
    assert result.code == 1
    assert "its tag list leaves it out" in result.err
    assert manifest_digest(gitops.prod, gitops.repo("cart"), "2.1.0") is not None


def test_a_tag_pushed_between_plan_and_delete_keeps_its_manifest(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A sync tags a manifest the plan would delete, right before the deletions: it is kept, and
    the run says so."""
    _production(gitops)
    repo = gitops.repo("cart")
    old = str(manifest_digest(gitops.prod, repo, "2.1.0"))

    def retag() -> None:
        status, _ = head(gitops.prod, f"/v2/{repo}/manifests/{old}")
        assert status == 200
        subprocess.run(
            [
                "skopeo",
                "copy",
                "--all",
                "--preserve-digests",
                *gitops.prod.skopeo_flags("src"),
                *gitops.prod.skopeo_flags("dest"),
                f"docker://{gitops.prod.host}/{repo}@{old}",
                f"docker://{gitops.prod.host}/{repo}:9.9.9",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    config = gitops.root / "promoter.yaml"
    original = config.read_text()
    listing = rf"/v2/{repo}/tags/list"
    with FaultProxy(gitops.prod.url) as proxy:
        config.write_text(original.replace(gitops.prod.url, proxy.url))
        proxy.add_rule("GET", listing, times=1)  # the plan's listing goes through as it is
        proxy.add_rule("GET", listing, before=retag, times=1)  # the sync lands before the re-check
        result = cli("prune", "production", "--keep-history", "0", "--max-delete", "1", "--confirm")
    config.write_text(original)
    assert result.code == 0, result.err
    assert "9.9.9 changed since the plan; prune again" in result.err
    assert manifest_digest(gitops.prod, repo, "9.9.9") == old
    # the whole image stays pullable: every platform of it too
    raw = skopeo(
        "inspect", "--raw", *gitops.prod.skopeo_flags(), f"docker://{gitops.prod.host}/{repo}:9.9.9"
    )
    for child in json.loads(raw.stdout)["manifests"]:
        assert manifest_digest(gitops.prod, repo, child["digest"]) == child["digest"]


@pytest.mark.parametrize(
    "content",
    ["42", '"hello"', "{}", '{"items": null}', '{"items": [{"kind": "Deployment"}]}'],
    ids=["number", "string", "empty-object", "no-items", "no-pod"],
)
def test_an_in_use_file_without_pods_is_refused(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path, content: str
) -> None:
    """A wrong --in-use file would silently protect nothing: exit 2, one line."""
    pods = tmp_path / "pods.json"
    pods.write_text(content)
    result = cli("prune", "production", "--in-use", str(pods))
    assert result.code == 2
    assert "no Pod in it" in result.err


def test_prune_failures_still_print_one_json_document(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """-o json on an error prints {"environment", "error", "exitCode"}, as plan does."""
    result = cli("prune", "nosuch", "-o", "json")
    assert result.code == 2
    document = result.json()
    assert (document["environment"], document["exitCode"]) == ("nosuch", 2)


def test_keep_history_is_bounded(cli: Callable[..., CliRun]) -> None:
    """More than 1000 revisions is a usage error, not an internal one."""
    result = cli("prune", "production", "--keep-history", "1001")
    assert result.code == 2
    assert "at most 1000" in result.err


def test_a_checkout_behind_its_upstream_is_refused(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """Someone pushed a promotion the checkout has fetched but not pulled: prune would decide from
    an older revision than Argo CD deploys, so it stops (exit 2) saying how far behind."""
    _production(gitops)
    root = gitops.root
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "start")
    remote = tmp_path / "remote.git"
    _git(root, "clone", "-q", "--bare", str(root), str(remote))
    _git(root, "remote", "add", "origin", str(remote))
    _git(root, "fetch", "-q", "origin")
    _git(root, "branch", "-q", "--set-upstream-to=origin/main")
    other = tmp_path / "other"
    _git(root, "clone", "-q", str(remote), str(other))
    (other / "README-promotion.txt").write_text("cart 9.9.9\n")
    _git(other, "add", "-A")
    _git(other, "commit", "-q", "-m", "promote")
    _git(other, "push", "-q", "origin", "HEAD:main")
    _git(root, "fetch", "-q", "origin")
    for history in ("5", "0"):  # without history too: the upstream is what gets deployed
        result = cli("prune", "production", "--max-delete", "1", "--keep-history", history)
        assert result.code == 2
        assert "1 commit(s) behind origin/main" in result.err


def test_history_across_a_moved_base_stops_instead_of_keeping_less(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A commit that moved a base the overlay renders from hides the commits before it from a
    history read by today's paths: prune stops (exit 2) naming the commit, never keeping less."""
    _production(gitops)
    root = gitops.root
    _commit_all(root, "start")
    _git(root, "mv", "infra/charts/cart", "infra/charts/cart-v2")
    for env in ("production", "dev"):
        kustomization = gitops.kustomization(env)
        kustomization.write_text(
            kustomization.read_text().replace("../../charts/cart\n", "../../charts/cart-v2\n")
        )
    _git(root, "commit", "-q", "-am", "move cart's chart")
    result = cli("prune", "production", "--max-delete", "1")
    assert result.code == 2
    assert "moved 'infra/charts/cart" in result.err
    limited = cli("prune", "production", "--max-delete", "1", "--keep-history", "1")
    assert limited.code == 0, limited.err


def test_pruning_the_source_keeps_what_the_next_environment_will_copy_from_it(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Production's overlay asks for cart 2.3.1 (promoted in Git, not synced yet) while dev runs
    2.4.0: pruning dev keeps dev's 2.3.1, which production's next sync copies."""
    for tag in ("2.4.0", "2.3.1", "2.0.0"):
        gitops.seed(gitops.dev, "cart", tag)
    for module, tag in (("checkout", "1.8.0"), ("catalog", "3.1.0")):
        gitops.seed(gitops.dev, module, tag)
    result = cli("prune", "dev", "--keep-history", "0", "--max-delete", "1", "-o", "json")
    assert result.code == 0, result.err
    got = _decisions(result)
    assert got[("cart", "2.3.1")] == "keep"
    assert got[("cart", "2.0.0")] == "delete"
    reasons = {
        (e["tag"], e["reason"])
        for e in result.json()["entries"]  # type: ignore[union-attr,index]
    }
    assert ("2.3.1", "production promotes it from here") in reasons


def test_an_image_pinned_by_digest_alone_keeps_its_platforms(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Production runs cart by digest alone, an untagged index sharing its platforms with the old
    tag 2.1.0: deleting 2.1.0 leaves the pinned index's platforms in place."""
    _production(gitops)
    repo = gitops.repo("cart")
    old = images.multi_arch_index("pinned-shared")
    push(gitops.prod, repo, old, tag="2.0.9")
    pinned = images.oci_index(list(old.children), annotations={"pinned": "yes"})
    push(gitops.prod, repo, pinned, tag=None)
    kustomization = gitops.kustomization("production")
    kustomization.write_text(
        kustomization.read_text().replace("newTag: 2.3.1", f"digest: {pinned.digest}", 1)
    )
    result = cli("prune", "production", "--keep-history", "0", "--max-delete", "1", "--confirm")
    assert result.code == 0, result.err
    assert manifest_digest(gitops.prod, repo, "2.0.9") is None
    assert manifest_digest(gitops.prod, repo, pinned.digest) == pinned.digest
    for child in old.children:
        assert manifest_digest(gitops.prod, repo, child.digest) == child.digest


def test_an_image_named_outside_image_fields_is_kept(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A custom resource's spec.image (plan warns about it) keeps that image."""
    _production(gitops)
    image = f"222222222222.dkr.ecr.us-east-1.amazonaws.com/{gitops.repo('cart')}:2.1.0"
    gitops.add_chart(
        "report",
        "apiVersion: sparkoperator.k8s.io/v1beta2\nkind: SparkApplication\n"
        f"metadata:\n  name: report\nspec:\n  image: {image}\n",
    )
    gitops.deploy("production", "report")
    result = cli("prune", "production", "--keep-history", "0", "--max-delete", "1", "-o", "json")
    assert result.code == 0, result.err
    assert _decisions(result)[("cart", "2.1.0")] == "keep"


def test_one_registry_under_two_names_is_pruned_as_one(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Canary reaches production's registry under another name (the same endpoint): pruning
    production keeps what canary deploys."""
    _production(gitops)
    overlays = gitops.root / "infra" / "overlays"
    canary = overlays / "canary"
    canary.mkdir()
    for name in ("kustomization.yaml", "patch-image.yaml", "patch-replicas.yaml"):
        text = (overlays / "production" / name).read_text()
        text = text.replace("222222222222.dkr.ecr.us-east-1.amazonaws.com", "registry.prod.example")
        (canary / name).write_text(text.replace("newTag: 2.3.1", "newTag: 2.2.0"))
    config = gitops.root / "promoter.yaml"
    config.write_text(
        config.read_text().replace(
            "registries:",
            "  canary:\n    overlay: infra/overlays/canary\n    registry: registry.prod.example\n\n"
            "registries:\n  registry.prod.example:\n    endpoint: "
            + gitops.prod.url.replace("127.0.0.1", "localhost")
            + "/v2/",
            1,
        )
    )
    result = cli("prune", "production", "--keep-history", "0", "--max-delete", "1", "-o", "json")
    assert result.code == 0, result.err
    assert "canary" in result.json()["sharedWith"]
    assert _decisions(result)[("cart", "2.2.0")] == "keep"


def test_history_across_a_replaced_base_stops_too(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A base deleted and a rewritten one added (no rename Git can see): the older revisions
    rendered from a path today's overlay does not, so prune stops (exit 2) instead of missing
    the commits made to it."""
    _production(gitops)
    root = gitops.root
    _commit_all(root, "start")
    charts = root / "infra" / "charts"
    (charts / "cart-new").mkdir()
    for item in (charts / "cart").iterdir():  # rewritten as JSON: too different to be a rename
        documents = [d for d in yaml.safe_load_all(item.read_text()) if d]
        text = "\n---\n".join(json.dumps(d, indent=1, sort_keys=True) for d in documents)
        (charts / "cart-new" / item.name).write_text(text + "\n")
    _git(root, "rm", "-q", "-r", "infra/charts/cart")
    for env in ("production", "dev"):
        kustomization = gitops.kustomization(env)
        kustomization.write_text(
            kustomization.read_text().replace("../../charts/cart\n", "../../charts/cart-new\n")
        )
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "rewrite cart's chart")
    result = cli("prune", "production", "--max-delete", "1")
    assert result.code == 2
    assert "no longer does" in result.err


def test_a_kept_nested_index_keeps_the_platforms_under_it(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """2.3.1 is an index over an index over platforms; a deleted tag's index shares one platform:
    that platform stays, as the kept nested index lists it."""
    _production(gitops)
    repo = gitops.repo("cart")
    shared = images.oci_image([images.layer(100, "nest-shared")], seed="nest-shared")
    own = images.oci_image([images.layer(100, "nest-own")], arch="arm64", seed="nest-own")
    inner = images.oci_index([shared, own])
    outer = images.oci_index([inner], platforms=[None])
    push(gitops.prod, repo, outer, tag="2.3.1")
    other = images.oci_index([shared], annotations={"other": "yes"})
    push(gitops.prod, repo, other, tag="2.0.9")
    result = cli("prune", "production", "--keep-history", "0", "--max-delete", "1", "--confirm")
    assert result.code == 0, result.err
    assert manifest_digest(gitops.prod, repo, "2.0.9") is None
    for manifest in (outer, inner, shared, own):
        assert manifest_digest(gitops.prod, repo, manifest.digest) == manifest.digest


def test_history_keeps_images_named_outside_image_fields(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A custom resource's spec.image moved from 2.1.0 to 2.2.0 in the last commit: a rollback
    needs 2.1.0, so --keep-history keeps it."""
    _production(gitops)
    registry = "222222222222.dkr.ecr.us-east-1.amazonaws.com"
    report = (
        "apiVersion: sparkoperator.k8s.io/v1beta2\nkind: SparkApplication\n"
        f"metadata:\n  name: report\nspec:\n  image: {registry}/{gitops.repo('cart')}:TAG\n"
    )
    gitops.add_chart("report", report.replace("TAG", "2.1.0"))
    gitops.deploy("production", "report")
    _commit_all(gitops.root, "report on cart 2.1.0")
    chart = gitops.root / "infra" / "charts" / "report" / "report.yaml"
    chart.write_text(report.replace("TAG", "2.2.0"))
    _git(gitops.root, "commit", "-q", "-am", "report on cart 2.2.0")
    result = cli("prune", "production", "--keep-history", "2", "--max-delete", "1", "-o", "json")
    assert result.code == 0, result.err
    got = _decisions(result)
    assert got[("cart", "2.1.0")] == "keep"
    assert got[("cart", "2.2.0")] == "keep"


def test_another_environments_custom_resource_image_of_this_registry_is_kept(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Production (allowImagesFrom: dev) runs dev's cart 2.2.0 through a custom resource's
    spec.image: pruning dev keeps it."""
    for tag in ("2.4.0", "2.3.1", "2.2.0", "2.0.0"):
        gitops.seed(gitops.dev, "cart", tag)
    for module, tag in (("checkout", "1.8.0"), ("catalog", "3.1.0")):
        gitops.seed(gitops.dev, module, tag)
    dev = "111111111111.dkr.ecr.us-east-1.amazonaws.com"
    gitops.add_chart(
        "report",
        "apiVersion: sparkoperator.k8s.io/v1beta2\nkind: SparkApplication\n"
        f"metadata:\n  name: report\nspec:\n  image: {dev}/{gitops.repo('cart')}:2.2.0\n",
    )
    gitops.deploy("production", "report")
    _allow_dev_images_in_production(gitops)
    result = cli("prune", "dev", "--keep-history", "0", "--max-delete", "1", "-o", "json")
    assert result.code == 0, result.err
    got = _decisions(result)
    assert got[("cart", "2.2.0")] == "keep"
    assert got[("cart", "2.0.0")] == "delete"
