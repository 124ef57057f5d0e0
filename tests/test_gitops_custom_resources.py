"""Images in custom resources, end to end: plan, sync, status, promote's hook list and the Argo CD plugin
find the ones the overlay declares to kustomize, and report any other mention of the registry (real
kustomize, real registries behind ECR-like names)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import yaml
from tests.conftest import DEV, PROD, CliRun, GitOpsRepo
from tests.registry_checks import manifest_digest

from promoter.app.environment import unmanaged_notes
from promoter.config.values import Environment
from promoter.gitops.discover import UnmanagedReference

VERSIONS = {
    "cart": "2.3.1",
    "checkout": "1.8.0",
    "catalog": "3.0.2",
    "runner": "2.3.0",
    "spark": "3.5.0",
}


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def _add_custom_resources(gitops: GitOpsRepo) -> None:
    """Give both environments a RunnerDeployment (runner image at spec.template.spec.image, no
    containers) and a SparkApplication (spec.image), each declared to kustomize by a configurations
    file of its chart, and images: entries in each overlay for them."""
    charts = gitops.root / "infra" / "charts"
    _write(
        charts,
        {
            "runners/kustomization.yaml": """\
                resources: [runners.yaml]
                configurations: [images.yaml]
                """,
            "runners/images.yaml": """\
                images:
                  - path: spec/template/spec/image
                    kind: RunnerDeployment
                """,
            "runners/runners.yaml": """\
                apiVersion: actions.summerwind.dev/v1alpha1
                kind: RunnerDeployment
                metadata: {name: ci}
                spec:
                  replicas: 2
                  template:
                    spec:
                      repository: example/shop
                      image: runner
                """,
            "spark/kustomization.yaml": """\
                resources: [spark.yaml]
                configurations: [images.yaml]
                """,
            "spark/images.yaml": """\
                images:
                  - path: spec/image
                    kind: SparkApplication
                    group: sparkoperator.k8s.io
                """,
            "spark/spark.yaml": """\
                apiVersion: sparkoperator.k8s.io/v1beta2
                kind: SparkApplication
                metadata: {name: pi}
                spec:
                  type: Scala
                  image: spark
                  mainClass: org.apache.spark.examples.SparkPi
                """,
        },
    )
    for env, registry in (("dev", DEV), ("production", PROD)):
        path = gitops.kustomization(env)
        text = path.read_text().replace(
            "resources:\n", "resources:\n  - ../../charts/runners\n  - ../../charts/spark\n", 1
        )
        for module in ("runner", "spark"):
            text += (
                f"  - name: {module}\n    newName: {registry}/{gitops.repo(module)}\n"
                f"    newTag: {VERSIONS[module]}\n"
            )
        path.write_text(text)


def _patch_executor_image(gitops: GitOpsRepo) -> str:
    """Set the SparkApplication's executor image in production by a patch, in a field no
    configurations file declares; returns the reference."""
    reference = f"{PROD}/{gitops.repo('spark-executor')}:3.5.0"
    overlay = gitops.kustomization("production").parent
    (overlay / "patch-spark.yaml").write_text(
        "apiVersion: sparkoperator.k8s.io/v1beta2\nkind: SparkApplication\n"
        f"metadata: {{name: pi}}\nspec:\n  executor:\n    image: {reference}\n"
    )
    path = gitops.kustomization("production")
    path.write_text(
        path.read_text().replace("patches:\n", "patches:\n  - path: patch-spark.yaml\n", 1)
    )
    return reference


def _statuses(run: CliRun) -> dict[str, str]:
    return {str(i["image"]): str(i["status"]) for i in run.json()["images"]}  # type: ignore[union-attr]


def test_plan_and_sync_copy_the_images_of_custom_resources(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A RunnerDeployment's and a SparkApplication's images, declared through configurations:, are
    planned and copied like the Deployments'; before, plan named only the Deployments' images and
    sync exited 0 with the two missing."""
    _add_custom_resources(gitops)
    digests = {m: gitops.seed(gitops.dev, m, tag) for m, tag in VERSIONS.items()}
    plan = cli("plan", "production", "-o", "json")
    assert plan.code == 0, plan.err
    statuses = _statuses(plan)
    assert statuses[f"{PROD}/{gitops.repo('runner')}:2.3.0"] == "copy"
    assert statuses[f"{PROD}/{gitops.repo('spark')}:3.5.0"] == "copy"
    assert "unmanagedReferences" not in plan.json()

    synced = cli("sync", "production")
    assert synced.code == 0, synced.err
    assert "production: 5 copied, 0 present, 0 refused, 0 failed" in synced.out
    for module, tag in VERSIONS.items():
        assert manifest_digest(gitops.prod, gitops.repo(module), tag) == digests[module]
    assert "warning" not in synced.err


