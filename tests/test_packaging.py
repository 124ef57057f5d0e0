"""The PreSync hook, three ways (Helm chart, Kustomize component, Argo CD plugin), and the image.

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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from devtools import images
from devtools.registry import RegistryProcess
from tests.registry_checks import manifest_digest, push

from promoter.app.runtime import SecretScrubber
from promoter.argocd.hookjob import HookSettings, hook_objects
from promoter.cli import argocd
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


def check_hook(obj: Mapping[str, Any], *, wave_below: int = 0) -> int:
    """A PreSync hook kept on failure, in a negative wave; returns the wave."""
    annotations = obj["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "PreSync"
    assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    wave = int(annotations["argocd.argoproj.io/sync-wave"])
    assert wave < wave_below
    return wave


def check_job(job: Mapping[str, Any], *, generated_name: bool = True) -> None:
    """The production settings the issue asks of every hook Job."""
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
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    for side in ("requests", "limits"):
        assert set(container["resources"][side]) == {"cpu", "memory"}
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


def argv_for(job: Mapping[str, Any]) -> list[str]:
    """The Job container's arguments."""
    return list(job["spec"]["template"]["spec"]["containers"][0]["args"])


# -- Helm chart ---------------------------------------------------------------------------------


def render_chart(chart: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    """``helm template`` through Helm's Go SDK."""
    with helm.Chart.load(str(chart)) as loaded:
        rendered = loaded.render(values, name="shop", namespace="production")
    return [d for text in rendered.values() for d in load(text)]


def test_helm_chart_renders_a_valid_hook_that_copies(
    source_registry: RegistryProcess, dest_registry: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    """The chart renders a schema-valid ServiceAccount (IRSA role), config ConfigMap and PreSync
    Job, and the Job's own arguments copy the listed image into the destination."""
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
        },
    )
    validate(documents)
    job = only(documents, "Job")
    check_job(job)
    account = only(documents, "ServiceAccount")
    config_map = only(documents, "ConfigMap")
    job_wave = check_hook(job)
    assert check_hook(account, wave_below=job_wave) < job_wave
    assert check_hook(config_map, wave_below=job_wave) < job_wave
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
    check_job(job)
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
        render_chart(chart, {"images": ["registry.example.com/a:1"]})
    with pytest.raises(helm.HelmError, match="images is empty"):
        render_chart(chart, {"sourceRegistry": "registry.example.com"})


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


def test_kustomize_component_renders_a_valid_hook_that_copies_the_listed_images(
    source_registry: RegistryProcess, dest_registry: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    """An overlay that adds the component and a promoter-hook ConfigMap of promoter-images.txt gets
    schema-valid PreSync hooks (the ConfigMap too), with its prefix and namespace, and the Job's
    own arguments copy every listed image."""
    cart = seed(source_registry, f"{repo}/cart", "2.4.0")
    catalog = seed(source_registry, f"{repo}/catalog", "3.1.0")
    shutil.copytree(DEPLOY / "kustomize" / "promoter-hook", tmp_path / "components" / "hook")
    overlay = tmp_path / "overlays" / "production"
    overlay.mkdir(parents=True)
    (overlay / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: cart\n"
        "spec:\n  selector:\n    matchLabels: {app: cart}\n  template:\n"
        "    metadata:\n      labels: {app: cart}\n    spec:\n      containers:\n"
        f"        - name: cart\n          image: {dest_registry.host}/{repo}/cart:2.4.0\n"
    )
    (overlay / "promoter-images.txt").write_text(
        f"# images this overlay runs\n{dest_registry.host}/{repo}/cart:2.4.0\n"
        f"{dest_registry.host}/{repo}/catalog:3.1.0\n"
    )
    (overlay / "kustomization.yaml").write_text(
        "namespace: production\nnamePrefix: shop-\n"
        "resources:\n  - deployment.yaml\n"
        "components:\n  - ../../components/hook\n"
        "configMapGenerator:\n  - name: promoter-hook\n"
        "    options:\n      disableNameSuffixHash: true\n"
        f"    literals:\n      - sourceRegistry={source_registry.host}\n"
        "    files:\n      - promoter-images.txt\n"
        "images:\n  - name: promoter\n    newName: registry.example.com/tools/promoter\n"
        "    newTag: 0.1.0\n"
        "patches:\n  - target: {kind: ServiceAccount, name: promoter-hook}\n"
        "    patch: |-\n      - op: add\n"
        "        path: /metadata/annotations/eks.amazonaws.com~1role-arn\n"
        "        value: arn:aws:iam::222222222222:role/promoter\n"
    )
    documents = kustomize(overlay)
    validate(documents)
    job = only(documents, "Job")
    check_job(job, generated_name=False)
    job_wave = check_hook(job)
    config_map = only(documents, "ConfigMap")
    account = only(documents, "ServiceAccount")
    assert check_hook(config_map, wave_below=job_wave) < job_wave
    assert check_hook(account, wave_below=job_wave) < job_wave
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        ":role/promoter"
    )
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"] == "shop-promoter-hook"
    assert pod["containers"][0]["image"] == "registry.example.com/tools/promoter:0.1.0"
    assert {d["metadata"]["namespace"] for d in documents} == {"production"}

    done = run_job(job, tmp_path, {config_map["metadata"]["name"]: config_map["data"]})
    assert done.returncode == 0, done.stderr
    assert manifest_digest(dest_registry, f"{repo}/cart", "2.4.0") == cart
    assert manifest_digest(dest_registry, f"{repo}/catalog", "3.1.0") == catalog


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


