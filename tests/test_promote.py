"""promote does what a user means (issue 9, item 5): real kustomize, real registries, real files."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from devtools import images
from tests.conftest import DEV, PROD, CliRun, GitOpsRepo
from tests.registry_checks import manifest_digest
from tests.test_gitops_cli import _use_hook_component


def _add_ml_chart(gitops: GitOpsRepo, *, to_production: bool = True) -> None:
    """A new module, ``ml``: its chart writes ``image: ml``; dev deploys it with an images: entry
    ``name: ml``, production only lists the chart (its first promotion is due)."""
    gitops.add_chart(
        "ml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ml}\nspec:\n  template:\n"
        "    spec:\n      containers:\n        - {name: ml, image: ml}\n",
    )
    gitops.deploy("dev", "ml", (DEV, "0.9.0"))
    if to_production:
        gitops.deploy("production", "ml")


def _seed_dev(gitops: GitOpsRepo) -> dict[str, str]:
    """Push what dev's overlay names into dev's registry; the digests by module."""
    return {
        module: gitops.seed(gitops.dev, module, tag)
        for module, tag in (("cart", "2.4.0"), ("checkout", "1.8.0"), ("catalog", "3.1.0"))
    }


def test_a_module_new_to_the_target_reuses_the_source_entry_name(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """The new images: entry is named as the source's (`name: ml`, renamed into the target's
    registry), so kustomize applies it: before, `name: <registry>/ml` matched nothing."""
    _add_ml_chart(gitops)
    gitops.seed(gitops.dev, "ml", "0.9.0")
    path = gitops.kustomization("production")
    before = path.read_text()
    result = cli("promote", gitops.repo("ml"), "--to", "production")
    assert result.code == 0, result.err
    assert path.read_text() == before + (
        f"  - name: ml\n    newName: {PROD}/{gitops.repo('ml')}\n    newTag: 0.9.0\n"
    )
    plan = cli("plan", "production", "-o", "json")
    images = [str(i["image"]) for i in plan.json()["images"]]  # type: ignore[union-attr]
    assert f"{PROD}/{gitops.repo('ml')}:0.9.0" in images


def test_promote_all_includes_a_module_the_target_deploys_under_the_source_name(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """--all promotes a module the target deploys but has never renamed into its registry; one it
    does not deploy at all is still skipped with a note."""
    _add_ml_chart(gitops)
    _seed_dev(gitops)
    gitops.seed(gitops.dev, "ml", "0.9.0")
    result = cli("promote", "--all", "--to", "production")
    assert result.code == 0, result.err
    assert f"newName: {PROD}/{gitops.repo('ml')}" in gitops.kustomization("production").read_text()


def test_promote_refuses_a_tag_the_source_registry_lacks(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A tag dev's registry does not hold is not written (exit 1, one line naming it and
    --no-verify, the file as it was); --no-verify writes it and says it was not checked."""
    path = gitops.kustomization("production")
    before = path.read_text()
    refused = cli("promote", gitops.repo("cart"), "--to", "production")
    assert refused.code == 1, refused.err
    assert refused.err.count("\n") == 1
    assert f"{DEV}/{gitops.repo('cart')}:2.4.0" in refused.err
    assert "--no-verify" in refused.err
    assert path.read_text() == before
    unchecked = cli("promote", gitops.repo("cart"), "--to", "production", "--no-verify")
    assert unchecked.code == 0, unchecked.err
    assert "newTag: 2.4.0" in path.read_text()
    assert "not checked" in unchecked.err
    assert f"{DEV}/{gitops.repo('cart')}:2.4.0" in unchecked.err


