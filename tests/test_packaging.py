"""The hook Job, three ways (Helm chart, Kustomize component, Argo CD plugin), and the image.

Each packaging is rendered by its real tool (Helm's Go SDK through helm-python-sdk, kubectl's
kustomize, ``promoter argocd generate``), every object is validated against the schemas of a
current Kubernetes in strict mode, and the rendered Job's own command and arguments are run
against two local registries, with the image's ``promoter`` replaced by this checkout's.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import trustme
import yaml
from devtools import images
from devtools.registry import RegistryProcess
from tests.conftest import CliRun, GitOpsRepo
from tests.registry_checks import manifest_digest, push

from promoter.app.runtime import SecretScrubber
from promoter.argocd.hookjob import HookSettings, hook_objects
from promoter.argocd.plugin import DEFAULT_HOOK_IMAGE, SETTINGS, hook_config, render_budget
from promoter.cli import argocd
from promoter.cli.main import build_parser
from promoter.config.load import load_config
from promoter.errors import ConfigError, InputError

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PROMOTER = Path(sys.executable).parent / "promoter"
KUBERNETES_VERSION = kubernetes_validate.latest_version()
ARGOCD_SUFFIX = 27  # <rev7>-<phase>-<unix time>, appended by Argo CD to a hook's generateName


# -- checks shared by the three packagings -------------------------------------------------------


def validate(documents: list[dict[str, Any]]) -> None:
    """Every object is valid for the current Kubernetes, unknown fields refused (strict)."""
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def load(text: str) -> list[dict[str, Any]]:
    """The mapping documents of multi-document YAML."""
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


def only(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The one object of ``kind``."""
    found = [d for d in documents if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


HOOK = "argocd.argoproj.io/hook"
WAVE = "argocd.argoproj.io/sync-wave"


def check_hook(obj: Mapping[str, Any], *, wave_below: int = 0) -> int:
    """A Sync-phase hook kept on failure, in a negative wave; returns the wave.

    Sync, not PreSync: the ServiceAccount and ConfigMap it needs are ordinary resources, which Argo
    CD applies in the Sync phase only, wave by wave, before this wave.
    """
    annotations = obj["metadata"]["annotations"]
    assert annotations[HOOK] == "Sync"
    assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    wave = int(annotations[WAVE])
    assert wave < wave_below
    return wave


def check_ordinary(obj: Mapping[str, Any], *, wave_below: int) -> int:
    """An ordinary resource of the application, no hook of Argo CD's or Helm's (never deleted and
    created again before a Job), in a wave before ``wave_below``; returns the wave."""
    annotations = obj["metadata"].get("annotations") or {}
    assert not [
        key for key in annotations if key.startswith(("argocd.argoproj.io/hook", "helm.sh/hook"))
    ]
    wave = int(annotations[WAVE])
    assert wave < wave_below
    return wave


def check_hardened(container: Mapping[str, Any]) -> None:
    """A promoter container as every packaging runs it: non-root, read-only root, no privilege
    escalation, no capabilities, RuntimeDefault seccomp, CPU and memory requests and limits."""
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    for side in ("requests", "limits"):
        assert set(container["resources"][side]) == {"cpu", "memory"}


def check_job(job: Mapping[str, Any], *, generated_name: bool = True, argocd: bool = True) -> None:
    """The production settings the issue asks of every hook Job (an Argo CD hook unless told)."""
    if argocd:
        check_hook(job)
    metadata = job["metadata"]
    if generated_name:
        assert "name" not in metadata
        assert metadata["generateName"].endswith("-")
        assert len(metadata["generateName"]) + ARGOCD_SUFFIX <= 63
    else:
        assert len(metadata["name"]) <= 63
    spec = job["spec"]
    assert spec["backoffLimit"] >= 0
    assert spec["activeDeadlineSeconds"] > 0
    if generated_name:  # a new name each sync: BeforeHookCreation cannot clean up, the TTL does
        assert spec["ttlSecondsAfterFinished"] > 0
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    check_hardened(container)
    assert container["command"] == ["promoter"]
    # promoter gives up (and says why) well before Kubernetes kills the Job: 80 % of its deadline.
    args = container["args"]
    assert args[args.index("--timeout") + 1] == str(spec["activeDeadlineSeconds"] * 4 // 5)


def run_job(
    job: Mapping[str, Any], tmp_path: Path, config_maps: Mapping[str, Mapping[str, str]]
) -> subprocess.CompletedProcess[str]:
    """Run the Job's container command and arguments here, as the kubelet would run them.

    ConfigMap and emptyDir volumes become folders, paths under their mounts are mapped to those
    folders, ``$(VAR)`` references are expanded from the container's env (Kubernetes' rule), and
    the image's ``promoter`` is this checkout's console script.
    """
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    mounts: dict[str, Path] = {}
    for mount in container.get("volumeMounts", []):
        folder = tmp_path / "pod" / mount["name"]
        folder.mkdir(parents=True, exist_ok=True)
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            for key, value in config_maps[volume["configMap"]["name"]].items():
                (folder / key).write_text(value)
        mounts[mount["mountPath"]] = folder

    def local(text: str) -> str:
        for path, folder in mounts.items():
            if text == path or text.startswith(f"{path}/"):
                return str(folder) + text[len(path) :]
        return text

    env: dict[str, str] = {}
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = local(variable["value"])
        else:
            ref = variable["valueFrom"]["configMapKeyRef"]
            env[variable["name"]] = config_maps[ref["name"]][ref["key"]]
    args = [
        local(re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg)) for arg in container["args"]
    ]
    working_dir = container.get("workingDir")
    return subprocess.run(
        [str(PROMOTER), *container["command"][1:], *args],
        cwd=local(working_dir) if working_dir else tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def seed(registry: RegistryProcess, repository: str, tag: str) -> str:
    """Push a small single-layer image to the source registry; its digest."""
    image = images.oci_image([images.layer(7, f"{repository}:{tag}")], seed=f"{repository}:{tag}")
    return push(registry, repository, image, tag=tag)


@pytest.fixture(scope="module")
def tls_destination(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """An HTTPS registry without auth whose certificate a test CA signed: trusted only with it."""
    registry = RegistryProcess(tmp_path_factory.mktemp("tls-dest"), name="tls-dest", tls=True)
    registry.start()
    yield registry
    registry.stop()


def argv_for(job: Mapping[str, Any]) -> list[str]:
    """The Job container's arguments."""
    return list(job["spec"]["template"]["spec"]["containers"][0]["args"])


# -- Helm chart ---------------------------------------------------------------------------------


#: The promoter image every chart render names (the chart refuses its placeholder).
HOOK_IMAGE: dict[str, Any] = {"repository": "registry.example.com/tools/promoter", "tag": "0.1.0"}


def render_chart(chart: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    """``helm template`` through Helm's Go SDK."""
    with helm.Chart.load(str(chart)) as loaded:
        rendered = loaded.render(values, name="shop", namespace="production")
    return [d for text in rendered.values() for d in load(text)]


def test_helm_chart_renders_a_valid_hook_that_copies(
    source_registry: RegistryProcess, dest_registry: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    """The chart renders a schema-valid ServiceAccount (IRSA role) and config ConfigMap, ordinary
    resources a wave before the hook Job, and the Job's own arguments copy the listed image."""
    digest = seed(source_registry, f"{repo}/cart", "2.4.0")
    config = (
        "environments:\n  production:\n    overlay: .\n"
        f"    registry: {dest_registry.host}\n"
        f"registries:\n  {dest_registry.host}:\n    insecure: true\n"
    )
    role = "arn:aws:iam::222222222222:role/promoter"
    documents = render_chart(
        DEPLOY / "helm" / "promoter-hook",
        {
            "images": [f"{dest_registry.host}/{repo}/cart:2.4.0"],
            "sourceRegistry": source_registry.host,
            "config": config,
            "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": role}},
            "image": HOOK_IMAGE,
        },
    )
    validate(documents)
    job = only(documents, "Job")
    check_job(job, generated_name=False)  # Helm installs only named objects
    account = only(documents, "ServiceAccount")
    config_map = only(documents, "ConfigMap")
    job_wave = check_hook(job)
    check_ordinary(account, wave_below=job_wave)
    check_ordinary(config_map, wave_below=job_wave)
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    assert argv_for(job)[-2:] == ["--image", f"{dest_registry.host}/{repo}/cart:2.4.0"]
    assert "--config" in argv_for(job)

    done = run_job(job, tmp_path, {config_map["metadata"]["name"]: config_map["data"]})
    assert done.returncode == 0, done.stderr
    assert manifest_digest(dest_registry, f"{repo}/cart", "2.4.0") == digest


def test_helm_chart_as_a_dependency_takes_the_parent_charts_image_values(tmp_path: Path) -> None:
    """As a dependency of an application chart, the hook lists the image the parent's own values
    name (through global and tpl), and the whole release validates."""
    shutil.copytree(DEPLOY / "helm" / "promoter-hook", tmp_path / "promoter-hook")
    parent = tmp_path / "shop"
    (parent / "templates").mkdir(parents=True)
    (parent / "Chart.yaml").write_text(
        "apiVersion: v2\nname: shop\nversion: 1.0.0\n"
        "dependencies:\n"
        "  - name: promoter-hook\n    version: 0.1.0\n    repository: file://../promoter-hook\n"
    )
    (parent / "values.yaml").write_text(
        "global:\n  cart:\n"
        "    repository: 222222222222.dkr.ecr.us-east-1.amazonaws.com/shop/cart\n"
        "    tag: 2.3.1\n"
        "promoter-hook:\n"
        "  image: {repository: registry.example.com/tools/promoter}\n"
        "  sourceRegistry: 111111111111.dkr.ecr.us-east-1.amazonaws.com\n"
        "  images:\n"
        '    - "{{ .Values.global.cart.repository }}:{{ .Values.global.cart.tag }}"\n'
    )
    (parent / "templates" / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: cart\n"
        "spec:\n  selector:\n    matchLabels: {app: cart}\n  template:\n"
        "    metadata:\n      labels: {app: cart}\n    spec:\n      containers:\n"
        "        - name: cart\n"
        '          image: "{{ .Values.global.cart.repository }}:{{ .Values.global.cart.tag }}"\n'
    )
    helm.dependency_update(str(parent))
    documents = render_chart(parent, {})
    validate(documents)
    job = only(documents, "Job")
    check_job(job, generated_name=False)
    deployment_image = only(documents, "Deployment")["spec"]["template"]["spec"]["containers"][0][
        "image"
    ]
    assert deployment_image == "222222222222.dkr.ecr.us-east-1.amazonaws.com/shop/cart:2.3.1"
    assert argv_for(job) == [
        "sync",
        "--timeout",
        "480",
        "--from-registry",
        "111111111111.dkr.ecr.us-east-1.amazonaws.com",
        "--image",
        deployment_image,
    ]


def test_helm_chart_refuses_to_render_without_source_or_images() -> None:
    """Missing sourceRegistry or an empty images list fails the render with a message naming it."""
    chart = DEPLOY / "helm" / "promoter-hook"
    with pytest.raises(helm.HelmError, match="sourceRegistry is required"):
        render_chart(chart, {"images": ["registry.example.com/a:1"], "image": HOOK_IMAGE})
    with pytest.raises(helm.HelmError, match="images is empty"):
        render_chart(chart, {"sourceRegistry": "registry.example.com", "image": HOOK_IMAGE})


def test_helm_chart_refuses_a_placeholder_image_and_images_built_from_missing_values() -> None:
    """No image.repository, the placeholder "promoter", an image that renders as ":1.0.0" (its
    repository value missing) and an image in sourceRegistry itself each fail the render with a
    message naming the value, instead of a Job that never starts or copies nothing."""
    chart = DEPLOY / "helm" / "promoter-hook"
    values = {**CHART_VALUES, "image": HOOK_IMAGE}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"image": {"tag": "0.1.0"}}, "promoter-hook: image.repository is empty; set it to where"),
        (
            {"image": {"repository": "promoter"}},
            (
                'promoter-hook: image.repository is the placeholder "promoter", which no registry '
                "serves"
            ),
        ),
        (
            {"images": ["{{ .Values.global.cart.repository }}:1.0.0"], "global": {"cart": {}}},
            (
                'promoter-hook: images[0] renders as ":1.0.0" (from '
                '"{{ .Values.global.cart.repository }}:1.0.0"): a value it is built from is missing'
            ),
        ),
        (
            {"images": [f"{DEV}/shop/cart:2.3.1"]},
            (
                f'promoter-hook: images[0] "{DEV}/shop/cart:2.3.1" is in sourceRegistry {DEV}, the '
                "registry the hook copies from"
            ),
        ),
    ]
    for extra, message in cases:
        with pytest.raises(helm.HelmError) as caught:
            render_chart(chart, {**values, **extra})
        assert message in str(caught.value)
    assert only(render_chart(chart, values), "Job")  # the test values render


