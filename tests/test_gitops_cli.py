"""plan, sync, status and promote end to end: real kustomize, real registries behind ECR-like names."""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from devtools import images
from devtools.fault_proxy import FaultProxy
from tests.conftest import DEV, PROD, CliRun, GitOpsRepo
from tests.registry_checks import manifest_digest, push


def _statuses(run: CliRun) -> dict[str, str]:
    return {str(i["image"]): str(i["status"]) for i in run.json()["images"]}  # type: ignore[union-attr]


def test_plan_reports_every_status(gitops: GitOpsRepo, cli: Callable[..., CliRun]) -> None:
    """present, copy, diverged, missing-source and external all come out of real registries; a
    divergence is a warning (exit 0) unless --fail-on-diverged; a missing source exits 3."""
    dev, prod = gitops.dev, gitops.prod
    cart = gitops.seed(dev, "cart", "2.3.1")
    push(
        prod,
        gitops.repo("cart"),
        images.multi_arch_index(f"{gitops.prefix}-cart-2.3.1", layer_sizes=(300, 200)),
        tag="2.3.1",
    )
    gitops.seed(dev, "checkout", "1.8.0")  # production lacks it: copy
    wanted = gitops.seed(dev, "catalog", "3.0.2", seed="dev-catalog")
    held = gitops.seed(prod, "catalog", "3.0.2", seed="other-catalog")  # re-pushed in dev: diverged
    result = cli("plan", "production", "-o", "json")
    assert result.code == 0, result.err
    assert result.json()["environment"] == "production"
    statuses = _statuses(result)
    assert statuses == {
        f"{PROD}/{gitops.repo('cart')}:2.3.1": "present",
        f"{PROD}/{gitops.repo('catalog')}:3.0.2": "diverged",
        "docker.io/prom/statsd-exporter:v0.26.1": "external",
        f"{PROD}/{gitops.repo('checkout')}:1.8.0": "copy",
    }
    entry = next(i for i in result.json()["images"] if i["status"] == "present")  # type: ignore[union-attr]
    assert entry["source"] == f"{DEV}/{gitops.repo('cart')}:2.3.1"
    assert entry["digest"] == cart
    assert "destinationDigest" not in entry
    diverged = next(i for i in result.json()["images"] if i["status"] == "diverged")  # type: ignore[union-attr]
    assert (diverged["digest"], diverged["destinationDigest"]) == (wanted, held)
    assert diverged["blocking"] is False
    assert cli("plan", "production", "--fail-on-diverged").code == 3
    # sync keeps what production was given, warns naming both digests, and exits 0
    synced = cli("sync", "production")
    assert synced.code == 0, synced.err
    line = next(ln for ln in synced.err.splitlines() if gitops.repo("catalog") in ln)
    assert line.startswith("promoter: warning:")
    assert held in line
    assert wanted in line
    assert "push it under a new tag and promote that" in line
    assert "production: 1 copied, 2 present (1 diverged), 0 refused, 0 failed" in synced.out
    strict = cli("sync", "production", "--fail-on-diverged")
    assert strict.code == 3
    assert "production: 0 copied, 2 present, 1 refused, 0 failed" in strict.out
    assert any(held in ln and ln.startswith("promoter: error:") for ln in strict.err.splitlines())
    # Remove checkout from dev's reach: a tag nobody has is missing-source.
    text = gitops.kustomization("production").read_text().replace("newTag: 1.8.0", "newTag: 9.9.9")
    gitops.kustomization("production").write_text(text)
    missing = _statuses(cli("plan", "production", "-o", "json"))
    assert missing[f"{PROD}/{gitops.repo('checkout')}:9.9.9"] == "missing-source"