def test_promote_all_names_every_missing_tag_and_writes_nothing(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """With --all, every module whose tag dev's registry lacks is named, and no file changes."""
    dev = gitops.kustomization("dev")
    dev.write_text(dev.read_text().replace("newTag: 1.8.0", "newTag: 1.9.0"))
    gitops.seed(gitops.dev, "cart", "2.4.0")
    path = gitops.kustomization("production")
    before = path.read_text()
    result = cli("promote", "--all", "--to", "production")
    assert result.code == 1, result.err
    assert gitops.repo("catalog") in result.err
    assert gitops.repo("checkout") in result.err
    assert path.read_text() == before


@pytest.mark.parametrize("form", ["digest", "tag@digest"])
def test_repromoting_a_pinned_entry_keeps_the_pin(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], form: str
) -> None:
    """A target entry pinned by digest (`digest:` or `newTag: tag@digest`) stays pinned, in its own
    form, at the digest the new version has; before, the pin was dropped for a bare tag."""
    old = gitops.seed(gitops.dev, "cart", "2.3.1")
    new = gitops.seed(gitops.dev, "cart", "2.4.0")
    path = gitops.kustomization("production")
    pinned = (
        f"newTag: 2.3.1\n    digest: {old}\n" if form == "digest" else f'newTag: "2.3.1@{old}"\n'
    )
    text = path.read_text().replace(
        "newTag: 2.3.1  # set by: promoter promote shop/cart --to production\n", pinned
    )
    assert text != path.read_text()
    path.write_text(text)
    result = cli("promote", gitops.repo("cart"), "--to", "production")
    assert result.code == 0, result.err
    expected = (
        f"newTag: 2.4.0\n    digest: {new}\n" if form == "digest" else f'newTag: "2.4.0@{new}"\n'
    )
    assert path.read_text() == text.replace(pinned, expected)


