"""Rendering overlays with the real kustomize (kubectl kustomize here) and finding their images."""

from __future__ import annotations

import io
import shutil
import textwrap
from pathlib import Path

import pytest

from promoter.cli.exit_codes import exit_code_for
from promoter.errors import ConfigError
from promoter.gitops.discover import FoundImage, discover_images, parse_manifests
from promoter.gitops.render import read_manifests, render_overlay

pytestmark = pytest.mark.skipif(
    shutil.which("kustomize") is None and shutil.which("kubectl") is None,
    reason="needs kustomize or kubectl",
)

PROD = "222222222222.dkr.ecr.us-east-1.amazonaws.com"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def write(root: Path, files: dict[str, str]) -> None:
    """Write files (relative path -> text, dedented) under root."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


BASE = {
    "base/kustomization.yaml": """\
        resources:
        - deployment.yaml
        - worker.yaml
        - cronjob.yaml
        """,
    "base/deployment.yaml": """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: api
        spec:
          selector: {matchLabels: {app: api}}
          template:
            metadata: {labels: {app: api}}
            spec:
              containers:
              - name: api
                image: shop/api:1.0
              - name: web
                image: shop/web:1.0
        """,
    "base/worker.yaml": """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: worker
        spec:
          selector: {matchLabels: {app: worker}}
          template:
            metadata: {labels: {app: worker}}
            spec:
              containers:
              - name: worker
                image: shop/worker:1.0
        """,
    "base/cronjob.yaml": """\
        apiVersion: batch/v1
        kind: CronJob
        metadata:
          name: nightly
        spec:
          schedule: "0 3 * * *"
          jobTemplate:
            spec:
              template:
                spec:
                  restartPolicy: OnFailure
                  initContainers:
                  - name: migrate
                    image: shop/migrate:1.0
                  containers:
                  - name: report
                    image: shop/report:1.0
        """,
    "components/sidecar/kustomization.yaml": """\
        apiVersion: kustomize.config.k8s.io/v1alpha1
        kind: Component
        patches:
        - target: {kind: Deployment, name: api}
          patch: |-
            - op: add
              path: /spec/template/spec/containers/-
              value: {name: envoy, image: envoyproxy/envoy:v1.30}
        """,
    "overlays/production/patch-image.yaml": """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: api
        spec:
          template:
            spec:
              containers:
              - name: web
                image: shop/web:1.1
        """,
    "overlays/production/kustomization.yaml": f"""\
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        resources:
        - ../../base
        components:
        - ../../components/sidecar
        patches:
        - path: patch-image.yaml
        - target: {{kind: Deployment, name: worker}}
          patch: |-
            - op: replace
              path: /spec/template/spec/containers/0/image
              value: shop/worker:1.7
        images:
        - name: shop/api
          newName: {PROD}/shop/api
          newTag: "2.0"
        - name: shop/worker
          newName: {PROD}/shop/worker
        - name: shop/migrate
          digest: {DIGEST_A}
        - name: shop/report
          newName: {PROD}/shop/report
          newTag: "2.5"
          digest: {DIGEST_B}
        """,
}


def found(
    image: str, kind: str, name: str, container: str, field: str = "containers"
) -> FoundImage:
    """Shorthand for an expected FoundImage."""
    return FoundImage(image=image, kind=kind, name=name, container=container, field=field)


def by_place(images: list[FoundImage]) -> list[FoundImage]:
    """Images sorted by workload and container: kustomize may reorder list elements."""
    return sorted(images, key=lambda image: (image.kind, image.name, image.field, image.container))


def test_overlay_renders_and_every_image_is_found(tmp_path: Path) -> None:
    """Patches, a JSON 6902 patch, images newName/newTag/digest and a component all show up."""
    write(tmp_path, BASE)
    rendered = render_overlay(tmp_path / "overlays/production")
    assert by_place(discover_images(parse_manifests(rendered))) == by_place([
        found(f"{PROD}/shop/api:2.0", "Deployment", "api", "api"),
        found("shop/web:1.1", "Deployment", "api", "web"),
        found("envoyproxy/envoy:v1.30", "Deployment", "api", "envoy"),
        found(f"{PROD}/shop/worker:1.7", "Deployment", "worker", "worker"),
        found(f"{PROD}/shop/report:2.5@{DIGEST_B}", "CronJob", "nightly", "report"),
        found(f"shop/migrate@{DIGEST_A}", "CronJob", "nightly", "migrate", "initContainers"),
    ])  # fmt: skip


def test_base_renders_unchanged_images(tmp_path: Path) -> None:
    """Rendering the base alone gives the images exactly as the resources write them."""
    write(tmp_path, BASE)
    images = discover_images(parse_manifests(render_overlay(tmp_path / "base")))
    assert sorted(image.image for image in images) == [
        "shop/api:1.0",
        "shop/migrate:1.0",
        "shop/report:1.0",
        "shop/web:1.0",
        "shop/worker:1.0",
    ]


def test_deprecation_warnings_do_not_reach_the_manifests(tmp_path: Path) -> None:
    """Deprecated fields (bases, patchesStrategicMerge) still render; warnings stay out of the YAML."""
    write(tmp_path, BASE)
    write(
        tmp_path / "overlays/old",
        {
            "kustomization.yaml": "bases:\n- ../../base\npatchesStrategicMerge:\n- patch-image.yaml\n",
            "patch-image.yaml": BASE["overlays/production/patch-image.yaml"],
        },
    )
    rendered = render_overlay(tmp_path / "overlays/old")
    assert "Warning" not in rendered
    assert "shop/web:1.1" in {image.image for image in discover_images(parse_manifests(rendered))}


def test_kustomize_failure_shows_kustomizes_message(tmp_path: Path) -> None:
    """A missing resource fails the build with kustomize's own explanation, on one line."""
    overlay = tmp_path / "broken"
    write(overlay, {"kustomization.yaml": "resources:\n- deployment.yaml\n- missing.yaml\n"})
    (overlay / "deployment.yaml").write_text(BASE["base/deployment.yaml"])
    with pytest.raises(ConfigError) as caught:
        render_overlay(overlay)
    message = str(caught.value)
    assert message.startswith(f"kustomize build {overlay} failed: accumulating resources: ")
    assert f"{overlay}/missing.yaml" in message
    assert "\n" not in message
    assert "command failed" not in message
    assert exit_code_for(caught.value) == 2