def helm_lint_problems(chart: Path, values: dict[str, Any]) -> list[str]:
    """``helm lint --strict`` through Helm's Go SDK: its warnings and errors (strict fails on both)."""
    report = helm.lint(str(chart), values, strict=True, kube_version=f"v{KUBERNETES_VERSION}.0")
    found = [m["error"] for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    return [str(problem) for problem in found]


CHART_VALUES: dict[str, Any] = {
    "images": ["222222222222.dkr.ecr.us-east-1.amazonaws.com/shop/cart:2.3.1"],
    "sourceRegistry": "111111111111.dkr.ecr.us-east-1.amazonaws.com",
    "image": HOOK_IMAGE,
}


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"config": "registries: {}\n", "caBundle": "-----BEGIN CERTIFICATE-----\n"},
        {"argocd": False},
        {"argocd": False, "serviceAccount": {"create": False, "name": "promoter"}},
    ],
    ids=["argocd", "argocd-config", "plain-helm", "plain-helm-own-account"],
)
def test_helm_chart_passes_strict_lint(extra: dict[str, Any]) -> None:
    """``helm lint --strict`` finds nothing, for Argo CD and for plain ``helm install``."""
    chart = DEPLOY / "helm" / "promoter-hook"
    assert helm_lint_problems(chart, {**CHART_VALUES, **extra}) == []