def test_a_stale_image_left_in_a_patch_is_named_in_a_warning(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Promoting catalog, which production sets in patch-image.yaml, warns that the patch still
    names the old image, with the file and line, so the reviewer removes it in the same commit."""
    gitops.seed(gitops.dev, "catalog", "3.1.0")
    result = cli("promote", gitops.repo("catalog"), "--to", "production")
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines() if "patch-image.yaml" in line]
    assert len(warnings) == 1, result.err
    assert warnings[0].startswith("promoter: warning: ")
    assert "infra/overlays/production/patch-image.yaml:11" in warnings[0]
    assert f"{PROD}/{gitops.repo('catalog')}:3.0.2" in warnings[0]


def test_a_trailing_comment_on_an_edited_line_is_flagged(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """The comment beside cart's newTag was written about 2.3.1: it stays (comments are the
    user's) and a warning names its line and text so the reviewer can check it still holds."""
    gitops.seed(gitops.dev, "cart", "2.4.0")
    result = cli("promote", gitops.repo("cart"), "--to", "production")
    assert result.code == 0, result.err
    flagged = [line for line in result.err.splitlines() if "# set by" in line]
    assert len(flagged) == 1, result.err
    assert "infra/overlays/production/kustomization.yaml:14" in flagged[0]
    assert "2.4.0" in flagged[0]


def _two_checkout_versions_in_dev(gitops: GitOpsRepo) -> None:
    dev = gitops.kustomization("dev")
    dev.write_text(
        dev.read_text()
        + "patches:\n  - target: {kind: CronJob, name: checkout-reconcile}\n    patch: |-\n"
        "      - op: replace\n        path: /spec/jobTemplate/spec/template/spec/containers/0/image\n"
        f"        value: {DEV}/{gitops.repo('checkout')}:1.9.0-rc1\n"
    )


def test_promote_all_promotes_the_unambiguous_and_reports_the_rest(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """With --all, a module dev runs in two versions is reported (both versions, exit 3) and the
    other modules are promoted; before, the whole promotion failed."""
    _seed_dev(gitops)
    _two_checkout_versions_in_dev(gitops)
    result = cli("promote", "--all", "--to", "production")
    assert result.code == 3, result.err
    text = gitops.kustomization("production").read_text()
    assert "newTag: 2.4.0" in text
    assert "newTag: 3.1.0" in text
    assert "newTag: 1.8.0" in text  # checkout untouched
    reported = [line for line in result.err.splitlines() if gitops.repo("checkout") in line]
    assert len(reported) == 1, result.err
    assert "1.9.0-rc1" in reported[0]
    assert "1.8.0" in reported[0]


def test_promote_json_prints_the_edit_on_stdout(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """-o json prints one document on stdout: target, source, modules (before/after references),
    edits (file, before and after text, changed), the diff, notes and warnings."""
    digest = gitops.seed(gitops.dev, "cart", "2.4.0")
    path = gitops.kustomization("production")
    before = path.read_text()
    result = cli("promote", gitops.repo("cart"), "--to", "production", "-o", "json")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["target"] == "production"
    assert doc["source"] == "dev"
    assert doc["modules"] == [
        {
            "module": gitops.repo("cart"),
            "source": f"{DEV}/{gitops.repo('cart')}:2.4.0",
            "digest": digest,
            "before": f"{PROD}/{gitops.repo('cart')}:2.3.1",
            "after": f"{PROD}/{gitops.repo('cart')}:2.4.0",
            "changed": True,
            "diverged": False,
        }
    ]
    assert doc["edits"] == [
        {
            "file": "infra/overlays/production/kustomization.yaml",
            "before": before,
            "after": path.read_text(),
            "changed": True,
        }
    ]
    assert "+    newTag: 2.4.0" in str(doc["diff"])
    assert doc["refused"] == []
    assert any("# set by" in str(w) for w in doc["warnings"])  # type: ignore[union-attr]
    again = cli("promote", gitops.repo("cart"), "--to", "production", "-o", "json").json()
    assert [e["changed"] for e in again["edits"]] == [False]  # type: ignore[index, union-attr]
    assert again["modules"][0]["changed"] is False  # type: ignore[index]
    assert any("already runs" in str(n) for n in again["notes"])  # type: ignore[union-attr]


def test_promote_sync_json_is_one_document(gitops: GitOpsRepo, cli: Callable[..., CliRun]) -> None:
    """With --sync, -o json is still one document: the promotion with the sync under "sync"."""
    gitops.seed(gitops.dev, "cart", "2.4.0")
    result = cli("promote", gitops.repo("cart"), "--to", "production", "--sync", "-o", "json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["target"] == "production"
    assert [i["action"] for i in doc["sync"]["images"]] == ["copied"]


def test_promote_sync_that_fails_says_the_edit_stays(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """When the sync step cannot make the image present (a layer of dev's image is gone from dev's
    storage, so the copy fails), the exit code is the sync's (1) and stderr says the overlay edit
    was written and stays."""
    gitops.seed(gitops.dev, "cart", "2.4.0")
    lost = images.layer(300, f"{gitops.prefix}-cart-2.4.0-0")  # what gitops.seed pushed
    gitops.dev.blob_data_path(images.sha256_digest(lost)).unlink()
    result = cli("promote", gitops.repo("cart"), "--to", "production", "--sync")
    assert result.code == 1, result.err
    assert "newTag: 2.4.0" in gitops.kustomization("production").read_text()
    stays = [line for line in result.err.splitlines() if "stays" in line]
    assert len(stays) == 1, result.err
    assert "infra/overlays/production/kustomization.yaml" in stays[0]
    assert "promoter sync production" in stays[0]
    assert any(
        ln.startswith("promoter: error:") and "BLOB_UNKNOWN" in ln for ln in result.err.splitlines()
    )


def test_promote_sync_renders_the_edited_overlay_once(
    gitops: GitOpsRepo,
    cli: Callable[..., CliRun],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """promote --sync builds production's overlay twice (before and after the edit), not a third
    time to plan the sync: the real kustomize, behind a wrapper on PATH that logs each build."""
    log = tmp_path / "builds.log"
    wrapper = tmp_path / "bin" / "kustomize"
    wrapper.parent.mkdir()
    kubectl = next(
        Path(folder) / "kubectl"
        for folder in os.environ["PATH"].split(os.pathsep)
        if (Path(folder) / "kubectl").is_file()
    )
    wrapper.write_text(f'#!/bin/sh\necho "$2" >> {log}\nexec {kubectl} kustomize "$2"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    digest = gitops.seed(gitops.dev, "cart", "2.4.0")
    result = cli("promote", gitops.repo("cart"), "--to", "production", "--sync")
    assert result.code == 0, result.err
    assert manifest_digest(gitops.prod, gitops.repo("cart"), "2.4.0") == digest
    builds = log.read_text().splitlines()
    assert sum(1 for b in builds if b.endswith("production")) == 2, builds


def test_a_version_the_target_runs_already_is_not_asked_for(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Re-running a promotion stays safe (exit 0, a note, nothing written) even when the source
    registry no longer holds that version: nothing would be written, so its absence is no error."""
    dev = gitops.kustomization("dev")
    dev.write_text(dev.read_text().replace("newTag: 2.4.0", "newTag: 2.3.1"))
    path = gitops.kustomization("production")
    before = path.read_text()
    result = cli("promote", gitops.repo("cart"), "--to", "production")
    assert result.code == 0, result.err
    assert "production already runs" in result.err
    assert path.read_text() == before


def test_no_verify_still_asks_for_the_digest_of_a_pin(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """--no-verify cannot skip the lookup a pin needs: a version the source registry lacks is
    exit 1, saying the pin needs the digest, without offering --no-verify."""
    result = cli(
        "promote", gitops.repo("cart"), "--to", "production", "--pin-digest", "--no-verify"
    )
    assert result.code == 1, result.err
    assert "a pin needs the digest" in result.err
    assert "--no-verify" not in result.err


def test_a_hook_list_that_cannot_be_rewritten_puts_the_kustomization_back(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Nothing is half-written: when the hook component's promoter-images.txt cannot be rewritten
    (not UTF-8), the kustomization edit already written is put back, exit 2."""
    hook_list = _use_hook_component(gitops, "# images the hook copies\n")
    hook_list.write_bytes(b"# images \xff\n")
    gitops.seed(gitops.dev, "cart", "2.4.0")
    path = gitops.kustomization("production")
    before = path.read_text()
    result = cli("promote", gitops.repo("cart"), "--to", "production")
    assert result.code == 2, result.err
    assert "promoter-images.txt" in result.err
    assert path.read_text() == before


def _repush_in_dev(gitops: GitOpsRepo, module: str, tag: str) -> tuple[str, str]:
    """Production's registry holds MODULE:TAG as promoted; dev's tag was pushed again with other
    content since. The digests: (production's, dev's)."""
    held = gitops.seed(gitops.prod, module, tag, seed=f"{gitops.prefix}-{module}-as-promoted")
    return held, gitops.seed(gitops.dev, module, tag, seed=f"{gitops.prefix}-{module}-re-pushed")


def _run_cart_at(gitops: GitOpsRepo, tag: str) -> None:
    """Dev's overlay runs cart at TAG."""
    dev = gitops.kustomization("dev")
    dev.write_text(dev.read_text().replace("newTag: 2.4.0", f"newTag: {tag}"))


@pytest.mark.parametrize("pin", [False, True])
def test_a_tag_the_target_registry_holds_with_other_content_is_not_written(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], pin: bool
) -> None:
    """Promoting cart 2.4.0 (with or without --pin-digest) while production's registry holds
    2.4.0 with other content than dev's is refused: exit 3, one line naming both digests and a new
    tag, nothing written; before, the tag (or dev's digest under it) was written, exit 0."""
    held, wanted = _repush_in_dev(gitops, "cart", "2.4.0")
    path = gitops.kustomization("production")
    before = path.read_text()
    flags = ("--pin-digest",) if pin else ()
    result = cli("promote", gitops.repo("cart"), "--to", "production", *flags)
    assert result.code == 3, result.err
    [line] = result.err.splitlines()
    assert line.startswith("promoter: error: refusing to promote")
    assert held in line
    assert wanted in line
    assert "push it under a new tag and promote that" in line
    assert "a sync never moves a tag" in line
    assert path.read_text() == before


def _pin_cart_in_production(gitops: GitOpsRepo, digest: str) -> None:
    """Production's cart entry pins 2.3.1 at DIGEST (as --pin-digest wrote it)."""
    path = gitops.kustomization("production")
    path.write_text(
        path.read_text().replace("newTag: 2.3.1  #", f"newTag: 2.3.1\n    digest: {digest}  #")
    )


@pytest.mark.parametrize("case", ["pinned", "pinned-all", "unpinned-pin-digest"])
def test_a_target_on_the_same_tag_after_a_repush_is_diverged_not_refused(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], case: str
) -> None:
    """Production runs cart 2.3.1 (pinned at what its registry holds, or unpinned and promoted
    with --pin-digest) and dev's 2.3.1 was pushed again: promote (and --all) writes nothing for
    cart, exit 0, and warns that production already runs 2.3.1 while dev's 2.3.1 is now another
    digest (diverged, both named). Before, every such run was refused (exit 3)."""
    _run_cart_at(gitops, "2.3.1")
    held, wanted = _repush_in_dev(gitops, "cart", "2.3.1")
    if case.startswith("pinned"):
        _pin_cart_in_production(gitops, held)
    path = gitops.kustomization("production")
    before = path.read_text()
    if case == "pinned-all":
        gitops.seed(gitops.dev, "checkout", "1.8.0")
        gitops.seed(gitops.dev, "catalog", "3.1.0")
        args: tuple[str, ...] = ("--all",)
    else:
        args = (gitops.repo("cart"),) + (("--pin-digest",) if case.startswith("unpinned") else ())
    result = cli("promote", *args, "--to", "production", "-o", "json")
    assert result.code == 0, result.err
    text = path.read_text()
    cart_entry = before[before.index("  - name: cart") : before.index("  - name: checkout")]
    assert cart_entry in text
    if case != "pinned-all":
        assert text == before
    [warning] = [ln for ln in result.err.splitlines() if "diverged" in ln]
    assert warning.startswith(f"promoter: warning: production already runs {gitops.repo('cart')}")
    assert f"is now {wanted}" in warning
    assert held in warning
    assert ("(pinned to " in warning) == case.startswith("pinned")
    doc = result.json()
    assert doc["refused"] == []
    assert str(doc["edits"][0]["file"]).endswith("production/kustomization.yaml")  # type: ignore[index]
    [module] = [m for m in doc["modules"] if m["module"] == gitops.repo("cart")]  # type: ignore[union-attr]
    assert (module["changed"], module["diverged"]) == (False, True)
    assert (module["digest"], module["destinationDigest"]) == (wanted, held)
    plan = cli("plan", "production", "-o", "json").json()
    statuses = {i["image"]: i["status"] for i in plan["images"]}  # type: ignore[union-attr]
    if case.startswith("pinned"):  # production asks for what its registry holds
        assert statuses[f"{PROD}/{gitops.repo('cart')}:2.3.1@{held}"] == "present"
    else:
        assert statuses[f"{PROD}/{gitops.repo('cart')}:2.3.1"] == "diverged"


def test_a_pin_the_target_registry_does_not_hold_is_named_as_a_conflict(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Production pins cart 2.3.1 at a digest its registry's 2.3.1 does not hold: promote writes
    nothing (exit 0) and warns that a sync refuses to move the tag; it is no divergence."""
    _run_cart_at(gitops, "2.3.1")
    _, wanted = _repush_in_dev(gitops, "cart", "2.3.1")
    other = gitops.seed(gitops.dev, "cart", "2.3.0")
    _pin_cart_in_production(gitops, other)
    path = gitops.kustomization("production")
    before = path.read_text()
    result = cli("promote", gitops.repo("cart"), "--to", "production")
    assert result.code == 0, result.err
    assert path.read_text() == before
    [warning] = [ln for ln in result.err.splitlines() if "conflict" in ln]
    assert f"production pins {gitops.repo('cart')} 2.3.1@{other}" in warning
    assert wanted not in path.read_text()


def test_a_module_that_already_runs_a_diverged_tag_is_reported(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Production already runs cart 2.3.1 and dev's 2.3.1 was pushed again: promote writes
    nothing, exit 0, and warns naming both digests (production keeps what it was given; a new tag
    moves it); -o json says "diverged": true with "destinationDigest", and "digest" is dev's.
    Before, it said only "already runs", "digest": null."""
    _run_cart_at(gitops, "2.3.1")
    held, wanted = _repush_in_dev(gitops, "cart", "2.3.1")
    path = gitops.kustomization("production")
    before = path.read_text()
    result = cli("promote", gitops.repo("cart"), "--to", "production")
    assert result.code == 0, result.err
    assert path.read_text() == before
    [warning] = [ln for ln in result.err.splitlines() if ln.startswith("promoter: warning:")]
    assert "diverged" in warning
    assert held in warning
    assert wanted in warning
    assert "push the image under a new tag and promote that" in warning
    doc = cli("promote", gitops.repo("cart"), "--to", "production", "-o", "json").json()
    [module] = doc["modules"]  # type: ignore[misc]
    assert module["changed"] is False
    assert module["diverged"] is True
    assert (module["digest"], module["destinationDigest"]) == (wanted, held)
    assert any(held in str(w) for w in doc["warnings"])  # type: ignore[union-attr]


def test_promote_all_promotes_the_rest_when_one_tag_diverged(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """With --all, a module whose new tag production's registry holds with other content is
    left alone and reported (both digests, exit 3); the others are promoted."""
    _seed_dev(gitops)
    held, wanted = _repush_in_dev(gitops, "cart", "2.4.0")
    result = cli("promote", "--all", "--to", "production", "-o", "json")
    assert result.code == 3, result.err
    text = gitops.kustomization("production").read_text()
    assert "newTag: 2.3.1" in text  # cart untouched
    assert "newTag: 3.1.0" in text  # catalog promoted
    [refused] = result.json()["refused"]  # type: ignore[misc]
    assert refused["module"] == gitops.repo("cart")
    assert held in refused["error"]
    assert wanted in refused["error"]
    reported = [ln for ln in result.err.splitlines() if gitops.repo("cart") in ln]
    assert len(reported) == 1, result.err
    assert reported[0].startswith("promoter: error:")


def test_a_target_registry_that_cannot_be_asked_does_not_stop_a_promotion(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """With production's registry down, promote checks dev's registry as before, writes the
    edit (exit 0) and warns that production's tags were not checked."""
    gitops.seed(gitops.dev, "cart", "2.4.0")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    config = gitops.root / "promoter.yaml"
    config.write_text(config.read_text().replace(gitops.prod.url, f"http://127.0.0.1:{closed}"))
    result = cli("promote", gitops.repo("cart"), "--to", "production", "--retries", "0")
    assert result.code == 0, result.err
    assert "newTag: 2.4.0" in gitops.kustomization("production").read_text()
    [warning] = [ln for ln in result.err.splitlines() if "could not ask" in ln]
    assert warning.startswith("promoter: warning: could not ask production's registry")
    assert f"{PROD}/{gitops.repo('cart')}:2.4.0" in warning


def test_promote_sync_follows_the_environment_policy_like_sync(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """promote --sync of a module production already runs at a diverged tag warns and exits 0,
    as promote then sync do; before, it planned with --fail-on-diverged and exited 3."""
    _run_cart_at(gitops, "2.3.1")
    held, _ = _repush_in_dev(gitops, "cart", "2.3.1")
    result = cli("promote", gitops.repo("cart"), "--to", "production", "--sync")
    assert result.code == 0, result.err
    assert manifest_digest(gitops.prod, gitops.repo("cart"), "2.3.1") == held
    assert "production: 0 copied, 1 present (1 diverged), 0 refused, 0 failed" in result.out


def test_promote_refuses_a_target_whose_registry_is_wrong(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """With production's registry: typo'd (another region), promote refuses as plan does: exit 2,
    one line saying to check environments.production.registry, nothing written; before, it said
    the image was set elsewhere in the overlay."""
    gitops.seed(gitops.dev, "cart", "2.4.0")
    config = gitops.root / "promoter.yaml"
    config.write_text(
        config.read_text().replace(f"registry: {PROD}", f"registry: {PROD.replace('-1', '-2')}")
    )
    path = gitops.kustomization("production")
    before = path.read_text()
    result = cli("promote", gitops.repo("cart"), "--to", "production")
    assert result.code == 2, result.err
    [line] = [ln for ln in result.err.splitlines() if ln.startswith("promoter: error:")]
    assert "check environments.production.registry in promoter.yaml" in line
    assert path.read_text() == before


def test_promote_moves_modules_deployed_from_dev_into_productions_registry(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """An overlay that deploys dev's images (what plan refuses, saying to promote them) is fixed
    by promote --all: each entry's newName is moved into production's registry with the version
    (an entry added for the image a patch sets, the patch's line named), and the plan has no
    foreign-environment image left. Before, promote failed too."""
    _seed_dev(gitops)
    path = gitops.kustomization("production")
    path.write_text(path.read_text().replace(f"newName: {PROD}", f"newName: {DEV}"))
    patch = path.parent / "patch-image.yaml"
    patch.write_text(patch.read_text().replace(PROD, DEV))
    refused = cli("plan", "production")
    assert refused.code == 2
    assert "promoter promote --all --to production" in refused.err
    result = cli("promote", "--all", "--to", "production")
    assert result.code == 0, result.err
    text = path.read_text()
    assert f"newName: {DEV}" not in text
    assert f"newName: {PROD}/{gitops.repo('cart')}\n    newTag: 2.4.0  # set by" in text
    assert f"newName: {PROD}/{gitops.repo('checkout')}\n    newTag: 1.8.0\n" in text
    assert f"newName: {PROD}/{gitops.repo('catalog')}\n    newTag: 3.1.0\n" in text
    assert f"patch-image.yaml:11 still names {DEV}/{gitops.repo('catalog')}:3.0.2" in result.err
    statuses = {i["status"] for i in cli("plan", "production", "-o", "json").json()["images"]}  # type: ignore[union-attr]
    assert "foreign-environment" not in statuses


@pytest.mark.parametrize(
    ("case", "code"), [("missing-version", 1), ("unknown-module", 2), ("diverged", 3)]
)
def test_promote_json_prints_a_document_when_it_fails(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], case: str, code: int
) -> None:
    """-o json prints one document on stdout when promote fails (exit 1, 2 or 3): the target, the
    error line as stderr shows it, and the exit code; before, stdout was empty."""
    module = gitops.repo("cart")
    if case == "unknown-module":
        module = "shop/nope"
    elif case == "diverged":
        _repush_in_dev(gitops, "cart", "2.4.0")
    result = cli("promote", module, "--to", "production", "-o", "json")
    assert result.code == code, result.err
    assert result.json() == {
        "target": "production",
        "error": result.err.strip().removeprefix("promoter: error: "),
        "exitCode": code,
    }


def test_an_images_entry_name_is_told_its_module(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """`promote ml`, where ml is the name: of dev's images: entry, says which module that is and
    to promote it (exit 2), instead of only "not a module of dev"."""
    _add_ml_chart(gitops)
    result = cli("promote", "ml", "--to", "production")
    assert result.code == 2
    assert result.err.strip() == (
        f"promoter: error: 'ml' is the images: entry name of module {gitops.repo('ml')}; "
        f"promote {gitops.repo('ml')}"
    )


@pytest.mark.parametrize("args", [(), ("--pin-digest",), ("--all",)])
def test_an_entry_in_a_typod_registry_is_moved_into_the_targets(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], args: tuple[str, ...]
) -> None:
    """Production's checkout entry names its registry in another region (a typo) at dev's 1.8.0:
    promote (named, --pin-digest, --all) moves the entry into production's registry, warns naming
    the registry it had, and the hook's list names the promoted image. Before, it said "already
    runs" (exit 0, JSON "after" in the right registry), dropped the line from the hook's list, and
    --all skipped the module."""
    digests = _seed_dev(gitops)
    typo = PROD.replace("us-east-1", "us-east-2")
    checkout = gitops.repo("checkout")
    path = gitops.kustomization("production")
    path.write_text(
        path.read_text().replace(f"newName: {PROD}/{checkout}", f"newName: {typo}/{checkout}")
    )
    listed = _use_hook_component(
        gitops,
        "".join(
            f"{PROD}/{gitops.repo(m)}:{t}\n"
            for m, t in (("cart", "2.3.1"), ("checkout", "1.8.0"), ("catalog", "3.0.2"))
        ),
    )
    modules = args if args == ("--all",) else (checkout, *args)
    result = cli("promote", *modules, "--to", "production", "-o", "json")
    assert result.code == 0, result.err
    text = path.read_text()
    assert typo not in text
    pin = f"\n    digest: {digests['checkout']}" if args == ("--pin-digest",) else ""
    assert f"newName: {PROD}/{checkout}\n    newTag: 1.8.0{pin}\n" in text
    [warning] = [ln for ln in result.err.splitlines() if typo in ln]
    assert warning.startswith("promoter: warning: ")
    assert "typo" in warning
    assert PROD in warning
    doc = result.json()
    assert not any("already runs" in str(n) for n in doc["notes"])  # type: ignore[union-attr]
    [change] = [m for m in doc["modules"] if m["module"] == checkout]  # type: ignore[union-attr]
    assert change["changed"] is True
    pinned = f"@{digests['checkout']}" if pin else ""
    assert change["after"] == f"{PROD}/{checkout}:1.8.0{pinned}"
    assert f"{PROD}/{checkout}:1.8.0{pinned}\n" in listed.read_text()
    plan = cli("plan", "production", "-o", "json").json()
    images = {str(i["image"]) for i in plan["images"]}  # type: ignore[union-attr]
    assert f"{PROD}/{checkout}:1.8.0{pinned}" in images
    assert not any(typo in image for image in images)


def test_an_entry_that_applies_nowhere_is_not_said_to_run(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Production's checkout entry already says 1.8.0 in its registry but its name matches no image
    (the chart writes `checkout`): promote changes nothing and says production does not run it
    (exit 2, file unchanged); before, it said "production already runs" and exited 0."""
    gitops.seed(gitops.dev, "checkout", "1.8.0")
    path = gitops.kustomization("production")
    path.write_text(path.read_text().replace("  - name: checkout\n", "  - name: checkout-v1\n"))
    before = path.read_text()
    result = cli("promote", gitops.repo("checkout"), "--to", "production")
    assert result.code == 2, result.err
    assert "already runs" not in result.err
    [line] = result.err.splitlines()
    assert "would not change what it runs" in line
    assert f"{gitops.repo('checkout')} (renders no image of it)" in line
    assert path.read_text() == before


def test_a_source_entry_that_applies_nowhere_is_named(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """`promote data/connect`, where dev's images: entry for connect applies to no rendered image
    (the image sits in a custom resource field kustomize does not rewrite), says so and to declare
    the field in configurations: (exit 2); before, only "not a module of dev"."""
    gitops.add_chart(
        "connect",
        "apiVersion: kafka.strimzi.io/v1beta2\nkind: KafkaConnect\nmetadata: {name: connect}\n"
        "spec:\n  image: connect\n",
    )
    gitops.deploy("dev", "connect", (DEV, "1.0.0"))
    for name in (gitops.repo("connect"), "connect"):
        result = cli("promote", name, "--to", "production")
        assert result.code == 2, result.err
        [line] = result.err.splitlines()
        assert line.startswith("promoter: error: ")
        assert "images: entry 'connect'" in line
        assert "configurations:" in line
        assert "not a module of dev" not in line


def test_promote_writes_nothing_through_a_linked_overlay_folder(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """An overlay folder that is a symbolic link (Git stores links) to another checkout would take
    promote's write outside the repository: refused (exit 2) naming the link, nothing written."""
    gitops.seed(gitops.dev, "cart", "2.4.0")
    real = gitops.root / "infra" / "overlays" / "production"
    elsewhere = tmp_path / "other-checkout" / "production"
    elsewhere.parent.mkdir()
    shutil.move(real, elsewhere)
    real.symlink_to(elsewhere, target_is_directory=True)
    before = (elsewhere / "kustomization.yaml").read_bytes()
    result = cli("promote", gitops.repo("cart"), "--to", "production")
    assert result.code == 2, result.err
    assert "infra/overlays/production passes a symbolic link" in result.err
    assert (elsewhere / "kustomization.yaml").read_bytes() == before