@pytest.fixture
def gitops_copy(
    tmp_path: Path, source_registry: RegistryProcess, dest_registry: RegistryProcess
) -> tuple[Path, str]:
    """examples/gitops with the test registries as dev and production and its own module names."""
    root = tmp_path / "gitops"
    shutil.copytree(EXAMPLE, root)
    prefix = f"shop{uuid.uuid4().hex[:8]}"
    for path in root.rglob("*.yaml"):
        text = path.read_text().replace(DEV, source_registry.host).replace(PROD, dest_registry.host)
        path.write_text(text.replace("/shop/", f"/{prefix}/"))
    config = root / "promoter.yaml"
    config.write_text(config.read_text().split("\nregistries:")[0] + "\n")
    return root, prefix


def test_argocd_generate_prints_the_overlay_and_a_hook_that_copies_its_images(
    gitops_copy: tuple[Path, str],
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Run in an overlay, generate prints kustomize's output unchanged plus a schema-valid hook
    whose Job lists exactly the managed images; ARGOCD_ENV_ settings apply; the Job copies them."""
    root, prefix = gitops_copy
    wanted = {"cart": "2.3.1", "catalog": "3.0.2", "checkout": "1.8.0"}
    digests = {m: seed(source_registry, f"{prefix}/{m}", tag) for m, tag in wanted.items()}
    overlay = root / "infra" / "overlays" / "production"
    monkeypatch.chdir(overlay)
    monkeypatch.setenv("ARGOCD_ENV_PROMOTER_ROLE_ARN", "arn:aws:iam::222222222222:role/promoter")
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
    assert check_hook(account, wave_below=check_hook(job)) < check_hook(job)
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


def test_argocd_plugin_sidecar_renders_valid_for_argocd_repo_server(tmp_path: Path) -> None:
    """The CMP component patches argocd-repo-server with a uid-999 sidecar running
    argocd-cmp-server, with the /var/run/argocd, plugins and plugin.yaml mounts."""
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
    config_map = only(documents, "ConfigMap")
    plugin_volume = next(v for v in pod["volumes"] if v["name"] == "promoter-cmp-plugin")
    assert plugin_volume["configMap"]["name"] == config_map["metadata"]["name"]
    plugin = yaml.safe_load(config_map["data"]["plugin.yaml"])
    assert plugin["kind"] == "ConfigManagementPlugin"
    assert plugin["spec"]["generate"]["command"] == ["promoter", "argocd", "generate"]


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
    """With promoter.yaml registry settings, the hook carries them in a ConfigMap hook one wave
    before the Job, mounted and passed with --config; every object stays schema-valid."""
    settings = (
        "registries:\n  111111111111.dkr.ecr.us-east-1.amazonaws.com:\n    ecr: {roleArn: arn}\n"
    )
    objects = hook_objects(
        HookSettings(image="promoter:0.1.0"),
        "111111111111.dkr.ecr.us-east-1.amazonaws.com",
        ["222222222222.dkr.ecr.us-east-1.amazonaws.com/shop/cart:1.0"],
        registry_settings=settings,
    )
    validate(objects)
    config = only(objects, "ConfigMap")
    job = only(objects, "Job")
    check_job(job)
    assert check_hook(config, wave_below=check_hook(job)) < check_hook(job)
    assert config["data"]["promoter.yaml"] == settings
    pod = job["spec"]["template"]["spec"]
    assert {"name": "config", "configMap": {"name": config["metadata"]["name"]}} in pod["volumes"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--config") + 1] == "/etc/promoter/promoter.yaml"
