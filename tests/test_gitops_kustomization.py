"""An overlay's image fieldSpecs: read from its kustomization tree on disk, and found where the real
kustomize (kubectl kustomize here) rewrites images."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from promoter.config.input_files import KUSTOMIZATION_CAP
from promoter.errors import ConfigError
from promoter.gitops.discover import (
    FoundImage,
    ImageFieldSpec,
    discover_images,
    parse_field_spec_path,
    parse_manifests,
)
from promoter.gitops.kustomization import image_field_specs, local_sources
from promoter.gitops.render import render_overlay

PROD = "222222222222.dkr.ecr.us-east-1.amazonaws.com"


def write(root: Path, files: dict[str, str]) -> None:
    """Write files (relative path -> text, dedented) under root."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def spec(path: str, kind: str = "", group: str = "", version: str = "") -> ImageFieldSpec:
    """Shorthand for an expected fieldSpec."""
    return ImageFieldSpec(parse_field_spec_path(path), kind, group, version)


# A base of custom resources whose images kustomize is told about in a configurations file, and an
# overlay that sets them with images: (newName and newTag), as promote writes them.
CRD_TREE = {
    "base/kustomization.yaml": """\
        resources:
        - runners.yaml
        - spark.yaml
        configurations:
        - images-config.yaml
        """,
    "base/images-config.yaml": """\
        # kustomize transformer configuration: where else the images: transformer looks
        images:
        - path: spec/template/spec/image
          kind: RunnerDeployment
        - path: spec/image
          kind: SparkApplication
          group: sparkoperator.k8s.io
        - path: spec/driver/sidecars[]/image
          kind: SparkApplication
        - path: metadata/annotations/example.com\\/image
          kind: SparkApplication
        commonLabels:
        - path: spec/template/metadata/labels
          kind: RunnerDeployment
        """,
    "base/runners.yaml": """\
        apiVersion: actions.summerwind.dev/v1alpha1
        kind: RunnerDeployment
        metadata:
          name: runners
        spec:
          template:
            spec:
              image: runner:1.0
              repository: org/repo
        """,
    "base/spark.yaml": """\
        apiVersion: sparkoperator.k8s.io/v1beta2
        kind: SparkApplication
        metadata:
          name: pi
          annotations:
            example.com/image: spark:3.4
        spec:
          image: spark:3.4
          driver:
            sidecars:
            - name: log
              image: spark:3.4
          executor:
            image: spark:3.4
        """,
    "overlay/kustomization.yaml": f"""\
        resources:
        - ../base
        images:
        - name: runner
          newName: {PROD}/ci/runner
          newTag: "2.0"
        - name: spark
          newName: {PROD}/data/spark
          newTag: "3.5"
        """,
}


def test_kustomize_and_promoter_agree_on_custom_resource_images(tmp_path: Path) -> None:
    """The real kustomize rewrites the fields a base's configurations declare (through lists, with
    an escaped slash, [] or not) and promoter finds exactly those images; an undeclared field
    (spec.executor.image) is left alone by both."""
    write(tmp_path, CRD_TREE)
    rendered = parse_manifests(render_overlay(tmp_path / "overlay"))
    by_kind = {document["kind"]: document for document in rendered}
    runner, spark = by_kind["RunnerDeployment"], by_kind["SparkApplication"]
    assert runner["spec"]["template"]["spec"]["image"] == f"{PROD}/ci/runner:2.0"
    assert spark["spec"]["image"] == f"{PROD}/data/spark:3.5"
    assert spark["spec"]["driver"]["sidecars"][0]["image"] == f"{PROD}/data/spark:3.5"
    assert spark["metadata"]["annotations"]["example.com/image"] == f"{PROD}/data/spark:3.5"
    assert spark["spec"]["executor"]["image"] == "spark:3.4"

    found = discover_images(rendered, image_field_specs(tmp_path / "overlay"))
    assert sorted((f.kind, f.field, f.image) for f in found) == [
        ("RunnerDeployment", "spec.template.spec.image", f"{PROD}/ci/runner:2.0"),
        ("SparkApplication", 'metadata.annotations["example.com/image"]', f"{PROD}/data/spark:3.5"),
        ("SparkApplication", "spec.driver.sidecars[0].image", f"{PROD}/data/spark:3.5"),
        ("SparkApplication", "spec.image", f"{PROD}/data/spark:3.5"),
    ]
    assert all(isinstance(f, FoundImage) and f.container == "" for f in found)