def test_helm_chart_for_plain_helm_runs_the_job_after_its_service_account() -> None:
    """With ``argocd: false`` the Job and ConfigMap are Helm hooks, the ConfigMap one weight
    first; the ServiceAccount is an ordinary release object, so on install the Job runs after it
    (post-install) and before every upgrade; with a ServiceAccount made elsewhere, pre-install."""
    chart = DEPLOY / "helm" / "promoter-hook"
    documents = render_chart(chart, {**CHART_VALUES, "argocd": False, "config": "registries: {}\n"})
    validate(documents)
    job, config_map = only(documents, "Job"), only(documents, "ConfigMap")
    account = only(documents, "ServiceAccount")
    check_job(job, generated_name=False, argocd=False)
    for obj in documents:
        assert not [key for key in obj["metadata"].get("annotations", {}) if "argoproj" in key]
    assert "annotations" not in account["metadata"]  # no hook: never recreated before the Job
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    config_hook = config_map["metadata"]["annotations"]
    assert config_hook["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(config_hook["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])

    elsewhere = render_chart(
        chart,
        {**CHART_VALUES, "argocd": False, "serviceAccount": {"create": False, "name": "promoter"}},
    )
    job = only(elsewhere, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "promoter"
    assert not [d for d in elsewhere if d["kind"] == "ServiceAccount"]


def test_helm_chart_gives_the_job_a_ca_bundle(
    source_registry: RegistryProcess, tls_destination: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    """``caBundle`` reaches the Job as /etc/promoter/ca.pem, trusted with --ca-file: it copies into
    a registry whose certificate a private CA signed."""
    digest = seed(source_registry, f"{repo}/cart", "2.4.0")
    assert tls_destination.ca_file is not None
    documents = render_chart(
        DEPLOY / "helm" / "promoter-hook",
        {
            "images": [f"{tls_destination.host}/{repo}/cart:2.4.0"],
            "sourceRegistry": source_registry.host,
            "caBundle": tls_destination.ca_file.read_text(),
            "image": HOOK_IMAGE,
        },
    )
    validate(documents)
    job, config_map = only(documents, "Job"), only(documents, "ConfigMap")
    check_ordinary(config_map, wave_below=check_hook(job))
    args = argv_for(job)
    assert args[args.index("--ca-file") + 1] == "/etc/promoter/ca.pem"
    assert "--config" not in args

    done = run_job(job, tmp_path, {config_map["metadata"]["name"]: config_map["data"]})
    assert done.returncode == 0, done.stderr
    assert manifest_digest(tls_destination, f"{repo}/cart", "2.4.0") == digest


def diverge(
    source: RegistryProcess, destination: RegistryProcess, repository: str, tag: str
) -> None:
    """The destination holds ``repository:tag`` (what the environment was given) and the source's
    tag now holds other content (pushed again after the promotion)."""
    seed(source, repository, tag)
    given = images.oci_image([images.layer(7, f"given {repository}")], seed=f"given {repository}")
    push(destination, repository, given, tag=tag)


def test_helm_chart_fail_on_diverged_makes_the_job_refuse_a_re_pushed_tag(
    source_registry: RegistryProcess, dest_registry: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    """failOnDiverged: true adds --fail-on-diverged, and the Job exits 3 on a tag re-pushed in the
    source; by default there is no flag and the same Job exits 0."""
    diverge(source_registry, dest_registry, f"{repo}/cart", "2.4.0")
    values = {
        "images": [f"{dest_registry.host}/{repo}/cart:2.4.0"],
        "sourceRegistry": source_registry.host,
        "image": HOOK_IMAGE,
    }
    chart = DEPLOY / "helm" / "promoter-hook"
    default = only(render_chart(chart, values), "Job")
    assert "--fail-on-diverged" not in argv_for(default)
    assert run_job(default, tmp_path / "default", {}).returncode == 0

    strict = only(render_chart(chart, {**values, "failOnDiverged": True}), "Job")
    validate([strict])
    assert "--fail-on-diverged" in argv_for(strict)
    done = run_job(strict, tmp_path / "strict", {})
    assert done.returncode == 3, done.stderr
    assert "refused: diverged tags fail here" in done.stderr


# -- Kustomize component ------------------------------------------------------------------------


def kustomize(overlay: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` (Kustomize v5) of a folder."""
    done = subprocess.run(
        ["kubectl", "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return load(done.stdout)


def hook_overlay(root: Path, destination: str, images: list[str], generator: str) -> Path:
    """An overlay using the component (copied under ``root``): a Deployment of the first image,
    ``promoter-images.txt`` listing all, and ``generator`` as its configMapGenerator section."""
    shutil.copytree(DEPLOY / "kustomize" / "promoter-hook", root / "components" / "hook")
    overlay = root / "overlays" / "production"
    overlay.mkdir(parents=True)
    (overlay / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: cart\n"
        "spec:\n  selector:\n    matchLabels: {app: cart}\n  template:\n"
        "    metadata:\n      labels: {app: cart}\n    spec:\n      containers:\n"
        f"        - name: cart\n          image: {destination}/{images[0]}\n"
    )
    listed = "".join(f"{destination}/{image}\n" for image in images)
    (overlay / "promoter-images.txt").write_text(f"# images this overlay runs\n{listed}")
    (overlay / "kustomization.yaml").write_text(
        "namespace: production\nnamePrefix: shop-\n"
        "resources:\n  - deployment.yaml\n"
        "components:\n  - ../../components/hook\n"
        f"{generator}"
        "images:\n  - name: promoter\n    newName: registry.example.com/tools/promoter\n"
        "    newTag: 0.1.0\n"
        "patches:\n  - target: {kind: ServiceAccount, name: promoter-hook}\n"
        "    patch: |-\n      - op: add\n"
        "        path: /metadata/annotations/eks.amazonaws.com~1role-arn\n"
        "        value: arn:aws:iam::222222222222:role/promoter\n"
    )
    return overlay


def test_kustomize_component_renders_a_valid_hook_that_copies_the_listed_images(
    source_registry: RegistryProcess, tls_destination: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    """An overlay that adds the component and a promoter-hook ConfigMap gets a schema-valid hook
    Job, its ServiceAccount and the ConfigMap ordinary resources a wave earlier, with its prefix and
    namespace; the Job copies every listed image, trusting the CA file its ConfigMap carries."""
    cart = seed(source_registry, f"{repo}/cart", "2.4.0")
    catalog = seed(source_registry, f"{repo}/catalog", "3.1.0")
    assert tls_destination.ca_file is not None
    overlay = hook_overlay(
        tmp_path,
        tls_destination.host,
        [f"{repo}/cart:2.4.0", f"{repo}/catalog:3.1.0"],
        "configMapGenerator:\n  - name: promoter-hook\n"
        "    options:\n      disableNameSuffixHash: true\n"
        f"    literals:\n      - sourceRegistry={source_registry.host}\n"
        "    files:\n      - promoter-images.txt\n      - promoter.yaml\n      - ca.pem\n",
    )
    # The supported way to give this Job a CA: a caFile beside promoter.yaml in the ConfigMap.
    (overlay / "promoter.yaml").write_text(
        f"registries:\n  {tls_destination.host}:\n    caFile: ca.pem\n"
    )
    shutil.copy(tls_destination.ca_file, overlay / "ca.pem")
    documents = kustomize(overlay)
    validate(documents)
    job = only(documents, "Job")
    check_job(job, generated_name=False)
    job_wave = check_hook(job)
    config_map = only(documents, "ConfigMap")
    account = only(documents, "ServiceAccount")
    check_ordinary(config_map, wave_below=job_wave)
    check_ordinary(account, wave_below=job_wave)
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        ":role/promoter"
    )
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"] == "shop-promoter-hook"
    assert pod["containers"][0]["image"] == "registry.example.com/tools/promoter:0.1.0"
    assert {d["metadata"]["namespace"] for d in documents} == {"production"}

    done = run_job(job, tmp_path, {config_map["metadata"]["name"]: config_map["data"]})
    assert done.returncode == 0, done.stderr
    assert manifest_digest(tls_destination, f"{repo}/cart", "2.4.0") == cart
    assert manifest_digest(tls_destination, f"{repo}/catalog", "3.1.0") == catalog


def test_kustomize_component_without_its_configmap_fails_the_build_and_plan(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """An overlay that adds the component but not the promoter-hook ConfigMap its Job mounts does
    not build: kustomize names the ConfigMap, and ``promoter plan`` exits 2 with that line."""
    overlay = hook_overlay(gitops.root, gitops.prod.host, [gitops.repo("cart") + ":1.0"], "")
    done = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "ConfigMap.[noVer].[noGrp]/promoter-hook.[noNs]:data.sourceRegistry" in done.stderr
    config = gitops.root / "promoter.yaml"
    config.write_text(config.read_text().replace("infra/overlays/production", str(overlay)))

    run = cli("plan", "production")
    assert run.code == 2
    assert run.out == ""
    assert "kustomize build" in run.err
    assert "promoter-hook" in run.err
    assert "data.sourceRegistry" in run.err
    assert run.err.rstrip().endswith(
        "needs the overlay's configMapGenerator promoter-hook with sourceRegistry=HOST and "
        "promoter-images.txt (docs/argocd.md, Kustomize component)"
    )
    assert len(run.err.strip().splitlines()) == 1, run.err


def documented_yaml(marker: str) -> dict[str, Any]:
    """The YAML block of docs/argocd.md that contains ``marker``, loaded."""
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "argocd.md").read_text(), re.DOTALL)
    (block,) = [b for b in blocks if marker in b]
    loaded = yaml.safe_load(block)
    assert isinstance(loaded, dict)
    return loaded


def test_kustomize_component_documented_patch_makes_the_job_refuse_a_re_pushed_tag(
    source_registry: RegistryProcess, dest_registry: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    """The patch docs/argocd.md gives for divergedTags: fail, added to an overlay using the
    component (with a namePrefix), puts --fail-on-diverged in the Job's arguments, and the Job
    exits 3 on a tag re-pushed in the source."""
    diverge(source_registry, dest_registry, f"{repo}/cart", "2.4.0")
    overlay = hook_overlay(
        tmp_path,
        dest_registry.host,
        [f"{repo}/cart:2.4.0"],
        "configMapGenerator:\n  - name: promoter-hook\n"
        "    options:\n      disableNameSuffixHash: true\n"
        f"    literals:\n      - sourceRegistry={source_registry.host}\n"
        "    files:\n      - promoter-images.txt\n",
    )
    kustomization = overlay / "kustomization.yaml"
    document = yaml.safe_load(kustomization.read_text())
    document["patches"] += documented_yaml("--fail-on-diverged")["patches"]
    kustomization.write_text(yaml.safe_dump(document, sort_keys=False))

    documents = kustomize(overlay)
    validate(documents)
    job, config_map = only(documents, "Job"), only(documents, "ConfigMap")
    check_job(job, generated_name=False)
    assert "--fail-on-diverged" in argv_for(job)
    done = run_job(job, tmp_path, {config_map["metadata"]["name"]: config_map["data"]})
    assert done.returncode == 3, done.stderr
    assert "refused: diverged tags fail here" in done.stderr


# -- Argo CD Config Management Plugin -----------------------------------------------------------


EXAMPLE = ROOT / "examples" / "gitops"
DEV = "111111111111.dkr.ecr.us-east-1.amazonaws.com"
PROD = "222222222222.dkr.ecr.us-east-1.amazonaws.com"


def generate_parser() -> argparse.ArgumentParser:
    """A throwaway ``promoter`` parser holding just the argocd commands."""
    parser = argparse.ArgumentParser(prog="promoter")
    commands = parser.add_subparsers(dest="command")
    argocd.add_commands(commands, argparse.ArgumentParser(add_help=False))
    return parser


def copy_example(root: Path, dev: RegistryProcess, production: RegistryProcess) -> str:
    """examples/gitops copied to ``root`` with the registries as dev and production, without its
    workstation ``registries:`` section, and with module names of its own (returned: the prefix)."""
    shutil.copytree(EXAMPLE, root)
    prefix = f"shop{uuid.uuid4().hex[:8]}"
    for path in root.rglob("*.yaml"):
        text = path.read_text().replace(DEV, dev.host).replace(PROD, production.host)
        path.write_text(text.replace("/shop/", f"/{prefix}/"))
    config = root / "promoter.yaml"
    config.write_text(config.read_text().split("\nregistries:")[0] + "\n")
    return prefix


@pytest.fixture
def gitops_copy(
    tmp_path: Path, source_registry: RegistryProcess, dest_registry: RegistryProcess
) -> tuple[Path, str]:
    """examples/gitops with the test registries as dev and production and its own module names."""
    root = tmp_path / "gitops"
    return root, copy_example(root, source_registry, dest_registry)


def test_argocd_generate_prints_the_overlay_and_a_hook_that_copies_its_images(
    gitops_copy: tuple[Path, str],
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Run in an overlay, generate prints kustomize's output unchanged plus a schema-valid hook
    whose Job lists exactly the managed images; the sidecar's PROMOTER_ settings apply unless the
    Application's ARGOCD_ENV_ ones say otherwise; the Job copies the images."""
    root, prefix = gitops_copy
    wanted = {"cart": "2.3.1", "catalog": "3.0.2", "checkout": "1.8.0"}
    digests = {m: seed(source_registry, f"{prefix}/{m}", tag) for m, tag in wanted.items()}
    overlay = root / "infra" / "overlays" / "production"
    monkeypatch.chdir(overlay)
    # The sidecar's defaults for every Application, and this Application's own image.
    monkeypatch.setenv("PROMOTER_ROLE_ARN", "arn:aws:iam::222222222222:role/promoter")
    monkeypatch.setenv("PROMOTER_IMAGE", "registry.example.com/tools/promoter:0.0.9")
    monkeypatch.setenv("ARGOCD_ENV_PROMOTER_IMAGE", "registry.example.com/tools/promoter:0.1.0")
    args = generate_parser().parse_args(["argocd", "generate", "--backoff-limit", "2"])
    capsys.readouterr()
    assert argocd.run_command(args, SecretScrubber()) == 0
    out = capsys.readouterr().out

    rendered = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith(rendered)
    documents = load(out)
    validate(documents)
    job = only(documents, "Job")
    check_job(job)
    account = only(documents, "ServiceAccount")
    check_ordinary(account, wave_below=check_hook(job))
    assert not [d for d in documents if d["kind"] == "ConfigMap"]  # no registries: no settings
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("/promoter")
    assert job["spec"]["backoffLimit"] == 2
    assert (
        job["spec"]["template"]["spec"]["containers"][0]["image"]
        == "registry.example.com/tools/promoter:0.1.0"
    )
    assert argv_for(job) == [
        "sync",
        "--timeout",
        "480",
        "--from-registry",
        source_registry.host,
        *(
            word
            for module in ("cart", "catalog", "checkout")
            for word in ("--image", f"{dest_registry.host}/{prefix}/{module}:{wanted[module]}")
        ),
    ]

    done = run_job(job, tmp_path, {})
    assert done.returncode == 0, done.stderr
    for module, tag in wanted.items():
        assert manifest_digest(dest_registry, f"{prefix}/{module}", tag) == digests[module]


def test_argocd_generate_fails_with_nothing_on_stdout(
    gitops_copy: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Outside any environment's overlay, or when kustomize fails, generate raises a one-line
    error and prints nothing (an empty output would let Argo CD prune the application)."""
    root, _ = gitops_copy
    parser = generate_parser()
    monkeypatch.chdir(root / "infra" / "charts" / "cart")
    capsys.readouterr()
    with pytest.raises(ConfigError, match="is the overlay of no environment"):
        argocd.run_command(parser.parse_args(["argocd", "generate"]), SecretScrubber())
    overlay = root / "infra" / "overlays" / "production"
    (overlay / "kustomization.yaml").write_text("resources:\n  - missing.yaml\n")
    monkeypatch.chdir(overlay)
    with pytest.raises(ConfigError, match=r"kustomize build .* failed"):
        argocd.run_command(parser.parse_args(["argocd", "generate"]), SecretScrubber())
    (overlay / "kustomization.yaml").write_text("resources: []\n")
    with pytest.raises(ConfigError, match="rendered no objects"):
        argocd.run_command(parser.parse_args(["argocd", "generate"]), SecretScrubber())
    monkeypatch.setenv("ARGOCD_ENV_PROMOTER_SYNC_WAVE", "3")
    with pytest.raises(InputError, match="must be negative"):
        argocd.run_command(parser.parse_args(["argocd", "generate"]), SecretScrubber())
    assert capsys.readouterr().out == ""


def test_argocd_generate_warns_of_a_job_that_cannot_work_and_strict_refuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., CliRun]
) -> None:
    """Without an image, or without a role while the Job reaches ECR, generate prints the hook with
    a warning for each; --strict exits 2 printing nothing; the sidecar's PROMOTER_IMAGE and
    PROMOTER_ROLE_ARN=none (an EKS Pod Identity association) satisfy it."""
    shutil.copytree(EXAMPLE, tmp_path / "repo")
    monkeypatch.chdir(tmp_path / "repo" / "infra" / "overlays" / "production")

    run = cli("argocd", "generate")
    assert run.code == 0
    job = only(load(run.out), "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == DEFAULT_HOOK_IMAGE
    warnings = [line for line in run.err.splitlines() if line.startswith("promoter: warning: ")]
    assert any("no hook image configured" in line and "PROMOTER_IMAGE" in line for line in warnings)
    assert any(
        f"no IAM role configured for ServiceAccount promoter-hook: the Job would reach {DEV}, "
        f"{PROD} without AWS credentials" in line
        for line in warnings
    )

    run = cli("argocd", "generate", "--strict")
    assert run.code == 2
    assert run.out == ""
    (line,) = [line for line in run.err.splitlines() if not line.startswith("promoter: warning: ")]
    assert line.startswith("promoter: error: no hook image configured")
    assert "PROMOTER_ROLE_ARN" in line
    assert line.endswith("(--strict)")

    monkeypatch.setenv("PROMOTER_IMAGE", "222222222222.dkr.ecr.us-east-1.amazonaws.com/promoter:1")
    monkeypatch.setenv("PROMOTER_ROLE_ARN", "none")
    run = cli("argocd", "generate", "--strict")
    assert run.code == 0, run.err
    account = only(load(run.out), "ServiceAccount")
    assert "eks.amazonaws.com/role-arn" not in account["metadata"]["annotations"]
    assert "configured" not in run.err

    # a role on a ServiceAccount promoter does not create would be dropped; and the namespace's
    # default ServiceAccount must not become the hook's (its role would reach every Pod)
    monkeypatch.setenv("PROMOTER_ROLE_ARN", "arn:aws:iam::222222222222:role/promoter")
    monkeypatch.setenv("PROMOTER_CREATE_SERVICE_ACCOUNT", "false")
    dropped = cli("argocd", "generate", "--strict")
    assert dropped.code == 2
    assert "the role is written only on a ServiceAccount promoter creates" in dropped.err
    monkeypatch.setenv("PROMOTER_CREATE_SERVICE_ACCOUNT", "true")
    monkeypatch.setenv("PROMOTER_SERVICE_ACCOUNT", "default")
    shared = cli("argocd", "generate", "--strict")
    assert shared.code == 2
    assert "the namespace's default ServiceAccount" in shared.err


def test_argocd_generate_takes_a_blank_variable_as_no_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., CliRun]
) -> None:
    """An Application's variable that is blank (spaces) gives way to the sidecar's, as an empty one
    does, for the role as for the image; blank everywhere, the built-in default applies and
    --strict refuses it as unset."""
    shutil.copytree(EXAMPLE, tmp_path / "repo")
    monkeypatch.chdir(tmp_path / "repo" / "infra" / "overlays" / "production")
    role = "arn:aws:iam::222222222222:role/promoter"
    image = "registry.example.com/tools/promoter:0.1.0"
    monkeypatch.setenv("PROMOTER_ROLE_ARN", role)
    monkeypatch.setenv("PROMOTER_IMAGE", image)
    for blank in ("", " ", "\t "):
        monkeypatch.setenv("ARGOCD_ENV_PROMOTER_ROLE_ARN", blank)
        monkeypatch.setenv("ARGOCD_ENV_PROMOTER_IMAGE", blank)
        monkeypatch.setenv("ARGOCD_ENV_PROMOTER_PULL_POLICY", blank)
        run = cli("argocd", "generate", "--strict")
        assert run.code == 0, (blank, run.err)
        documents = load(run.out)
        account = only(documents, "ServiceAccount")
        assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role
        container = only(documents, "Job")["spec"]["template"]["spec"]["containers"][0]
        assert (container["image"], container["imagePullPolicy"]) == (image, "IfNotPresent")
    monkeypatch.setenv("PROMOTER_ROLE_ARN", " ")
    monkeypatch.setenv("PROMOTER_IMAGE", " ")
    run = cli("argocd", "generate", "--strict")
    assert run.code == 2
    assert run.out == ""
    (line,) = [line for line in run.err.splitlines() if not line.startswith("promoter: warning:")]
    assert line.startswith("promoter: error: no hook image configured")
    assert "no IAM role configured" in line


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PROMOTER_ACTIVE_DEADLINE_SECONDS", "2000000",
         ("expected whole seconds from 2 to 1,250,001 (the Job passes 80 % of it to promoter as "
         "--timeout, which takes 1 to 1,000,000 seconds), got '2000000'")),
        ("PROMOTER_ACTIVE_DEADLINE_SECONDS", "1", "expected whole seconds from 2 to 1,250,001"),
        ("PROMOTER_ACTIVE_DEADLINE_SECONDS", "ten", "expected whole seconds from 2 to 1,250,001"),
        ("PROMOTER_PULL_POLICY", "Sometimes",
         "expected Always, IfNotPresent, Never, got 'Sometimes'"),
        ("PROMOTER_PULL_POLICY", "always", "expected Always, IfNotPresent, Never, got 'always'"),
        ("PROMOTER_SERVICE_ACCOUNT", "Bad Name!",
         ("a ServiceAccount name must be a DNS subdomain (lower-case letters, digits, '-' and '.', "
         "at most 253), got 'Bad Name!'")),
        ("PROMOTER_CPU_REQUEST", "lots",
         "expected a Kubernetes resource quantity (such as 100m, 0.5, 128Mi, 1Gi), got 'lots'"),
        ("PROMOTER_MEMORY_LIMIT", "-512Mi", "expected a Kubernetes resource quantity"),
        ("PROMOTER_MEMORY_LIMIT", "512MB", "expected a Kubernetes resource quantity"),
        ("PROMOTER_CPU_REQUEST", "2",
         ("2 is more than the cpu limit 1 (PROMOTER_CPU_LIMIT's default); Kubernetes refuses "
         "such a pod")),
        ("PROMOTER_IMAGE", "not a valid ref!!", "invalid"),
        ("PROMOTER_ROLE_ARN", "arn:aws:iam::1:role/x",
         ("expected an IAM role ARN like arn:aws:iam::123456789012:role/name, or 'none', got "
         "'arn:aws:iam::1:role/x'")),
        ("PROMOTER_BACKOFF_LIMIT", "-1", "expected a whole number from 0 to 2,147,483,647"),
        ("PROMOTER_SYNC_WAVE", "0", "the sync wave must be negative"),
        ("PROMOTER_CREATE_SERVICE_ACCOUNT", "yes", "expected true or false, got 'yes'"),
    ],
)  # fmt: skip
def test_argocd_generate_refuses_a_setting_kubernetes_or_promoter_would_refuse(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., CliRun],
    variable: str,
    value: str,
    message: str,
) -> None:
    """Each setting is checked where it is read, by the rules of the field it fills (imagePullPolicy,
    a DNS-subdomain ServiceAccount, resource quantities with requests within limits, an image
    reference, an IAM role ARN, a deadline whose --timeout promoter takes): exit 2 with nothing on
    stdout and one line naming the variable as given, what is allowed and what it got."""
    shutil.copytree(EXAMPLE, tmp_path / "repo")
    monkeypatch.chdir(tmp_path / "repo" / "infra" / "overlays" / "production")
    monkeypatch.setenv("PROMOTER_IMAGE", "registry.example.com/tools/promoter:0.1.0")
    monkeypatch.setenv("PROMOTER_ROLE_ARN", "none")
    monkeypatch.setenv(f"ARGOCD_ENV_{variable}", value)
    run = cli("argocd", "generate", "--strict")
    assert run.code == 2
    assert run.out == ""
    (line,) = run.err.splitlines()
    assert line.startswith(
        f"promoter: error: ARGOCD_ENV_{variable} (the Application's plugin env): "
    ), line
    assert message in line
    option = next(s.option for s in SETTINGS if s.variable == variable)
    run = cli("argocd", "generate", "--strict", f"{option}={value}")  # as an option
    assert run.code == 2
    assert run.err.startswith(f"promoter: error: {option}: ")


def test_argocd_generate_deadline_bounds_give_a_timeout_promoter_takes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., CliRun]
) -> None:
    """The shortest and the longest activeDeadlineSeconds generate accepts give the Job a --timeout
    from 1 to the longest the CLI takes, which the Job's own promoter command line accepts; one
    second less or more is refused."""
    shutil.copytree(EXAMPLE, tmp_path / "repo")
    monkeypatch.chdir(tmp_path / "repo" / "infra" / "overlays" / "production")
    monkeypatch.setenv("PROMOTER_IMAGE", "registry.example.com/tools/promoter:0.1.0")
    monkeypatch.setenv("PROMOTER_ROLE_ARN", "none")
    for deadline, timeout in (("2", "1"), ("1250001", "1000000")):
        run = cli("argocd", "generate", "--strict", "--active-deadline-seconds", deadline)
        assert run.code == 0, run.err
        documents = load(run.out)
        validate(documents)
        arguments = argv_for(only(documents, "Job"))
        assert arguments[arguments.index("--timeout") + 1] == timeout
        parsed = build_parser().parse_args(arguments)
        assert parsed.timeout == float(timeout)
    for deadline in ("1", "1250002"):
        run = cli("argocd", "generate", "--strict", "--active-deadline-seconds", deadline)
        assert run.code == 2
        assert run.err.startswith("promoter: error: --active-deadline-seconds: expected whole")


def write_registries(root: Path, registries: str) -> Path:
    """A promoter.yaml in ``root`` of one environment and the given ``registries:`` section."""
    config = root / "promoter.yaml"
    config.write_text(
        f"environments:\n  dev:\n    overlay: .\n    registry: {DEV}\nregistries:\n{registries}"
    )
    return config


def test_argocd_generate_keeps_workstation_registry_settings_out_of_the_cluster(
    tmp_path: Path,
) -> None:
    """A loopback endpoint and insecure: true stay out of the hook's settings unless the entry says
    inCluster: true; ECR settings, other endpoints and CA files go in, the CA file beside the
    Job's promoter.yaml, where the Job's own reading of the file finds it."""
    repo = tmp_path / "repo"
    (repo / "certs").mkdir(parents=True)
    pem = trustme.CA().cert_pem.bytes().decode()  # a real one: each block is parsed
    (repo / "certs" / "corp.pem").write_text(pem)
    config = write_registries(
        repo,
        f"  {DEV}:\n    endpoint: http://127.0.0.1:5101\n"
        "    ecr: {roleArn: 'arn:aws:iam::111111111111:role/pull'}\n"
        "  registry.corp.example:5000:\n    endpoint: https://mirror.corp.example\n"
        "    insecure: true\n    caFile: certs/corp.pem\n"
        "  localhost:5000:\n    endpoint: http://[::1]:5000\n    insecure: true\n"
        "    inCluster: true\n"
        "  127.0.0.1:5999:\n    insecure: true\n",
    )
    load_config(config)  # the workstation accepts every key, inCluster included

    carried = hook_config(config)
    ca_key = "ca-registry.corp.example_5000.pem"
    assert set(carried.files) == {"promoter.yaml", ca_key}
    assert carried.files[ca_key] == pem.strip() + "\n"
    assert yaml.safe_load(carried.files["promoter.yaml"]) == {
        "registries": {
            DEV: {"ecr": {"roleArn": "arn:aws:iam::111111111111:role/pull"}},
            "registry.corp.example:5000": {
                "endpoint": "https://mirror.corp.example",
                "caFile": ca_key,
            },
            "localhost:5000": {"endpoint": "http://[::1]:5000", "insecure": True},
        }
    }
    assert len(carried.notes) == 3
    assert carried.notes[0] == (
        f"registries.{DEV}.endpoint http://127.0.0.1:5101 is this machine's address: left out; "
        "mark the entry inCluster: true to copy it into the cluster"
    )
    assert all("insecure: true is a workstation setting" in n for n in carried.notes[1:])

    mounted = tmp_path / "etc-promoter"  # the ConfigMap as the Job's pod sees it
    mounted.mkdir()
    for key, text in carried.files.items():
        (mounted / key).write_text(text)
    settings = load_config(mounted / "promoter.yaml", registries_only=True).registries
    assert settings["registry.corp.example:5000"].ca_file == mounted / ca_key
    assert settings["registry.corp.example:5000"].insecure is False
    assert settings[DEV].endpoint is None


PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEkeybody\n-----END PRIVATE KEY-----\n"


def test_argocd_generate_refuses_ca_files_it_must_not_carry(tmp_path: Path) -> None:
    """A caFile outside the folder of promoter.yaml (a path or a symbolic link: the repo-server's
    own files), missing, a named pipe, holding no certificate, holding a PEM block of another kind
    (a private key beside the certificate) or a cut certificate is refused in one line naming the
    key."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (tmp_path / "token").write_text("-----BEGIN CERTIFICATE-----\n")
    (repo / "link.pem").symlink_to(tmp_path / "token")
    (repo / "text.pem").write_text("no certificate here\n")
    (repo / "key.pem").write_text(PEM_KEY)
    (repo / "both.pem").write_text(PEM_CERTIFICATE + PEM_KEY)
    (repo / "rsa.pem").write_text(PEM_CERTIFICATE + PEM_KEY.replace("PRIVATE", "RSA PRIVATE"))
    (repo / "cut.pem").write_text(PEM_CERTIFICATE + "-----BEGIN CERTIFICATE-----\nMIIB\n")
    os.mkfifo(repo / "pipe.pem")
    cases = {
        "../token": "is outside",
        "link.pem": "is outside",
        "missing.pem": "no such file",
        "pipe.pem": "is a named pipe (FIFO), not a regular file",
        "text.pem": "holds no PEM certificate",
        "key.pem": "holds a PRIVATE KEY block besides certificates; only CA certificates may go",
        "both.pem": "holds a PRIVATE KEY block besides certificates",
        "rsa.pem": "holds a RSA PRIVATE KEY block besides certificates",
        "cut.pem": "has a certificate block without its END line",
    }
    for name, problem in cases.items():
        config = write_registries(repo, f"  {DEV}:\n    caFile: {name}\n")
        with pytest.raises(ConfigError, match=re.escape(problem)) as caught:
            hook_config(config)
        assert f"registries.{DEV}.caFile" in str(caught.value)
        assert "keybody" not in str(caught.value)


def test_argocd_generate_refuses_a_ca_file_holding_a_private_key(
    gitops_copy: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, cli: Callable[..., CliRun]
) -> None:
    """A caFile that holds the CA's private key beside its certificate is never copied into the
    hook's ConfigMap: generate exits 2 with nothing on stdout and one line naming the file."""
    root, _ = gitops_copy
    (root / "ca.pem").write_text(PEM_CERTIFICATE + PEM_KEY)
    config = root / "promoter.yaml"
    config.write_text(config.read_text() + f"registries:\n  {PROD}:\n    caFile: ca.pem\n")
    monkeypatch.chdir(root / "infra" / "overlays" / "production")
    run = cli("argocd", "generate")
    assert run.code == 2
    assert run.out == ""
    assert "keybody" not in run.err
    (line,) = [line for line in run.err.splitlines() if not line.startswith("promoter: warning:")]
    assert line == (
        f"promoter: error: {config}: registries.{PROD}.caFile: ca.pem holds a PRIVATE KEY block "
        "besides certificates; only CA certificates may go into the hook's ConfigMap: keep the "
        "file to certificates (and a key out of Git)"
    )


def test_argocd_generate_carries_a_ca_file_to_the_job_that_copies(
    tmp_path: Path,
    source_registry: RegistryProcess,
    tls_destination: RegistryProcess,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., CliRun],
) -> None:
    """With caFile for a registry whose certificate a private CA signed, the generated ConfigMap
    carries the CA's certificate (without the text around it) and the Job, mounting it, copies
    into that registry."""
    root = tmp_path / "gitops"
    prefix = copy_example(root, source_registry, tls_destination)
    wanted = {"cart": "2.3.1", "catalog": "3.0.2", "checkout": "1.8.0"}
    digests = {m: seed(source_registry, f"{prefix}/{m}", tag) for m, tag in wanted.items()}
    assert tls_destination.ca_file is not None
    certificate = Path(tls_destination.ca_file).read_text()
    # As `openssl x509 -text` writes it: a description above the block, which stays behind.
    (root / "ca.pem").write_text(f"Certificate:\n    Subject: CN=test CA\n{certificate}")
    config = root / "promoter.yaml"
    config.write_text(
        config.read_text() + f"registries:\n  {tls_destination.host}:\n    caFile: ca.pem\n"
    )
    monkeypatch.chdir(root / "infra" / "overlays" / "production")
    monkeypatch.setenv("ARGOCD_ENV_PROMOTER_IMAGE", "registry.example.com/tools/promoter:0.1.0")

    run = cli("argocd", "generate", "--strict")
    assert run.code == 0, run.err
    documents = load(run.out)
    validate(documents)
    job, config_map = only(documents, "Job"), only(documents, "ConfigMap")
    check_ordinary(config_map, wave_below=check_hook(job))
    assert config_map["data"][f"ca-{tls_destination.host.replace(':', '_')}.pem"] == certificate
    done = run_job(job, tmp_path, {config_map["metadata"]["name"]: config_map["data"]})
    assert done.returncode == 0, done.stderr
    for module, tag in wanted.items():
        assert manifest_digest(tls_destination, f"{prefix}/{module}", tag) == digests[module]


def test_argocd_generate_refuses_an_environment_whose_registry_is_a_typo(
    gitops_copy: tuple[Path, str],
    dest_registry: RegistryProcess,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., CliRun],
) -> None:
    """An overlay that deploys no image of its environment's registry while the environment it
    promotes from deploys its own is an error (exit 2) naming the environment, its registry and
    the registries the overlay uses, not an application without a hook."""
    root, _ = gitops_copy
    config = root / "promoter.yaml"
    text = config.read_text()
    config.write_text(text.replace(f"registry: {dest_registry.host}", "registry: 127.0.0.1:1"))
    monkeypatch.chdir(root / "infra" / "overlays" / "production")

    run = cli("argocd", "generate")
    assert run.code == 2
    assert run.out == ""
    (line,) = run.err.splitlines()
    assert line.startswith(
        "promoter: error: environment production: its overlay deploys no image of its registry "
        "127.0.0.1:1, while dev deploys images of "
    )
    assert f"the overlay's images are in {dest_registry.host}" in line


def set_production(root: Path, setting: str) -> None:
    """Add a line (``divergedTags: fail``, ``allowImagesFrom: [dev]``) to production's entry of the
    copied example's promoter.yaml."""
    config = root / "promoter.yaml"
    text = config.read_text()
    assert "    promotesFrom: dev\n" in text
    config.write_text(
        text.replace("    promotesFrom: dev\n", f"    promotesFrom: dev\n    {setting}\n")
    )


def test_argocd_generate_refuses_images_of_another_environments_registry(
    gitops_copy: tuple[Path, str],
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., CliRun],
) -> None:
    """Production's overlay deploying an image of dev's registry fails generate (exit 2, nothing on
    stdout) in one line naming the image, its workload, dev and what to do, rather than a Job that
    leaves it out; with allowImagesFrom: [dev] the hook is printed, without it, and a warning
    names it."""
    root, prefix = gitops_copy
    overlay = root / "infra" / "overlays" / "production"
    patch = overlay / "patch-image.yaml"
    patch.write_text(patch.read_text().replace(dest_registry.host, source_registry.host))
    foreign = f"{source_registry.host}/{prefix}/catalog:3.0.2"
    monkeypatch.chdir(overlay)

    run = cli("argocd", "generate", "--strict", "--hook-image", "registry.example.com/p:1")
    assert run.code == 2
    assert run.out == ""
    (line,) = run.err.splitlines()
    assert line == (
        f"promoter: error: environment production deploys images of environment dev's registry "
        f"{source_registry.host}: {foreign} (Deployment/catalog); the hook copies only images of "
        f"{dest_registry.host}, so production would pull these from another environment's "
        "registry: promote them (promoter promote MODULE --to production) so the overlay names "
        f"{dest_registry.host}, or allow it (allowImagesFrom under environments.production in "
        "promoter.yaml)"
    )

    set_production(root, "allowImagesFrom: [dev]")
    run = cli("argocd", "generate", "--strict", "--hook-image", "registry.example.com/p:1")
    assert run.code == 0, run.err
    args = argv_for(only(load(run.out), "Job"))
    assert foreign not in args
    assert f"{dest_registry.host}/{prefix}/cart:2.3.1" in args
    assert "promoter: warning: production deploys images of environment dev's registry" in run.err
    assert f"{foreign} (Deployment/catalog); the hook does not copy them" in run.err


def test_argocd_generate_reports_images_the_hook_leaves_out_and_strict_refuses_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., CliRun]
) -> None:
    """An image in a registry that looks like the environment's and an unqualified image that dev
    renames are warnings, as in plan, and --strict refuses them (exit 2, nothing on stdout); an
    images: entry that applies to no image stays a warning, also with --strict."""
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE, root)
    overlay = root / "infra" / "overlays" / "production"
    lookalike = PROD.replace("us-east-1", "us-west-2")
    patch = overlay / "patch-image.yaml"
    patch.write_text(patch.read_text().replace(PROD, lookalike))
    kustomization = overlay / "kustomization.yaml"
    original = kustomization.read_text()
    checkout = f"  - name: checkout\n    newName: {PROD}/shop/checkout\n    newTag: 1.8.0\n"
    assert checkout in original
    unused = "  - name: payments\n    newTag: 1.0.0\n"
    kustomization.write_text(original.replace(checkout, unused))
    monkeypatch.chdir(overlay)
    options = ("--hook-image", "registry.example.com/p:1", "--role-arn", "none")
    wrong_region = (
        f"environment production: {lookalike}/shop/catalog:3.0.2 is in {lookalike}, which looks "
        f"like its registry {PROD} (a typo in an images: entry, a patch, or promoter.yaml?): such "
        "an image is external, never copied"
    )
    unqualified = (
        "environment production runs 'checkout', which means docker.io/library/checkout, while "
        f"dev's kustomization renames 'checkout' to {DEV}/shop/checkout"
    )
    no_image = "environment production: the images: entry 'payments' of its kustomization"

    run = cli("argocd", "generate", *options)
    assert run.code == 0, run.err
    assert only(load(run.out), "Job")
    warnings = [line for line in run.err.splitlines() if line.startswith("promoter: warning: ")]
    for expected in (wrong_region, unqualified, no_image):
        assert any(expected in line for line in warnings), (expected, run.err)

    run = cli("argocd", "generate", "--strict", *options)
    assert run.code == 2
    assert run.out == ""
    (line,) = [line for line in run.err.splitlines() if not line.startswith("promoter: warning: ")]
    assert line.startswith("promoter: error: ")
    assert wrong_region in line
    assert unqualified in line
    assert no_image not in line
    assert line.endswith("(--strict)")

    patch.write_text(patch.read_text().replace(lookalike, PROD))
    kustomization.write_text(original.replace(checkout, checkout + unused))
    run = cli("argocd", "generate", "--strict", *options)
    assert run.code == 0, run.err
    assert any(
        line.startswith("promoter: warning: ") and no_image in line for line in run.err.splitlines()
    )
    assert "looks like its registry" not in run.err
    assert "docker.io/library" not in run.err


def test_argocd_generate_refuses_an_overlay_that_already_has_the_hook_component(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., CliRun]
) -> None:
    """An overlay that uses the Kustomize component builds with its own hook Job, and the plugin
    refuses it (exit 2, one line, nothing on stdout) instead of printing a second Job and the
    ServiceAccount twice."""
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE, root)
    shutil.copytree(DEPLOY / "kustomize" / "promoter-hook", root / "infra" / "components" / "hook")
    overlay = root / "infra" / "overlays" / "production"
    (overlay / "promoter-images.txt").write_text(f"{PROD}/shop/cart:2.3.1\n")
    kustomization = overlay / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text()
        + "  - name: promoter\n    newName: registry.example.com/tools/promoter\n"
        "    newTag: 0.1.0\n"
        "components:\n  - ../../components/hook\n"
        "configMapGenerator:\n  - name: promoter-hook\n"
        "    options:\n      disableNameSuffixHash: true\n"
        f"    literals:\n      - sourceRegistry={DEV}\n"
        "    files:\n      - promoter-images.txt\n"
    )
    component_job = only(kustomize(overlay), "Job")
    assert component_job["metadata"]["name"] == "promoter-hook"
    monkeypatch.chdir(overlay)

    run = cli(
        "argocd", "generate", "--hook-image", "registry.example.com/p:1", "--role-arn", "none"
    )
    assert run.code == 2
    assert run.out == ""
    (line,) = run.err.splitlines()
    assert line.startswith(f"promoter: error: kustomize build {overlay.resolve()} already ")
    assert (
        "contains promoter's hook (Job/promoter-hook runs promoter sync --from-registry: " in line
    )
    assert "the Kustomize component deploy/kustomize/promoter-hook or a Job of your own)" in line
    assert "two hook Jobs and the ServiceAccount twice; use one packaging" in line


def test_argocd_generate_passes_diverged_tags_fail_to_the_job(
    gitops_copy: tuple[Path, str],
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., CliRun],
) -> None:
    """divergedTags: fail on the environment puts --fail-on-diverged in the Job's arguments, so the
    Job refuses (exit 3) a tag re-pushed in the source as plan does; without it, no flag."""
    root, prefix = gitops_copy
    wanted = {"cart": "2.3.1", "catalog": "3.0.2", "checkout": "1.8.0"}
    for module, tag in wanted.items():
        seed(source_registry, f"{prefix}/{module}", tag)
    other = images.oci_image([images.layer(7, "held")], seed=f"{prefix}held")
    push(dest_registry, f"{prefix}/cart", other, tag="2.3.1")  # what production was given
    monkeypatch.chdir(root / "infra" / "overlays" / "production")
    generate = ("argocd", "generate", "--strict", "--hook-image", "registry.example.com/p:1")

    run = cli(*generate)
    assert run.code == 0, run.err
    assert "--fail-on-diverged" not in argv_for(only(load(run.out), "Job"))

    set_production(root, "divergedTags: fail")
    run = cli(*generate)
    assert run.code == 0, run.err
    job = only(load(run.out), "Job")
    validate([job])
    assert "--fail-on-diverged" in argv_for(job)
    done = run_job(job, tmp_path, {})
    assert done.returncode == 3, done.stderr
    assert "refused: diverged tags fail here" in done.stderr


def test_argocd_generate_names_the_settings_it_leaves_out_when_none_remain(
    gitops_copy: tuple[Path, str],
    source_registry: RegistryProcess,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., CliRun],
) -> None:
    """registries: holding only a loopback endpoint gives the Job no ConfigMap, and generate still
    says, on standard error, that the endpoint was left out and how to keep it."""
    root, _ = gitops_copy
    config = root / "promoter.yaml"
    config.write_text(
        config.read_text()
        + f"registries:\n  {source_registry.host}:\n    endpoint: http://127.0.0.1:5101\n"
    )
    monkeypatch.chdir(root / "infra" / "overlays" / "production")

    run = cli("argocd", "generate", "--strict", "--hook-image", "registry.example.com/p:1")
    assert run.code == 0, run.err
    documents = load(run.out)
    assert not [d for d in documents if d["kind"] == "ConfigMap"]
    assert "--config" not in argv_for(only(documents, "Job"))
    assert (
        f"promoter: warning: registries.{source_registry.host}.endpoint http://127.0.0.1:5101 is "
        "this machine's address: left out; mark the entry inCluster: true to copy it into the "
        "cluster"
    ) in run.err.splitlines()


@pytest.mark.parametrize(
    ("exec_timeout", "seconds"),
    [(None, 50.0), ("90s", 80.0), ("2m30s", 140.0), ("8s", 4.0), ("soon", 50.0), ("0s", 50.0)],
)
def test_argocd_generate_renders_within_argo_cds_timeout(
    exec_timeout: str | None, seconds: float
) -> None:
    """Rendering may take the plugin's budget less a reserve: ARGOCD_EXEC_TIMEOUT when the sidecar
    sets a valid one, else 60 s (the repo-server's request timeout, below the 90 s exec timeout)."""
    environ = {} if exec_timeout is None else {"ARGOCD_EXEC_TIMEOUT": exec_timeout}
    assert render_budget(environ) == seconds


def test_argocd_generate_stops_rendering_at_argo_cds_timeout(
    gitops_copy: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, cli: Callable[..., CliRun]
) -> None:
    """A render that outlives the sidecar's ARGOCD_EXEC_TIMEOUT is stopped by promoter, which says
    so in one line, before Argo CD kills the command without promoter's words."""
    root, _ = gitops_copy
    monkeypatch.chdir(root / "infra" / "overlays" / "production")
    monkeypatch.setenv("ARGOCD_EXEC_TIMEOUT", "1ms")

    run = cli("argocd", "generate")
    assert run.code == 1  # a deadline, as for every other command
    assert run.out == ""
    (line,) = run.err.splitlines()
    assert re.search(
        r"kustomize build \S+: stopped after [\d.]+ s, at the 0\.00\d* s deadline$", line
    ), line


def test_argocd_plugin_sidecar_renders_valid_for_argocd_repo_server(tmp_path: Path) -> None:
    """The CMP component patches argocd-repo-server with a uid-999 sidecar running
    argocd-cmp-server, with the /var/run/argocd, plugins and plugin.yaml mounts, the plugin runs
    generate --strict, and a patch of the sidecar's env sets defaults for every Application."""
    shutil.copytree(DEPLOY / "argocd-cmp", tmp_path / "argocd-cmp")
    install = tmp_path / "install"
    install.mkdir()
    # A stand-in for the repo-server of Argo CD's install.yaml: the volumes the sidecar shares.
    (install / "repo-server.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: argocd-repo-server\n"
        "spec:\n  selector:\n    matchLabels: {app: repo}\n  template:\n"
        "    metadata:\n      labels: {app: repo}\n    spec:\n      containers:\n"
        "        - name: argocd-repo-server\n          image: quay.io/argoproj/argocd:v2.14.0\n"
        "      volumes:\n        - name: var-files\n          emptyDir: {}\n"
        "        - name: plugins\n          emptyDir: {}\n"
    )
    (install / "kustomization.yaml").write_text(
        "namespace: argocd\nresources:\n  - repo-server.yaml\ncomponents:\n  - ../argocd-cmp\n"
        # docs/argocd.md's way to set defaults for every Application on the sidecar
        "patches:\n  - patch: |-\n      apiVersion: apps/v1\n      kind: Deployment\n"
        "      metadata:\n        name: argocd-repo-server\n      spec:\n        template:\n"
        "          spec:\n            containers:\n              - name: promoter-cmp\n"
        "                env:\n                  - name: PROMOTER_IMAGE\n"
        "                    value: registry.example.com/tools/promoter:0.1.0\n"
    )
    documents = kustomize(install)
    validate(documents)
    pod = only(documents, "Deployment")["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "promoter-cmp")
    assert sidecar["command"] == ["/var/run/argocd/argocd-cmp-server"]
    assert sidecar["securityContext"]["runAsUser"] == 999
    mounts = {m["mountPath"]: m for m in sidecar["volumeMounts"]}
    assert mounts["/var/run/argocd"]["name"] == "var-files"
    assert mounts["/home/argocd/cmp-server/plugins"]["name"] == "plugins"
    assert mounts["/home/argocd/cmp-server/config/plugin.yaml"]["subPath"] == "plugin.yaml"
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env["PROMOTER_IMAGE"] == "registry.example.com/tools/promoter:0.1.0"
    config_map = only(documents, "ConfigMap")
    plugin_volume = next(v for v in pod["volumes"] if v["name"] == "promoter-cmp-plugin")
    assert plugin_volume["configMap"]["name"] == config_map["metadata"]["name"]
    plugin = yaml.safe_load(config_map["data"]["plugin.yaml"])
    assert plugin["kind"] == "ConfigManagementPlugin"
    assert plugin["spec"]["generate"]["command"] == ["promoter", "argocd", "generate", "--strict"]


# -- the container image ------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    """hadolint finds nothing to report in the Dockerfile."""
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run(
        [str(hadolint), str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_package_installs_with_plain_pip_into_a_fresh_venv(tmp_path: Path) -> None:
    """``pip install .`` into a new virtual environment (what the Dockerfile does) gives a working
    ``promoter`` console script."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=60)
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    version = subprocess.run(
        [str(venv / "bin" / "promoter"), "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert version.stdout.startswith("promoter ")


def test_registry_settings_reach_the_generated_job() -> None:
    """With promoter.yaml registry settings, the hook carries them in a ConfigMap, an ordinary
    resource one wave before the Job, mounted and passed with --config; every object stays
    schema-valid."""
    settings = (
        "registries:\n  111111111111.dkr.ecr.us-east-1.amazonaws.com:\n    ecr: {roleArn: arn}\n"
    )
    objects = hook_objects(
        HookSettings(image="promoter:0.1.0"),
        "111111111111.dkr.ecr.us-east-1.amazonaws.com",
        ["222222222222.dkr.ecr.us-east-1.amazonaws.com/shop/cart:1.0"],
        config_files={"promoter.yaml": settings},
    )
    validate(objects)
    config = only(objects, "ConfigMap")
    job = only(objects, "Job")
    check_job(job)
    check_ordinary(config, wave_below=check_hook(job))
    check_ordinary(only(objects, "ServiceAccount"), wave_below=check_hook(job))
    assert config["data"]["promoter.yaml"] == settings
    pod = job["spec"]["template"]["spec"]
    assert {"name": "config", "configMap": {"name": config["metadata"]["name"]}} in pod["volumes"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--config") + 1] == "/etc/promoter/promoter.yaml"


def test_argocd_generate_refuses_a_key_disguised_as_a_certificate(
    gitops_copy: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, cli: Callable[..., CliRun]
) -> None:
    """A private key's body in CERTIFICATE armour passes a label check; each block is parsed as
    X.509, so it is refused (exit 2) and never reaches the ConfigMap."""
    root, _ = gitops_copy
    ca = trustme.CA()
    key = ca.private_key_pem.bytes().decode()
    disguised = re.sub(
        r"-----(BEGIN|END) [A-Z ]*PRIVATE KEY-----", r"-----\1 CERTIFICATE-----", key
    )
    (root / "ca.pem").write_text(ca.cert_pem.bytes().decode() + disguised)
    config = root / "promoter.yaml"
    config.write_text(config.read_text() + f"registries:\n  {PROD}:\n    caFile: ca.pem\n")
    monkeypatch.chdir(root / "infra" / "overlays" / "production")
    run = cli("argocd", "generate")
    assert run.code == 2
    assert run.out == ""
    assert "certificate block 2 is no X.509 certificate" in run.err
