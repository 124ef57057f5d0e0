"""Image discovery in rendered manifests: every pod spec of every kind, robust to odd documents."""

from __future__ import annotations

import pytest

from promoter.errors import ConfigError
from promoter.gitops.discover import (
    FoundImage,
    ImageFieldSpec,
    UnmanagedReference,
    api_group_version,
    discover_images,
    parse_field_spec_path,
    parse_manifests,
    scan_manifests,
)

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: debug}
spec:
  containers:
  - {name: shell, image: busybox:1.36}
  ephemeralContainers:
  - {name: probe, image: nicolaka/netshoot@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  template:
    spec:
      initContainers:
      - {name: migrate, image: 111111111111.dkr.ecr.us-east-1.amazonaws.com/shop/migrate:1.2}
      containers:
      - {name: api, image: 111111111111.dkr.ecr.us-east-1.amazonaws.com/shop/api:1.2}
      - {name: proxy, image: envoyproxy/envoy:v1.30}
"""

STATEFULSET = """\
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  template:
    spec:
      containers:
      - {name: postgres, image: postgres:16}
"""

DAEMONSET = """\
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  template:
    spec:
      containers:
      - {name: agent, image: "localhost:5000/agent:7"}
"""

JOB = """\
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: once, image: shop/once:3}
"""

CRONJOB = """\
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 0 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          initContainers:
          - {name: wait, image: shop/wait:1}
          containers:
          - {name: report, image: shop/report:2}
"""

ROLLOUT = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  strategy: {canary: {steps: [{setWeight: 20}]}}
  template:
    spec:
      containers:
      - {name: web, image: shop/web:5}
"""

REPLICASET = """\
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: legacy}
spec:
  template:
    spec:
      containers:
      - {name: legacy, image: shop/legacy:0.9}
"""

LIST = """\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: listed}
  spec:
    containers:
    - {name: c, image: shop/listed:1}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings}
  data: {image: not-a-container-image}
- 42
"""

# Documents that look nothing like workloads, or like broken ones: none of them may raise.
GARBAGE = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {containers: "x"}
---
just a string
---
- a list
- at the top
---
kind: Deployment
metadata: {name: broken}
spec:
  template:
    spec:
      containers: "not a list"
      initContainers:
      - "not a mapping"
      - {name: no-image}
      - {name: empty-image, image: ""}
      - {name: number-image, image: 3}
---
kind: Deployment
metadata: nameless
spec: {template: null}
---
kind: CronJob
spec: {jobTemplate: {spec: {template: [1, 2]}}}
---
kind: Pod
spec: [containers]
---
---
"""


def found(
    image: str, kind: str, name: str, container: str, field: str = "containers"
) -> FoundImage:
    """Shorthand for an expected FoundImage."""
    return FoundImage(image=image, kind=kind, name=name, container=container, field=field)


ECR = "111111111111.dkr.ecr.us-east-1.amazonaws.com"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (POD, [
            found("busybox:1.36", "Pod", "debug", "shell"),
            found("nicolaka/netshoot@sha256:" + "a" * 64, "Pod", "debug", "probe",
                  "ephemeralContainers"),
        ]),
        (DEPLOYMENT, [
            found(f"{ECR}/shop/api:1.2", "Deployment", "api", "api"),
            found("envoyproxy/envoy:v1.30", "Deployment", "api", "proxy"),
            found(f"{ECR}/shop/migrate:1.2", "Deployment", "api", "migrate", "initContainers"),
        ]),
        (STATEFULSET, [found("postgres:16", "StatefulSet", "db", "postgres")]),
        (DAEMONSET, [found("localhost:5000/agent:7", "DaemonSet", "agent", "agent")]),
        (JOB, [found("shop/once:3", "Job", "once", "once")]),
        (REPLICASET, [found("shop/legacy:0.9", "ReplicaSet", "legacy", "legacy")]),
        (CRONJOB, [
            found("shop/report:2", "CronJob", "nightly", "report"),
            found("shop/wait:1", "CronJob", "nightly", "wait", "initContainers"),
        ]),
        (ROLLOUT, [found("shop/web:5", "Rollout", "web", "web")]),
        (LIST, [found("shop/listed:1", "Pod", "listed", "c")]),
        (GARBAGE, []),
        ("", []),
        ("---\n---\n", []),
    ],
    ids=["pod", "deployment", "statefulset", "daemonset", "job", "replicaset", "cronjob",
         "rollout", "list", "garbage", "empty", "empty-documents"],
)  # fmt: skip
def test_discovers_every_container_image(text: str, expected: list[FoundImage]) -> None:
    """Each kind's pod spec yields its containers, initContainers and ephemeralContainers."""
    assert discover_images(parse_manifests(text)) == expected