def test_a_field_spec_in_the_overlay_applies_to_its_bases_resources(tmp_path: Path) -> None:
    """kustomize merges configurations upward: one declared in the overlay (or a component) covers
    resources of its bases, and promoter reads it there too."""
    files = dict(CRD_TREE)
    files["base/kustomization.yaml"] = "resources:\n- runners.yaml\n"
    files["component/kustomization.yaml"] = """\
        apiVersion: kustomize.config.k8s.io/v1alpha1
        kind: Component
        configurations:
        - images.yaml
        """
    files["component/images.yaml"] = (
        "images:\n- {path: spec/template/spec/image, kind: RunnerDeployment}\n"
    )
    files["overlay/kustomization.yaml"] = (
        textwrap.dedent(files["overlay/kustomization.yaml"]) + "components:\n- ../component\n"
    )
    write(tmp_path, files)
    rendered = parse_manifests(render_overlay(tmp_path / "overlay"))
    assert rendered[0]["spec"]["template"]["spec"]["image"] == f"{PROD}/ci/runner:2.0"
    found = discover_images(rendered, image_field_specs(tmp_path / "overlay"))
    assert [f.image for f in found] == [f"{PROD}/ci/runner:2.0"]


def test_the_whole_local_tree_is_read_each_folder_once(tmp_path: Path) -> None:
    """The overlay's configurations first, then its resources:, bases: and components: folders depth
    first; a folder two bases share is read once, a duplicate fieldSpec kept once; resource files
    and remote bases are not followed."""
    write(
        tmp_path,
        {
            "overlay/kustomization.yaml": """\
                resources:
                - deployment.yaml
                - https://github.com/example/infra//base?ref=v1
                - ../a
                bases:
                - ../b
                components:
                - ../c
                configurations:
                - overlay.yaml
                """,
            "overlay/deployment.yaml": "kind: Deployment\n",
            "overlay/overlay.yaml": "images:\n- {path: spec/o}\n",
            "a/kustomization.yml": "resources: [../common]\nconfigurations: [a.yaml]\n",
            "a/a.yaml": "images:\n- {path: spec/a, kind: A}\n- {path: spec/o}\n",
            "b/Kustomization": "resources: [../common]\nconfigurations: [b.yaml]\n",
            "b/b.yaml": "images:\n- {path: spec/b, kind: B, group: b.example, version: v2}\n",
            "c/kustomization.yaml": "kind: Component\nconfigurations: [c.yaml]\n",
            "c/c.yaml": "namePrefix:\n- {path: metadata/name}\n",
            "common/kustomization.yaml": "configurations: [common.yaml]\n",
            "common/common.yaml": "images:\n- {path: spec/common}\n",
        },
    )
    assert image_field_specs(tmp_path / "overlay") == (
        spec("spec/o"),
        spec("spec/a", "A"),
        spec("spec/common"),
        spec("spec/b", "B", "b.example", "v2"),
    )


def test_an_overlay_without_configurations_declares_nothing(tmp_path: Path) -> None:
    """Most overlays have no configurations: no fieldSpecs, pod specs only."""
    write(tmp_path, {"kustomization.yaml": "resources: [deployment.yaml]\n"})
    assert image_field_specs(tmp_path) == ()