def test_multi_line_kustomize_error_becomes_one_line(tmp_path: Path) -> None:
    """kubectl prints some errors as a multi-line block; the message joins it into one line."""
    write(tmp_path, BASE)
    overlay = tmp_path / "overlays/escape"
    write(
        overlay, {"kustomization.yaml": "resources:\n- ../../base\npatches:\n- path: ../p.yaml\n"}
    )
    (tmp_path / "overlays/p.yaml").write_text(BASE["overlays/production/patch-image.yaml"])
    with pytest.raises(ConfigError) as caught:
        render_overlay(overlay)
    message = str(caught.value)
    assert message.startswith(f"kustomize build {overlay} failed: ")
    assert "is not in or below" in message
    assert "\n" not in message


def test_warnings_before_an_error_are_skipped(tmp_path: Path) -> None:
    """The message is kustomize's error, not a deprecation warning printed before it."""
    overlay = tmp_path / "old"
    write(overlay, {"kustomization.yaml": "bases:\n- ../nowhere\n"})
    with pytest.raises(ConfigError) as caught:
        render_overlay(overlay)
    message = str(caught.value)
    assert "Warning" not in message
    assert "nowhere" in message


def test_invalid_kustomization_yaml_is_reported(tmp_path: Path) -> None:
    """A kustomization.yaml kustomize cannot parse fails with its YAML complaint."""
    overlay = tmp_path / "bad"
    write(overlay, {"kustomization.yaml": "resources: [\n"})
    with pytest.raises(ConfigError, match=r"failed: invalid Kustomization: yaml: line 1"):
        render_overlay(overlay)


def test_folder_without_kustomization_is_reported(tmp_path: Path) -> None:
    """An overlay folder with no kustomization file gets kustomize's explanation."""
    overlay = tmp_path / "empty"
    overlay.mkdir()
    with pytest.raises(ConfigError, match=r"unable to find one of 'kustomization.yaml'"):
        render_overlay(overlay)


def test_missing_overlay_folder_is_named(tmp_path: Path) -> None:
    """A missing overlay folder is a one-line error naming it, before any tool runs."""
    overlay = tmp_path / "infra/overlays/nope"
    with pytest.raises(ConfigError) as caught:
        render_overlay(overlay)
    assert str(caught.value) == (
        f"overlay {overlay} does not exist; check the overlay path in promoter.yaml"
    )


def test_overlay_that_is_a_file_is_named(tmp_path: Path) -> None:
    """An overlay path pointing at a file says so."""
    overlay = tmp_path / "kustomization.yaml"
    overlay.write_text("resources: []\n")
    with pytest.raises(ConfigError, match=r"is not a folder"):
        render_overlay(overlay)


def test_without_kustomize_or_kubectl_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With neither tool on PATH the error tells the user to install one."""
    write(tmp_path, BASE)
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ConfigError, match=r"^neither kustomize nor kubectl is on PATH; install"):
        render_overlay(tmp_path / "base")


def test_a_build_that_takes_too_long_is_stopped(tmp_path: Path) -> None:
    """A build exceeding the timeout is stopped with a one-line error."""
    write(tmp_path, BASE)
    with pytest.raises(ConfigError, match=r"did not finish within 0.001 s$"):
        render_overlay(tmp_path / "base", timeout=0.001)


def test_read_manifests_from_a_file(tmp_path: Path) -> None:
    """--manifests FILE reads the file as it is."""
    path = tmp_path / "rendered.yaml"
    path.write_text(BASE["base/deployment.yaml"])
    assert read_manifests(str(path)) == BASE["base/deployment.yaml"]


def test_read_manifests_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    """--manifests - reads standard input, for helm template ... | promoter plan."""
    monkeypatch.setattr("sys.stdin", io.StringIO("kind: Pod\n"))
    assert read_manifests("-") == "kind: Pod\n"


@pytest.mark.parametrize(
    ("name", "reason"),
    [("missing.yaml", "No such file or directory"), ("folder", "Is a directory")],
)
def test_unreadable_manifests_are_a_config_error(tmp_path: Path, name: str, reason: str) -> None:
    """A manifests path that cannot be read is one line naming it."""
    (tmp_path / "folder").mkdir()
    source = str(tmp_path / name)
    with pytest.raises(ConfigError) as caught:
        read_manifests(source)
    assert str(caught.value) == f"cannot read manifests from {source}: {reason}"


def test_manifests_that_are_not_text_are_a_config_error(tmp_path: Path) -> None:
    """Binary input is refused with a clear line instead of a decoding traceback."""
    path = tmp_path / "image.tar"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(
        ConfigError, match=r"not UTF-8 text \(byte 0xff at offset 0\); save it as UTF-8$"
    ):
        read_manifests(str(path))