def test_sync_copies_what_is_missing_reports_it_and_reruns_as_a_no_op(
    gitops: GitOpsRepo,
    cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    """sync copies only the overlay's managed images, writes a report, and a re-run only reads."""
    digests = {
        "cart": gitops.seed(gitops.dev, "cart", "2.3.1"),
        "checkout": gitops.seed(gitops.dev, "checkout", "1.8.0"),
        "catalog": gitops.seed(gitops.dev, "catalog", "3.0.2"),
    }
    gitops.seed(gitops.dev, "cart", "2.4.0")  # in dev only: production does not ask for it
    report = tmp_path / "report.json"
    first = cli("sync", "production", "--report", str(report))
    assert first.code == 0, first.err
    for module, digest in digests.items():
        tag = {"cart": "2.3.1", "checkout": "1.8.0", "catalog": "3.0.2"}[module]
        assert manifest_digest(gitops.prod, gitops.repo(module), tag) == digest
    assert manifest_digest(gitops.prod, gitops.repo("cart"), "2.4.0") is None  # selective
    record = json.loads(report.read_text())
    assert record["environment"] == "production"
    copied = {r["destination"]: r for r in record["images"]}
    entry = copied[f"{PROD}/{gitops.repo('checkout')}:1.8.0"]
    assert entry["source"] == f"{DEV}/{gitops.repo('checkout')}:1.8.0"
    assert entry["digest"] == digests["checkout"]
    assert entry["bytes"] > 0
    assert entry["seconds"] >= 0

    with FaultProxy(gitops.prod.url) as proxy:
        config = gitops.root / "promoter.yaml"
        config.write_text(config.read_text().replace(gitops.prod.url, proxy.url))
        again = cli("sync", "production")
        writes = [h for h in proxy.hits if h.method not in ("GET", "HEAD")]
    assert again.code == 0, again.err
    assert "0 copied" in again.out
    assert writes == []


def test_sync_tries_everything_and_fails_on_what_it_cannot_fix(
    gitops: GitOpsRepo,
    cli: Callable[..., CliRun],
) -> None:
    """With one image missing everywhere, the others are still copied and sync exits non-zero."""
    gitops.seed(gitops.dev, "cart", "2.3.1")
    gitops.seed(gitops.dev, "catalog", "3.0.2")
    result = cli("sync", "production")  # checkout 1.8.0 is in no registry
    assert result.code == 3
    assert f"{gitops.repo('checkout')}:1.8.0" in result.err
    assert manifest_digest(gitops.prod, gitops.repo("cart"), "2.3.1") is not None
    assert manifest_digest(gitops.prod, gitops.repo("catalog"), "3.0.2") is not None
    dry = cli("sync", "production", "--dry-run", "-o", "json")
    assert dry.code == 3
    assert _statuses(dry)[f"{PROD}/{gitops.repo('checkout')}:1.8.0"] == "missing-source"


def test_status_shows_versions_presence_and_who_is_behind(
    gitops: GitOpsRepo,
    cli: Callable[..., CliRun],
) -> None:
    """One row per module, one column per environment in pipeline order, with behind marks."""
    cart_digest = gitops.seed(gitops.dev, "cart", "2.4.0")
    gitops.seed(gitops.dev, "checkout", "1.8.0")
    gitops.seed(gitops.prod, "checkout", "1.8.0")
    result = cli("status", "-o", "json")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["environments"] == ["dev", "production"]
    rows = {row["module"]: row["environments"] for row in doc["modules"]}  # type: ignore[union-attr]
    cart = rows[gitops.repo("cart")]
    assert cart["dev"] == {
        "image": f"{DEV}/{gitops.repo('cart')}:2.4.0",
        "tag": "2.4.0",
        "digest": cart_digest,
        "present": True,
        "behind": False,
        "drift": "none",
        "state": "present",
    }
    assert cart["production"]["tag"] == "2.3.1"
    assert cart["production"]["behind"] is True
    assert cart["production"]["drift"] == "behind"
    assert cart["production"]["present"] is False
    assert rows[gitops.repo("checkout")]["production"]["behind"] is False
    assert rows[gitops.repo("checkout")]["production"]["drift"] == "in-sync"
    assert rows[gitops.repo("catalog")]["dev"]["present"] is False
    table = cli("status")
    assert table.code == 0
    line = next(ln for ln in table.out.splitlines() if ln.startswith(gitops.repo("cart")))
    assert "2.4.0" in line
    assert "< 2.3.1 (missing)" in line


def _drifts(run: CliRun, gitops: GitOpsRepo, env: str = "production") -> dict[str, object]:
    """module -> the environment's drift, from ``status -o json``."""
    rows = {r["module"]: r["environments"] for r in run.json()["modules"]}  # type: ignore[union-attr]
    return {
        module.split("/", 1)[1]: cells[env]["drift"]
        for module, cells in rows.items()
        if env in cells and module.startswith(gitops.prefix)
    }


def test_status_tells_behind_from_ahead_from_another_version_from_diverged(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """'<' only where production runs an older version than dev; a newer one is '>' (never
    behind), tags without an order are '~', and the same tag on other content is '!'."""
    for module, tag in (("cart", "2.4.0"), ("checkout", "latest"), ("catalog", "3.1.0")):
        gitops.seed(gitops.dev, module, tag)
    gitops.seed(gitops.prod, "catalog", "3.1.0", seed="rebuilt-in-production")
    dev = gitops.kustomization("dev")
    dev.write_text(dev.read_text().replace("newTag: 1.8.0", "newTag: latest"))
    production = gitops.kustomization("production")
    production.write_text(production.read_text().replace("newTag: 2.3.1", "newTag: 2.10.0"))
    patch = production.with_name("patch-image.yaml")
    patch.write_text(patch.read_text().replace("catalog:3.0.2", "catalog:3.1.0"))
    result = cli("status", "-o", "json")
    assert result.code == 0, result.err
    assert _drifts(result, gitops) == {
        "cart": "ahead",  # 2.10.0 is newer than 2.4.0: numbers, not text
        "checkout": "differs",  # 1.8.0 against latest: no order
        "catalog": "diverged",  # 3.1.0 in both, other bytes
    }
    table = cli("status").out
    cart = next(ln for ln in table.splitlines() if ln.startswith(gitops.repo("cart")))
    assert "> 2.10.0" in cart
    assert "<" not in cart
    catalog = next(ln for ln in table.splitlines() if ln.startswith(gitops.repo("catalog")))
    assert "! 3.1.0" in catalog
    checkout = next(ln for ln in table.splitlines() if ln.startswith(gitops.repo("checkout")))
    assert "~ 1.8.0" in checkout


def test_an_image_deployed_from_another_environments_registry_is_foreign(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Production running dev's image is foreign-environment: plan shows it and exits 3, sync
    refuses it (exit 3, nothing copied for it), status marks the cell; allowImagesFrom or
    --allow-foreign lets it through with a warning."""
    gitops.seed(gitops.dev, "cart", "2.3.1")
    gitops.seed(gitops.dev, "checkout", "1.8.0")
    gitops.seed(gitops.dev, "catalog", "3.0.2")
    production = gitops.kustomization("production")
    production.write_text(
        production.read_text().replace(
            f"newName: {PROD}/{gitops.repo('checkout')}",
            f"newName: {DEV}/{gitops.repo('checkout')}",
        )
    )
    dev_image = f"{DEV}/{gitops.repo('checkout')}:1.8.0"
    plan = cli("plan", "production", "-o", "json")
    assert plan.code == 3
    entry = next(i for i in plan.json()["images"] if i["image"] == dev_image)  # type: ignore[union-attr]
    assert entry["status"] == "foreign-environment"
    assert entry["foreignEnvironment"] == "dev"
    assert entry["blocking"] is True
    synced = cli("sync", "production")
    assert synced.code == 3
    assert any(
        dev_image in ln and "environment dev" in ln and "allowImagesFrom" in ln
        for ln in synced.err.splitlines()
    )
    assert "1 refused" in synced.out
    assert manifest_digest(gitops.prod, gitops.repo("checkout"), "1.8.0") is None
    status = cli("status", "-o", "json")
    rows = {r["module"]: r["environments"] for r in status.json()["modules"]}  # type: ignore[union-attr]
    assert rows[gitops.repo("checkout")]["production"]["foreignEnvironment"] == "dev"
    assert "(from dev)" in cli("status").out
    allowed_sync = cli("sync", "production", "--allow-foreign")
    assert allowed_sync.code == 0, allowed_sync.err
    # neither copied nor looked up: counted apart, never as present
    assert "2 present, 0 refused, 0 failed, 1 from other environments (allowed)" in allowed_sync.out
    config = gitops.root / "promoter.yaml"
    config.write_text(
        config.read_text().replace(
            "    promotesFrom: dev\n", "    promotesFrom: dev\n    allowImagesFrom: [dev]\n"
        )
    )
    allowed = cli("plan", "production")
    assert allowed.code == 0, allowed.err
    assert any(
        ln.startswith("promoter: warning:") and dev_image in ln for ln in allowed.err.splitlines()
    )


def test_status_keeps_gits_view_when_a_registry_cannot_be_asked(
    gitops: GitOpsRepo,
    cli: Callable[..., CliRun],
) -> None:
    """A registry that is down leaves its cells unknown (with why) and the rest complete: the table is
    printed and status exits 0, as documented."""
    gitops.seed(gitops.prod, "checkout", "1.8.0")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    config = gitops.root / "promoter.yaml"
    config.write_text(config.read_text().replace(gitops.dev.url, f"http://127.0.0.1:{closed}"))
    result = cli("status", "-o", "json")
    assert result.code == 0, result.err
    rows = {row["module"]: row["environments"] for row in result.json()["modules"]}  # type: ignore[union-attr]
    dev_cart = rows[gitops.repo("cart")]["dev"]
    assert dev_cart["present"] is None
    assert f"cannot connect to 127.0.0.1:{closed}" in dev_cart["error"]
    assert rows[gitops.repo("checkout")]["production"]["present"] is True
    assert "error" not in rows[gitops.repo("checkout")]["production"]
    assert all(line.startswith("promoter: warning: ") for line in result.err.splitlines())
    table = cli("status")
    assert table.code == 0
    line = next(ln for ln in table.out.splitlines() if ln.startswith(gitops.repo("checkout")))
    assert "(unknown)" in line  # dev's column
    assert "1.8.0" in line
    # plan names the unreachable registry once, not once per image looked up there
    planned = cli("plan", "production")
    assert planned.code == 1
    errors = [ln for ln in planned.err.splitlines() if f"127.0.0.1:{closed}" in ln]
    assert len(errors) == 1, planned.err
    synced = cli("sync", "dev")
    assert synced.code == 1
    assert len([ln for ln in synced.err.splitlines() if f"127.0.0.1:{closed}" in ln]) == 1


def test_promote_changes_only_the_module_keeps_comments_and_can_sync(
    gitops: GitOpsRepo,
    cli: Callable[..., CliRun],
) -> None:
    """promote rewrites one newTag in place (the rest of the file byte-identical), prints the diff,
    and --sync copies just that image."""
    path = gitops.kustomization("production")
    before = path.read_text()
    digest = gitops.seed(gitops.dev, "cart", "2.4.0")
    result = cli("promote", gitops.repo("cart"), "--to", "production", "--sync")
    assert result.code == 0, result.err
    assert path.read_text() == before.replace("newTag: 2.3.1  # set by", "newTag: 2.4.0  # set by")
    assert "--- a/infra/overlays/production/kustomization.yaml" in result.out
    assert "-    newTag: 2.3.1" in result.out
    assert "+    newTag: 2.4.0" in result.out
    assert manifest_digest(gitops.prod, gitops.repo("cart"), "2.4.0") == digest
    assert manifest_digest(gitops.prod, gitops.repo("checkout"), "1.8.0") is None  # not promoted


def test_promote_a_patched_module_appends_an_images_entry_and_pins_digests(
    gitops: GitOpsRepo,
    cli: Callable[..., CliRun],
) -> None:
    """A module set by a patch gets a new images: entry that kustomize applies; --pin-digest writes
    the digest the source runs."""
    path = gitops.kustomization("production")
    before = path.read_text()
    digest = gitops.seed(gitops.dev, "catalog", "3.1.0")
    result = cli("promote", gitops.repo("catalog"), "--to", "production", "--pin-digest")
    assert result.code == 0, result.err
    assert path.read_text() == before + (
        f"  - name: {PROD}/{gitops.repo('catalog')}\n    newTag: 3.1.0\n    digest: {digest}\n"
    )
    plan = cli("plan", "production", "-o", "json")
    assert _statuses(plan)[f"{PROD}/{gitops.repo('catalog')}:3.1.0@{digest}"] == "copy"


def test_promote_all_and_bad_module_names(gitops: GitOpsRepo, cli: Callable[..., CliRun]) -> None:
    """--all promotes every module of the source; an unknown module is exit 2 naming the known ones."""
    for module, tag in (("cart", "2.4.0"), ("checkout", "1.8.0"), ("catalog", "3.1.0")):
        gitops.seed(gitops.dev, module, tag)
    unknown = cli("promote", "shop/nope", "--to", "production")
    assert unknown.code == 2
    assert gitops.repo("cart") in unknown.err
    assert cli("promote", "--to", "production").code == 2
    everything = cli("promote", "--all", "--to", "production")
    assert everything.code == 0, everything.err
    text = gitops.kustomization("production").read_text()
    assert "newTag: 2.4.0" in text
    assert "newTag: 3.1.0" in text
    assert cli("promote", "--all", "--to", "dev").code == 2  # dev promotes from nowhere


def test_plan_from_rendered_manifests_on_stdin(
    gitops: GitOpsRepo,
    cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    """--manifests takes already rendered manifests (helm template output) instead of kustomize."""
    manifests = tmp_path / "rendered.yaml"
    manifests.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
        f"    - name: a\n      image: {PROD}/{gitops.repo('helm')}:0.1.0\n"
    )
    digest = gitops.seed(gitops.dev, "helm", "0.1.0")
    result = cli("sync", "production", "--manifests", str(manifests), "-o", "json")
    assert result.code == 0, result.err
    assert manifest_digest(gitops.prod, gitops.repo("helm"), "0.1.0") == digest


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (
            lambda root: shutil.rmtree(root / "infra" / "overlays" / "production"),
            "overlays/production",
        ),
        (
            lambda root: (root / "infra/overlays/production/kustomization.yaml").write_text(
                "resources:\n  - does-not-exist.yaml\n"
            ),
            "kustomize",
        ),
        (
            lambda root: (root / "promoter.yaml").write_text(
                (root / "promoter.yaml")
                .read_text()
                .replace("promotesFrom: dev", "promotesFrom: dev\n    overlays: x")
            ),
            "unknown key",
        ),
        (
            lambda root: (root / "promoter.yaml").write_text(
                (root / "promoter.yaml")
                .read_text()
                .replace(
                    f"registry: {DEV}\n", f"registry: {DEV}\n    promotesFrom: production\n", 1
                )
            ),
            "cycle",
        ),
        (
            lambda root: (root / "promoter.yaml").write_text(
                (root / "promoter.yaml").read_text().replace("endpoint: http", "endpoint: 5", 1)
            ),
            "endpoint",
        ),
    ],
)
def test_bad_input_is_one_line_with_exit_2(
    gitops: GitOpsRepo,
    cli: Callable[..., CliRun],
    mutate: Callable[[Path], object],
    fragment: str,
) -> None:
    """A missing overlay, a kustomize failure and config mistakes exit 2 with one line naming them."""
    mutate(gitops.root)
    result = cli("plan", "production")
    assert result.code == 2, result.err
    assert fragment in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert "Traceback" not in result.err


def test_unknown_environment_and_no_config(
    gitops: GitOpsRepo,
    cli: Callable[..., CliRun],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unknown environment names the known ones; without promoter.yaml the message says so."""
    result = cli("plan", "staging")
    assert result.code == 2
    assert "dev" in result.err
    assert "production" in result.err
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    monkeypatch.chdir(empty)
    none = cli("plan", "production")
    assert none.code == 2
    assert "promoter.yaml" in none.err


def test_promote_refuses_an_edit_that_would_not_change_what_runs(
    gitops: GitOpsRepo,
    cli: Callable[..., CliRun],
) -> None:
    """An images: entry that matches by repository but that kustomize never applies (the patch set
    the full image) is refused with exit 2 and the file is left as it was."""
    path = gitops.kustomization("production")
    text = path.read_text() + (
        f"  - name: catalog\n    newName: {PROD}/{gitops.repo('catalog')}\n    newTag: 3.0.2\n"
    )
    path.write_text(text)
    gitops.seed(gitops.dev, "catalog", "3.1.0")
    result = cli("promote", gitops.repo("catalog"), "--to", "production")
    assert result.code == 2
    assert "would not change what it runs" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert path.read_text() == text


def test_promote_refuses_a_module_the_source_runs_in_two_versions(
    gitops: GitOpsRepo,
    cli: Callable[..., CliRun],
) -> None:
    """When dev runs two versions of one module, promote names them instead of picking one."""
    dev = gitops.kustomization("dev")
    dev.write_text(
        dev.read_text()
        + "patches:\n  - target: {kind: CronJob, name: checkout-reconcile}\n    patch: |-\n"
        "      - op: replace\n        path: /spec/jobTemplate/spec/template/spec/containers/0/image\n"
        f"        value: {DEV}/{gitops.repo('checkout')}:1.9.0-rc1\n"
    )
    result = cli("promote", gitops.repo("checkout"), "--to", "production")
    assert result.code == 2
    assert "1.8.0" in result.err
    assert "1.9.0-rc1" in result.err


def test_status_compares_content_not_spelling(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A module pinned by digest in production that runs dev's exact content is not behind, and
    the pin keeps the tag, so the copy in production is tagged."""
    digest = gitops.seed(gitops.dev, "cart", "2.4.0")
    promoted = cli("promote", gitops.repo("cart"), "--to", "production", "--pin-digest", "--sync")
    assert promoted.code == 0, promoted.err
    rows = {r["module"]: r["environments"] for r in cli("status", "-o", "json").json()["modules"]}  # type: ignore[union-attr]
    production = rows[gitops.repo("cart")]["production"]
    assert production["digest"] == digest
    assert production["present"] is True
    assert production["behind"] is False
    assert manifest_digest(gitops.prod, gitops.repo("cart"), "2.4.0") == digest  # tag kept


def test_plan_reads_rendered_manifests_from_stdin(
    gitops: GitOpsRepo,
    cli: Callable[..., CliRun],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--manifests - reads what helm template (or any renderer) prints on standard input."""
    digest = gitops.seed(gitops.dev, "piped", "0.2.0")
    monkeypatch.setattr(
        "sys.stdin",
        io.StringIO(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n"
            f"      containers:\n        - name: a\n          image: {PROD}/{gitops.repo('piped')}:0.2.0\n"
        ),
    )
    result = cli("plan", "production", "--manifests", "-", "-o", "json")
    assert result.code == 0, result.err
    [item] = result.json()["images"]  # type: ignore[misc]
    assert item["status"] == "copy"
    assert item["digest"] == digest


#: What production's overlay runs in the example: module -> tag.
_PRODUCTION_TAGS = (("cart", "2.3.1"), ("checkout", "1.8.0"), ("catalog", "3.0.2"))


def _production_in_both(gitops: GitOpsRepo) -> str:
    """Push production's images to both registries; the hook list that names them all."""
    for module, tag in _PRODUCTION_TAGS:
        gitops.seed(gitops.dev, module, tag)
        gitops.seed(gitops.prod, module, tag)
    return "".join(f"{PROD}/{gitops.repo(m)}:{t}\n" for m, t in _PRODUCTION_TAGS)


def _use_hook_component(gitops: GitOpsRepo, listed: str) -> Path:
    """Give the production overlay the Kustomize hook component and its image file."""
    component = Path(__file__).resolve().parent.parent / "deploy" / "kustomize" / "promoter-hook"
    overlay = gitops.root / "infra" / "overlays" / "production"
    shutil.copytree(component, gitops.root / "deploy" / "promoter-hook")
    (overlay / "promoter-images.txt").write_text(listed)
    path = gitops.kustomization("production")
    path.write_text(
        path.read_text()
        + "components:\n  - ../../../deploy/promoter-hook\n"
        + "configMapGenerator:\n  - name: promoter-hook\n    literals:\n"
        + f"      - sourceRegistry={DEV}\n    files:\n      - promoter-images.txt\n"
    )
    return overlay / "promoter-images.txt"


def test_plan_reports_a_hook_file_that_lacks_an_image(
    gitops: GitOpsRepo,
    cli: Callable[..., CliRun],
) -> None:
    """With the Kustomize component, an image the overlay runs but promoter-images.txt lacks blocks
    the plan and the sync (exit 3): the hook Job would not copy it. The hook's own image is not
    planned."""
    for module, tag in (("cart", "2.3.1"), ("checkout", "1.8.0"), ("catalog", "3.0.2")):
        gitops.seed(gitops.dev, module, tag)
        gitops.seed(gitops.prod, module, tag)
    _use_hook_component(gitops, f"{PROD}/{gitops.repo('cart')}:2.3.1\n")
    result = cli("plan", "production", "-o", "json")
    assert result.code == 3, result.err
    doc = result.json()
    assert set(doc["hookFile"]["missing"]) == {  # type: ignore[index]
        f"{PROD}/{gitops.repo('checkout')}:1.8.0",
        f"{PROD}/{gitops.repo('catalog')}:3.0.2",
    }
    assert all("promoter" not in str(i["image"]).rsplit("/", 1)[-1] for i in doc["images"])  # type: ignore[union-attr]
    table = cli("plan", "production")
    assert "lacks" in table.err
    # sync makes the images present, but the hook's list still lacks them: exit 3, not 0
    synced = cli("sync", "production")
    assert synced.code == 3, synced.err
    assert "3 present" in synced.out
    assert any(
        "lacks" in ln and ln.startswith("promoter: error:") for ln in synced.err.splitlines()
    )


def test_a_hook_file_line_outside_the_environments_registry_fails_plan_and_sync(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A dev-registry line in promoter-images.txt makes the hook Job refuse (foreign-environment,
    exit 3) on every Argo CD sync: plan and sync say so and exit 3 instead of warning. The
    component's images: entry for the hook's own image is not called unused."""
    listed = _production_in_both(gitops)
    _use_hook_component(gitops, listed + f"{DEV}/{gitops.repo('cart')}:2.4.0\n")
    path = gitops.kustomization("production")
    path.write_text(
        path.read_text().replace(
            "images:\n",
            f"images:\n  - name: promoter\n    newName: {PROD}/tools/promoter\n    newTag: 0.1.0\n",
        )
    )
    for command in ("plan", "sync"):
        result = cli(command, "production")
        assert result.code == 3, result.err
        line = next(ln for ln in result.err.splitlines() if f"{DEV}/{gitops.repo('cart')}" in ln)
        assert line.startswith("promoter: error:")
        assert "the hook Job would refuse it" in line
        assert "'promoter'" not in result.err  # the hook image's entry applies to the hook Job


def test_promote_keeps_the_hook_file_current(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """promote rewrites promoter-images.txt to what the overlay now runs, keeping its header."""
    path = _use_hook_component(gitops, "# images the hook copies\n")
    gitops.seed(gitops.dev, "cart", "2.4.0")
    result = cli("promote", gitops.repo("cart"), "--to", "production")
    assert result.code == 0, result.err
    assert path.read_text() == "# images the hook copies\n" + "".join(
        f"{PROD}/{gitops.repo(m)}:{t}\n"
        for m, t in sorted((("cart", "2.4.0"), ("catalog", "3.0.2"), ("checkout", "1.8.0")))
    )
    assert "promoter-images.txt" in result.out


def test_a_hook_file_that_is_a_symlink_is_neither_printed_nor_overwritten(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """promoter-images.txt in an overlay as a symbolic link to a file outside the repository (Git
    stores links; kustomize need not read it): plan and promote exit 2 with one line naming it as
    a link, print none of the linked file's lines, and leave that file and the kustomization as
    they were."""
    outside = tmp_path / "outside.txt"
    outside.write_text("secret-line-one\nsecret-line-two\n")
    path = gitops.root / "infra" / "overlays" / "production" / "promoter-images.txt"
    path.symlink_to(outside)
    gitops.seed(gitops.dev, "cart", "2.4.0")
    kustomization = gitops.kustomization("production").read_text()
    expected = (
        f"promoter: error: image list {path} is a symbolic link; promoter reads and writes this "
        "file only as a regular file, never through a link: replace the link with the file itself"
    )
    for args in (
        ("plan", "production"),
        ("plan", "production", "-o", "json"),
        ("promote", gitops.repo("cart"), "--to", "production"),
    ):
        run = cli(*args)
        assert run.code == 2, (args, run.err)
        assert "secret-line" not in run.out + run.err
        assert expected in run.err.splitlines(), run.err
    assert outside.read_text() == "secret-line-one\nsecret-line-two\n"
    assert gitops.kustomization("production").read_text() == kustomization


def test_promote_refuses_a_hook_file_over_the_list_cap(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A promoter-images.txt over the 4 MiB cap of list files, which plan refuses, is not rewritten
    by promote either: exit 2 in one line, the file and the kustomization as they were."""
    listed = "# images the hook copies\n" + f"{PROD}/{gitops.repo('cart')}:2.3.1\n" * 90_000
    assert len(listed) > 5_500_000
    path = _use_hook_component(gitops, listed)
    gitops.seed(gitops.dev, "cart", "2.4.0")
    kustomization = gitops.kustomization("production").read_text()
    assert cli("plan", "production").code == 2
    run = cli("promote", gitops.repo("cart"), "--to", "production")
    assert run.code == 2, run.err
    assert run.err.splitlines()[-1] == (
        f"promoter: error: image list {path} is larger than 4 MiB, the limit for a list file; "
        "split it into several files"
    )
    assert path.read_text() == listed
    assert gitops.kustomization("production").read_text() == kustomization


def test_a_container_beside_promoters_own_in_a_hook_job_is_planned(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A hook Job whose promoter container shares the Job with another one (a migration): plan
    takes the other container's image as usual, only promoter's own image is left out; argocd
    generate refuses the overlay, which already has promoter's hook (one packaging per overlay)."""
    overlay = gitops.root / "infra" / "overlays" / "production"
    migrator = f"{PROD}/{gitops.repo('migrator')}:9.9.9"
    (overlay / "migrate-job.yaml").write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n"
        "    argocd.argoproj.io/hook: PreSync\nspec:\n  template:\n    spec:\n"
        "      restartPolicy: Never\n      containers:\n"
        f"        - name: promoter\n          image: {PROD}/tools/promoter:1.0.0\n"
        "          command: [promoter]\n"
        f"          args: [sync, --from-registry, {DEV}, --image, {migrator}]\n"
        f"        - name: migrate\n          image: {migrator}\n"
    )
    path = gitops.kustomization("production")
    path.write_text(path.read_text().replace("resources:\n", "resources:\n  - migrate-job.yaml\n"))
    for module, tag in (("cart", "2.3.1"), ("checkout", "1.8.0"), ("catalog", "3.0.2")):
        gitops.seed(gitops.prod, module, tag)
    gitops.seed(gitops.dev, "migrator", "9.9.9")
    planned = cli("plan", "production", "-o", "json")
    assert planned.code == 0, planned.err
    statuses = {str(i["image"]): i["status"] for i in planned.json()["images"]}  # type: ignore[union-attr]
    assert statuses[migrator] == "copy"
    assert not [image for image in statuses if "/tools/promoter" in image]
    generated = cli("argocd", "generate", "--source-dir", str(overlay))
    assert generated.code == 2
    assert generated.out == ""
    assert "already contains promoter's hook (Job/migrate runs promoter sync" in generated.err


@pytest.mark.parametrize("command", [["plan", "production"], ["sync", "production"], ["status"]])
def test_an_environment_whose_registry_its_overlay_never_uses_is_an_error(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], command: list[str]
) -> None:
    """A typo in production's registry (another region) made every image 'external': plan said
    nothing to do, sync copied nothing and exited 0. Now it is bad input naming the registries."""
    wrong = PROD.replace("us-east-1", "us-east-2")
    config = gitops.root / "promoter.yaml"
    text = config.read_text()
    config.write_text(text.replace(f"registry: {PROD}", f"registry: {wrong}"))
    result = cli(*command)
    assert result.code == 2, result.err
    errors = [ln for ln in result.err.splitlines() if ln.startswith("promoter: error:")]
    assert len(errors) == 1, result.err
    # the registries: entry of the right host now matches no environment: said too, as a warning
    assert f"registries.{PROD} matches no environment's registry" in result.err
    assert f"environment production: its overlay deploys no image of its registry {wrong}" in (
        result.err
    )
    assert f"the overlay's images are in {PROD}" in result.err
    assert "environments.production.registry" in result.err


def test_the_plan_table_fits_100_columns(gitops: GitOpsRepo, cli: Callable[..., CliRun]) -> None:
    """With the article's ECR names the table fits 100 columns: the source is shown as the
    environment it promotes from, not as a second full reference."""
    gitops.seed(gitops.dev, "cart", "2.3.1")
    result = cli("plan", "production")
    table = [ln for ln in result.out.splitlines() if ln.startswith(("STATUS", "copy", "missing"))]
    assert len(table) >= 3
    assert max(len(ln) for ln in table) <= 100, "\n".join(table)
    row = next(ln for ln in table if gitops.repo("cart") in ln)
    assert row.split()[2] == "dev"


def test_a_registries_entry_that_matches_no_environment_is_warned_about(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A typo in a registries: key (an account digit off) leaves its endpoint unused: plan says so
    on standard error, naming the key and the environments' registries."""
    config = gitops.root / "promoter.yaml"
    typo = PROD.replace("222222222222", "222222222223")
    config.write_text(config.read_text() + f"  {typo}:\n    endpoint: {gitops.prod.url}\n")
    result = cli("plan", "production")
    warning = next(ln for ln in result.err.splitlines() if f"registries.{typo}" in ln)
    assert warning.startswith("promoter: warning:")
    assert "matches no environment's registry" in warning
    assert PROD in warning
    clean = gitops.root / "clean.yaml"
    clean.write_text(
        config.read_text().replace(f"  {typo}:\n    endpoint: {gitops.prod.url}\n", "")
    )
    assert "matches no environment" not in cli("plan", "production", "--config", str(clean)).err


def test_config_names_a_folder_or_the_file_before_or_after_the_command(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config DIR reads DIR/promoter.yaml; --config before the command works as after it; a
    folder without the file, and --config before a command that reads none, are usage errors."""
    monkeypatch.chdir(tmp_path)
    for args in (
        ("plan", "production", "--config", str(gitops.root)),
        ("--config", str(gitops.root), "plan", "production"),
        ("--config", str(gitops.root / "promoter.yaml"), "status"),
    ):
        run = cli(*args)
        assert run.code in (0, 3), (args, run.err)
        assert "production" in run.out
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = cli("plan", "production", "--config", str(empty))
    assert missing.code == 2
    expected = (
        f"promoter: error: --config {empty}: a folder without promoter.yaml; name the file itself, "
        "or a folder that has a promoter.yaml"
    )
    assert missing.err.splitlines() == [expected]
    login = cli("--config", str(gitops.root), "login", "-u", "x", "127.0.0.1:1")
    assert login.code == 2
    assert "'login' reads no promoter.yaml" in login.err


def test_config_named_twice_is_fine_when_both_name_one_file(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config before and after the command naming one promoter.yaml (its folder, the file, a link
    to the folder) is that file; two different files are a usage error naming both."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link").symlink_to(gitops.root)
    config = gitops.root / "promoter.yaml"
    for before, after in ((gitops.root, config), (tmp_path / "link", config), (config, config)):
        run = cli("--config", str(before), "status", "--config", str(after))
        assert run.code == 0, (before, after, run.err)
        assert gitops.repo("cart") in run.out
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(config, other / "promoter.yaml")
    run = cli("--config", str(other), "status", "--config", str(config))
    assert run.code == 2
    assert run.err.splitlines() == [
        (
            f"promoter: error: --config is given twice with different files "
            f"({other / 'promoter.yaml'}, {config}); give it once"
        )
    ]


def test_rendered_manifests_may_come_through_a_pipe_but_promoter_yaml_may_not(
    gitops: GitOpsRepo, tmp_path: Path
) -> None:
    """--manifests <(command) is read as a stream, as standard input is; --config <(command) is
    refused in one line (exit 2): promoter.yaml must be a regular file, never waited on."""
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
        f"    - name: a\n      image: {PROD}/{gitops.repo('helm')}:0.1.0\n"
    )
    gitops.seed(gitops.dev, "helm", "0.1.0")
    promoter = Path(sys.executable).parent / "promoter"

    def plan(options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", f'exec "{promoter}" plan production -o json {options}'],
            cwd=gitops.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    piped = plan(f'--manifests <(cat "{rendered}")')
    assert piped.returncode == 0, piped.stderr
    [item] = json.loads(piped.stdout)["images"]
    assert (item["image"], item["status"]) == (f"{PROD}/{gitops.repo('helm')}:0.1.0", "copy")
    refused = plan(f'--manifests "{rendered}" --config <(cat promoter.yaml)')
    assert refused.returncode == 2
    assert re.fullmatch(
        r"promoter: error: /dev/fd/\d+ is a named pipe \(FIFO\), not a regular file; "
        r"give a regular file\n",
        refused.stderr,
    ), refused.stderr


def test_empty_rendered_manifests_are_an_error_not_an_empty_plan(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty pipe (the renderer before promoter failed) exits 2 instead of planning nothing."""
    monkeypatch.setattr("sys.stdin", io.StringIO("# rendered by nothing\n---\n"))
    result = cli("plan", "production", "--manifests", "-")
    assert result.code == 2
    assert "manifests from standard input: no manifests at all" in result.err


def test_an_unqualified_image_named_like_another_environments_entry_is_warned_about(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Production's overlay without checkout's images: entry runs 'checkout' (docker.io/library/
    checkout): plan still plans it as external, but warns that dev's kustomization renames that
    name, in text and in JSON."""
    production = gitops.kustomization("production")
    text = production.read_text()
    start = text.index("  - name: checkout")
    production.write_text(text[:start])
    result = cli("plan", "production")
    warning = next(ln for ln in result.err.splitlines() if "'checkout'" in ln)
    assert warning.startswith("promoter: warning: environment production runs 'checkout'")
    assert "docker.io/library/checkout" in warning
    assert f"dev's kustomization renames 'checkout' to {DEV}/{gitops.repo('checkout')}" in warning
    as_json = cli("plan", "production", "-o", "json").json()
    assert any("'checkout'" in w for w in as_json["warnings"])  # type: ignore[index,union-attr]
    assert "warnings" not in cli("plan", "dev", "-o", "json").json()  # type: ignore[operator]


def test_rendered_manifests_with_a_wrong_registry_are_refused_too(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """plan and sync --manifests (a Helm user's pipe) check the registry as a render does: manifests
    naming another region's registry exit 2, not 'nothing to copy'."""
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(gitops.root / "infra" / "overlays" / "production")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    typo = tmp_path / "typo.yaml"
    typo.write_text(rendered.replace(PROD, PROD.replace("us-east-1", "us-east-2")))
    for command in ("plan", "sync"):
        result = cli(command, "production", "--manifests", str(typo))
        assert result.code == 2, result.err
        assert "the given manifests deploy no image of its registry" in result.err
        assert "check the manifests" in result.err
    # dev's overlay broken: the check cannot be made, and says so instead of planning nothing
    gitops.kustomization("dev").rename(gitops.kustomization("dev").with_name("moved.yaml"))
    skipped = cli("plan", "production", "--manifests", str(typo))
    line = next(ln for ln in skipped.err.splitlines() if "could not be rendered" in ln)
    assert line.startswith("promoter: warning: environment production: its images name none")


def test_an_overlay_of_only_another_environments_images_says_so_and_can_be_allowed(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """When production's overlay deploys only dev's images, the error names dev's registry and
    says to promote (not to change production's registry); allowImagesFrom lets it through to
    the foreign-environment statuses."""
    for module, tag in (("cart", "2.3.1"), ("checkout", "1.8.0"), ("catalog", "3.0.2")):
        gitops.seed(gitops.dev, module, tag)
    for path in (
        gitops.kustomization("production"),
        gitops.kustomization("production").with_name("patch-image.yaml"),
    ):
        path.write_text(path.read_text().replace(PROD, DEV))
    refused = cli("plan", "production")
    assert refused.code == 2
    [line] = refused.err.splitlines()
    assert f"but images of dev ({DEV})" in line
    assert "promoter promote --all --to production" in line
    assert "check environments.production.registry" not in line
    allowed = cli("plan", "production", "--allow-foreign", "-o", "json")
    assert allowed.code == 0, allowed.err
    assert {i["status"] for i in allowed.json()["images"]} == {"foreign-environment", "external"}  # type: ignore[union-attr]


def test_an_images_entry_that_matches_nothing_is_warned_about(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A custom resource writing 'image: connect' in a field kustomize does not rewrite leaves the
    overlay's images: entry for 'connect' unused: plan warns (kustomize and the plan are silent
    otherwise); the example's own entries raise no warning."""
    assert "warnings" not in cli("plan", "production", "-o", "json").json()  # type: ignore[operator]
    gitops.add_chart(
        "connect",
        "apiVersion: kafka.strimzi.io/v1beta2\nkind: KafkaConnect\nmetadata: {name: connect}\n"
        "spec: {image: connect}\n",
    )
    gitops.deploy("production", "connect", (PROD, "1.0.0"))
    result = cli("plan", "production", "-o", "json")
    [warning] = result.json()["warnings"]  # type: ignore[index]
    assert "the images: entry 'connect'" in warning
    assert "declare the field in configurations:" in warning


def test_an_image_in_a_lookalike_of_the_environments_registry_is_warned_about(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """One newName with another region's registry makes that image external: plan warns that the
    registry looks like production's instead of reporting nothing to do for it."""
    production = gitops.kustomization("production")
    typo = PROD.replace("us-east-1", "us-east-2")
    text = production.read_text()
    production.write_text(
        text.replace(
            f"newName: {PROD}/{gitops.repo('cart')}", f"newName: {typo}/{gitops.repo('cart')}"
        )
    )
    status = cli("status", "-o", "json")  # cart has no production cell: the warning says why
    assert any("looks like its registry" in w for w in status.json()["warnings"])  # type: ignore[index,union-attr]
    result = cli("plan", "production")
    warning = next(ln for ln in result.err.splitlines() if "looks like" in ln)
    assert (
        f"{typo}/{gitops.repo('cart')}:2.3.1 is in {typo}, which looks like its registry {PROD}"
        in warning
    )


def test_a_pin_beside_the_same_tag_is_in_sync_when_content_cannot_be_compared(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Production pinning checkout 1.8.0@digest while dev runs 1.8.0, with dev's registry down:
    the same version by Git's view, not '~' (another version)."""
    digest = gitops.seed(gitops.prod, "checkout", "1.8.0")
    production = gitops.kustomization("production")
    production.write_text(
        production.read_text().replace("newTag: 1.8.0", f"newTag: 1.8.0\n    digest: {digest}")
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    config = gitops.root / "promoter.yaml"
    config.write_text(config.read_text().replace(gitops.dev.url, f"http://127.0.0.1:{closed}"))
    rows = {r["module"]: r["environments"] for r in cli("status", "-o", "json").json()["modules"]}  # type: ignore[union-attr]
    assert rows[gitops.repo("checkout")]["production"]["drift"] == "in-sync"


def test_login_and_digest_print_a_json_document_when_they_fail(cli: Callable[..., CliRun]) -> None:
    """-o json on a failing digest is one document on stdout, with the error line and exit code."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    run = cli("digest", f"127.0.0.1:{closed}/a:1", "-o", "json")
    assert run.code == 1
    document = run.json()
    assert document["exitCode"] == 1  # type: ignore[index]
    assert f"cannot connect to 127.0.0.1:{closed}" in str(document["error"])  # type: ignore[index]


def test_a_hook_file_line_the_overlay_does_not_run_fails_the_plan_without_bogus_advice(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A stale line in promoter-images.txt (an image nobody has) makes the hook Job fail every Argo
    CD sync: plan exits 3 naming it, and the component's own ConfigMap is not reported as an
    unmanaged mention of the registry (whose advice, a fieldSpec, would be wrong)."""
    listed = _production_in_both(gitops)
    _use_hook_component(gitops, listed + f"{PROD}/{gitops.repo('extra')}:9.9.9\n")
    result = cli("plan", "production")
    assert result.code == 3, result.err
    line = next(ln for ln in result.err.splitlines() if gitops.repo("extra") in ln)
    assert line.startswith("promoter: error:")
    assert "which the overlay does not run" in line
    assert "ConfigMap/promoter-hook" not in result.err
    assert "fieldSpec" not in result.err


def test_a_hook_configmap_naming_another_source_registry_fails_plan_and_sync(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """The component's ConfigMap with a mistyped sourceRegistry (another region) lets plan and sync
    pass while the hook Job fails every Argo CD sync: both exit 3 naming both registries."""
    listed = _production_in_both(gitops)
    _use_hook_component(gitops, listed)
    assert cli("plan", "production").code == 0
    typo = DEV.replace("us-east-1", "us-west-2")
    path = gitops.kustomization("production")
    path.write_text(path.read_text().replace(f"sourceRegistry={DEV}", f"sourceRegistry={typo}"))
    for command in ("plan", "sync"):
        result = cli(command, "production")
        assert result.code == 3, result.err
        line = next(ln for ln in result.err.splitlines() if "sourceRegistry is" in ln)
        assert f"sourceRegistry is {typo}, but production promotes from dev ({DEV})" in line