@pytest.mark.parametrize(
    ("configuration", "message"),
    [
        ("images: spec/image\n", "images.yaml: images: must be a list of fieldSpecs; write {path:"),
        ("images:\n- {path: spec/a}\n- {kind: A}\n", "images.yaml: images[1]: a fieldSpec needs a path"),
        ("images:\n- spec/image\n", "images.yaml: images[0]: a fieldSpec needs a path"),
        ("images:\n- {path: spec/a, kind: [A]}\n", "images.yaml: images[0]: kind must be text"),
        ("- images\n", "images.yaml: expected a mapping of fields"),
        ("images: [\n", "images.yaml: invalid YAML at line 2, column 1"),
    ],
)  # fmt: skip
def test_a_configurations_file_that_is_no_transformer_config_is_one_line(
    tmp_path: Path, configuration: str, message: str
) -> None:
    """A configurations file promoter cannot read as fieldSpecs is bad input naming the file and the
    entry, with the shape to write."""
    write(tmp_path, {"kustomization.yaml": "configurations: [images.yaml]\n"})
    (tmp_path / "images.yaml").write_text(configuration)
    with pytest.raises(ConfigError) as caught:
        image_field_specs(tmp_path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_configurations_file_over_the_cap_is_refused_unread(tmp_path: Path) -> None:
    """Each file of the tree is read up to its cap, then refused in one line."""
    write(tmp_path, {"kustomization.yaml": "configurations: [images.yaml]\n"})
    entries = [{"path": f"spec/{'x' * 60}{i}"} for i in range(KUSTOMIZATION_CAP.limit // 60)]
    (tmp_path / "images.yaml").write_text(yaml.safe_dump({"images": entries}))
    with pytest.raises(ConfigError, match="is larger than 2 MiB, the limit for a kustomization"):
        image_field_specs(tmp_path)


def test_a_field_spec_path_with_a_leading_slash_is_read_as_kustomize_reads_it(
    tmp_path: Path,
) -> None:
    """kustomize rewrites the field of '/spec/lead/image' as of 'spec/lead/image'; promoter finds
    the image there too instead of calling it an unmanaged mention."""
    write(
        tmp_path,
        {
            "overlay/kustomization.yaml": f"""\
                resources:
                - odd.yaml
                configurations:
                - images.yaml
                images:
                - name: lead
                  newName: {PROD}/odd/lead
                  newTag: "1.0"
                """,
            "overlay/images.yaml": "images:\n- {path: /spec/lead/image, kind: Odd}\n",
            "overlay/odd.yaml": (
                "apiVersion: example.com/v1\nkind: Odd\nmetadata: {name: o}\n"
                "spec: {lead: {image: lead}}\n"
            ),
        },
    )
    rendered = parse_manifests(render_overlay(tmp_path / "overlay"))
    assert rendered[0]["spec"]["lead"]["image"] == f"{PROD}/odd/lead:1.0"
    found = discover_images(rendered, image_field_specs(tmp_path / "overlay"))
    assert [(f.field, f.image) for f in found] == [("spec.lead.image", f"{PROD}/odd/lead:1.0")]


def test_local_sources_name_every_local_path(tmp_path: Path) -> None:
    """The overlay folder, its bases, and files it names outside its folder; no URL, no inline patch."""
    files = {
        "base/kustomization.yaml": "resources: [deployment.yaml]\n",
        "base/deployment.yaml": "kind: Deployment\n",
        "shared/patch.yaml": "kind: Deployment\n",
        "shared/app.env": "A=1\n",
        "shared/values.yaml": "{}\n",
        "overlay/kustomization.yaml": """\
            resources:
              - ../base
              - https://github.com/example/remote//base?ref=v1
            patches:
              - path: ../shared/patch.yaml
              - patch: |-
                  - op: replace
                    path: /spec/replicas
                    value: 3
            patchesStrategicMerge:
              - |-
                kind: Deployment
            configMapGenerator:
              - name: settings
                files: [app=../shared/app.env, local.txt]
            helmCharts:
              - name: chart
                valuesFile: ../shared/values.yaml
              - name: missing
                valuesFile: ../shared/absent.yaml
            """,
        "overlay/local.txt": "x\n",
    }
    write(tmp_path, files)

    found = local_sources(tmp_path / "overlay")

    assert set(found) == {
        tmp_path / "overlay",
        tmp_path / "base",
        tmp_path / "shared/patch.yaml",
        tmp_path / "shared/app.env",
        tmp_path / "shared/values.yaml",
    }