def test_all_documents_together_keep_document_order() -> None:
    """Images come in document order, so the same manifests always give the same list."""
    documents = [DEPLOYMENT, GARBAGE, CRONJOB, ROLLOUT]
    text = "---\n".join(documents)
    assert [image.image for image in discover_images(parse_manifests(text))] == [
        f"{ECR}/shop/api:1.2",
        "envoyproxy/envoy:v1.30",
        f"{ECR}/shop/migrate:1.2",
        "shop/report:2",
        "shop/wait:1",
        "shop/web:5",
    ]


def test_an_image_used_twice_is_reported_per_place() -> None:
    """The same image in two workloads is found twice, once with each workload's name."""
    text = DEPLOYMENT + "---\n" + DEPLOYMENT.replace("name: api}", "name: api-canary}")
    names = [(image.name, image.container) for image in discover_images(parse_manifests(text))]
    assert names == [
        ("api", "api"),
        ("api", "proxy"),
        ("api", "migrate"),
        ("api-canary", "api"),
        ("api-canary", "proxy"),
        ("api-canary", "migrate"),
    ]


def test_image_is_kept_exactly_as_written() -> None:
    """Discovery does not normalise: docker.io defaults are the reference parser's business."""
    text = "kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: nginx}]}\n"
    assert discover_images(parse_manifests(text)) == [found("nginx", "Pod", "p", "c")]


def test_numeric_names_become_text() -> None:
    """A workload or container name YAML read as a number is reported as text."""
    text = "kind: Pod\nmetadata: {name: 2024}\nspec: {containers: [{name: 1, image: a/b:1}]}\n"
    assert discover_images(parse_manifests(text)) == [found("a/b:1", "Pod", "2024", "1")]


def test_discovery_accepts_documents_without_parsing() -> None:
    """discover_images takes already parsed documents, e.g. from another renderer."""
    documents = [
        {"kind": "Job", "spec": {"template": {"spec": {"containers": [{"image": "x:1"}]}}}}
    ]
    assert discover_images(documents) == [found("x:1", "Job", "", "")]


def test_parse_manifests_flattens_typed_lists() -> None:
    """A DeploymentList's items are documents of their own, as in a List."""
    text = "kind: DeploymentList\nitems:\n- kind: Deployment\n  metadata: {name: a}\n"
    assert parse_manifests(text) == [{"kind": "Deployment", "metadata": {"name": "a"}}]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("kind: Pod\nspec: {containers: [\n", "line 3, column 1"),
        ("kind: Pod\n---\nmetadata:\n  name: a\n bad: 1\n", "line 5, column 2"),
    ],
)
def test_invalid_yaml_names_the_source_and_line(text: str, where: str) -> None:
    """Manifests that are not YAML give one line with the source and the line of the problem."""
    with pytest.raises(ConfigError) as caught:
        parse_manifests(text, source="rendered.yaml")
    assert str(caught.value).startswith(f"rendered.yaml: invalid YAML at {where}: ")
    assert "\n" not in str(caught.value)


def test_a_date_that_is_no_date_is_a_config_error() -> None:
    """PyYAML's ValueError for an impossible timestamp becomes a one-line ConfigError (exit 2)."""
    with pytest.raises(ConfigError, match="invalid YAML value"):
        parse_manifests("apiVersion: v1\nkind: ConfigMap\ndata:\n  built: 2024-02-30\n")


# -- custom resources: images where the overlay's kustomize configurations say they are ----------

# actions-runner-controller: the runner image is a field of the pod template's spec, not a container.
RUNNER = f"""\
apiVersion: actions.summerwind.dev/v1alpha1
kind: RunnerDeployment
metadata: {{name: runners}}
spec:
  template:
    spec:
      image: {ECR}/ci/runner:2.3
      repository: org/repo
"""

SPARK = f"""\
apiVersion: sparkoperator.k8s.io/v1beta2
kind: SparkApplication
metadata: {{name: pi}}
spec:
  image: {ECR}/data/spark:3.5
  driver:
    cores: 1
    sidecars:
    - {{name: log, image: {ECR}/data/spark:3.5}}
    - {{name: envoy, image: envoyproxy/envoy:v1.30}}
  executor:
    image: {ECR}/data/spark-exec:3.5
"""


def spec(path: str, kind: str = "", group: str = "", version: str = "") -> ImageFieldSpec:
    """Shorthand for a fieldSpec as a configurations file writes it."""
    return ImageFieldSpec(parse_field_spec_path(path), kind, group, version)


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("spec/image", ("spec", "image")),
        ("spec/template/spec/containers[]/image", ("spec", "template", "spec", "containers", "image")),
        ("metadata/annotations/example.com\\/image", ("metadata", "annotations", "example.com/image")),
        ("spec", ("spec",)),
    ],
)  # fmt: skip
def test_field_spec_paths_split_as_kustomize_splits_them(path: str, steps: tuple[str, ...]) -> None:
    """Slashes separate keys, an escaped slash is part of a key, and a list step's [] is only a hint."""
    assert parse_field_spec_path(path) == steps