def test_a_mention_of_the_registry_outside_image_fields_is_a_warning_and_in_json(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """An image of production's registry in a field nobody declared (the SparkApplication's
    spec.executor.image) is not copied, but plan, sync and status say so in one warning line, and plan
    -o json lists it with its place; sync still exits 0 for what it did copy."""
    _add_custom_resources(gitops)
    executor = _patch_executor_image(gitops)
    for module, tag in VERSIONS.items():
        gitops.seed(gitops.dev, module, tag)
    plan = cli("plan", "production", "-o", "json")
    assert plan.code == 0, plan.err
    assert plan.json()["unmanagedReferences"] == [
        {"value": executor, "kind": "SparkApplication", "name": "pi", "path": "spec.executor.image"}
    ]
    assert executor not in _statuses(plan)
    expected = (
        f"promoter: warning: production: {executor} at SparkApplication/pi spec.executor.image "
        f"names the registry {PROD} outside the fields promoter reads images from"
    )
    for run in (plan, cli("plan", "production"), cli("sync", "production"), cli("status")):
        assert run.code == 0, run.err
        lines = [line for line in run.err.splitlines() if executor in line]
        assert len(lines) == 1, run.err
        assert lines[0].startswith(expected)
        assert "configurations:" in lines[0]
    assert manifest_digest(gitops.prod, gitops.repo("spark"), "3.5.0") is not None


def test_promote_sets_a_custom_resource_image_and_lists_it_for_the_hook(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """promote moves a RunnerDeployment's image like a Deployment's (kustomize applies the images:
    entry through the fieldSpec), and promoter-images.txt, which the Kustomize hook component hands
    the hook Job, names the custom resources' images: plan finds the list lacking them, promote
    rewrites it with them."""
    _add_custom_resources(gitops)
    listed = gitops.kustomization("production").parent / "promoter-images.txt"
    listed.write_text(
        "# images the hook copies\n"
        + "".join(
            f"{PROD}/{gitops.repo(m)}:{VERSIONS[m]}\n" for m in ("cart", "catalog", "checkout")
        )
    )
    for module, tag in VERSIONS.items():
        gitops.seed(gitops.dev, module, tag)
        gitops.seed(gitops.prod, module, tag)
    lacking = cli("plan", "production", "-o", "json")
    assert lacking.code == 3, lacking.err
    assert set(lacking.json()["hookFile"]["missing"]) == {  # type: ignore[index]
        f"{PROD}/{gitops.repo('runner')}:2.3.0",
        f"{PROD}/{gitops.repo('spark')}:3.5.0",
    }
    dev = gitops.kustomization("dev")
    dev.write_text(dev.read_text().replace("newTag: 2.3.0", "newTag: 2.4.0"))
    gitops.seed(gitops.dev, "runner", "2.4.0")
    promoted = cli("promote", gitops.repo("runner"), "--to", "production", "--sync")
    assert promoted.code == 0, promoted.err
    assert "+    newTag: 2.4.0" in promoted.out
    versions = VERSIONS | {"runner": "2.4.0"}
    assert listed.read_text() == "# images the hook copies\n" + "".join(
        sorted(f"{PROD}/{gitops.repo(m)}:{t}\n" for m, t in versions.items())
    )
    assert manifest_digest(gitops.prod, gitops.repo("runner"), "2.4.0") is not None


def test_the_argocd_plugins_hook_copies_custom_resource_images(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """argocd generate's hook Job lists the custom resources' images, and warns about the
    registry's mentions it cannot copy."""
    _add_custom_resources(gitops)
    executor = _patch_executor_image(gitops)
    overlay = gitops.kustomization("production").parent
    result = cli("argocd", "generate", "--source-dir", str(overlay))
    assert result.code == 0, result.err
    job = next(d for d in yaml.safe_load_all(result.out) if d and d.get("kind") == "Job")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    images = {args[i + 1] for i, word in enumerate(args) if word == "--image"}
    assert {
        f"{PROD}/{gitops.repo('runner')}:2.3.0",
        f"{PROD}/{gitops.repo('spark')}:3.5.0",
    } <= images
    assert executor not in images
    assert executor in result.err
    assert "outside the fields promoter reads images from" in result.err


def test_mentions_are_warned_once_per_value_and_capped() -> None:
    """One warning line per distinct value naming its first place and how many more; past the
    cap, one line counts the rest."""
    production = Environment("production", Path("overlays/production"), PROD, None)
    mentions = [
        UnmanagedReference(f"{PROD}/a:{n % 12}", "Thing", f"t{n}", f"spec.v[{n}]")
        for n in range(25)
    ]
    notes = unmanaged_notes(production, mentions)
    assert len(notes) == 11
    assert notes[0].startswith(f"production: {PROD}/a:0 at Thing/t0 spec.v[0] (and 2 more places) ")
    assert notes[1].startswith(f"production: {PROD}/a:1 at Thing/t1 spec.v[1] (and 1 more place) ")
    assert notes[-1] == (
        f"production: 2 more values naming {PROD} outside image fields (plan -o json lists every place)"
    )