@pytest.mark.parametrize(
    ("api_version", "expected"),
    [
        ("apps/v1", ("apps", "v1")),
        ("sparkoperator.k8s.io/v1beta2", ("sparkoperator.k8s.io", "v1beta2")),
        ("v1", ("", "v1")),
        ("v2beta1", ("", "v2beta1")),
        ("example", ("example", "")),
        (None, ("", "")),
    ],
)
def test_api_versions_split_into_group_and_version_as_kustomize_does(
    api_version: object, expected: tuple[str, str]
) -> None:
    """A core apiVersion (v1) has the empty group; any other is group/version."""
    assert api_group_version(api_version) == expected


CUSTOM = RUNNER + "---\n" + SPARK + "---\n" + DEPLOYMENT
POD_SPEC_IMAGES = [
    found(f"{ECR}/shop/api:1.2", "Deployment", "api", "api"),
    found("envoyproxy/envoy:v1.30", "Deployment", "api", "proxy"),
    found(f"{ECR}/shop/migrate:1.2", "Deployment", "api", "migrate", "initContainers"),
]


@pytest.mark.parametrize(
    ("field_specs", "expected"),
    [
        ([], POD_SPEC_IMAGES),
        ([spec("spec/template/spec/image", "RunnerDeployment")], [
            found(f"{ECR}/ci/runner:2.3", "RunnerDeployment", "runners", "", "spec.template.spec.image"),
            *POD_SPEC_IMAGES,
        ]),
        ([spec("spec/image", "SparkApplication", "sparkoperator.k8s.io", "v1beta2")], [
            found(f"{ECR}/data/spark:3.5", "SparkApplication", "pi", "", "spec.image"),
            *POD_SPEC_IMAGES,
        ]),
        ([spec("spec/image")], [  # no kind: every kind that has the field
            found(f"{ECR}/data/spark:3.5", "SparkApplication", "pi", "", "spec.image"),
            *POD_SPEC_IMAGES,
        ]),
        ([spec("spec/driver/sidecars/image", "SparkApplication")], [  # lists are stepped through
            found(f"{ECR}/data/spark:3.5", "SparkApplication", "pi", "", "spec.driver.sidecars[0].image"),
            found("envoyproxy/envoy:v1.30", "SparkApplication", "pi", "", "spec.driver.sidecars[1].image"),
            *POD_SPEC_IMAGES,
        ]),
        ([spec("spec/driver/sidecars[]/image", "SparkApplication", version="v1beta2")], [
            found(f"{ECR}/data/spark:3.5", "SparkApplication", "pi", "", "spec.driver.sidecars[0].image"),
            found("envoyproxy/envoy:v1.30", "SparkApplication", "pi", "", "spec.driver.sidecars[1].image"),
            *POD_SPEC_IMAGES,
        ]),
        ([spec("spec/image", "SparkApplication", group="spark.apache.org")], POD_SPEC_IMAGES),
        ([spec("spec/image", "SparkApplication", version="v1")], POD_SPEC_IMAGES),
        ([spec("spec/image", "RunnerDeployment")], POD_SPEC_IMAGES),
        ([spec("spec/driver", "SparkApplication"), spec("spec/driver/cores")], POD_SPEC_IMAGES),
        ([spec("spec/template/spec/containers/image")], POD_SPEC_IMAGES),  # each place once
    ],
    ids=["none", "runner-template-image", "spark-group-version", "any-kind", "through-a-list",
         "list-hint-and-version", "other-group", "other-version", "other-kind", "not-text",
         "pod-spec-named-again"],
)  # fmt: skip
def test_field_specs_find_images_in_custom_resources(
    field_specs: list[ImageFieldSpec], expected: list[FoundImage]
) -> None:
    """Images in custom resources are found at the fields the fieldSpecs name, for the kinds, groups
    and versions they name; pod specs first within a document, each place once."""
    assert discover_images(parse_manifests(CUSTOM), field_specs) == expected


def test_an_image_found_through_a_field_spec_names_its_place() -> None:
    """A message about an image points at the field (quoting keys with dots or slashes), or at the
    container."""
    text = (
        "kind: Thing\nmetadata: {name: t, annotations: {example.com/image: a/b:1}}\n"
        "spec: {template: {spec: {containers: [{name: c, image: a/c:1}]}}}\n"
    )
    images = discover_images(
        parse_manifests(text), [spec("metadata/annotations/example.com\\/image")]
    )
    assert [image.place for image in images] == [
        "container c",
        'metadata.annotations["example.com/image"]',
    ]


def test_image_volumes_are_images_of_the_pod_spec() -> None:
    """An image volume's reference (Kubernetes 1.31+) is pulled like a container's image: found, not
    left as an unmanaged mention of the registry."""
    text = f"""\
kind: Deployment
metadata: {{name: infer}}
spec:
  template:
    spec:
      containers: [{{name: server, image: {ECR}/ml/server:1}}]
      volumes:
      - {{name: models, image: {{reference: {ECR}/ml/models:7, pullPolicy: IfNotPresent}}}}
      - {{name: cache, emptyDir: {{}}}}
      - {{name: odd, image: {ECR}/ml/not-a-volume-source:1}}
"""
    scan = scan_manifests(parse_manifests(text), ECR)
    assert list(scan.images) == [
        found(f"{ECR}/ml/server:1", "Deployment", "infer", "server"),
        found(f"{ECR}/ml/models:7", "Deployment", "infer", "models", "volumes"),
    ]
    assert scan.images[1].place == "volume models"
    assert [u.path for u in scan.unmanaged] == ["spec.template.spec.volumes[2].image"]


def test_scan_finds_the_same_images_as_discovery() -> None:
    """scan_manifests is discovery plus the registry's other mentions: the images agree."""
    field_specs = [spec("spec/image", "SparkApplication")]
    documents = parse_manifests(CUSTOM + "---\n" + CRONJOB)
    scan = scan_manifests(documents, ECR, field_specs)
    assert list(scan.images) == discover_images(documents, field_specs)


def unmanaged(value: str, kind: str, name: str, path: str) -> UnmanagedReference:
    """Shorthand for an expected UnmanagedReference."""
    return UnmanagedReference(value=value, kind=kind, name=name, path=path)


# The registry spelled with a KELVIN SIGN for its k and a LATIN SMALL LETTER LONG S for an s.
LOOKALIKE = ECR.replace("dkr", "d\u212ar").replace("us-", "u\u017f-")
ENV_VARS = f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api}}
spec:
  template:
    spec:
      containers:
      - name: api
        image: {ECR}/shop/api:1.2
        args: ["--sidecar-image={ECR}/shop/side:1.0 --pull", "--mirror={ECR}.cn/shop/x:1"]
        env:
        - {{name: SELF, value: "{ECR}/shop/api:1.2"}}
        - {{name: REGISTRY, value: "{ECR}"}}
        - {{name: OTHER_PORT, value: "{ECR}:8443/shop/y:1"}}
        - {{name: LONGER_HOST, value: "eu-{ECR}/shop/z:1"}}
        - {{name: UPPER, value: "{ECR.upper()}/shop/up:1"}}
        - {{name: LOOKALIKE, value: "{LOOKALIKE}/evil/thing:1"}}
"""


@pytest.mark.parametrize(
    ("text", "field_specs", "expected"),
    [
        (SPARK, [], [
            unmanaged(f"{ECR}/data/spark:3.5", "SparkApplication", "pi", "spec.image"),
            unmanaged(f"{ECR}/data/spark:3.5", "SparkApplication", "pi", "spec.driver.sidecars[0].image"),
            unmanaged(f"{ECR}/data/spark-exec:3.5", "SparkApplication", "pi", "spec.executor.image"),
        ]),
        # spec.image is now an image: the sidecar naming the same reference is covered by it
        (SPARK, [spec("spec/image", "SparkApplication")], [
            unmanaged(f"{ECR}/data/spark-exec:3.5", "SparkApplication", "pi", "spec.executor.image"),
        ]),
        (RUNNER, [spec("spec/template/spec/image", "RunnerDeployment")], []),
        (ENV_VARS, [], [
            unmanaged(f"{ECR}/shop/side:1.0", "Deployment", "api", "spec.template.spec.containers[0].args[0]"),
            unmanaged(ECR, "Deployment", "api", "spec.template.spec.containers[0].env[1].value"),
            unmanaged(f"{ECR.upper()}/shop/up:1", "Deployment", "api",
                      "spec.template.spec.containers[0].env[4].value"),
        ]),
        (DEPLOYMENT + "---\n" + POD, [], []),  # pod spec images and other registries: nothing
    ],
    ids=["undeclared-spark", "declared-spark", "declared-runner", "strings-elsewhere", "none"],
)  # fmt: skip
def test_other_strings_naming_the_registry_are_unmanaged_references(
    text: str, field_specs: list[ImageFieldSpec], expected: list[UnmanagedReference]
) -> None:
    """A string naming the registry host outside image fields is reported with its place, unless it
    is the reference of an image found (planned anyway); a longer host, another port or another host
    ending in it is another registry, and so is a Unicode lookalike (KELVIN SIGN, long s)."""
    assert list(scan_manifests(parse_manifests(text), ECR, field_specs).unmanaged) == expected
